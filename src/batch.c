/*
 * batch.c
 *		Bulk batches: create, amend, confirm, process, cancel with revert,
 *		results, listing, waiting, purging, and the one chunk processor that
 *		process_batch, run_queued and the background worker all use.
 *
 * A chunk is processed with a handful of set-based statements: lock the
 * chunk's pending claims in id order (SKIP LOCKED, retried with backoff),
 * classify the rest, then update the claims and append their events in one
 * statement, write the items' results in one statement and the batch's
 * counters in one more.  Handlers run per claim; only a group whose handler
 * raised is retried in subtransactions, split in halves until the bad claim
 * fails alone, so a chunk never needs more than a few dozen subtransactions.
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "storage/lock.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_create_batch);
PG_FUNCTION_INFO_V1(approvals_update_batch);
PG_FUNCTION_INFO_V1(approvals_start_batch);
PG_FUNCTION_INFO_V1(approvals_process_batch);
PG_FUNCTION_INFO_V1(approvals_cancel_batch);
PG_FUNCTION_INFO_V1(approvals_batch_results);
PG_FUNCTION_INFO_V1(approvals_list_batches);
PG_FUNCTION_INFO_V1(approvals_get_batch);
PG_FUNCTION_INFO_V1(approvals_wait_batch);
PG_FUNCTION_INFO_V1(approvals_run_queued);
PG_FUNCTION_INFO_V1(approvals_purge_batches);

static const char *const batch_actions[] = {"approve", "reject", NULL};
static const char *const threshold_actions[] = {"rollback", "continue", NULL};
static const char *const batch_statuses[] = {"pending", "queued", "processing",
"completed", "failed", "cancelled", NULL};

/* Item error texts (API.md section 4) */
#define ERR_NOT_FOUND		"Claim not found"
#define ERR_PROCESSED		"Claim already processed"
#define ERR_TENANT			"Claim belongs to another tenant"
#define ERR_REQUESTER		"Requester cannot decide own claim"
#define ERR_EXPIRED			"Claim expired"
#define ERR_LOCKED			"Claim is locked by another transaction"

/* Lock retries for claims held by other transactions (auto_retry) */
#define LOCK_RETRIES		5
/* Advisory lock tag field 4 of the batch queue lock (pg_locks.objsubid) */
#define AP_BATCH_LOCK_SPACE	0x4150
/* A batch whose worker crashed this many times is quarantined */
#define MAX_ATTEMPTS		3

/* The batch row, as far as processing needs it. */
typedef struct BatchInfo
{
	char	   *id;
	char	   *tenant;
	char	   *coordinator;
	char	   *comment;
	char	   *action;			/* approve | reject */
	char	   *decision;		/* approved | rejected */
	char	   *status;
	int			total_claims;
	int			failed_count;
	bool		has_max_failures;
	int			max_failures;
	bool		has_max_ratio;
	float4		max_ratio;
	bool		rollback;		/* on_threshold = rollback */
	bool		auto_retry;
	int			next_position;
	int			attempts;
	int			worker_pid;
	Oid			created_by;		/* the role that created it (its owner) */
} BatchInfo;

#define BATCH_COLUMNS \
	"id, tenant, coordinator, comment, action, status, total_claims, failed_count, " \
	"max_failures, max_failure_ratio, on_threshold, auto_retry, next_position, attempts, " \
	"coalesce(worker_pid, 0), created_by"

/* ------------------------------------------------------------------------
 * Loading batches
 * ------------------------------------------------------------------------ */

static void
BatchFromRow(BatchInfo *bi, int row)
{
	bool		isnull;
	Datum		d;

	bi->id = ApGetCString(row, 1);
	bi->tenant = ApGetCString(row, 2);
	bi->coordinator = ApGetCString(row, 3);
	bi->comment = ApGetCString(row, 4);
	bi->action = ApGetCString(row, 5);
	bi->decision = strcmp(bi->action, "approve") == 0 ? "approved" : "rejected";
	bi->status = ApGetCString(row, 6);
	bi->total_claims = DatumGetInt32(ApGetDatum(row, 7, &isnull));
	bi->failed_count = DatumGetInt32(ApGetDatum(row, 8, &isnull));
	d = ApGetDatum(row, 9, &isnull);
	bi->has_max_failures = !isnull;
	bi->max_failures = isnull ? 0 : DatumGetInt32(d);
	d = ApGetDatum(row, 10, &isnull);
	bi->has_max_ratio = !isnull;
	bi->max_ratio = isnull ? 0 : DatumGetFloat4(d);
	bi->rollback = strcmp(ApGetCString(row, 11), "rollback") == 0;
	bi->auto_retry = DatumGetBool(ApGetDatum(row, 12, &isnull));
	bi->next_position = DatumGetInt32(ApGetDatum(row, 13, &isnull));
	bi->attempts = DatumGetInt32(ApGetDatum(row, 14, &isnull));
	bi->worker_pid = DatumGetInt32(ApGetDatum(row, 15, &isnull));
	bi->created_by = DatumGetObjectId(ApGetDatum(row, 16, &isnull));
}

/*
 * Queue fairly for a batch: a transaction-level heavyweight lock on its id,
 * taken before the row lock by every step that changes the batch.  Waiters
 * on a row lock are not served in order, so without it a cancel waiting for
 * the current chunk could lose the row to the next chunk again and again;
 * the lock manager grants this lock first come, first served.
 */
static void
BatchQueueTag(const char *batch_id, LOCKTAG *tag)
{
	uint64		h = DatumGetUInt64(hash_any_extended((const unsigned char *) batch_id,
													 strlen(batch_id), 0));

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 AP_BATCH_LOCK_SPACE);
}

static void
BatchQueueLock(const char *batch_id)
{
	LOCKTAG		tag;

	BatchQueueTag(batch_id, &tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/* The same lock, only if nobody holds or awaits it. */
static bool
BatchQueueLockConditional(const char *batch_id)
{
	LOCKTAG		tag;

	BatchQueueTag(batch_id, &tag);
	return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

/* Load (and with lock, lock) a batch; false when it does not exist. */
static bool
BatchLoad(const char *batch_id, bool lock, BatchInfo *bi)
{
	static const char *sql_lock =
		"SELECT " BATCH_COLUMNS " FROM approvals.batches WHERE id = $1 FOR UPDATE";
	static const char *sql_plain =
		"SELECT " BATCH_COLUMNS " FROM approvals.batches WHERE id = $1";
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};

	if (lock)
		BatchQueueLock(batch_id);
	if (ApExec(lock ? sql_lock : sql_plain, 1, types, values, NULL, 1) == 0)
		return false;
	BatchFromRow(bi, 0);
	return true;
}

/* Load a batch the caller may see, or raise P0002 / 42501. */
static void
BatchLoadVisible(const ApprovalsCaller *caller, const char *batch_id, bool lock,
				 BatchInfo *bi, const char *what)
{
	if (!BatchLoad(batch_id, lock, bi))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("batch \"%s\" does not exist", batch_id)));
	ApRequireTenant(caller, bi->tenant, what);
}

/*
 * 42501 unless the caller may change the batch: the role that created it (or
 * a member of that role), approvals_platform or approvals_admin.  Processing
 * acts as the batch's coordinator, so letting any coordinator amend or run
 * another's batch would let them decide claims in someone else's name.
 */
static void
BatchRequireOwner(const ApprovalsCaller *caller, const BatchInfo *bi, const char *what)
{
	if (caller->sees_all || ApRoleHasPrivsOf(caller->roleid, bi->created_by))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to %s batch \"%s\"", what, bi->id),
			 errdetail("The batch belongs to coordinator \"%s\".", bi->coordinator),
			 errhint("Only the role that created a batch, approvals_platform or approvals_admin may change it.")));
}

/*
 * Begin a batch function's work: SPI and the owner's identity (ApBegin), the
 * batch loaded (and locked when lock) if the caller may see it, and, unless
 * owner_what is NULL, a check that the caller may change it.
 */
static void
BatchOpen(ApprovalsCall *call, const char *batch_id, bool lock, BatchInfo *bi,
		  const char *what, const char *owner_what)
{
	ApBegin(call);
	BatchLoadVisible(&call->caller, batch_id, lock, bi, what);
	if (owner_what)
		BatchRequireOwner(&call->caller, bi, owner_what);
}

/* The batch row as a composite Datum in the caller's memory context. */
static Datum
BatchRowDatum(const char *batch_id)
{
	static const char *sql = "SELECT b FROM approvals.batches b WHERE id = $1";
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};
	bool		isnull;

	if (ApExec(sql, 1, types, values, NULL, 1) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("batch \"%s\" does not exist", batch_id)));
	return SPI_datumTransfer(ApGetDatum(0, 1, &isnull), false, -1);
}

/* 55000 naming the batch, its status and what was attempted. */
static void
ReportBatchState(const BatchInfo *bi, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("batch \"%s\" is %s; cannot %s it", bi->id, bi->status, what)));
}

