/*
 * claim.c
 *		Claims: submit, decide, cancel_claim, and the claim's state machine that
 *		expire.c shares (load under a row lock, store, append an event and run the
 *		handler with it).
 *
 *		Every function locks the claim row it changes (FOR UPDATE), so concurrent
 *		decisions on one claim serialize and the later one sees the earlier one's
 *		result.  Submissions of one resource serialize on the unique index of
 *		pending claims: supersede the pending claim, insert with ON CONFLICT DO
 *		NOTHING (which waits for a concurrent inserter), and on a conflict
 *		supersede the winner and try again.  No lock-table entries accumulate, so
 *		a transaction may submit any number of claims.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_submit);
PG_FUNCTION_INFO_V1(approvals_decide);
PG_FUNCTION_INFO_V1(approvals_cancel_claim);

static const char *const priorities[] = {"low", "normal", "high", "urgent", NULL};
static const char *const outcomes[] = {"approved", "rejected", "abstained", NULL};

/* How often submit retries when concurrent submissions of one resource race */
#define SUBMIT_RETRIES	10

/* The columns of a claim that ClaimStateFromRow reads, named in ClaimColumn */
#define CLAIM_STATE_COLUMNS \
	"id, tenant, resource_type, snapshot_hash, status, requester, reviewer, " \
	"approvers, required_approvals, approval_count, approved_by, " \
	"coalesce(route_position, 0), allow_self_approval, on_expiry, expires_in, " \
	"expires_at, coalesce(expires_at <= now(), false)"
enum ClaimColumn
{
	CC_ID = 1, CC_TENANT, CC_RESOURCE_TYPE, CC_SNAPSHOT_HASH, CC_STATUS, CC_REQUESTER,
	CC_REVIEWER, CC_APPROVERS, CC_REQUIRED_APPROVALS, CC_APPROVAL_COUNT, CC_APPROVED_BY,
	CC_ROUTE_POSITION, CC_ALLOW_SELF_APPROVAL, CC_ON_EXPIRY, CC_EXPIRES_IN, CC_EXPIRES_AT,
	CC_IS_EXPIRED
};

/* ------------------------------------------------------------------------
 * The claim state machine (shared with expire.c)
 * ------------------------------------------------------------------------ */

/* Fill st from row 0 of the last SPI result (CLAIM_STATE_COLUMNS). */
static void
ClaimStateFromRow(ClaimState *st, int row)
{
	bool		isnull;
	Datum		d;

	st->id = ApGetCString(row, CC_ID);
	st->tenant = ApGetCString(row, CC_TENANT);
	st->resource_type = ApGetCString(row, CC_RESOURCE_TYPE);
	st->snapshot_hash = ApGetCString(row, CC_SNAPSHOT_HASH);
	st->status = ApGetCString(row, CC_STATUS);
	st->requester = ApGetCString(row, CC_REQUESTER);
	st->reviewer = ApGetCString(row, CC_REVIEWER);
	d = ApGetDatum(row, CC_APPROVERS, &isnull);
	if (isnull)
	{
		st->approvers = NULL;
		st->n_approvers = 0;
	}
	else
		st->approvers = ApTextArrayToCStrings(d, &st->n_approvers);
	st->required_approvals = DatumGetInt32(ApGetDatum(row, CC_REQUIRED_APPROVALS, &isnull));
	st->approval_count = DatumGetInt32(ApGetDatum(row, CC_APPROVAL_COUNT, &isnull));
	st->approved_by = ApTextArrayToCStrings(ApGetDatum(row, CC_APPROVED_BY, &isnull),
											&st->n_approved_by);
	st->route_position = DatumGetInt32(ApGetDatum(row, CC_ROUTE_POSITION, &isnull));
	st->allow_self_approval = DatumGetBool(ApGetDatum(row, CC_ALLOW_SELF_APPROVAL, &isnull));
	st->on_expiry = ApGetCString(row, CC_ON_EXPIRY);
	st->expires_in = ApGetDatum(row, CC_EXPIRES_IN, &st->expires_in_null);
	st->expires_at = ApGetDatum(row, CC_EXPIRES_AT, &st->expires_at_null);
	st->is_expired = DatumGetBool(ApGetDatum(row, CC_IS_EXPIRED, &isnull));
}

