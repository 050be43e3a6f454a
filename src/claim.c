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
#include "utils/datum.h"
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
	"expires_at, coalesce(expires_at <= now(), false), amount, steps, " \
	"coalesce(current_step, 0), step_approvals, step_abstained, step_escalated, " \
	"named_approvers"
enum ClaimColumn
{
	CC_ID = 1, CC_TENANT, CC_RESOURCE_TYPE, CC_SNAPSHOT_HASH, CC_STATUS, CC_REQUESTER,
	CC_REVIEWER, CC_APPROVERS, CC_REQUIRED_APPROVALS, CC_APPROVAL_COUNT, CC_APPROVED_BY,
	CC_ROUTE_POSITION, CC_ALLOW_SELF_APPROVAL, CC_ON_EXPIRY, CC_EXPIRES_IN, CC_EXPIRES_AT,
	CC_IS_EXPIRED, CC_AMOUNT, CC_STEPS, CC_CURRENT_STEP, CC_STEP_APPROVALS,
	CC_STEP_ABSTAINED, CC_STEP_ESCALATED, CC_NAMED
};

/* ------------------------------------------------------------------------
 * The claim state machine (shared with expire.c)
 * ------------------------------------------------------------------------ */

/* A text[] column as C strings (NULL and {} both give none). */
static char **
ClaimArrayColumn(int row, int col, int *n)
{
	bool		isnull;
	Datum		d = ApGetDatum(row, col, &isnull);

	*n = 0;
	return isnull ? NULL : ApTextArrayToCStrings(d, n);
}