/* NOTIFY approvals about a batch that completed, failed or was cancelled. */
static void
NotifyBatch(const char *batch_id)
{
	static const char *sql =
		"SELECT status, total_claims, processed_count, approved_count, rejected_count, "
		"failed_count, reverted_count FROM approvals.batches WHERE id = $1";
	static const char *const counters[] = {"total_claims", "processed_count",
		"approved_count", "rejected_count", "failed_count", "reverted_count"};
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};
	StringInfoData buf;

	if (ApExec(sql, 1, types, values, NULL, 1) != 1)
		return;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	ApJsonAppendPair(&buf, "batch_id", batch_id);
	ApJsonAppendPair(&buf, "status", ApGetCString(0, 1));
	for (int i = 0; i < 6; i++)
	{
		appendStringInfoChar(&buf, ',');
		escape_json(&buf, counters[i]);
		appendStringInfo(&buf, ":%s", ApGetCString(0, i + 2));
	}
	appendStringInfoChar(&buf, '}');
	ApNotify(buf.data);
}

/* ------------------------------------------------------------------------
 * Claim id lists
 * ------------------------------------------------------------------------ */

static int
CompareCStrings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Validate a list of claim ids: no NULLs, no empty ids, no duplicates, and
 * (with the ids already in the batch) at most approvals.max_batch_claims.
 * Returns the ids sorted (a copy).
 */
static char **
CheckClaimIds(const char *argname, char **ids, int n, int already, bool allow_empty)
{
	char	  **sorted;

	if (n == 0 && !allow_empty)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	if ((int64) n + already > ap_max_batch_claims)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a batch of %lld claims is over the limit of %d",
						(long long) n + already, ap_max_batch_claims),
				 errhint("The limit is the setting approvals.max_batch_claims.")));
	for (int i = 0; i < n; i++)
	{
		if (ids[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain NULL (element %d)", argname, i + 1)));
		if (ids[i][0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain an empty id (element %d)", argname, i + 1)));
	}
	sorted = palloc(sizeof(char *) * Max(n, 1));
	memcpy(sorted, ids, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), CompareCStrings);
	for (int i = 1; i < n; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s lists claim \"%s\" more than once", argname, sorted[i])));
	return sorted;
}

/* Append ids to a batch's items after position offset. */
static void
InsertItems(const char *batch_id, Datum ids, int offset)
{
	static const char *sql =
		"INSERT INTO approvals.batch_items (batch_id, position, claim_id) "
		"SELECT $1, $3 + u.ord::integer, u.id "
		"FROM pg_catalog.unnest($2::text[]) WITH ORDINALITY AS u(id, ord)";
	Oid			types[3] = {TEXTOID, TEXTARRAYOID, INT4OID};
	Datum		values[3] = {CStringGetTextDatum(batch_id), ids, Int32GetDatum(offset)};

	ApExec(sql, 3, types, values, NULL, 0);
}

/*
 * Recompute a batch's total_claims and total_amount from its items (amounts
 * of the batch's own tenant only: another tenant's claim will fail, and its
 * amount is not the coordinator's to see).
 */
static void
RecountBatch(const char *batch_id, const char *tenant)
{
	static const char *items_sql =
		"SELECT pg_catalog.count(*)::integer, "
		"coalesce(pg_catalog.array_agg(claim_id), '{}') "
		"FROM approvals.batch_items WHERE batch_id = $1";
	static const char *sum_sql =
		"SELECT coalesce(pg_catalog.sum(amount), 0) FROM approvals.claims "
		"WHERE id = ANY ($1) AND tenant IS NOT DISTINCT FROM $2";
	static const char *update_sql =
		"UPDATE approvals.batches SET total_claims = $2, total_amount = $3, "
		"updated_at = now() WHERE id = $1";
	Oid			types[3] = {TEXTOID, INT4OID, NUMERICOID};
	Oid			sum_types[2] = {TEXTARRAYOID, TEXTOID};
	Datum		values[3];
	Datum		sum_values[2];
	bool		sum_nulls[2] = {false, tenant == NULL};
	bool		isnull;

	values[0] = CStringGetTextDatum(batch_id);
	ApExec(items_sql, 1, types, values, NULL, 1);
	values[1] = ApGetDatum(0, 1, &isnull);
	sum_values[0] = ApGetDatum(0, 2, &isnull);
	sum_values[1] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	ApExec(sum_sql, 2, sum_types, sum_values, sum_nulls, 1);
	values[2] = ApGetDatum(0, 1, &isnull);
	ApExec(update_sql, 3, types, values, NULL, 0);
}

/* ------------------------------------------------------------------------
 * create_batch, update_batch, start_batch
 * ------------------------------------------------------------------------ */