/* Lock and load a claim; false when it does not exist. */
bool
ApClaimLoad(const char *claim_id, ClaimState *st)
{
	static const ApStmt sql = {
		"SELECT " CLAIM_STATE_COLUMNS " FROM approvals.claims WHERE id = $1 FOR UPDATE",
		1, {TEXTOID}
	};
	Datum		values[1] = {CStringGetTextDatum(claim_id)};

	if (ApExec(&sql, values, NULL, 1) == 0)
		return false;
	ClaimStateFromRow(st, 0);
	return true;
}

/* P0002 for a claim id that does not exist. */
void
ApReportNoClaim(const char *claim_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_NO_DATA_FOUND),
			 errmsg("claim \"%s\" does not exist", claim_id)));
}

/* The current assignee, or NULL. */
static const char *
ClaimAssignee(const ClaimState *st)
{
	if (st->approvers == NULL || st->route_position < 1 ||
		st->route_position > st->n_approvers)
		return NULL;
	return st->approvers[st->route_position - 1];
}

/* Write the mutable part of st back to the claim row. */
void
ApClaimStore(const ClaimState *st, const char *batch_id)
{
	static const ApStmt sql = {
		"UPDATE approvals.claims SET status = $2, reviewer = $3, approval_count = $4, "
		"approved_by = $5, route_position = nullif($6, 0), assignee = $7, "
		"expires_at = $8, batch_id = coalesce($9, batch_id), "
		"decided_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END, "
		"updated_at = now() WHERE id = $1",
		9, {TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTARRAYOID, INT4OID, TEXTOID, TIMESTAMPTZOID, TEXTOID}
	};
	Datum		values[9];
	bool		nulls[9] = {false};
	const char *assignee = ClaimAssignee(st);

	values[0] = CStringGetTextDatum(st->id);
	values[1] = CStringGetTextDatum(st->status);
	nulls[2] = (st->reviewer == NULL);
	values[2] = nulls[2] ? (Datum) 0 : CStringGetTextDatum(st->reviewer);
	values[3] = Int32GetDatum(st->approval_count);
	values[4] = ApCStringArrayDatum(st->approved_by, st->n_approved_by);
	values[5] = Int32GetDatum(st->route_position);
	nulls[6] = (assignee == NULL);
	values[6] = nulls[6] ? (Datum) 0 : CStringGetTextDatum(assignee);
	values[7] = st->expires_at;
	nulls[7] = st->expires_at_null;
	nulls[8] = (batch_id == NULL);
	values[8] = nulls[8] ? (Datum) 0 : CStringGetTextDatum(batch_id);

	if (ApExec(&sql, values, nulls, 0) != 1)
		elog(ERROR, "claim \"%s\" vanished while locked", st->id);
}

/*
 * Append one audit event for a claim and run the resource type's handler
 * with it.  Returns the event id.
 */
int64
ApClaimEvent(const ClaimState *st, const char *batch_id, const char *actor,
		   const char *action, const char *from_status, const char *comment)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action, "
		"from_status, to_status, comment, snapshot_hash) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
		9, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	};
	const char *cols[9] = {st->id, batch_id, st->tenant, actor, action,
	from_status, st->status, comment, st->snapshot_hash};
	Datum		values[9];
	bool		nulls[9];
	bool		isnull;
	int64		event_id;

	for (int i = 0; i < 9; i++)
	{
		nulls[i] = (cols[i] == NULL);
		values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(cols[i]);
	}
	ApExec(&sql, values, nulls, 1);
	event_id = DatumGetInt64(ApGetDatum(0, 1, &isnull));
	ApRunHandler(st->resource_type, st->id, event_id);
	return event_id;
}

/* The claim row as a composite Datum in the caller's memory context. */
static Datum
ClaimRowDatum(const char *claim_id)
{
	static const ApStmt sql = {
		"SELECT c FROM approvals.claims c WHERE id = $1",
		1, {TEXTOID}
	};
	Datum		values[1] = {CStringGetTextDatum(claim_id)};
	bool		isnull;

	if (ApExec(&sql, values, NULL, 1) != 1)
		ApReportNoClaim(claim_id);
	return SPI_datumTransfer(ApGetDatum(0, 1, &isnull), false, -1);
}

