/*
 * batch_state.c
 *		The batch row and its items: load the row (locked or not), check that
 *		the caller may see and change it, return it as a value, finish it (a
 *		terminal status, with a NOTIFY); append items and recount the totals.
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

/* Append ids to a batch's items after position offset. */
void
ApBatchInsertItems(const char *batch_id, Datum ids, int offset)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.batch_items (batch_id, position, claim_id) "
		"SELECT $1, $3 + u.ord::integer, u.id "
		"FROM pg_catalog.unnest($2::text[]) WITH ORDINALITY AS u(id, ord)",
		3, {TEXTOID, TEXTARRAYOID, INT4OID}
	};
	Datum		values[3] = {CStringGetTextDatum(batch_id), ids, Int32GetDatum(offset)};

	ApExec(&sql, values, NULL, 0);
}

/*
 * Where a batch's items from position "from" on lie: the position of the
 * first item at or after it and of the last item (two probes of the primary
 * key, whatever the statistics).  False when no item is at or after from.
 */
bool
ApBatchItemSpan(const char *batch_id, int from, int *first, int *last)
{
	static const ApStmt sql = {
		"SELECT (SELECT min(position) FROM approvals.batch_items "
		"        WHERE batch_id = $1 AND position >= $2), "
		"       (SELECT max(position) FROM approvals.batch_items WHERE batch_id = $1)",
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

/*
 * Recompute a batch's total_claims and total_amount from its items (amounts
 * of the batch's own tenant only: another tenant's claim will fail, and its
 * amount is not the coordinator's to see).
 */
void
ApBatchRecount(const char *batch_id, const char *tenant)
{
	static const ApStmt items_sql = {
		"SELECT pg_catalog.count(*)::integer, "
		"coalesce(pg_catalog.array_agg(claim_id), '{}') "
		"FROM approvals.batch_items WHERE batch_id = $1",
		1, {TEXTOID}
	};
	enum
	{
		ITEMS_COUNT = 1, ITEMS_CLAIM_IDS
	};
	static const ApStmt sum_sql = {
		"SELECT coalesce(pg_catalog.sum(amount), 0) FROM approvals.claims "
		"WHERE id = ANY ($1) AND tenant IS NOT DISTINCT FROM $2",
		2, {TEXTARRAYOID, TEXTOID}
	};
	static const ApStmt update_sql = {
		"UPDATE approvals.batches SET total_claims = $2, total_amount = $3, "
		"updated_at = now() WHERE id = $1",
		3, {TEXTOID, INT4OID, NUMERICOID}
	};
	Datum		values[3];
	Datum		sum_values[2];
	bool		sum_nulls[2] = {false, tenant == NULL};
	bool		isnull;

	values[0] = CStringGetTextDatum(batch_id);
	ApExec(&items_sql, values, NULL, 1);
	values[1] = ApGetDatum(0, ITEMS_COUNT, &isnull);
	sum_values[0] = ApGetDatum(0, ITEMS_CLAIM_IDS, &isnull);
	sum_values[1] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	ApExec(&sum_sql, sum_values, sum_nulls, 1);
	values[2] = ApGetDatum(0, 1, &isnull);
	ApExec(&update_sql, values, NULL, 0);
}
