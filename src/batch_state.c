/*
 * batch_state.c
 *		The batch row and its items: load the row (locked or not), check that
 *		the caller may see and change it, return it as a value, finish it (a
 *		terminal status, with a NOTIFY); append items (as claim lists), find
 *		the ones not processed yet, set the totals.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"

void
ApBatchFromRow(BatchInfo *bi, int row)
{
	bool		isnull;
	Datum		d;

	bi->id = ApGetCString(row, BC_ID);
	bi->tenant = ApGetCString(row, BC_TENANT);
	bi->coordinator = ApGetCString(row, BC_COORDINATOR);
	bi->comment = ApGetCString(row, BC_COMMENT);
	bi->action = ApGetCString(row, BC_ACTION);
	bi->decision = strcmp(bi->action, "approve") == 0 ? "approved" : "rejected";
	bi->status = ApGetCString(row, BC_STATUS);
	bi->total_claims = DatumGetInt32(ApGetDatum(row, BC_TOTAL_CLAIMS, &isnull));
	bi->failed_count = DatumGetInt32(ApGetDatum(row, BC_FAILED_COUNT, &isnull));
	d = ApGetDatum(row, BC_MAX_FAILURES, &isnull);
	bi->has_max_failures = !isnull;
	bi->max_failures = isnull ? 0 : DatumGetInt32(d);
	d = ApGetDatum(row, BC_MAX_FAILURE_RATIO, &isnull);
	bi->has_max_ratio = !isnull;
	bi->max_ratio = isnull ? 0 : DatumGetFloat4(d);
	bi->rollback = strcmp(ApGetCString(row, BC_ON_THRESHOLD), "rollback") == 0;
	bi->auto_retry = DatumGetBool(ApGetDatum(row, BC_AUTO_RETRY, &isnull));
	bi->next_position = DatumGetInt32(ApGetDatum(row, BC_NEXT_POSITION, &isnull));
	bi->attempts = DatumGetInt32(ApGetDatum(row, BC_ATTEMPTS, &isnull));
	bi->worker_pid = DatumGetInt32(ApGetDatum(row, BC_WORKER_PID, &isnull));
	bi->created_by = DatumGetObjectId(ApGetDatum(row, BC_CREATED_BY, &isnull));
}

/* Load (and with lock, lock) a batch; false when it does not exist. */
bool
ApBatchLoad(const char *batch_id, bool lock, BatchInfo *bi)
{
	static const ApStmt sql_lock = {
		"SELECT " BATCH_COLUMNS " FROM approvals.batches WHERE id = $1 FOR UPDATE",
		1, {TEXTOID}
	};
	static const ApStmt sql_plain = {
		"SELECT " BATCH_COLUMNS " FROM approvals.batches WHERE id = $1",
		1, {TEXTOID}
	};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};

	if (lock)
		ApBatchQueueLock(batch_id);
	if (ApExec(lock ? &sql_lock : &sql_plain, values, NULL, 1) == 0)
		return false;
	ApBatchFromRow(bi, 0);
	return true;
}

/* Load a batch the caller may see, or raise P0002 / 42501. */
void
ApBatchLoadVisible(const ApprovalsCaller *caller, const char *batch_id, bool lock,
				 BatchInfo *bi, const char *what)
{
	if (!ApBatchLoad(batch_id, lock, bi))
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
void
ApBatchOpen(ApprovalsCall *call, const char *batch_id, bool lock, BatchInfo *bi,
		  const char *what, const char *owner_what)
{
	ApBegin(call);
	ApBatchLoadVisible(&call->caller, batch_id, lock, bi, what);
	if (owner_what)
		BatchRequireOwner(&call->caller, bi, owner_what);
}

/* The batch row as a composite Datum in the caller's memory context. */
Datum
ApBatchRowDatum(const char *batch_id)
{
	static const ApStmt sql = {
		"SELECT b FROM approvals.batches b WHERE id = $1",
		1, {TEXTOID}
	};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};
	bool		isnull;

	if (ApExec(&sql, values, NULL, 1) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("batch \"%s\" does not exist", batch_id)));
	return SPI_datumTransfer(ApGetDatum(0, 1, &isnull), false, -1);
}