/* NOTIFY approvals about a single decision. */
static void
NotifyDecision(const ClaimState *st, const char *action, const char *actor)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	ApJsonAppendPair(&buf, "claim_id", st->id);
	ApJsonAppendPair(&buf, "status", st->status);
	ApJsonAppendPair(&buf, "action", action);
	ApJsonAppendPair(&buf, "actor", actor);
	appendStringInfoChar(&buf, '}');
	ApNotify(buf.data);
}

/*
 * Move the route on to the next approver.  Returns true when the route is
 * now exhausted (there was an assignee and there is no next one).
 */
bool
ApClaimAdvanceRoute(ClaimState *st)
{
	if (st->route_position < 1)
		return false;
	st->route_position++;
	if (st->route_position > st->n_approvers)
	{
		st->route_position = 0;
		return true;
	}
	return false;
}

static bool
ArrayContains(char **items, int n, const char *value)
{
	for (int i = 0; i < n; i++)
		if (items[i] && strcmp(items[i], value) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------------
 * submit
 * ------------------------------------------------------------------------ */

/* 22023 unless fields is a JSON array of at most 20 {key,label,value} string objects. */
static void
CheckFields(Jsonb *fields)
{
	static const char *const keys[] = {"key", "label", "value"};
	int			n;

	if (fields == NULL)
		return;
	if (!JB_ROOT_IS_ARRAY(fields) || JB_ROOT_IS_SCALAR(fields))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fields must be a JSON array")));
	n = JB_ROOT_COUNT(fields);
	if (n > AP_MAX_FIELDS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fields has %d items; the limit is %d", n, AP_MAX_FIELDS)));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *item = getIthJsonbValueFromContainer(&fields->root, i);

		if (item->type != jbvBinary || !JsonContainerIsObject(item->val.binary.data))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("fields item %d is not a JSON object", i + 1)));
		for (int k = 0; k < 3; k++)
		{
			JsonbValue	vbuf;
			JsonbValue *v = getKeyJsonValueFromContainer(item->val.binary.data,
														 keys[k], strlen(keys[k]),
														 &vbuf);

			if (v == NULL || v->type != jbvString)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("fields item %d needs a string \"%s\"", i + 1, keys[k])));
		}
	}
}

/*
 * Idempotency: record (requester, key) -> claim id, or find the first call's
 * claim.  Returns the existing claim id, or NULL when this call is the first.
 */
char *
ApIdempotencyLookup(const char *scope, const char *requester, const char *key,
				 Datum request, const char *object_id)
{
	static const ApStmt insert_sql = {
		"INSERT INTO approvals.idempotency_keys (scope, requester, key, request, object_id) "
		"VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
		5, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID}
	};
	static const ApStmt select_sql = {
		"SELECT request = $4, object_id FROM approvals.idempotency_keys "
		"WHERE scope = $1 AND requester = $2 AND key = $3",
		5, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID}
	};
	enum
	{
		IDEM_SAME_REQUEST = 1, IDEM_OBJECT_ID
	};
	Datum		values[5];
	bool		isnull;

	values[0] = CStringGetTextDatum(scope);
	values[1] = CStringGetTextDatum(requester);
	values[2] = CStringGetTextDatum(key);
	values[3] = request;
	values[4] = CStringGetTextDatum(object_id);

	if (ApExec(&insert_sql, values, NULL, 0) == 1)
		return NULL;
	if (ApExec(&select_sql, values, NULL, 1) != 1)
		elog(ERROR, "idempotency key \"%s\" vanished", key);
	if (!DatumGetBool(ApGetDatum(0, IDEM_SAME_REQUEST, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("idempotency key \"%s\" was already used with different arguments",
						key),
				 errdetail("The first call with this key created %s \"%s\".",
						   scope, ApGetCString(0, IDEM_OBJECT_ID))));
	return ApGetCString(0, IDEM_OBJECT_ID);
}

