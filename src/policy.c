/*
 * policy.c
 *		Policies: set_policy, the policy that applies to a claim at submit, the
 *		rules for a policy's expires_in, and the rules of a route (approvers and
 *		required_approvals), which submit shares.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_set_policy);
PG_FUNCTION_INFO_V1(approvals_drop_policy);

static const char *const expiry_actions[] = {"expire", "escalate", NULL};

/*
 * What is wrong with a policy's expires_in, or NULL.  Every part must be
 * positive or zero ('1 mon -30 days' is positive as a whole but can end
 * before it starts), and it is bounded, so that now() plus it can never
 * overflow when a claim is escalated.
 */
const char *
ApExpiresInProblem(Datum expires_in)
{
	Interval   *in = DatumGetIntervalP(expires_in);

	if (in->month < 0 || in->day < 0 || in->time < 0 ||
		(in->month == 0 && in->day == 0 && in->time == 0))
		return "must be a positive interval with no negative part";
	if (ApIntervalOver(expires_in, AP_MAX_EXPIRES_IN))
		return "must be at most " AP_MAX_EXPIRES_IN;
	return NULL;
}

/* How often set_policy retries when a concurrent set_policy of one key won */
#define SET_POLICY_RETRIES	10

/* The key of a policy, (tenant, resource_type, kind), NULLs included */
#define POLICY_KEY_MATCHES \
	"tenant IS NOT DISTINCT FROM $1 AND resource_type IS NOT DISTINCT FROM $2 " \
	"AND kind IS NOT DISTINCT FROM $3"

/*
 * Deactivate the active version of a policy key; returns whether there was
 * one, with its id and version.
 */
static bool
PolicyDeactivate(Datum *key, bool *key_nulls, int64 *id, int *version)
{
	static const ApStmt sql = {
		"UPDATE approvals.policies SET active = false, updated_at = now() "
		"WHERE active AND " POLICY_KEY_MATCHES " RETURNING id, version",
		3, {TEXTOID, TEXTOID, TEXTOID}
	};
	bool		isnull;

	if (ApExec(&sql, key, key_nulls, 0) == 0)
		return false;
	*id = DatumGetInt64(ApGetDatum(0, 1, &isnull));
	*version = DatumGetInt32(ApGetDatum(0, 2, &isnull));
	return true;
}

/*
 * approvals.set_policy(...): a new version of the policy of one (tenant,
 * resource_type, kind); the previous version stays, inactive.  Claims keep
 * what they were submitted under.
 */