/* approvals.create_batch(...) */
Datum
approvals_create_batch(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"INSERT INTO approvals.batches (id, tenant, coordinator, comment, action, status, "
		"max_failures, max_failure_ratio, on_threshold, auto_retry, idempotency_key, "
		"created_by, queued_at) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
		"CASE WHEN $6 = 'queued' THEN now() END)";
	Oid			types[12] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	INT4OID, FLOAT4OID, TEXTOID, BOOLOID, TEXTOID, OIDOID};
	Datum		values[12];
	bool		nulls[12];
	char	   *comment = ApArgCString(fcinfo, 2);
	char	   *action = PG_ARGISNULL(3) ? "approve" : ApArgCString(fcinfo, 3);
	bool		start = PG_ARGISNULL(4) ? true : PG_GETARG_BOOL(4);
	char	   *tenant = ApArgCString(fcinfo, 5);
	char	   *on_threshold = PG_ARGISNULL(8) ? "rollback" : ApArgCString(fcinfo, 8);
	bool		auto_retry = PG_ARGISNULL(9) ? true : PG_GETARG_BOOL(9);
	char	   *idem_key = ApArgCString(fcinfo, 10);
	char	  **ids;
	int			n;
	char	   *id;
	ApprovalsCall call;
	Datum		result;

	ApResolveCaller(&call.caller, ApArgCString(fcinfo, 1));
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "create batches");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("claim_ids must not be null")));
	ApCheckEnum("action", action, batch_actions);
	ApCheckEnum("on_threshold", on_threshold, threshold_actions);
	ApCheckLength("comment", comment, AP_MAX_COMMENT);
	ApCheckNotEmpty("tenant", tenant);
	ApCheckLength("tenant", tenant, AP_MAX_TENANT);
	ApCheckNotEmpty("idempotency_key", idem_key);
	ApCheckLength("idempotency_key", idem_key, AP_MAX_IDEMPOTENCY_KEY);
	if (!PG_ARGISNULL(6) && PG_GETARG_INT32(6) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_failures is %d; it must not be negative", PG_GETARG_INT32(6))));
	if (!PG_ARGISNULL(7) &&
		!(PG_GETARG_FLOAT4(7) >= 0 && PG_GETARG_FLOAT4(7) <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_failure_ratio is %g; it must be between 0 and 1",
						(double) PG_GETARG_FLOAT4(7))));
	ids = ApTextArrayToCStrings(PG_GETARG_DATUM(0), &n);
	(void) CheckClaimIds("claim_ids", ids, n, 0, false);

	ApBegin(&call);
	ApRequireTenant(&call.caller, tenant, "create batches");
	id = ApNewId("bat_");
	if (idem_key)
	{
		char	   *existing = ApIdempotencyLookup("batch", call.caller.actor, idem_key,
												 ApTextArrayFromArgs(fcinfo, 10), id);

		if (existing)
		{
			result = BatchRowDatum(existing);
			ApEnd(&call);
			PG_RETURN_DATUM(result);
		}
	}

	{
		const char *strs[6] = {id, tenant, call.caller.actor, comment, action,
		start ? "queued" : "pending"};

		for (int i = 0; i < 6; i++)
		{
			nulls[i] = (strs[i] == NULL);
			values[i] = nulls[i] ? (Datum) 0 : CStringGetTextDatum(strs[i]);
		}
	}
	nulls[6] = PG_ARGISNULL(6);
	values[6] = nulls[6] ? (Datum) 0 : PG_GETARG_DATUM(6);
	nulls[7] = PG_ARGISNULL(7);
	values[7] = nulls[7] ? (Datum) 0 : PG_GETARG_DATUM(7);
	nulls[8] = false;
	values[8] = CStringGetTextDatum(on_threshold);
	nulls[9] = false;
	values[9] = BoolGetDatum(auto_retry);
	nulls[10] = (idem_key == NULL);
	values[10] = idem_key ? CStringGetTextDatum(idem_key) : (Datum) 0;
	nulls[11] = false;
	values[11] = ObjectIdGetDatum(call.caller.roleid);
	ApExec(sql, 12, types, values, nulls, 0);

	InsertItems(id, PG_GETARG_DATUM(0), 0);
	RecountBatch(id, tenant);
	if (start)
		ApWakeWorker();

	result = BatchRowDatum(id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.update_batch(batch_id, claim_ids, add_claim_ids, comment) */
Datum
approvals_update_batch(PG_FUNCTION_ARGS)
{
	static const char *delete_sql =
		"DELETE FROM approvals.batch_items WHERE batch_id = $1";
	static const char *dup_sql =
		"SELECT claim_id FROM approvals.batch_items WHERE batch_id = $1 "
		"AND claim_id = ANY ($2) ORDER BY position LIMIT 1";
	static const char *max_sql =
		"SELECT coalesce(max(position), 0), count(*)::integer FROM approvals.batch_items "
		"WHERE batch_id = $1";
	static const char *comment_sql =
		"UPDATE approvals.batches SET comment = $2, updated_at = now() WHERE id = $1";
	Oid			types[2] = {TEXTOID, TEXTARRAYOID};
	Datum		values[2];
	char	   *batch_id;
	char	   *comment = ApArgCString(fcinfo, 3);
	char	  **ids;
	int			n;
	ApprovalsCall call;
	BatchInfo	bi;
	Datum		result;
	bool		isnull;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "update batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");
	ApCheckLength("comment", comment, AP_MAX_COMMENT);
	if (!PG_ARGISNULL(1))
	{
		ids = ApTextArrayToCStrings(PG_GETARG_DATUM(1), &n);
		(void) CheckClaimIds("claim_ids", ids, n, 0, false);
	}
	if (!PG_ARGISNULL(2))
	{
		ids = ApTextArrayToCStrings(PG_GETARG_DATUM(2), &n);
		(void) CheckClaimIds("add_claim_ids", ids, n, 0, false);
	}

	BatchOpen(&call, batch_id, true, &bi, "update batches", "update");
	if (strcmp(bi.status, "pending") != 0)
		ReportBatchState(&bi, "amend");
	values[0] = CStringGetTextDatum(batch_id);

	if (!PG_ARGISNULL(1))
	{
		ApExec(delete_sql, 1, types, values, NULL, 0);
		InsertItems(batch_id, PG_GETARG_DATUM(1), 0);
	}
	if (!PG_ARGISNULL(2))
	{
		int			max_position;
		int			count;

		ApExec(max_sql, 1, types, values, NULL, 1);
		max_position = DatumGetInt32(ApGetDatum(0, 1, &isnull));
		count = DatumGetInt32(ApGetDatum(0, 2, &isnull));
		ids = ApTextArrayToCStrings(PG_GETARG_DATUM(2), &n);
		(void) CheckClaimIds("add_claim_ids", ids, n, count, false);
		values[1] = PG_GETARG_DATUM(2);
		if (ApExec(dup_sql, 2, types, values, NULL, 1) == 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("claim \"%s\" is already in batch \"%s\"",
							ApGetCString(0, 1), batch_id)));
		InsertItems(batch_id, PG_GETARG_DATUM(2), max_position);
	}
	if (comment)
	{
		Oid			ctypes[2] = {TEXTOID, TEXTOID};
		Datum		cvalues[2] = {values[0], CStringGetTextDatum(comment)};

		ApExec(comment_sql, 2, ctypes, cvalues, NULL, 0);
	}
	RecountBatch(batch_id, bi.tenant);

	result = BatchRowDatum(batch_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.start_batch(batch_id, confirm_claim_ids) */
Datum
approvals_start_batch(PG_FUNCTION_ARGS)
{
	static const char *ids_sql =
		"SELECT pg_catalog.array_agg(claim_id ORDER BY position) FROM approvals.batch_items "
		"WHERE batch_id = $1";
	static const char *queue_sql =
		"UPDATE approvals.batches SET status = 'queued', queued_at = now(), updated_at = now() "
		"WHERE id = $1";
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	char	   *batch_id;
	ApprovalsCall call;
	BatchInfo	bi;
	Datum		result;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "start batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");

	BatchOpen(&call, batch_id, true, &bi, "start batches", "start");
	if (strcmp(bi.status, "pending") != 0)
		ReportBatchState(&bi, "start");
	values[0] = CStringGetTextDatum(batch_id);

	if (!PG_ARGISNULL(1))
	{
		int			n_confirm;
		int			n_items = 0;
		char	  **confirm = ApTextArrayToCStrings(PG_GETARG_DATUM(1), &n_confirm);
		char	  **items = NULL;
		bool		isnull;
		Datum		d;
		int			i = 0,
					j = 0;
		char	   *missing = NULL;
		char	   *unexpected = NULL;

		ApExec(ids_sql, 1, types, values, NULL, 1);
		d = ApGetDatum(0, 1, &isnull);
		if (!isnull)
			items = ApTextArrayToCStrings(d, &n_items);
		for (int k = 0; k < n_confirm; k++)
			if (confirm[k] == NULL)
				confirm[k] = "";
		qsort(confirm, n_confirm, sizeof(char *), CompareCStrings);
		if (items)
			qsort(items, n_items, sizeof(char *), CompareCStrings);
		while ((i < n_items || j < n_confirm) && !(missing && unexpected))
		{
			int			cmp = (i >= n_items) ? 1 : (j >= n_confirm) ? -1
				: strcmp(items[i], confirm[j]);

			if (cmp == 0)
				i++, j++;
			else if (cmp < 0)
			{
				if (!missing)
					missing = items[i];
				i++;
			}
			else
			{
				if (!unexpected)
					unexpected = confirm[j];
				j++;
			}
		}
		if (missing || unexpected || n_items != n_confirm)
			ereport(ERROR,
					(errcode(ERRCODE_APPROVALS_CONFIRMATION),
					 errmsg("confirmation does not match batch \"%s\"", batch_id),
					 errdetail("The batch has %d claims, the confirmation lists %d%s%s%s%s%s%s.",
							   n_items, n_confirm,
							   missing ? "; not confirmed: \"" : "", missing ? missing : "",
							   missing ? "\"" : "",
							   unexpected ? "; not in the batch: \"" : "",
							   unexpected ? unexpected : "", unexpected ? "\"" : ""),
					 errhint("List every claim id of the batch exactly once; the batch stays pending.")));
	}

	ApExec(queue_sql, 1, types, values, NULL, 0);
	ApWakeWorker();
	result = BatchRowDatum(batch_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/*
 * The tail of the set-based decide/revert statements: for each claim whose
 * resource type has a handler, (claim_id, event_id, handler, search_path).
 */
#define AP_HANDLER_ROWS \
	"SELECT e.claim_id, e.id, h.handler::oid, h.search_path " \
	"FROM e JOIN c ON c.id = e.claim_id " \
	"JOIN approvals.handlers h ON h.resource_type = c.resource_type"

/*
 * Run one set-based statement over a group of claims (parameter $1: their
 * ids as text[], or their row locations as tid[]) that ends in
 * AP_HANDLER_ROWS, and run those handlers (no second look-up per claim).
 */
static void
ApplyStatement(const char *sql, Oid array_type, Datum array, int nextra,
			   const Oid *extra_types, const Datum *extra_values, const bool *extra_nulls)
{
	Oid			types[6];
	Datum		values[6];
	bool		nulls[6];
	int			rows;
	char	  **claim_ids;
	int64	   *event_ids;
	Oid		   *handlers;
	char	  **paths;

	Assert(nextra < 6);
	types[0] = array_type;
	values[0] = array;
	nulls[0] = false;
	for (int i = 0; i < nextra; i++)
	{
		types[i + 1] = extra_types[i];
		values[i + 1] = extra_values[i];
		nulls[i + 1] = extra_nulls[i];
	}
	rows = ApExec(sql, nextra + 1, types, values, nulls, 0);
	if (rows == 0)
		return;
	claim_ids = palloc(sizeof(char *) * rows);
	event_ids = palloc(sizeof(int64) * rows);
	handlers = palloc(sizeof(Oid) * rows);
	paths = palloc(sizeof(char *) * rows);
	for (int i = 0; i < rows; i++)
	{
		bool		isnull;

		claim_ids[i] = ApGetCString(i, 1);
		event_ids[i] = DatumGetInt64(ApGetDatum(i, 2, &isnull));
		handlers[i] = DatumGetObjectId(ApGetDatum(i, 3, &isnull));
		paths[i] = ApGetCString(i, 4);
	}
	SPI_freetuptable(SPI_tuptable);
	for (int i = 0; i < rows; i++)
		ApInvokeHandler(handlers[i], paths[i], claim_ids[i], event_ids[i]);
}

/* ------------------------------------------------------------------------
 * The chunk processor
 * ------------------------------------------------------------------------ */

typedef struct ChunkState
{
	BatchInfo  *bi;
	int			n;
	int		   *positions;
	char	  **claim_ids;
	const char **decision;		/* per item */
	char	  **error;			/* per item */
	/* claims that passed every check, to be decided */
	int			n_apply;
	int		   *apply_item;
	ItemPointerData *apply_tids;	/* row locations of the locked claims */
	Datum	   *amount;			/* per item: the claim's amount (when known) */
	bool	   *amount_null;
	bool		apply_guarded;
	const char *actor;
} ChunkState;

/* An entry of a claim-id index (ApStringHashCreate): claim id -> item (or position) */
typedef struct IdIndexEntry
{
	const char *id;
	int			item;
} IdIndexEntry;

/* Decide a group of claims: set-based update + events + handlers. */
static void
ChunkApplyGroup(void *state, int lo, int hi)
{
	static const char *sql =
		"WITH c AS ("
		"  UPDATE approvals.claims c SET status = $2, reviewer = $3, batch_id = $4, "
		"    assignee = NULL, decided_at = now(), updated_at = now() "
		"  WHERE c.ctid = ANY ($1) AND c.status = 'pending' "
		"  RETURNING c.id, c.tenant, c.snapshot_hash, c.resource_type), "
		"e AS ("
		"  INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action, "
		"    from_status, to_status, comment, snapshot_hash) "
		"  SELECT id, $4, tenant, $3, $2, 'pending', $2, $5, snapshot_hash FROM c "
		"  RETURNING claim_id, id) "
		AP_HANDLER_ROWS;
	ChunkState *cs = (ChunkState *) state;
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	bool		nulls[4] = {false, false, false, cs->bi->comment == NULL};
	Datum	   *tids;

	values[0] = CStringGetTextDatum(cs->bi->decision);
	values[1] = CStringGetTextDatum(cs->actor);
	values[2] = CStringGetTextDatum(cs->bi->id);
	values[3] = cs->bi->comment ? CStringGetTextDatum(cs->bi->comment) : (Datum) 0;
	tids = palloc(sizeof(Datum) * (hi - lo));
	for (int k = lo; k < hi; k++)
		tids[k - lo] = PointerGetDatum(&cs->apply_tids[k]);
	ApplyStatement(sql, TIDARRAYOID,
				   PointerGetDatum(construct_array(tids, hi - lo, TIDOID,
												   sizeof(ItemPointerData), false,
												   TYPALIGN_SHORT)),
				   4, types, values, nulls);
}

/* A claim whose handler raised: its item fails with the handler's message. */
static void
ChunkApplyFailed(void *state, int idx, const char *message)
{
	ChunkState *cs = (ChunkState *) state;
	int			item = cs->apply_item[idx];

	cs->decision[item] = "failed";
	cs->error[item] = pstrdup(message);
}

/*
 * Remember an item's claim amount from column col of result row r (only for
 * claims of the batch's tenant: another tenant's amount is not to be shown).
 */
static void
ChunkKeepAmount(ChunkState *cs, int item, int r, int col)
{
	Datum		d = ApGetDatum(r, col, &cs->amount_null[item]);

	if (!cs->amount_null[item])
		cs->amount[item] = datumCopy(d, false, -1);
}

/* Mark an item failed with one of the fixed item error texts. */
static void
ItemFail(ChunkState *cs, int item, const char *error)
{
	cs->decision[item] = "failed";
	cs->error[item] = (char *) error;
}

/*
 * Lock the chunk's pending claims (SKIP LOCKED, retried with backoff when
 * auto_retry) and classify every item: failed with an item error, or ready
 * to be decided (apply list).
 */
static void
ChunkLockAndClassify(ChunkState *cs, HTAB *index)
{
	static const char *lock_sql =
		"SELECT c.id, c.tenant IS NOT DISTINCT FROM $2, c.requester, c.allow_self_approval, "
		"coalesce(c.expires_at <= now(), false), "
		"EXISTS (SELECT 1 FROM approvals.handlers h WHERE h.resource_type = c.resource_type), "
		"c.ctid, c.amount "
		"FROM approvals.claims c WHERE c.id = ANY ($1) AND c.status = 'pending' "
		"ORDER BY c.id FOR UPDATE OF c SKIP LOCKED";
	static const char *classify_sql =
		"SELECT c.id, c.tenant IS NOT DISTINCT FROM $2, c.status, c.amount "
		"FROM approvals.claims c WHERE c.id = ANY ($1)";
	Oid			types[2] = {TEXTARRAYOID, TEXTOID};
	Datum		values[2];
	bool		nulls[2] = {false, cs->bi->tenant == NULL};
	char	  **waiting = palloc(sizeof(char *) * cs->n);
	int			n_waiting = 0;
	bool	   *seen = palloc(sizeof(bool) * cs->n);

	values[1] = cs->bi->tenant ? CStringGetTextDatum(cs->bi->tenant) : (Datum) 0;
	for (int i = 0; i < cs->n; i++)
		waiting[n_waiting++] = cs->claim_ids[i];

	for (int attempt = 0; n_waiting > 0; attempt++)
	{
		int			rows;
		int			still = 0;

		memset(seen, 0, sizeof(bool) * cs->n);
		values[0] = ApCStringArrayDatum(waiting, n_waiting);
		rows = ApExec(lock_sql, 2, types, values, nulls, 0);
		for (int r = 0; r < rows; r++)
		{
			char	   *id = ApGetCString(r, 1);
			IdIndexEntry *e = ApStringHashSearch(index, id, HASH_FIND, NULL);
			bool		isnull;
			int			item;

			if (e == NULL)
				continue;
			item = e->item;
			seen[item] = true;
			if (DatumGetBool(ApGetDatum(r, 2, &isnull)))
				ChunkKeepAmount(cs, item, r, 8);
			if (!DatumGetBool(ApGetDatum(r, 2, &isnull)))
				ItemFail(cs, item, ERR_TENANT);
			else if (strcmp(ApGetCString(r, 3), cs->bi->coordinator) == 0 &&
					 !DatumGetBool(ApGetDatum(r, 4, &isnull)))
				ItemFail(cs, item, ERR_REQUESTER);
			else if (DatumGetBool(ApGetDatum(r, 5, &isnull)))
				ItemFail(cs, item, ERR_EXPIRED);
			else
			{
				cs->apply_item[cs->n_apply] = item;
				ItemPointerCopy((ItemPointer) DatumGetPointer(ApGetDatum(r, 7, &isnull)),
								&cs->apply_tids[cs->n_apply]);
				cs->n_apply++;
				if (DatumGetBool(ApGetDatum(r, 6, &isnull)))
					cs->apply_guarded = true;
			}
		}
		SPI_freetuptable(SPI_tuptable);

		/* whatever was not locked: missing, decided, another tenant's, or locked */
		for (int w = 0; w < n_waiting; w++)
		{
			IdIndexEntry *e = ApStringHashSearch(index, waiting[w], HASH_FIND, NULL);

			if (e && !seen[e->item])
				waiting[still++] = waiting[w];
		}
		n_waiting = still;
		if (n_waiting == 0)
			break;

		values[0] = ApCStringArrayDatum(waiting, n_waiting);
		memset(seen, 0, sizeof(bool) * cs->n);
		rows = ApExec(classify_sql, 2, types, values, nulls, 0);
		for (int r = 0; r < rows; r++)
		{
			IdIndexEntry *e = ApStringHashSearch(index, ApGetCString(r, 1), HASH_FIND, NULL);
			bool		isnull;

			if (e == NULL)
				continue;
			seen[e->item] = true;
			if (DatumGetBool(ApGetDatum(r, 2, &isnull)))
				ChunkKeepAmount(cs, e->item, r, 4);
			if (!DatumGetBool(ApGetDatum(r, 2, &isnull)))
				ItemFail(cs, e->item, ERR_TENANT);
			else if (strcmp(ApGetCString(r, 3), "pending") != 0)
				ItemFail(cs, e->item, ERR_PROCESSED);
			/* else: pending but locked by another transaction */
		}
		SPI_freetuptable(SPI_tuptable);

		still = 0;
		for (int w = 0; w < n_waiting; w++)
		{
			IdIndexEntry *e = ApStringHashSearch(index, waiting[w], HASH_FIND, NULL);

			if (!seen[e->item])
				ItemFail(cs, e->item, ERR_NOT_FOUND);
			else if (cs->decision[e->item] == NULL)
				waiting[still++] = waiting[w];
		}
		n_waiting = still;
		if (n_waiting == 0)
			break;
		if (!cs->bi->auto_retry || attempt >= LOCK_RETRIES)
		{
			for (int w = 0; w < n_waiting; w++)
			{
				IdIndexEntry *e = ApStringHashSearch(index, waiting[w], HASH_FIND, NULL);

				ItemFail(cs, e->item, ERR_LOCKED);
			}
			break;
		}
		ApBackoffSleep(AP_BACKOFF_MS << attempt);
	}
}

/* Write the chunk's item results in one statement. */
static void
ChunkStoreItems(ChunkState *cs)
{
	static const char *sql =
		"UPDATE approvals.batch_items i SET decision = u.decision, error = u.error, "
		"processed_at = now() "
		"FROM ROWS FROM (pg_catalog.unnest($2::integer[]), pg_catalog.unnest($3::text[]), "
		"               pg_catalog.unnest($4::text[])) AS u(position, decision, error) "
		"WHERE i.batch_id = $1 AND i.position = u.position";
	Oid			types[4] = {TEXTOID, INT4ARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[4];
	Datum	   *pos = palloc(sizeof(Datum) * cs->n);

	for (int i = 0; i < cs->n; i++)
		pos[i] = Int32GetDatum(cs->positions[i]);
	values[0] = CStringGetTextDatum(cs->bi->id);
	values[1] = PointerGetDatum(construct_array(pos, cs->n, INT4OID, sizeof(int32),
												true, TYPALIGN_INT));
	values[2] = ApCStringArrayDatum((char **) cs->decision, cs->n);
	values[3] = ApCStringArrayDatum(cs->error, cs->n);
	ApExec(sql, 4, types, values, NULL, 0);
}

/*
 * Advance the batch's counters by the chunk's results; returns the new
 * failed_count.
 */
static int
ChunkStoreCounters(ChunkState *cs, int next_position)
{
	static const char *sql =
		"UPDATE approvals.batches SET processed_count = processed_count + $2, "
		"approved_count = approved_count + $3, rejected_count = rejected_count + $4, "
		"failed_count = failed_count + $5, approved_amount = approved_amount + $6, "
		"failed_amount = failed_amount + $7, "
		"next_position = $8, updated_at = now() WHERE id = $1 RETURNING failed_count";
	Oid			types[8] = {TEXTOID, INT4OID, INT4OID, INT4OID, INT4OID, NUMERICOID,
	NUMERICOID, INT4OID};
	Datum		values[8];
	Datum		ok_amount = DirectFunctionCall1(int4_numeric, Int32GetDatum(0));
	Datum		failed_amount = ok_amount;
	int			n_ok = 0;
	int			n_failed = 0;
	bool		approve = strcmp(cs->bi->decision, "approved") == 0;
	bool		isnull;

	for (int i = 0; i < cs->n; i++)
	{
		/* an item left without a decision (impossible through the API) counts as failed */
		bool		failed = cs->decision[i] == NULL || strcmp(cs->decision[i], "failed") == 0;

		if (failed)
			n_failed++;
		else
			n_ok++;
		if (cs->amount_null[i])
			continue;
		if (failed)
			failed_amount = DirectFunctionCall2(numeric_add, failed_amount, cs->amount[i]);
		else if (approve)
			ok_amount = DirectFunctionCall2(numeric_add, ok_amount, cs->amount[i]);
	}
	values[0] = CStringGetTextDatum(cs->bi->id);
	values[1] = Int32GetDatum(cs->n);
	values[2] = Int32GetDatum(approve ? n_ok : 0);
	values[3] = Int32GetDatum(approve ? 0 : n_ok);
	values[4] = Int32GetDatum(n_failed);
	values[5] = ok_amount;
	values[6] = failed_amount;
	values[7] = Int32GetDatum(next_position);
	ApExec(sql, 8, types, values, NULL, 1);
	return DatumGetInt32(ApGetDatum(0, 1, &isnull));
}

/* Has the batch failed more claims than its threshold allows? */
static bool
ThresholdExceeded(const BatchInfo *bi, int failed)
{
	if (bi->has_max_failures && failed > bi->max_failures)
		return true;
	/* in float4, as the ratio was given: 7 of 10 is exactly 0.7, not above it */
	if (bi->has_max_ratio && bi->total_claims > 0 &&
		(float4) failed / (float4) bi->total_claims > bi->max_ratio)
		return true;
	return false;
}

/* Put a batch into a terminal status (with an error text, or NULL). */
static void
BatchFinish(const char *batch_id, const char *status, const char *error)
{
	static const char *sql =
		"UPDATE approvals.batches SET status = $2, error = coalesce($3, error), "
		"worker_pid = NULL, worker_started = NULL, updated_at = now(), "
		"completed_at = CASE WHEN $2 <> 'cancelled' THEN now() END, "
		"cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() END WHERE id = $1";
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		nulls[3] = {false, false, error == NULL};

	values[0] = CStringGetTextDatum(batch_id);
	values[1] = CStringGetTextDatum(status);
	values[2] = error ? CStringGetTextDatum(error) : (Datum) 0;
	ApExec(sql, 3, types, values, nulls, 0);
	NotifyBatch(batch_id);
}

/* ------------------------------------------------------------------------
 * Revert (cancel and threshold rollback)
 * ------------------------------------------------------------------------ */

typedef struct RevertState
{
	const BatchInfo *bi;
	char	  **ids;
	int		   *positions;
	char	  **errors;			/* per item: NULL, or why its revert failed */
	const char *actor;
	const char *comment;
} RevertState;

/*
 * Must reverted claim c give way?  Its resource has another pending claim
 * (submitted since), or a newer claim of the same resource is reverted in
 * this same group (only one claim of a resource may be pending): then c is
 * cancelled instead of going back to pending.
 */
#define REVERT_SIBLING \
	"(EXISTS (SELECT 1 FROM approvals.claims p WHERE p.resource_type = c.resource_type " \
	"AND p.resource_id = c.resource_id AND p.status = 'pending' " \
	"AND p.tenant IS NOT DISTINCT FROM c.tenant) " \
	"OR EXISTS (SELECT 1 FROM approvals.claims q WHERE q.resource_type = c.resource_type " \
	"AND q.resource_id = c.resource_id AND q.tenant IS NOT DISTINCT FROM c.tenant " \
	"AND q.id = ANY ($1) AND q.batch_id = $2 AND q.status = $3 " \
	"AND (q.created_at, q.id) > (c.created_at, c.id)))"

/* Put a group of claims the batch decided back to pending (set-based). */
static void
RevertApplyGroup(void *state, int lo, int hi)
{
	static const char *sql =
		"WITH c AS ("
		"  UPDATE approvals.claims c SET "
		"    status = CASE WHEN " REVERT_SIBLING " THEN 'cancelled' ELSE 'pending' END, "
		"    decided_at = CASE WHEN " REVERT_SIBLING " THEN now() END, "
		"    reviewer = NULL, assignee = c.approvers[c.route_position], updated_at = now() "
		"  WHERE c.id = ANY ($1) AND c.batch_id = $2 AND c.status = $3 "
		"  RETURNING c.id, c.tenant, c.snapshot_hash, c.resource_type, c.status), "
		"e AS ("
		"  INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action, "
		"    from_status, to_status, comment, snapshot_hash) "
		"  SELECT id, $2, tenant, $4, 'reverted', $3, status, $5, snapshot_hash FROM c "
		"  RETURNING claim_id, id) "
		AP_HANDLER_ROWS;
	RevertState *rs = (RevertState *) state;
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	bool		nulls[4] = {false, false, false, rs->comment == NULL};

	values[0] = CStringGetTextDatum(rs->bi->id);
	values[1] = CStringGetTextDatum(rs->bi->decision);
	values[2] = CStringGetTextDatum(rs->actor);
	values[3] = rs->comment ? CStringGetTextDatum(rs->comment) : (Datum) 0;
	ApplyStatement(sql, TEXTARRAYOID, ApCStringArrayDatum(rs->ids + lo, hi - lo),
				   4, types, values, nulls);
}

/* A claim whose handler refused the revert stays decided; say why. */
static void
RevertApplyFailed(void *state, int idx, const char *message)
{
	RevertState *rs = (RevertState *) state;
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "Revert failed: %s", message);
	rs->errors[idx] = buf.data;
}

/*
 * Revert one page of the batch's decided items (positions after "after"):
 * their claims locked in id order, the items marked reverted, the counters
 * fixed.  Sets *last to the page's last position and *more when the page was
 * full.  Returns how many claims were reverted.
 */
static int
BatchRevertPage(const BatchInfo *bi, const char *actor, const char *comment,
				int after, int *last, bool *more)
{
	static const char *items_select_sql =
		"SELECT position, claim_id FROM approvals.batch_items "
		"WHERE batch_id = $1 AND decision = $2 AND position > $4 "
		"ORDER BY position LIMIT $5";
	static const char *select_sql =
		"SELECT c.id, "
		"EXISTS (SELECT 1 FROM approvals.handlers h WHERE h.resource_type = c.resource_type) "
		"FROM approvals.claims c WHERE c.id = ANY ($3) AND c.batch_id = $1 AND c.status = $2 "
		"ORDER BY c.id FOR UPDATE";
	static const char *items_sql =
		"UPDATE approvals.batch_items i SET "
		"decision = CASE WHEN u.error IS NULL THEN 'reverted' ELSE i.decision END, "
		"error = u.error "
		"FROM ROWS FROM (pg_catalog.unnest($2::integer[]), pg_catalog.unnest($3::text[])) "
		"  AS u(position, error) "
		"WHERE i.batch_id = $1 AND i.position = u.position";
	static const char *counters_sql =
		"UPDATE approvals.batches SET "
		"approved_count = approved_count - CASE WHEN action = 'approve' THEN $2 ELSE 0 END, "
		"rejected_count = rejected_count - CASE WHEN action = 'reject' THEN $2 ELSE 0 END, "
		"reverted_count = reverted_count + $2, "
		"approved_amount = approved_amount - CASE WHEN action = 'approve' THEN "
		"  coalesce((SELECT pg_catalog.sum(amount) FROM approvals.claims WHERE id = ANY ($3)), 0) "
		"  ELSE 0 END, "
		"updated_at = now() WHERE id = $1";
	Oid			types[5] = {TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, INT4OID};
	Datum		values[5];
	bool		nulls[5] = {false, false, true, false, false};
	RevertState rs;
	int			n;
	int			n_items;
	char	  **item_ids;
	HTAB	   *index;
	bool		guarded = false;
	int			reverted = 0;
	Datum	   *pos;
	char	  **done_ids;

	/*
	 * The items the batch decided, then their claims, locked in id order:
	 * two single-table statements, so that no join order can go quadratic.
	 */
	values[0] = CStringGetTextDatum(bi->id);
	values[1] = CStringGetTextDatum(bi->decision);
	values[3] = Int32GetDatum(after);
	values[4] = Int32GetDatum(ap_chunk_size);
	n_items = ApExec(items_select_sql, 5, types, values, nulls, 0);
	*more = (n_items == ap_chunk_size);
	if (n_items == 0)
		return 0;
	{
		bool		isnull;

		*last = DatumGetInt32(ApGetDatum(n_items - 1, 1, &isnull));
	}
	index = ApStringHashCreate("approvals revert ids", n_items, sizeof(IdIndexEntry),
							   CurrentMemoryContext);
	item_ids = palloc(sizeof(char *) * n_items);
	for (int i = 0; i < n_items; i++)
	{
		bool		isnull;
		IdIndexEntry *e;

		item_ids[i] = ApGetCString(i, 2);
		e = ApStringHashSearch(index, item_ids[i], HASH_ENTER, NULL);
		e->item = DatumGetInt32(ApGetDatum(i, 1, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	values[2] = ApCStringArrayDatum(item_ids, n_items);
	n = ApExec(select_sql, 3, types, values, NULL, 0);
	if (n == 0)
	{
		hash_destroy(index);
		return 0;
	}

	memset(&rs, 0, sizeof(rs));
	rs.bi = bi;
	rs.actor = actor;
	rs.comment = comment;
	rs.ids = palloc(sizeof(char *) * n);
	rs.positions = palloc(sizeof(int) * n);
	rs.errors = palloc0(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		rs.ids[i] = ApGetCString(i, 1);
		rs.positions[i] = ((IdIndexEntry *) ApStringHashSearch(index, rs.ids[i], HASH_FIND,
														NULL))->item;
		if (DatumGetBool(ApGetDatum(i, 2, &isnull)))
			guarded = true;
	}
	SPI_freetuptable(SPI_tuptable);
	hash_destroy(index);

	ApApplyGroups(RevertApplyGroup, RevertApplyFailed, &rs, 0, n, guarded, bi->auto_retry);

	pos = palloc(sizeof(Datum) * n);
	done_ids = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		pos[i] = Int32GetDatum(rs.positions[i]);
		if (rs.errors[i] == NULL)
			done_ids[reverted++] = rs.ids[i];
	}
	{
		Oid			itypes[3] = {TEXTOID, INT4ARRAYOID, TEXTARRAYOID};
		Datum		ivalues[3];
		Oid			ctypes[3] = {TEXTOID, INT4OID, TEXTARRAYOID};
		Datum		cvalues[3];

		ivalues[0] = values[0];
		ivalues[1] = PointerGetDatum(construct_array(pos, n, INT4OID, sizeof(int32),
													 true, TYPALIGN_INT));
		ivalues[2] = ApCStringArrayDatum(rs.errors, n);
		ApExec(items_sql, 3, itypes, ivalues, NULL, 0);

		cvalues[0] = values[0];
		cvalues[1] = Int32GetDatum(reverted);
		cvalues[2] = ApCStringArrayDatum(done_ids, reverted);
		ApExec(counters_sql, 3, ctypes, cvalues, NULL, 0);
	}
	return reverted;
}

/*
 * Revert every claim the batch decided, one page of approvals.chunk_size
 * items at a time (each page in its own SPI connection, so memory stays flat
 * for any batch size): claims locked in id order within a page, their items
 * marked reverted and the counters fixed.  Returns how many were reverted.
 */
static int
BatchRevert(const BatchInfo *bi, const char *actor, const char *comment)
{
	int			total = 0;
	int			after = 0;
	bool		more = true;

	while (more)
	{
		CHECK_FOR_INTERRUPTS();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		total += BatchRevertPage(bi, actor, comment, after, &after, &more);
		SPI_finish();
	}
	return total;
}

/*
 * Process the next chunk of a batch that is `processing`, in the current
 * transaction (SPI connected, owner identity).  Returns true when the batch
 * needs no further step: it is finished, or no longer processing (e.g.
 * cancelled).
 */
static bool BatchStepInner(const char *batch_id, int chunk_size);

bool
ApBatchStep(const char *batch_id, int chunk_size)
{
	bool		finished;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	finished = BatchStepInner(batch_id, chunk_size);
	SPI_finish();
	return finished;
}

/* One chunk; everything it allocates dies with its SPI connection. */
static bool
BatchStepInner(const char *batch_id, int chunk_size)
{
	static const char *items_sql =
		"SELECT position, claim_id FROM approvals.batch_items "
		"WHERE batch_id = $1 AND position >= $2 AND decision IS NULL "
		"ORDER BY position LIMIT $3";
	Oid			types[3] = {TEXTOID, INT4OID, INT4OID};
	Datum		values[3];
	BatchInfo	bi;
	ChunkState	cs;
	HTAB	   *index;
	int			failed;
	int			last_position;

	if (!BatchLoad(batch_id, true, &bi) || strcmp(bi.status, "processing") != 0)
		return true;

	values[0] = CStringGetTextDatum(batch_id);
	values[1] = Int32GetDatum(bi.next_position);
	values[2] = Int32GetDatum(chunk_size);
	memset(&cs, 0, sizeof(cs));
	cs.bi = &bi;
	cs.actor = bi.coordinator;
	cs.n = ApExec(items_sql, 3, types, values, NULL, chunk_size);
	if (cs.n == 0)
	{
		BatchFinish(batch_id, "completed",
					ThresholdExceeded(&bi, bi.failed_count)
					? "failure threshold exceeded; continued (on_threshold = continue)" : NULL);
		return true;
	}

	cs.positions = palloc(sizeof(int) * cs.n);
	cs.claim_ids = palloc(sizeof(char *) * cs.n);
	cs.decision = palloc0(sizeof(char *) * cs.n);
	cs.error = palloc0(sizeof(char *) * cs.n);
	cs.apply_item = palloc(sizeof(int) * cs.n);
	cs.apply_tids = palloc(sizeof(ItemPointerData) * cs.n);
	cs.amount = palloc0(sizeof(Datum) * cs.n);
	cs.amount_null = palloc(sizeof(bool) * cs.n);
	for (int i = 0; i < cs.n; i++)
		cs.amount_null[i] = true;

	index = ApStringHashCreate("approvals chunk ids", cs.n, sizeof(IdIndexEntry),
							   CurrentMemoryContext);
	for (int i = 0; i < cs.n; i++)
	{
		bool		isnull;

		cs.positions[i] = DatumGetInt32(ApGetDatum(i, 1, &isnull));
		cs.claim_ids[i] = ApGetCString(i, 2);
		((IdIndexEntry *) ApStringHashSearch(index, cs.claim_ids[i], HASH_ENTER,
											 NULL))->item = i;
	}
	SPI_freetuptable(SPI_tuptable);
	last_position = cs.positions[cs.n - 1];

	ChunkLockAndClassify(&cs, index);
	ApApplyGroups(ChunkApplyGroup, ChunkApplyFailed, &cs, 0, cs.n_apply,
				cs.apply_guarded, bi.auto_retry);
	for (int k = 0; k < cs.n_apply; k++)
		if (cs.decision[cs.apply_item[k]] == NULL)
			cs.decision[cs.apply_item[k]] = bi.decision;
	hash_destroy(index);

	ChunkStoreItems(&cs);
	failed = ChunkStoreCounters(&cs, last_position + 1);

	if (ThresholdExceeded(&bi, failed) && bi.rollback)
	{
		StringInfoData msg;

		BatchRevert(&bi, "system", "failure threshold exceeded; batch rolled back");
		initStringInfo(&msg);
		appendStringInfo(&msg, "failure threshold exceeded: %d of %d claims failed", failed,
						 bi.total_claims);
		if (bi.has_max_failures)
			appendStringInfo(&msg, " (max_failures %d)", bi.max_failures);
		if (bi.has_max_ratio)
			appendStringInfo(&msg, " (max_failure_ratio %g)", (double) bi.max_ratio);
		appendStringInfoString(&msg, "; decided claims were reverted");
		BatchFinish(batch_id, "failed", msg.data);
		return true;
	}
	if (cs.n < chunk_size)
	{
		BatchFinish(batch_id, "completed",
					ThresholdExceeded(&bi, failed)
					? "failure threshold exceeded; continued (on_threshold = continue)" : NULL);
		return true;
	}
	return false;
}

/*
 * Mark a batch processing by this backend (from pending or queued, or
 * resuming after a crash).  Returns false when it was quarantined instead.
 */
static bool
BatchTakeOver(const BatchInfo *bi)
{
	static const char *sql =
		"UPDATE approvals.batches SET status = 'processing', worker_pid = $2, "
		"worker_started = $3, attempts = attempts + 1, "
		"started_at = coalesce(started_at, now()), "
		"queued_at = coalesce(queued_at, now()), updated_at = now() WHERE id = $1";
	Oid			types[3] = {TEXTOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[3] = {CStringGetTextDatum(bi->id), Int32GetDatum(MyProcPid),
	TimestampTzGetDatum(MyStartTimestamp)};

	if (strcmp(bi->status, "processing") == 0 && bi->attempts >= MAX_ATTEMPTS)
	{
		StringInfoData msg;

		initStringInfo(&msg);
		appendStringInfo(&msg, "quarantined: processing was interrupted %d times "
						 "(last at position %d); claims decided so far stay decided",
						 bi->attempts, bi->next_position);
		BatchFinish(bi->id, "failed", msg.data);
		ereport(WARNING,
				(errmsg("approvals: batch \"%s\" quarantined after %d interrupted attempts",
						bi->id, bi->attempts)));
		return false;
	}
	ApExec(sql, 3, types, values, NULL, 0);
	return true;
}

/* ------------------------------------------------------------------------
 * Results as a set
 * ------------------------------------------------------------------------ */

/*
 * Emit (claim_id, decision, error, processed_at) for every item, in order,
 * streamed into the result a page at a time (flat memory for any size).
 */
static void
EmitResults(FunctionCallInfo fcinfo, const char *batch_id)
{
	static const char *sql =
		"SELECT claim_id, decision, error, processed_at FROM approvals.batch_items "
		"WHERE batch_id = $1 ORDER BY position";
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};

	ApExecIntoTuplestore(sql, 1, types, values, NULL, rsinfo->setResult, rsinfo->setDesc);
}

/* ------------------------------------------------------------------------
 * process_batch, cancel_batch, batch_results, get_batch, list_batches
 * ------------------------------------------------------------------------ */

/* approvals.process_batch(batch_id): the whole batch, in the caller's transaction. */
Datum
approvals_process_batch(PG_FUNCTION_ARGS)
{
	char	   *batch_id;
	ApprovalsCall call;
	BatchInfo	bi;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "process batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");
	InitMaterializedSRF(fcinfo, 0);

	BatchOpen(&call, batch_id, true, &bi, "process batches", "process");
	if (strcmp(bi.status, "pending") != 0 && strcmp(bi.status, "queued") != 0)
		ReportBatchState(&bi, "process");
	(void) BatchTakeOver(&bi);
	while (!ApBatchStep(batch_id, ap_chunk_size))
		CHECK_FOR_INTERRUPTS();
	EmitResults(fcinfo, batch_id);
	ApEnd(&call);
	return (Datum) 0;
}

/* approvals.cancel_batch(batch_id, comment) */
Datum
approvals_cancel_batch(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"SELECT cancelled_at FROM approvals.batches WHERE id = $1";
	ReturnSetInfo *rsinfo;
	char	   *batch_id;
	char	   *comment = ApArgCString(fcinfo, 1);
	ApprovalsCall call;
	BatchInfo	bi;
	int			reverted = 0;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	Datum		cols[4];
	bool		nulls[4] = {false, false, false, false};

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "cancel batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");
	ApCheckLength("comment", comment, AP_MAX_COMMENT);
	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	/* waits here for a worker's chunk in progress: it holds this row lock */
	BatchOpen(&call, batch_id, true, &bi, "cancel batches", "cancel");
	if (strcmp(bi.status, "pending") != 0 && strcmp(bi.status, "queued") != 0 &&
		strcmp(bi.status, "processing") != 0)
		ReportBatchState(&bi, "cancel");
	if (strcmp(bi.status, "processing") == 0)
		reverted = BatchRevert(&bi, call.caller.actor,
							   comment ? comment : "batch cancelled");
	BatchFinish(batch_id, "cancelled", NULL);
	values[0] = CStringGetTextDatum(batch_id);
	ApExec(sql, 1, types, values, NULL, 1);
	cols[0] = CStringGetTextDatum(batch_id);
	cols[1] = BoolGetDatum(true);
	cols[2] = ApGetDatum(0, 1, &nulls[2]);
	cols[3] = Int32GetDatum(reverted);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, cols, nulls);
	ApEnd(&call);
	return (Datum) 0;
}

/* approvals.batch_results(batch_id) */
Datum
approvals_batch_results(PG_FUNCTION_ARGS)
{
	char	   *batch_id;
	ApprovalsCall call;
	BatchInfo	bi;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_READER, "read batch results");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");
	InitMaterializedSRF(fcinfo, 0);

	BatchOpen(&call, batch_id, false, &bi, "read batches", NULL);
	EmitResults(fcinfo, batch_id);
	ApEnd(&call);
	return (Datum) 0;
}