/* 55000 naming the batch, its status and what was attempted. */
void
ApBatchReportState(const BatchInfo *bi, const char *what)
{
	const char *s = bi->status;

	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("batch \"%s\" is %s; cannot %s it", bi->id, s, what),
			 strcmp(s, "processing") == 0 ?
			 errhint("It is being processed (by the background worker or run_queued): wait for it with approvals.wait_batch('%s'), or stop it with approvals.cancel_batch('%s').",
					 bi->id, bi->id) :
			 strcmp(s, "queued") == 0 ?
			 errhint("It is queued: only a pending batch can be amended or started; approvals.cancel_batch('%s') withdraws it.",
					 bi->id) :
			 strcmp(s, "pending") == 0 ?
			 errhint("It is pending: approvals.start_batch('%s') queues it, approvals.process_batch('%s') processes it now.",
					 bi->id, bi->id) :
			 errhint("It is finished: approvals.batch_results('%s') lists what it did.", bi->id)));
}

/* NOTIFY approvals about a batch that completed, failed or was cancelled. */
static void
NotifyBatch(const char *batch_id)
{
	static const ApStmt sql = {
		"SELECT status, total_claims, processed_count, approved_count, rejected_count, "
		"failed_count, reverted_count FROM approvals.batches WHERE id = $1",
		1, {TEXTOID}
	};
	enum
	{
		NB_STATUS = 1, NB_FIRST_COUNTER	/* then the other counters, in counters[] order */
	};
	static const char *const counters[] = {"total_claims", "processed_count",
		"approved_count", "rejected_count", "failed_count", "reverted_count"};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};
	StringInfoData buf;

	if (ApExec(&sql, values, NULL, 1) != 1)
		return;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	ApJsonAppendPair(&buf, "batch_id", batch_id);
	ApJsonAppendPair(&buf, "status", ApGetCString(0, NB_STATUS));
	for (int i = 0; i < 6; i++)
	{
		appendStringInfoChar(&buf, ',');
		escape_json(&buf, counters[i]);
		appendStringInfo(&buf, ":%s", ApGetCString(0, NB_FIRST_COUNTER + i));
	}
	appendStringInfoChar(&buf, '}');
	ApNotify(buf.data);
}

/* Put a batch into a terminal status (with an error text, or NULL). */
void
ApBatchFinish(const char *batch_id, const char *status, const char *error)
{
	static const ApStmt sql = {
		"UPDATE approvals.batches SET status = $2, error = coalesce($3, error), "
		"worker_pid = NULL, worker_started = NULL, updated_at = now(), "
		"completed_at = CASE WHEN $2 <> 'cancelled' THEN now() END, "
		"cancelled_at = CASE WHEN $2 = 'cancelled' THEN now() END WHERE id = $1",
		3, {TEXTOID, TEXTOID, TEXTOID}
	};
	Datum		values[3];
	bool		nulls[3] = {false, false, error == NULL};

	values[0] = CStringGetTextDatum(batch_id);
	values[1] = CStringGetTextDatum(status);
	values[2] = error ? CStringGetTextDatum(error) : (Datum) 0;
	ApExec(&sql, values, nulls, 0);
	NotifyBatch(batch_id);
}

/*
 * Append n claim ids to a batch's items, at positions offset + 1 on: stored
 * as claim lists of at most AP_ITEM_LIST_SIZE ids (one row each), which a
 * chunk turns into result rows as it processes them.
 */
void
ApBatchInsertItems(const char *batch_id, char **ids, int n, int offset)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.batch_item_lists (batch_id, first_position, last_position, claim_ids) "
		"VALUES ($1, $2, $3, $4)",
		4, {TEXTOID, INT4OID, INT4OID, TEXTARRAYOID}
	};
	/* a chunk that ends inside a list cuts it: lists no longer than a chunk */
	int			size = Max(1, Min(AP_ITEM_LIST_SIZE, ap_chunk_size));
	MemoryContext list_cxt = AllocSetContextCreate(CurrentMemoryContext,
												   "approvals claim list",
												   ALLOCSET_DEFAULT_SIZES);
	Datum		values[4];

	values[0] = CStringGetTextDatum(batch_id);
	for (int k = 0; k < n; k += size)
	{
		int			m = Min(size, n - k);
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(list_cxt);
		values[1] = Int32GetDatum(offset + k + 1);
		values[2] = Int32GetDatum(offset + k + m);
		values[3] = ApCStringArrayDatum(ids + k, m);
		MemoryContextSwitchTo(old);
		ApExec(&sql, values, NULL, 0);
		MemoryContextReset(list_cxt);
	}
	MemoryContextDelete(list_cxt);
}

