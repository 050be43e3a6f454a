/*
 * inbox.c
 *		inbox: the pending claims waiting for one person by name, directly or
 *		through a delegation, a page at a time.
 *
 *		It reads approvals.inbox_entries, one row per pending claim and person
 *		named on it (claims.named_approvers, the requester left out), keyed by
 *		(actor, rank, expires_key, created_at, claim_id): a page is a range scan
 *		of that key per person (the actor, and each delegator whose active
 *		delegation covers them), merged.  Its cost grows with the page, not
 *		with the number of pending claims.  ApInboxRefresh keeps the entries
 *		equal to the claims' named_approvers in the transaction that changes
 *		them.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_inbox);
PG_FUNCTION_INFO_V1(approvals_inbox_after);
PG_FUNCTION_INFO_V1(approvals_inbox_key);

/* The inbox order of a claim: rank of its priority, deadline (none last), age, id. */
#define INBOX_RANK(c) \
	"CASE " c ".priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 " \
	"ELSE 3 END"

/*
 * Rewrite the inbox entries of these claims from their rows: one entry per
 * person in named_approvers (not the requester) while the claim is pending.
 */
void
ApInboxRefresh(char **claim_ids, int n)
{
	static const ApStmt delete_sql = {
		"DELETE FROM approvals.inbox_entries WHERE claim_id = ANY ($1)",
		1, {TEXTARRAYOID}
	};
	static const ApStmt insert_sql = {
		"INSERT INTO approvals.inbox_entries (actor, rank, expires_key, created_at, claim_id, "
		"tenant, resource_type, amount, requester) "
		"SELECT a.actor, " INBOX_RANK("c") ", coalesce(c.expires_at, 'infinity'), "
		"c.created_at, c.id, c.tenant, c.resource_type, c.amount, c.requester "
		"FROM approvals.claims c, unnest(c.named_approvers) AS a(actor) "
		"WHERE c.id = ANY ($1) AND c.status = 'pending' AND a.actor <> c.requester",
		1, {TEXTARRAYOID}
	};
	Datum		values[1];

	if (n == 0)
		return;
	values[0] = ApCStringArrayDatum(claim_ids, n);
	ApExec(&delete_sql, values, NULL, 0);
	ApExec(&insert_sql, values, NULL, 0);
}

/* The inbox order key of claim `after`, one the caller may see (else P0002). */
static void
InboxKeyOf(const ApprovalsCaller *caller, const char *after, Datum *key)
{
	static const ApStmt sql = {
		"SELECT " INBOX_RANK("c") "::int2, coalesce(c.expires_at, 'infinity'), c.created_at, c.tenant "
		"FROM approvals.claims c WHERE c.id = $1",
		1, {TEXTOID}
	};
	Datum		a[1] = {CStringGetTextDatum(after)};
	bool		isnull;

	if (ApExec(&sql, a, NULL, 1) == 0 || !ApTenantAllowed(caller, ApGetCString(0, 4)))
		ApReportNoClaim(after);
	key[0] = ApGetDatum(0, 1, &isnull);
	key[1] = ApGetDatum(0, 2, &isnull);
	key[2] = ApGetDatum(0, 3, &isnull);
	key[3] = a[0];
}

/*
 * One inbox page of the actor named by argument 0 (page_limit argument 1), in
 * inbox order: the first page when key is NULL, else the page after that key
 * (rank, expires_key, created_at, id).  key_of, when given, is a claim id
 * whose key is looked up once the caller is known.
 */