/* approvals.get_batch(batch_id) */
Datum
approvals_get_batch(PG_FUNCTION_ARGS)
{
	char	   *batch_id;
	ApprovalsCall call;
	BatchInfo	bi;
	Datum		result;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_READER, "read batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");

	BatchOpen(&call, batch_id, false, &bi, "read batches", NULL);
	result = BatchRowDatum(batch_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.list_batches(status, coordinator, page, page_limit): newest first. */
Datum
approvals_list_batches(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"SELECT b FROM approvals.batches b "
		"WHERE ($1::text IS NULL OR b.status = $1) "
		"AND ($2::text IS NULL OR b.coordinator = $2) "
		"AND ($3 OR b.tenant IS NULL OR b.tenant = ANY ($4)) "
		"ORDER BY b.created_at DESC, b.id DESC LIMIT $5 OFFSET $6";
	ReturnSetInfo *rsinfo;
	char	   *status = ApArgCString(fcinfo, 0);
	char	   *coordinator = ApArgCString(fcinfo, 1);
	int			page = PG_ARGISNULL(2) ? 1 : PG_GETARG_INT32(2);
	int			limit = PG_ARGISNULL(3) ? 20 : PG_GETARG_INT32(3);
	Oid			types[6] = {TEXTOID, TEXTOID, BOOLOID, TEXTARRAYOID, INT4OID, INT8OID};
	Datum		values[6];
	bool		nulls[6] = {status == NULL, coordinator == NULL, false, false, false, false};
	ApprovalsCall call;
	int			n;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_READER, "list batches");
	ApCheckEnum("status", status, batch_statuses);
	if (page < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page is %d; it must be at least 1", page)));
	if (limit < 1 || limit > 1000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page_limit is %d; it must be between 1 and 1000", limit)));
	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	ApBegin(&call);
	values[0] = status ? CStringGetTextDatum(status) : (Datum) 0;
	values[1] = coordinator ? CStringGetTextDatum(coordinator) : (Datum) 0;
	values[2] = BoolGetDatum(call.caller.sees_all);
	values[3] = ApVisibleTenants(call.caller.roleid);
	values[4] = Int32GetDatum(limit);
	values[5] = Int64GetDatum((int64) (page - 1) * limit);
	n = ApExec(sql, 6, types, values, nulls, 0);
	for (int i = 0; i < n; i++)
	{
		/* whole rows of the table's row type, dropped columns included, as the result is */
		bool		isnull;
		HeapTupleHeader row = DatumGetHeapTupleHeader(ApGetDatum(i, 1, &isnull));
		HeapTupleData tuple;

		tuple.t_len = HeapTupleHeaderGetDatumLength(row);
		ItemPointerSetInvalid(&tuple.t_self);
		tuple.t_tableOid = InvalidOid;
		tuple.t_data = row;
		tuplestore_puttuple(rsinfo->setResult, &tuple);
	}
	ApEnd(&call);
	return (Datum) 0;
}

/* approvals.wait_batch(batch_id, timeout): block until terminal or timeout. */
Datum
approvals_wait_batch(PG_FUNCTION_ARGS)
{
	char	   *batch_id;
	ApprovalsCall call;
	BatchInfo	bi;
	TimestampTz deadline;
	Interval	zero;
	Datum		result;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "wait for batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("timeout must not be null")));
	memset(&zero, 0, sizeof(zero));
	if (DatumGetBool(DirectFunctionCall2(interval_lt, PG_GETARG_DATUM(1),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must not be negative")));
	deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													   TimestampTzGetDatum(GetCurrentTimestamp()),
													   PG_GETARG_DATUM(1)));

	ApBegin(&call);
	for (;;)
	{
		bool		terminal;
		char		status[NAMEDATALEN];

		/*
		 * Each poll in its own SPI connection: nothing accumulates while
		 * waiting (bi's strings die with it; status is copied out).
		 */
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		BatchLoadVisible(&call.caller, batch_id, false, &bi, "read batches");
		strlcpy(status, bi.status, sizeof(status));
		SPI_finish();
		terminal = strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
			strcmp(status, "cancelled") == 0;
		if (terminal || GetCurrentTimestamp() >= deadline)
			break;
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
					 errmsg("wait_batch cannot see batch \"%s\" progress in a %s transaction",
							batch_id, IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
					 errdetail("The batch is %s; this transaction's snapshot will not show it change.",
							   status),
					 errhint("Call wait_batch outside a transaction block, or in a READ COMMITTED transaction.")));
		ApBackoffSleep(50);
	}
	result = BatchRowDatum(batch_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.purge_batches(older_than): delete finished batches and their items. */
Datum
approvals_purge_batches(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"WITH d AS (DELETE FROM approvals.batches "
		"  WHERE status IN ('completed', 'failed', 'cancelled') "
		"  AND coalesce(completed_at, cancelled_at, updated_at) < now() - $1 RETURNING id), "
		"i AS (DELETE FROM approvals.batch_items WHERE batch_id IN (SELECT id FROM d)) "
		"SELECT pg_catalog.count(*)::integer FROM d";
	Oid			types[1] = {INTERVALOID};
	Datum		values[1];
	Interval	zero;
	ApprovalsCall call;
	bool		isnull;
	int			n;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_ADMIN, "purge batches");
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("older_than must not be null")));
	memset(&zero, 0, sizeof(zero));
	if (DatumGetBool(DirectFunctionCall2(interval_lt, PG_GETARG_DATUM(0),
										 IntervalPGetDatum(&zero))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("older_than must not be negative")));
	values[0] = PG_GETARG_DATUM(0);

	ApBegin(&call);
	ApExec(sql, 1, types, values, NULL, 1);
	n = DatumGetInt32(ApGetDatum(0, 1, &isnull));
	ApEnd(&call);
	PG_RETURN_INT32(n);
}

/* ------------------------------------------------------------------------
 * run_queued: chunked processing with a commit per chunk
 * ------------------------------------------------------------------------ */

/*
 * Take the next batch to process: the oldest queued one, or one left
 * processing by a backend that is gone.  Returns its id, or NULL.
 */
static char *ClaimNextBatchInner(bool all_tenants, Datum tenants);

/*
 * Take the next batch to process: the oldest queued one, or one whose
 * processing backend is gone (or is this one, after an error), among the
 * tenants the caller may act on (all of them for the worker: caller NULL).
 * Marks it processing by this backend.  Returns its id, or NULL.
 */
char *
ApClaimNextBatch(const ApprovalsCaller *caller)
{
	char	   *id;
	char	   *result = NULL;
	bool		all_tenants = (caller == NULL || caller->sees_all);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	id = ClaimNextBatchInner(all_tenants,
							 all_tenants ? ApCStringArrayDatum(NULL, 0)
							 : ApVisibleTenants(caller->roleid));
	if (id)
	{
		result = SPI_palloc(strlen(id) + 1);
		strcpy(result, id);
	}
	SPI_finish();
	return result;
}

static char *
ClaimNextBatchInner(bool all_tenants, Datum tenants)
{
	static const char *sql =
		"SELECT " BATCH_COLUMNS " FROM approvals.batches "
		"WHERE (status = 'queued' OR (status = 'processing' AND "
		"  (worker_pid = pg_catalog.pg_backend_pid() OR " AP_BATCH_ORPHANED "))) "
		"AND ($1 OR tenant IS NULL OR tenant = ANY ($2)) "
		"ORDER BY queued_at NULLS LAST, id LIMIT 10 FOR UPDATE SKIP LOCKED";
	Oid			types[2] = {BOOLOID, TEXTARRAYOID};
	Datum		values[2] = {BoolGetDatum(all_tenants), tenants};
	int			n;
	BatchInfo  *candidates;

	n = ApExec(sql, 2, types, values, NULL, 10);
	candidates = palloc(sizeof(BatchInfo) * Max(n, 1));
	for (int i = 0; i < n; i++)
		BatchFromRow(&candidates[i], i);
	for (int i = 0; i < n; i++)
	{
		/*
		 * Someone queued on the batch (a cancel, say) goes first: take the
		 * queue lock only if it is free, in the order every step uses.
		 */
		if (!BatchQueueLockConditional(candidates[i].id))
			continue;
		if (BatchTakeOver(&candidates[i]))
			return candidates[i].id;
	}
	return NULL;
}

/* Open one transaction's step of run_queued (non-atomic CALL). */
static void
RunQueuedStepBegin(ApprovalsCall *call)
{
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	if (!ApLockExtension())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"approvals\" was dropped while run_queued was running")));
	ApEnterSafe(call);
}