Datum
approvals_set_policy(PG_FUNCTION_ARGS)
{
	/* the latest version of a key that has none active (dropped), if any */
	static const ApStmt last_sql = {
		"SELECT id, version FROM approvals.policies WHERE " POLICY_KEY_MATCHES
		" ORDER BY version DESC, id DESC LIMIT 1",
		3, {TEXTOID, TEXTOID, TEXTOID}
	};
	static const ApStmt insert_sql = {
		"INSERT INTO approvals.policies (resource_type, kind, tenant, approvers, "
		"required_approvals, auto_approve_below, expires_in, on_expiry, allow_self_approval, "
		"steps, id, version, active) OVERRIDING SYSTEM VALUE "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
		"coalesce($11, nextval('approvals.policies_id_seq')), $12, true) "
		"ON CONFLICT DO NOTHING",
		12, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, NUMERICOID, INTERVALOID, TEXTOID,
			BOOLOID, JSONBOID, INT8OID, INT4OID}
	};
	Datum		values[12];
	bool		nulls[12];
	char	   *resource_type = ApArgCString(fcinfo, 0);
	char	   *kind = ApArgCString(fcinfo, 1);
	char	   *tenant = ApArgCString(fcinfo, 2);
	char	   *on_expiry = PG_ARGISNULL(7) ? "expire" : ApArgCString(fcinfo, 7);
	int			required = PG_ARGISNULL(4) ? 1 : PG_GETARG_INT32(4);
	int			n_approvers = 0;
	char	  **approvers = NULL;
	int			n_steps;
	ApprovalsCall call;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_ADMIN, "set policies");
	ApCheckNotEmpty("resource_type", resource_type);
	ApCheckNotEmpty("kind", kind);
	ApCheckNotEmpty("tenant", tenant);
	ApCheckLength("resource_type", resource_type, AP_MAX_RESOURCE_TYPE);
	ApCheckLength("kind", kind, AP_MAX_KIND);
	ApCheckLength("tenant", tenant, AP_MAX_TENANT);
	ApCheckEnum("on_expiry", on_expiry, expiry_actions);
	ApStepsCheckArgs(!ApArgIsNull(fcinfo, 9), !PG_ARGISNULL(3));
	if (!ApArgIsNull(fcinfo, 9))
		ApStepsParse(PG_GETARG_JSONB_P(9), &n_steps);
	if (!PG_ARGISNULL(3))
		approvers = ApApproversArg(PG_GETARG_DATUM(3), &n_approvers);
	ApCheckRequiredApprovals(required, !PG_ARGISNULL(3), n_approvers);
	if (!PG_ARGISNULL(5))
		ApCheckFiniteNumeric("auto_approve_below", PG_GETARG_NUMERIC(5));
	if (!PG_ARGISNULL(5) &&
		DatumGetBool(DirectFunctionCall2(numeric_le, PG_GETARG_DATUM(5),
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("auto_approve_below must be greater than 0")));
	if (!PG_ARGISNULL(6))
	{
		const char *problem = ApExpiresInProblem(PG_GETARG_DATUM(6));

		if (problem)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expires_in %s", problem)));
	}
	if (strcmp(on_expiry, "escalate") == 0 && PG_ARGISNULL(6))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_expiry \"escalate\" needs expires_in")));

	for (int i = 0; i < 10; i++)
	{
		nulls[i] = ApArgIsNull(fcinfo, i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	if (approvers)
		values[3] = ApCStringArrayDatum(approvers, n_approvers);	/* numbered from 1 */
	nulls[4] = false;
	values[4] = Int32GetDatum(required);
	nulls[7] = false;
	values[7] = CStringGetTextDatum(on_expiry);
	nulls[8] = false;
	values[8] = BoolGetDatum(PG_ARGISNULL(8) ? false : PG_GETARG_BOOL(8));

	ApBegin(&call);
	ApRequireTenant(&call.caller, tenant, "set policies");
	for (int attempt = 0;; attempt++)
	{
		/* the key in last_sql's and PolicyDeactivate's parameter order */
		Datum		key[3] = {values[2], values[0], values[1]};
		bool		key_nulls[3] = {nulls[2], nulls[0], nulls[1]};
		int64		id = 0;
		int			version = 0;
		bool		isnull;

		if (!PolicyDeactivate(key, key_nulls, &id, &version) &&
			ApExec(&last_sql, key, key_nulls, 1) == 1)
		{
			id = DatumGetInt64(ApGetDatum(0, 1, &isnull));
			version = DatumGetInt32(ApGetDatum(0, 2, &isnull));
		}
		nulls[10] = (version == 0);
		values[10] = Int64GetDatum(id);
		nulls[11] = false;
		values[11] = Int32GetDatum(version + 1);
		if (ApExec(&insert_sql, values, nulls, 0) == 1)
			break;
		/* a concurrent set_policy of this key committed a version first: build on it */
		if (attempt >= SET_POLICY_RETRIES)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not set the policy: concurrent set_policy calls kept conflicting"),
					 errhint("Retry the transaction.")));
	}
	ApEnd(&call);
	PG_RETURN_VOID();
}

/*
 * approvals.drop_policy(resource_type, kind, tenant): deactivate the policy
 * of that key (its versions stay); returns how many were active (0 or 1).
 */
Datum
approvals_drop_policy(PG_FUNCTION_ARGS)
{
	char	   *resource_type = ApArgCString(fcinfo, 0);
	char	   *kind = ApArgCString(fcinfo, 1);
	char	   *tenant = ApArgCString(fcinfo, 2);
	Datum		key[3];
	bool		key_nulls[3] = {tenant == NULL, resource_type == NULL, kind == NULL};
	int64		id;
	int			version;
	int			dropped;
	ApprovalsCall call;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_ADMIN, "drop policies");
	ApCheckLength("resource_type", resource_type, AP_MAX_RESOURCE_TYPE);
	ApCheckLength("kind", kind, AP_MAX_KIND);
	ApCheckLength("tenant", tenant, AP_MAX_TENANT);
	key[0] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	key[1] = resource_type ? CStringGetTextDatum(resource_type) : (Datum) 0;
	key[2] = kind ? CStringGetTextDatum(kind) : (Datum) 0;

	ApBegin(&call);
	ApRequireTenant(&call.caller, tenant, "drop policies");
	dropped = PolicyDeactivate(key, key_nulls, &id, &version) ? 1 : 0;
	ApEnd(&call);
	PG_RETURN_INT32(dropped);
}