/*
 * Where a batch's items not processed yet lie: the position of the first and
 * of the last.  Probes of the claim lists' primary key, whatever the
 * statistics; the first is looked for from position "from" (the batch's
 * next_position, before which a list holds no item) on, which skips the lists
 * this transaction already deleted, and only if there is none there, from the
 * start.  False when there is none.
 */
bool
ApBatchItemSpan(const char *batch_id, int from, int *first, int *last)
{
	static const ApStmt sql = {
		"SELECT coalesce((SELECT min(first_position) FROM approvals.batch_item_lists "
		"                 WHERE batch_id = $1 AND first_position >= $2), "
		"                (SELECT min(first_position) FROM approvals.batch_item_lists "
		"                 WHERE batch_id = $1)), "
		"       (SELECT l.last_position FROM approvals.batch_item_lists l WHERE l.batch_id = $1 "
		"        ORDER BY l.first_position DESC LIMIT 1)",
		2, {TEXTOID, INT4OID}
	};
	Datum		values[2] = {CStringGetTextDatum(batch_id), Int32GetDatum(from)};
	bool		first_null;
	bool		last_null;

	ApExec(&sql, values, NULL, 1);
	*first = DatumGetInt32(ApGetDatum(0, 1, &first_null));
	*last = DatumGetInt32(ApGetDatum(0, 2, &last_null));
	return !first_null && !last_null;
}

/* The claim ids of a pending batch's items, in no particular order (a text[]). */
Datum
ApBatchClaimIds(const char *batch_id)
{
	static const ApStmt sql = {
		"SELECT coalesce(pg_catalog.array_agg(u.id), '{}') "
		"FROM approvals.batch_item_lists l, pg_catalog.unnest(l.claim_ids) AS u(id) "
		"WHERE l.batch_id = $1",
		1, {TEXTOID}
	};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};
	bool		isnull;

	ApExec(&sql, values, NULL, 1);
	return ApGetDatum(0, 1, &isnull);
}

/*
 * Set a batch's total_claims and total_amount from its claim ids (amounts of
 * the batch's own tenant only: another tenant's claim will fail, and its
 * amount is not the coordinator's to see).
 */
void
ApBatchSetTotals(const char *batch_id, const char *tenant, Datum claim_ids)
{
	/* a generic plan: no index but the primary key can take the ids */
	static const ApStmt sum_sql = {
		AP_GENERIC_PLAN "SELECT coalesce(pg_catalog.sum(amount), 0) FROM approvals.claims "
		"WHERE id = ANY ($1) AND tenant IS NOT DISTINCT FROM $2",
		2, {TEXTARRAYOID, TEXTOID}
	};
	static const ApStmt update_sql = {
		"UPDATE approvals.batches SET total_claims = $2, total_amount = $3, "
		"updated_at = now() WHERE id = $1",
		3, {TEXTOID, INT4OID, NUMERICOID}
	};
	ArrayType  *arr = DatumGetArrayTypeP(claim_ids);
	Datum		values[3];
	Datum		sum_values[2] = {PointerGetDatum(arr),
	tenant ? CStringGetTextDatum(tenant) : (Datum) 0};
	bool		sum_nulls[2] = {false, tenant == NULL};
	bool		isnull;

	ApExec(&sum_sql, sum_values, sum_nulls, 1);
	values[0] = CStringGetTextDatum(batch_id);
	values[1] = Int32GetDatum((int32) ApArrayLength(claim_ids));
	values[2] = ApGetDatum(0, 1, &isnull);
	ApExec(&update_sql, values, NULL, 0);
}