/* Close a step: commit it, so that no snapshot or lock outlives a chunk. */
static void
RunQueuedStepEnd(ApprovalsCall *call)
{
	ApLeaveSafe(call);
	SPI_commit();
	SPI_finish();
}

/*
 * One chunk of run_queued in its own transaction.  If it raises (an error,
 * a cancel, a statement timeout), the batch is handed back before the error
 * goes on: its owner is cleared and committed, so that the worker or
 * another run_queued resumes it instead of it staying "processing" for as
 * long as this session lives.
 */
static bool
RunQueuedChunk(ApprovalsCall *call, const char *batch_id)
{
	static const char *release_sql =
		"UPDATE approvals.batches SET worker_pid = NULL, worker_started = NULL "
		"WHERE id = $1 AND status = 'processing' AND worker_pid = pg_catalog.pg_backend_pid()";
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext oldcontext;
	ResourceOwner oldowner;
	volatile bool finished = false;
	ErrorData  *volatile edata = NULL;

	RunQueuedStepBegin(call);
	oldcontext = CurrentMemoryContext;
	oldowner = CurrentResourceOwner;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		finished = ApBatchStep(batch_id, ap_chunk_size);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		/* the copy must outlive RunQueuedStepEnd, whose SPI_finish frees oldcontext */
		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	if (edata)
	{
		Oid			types[1] = {TEXTOID};
		Datum		values[1] = {CStringGetTextDatum(batch_id)};

		ApExec(release_sql, 1, types, values, NULL, 0);
		RunQueuedStepEnd(call);
		ReThrowError(edata);
	}
	RunQueuedStepEnd(call);
	return finished;
}