/* Does a claim with this id exist? */
static bool
ClaimExists(const char *claim_id)
{
	static const ApStmt sql = {
		"SELECT 1 FROM approvals.claims WHERE id = $1",
		1, {TEXTOID}
	};
	Datum		values[1] = {CStringGetTextDatum(claim_id)};

	return ApExec(&sql, values, NULL, 1) == 1;
}

/* Cancel the resource's pending claim (if any) in favour of a new one. */
static void
SupersedePending(const char *tenant, const char *resource_type,
				 const char *resource_id, const char *actor, const char *new_id)
{
	static const ApStmt sql_tenant = {
		"SELECT id FROM approvals.claims WHERE status = 'pending' AND tenant = $1 "
		"AND resource_type = $2 AND resource_id = $3 FOR UPDATE",
		3, {TEXTOID, TEXTOID, TEXTOID}
	};
	static const ApStmt sql_no_tenant = {
		"SELECT id FROM approvals.claims WHERE status = 'pending' AND tenant IS NULL "
		"AND resource_type = $2 AND resource_id = $3 FOR UPDATE",
		3, {TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		values[3];
	bool		nulls[3] = {tenant == NULL, false, false};
	char	   *old_id;
	ClaimState	st;
	StringInfoData comment;

	values[0] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	values[1] = CStringGetTextDatum(resource_type);
	values[2] = CStringGetTextDatum(resource_id);
	if (ApExec(tenant ? &sql_tenant : &sql_no_tenant, values, nulls, 1) == 0)
		return;
	old_id = ApGetCString(0, 1);
	if (!ApClaimLoad(old_id, &st))
		return;
	st.status = "cancelled";
	ApClaimStore(&st, NULL);
	initStringInfo(&comment);
	appendStringInfo(&comment, "superseded by %s", new_id);
	ApClaimEvent(&st, NULL, actor, "superseded", "pending", comment.data);
}

/* approvals.submit(...): create a pending claim. */
Datum
approvals_submit(PG_FUNCTION_ARGS)
{
	char	   *resource_type;
	char	   *resource_id;
	char	   *snapshot_hash;
	char	   *tenant = ApArgCString(fcinfo, 3);
	char	   *kind = ApArgCString(fcinfo, 4);
	char	   *note = ApArgCString(fcinfo, 5);
	char	   *actor_arg = ApArgCString(fcinfo, 6);
	char	   *id = ApArgCString(fcinfo, 7);
	char	   *currency = ApArgCString(fcinfo, 9);
	char	   *title = ApArgCString(fcinfo, 10);
	char	   *context = ApArgCString(fcinfo, 11);
	Jsonb	   *fields = PG_ARGISNULL(12) ? NULL : PG_GETARG_JSONB_P(12);
	char	   *priority = ApArgCString(fcinfo, 15);
	char	   *idem_key = ApArgCString(fcinfo, 17);
	char	  **approvers = NULL;
	int			n_approvers = 0;
	ApprovalsCall call;
	PolicyMatch pm;
	Datum		approvers_datum;
	bool		approvers_null;
	int			required;
	bool		auto_approve = false;
	char	   *existing;
	Datum		result;
	ClaimState	st;

	ApResolveCaller(&call.caller, actor_arg);
	ApRequireRole(call.caller.roleid, AP_ROLE_REQUESTER, "submit claims");

	resource_type = ApRequiredCString(fcinfo, 0, "resource_type");
	resource_id = ApRequiredCString(fcinfo, 1, "resource_id");
	snapshot_hash = ApRequiredCString(fcinfo, 2, "snapshot_hash");
	if (kind == NULL)
		kind = "data_review";
	if (priority == NULL)
		priority = "normal";

	ApCheckNotEmpty("resource_type", resource_type);
	ApCheckNotEmpty("resource_id", resource_id);
	ApCheckNotEmpty("snapshot_hash", snapshot_hash);
	ApCheckNotEmpty("kind", kind);
	ApCheckNotEmpty("tenant", tenant);
	ApCheckNotEmpty("id", id);
	ApCheckNotEmpty("idempotency_key", idem_key);
	ApCheckLength("resource_type", resource_type, AP_MAX_RESOURCE_TYPE);
	ApCheckLength("resource_id", resource_id, AP_MAX_RESOURCE_ID);
	ApCheckLength("snapshot_hash", snapshot_hash, AP_MAX_SNAPSHOT_HASH);
	ApCheckLength("tenant", tenant, AP_MAX_TENANT);
	ApCheckLength("kind", kind, AP_MAX_KIND);
	ApCheckLength("note", note, AP_MAX_NOTE);
	ApCheckLength("id", id, AP_MAX_ID);
	ApCheckLength("currency", currency, AP_MAX_CURRENCY);
	ApCheckLength("title", title, AP_MAX_TITLE);
	ApCheckLength("context", context, AP_MAX_CONTEXT);
	ApCheckLength("idempotency_key", idem_key, AP_MAX_IDEMPOTENCY_KEY);
	ApCheckEnum("priority", priority, priorities);
	CheckFields(fields);
	if (!PG_ARGISNULL(8))
	{
		ApCheckFiniteNumeric("amount", PG_GETARG_NUMERIC(8));
		if (DatumGetBool(DirectFunctionCall2(numeric_lt, PG_GETARG_DATUM(8),
											 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("amount must not be negative")));
	}
	if (!PG_ARGISNULL(13))
	{
		approvers = ApTextArrayToCStrings(PG_GETARG_DATUM(13), &n_approvers);
		ApCheckApprovers(approvers, n_approvers);
	}
	if (!PG_ARGISNULL(14))
		ApCheckRequiredApprovals(PG_GETARG_INT32(14), approvers != NULL, n_approvers);
	if (!PG_ARGISNULL(16) && PG_GETARG_TIMESTAMPTZ(16) <= GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at must be in the future")));

	ApBegin(&call);
	ApRequireTenant(&call.caller, tenant, "submit claims");

	if (id == NULL)
		id = ApNewId("clm_");

	if (idem_key)
	{
		existing = ApIdempotencyLookup("claim", call.caller.actor, idem_key,
									ApTextArrayFromArgs(fcinfo, 17), id);
		if (existing)
		{
			result = ClaimRowDatum(existing);
			ApEnd(&call);
			PG_RETURN_DATUM(result);
		}
	}

	ApPolicyLookup(tenant, resource_type, kind, &pm);
	if (approvers)
	{
		/* rebuilt, so that the route is numbered from 1 whatever bounds were passed */
		approvers_datum = ApCStringArrayDatum(approvers, n_approvers);
		approvers_null = false;
	}
	else
	{
		approvers_datum = pm.approvers;
		approvers_null = pm.approvers_null;
		if (!approvers_null)
			approvers = ApTextArrayToCStrings(approvers_datum, &n_approvers);
	}
	required = PG_ARGISNULL(14) ? pm.required_approvals : PG_GETARG_INT32(14);
	ApCheckRequiredApprovals(required, approvers != NULL, n_approvers);
	if (!pm.auto_approve_null && !PG_ARGISNULL(8) &&
		DatumGetBool(DirectFunctionCall2(numeric_lt, PG_GETARG_DATUM(8),
										 pm.auto_approve_below)))
		auto_approve = true;

	for (int attempt = 0;; attempt++)
	{
		static const ApStmt sql = {
			"INSERT INTO approvals.claims (id, tenant, resource_type, resource_id, kind, "
			"snapshot_hash, status, requester, note, title, context, fields, amount, "
			"currency, priority, approvers, required_approvals, route_position, assignee, "
			"allow_self_approval, on_expiry, expires_in, expires_at, idempotency_key) "
			"VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12, $13, $14, "
			"$15, $16, CASE WHEN $15 IS NULL THEN NULL ELSE 1 END, $15[1], $17, $18, $19, "
			"coalesce($20, now() + $19), $21) ON CONFLICT DO NOTHING",
			21, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, NUMERICOID, TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, BOOLOID, TEXTOID, INTERVALOID, TIMESTAMPTZOID, TEXTOID}
		};
		const char *strs[21] = {id, tenant, resource_type, resource_id, kind,
			snapshot_hash, call.caller.actor, note, title, context, NULL, NULL,
		currency, priority};
		Datum		values[21];
		bool		nulls[21];

		for (int i = 0; i < 14; i++)
		{
			nulls[i] = (strs[i] == NULL);
			values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(strs[i]);
		}
		nulls[10] = (fields == NULL);
		values[10] = fields ? JsonbPGetDatum(fields) : (Datum) 0;
		nulls[11] = PG_ARGISNULL(8);
		values[11] = nulls[11] ? (Datum) 0 : PG_GETARG_DATUM(8);
		nulls[14] = approvers_null;
		values[14] = approvers_datum;
		nulls[15] = false;
		values[15] = Int32GetDatum(required);
		nulls[16] = false;
		values[16] = BoolGetDatum(pm.allow_self_approval);
		nulls[17] = false;
		values[17] = CStringGetTextDatum(pm.on_expiry);
		nulls[18] = pm.expires_in_null;
		values[18] = pm.expires_in;
		nulls[19] = PG_ARGISNULL(16);
		values[19] = nulls[19] ? (Datum) 0 : PG_GETARG_DATUM(16);
		nulls[20] = (idem_key == NULL);
		values[20] = idem_key ? CStringGetTextDatum(idem_key) : (Datum) 0;

		SupersedePending(tenant, resource_type, resource_id, call.caller.actor, id);
		if (ApExec(&sql, values, nulls, 0) == 1)
			break;
		if (ClaimExists(id))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("claim \"%s\" already exists", id),
					 errhint("Omit id to have one generated.")));
		if (attempt >= SUBMIT_RETRIES)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not submit resource \"%s\": concurrent submissions kept conflicting",
							resource_id),
					 errhint("Retry the transaction.")));
	}

	if (!ApClaimLoad(id, &st))
		ApReportNoClaim(id);
	ApClaimEvent(&st, NULL, call.caller.actor, "submitted", NULL, NULL);

	if (auto_approve)
	{
		st.status = "approved";
		st.reviewer = "system";
		st.route_position = 0;
		ApClaimStore(&st, NULL);
		ApClaimEvent(&st, NULL, "system", "auto_approved", "pending",
				   "amount below the policy's auto_approve_below");
		NotifyDecision(&st, "auto_approved", "system");
	}

	result = ClaimRowDatum(id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* ------------------------------------------------------------------------
 * decide
 * ------------------------------------------------------------------------ */

/* approvals.decide(claim_id, outcome, comment, snapshot_hash, actor) */
Datum
approvals_decide(PG_FUNCTION_ARGS)
{
	char	   *claim_id;
	char	   *outcome;
	char	   *comment = ApArgCString(fcinfo, 2);
	char	   *snapshot_hash = ApArgCString(fcinfo, 3);
	char	   *actor_arg = ApArgCString(fcinfo, 4);
	ApprovalsCall call;
	ClaimState	st;
	const char *assignee;
	const char *actor;
	bool		exhausted = false;
	Datum		result;

	ApResolveCaller(&call.caller, actor_arg);
	ApRequireRole(call.caller.roleid, AP_ROLE_REVIEWER, "decide claims");
	claim_id = ApRequiredCString(fcinfo, 0, "claim_id");
	outcome = ApRequiredCString(fcinfo, 1, "outcome");
	ApCheckEnum("outcome", outcome, outcomes);
	ApCheckLength("comment", comment, AP_MAX_COMMENT);
	ApCheckLength("snapshot_hash", snapshot_hash, AP_MAX_SNAPSHOT_HASH);
	actor = call.caller.actor;

	ApBegin(&call);
	if (!ApClaimLoad(claim_id, &st))
		ApReportNoClaim(claim_id);
	ApRequireTenant(&call.caller, st.tenant, "decide claims");
	if (strcmp(st.status, "pending") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("claim \"%s\" is %s; only pending claims can be decided",
						claim_id, st.status)));
	if (st.is_expired)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("claim \"%s\" expired at %s", claim_id,
						timestamptz_to_str(DatumGetTimestampTz(st.expires_at)))));
	if (snapshot_hash && strcmp(snapshot_hash, st.snapshot_hash) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_APPROVALS_STALE_SNAPSHOT),
				 errmsg("stale snapshot: claim \"%s\" was submitted for snapshot \"%s\", not \"%s\"",
						claim_id, st.snapshot_hash, snapshot_hash),
				 errhint("The resource changed since it was submitted; submit it again.")));
	if (strcmp(actor, st.requester) == 0 && !st.allow_self_approval)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" requested claim \"%s\" and cannot decide it", actor, claim_id),
				 errdetail("Four-eyes rule: the requester never decides their own claim unless the policy allows self-approval.")));
	assignee = ClaimAssignee(&st);
	if (assignee && strcmp(actor, assignee) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("claim \"%s\" is assigned to \"%s\", not \"%s\"",
						claim_id, assignee, actor)));

	if (strcmp(outcome, "approved") == 0)
	{
		char	  **by;

		if (ArrayContains(st.approved_by, st.n_approved_by, actor))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("\"%s\" has already approved claim \"%s\"", actor, claim_id),
					 errdetail("Approvals of one claim must come from distinct actors.")));
		by = palloc(sizeof(char *) * (st.n_approved_by + 1));
		memcpy(by, st.approved_by, sizeof(char *) * st.n_approved_by);
		by[st.n_approved_by] = (char *) actor;
		st.approved_by = by;
		st.n_approved_by++;
		st.approval_count++;
		if (st.approval_count >= st.required_approvals)
		{
			st.status = "approved";
			st.route_position = 0;
		}
		else
			exhausted = ApClaimAdvanceRoute(&st);
	}
	else if (strcmp(outcome, "rejected") == 0)
	{
		st.status = "rejected";
		st.route_position = 0;
	}
	else
		exhausted = ApClaimAdvanceRoute(&st);

	st.reviewer = (char *) actor;
	ApClaimStore(&st, NULL);
	ApClaimEvent(&st, NULL, actor, outcome, "pending", comment);
	if (exhausted)
		ApClaimEvent(&st, NULL, actor, "escalated", "pending",
				   "route exhausted; any reviewer may decide");
	NotifyDecision(&st, outcome, actor);

	result = ClaimRowDatum(claim_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* ------------------------------------------------------------------------
 * cancel_claim
 * ------------------------------------------------------------------------ */

/* approvals.cancel_claim(claim_id, comment, actor) */
Datum
approvals_cancel_claim(PG_FUNCTION_ARGS)
{
	char	   *claim_id;
	char	   *comment = ApArgCString(fcinfo, 1);
	char	   *actor_arg = ApArgCString(fcinfo, 2);
	ApprovalsCall call;
	ClaimState	st;
	bool		is_admin;
	Datum		result;

	ApResolveCaller(&call.caller, actor_arg);
	is_admin = ApHasRole(call.caller.roleid, AP_ROLE_ADMIN) ||
		ApHasRole(call.caller.roleid, AP_ROLE_PLATFORM);
	if (!is_admin)
		ApRequireRole(call.caller.roleid, AP_ROLE_REQUESTER, "cancel claims");
	claim_id = ApRequiredCString(fcinfo, 0, "claim_id");
	ApCheckLength("comment", comment, AP_MAX_COMMENT);

	ApBegin(&call);
	if (!ApClaimLoad(claim_id, &st))
		ApReportNoClaim(claim_id);
	ApRequireTenant(&call.caller, st.tenant, "cancel claims");
	if (!is_admin && strcmp(st.requester, call.caller.actor) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" may not cancel claim \"%s\" requested by \"%s\"",
						call.caller.actor, claim_id, st.requester),
				 errhint("Only the requester, an approvals_admin or an approvals_platform member may cancel a claim.")));
	if (strcmp(st.status, "pending") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("claim \"%s\" is %s; only pending claims can be cancelled",
						claim_id, st.status)));

	st.status = "cancelled";
	st.route_position = 0;
	ApClaimStore(&st, NULL);
	ApClaimEvent(&st, NULL, call.caller.actor, "cancelled", "pending", comment);
	NotifyDecision(&st, "cancelled", call.caller.actor);

	result = ClaimRowDatum(claim_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}