/* Fill st from a row of the last SPI result (CLAIM_STATE_COLUMNS). */
static void
ClaimStateFromRow(ClaimState *st, int row)
{
	bool		isnull;
	Datum		d;

	memset(st, 0, sizeof(*st));
	st->id = ApGetCString(row, CC_ID);
	st->tenant = ApGetCString(row, CC_TENANT);
	st->resource_type = ApGetCString(row, CC_RESOURCE_TYPE);
	st->snapshot_hash = ApGetCString(row, CC_SNAPSHOT_HASH);
	st->status = ApGetCString(row, CC_STATUS);
	st->requester = ApGetCString(row, CC_REQUESTER);
	st->reviewer = ApGetCString(row, CC_REVIEWER);
	st->approvers = ClaimArrayColumn(row, CC_APPROVERS, &st->n_approvers);
	st->required_approvals = DatumGetInt32(ApGetDatum(row, CC_REQUIRED_APPROVALS, &isnull));
	st->approval_count = DatumGetInt32(ApGetDatum(row, CC_APPROVAL_COUNT, &isnull));
	st->approved_by = ClaimArrayColumn(row, CC_APPROVED_BY, &st->n_approved_by);
	st->route_position = DatumGetInt32(ApGetDatum(row, CC_ROUTE_POSITION, &isnull));
	st->allow_self_approval = DatumGetBool(ApGetDatum(row, CC_ALLOW_SELF_APPROVAL, &isnull));
	st->on_expiry = ApGetCString(row, CC_ON_EXPIRY);
	st->expires_in = ApGetDatum(row, CC_EXPIRES_IN, &st->expires_in_null);
	if (!st->expires_in_null)
		st->expires_in = datumCopy(st->expires_in, false, sizeof(Interval));
	st->expires_at = ApGetDatum(row, CC_EXPIRES_AT, &st->expires_at_null);
	st->loaded_expires_at = st->expires_at;
	st->loaded_expires_at_null = st->expires_at_null;
	st->is_expired = DatumGetBool(ApGetDatum(row, CC_IS_EXPIRED, &isnull));
	st->amount = ApGetDatum(row, CC_AMOUNT, &st->amount_null);
	if (!st->amount_null)
		st->amount = datumCopy(st->amount, false, -1);
	d = ApGetDatum(row, CC_STEPS, &isnull);
	if (!isnull)
		st->steps = ApStepsParse(DatumGetJsonbPCopy(d), &st->n_steps);
	st->current_step = DatumGetInt32(ApGetDatum(row, CC_CURRENT_STEP, &isnull));
	st->step_approvals = DatumGetInt32(ApGetDatum(row, CC_STEP_APPROVALS, &isnull));
	st->step_abstained = ClaimArrayColumn(row, CC_STEP_ABSTAINED, &st->n_step_abstained);
	st->step_escalated = DatumGetBool(ApGetDatum(row, CC_STEP_ESCALATED, &isnull));
	st->named = ClaimArrayColumn(row, CC_NAMED, &st->n_named);
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

/* The current assignee of the claim's route, or NULL. */
const char *
ApClaimAssignee(const ClaimState *st)
{
	if (st->approvers == NULL || st->route_position < 1 ||
		st->route_position > st->n_approvers)
		return NULL;
	return st->approvers[st->route_position - 1];
}

/* Is value one of items? */
bool
ApStringIn(char **items, int n, const char *value)
{
	for (int i = 0; i < n; i++)
		if (items[i] && strcmp(items[i], value) == 0)
			return true;
	return false;
}

/*
 * Who a pending claim waits for by name (named_approvers): the current
 * step's approvers who have neither approved the claim nor abstained in the
 * step, or the route's assignee.  None when decided, escalated, or open to
 * any reviewer.
 */
char	  **
ApClaimNamed(const ClaimState *st, int *n)
{
	const ApStep *step = ApStepCurrent(st);
	const char *assignee = ApClaimAssignee(st);
	char	  **named;

	*n = 0;
	if (strcmp(st->status, "pending") != 0)
		return NULL;
	if (step != NULL)
	{
		if (st->step_escalated)
			return NULL;
		named = palloc(sizeof(char *) * step->n_approvers);
		for (int i = 0; i < step->n_approvers; i++)
			if (ApStepIsApprover(st, step->approvers[i]))
				named[(*n)++] = step->approvers[i];
		return named;
	}
	if (assignee == NULL)
		return NULL;
	named = palloc(sizeof(char *));
	named[(*n)++] = (char *) assignee;
	return named;
}

/* Do two lists of names hold the same names in the same order? */
static bool
SameNames(char **a, int na, char **b, int nb)
{
	if (na != nb)
		return false;
	for (int i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Keep column col of row 0 of the last result, the whole claim row, as st->row. */
static void
ClaimKeepRow(ClaimState *st, int col)
{
	bool		isnull;
	Datum		d = ApGetDatum(0, col, &isnull);

	st->row = isnull ? (Datum) 0 : SPI_datumTransfer(d, false, -1);
	st->handler_ran = false;
}

/*
 * Write the mutable part of st back to the claim row, and the inbox entries
 * when who it waits for (or its deadline, part of their order) changed.
 */
static void
ClaimStore(ClaimState *st)
{
	static const ApStmt sql = {
		"UPDATE approvals.claims c SET status = $2, reviewer = $3, approval_count = $4, "
		"approved_by = $5, route_position = nullif($6, 0), assignee = $7, "
		"expires_at = $8, "
		"decided_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END, "
		"current_step = nullif($9, 0), step_approvals = $10, step_abstained = $11, "
		"step_escalated = $12, named_approvers = $13, required_approvals = $14, "
		"updated_at = now() WHERE id = $1 RETURNING c",
		14, {TEXTOID, TEXTOID, TEXTOID, INT4OID, TEXTARRAYOID, INT4OID, TEXTOID, TIMESTAMPTZOID,
			INT4OID, INT4OID, TEXTARRAYOID, BOOLOID, TEXTARRAYOID, INT4OID}
	};
	Datum		values[14];
	bool		nulls[14] = {false};
	const char *assignee = ApClaimAssignee(st);
	int			n_named;
	char	  **named = ApClaimNamed(st, &n_named);
	bool		inbox_changed;

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
	values[8] = Int32GetDatum(st->n_steps > 0 ? st->current_step : 0);
	values[9] = Int32GetDatum(st->step_approvals);
	values[10] = ApCStringArrayDatum(st->step_abstained, st->n_step_abstained);
	values[11] = BoolGetDatum(st->step_escalated);
	nulls[12] = (n_named == 0);
	values[12] = nulls[12] ? (Datum) 0 : ApCStringArrayDatum(named, n_named);
	values[13] = Int32GetDatum(st->required_approvals);

	if (ApExec(&sql, values, nulls, 0) != 1)
		elog(ERROR, "claim \"%s\" vanished while locked", st->id);
	ClaimKeepRow(st, 1);

	inbox_changed = !SameNames(named, n_named, st->named, st->n_named) ||
		(n_named > 0 &&
		 (st->expires_at_null != st->loaded_expires_at_null ||
		  (!st->expires_at_null &&
		   DatumGetTimestampTz(st->expires_at) != DatumGetTimestampTz(st->loaded_expires_at))));
	if (inbox_changed)
	{
		char	   *id = st->id;

		ApInboxRefresh(&id, 1);
	}
	/* what is stored now is what the next change compares with */
	st->named = named;
	st->n_named = n_named;
	st->loaded_expires_at = st->expires_at;
	st->loaded_expires_at_null = st->expires_at_null;
}

/*
 * Append one audit event for a claim and run the resource type's handler
 * with it.  Returns the event id.
 */
int64
ApClaimEvent(ClaimState *st, const char *batch_id, const char *actor,
		   const char *action, const char *from_status, const char *comment)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action, "
		"from_status, to_status, comment, snapshot_hash, on_behalf_of) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
		10, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	};
	const char *cols[10] = {st->id, batch_id, st->tenant, actor, action,
	from_status, st->status, comment, st->snapshot_hash, st->on_behalf_of};
	Datum		values[10];
	bool		nulls[10];
	bool		isnull;
	int64		event_id;

	for (int i = 0; i < 10; i++)
	{
		nulls[i] = (cols[i] == NULL);
		values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(cols[i]);
	}
	ApExec(&sql, values, nulls, 1);
	event_id = DatumGetInt64(ApGetDatum(0, 1, &isnull));
	if (ApRunHandler(st->resource_type, st->id, event_id))
		st->handler_ran = true;
	return event_id;
}

/* Queue an event to append after the state change's own (ApClaimCommit). */
void
ApClaimFollowUp(ClaimState *st, const char *action, char *comment)
{
	if (st->n_followups >= AP_MAX_FOLLOWUPS)
		elog(ERROR, "claim \"%s\": too many events for one state change", st->id);
	st->followups[st->n_followups].action = action;
	st->followups[st->n_followups].comment = comment;
	st->n_followups++;
}

/*
 * Finish a state change: store the claim, append its event, then the
 * follow-up events it queued (step_completed, escalated), each running the
 * handler.
 */
void
ApClaimCommit(ClaimState *st, const char *actor, const char *action,
			  const char *from_status, const char *comment)
{
	ClaimStore(st);
	ApClaimEvent(st, NULL, actor, action, from_status, comment);
	for (int i = 0; i < st->n_followups; i++)
		ApClaimEvent(st, NULL, actor, st->followups[i].action, "pending",
					 st->followups[i].comment);
	st->n_followups = 0;
}

static Datum ClaimRowDatum(const char *claim_id);

/*
 * The claim row as a composite Datum in the caller's memory context: the row
 * as last stored, unless a handler ran since (it may have changed the claim
 * through the API) or it is not known; then read again.
 */
static Datum
ClaimResult(const ClaimState *st)
{
	if (st->row != (Datum) 0 && !st->handler_ran)
		return st->row;
	return ClaimRowDatum(st->id);
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

/* Point an idempotency key at another object id (a generated id drawn again). */
static void
IdempotencyRebind(const char *scope, const char *requester, const char *key,
				  const char *object_id)
{
	static const ApStmt sql = {
		"UPDATE approvals.idempotency_keys SET object_id = $4 "
		"WHERE scope = $1 AND requester = $2 AND key = $3",
		4, {TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		values[4];

	values[0] = CStringGetTextDatum(scope);
	values[1] = CStringGetTextDatum(requester);
	values[2] = CStringGetTextDatum(key);
	values[3] = CStringGetTextDatum(object_id);
	ApExec(&sql, values, NULL, 0);
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
	initStringInfo(&comment);
	appendStringInfo(&comment, "superseded by %s", new_id);
	ApClaimCommit(&st, actor, "superseded", "pending", comment.data);
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
	bool		id_generated;
	char	   *currency = ApArgCString(fcinfo, 9);
	char	   *title = ApArgCString(fcinfo, 10);
	char	   *context = ApArgCString(fcinfo, 11);
	Jsonb	   *fields = PG_ARGISNULL(12) ? NULL : PG_GETARG_JSONB_P(12);
	char	   *priority = ApArgCString(fcinfo, 15);
	char	   *idem_key = ApArgCString(fcinfo, 17);
	Jsonb	   *steps = ApArgIsNull(fcinfo, 18) ? NULL : PG_GETARG_JSONB_P(18);
	Datum		steps_datum;
	bool		steps_null;
	int			n_steps = 0;
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
		approvers = ApApproversArg(PG_GETARG_DATUM(13), &n_approvers);
	ApStepsCheckArgs(steps != NULL, approvers != NULL);
	if (steps)
	{
		ApStepsParse(steps, &n_steps);
		if (!PG_ARGISNULL(14))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("give required approvals per step, not required_approvals, with steps")));
	}
	if (!PG_ARGISNULL(14))
		ApCheckRequiredApprovals(PG_GETARG_INT32(14), approvers != NULL, n_approvers);
	if (!PG_ARGISNULL(16) && PG_GETARG_TIMESTAMPTZ(16) <= GetCurrentTransactionStartTimestamp())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expires_at must be in the future")));

	ApBegin(&call);
	ApRequireTenant(&call.caller, tenant, "submit claims");

	id_generated = (id == NULL);
	if (id_generated)
		id = ApNewId("clm_", tenant);

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
	/* the claim's own route or steps, else the policy's */
	approvers_null = steps_null = true;
	approvers_datum = steps_datum = (Datum) 0;
	if (approvers)
	{
		/* rebuilt, so that the route is numbered from 1 whatever bounds were passed */
		approvers_datum = ApCStringArrayDatum(approvers, n_approvers);
		approvers_null = false;
	}
	else if (steps)
	{
		steps_datum = JsonbPGetDatum(steps);
		steps_null = false;
	}
	else if (!pm.approvers_null)
	{
		approvers_datum = pm.approvers;
		approvers_null = false;
		approvers = ApTextArrayToCStrings(approvers_datum, &n_approvers);
	}
	else if (!pm.steps_null)
	{
		steps_datum = pm.steps;
		steps_null = false;
	}
	required = PG_ARGISNULL(14) ? pm.required_approvals : PG_GETARG_INT32(14);
	if (!steps_null && !PG_ARGISNULL(14))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the policy of this claim has steps; required_approvals does not apply"),
				 errhint("Each step of the policy sets its own \"required\".")));
	if (!steps_null)
		required = 1;			/* set from the steps that apply once the claim is loaded */
	ApCheckRequiredApprovals(required, approvers != NULL, n_approvers);
	if (!pm.auto_approve_null && !PG_ARGISNULL(8) &&
		DatumGetBool(DirectFunctionCall2(numeric_lt, PG_GETARG_DATUM(8),
										 pm.auto_approve_below)))
		auto_approve = true;

	for (int attempt = 0;; attempt++)
	{
		static const ApStmt sql = {
			"INSERT INTO approvals.claims AS c (id, tenant, resource_type, resource_id, kind, "
			"snapshot_hash, status, requester, note, title, context, fields, amount, "
			"currency, priority, approvers, required_approvals, "
			"allow_self_approval, on_expiry, expires_in, expires_at, idempotency_key, "
			"steps, policy_id, policy_version) "
			"VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12, $13, $14, "
			"$15, $16, $17, $18, $19, coalesce($20, now() + $19), $21, $22, $23, $24) "
			"ON CONFLICT DO NOTHING RETURNING " CLAIM_STATE_COLUMNS ", c",
			24, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, NUMERICOID, TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, BOOLOID, TEXTOID, INTERVALOID, TIMESTAMPTZOID, TEXTOID, JSONBOID, INT8OID, INT4OID}
		};
		const char *strs[24] = {id, tenant, resource_type, resource_id, kind,
			snapshot_hash, call.caller.actor, note, title, context, NULL, NULL,
		currency, priority};
		Datum		values[24];
		bool		nulls[24];
		bool		taken;

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
		nulls[21] = steps_null;
		values[21] = steps_datum;
		nulls[22] = nulls[23] = !pm.found;
		values[22] = Int64GetDatum(pm.id);
		values[23] = Int32GetDatum(pm.version);

		SupersedePending(tenant, resource_type, resource_id, call.caller.actor, id);
		if (ApExec(&sql, values, nulls, 0) == 1)
		{
			/* the new claim's state and row, as inserted */
			ClaimStateFromRow(&st, 0);
			ClaimKeepRow(&st, CC_NAMED + 1);
			break;
		}
		taken = ClaimExists(id);
		if (taken && id_generated && attempt < SUBMIT_RETRIES)
		{
			/* 56 random bits met an id of the tenant's key: draw again */
			id = ApNewId("clm_", tenant);
			if (idem_key)
				IdempotencyRebind("claim", call.caller.actor, idem_key, id);
			continue;
		}
		if (taken)
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

	if (st.approvers || st.n_steps > 0)
	{
		/* a route starts at its first approver, steps at the first that applies */
		if (st.approvers)
			st.route_position = 1;
		else
		{
			st.required_approvals = ApStepsRequired(&st);
			ApStepsEnter(&st, 0);
		}
		ApClaimCommit(&st, call.caller.actor, "submitted", NULL, NULL);
	}
	else
		ApClaimEvent(&st, NULL, call.caller.actor, "submitted", NULL, NULL);

	if (auto_approve)
	{
		st.status = "approved";
		st.reviewer = "system";
		st.route_position = 0;
		st.current_step = 0;
		ApClaimCommit(&st, "system", "auto_approved", "pending",
					  "amount below the policy's auto_approve_below");
		NotifyDecision(&st, "auto_approved", "system");
	}

	result = ClaimResult(&st);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* ------------------------------------------------------------------------
 * decide
 * ------------------------------------------------------------------------ */

/* Add names to a list of names (a new array; the old one may be shared). */
static void
AppendNames(char ***items, int *n, const char *a, const char *b)
{
	char	  **out = palloc(sizeof(char *) * (*n + 2));

	if (*n > 0)
		memcpy(out, *items, sizeof(char *) * *n);
	out[(*n)++] = (char *) a;
	if (b != NULL && strcmp(a, b) != 0)
		out[(*n)++] = (char *) b;
	*items = out;
}

/*
 * approvals.decide(claim_id, outcome, comment, snapshot_hash, actor,
 * on_behalf_of): one decision by the actor, for themselves or, through a
 * delegation, for a delegator (the principal: whose approval it counts as).
 */
Datum
approvals_decide(PG_FUNCTION_ARGS)
{
	char	   *claim_id;
	char	   *outcome;
	char	   *comment = ApArgCString(fcinfo, 2);
	char	   *snapshot_hash = ApArgCString(fcinfo, 3);
	char	   *actor_arg = ApArgCString(fcinfo, 4);
	char	   *on_behalf_of = ApArgCString(fcinfo, 5);
	ApprovalsCall call;
	ClaimState	st;
	const char *actor;
	const char *principal;
	Datum		result;

	ApResolveCaller(&call.caller, actor_arg);
	ApRequireRole(call.caller.roleid, AP_ROLE_REVIEWER, "decide claims");
	claim_id = ApRequiredCString(fcinfo, 0, "claim_id");
	outcome = ApRequiredCString(fcinfo, 1, "outcome");
	ApCheckEnum("outcome", outcome, outcomes);
	ApCheckLength("comment", comment, AP_MAX_COMMENT);
	ApCheckLength("snapshot_hash", snapshot_hash, AP_MAX_SNAPSHOT_HASH);
	ApCheckNotEmpty("on_behalf_of", on_behalf_of);
	ApCheckLength("on_behalf_of", on_behalf_of, AP_MAX_ACTOR);
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

	/* the actor's own right, or a delegation's (42501 / 22023 when neither or ambiguous) */
	principal = ApDelegationResolve(&st, actor, on_behalf_of);
	st.on_behalf_of = strcmp(principal, actor) != 0 ? principal : NULL;

	if (strcmp(outcome, "approved") == 0)
	{
		const char *who = ApStringIn(st.approved_by, st.n_approved_by, principal) ? principal :
			ApStringIn(st.approved_by, st.n_approved_by, actor) ? actor : NULL;

		if (who)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("\"%s\" has already approved claim \"%s\"", who, claim_id),
					 errdetail("Approvals of one claim must come from distinct actors; an approval through a delegation counts for the delegator and the delegate.")));
		AppendNames(&st.approved_by, &st.n_approved_by, principal, actor);
		st.approval_count++;
		if (ApStepCurrent(&st))
			ApStepsApprove(&st);
		else if (st.approval_count >= st.required_approvals)
		{
			st.status = "approved";
			st.route_position = 0;
		}
		else if (ApClaimAdvanceRoute(&st))
			ApClaimFollowUp(&st, "escalated", "route exhausted; any reviewer may decide");
	}
	else if (strcmp(outcome, "rejected") == 0)
	{
		st.status = "rejected";
		st.route_position = 0;
	}
	else if (ApStepCurrent(&st))
		ApStepsAbstain(&st, principal);
	else if (ApClaimAdvanceRoute(&st))
		ApClaimFollowUp(&st, "escalated", "route exhausted; any reviewer may decide");

	st.reviewer = (char *) actor;
	ApClaimCommit(&st, actor, outcome, "pending", comment);
	NotifyDecision(&st, outcome, actor);

	result = ClaimResult(&st);
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
	ApClaimCommit(&st, call.caller.actor, "cancelled", "pending", comment);
	NotifyDecision(&st, "cancelled", call.caller.actor);

	result = ClaimResult(&st);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}