static Datum
InboxPage(FunctionCallInfo fcinfo, const Datum *key, const char *key_of)
{
	/*
	 * Per person (the actor, each covering delegator): the first page_limit
	 * entries (after the key, for a next page), within the delegation's
	 * scope; merged, one row per claim, the first page_limit of them.  One
	 * generic plan each: an index range scan per person whatever the
	 * statistics (the tenant array only filters what the scan finds).
	 */
#define INBOX_SQL(after) \
		AP_GENERIC_PLAN "WITH p AS (" \
		"  SELECT $1::text AS person, NULL::text AS resource_type, NULL::text AS tenant, " \
		"         NULL::numeric AS max_amount " \
		"  UNION ALL " \
		"  SELECT d.delegator, d.resource_type, d.tenant, d.max_amount " \
		"  FROM approvals.delegations d WHERE d.delegate = $1 AND d.revoked_at IS NULL " \
		"  AND d.valid_from <= now() AND (d.valid_until IS NULL OR d.valid_until > now())), " \
		"k AS (" \
		"  SELECT DISTINCT e.rank, e.expires_key, e.created_at, e.claim_id FROM p " \
		"  CROSS JOIN LATERAL (" \
		"    SELECT i.rank, i.expires_key, i.created_at, i.claim_id " \
		"    FROM approvals.inbox_entries i WHERE i.actor = p.person " after \
		"    AND i.requester <> $1 " \
		"    AND (p.resource_type IS NULL OR i.resource_type = p.resource_type) " \
		"    AND (p.tenant IS NULL OR i.tenant = p.tenant) " \
		"    AND (p.max_amount IS NULL OR i.amount <= p.max_amount) " \
		"    AND (i.tenant IS NULL OR $3 OR i.tenant = ANY ($4)) " \
		"    ORDER BY i.rank, i.expires_key, i.created_at, i.claim_id LIMIT $2) e " \
		"  ORDER BY 1, 2, 3, 4 LIMIT $2) " \
		"SELECT c FROM k JOIN approvals.claims c ON c.id = k.claim_id AND c.status = 'pending' " \
		"ORDER BY k.rank, k.expires_key, k.created_at, k.claim_id"
	static const ApStmt first_sql = {
		INBOX_SQL(""),
		4, {TEXTOID, INT4OID, BOOLOID, TEXTARRAYOID}
	};
	static const ApStmt next_sql = {
		INBOX_SQL("AND (i.rank, i.expires_key, i.created_at, i.claim_id) > ($5, $6, $7, $8) "),
		8, {TEXTOID, INT4OID, BOOLOID, TEXTARRAYOID, INT2OID, TIMESTAMPTZOID, TIMESTAMPTZOID,
			TEXTOID}
	};
	char	   *actor_arg = ApArgCString(fcinfo, 0);
	int			page_limit;
	ApprovalsCall call;
	Datum		values[8];
	int			n;

	ApResolveCaller(&call.caller, actor_arg);
	ApRequireRole(call.caller.roleid, AP_ROLE_REVIEWER, "read an inbox");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("page_limit must not be NULL")));
	page_limit = PG_GETARG_INT32(1);
	if (page_limit < 1 || page_limit > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page_limit is %d; it must be between 1 and 1000", page_limit)));
	InitMaterializedSRF(fcinfo, 0);

	ApBegin(&call);
	values[0] = CStringGetTextDatum(call.caller.actor);
	values[1] = Int32GetDatum(page_limit);
	values[2] = BoolGetDatum(call.caller.sees_all);
	values[3] = ApVisibleTenants(call.caller.roleid);
	if (key_of != NULL)
		InboxKeyOf(&call.caller, key_of, values + 4);
	else if (key != NULL)
		memcpy(values + 4, key, 4 * sizeof(Datum));
	/*
	 * Only an index scan in the key's order: a bitmap scan of every entry of
	 * the person, then a sort, is what a generic plan picks when it guesses
	 * that the filters leave one row (8x slower at 2,000 entries a person).
	 */
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	n = ApExec((key_of || key) ? &next_sql : &first_sql, values, NULL, 0);
	ApPutWholeRows((ReturnSetInfo *) fcinfo->resultinfo, n);
	ApEnd(&call);
	return (Datum) 0;
}

/*
 * approvals.inbox(actor, page_limit, after): the pending claims on which the
 * actor is named now, directly or through an active delegation, in inbox
 * order, the page after claim `after`.
 */
Datum
approvals_inbox(PG_FUNCTION_ARGS)
{
	return InboxPage(fcinfo, NULL, ApArgCString(fcinfo, 2));
}

/*
 * approvals.inbox_after(actor, page_limit, after_rank, after_expires_key,
 * after_created_at, after_id): the page after an inbox order key given
 * whole, as approvals.inbox_key() returns it.  For a router in front of
 * several nodes: the claim that ended the previous page lives on one node,
 * and every node continues from its key.
 */
Datum
approvals_inbox_after(PG_FUNCTION_ARGS)
{
	static const char *const names[4] = {"after_rank", "after_expires_key",
	"after_created_at", "after_id"};
	Datum		key[4];

	for (int i = 0; i < 4; i++)
	{
		if (PG_ARGISNULL(2 + i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be NULL", names[i]),
					 errhint("Pass the four columns approvals.inbox_key() returns for the last claim of the previous page.")));
		key[i] = PG_GETARG_DATUM(2 + i);
	}
	return InboxPage(fcinfo, key, NULL);
}

/*
 * approvals.inbox_key(claim_id, actor): the inbox order key of a claim the
 * caller may see (rank, expires_key, created_at), to page with inbox_after;
 * actor follows the actor rule, as for inbox.
 */
Datum
approvals_inbox_key(PG_FUNCTION_ARGS)
{
	char	   *claim_id = ApArgCString(fcinfo, 0);
	char	   *actor_arg = ApArgCString(fcinfo, 1);
	ApprovalsCall call;
	Datum		key[4];
	bool		nulls[3] = {false, false, false};
	TupleDesc	desc;
	Datum		result;

	ApResolveCaller(&call.caller, actor_arg);
	ApRequireRole(call.caller.roleid, AP_ROLE_REVIEWER, "read an inbox");
	if (claim_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("claim_id must not be NULL")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	ApBegin(&call);
	InboxKeyOf(&call.caller, claim_id, key);
	/* formed in the caller's context while the key's values are still alive */
	result = SPI_datumTransfer(HeapTupleGetDatum(heap_form_tuple(desc, key, nulls)), false, -1);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}