/* CALL approvals.run_queued(max_batches) */
Datum
approvals_run_queued(PG_FUNCTION_ARGS)
{
	bool		nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	int			max_batches = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0);
	ApprovalsCall call;
	int			done = 0;
	MemoryContext loop_cxt;

	ApResolveCaller(&call.caller, NULL);
	if (!ApHasRole(call.caller.roleid, AP_ROLE_ADMIN))
		ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "run queued batches");
	if (!PG_ARGISNULL(0) && max_batches < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_batches is %d; it must be at least 1", max_batches)));

	loop_cxt = AllocSetContextCreate(CurrentMemoryContext, "approvals run_queued",
									 ALLOCSET_DEFAULT_SIZES);
	if (!nonatomic)
		ApEnterSafe(&call);
	while (max_batches == 0 || done < max_batches)
	{
		char	   *batch_id;
		bool		finished;

		if (nonatomic)
			RunQueuedStepBegin(&call);
		batch_id = ApClaimNextBatch(&call.caller);
		if (batch_id)
			batch_id = MemoryContextStrdup(loop_cxt, batch_id);
		if (nonatomic)
			RunQueuedStepEnd(&call);
		if (batch_id == NULL)
			break;
		do
		{
			CHECK_FOR_INTERRUPTS();
			if (nonatomic)
				finished = RunQueuedChunk(&call, batch_id);
			else
				finished = ApBatchStep(batch_id, ap_chunk_size);
		} while (!finished);
		done++;
		MemoryContextReset(loop_cxt);
	}
	if (!nonatomic)
		ApLeaveSafe(&call);
	MemoryContextDelete(loop_cxt);
	PG_RETURN_VOID();
}