/* Find the most specific active policy: tenant beats resource_type beats kind. */
void
ApPolicyLookup(const char *tenant, const char *resource_type, const char *kind,
			 PolicyMatch *pm)
{
	static const ApStmt sql = {
		"SELECT approvers, required_approvals, auto_approve_below, expires_in, "
		"on_expiry, allow_self_approval, steps, id, version FROM approvals.policies "
		"WHERE active AND (tenant IS NULL OR tenant = $1) "
		"AND (resource_type IS NULL OR resource_type = $2) "
		"AND (kind IS NULL OR kind = $3) "
		"ORDER BY tenant IS NULL, resource_type IS NULL, kind IS NULL LIMIT 1",
		3, {TEXTOID, TEXTOID, TEXTOID}
	};
	enum
	{
		P_APPROVERS = 1, P_REQUIRED_APPROVALS, P_AUTO_APPROVE_BELOW, P_EXPIRES_IN, P_ON_EXPIRY,
		P_ALLOW_SELF_APPROVAL, P_STEPS, P_ID, P_VERSION
	};
	Datum		values[3];
	bool		nulls[3] = {tenant == NULL, false, false};
	bool		isnull;

	values[0] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	values[1] = CStringGetTextDatum(resource_type);
	values[2] = CStringGetTextDatum(kind);
	memset(pm, 0, sizeof(*pm));
	if (ApExec(&sql, values, nulls, 1) == 0)
	{
		pm->approvers_null = pm->auto_approve_null = pm->expires_in_null = true;
		pm->steps_null = true;
		pm->required_approvals = 1;
		pm->on_expiry = "expire";
		return;
	}
	pm->found = true;
	pm->approvers = ApGetDatum(0, P_APPROVERS, &pm->approvers_null);
	pm->required_approvals = DatumGetInt32(ApGetDatum(0, P_REQUIRED_APPROVALS, &isnull));
	pm->auto_approve_below = ApGetDatum(0, P_AUTO_APPROVE_BELOW, &pm->auto_approve_null);
	pm->expires_in = ApGetDatum(0, P_EXPIRES_IN, &pm->expires_in_null);
	pm->on_expiry = ApGetCString(0, P_ON_EXPIRY);
	pm->allow_self_approval = DatumGetBool(ApGetDatum(0, P_ALLOW_SELF_APPROVAL, &isnull));
	pm->steps = ApGetDatum(0, P_STEPS, &pm->steps_null);
	pm->id = DatumGetInt64(ApGetDatum(0, P_ID, &isnull));
	pm->version = DatumGetInt32(ApGetDatum(0, P_VERSION, &isnull));
}

/* ------------------------------------------------------------------------
 * Routes (of policies and of claims)
 * ------------------------------------------------------------------------ */

static int
CompareApprovers(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * An approvers argument as C strings: 22023/22001 unless it is a non-empty
 * list of at most AP_MAX_APPROVERS distinct actor ids (counted before any
 * element is read).
 */
char	  **
ApApproversArg(Datum array, int *n_out)
{
	int64		count = ApArrayLength(array);
	char	  **approvers;
	char	  **sorted;
	int			n;

	if (count == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("approvers must not be empty"),
				 errhint("Pass NULL for a claim without a route.")));
	if (count > AP_MAX_APPROVERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("approvers lists %lld actors; the limit is %d",
						(long long) count, AP_MAX_APPROVERS)));
	approvers = ApTextArrayToCStrings(array, &n);
	for (int i = 0; i < n; i++)
	{
		if (approvers[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("approvers must not contain NULL")));
		ApCheckNotEmpty("approver", approvers[i]);
		ApCheckLength("approver", approvers[i], AP_MAX_ACTOR);
	}
	sorted = palloc(sizeof(char *) * n);
	memcpy(sorted, approvers, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), CompareApprovers);
	for (int i = 1; i < n; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("approvers lists \"%s\" twice", sorted[i])));
	pfree(sorted);
	*n_out = n;
	return approvers;
}

/* 22023 unless 1 <= required <= n_approvers (when there is a route). */
void
ApCheckRequiredApprovals(int required, bool has_route, int n_approvers)
{
	if (required < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("required_approvals is %d; it must be at least 1", required)));
	if (has_route && required > n_approvers)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("required_approvals is %d; the route has only %d approvers",
						required, n_approvers)));
}
