/*
 * stats.c
 *		Approval statistics: claim_stats (per resource type) and approver_stats
 *		(per actor), over the claims created since a time that the caller can
 *		see (one tenant, or every tenant visible to them).
 *
 *		Each is one statement streamed into the result: claim_stats reads the
 *		claims of the window once; approver_stats reads their events (by the
 *		claim index of approvals.events) and who they wait for now
 *		(approvals.inbox_entries).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_claim_stats);
PG_FUNCTION_INFO_V1(approvals_approver_stats);
PG_FUNCTION_INFO_V1(approvals_claim_stats_parts);
PG_FUNCTION_INFO_V1(approvals_approver_stats_parts);

/* The claims of the window: created since $1, of tenant $2 (any when NULL), visible ($3, $4) */
#define STATS_CLAIMS_WHERE \
	"c.created_at >= $1 AND ($2::text IS NULL OR c.tenant = $2) " \
	"AND (c.tenant IS NULL OR $3 OR c.tenant = ANY ($4))"

/*
 * Arguments shared by both: since (default now - 30 days), tenant (one the
 * caller may see).  Fills the statement's four parameters.
 */
static void
StatsArgs(FunctionCallInfo fcinfo, ApprovalsCall *call, Datum *values, bool *nulls)
{
	char	   *tenant = ApArgCString(fcinfo, 1);

	ApCheckLength("tenant", tenant, AP_MAX_TENANT);
	if (PG_ARGISNULL(0))
		values[0] = DirectFunctionCall2(timestamptz_mi_interval,
										TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
										DirectFunctionCall3(interval_in, CStringGetDatum("30 days"),
															ObjectIdGetDatum(InvalidOid),
															Int32GetDatum(-1)));
	else
		values[0] = PG_GETARG_DATUM(0);
	nulls[0] = false;
	nulls[1] = (tenant == NULL);
	values[1] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	ApRequireTenant(&call->caller, tenant, "read statistics");
	nulls[2] = nulls[3] = false;
	values[2] = BoolGetDatum(call->caller.sees_all);
	values[3] = ApVisibleTenants(call->caller.roleid);

	/*
	 * Unlike our key lookups, statistics read a whole window: the caller's
	 * enable_seqscan and jit again (ApEnd restores ours).
	 */
	(void) set_config_option("enable_seqscan", ApUserEnableSeqscan() ? "on" : "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", ApUserJit() ? "on" : "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/* Run a statistics statement for the caller (a reader) into the function's result. */
static Datum
StatsRun(FunctionCallInfo fcinfo, const ApStmt *sql)
{
	ApprovalsCall call;
	Datum		values[4];
	bool		nulls[4];
	ReturnSetInfo *rsinfo;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_READER, "read statistics");
	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ApBegin(&call);
	StatsArgs(fcinfo, &call, values, nulls);
	ApExecIntoTuplestore(sql, values, nulls, rsinfo->setResult, rsinfo->setDesc);
	ApEnd(&call);
	return (Datum) 0;
}

/*
 * The times of a group: its median and 90th percentile, or (for a router
 * that merges several nodes' groups) every time, as an array.
 */
#define STATS_PERCENTILES(x, filter) \
		"percentile_cont(0.5) WITHIN GROUP (ORDER BY " x ") " filter " AS t50, " \
		"percentile_cont(0.9) WITHIN GROUP (ORDER BY " x ") " filter " AS t90"
#define STATS_PERCENTILES_COLS "d.t50, d.t90"
#define STATS_ALL_TIMES(x, filter) \
		"array_agg(" x ") " filter " AS times"
#define STATS_ALL_TIMES_COLS "d.times"

#define CLAIM_STATS_SQL(times) \
		"SELECT c.resource_type, count(*), " \
		"count(*) FILTER (WHERE c.status = 'approved'), " \
		"count(*) FILTER (WHERE c.status = 'rejected'), " \
		"count(*) FILTER (WHERE c.status = 'cancelled'), " \
		"count(*) FILTER (WHERE c.status = 'expired'), " \
		"count(*) FILTER (WHERE c.status = 'pending'), " \
		"count(*) FILTER (WHERE c.status = 'pending' AND c.expires_at <= now()), " \
		times("c.decided_at - c.created_at", \
			  "FILTER (WHERE c.status IN ('approved', 'rejected'))") " " \
		"FROM approvals.claims c WHERE " STATS_CLAIMS_WHERE " " \
		"GROUP BY c.resource_type ORDER BY c.resource_type"

#define APPROVER_STATS_SQL(times) \
		"WITH c AS (SELECT c.id FROM approvals.claims c WHERE " STATS_CLAIMS_WHERE "), " \
		"e AS (SELECT e.actor, e.action, " \
		"        e.at - lag(e.at) OVER (PARTITION BY e.claim_id ORDER BY e.id) AS response " \
		"      FROM c JOIN approvals.events e ON e.claim_id = c.id), " \
		"d AS (SELECT e.actor, count(*) AS decisions, " \
		"        count(*) FILTER (WHERE e.action = 'approved') AS approved, " \
		"        count(*) FILTER (WHERE e.action = 'rejected') AS rejected, " \
		"        count(*) FILTER (WHERE e.action = 'abstained') AS abstained, " \
		"        " times("e.response", "") " " \
		"      FROM e WHERE e.action IN ('approved', 'rejected', 'abstained') " \
		"      GROUP BY e.actor), " \
		"a AS (SELECT i.actor, count(*) AS pending, " \
		"        count(*) FILTER (WHERE i.expires_key <= now()) AS overdue " \
		"      FROM c JOIN approvals.inbox_entries i ON i.claim_id = c.id GROUP BY i.actor) " \
		"SELECT coalesce(d.actor, a.actor), coalesce(d.decisions, 0), coalesce(d.approved, 0), " \
		"coalesce(d.rejected, 0), coalesce(d.abstained, 0), " times##_COLS ", " \
		"coalesce(a.pending, 0), coalesce(a.overdue, 0) " \
		"FROM d FULL JOIN a ON a.actor = d.actor ORDER BY 1"

/* the parameters of every statistics statement: since, tenant, sees all tenants, visible tenants */
#define STATS_PARAMS 4, {TIMESTAMPTZOID, TEXTOID, BOOLOID, TEXTARRAYOID}

/* approvals.claim_stats(since, tenant): per resource type, counts and decision times. */
Datum
approvals_claim_stats(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		CLAIM_STATS_SQL(STATS_PERCENTILES),
		STATS_PARAMS
	};

	return StatsRun(fcinfo, &sql);
}

/*
 * approvals.claim_stats_parts(since, tenant): claim_stats with every decision
 * time of a group instead of its percentiles, so that a router can merge the
 * groups of several nodes exactly.
 */
Datum
approvals_claim_stats_parts(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		CLAIM_STATS_SQL(STATS_ALL_TIMES),
		STATS_PARAMS
	};

	return StatsRun(fcinfo, &sql);
}

/*
 * approvals.approver_stats(since, tenant): per actor, decisions and response
 * times (from the claim's previous event to the decision), and the pending
 * claims waiting for them by name now.
 */
Datum
approvals_approver_stats(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		APPROVER_STATS_SQL(STATS_PERCENTILES),
		STATS_PARAMS
	};

	return StatsRun(fcinfo, &sql);
}

/* approvals.approver_stats_parts(since, tenant): approver_stats with every response time. */
Datum
approvals_approver_stats_parts(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		APPROVER_STATS_SQL(STATS_ALL_TIMES),
		STATS_PARAMS
	};

	return StatsRun(fcinfo, &sql);
}
