/*
 * batch_api.c
 *		The SQL functions of batches: create_batch, update_batch, start_batch,
 *		process_batch, cancel_batch, batch_results, get_batch, list_batches,
 *		wait_batch, purge_batches and CALL run_queued.  Processing itself is the
 *		driver's (batch_run.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "commands/dbcommands.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"

PG_FUNCTION_INFO_V1(approvals_create_batch);
PG_FUNCTION_INFO_V1(approvals_update_batch);
PG_FUNCTION_INFO_V1(approvals_start_batch);
PG_FUNCTION_INFO_V1(approvals_process_batch);
PG_FUNCTION_INFO_V1(approvals_api_process_batch);
PG_FUNCTION_INFO_V1(approvals_batch_of_file);
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

/* ------------------------------------------------------------------------
 * Claim id lists
 * ------------------------------------------------------------------------ */

static int
CompareCStrings(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* A batch may hold at most approvals.max_batch_claims claims. */
static void
CheckBatchLimit(int64 total)
{
	if (total > ap_max_batch_claims)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a batch of %lld claims is over the limit of %d",
						(long long) total, ap_max_batch_claims),
				 errhint("The limit is the setting approvals.max_batch_claims.")));
}

/*
 * A list of claim ids given as argument argname: no NULLs, no empty ids, no
 * duplicates, and (with the ids already in the batch) at most
 * approvals.max_batch_claims, counted before any element is read, so that an
 * oversized array costs no memory.  Returns the ids in the given order.
 */
static char **
ClaimIdsArg(Datum arr, const char *argname, int already, int *n)
{
	int64		count = ApArrayLength(arr);
	char	  **ids;
	char	  **sorted;

	if (count == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", argname)));
	CheckBatchLimit(count + already);
	ids = ApTextArrayToCStrings(arr, n);
	for (int i = 0; i < *n; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (ids[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain NULL (element %d)", argname, i + 1)));
		if (ids[i][0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain an empty id (element %d)", argname, i + 1)));
	}
	sorted = palloc(sizeof(char *) * *n);
	memcpy(sorted, ids, sizeof(char *) * *n);
	qsort(sorted, *n, sizeof(char *), CompareCStrings);
	for (int i = 1; i < *n; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s lists claim \"%s\" more than once", argname, sorted[i])));
	pfree(sorted);
	return ids;
}

/*
 * start_batch's confirmation list is not the batch's claims: name the first
 * claim it misses and the first it lists in excess, when known.
 */
static void ReportConfirmMismatch(const char *batch_id, int n_items, int64 n_confirm,
								  const char *missing, const char *unexpected) pg_attribute_noreturn();

static void
ReportConfirmMismatch(const char *batch_id, int n_items, int64 n_confirm,
					  const char *missing, const char *unexpected)
{
	ereport(ERROR,
			(errcode(ERRCODE_APPROVALS_CONFIRMATION),
			 errmsg("confirmation does not match batch \"%s\"", batch_id),
			 errdetail("The batch has %d claims, the confirmation lists %lld%s%s%s%s%s%s.",
					   n_items, (long long) n_confirm,
					   missing ? "; not confirmed: \"" : "", missing ? missing : "",
					   missing ? "\"" : "",
					   unexpected ? "; not in the batch: \"" : "",
					   unexpected ? unexpected : "", unexpected ? "\"" : ""),
			 errhint("List every claim id of the batch exactly once; the batch stays pending.")));
}

/* ------------------------------------------------------------------------
 * create_batch, update_batch, start_batch
 * ------------------------------------------------------------------------ */

/* approvals.create_batch(...) */
Datum
approvals_create_batch(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.batches (id, tenant, coordinator, comment, action, status, "
		"max_failures, max_failure_ratio, on_threshold, auto_retry, idempotency_key, "
		"created_by, queued_at, reference, tracking_id) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
		"CASE WHEN $6 = 'queued' THEN now() END, $13, $14::uuid)",
		14, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID, FLOAT4OID, TEXTOID, BOOLOID, TEXTOID, OIDOID, TEXTOID, TEXTOID}
	};
	Datum		values[14];
	bool		nulls[14];
	char	   *comment = ApArgCString(fcinfo, 2);
	char	   *action = PG_ARGISNULL(3) ? "approve" : ApArgCString(fcinfo, 3);
	bool		start = PG_ARGISNULL(4) ? true : PG_GETARG_BOOL(4);
	char	   *tenant = ApArgCString(fcinfo, 5);
	char	   *on_threshold = PG_ARGISNULL(8) ? "rollback" : ApArgCString(fcinfo, 8);
	bool		auto_retry = PG_ARGISNULL(9) ? true : PG_GETARG_BOOL(9);
	char	   *idem_key = ApArgCString(fcinfo, 10);
	char	   *reference = ApArgCString(fcinfo, 11);
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
	ApCheckLength("reference", reference, AP_MAX_REFERENCE);
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
	ids = ClaimIdsArg(PG_GETARG_DATUM(0), "claim_ids", 0, &n);

	ApBegin(&call);
	ApRequireTenant(&call.caller, tenant, "create batches");
	id = ApNewId("bat_", tenant);
	if (idem_key)
	{
		char	   *existing = ApIdempotencyLookup("batch", call.caller.actor, idem_key,
												 ApTextArrayFromArgs(fcinfo, 10), id);

		if (existing)
		{
			result = ApBatchRowDatum(existing);
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
	nulls[12] = (reference == NULL);
	values[12] = reference ? CStringGetTextDatum(reference) : (Datum) 0;
	nulls[13] = false;
	values[13] = CStringGetTextDatum(ApNewTrackingId(tenant));
	ApExec(&sql, values, nulls, 0);

	ApBatchInsertItems(id, ids, n, 0);
	ApBatchSetTotals(id, tenant, PG_GETARG_DATUM(0));
	if (start)
		ApQueueWake();

	result = ApBatchRowDatum(id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.update_batch(batch_id, claim_ids, add_claim_ids, comment) */
Datum
approvals_update_batch(PG_FUNCTION_ARGS)
{
	/* a pending batch: all its items are in its claim lists */
	static const ApStmt delete_sql = {
		"DELETE FROM approvals.batch_item_lists WHERE batch_id = $1",
		1, {TEXTOID}
	};
	static const ApStmt dup_sql = {
		"SELECT u.id FROM approvals.batch_item_lists l, "
		"pg_catalog.unnest(l.claim_ids) WITH ORDINALITY AS u(id, o) "
		"WHERE l.batch_id = $1 AND u.id = ANY ($2) ORDER BY l.first_position, u.o LIMIT 1",
		2, {TEXTOID, TEXTARRAYOID}
	};
	static const ApStmt max_sql = {
		"SELECT coalesce(max(last_position), 0), "
		"coalesce(sum(last_position - first_position + 1), 0)::integer "
		"FROM approvals.batch_item_lists WHERE batch_id = $1",
		1, {TEXTOID}
	};
	enum
	{
		MAX_POSITION = 1, MAX_COUNT
	};
	static const ApStmt comment_sql = {
		"UPDATE approvals.batches SET comment = $2, updated_at = now() WHERE id = $1",
		2, {TEXTOID, TEXTOID}
	};
	Datum		values[2];
	char	   *batch_id;
	char	   *comment = ApArgCString(fcinfo, 3);
	char	  **ids = NULL;
	char	  **add_ids = NULL;
	int			n = 0;
	int			n_add = 0;
	ApprovalsCall call;
	BatchInfo	bi;
	Datum		result;
	bool		isnull;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "update batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");
	ApCheckLength("comment", comment, AP_MAX_COMMENT);
	if (!PG_ARGISNULL(1))
		ids = ClaimIdsArg(PG_GETARG_DATUM(1), "claim_ids", 0, &n);
	if (!PG_ARGISNULL(2))
		add_ids = ClaimIdsArg(PG_GETARG_DATUM(2), "add_claim_ids", 0, &n_add);

	ApBatchOpen(&call, batch_id, true, &bi, "update batches", "update");
	if (strcmp(bi.status, "pending") != 0)
		ApBatchReportState(&bi, "amend");
	values[0] = CStringGetTextDatum(batch_id);

	if (!PG_ARGISNULL(1))
	{
		ApExec(&delete_sql, values, NULL, 0);
		ApBatchInsertItems(batch_id, ids, n, 0);
	}
	if (!PG_ARGISNULL(2))
	{
		int			max_position;
		int			count;

		ApExec(&max_sql, values, NULL, 1);
		max_position = DatumGetInt32(ApGetDatum(0, MAX_POSITION, &isnull));
		count = DatumGetInt32(ApGetDatum(0, MAX_COUNT, &isnull));
		CheckBatchLimit((int64) count + n_add);
		values[1] = PG_GETARG_DATUM(2);
		if (ApExec(&dup_sql, values, NULL, 1) == 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("claim \"%s\" is already in batch \"%s\"",
							ApGetCString(0, 1), batch_id)));
		ApBatchInsertItems(batch_id, add_ids, n_add, max_position);
	}
	if (comment)
	{
		Datum		cvalues[2] = {values[0], CStringGetTextDatum(comment)};

		ApExec(&comment_sql, cvalues, NULL, 0);
	}
	ApBatchSetTotals(batch_id, bi.tenant, ApBatchClaimIds(batch_id));

	result = ApBatchRowDatum(batch_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.start_batch(batch_id, confirm_claim_ids) */
Datum
approvals_start_batch(PG_FUNCTION_ARGS)
{
	static const ApStmt queue_sql = {
		"UPDATE approvals.batches SET status = 'queued', queued_at = now(), updated_at = now() "
		"WHERE id = $1",
		1, {TEXTOID}
	};
	Datum		values[1];
	char	   *batch_id;
	ApprovalsCall call;
	BatchInfo	bi;
	Datum		result;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "start batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");

	ApBatchOpen(&call, batch_id, true, &bi, "start batches", "start");
	if (strcmp(bi.status, "pending") != 0)
		ApBatchReportState(&bi, "start");
	values[0] = CStringGetTextDatum(batch_id);

	if (!PG_ARGISNULL(1))
	{
		int			n_confirm;
		int			n_items = 0;
		char	  **confirm;
		char	  **items = NULL;
		int			i = 0,
					j = 0;
		char	   *missing = NULL;
		char	   *unexpected = NULL;

		int64		n_listed = ApArrayLength(PG_GETARG_DATUM(1));

		/* a list longer than any batch can be is not read */
		if (n_listed > ap_max_batch_claims)
			ReportConfirmMismatch(batch_id, bi.total_claims, n_listed, NULL, NULL);
		confirm = ApTextArrayToCStrings(PG_GETARG_DATUM(1), &n_confirm);
		items = ApTextArrayToCStrings(ApBatchClaimIds(batch_id), &n_items);
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
			ReportConfirmMismatch(batch_id, n_items, n_confirm, missing, unexpected);
	}

	ApExec(&queue_sql, values, NULL, 0);
	ApQueueWake();
	result = ApBatchRowDatum(batch_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* ------------------------------------------------------------------------
 * process_batch, cancel_batch, results, get, list, wait, purge
 * ------------------------------------------------------------------------ */

/*
 * Emit (claim_id, decision, error, processed_at) for every item of a batch,
 * in position order: its result rows and claim lists, read in one statement
 * (one snapshot: an item a chunk moves from a list to a result row meanwhile
 * is seen once) a few rows at a time through a cursor, their arrays expanded
 * here in order (no sort), each row's in a context reset after it: flat
 * memory for any batch.  A row without decisions is a claim list.
 */
static void
EmitResults(FunctionCallInfo fcinfo, const char *batch_id)
{
	static const ApStmt sql = {
		"SELECT first_position, claim_ids, decisions, errors, processed_at "
		"FROM approvals.batch_item_results WHERE batch_id = $1 "
		"UNION ALL "
		"SELECT first_position, claim_ids, NULL, NULL, NULL "
		"FROM approvals.batch_item_lists WHERE batch_id = $1 "
		"ORDER BY 1",
		1, {TEXTOID}
	};
	enum
	{
		ROW_CLAIM_IDS = 2, ROW_DECISIONS, ROW_ERRORS, ROW_PROCESSED_AT
	};
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Datum		id = CStringGetTextDatum(batch_id);
	MemoryContext caller_cxt = CurrentMemoryContext;
	MemoryContext row_cxt = AllocSetContextCreate(caller_cxt, "approvals batch item rows",
												  ALLOCSET_DEFAULT_SIZES);
	Portal		portal = ApCursorOpen(&sql, &id, NULL);

	if (rsinfo->setDesc->natts != 4)
		elog(ERROR, "batch results have %d columns, expected 4", rsinfo->setDesc->natts);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, 8);
		MemoryContextSwitchTo(caller_cxt);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			Datum	   *arrays[3] = {NULL, NULL, NULL};
			bool	   *array_nulls[3] = {NULL, NULL, NULL};
			int			counts[3] = {0, 0, 0};
			Datum		cols[4] = {0, 0, 0, 0};
			bool		colnulls[4] = {false, true, true, true};
			bool		results;
			bool		isnull;

			MemoryContextSwitchTo(row_cxt);
			(void) ApGetDatum((int) r, ROW_DECISIONS, &isnull);
			results = !isnull;
			for (int a = 0; a < (results ? 3 : 1); a++)
			{
				Datum		d = ApGetDatum((int) r, ROW_CLAIM_IDS + a, &isnull);

				if (isnull)
					elog(ERROR, "an item row of batch \"%s\" has a NULL array", batch_id);
				deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
								  &arrays[a], &array_nulls[a], &counts[a]);
			}
			if (results)
			{
				if (counts[1] != counts[0] || counts[2] != counts[0])
					elog(ERROR, "a result row of batch \"%s\" has arrays of different lengths",
						 batch_id);
				cols[3] = ApGetDatum((int) r, ROW_PROCESSED_AT, &colnulls[3]);
			}
			for (int k = 0; k < counts[0]; k++)
			{
				cols[0] = arrays[0][k];
				colnulls[0] = array_nulls[0][k];
				if (results)
				{
					cols[1] = arrays[1][k];
					colnulls[1] = array_nulls[1][k];
					cols[2] = arrays[2][k];
					colnulls[2] = array_nulls[2][k];
				}
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, cols, colnulls);
			}
			MemoryContextSwitchTo(caller_cxt);
			MemoryContextReset(row_cxt);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_freetuptable(SPI_tuptable);
	SPI_cursor_close(portal);
	MemoryContextDelete(row_cxt);
}

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

	ApBatchOpen(&call, batch_id, true, &bi, "process batches", "process");
	if (strcmp(bi.status, "pending") != 0 && strcmp(bi.status, "queued") != 0)
		ApBatchReportState(&bi, "process");
	(void) ApBatchTakeOver(&bi);
	(void) ApBatchRun(batch_id, ApTxnInline);	/* errors propagate */
	EmitResults(fcinfo, batch_id);
	ApEnd(&call);
	return (Datum) 0;
}

/*
 * approvals.api_process_batch(batch_id, override_threshold, auto_retry): seed
 * 003's "process batch payments": process_batch with the threshold rule
 * (override: continue, else rollback) and the retry rule recorded on the
 * batch, answered with the batch's statistics (api_batch_statistics).
 */
Datum
approvals_api_process_batch(PG_FUNCTION_ARGS)
{
	static const ApStmt options_sql = {
		"UPDATE approvals.batches SET on_threshold = $2, auto_retry = $3, updated_at = now() "
		"WHERE id = $1",
		3, {TEXTOID, TEXTOID, BOOLOID}
	};
	static const ApStmt stats_sql = {
		"SELECT approvals.api_batch_statistics($1)",
		1, {TEXTOID}
	};
	char	   *batch_id;
	bool		override = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	bool		auto_retry = PG_ARGISNULL(2) ? true : PG_GETARG_BOOL(2);
	ApprovalsCall call;
	BatchInfo	bi;
	Datum		values[3];
	bool		isnull;
	Datum		result;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_COORDINATOR, "process batches");
	batch_id = ApRequiredCString(fcinfo, 0, "batch_id");

	ApBatchOpen(&call, batch_id, true, &bi, "process batches", "process");
	if (strcmp(bi.status, "pending") != 0 && strcmp(bi.status, "queued") != 0)
		ApBatchReportState(&bi, "process");
	values[0] = CStringGetTextDatum(batch_id);
	values[1] = CStringGetTextDatum(override ? "continue" : "rollback");
	values[2] = BoolGetDatum(auto_retry);
	ApExec(&options_sql, values, NULL, 0);
	(void) ApBatchTakeOver(&bi);
	(void) ApBatchRun(batch_id, ApTxnInline);	/* errors propagate */
	ApExec(&stats_sql, values, NULL, 1);
	result = SPI_datumTransfer(ApGetDatum(0, 1, &isnull), false, -1);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/*
 * approvals.batch_of_file(file_id, tracking_id): the batch a payout-file
 * request names (seed 002 takes either id): 22023 when it names none, or two
 * different batches; P0002 when the batch does not exist (or is invisible).
 */
Datum
approvals_batch_of_file(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"SELECT id FROM approvals.batches WHERE tracking_id = $1::uuid",
		1, {TEXTOID}
	};
	char	   *file_id = ApArgCString(fcinfo, 0);
	char	   *tracking_id = ApArgCString(fcinfo, 1);
	char	   *batch_id = file_id;
	ApprovalsCall call;
	BatchInfo	bi;
	Datum		result;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_READER, "read batches");
	if (file_id == NULL && tracking_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the request names no file: give file_id or tracking_id")));
	if (tracking_id != NULL)
	{
		/* a uuid, in any of the forms uuid_in accepts, is hex digits, dashes and braces */
		if (strlen(tracking_id) < 32 || strlen(tracking_id) > 40 ||
			strspn(tracking_id, "0123456789abcdefABCDEF-{}") != strlen(tracking_id))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tracking_id \"%s\" is not a UUID", tracking_id)));
	}

	ApBegin(&call);
	if (tracking_id != NULL)
	{
		Datum		values[1] = {CStringGetTextDatum(tracking_id)};
		char	   *found;

		if (ApExec(&sql, values, NULL, 1) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_NO_DATA_FOUND),
					 errmsg("no batch has tracking_id \"%s\"", tracking_id)));
		found = ApGetCString(0, 1);
		if (file_id != NULL && strcmp(file_id, found) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("file_id \"%s\" and tracking_id \"%s\" name different batches",
							file_id, tracking_id),
					 errdetail("tracking_id \"%s\" is batch \"%s\".", tracking_id, found)));
		batch_id = found;
	}
	ApBatchLoadVisible(&call.caller, batch_id, false, &bi, "read batches");
	result = SPI_datumTransfer(CStringGetTextDatum(batch_id), false, -1);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.cancel_batch(batch_id, comment) */
Datum
approvals_cancel_batch(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"SELECT cancelled_at FROM approvals.batches WHERE id = $1",
		1, {TEXTOID}
	};
	ReturnSetInfo *rsinfo;
	char	   *batch_id;
	char	   *comment = ApArgCString(fcinfo, 1);
	ApprovalsCall call;
	BatchInfo	bi;
	int			reverted = 0;
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
	ApBatchOpen(&call, batch_id, true, &bi, "cancel batches", "cancel");
	if (strcmp(bi.status, "pending") != 0 && strcmp(bi.status, "queued") != 0 &&
		strcmp(bi.status, "processing") != 0)
		ApBatchReportState(&bi, "cancel");
	if (strcmp(bi.status, "processing") == 0)
		reverted = ApBatchRevert(&bi, call.caller.actor,
							   comment ? comment : "batch cancelled");
	ApBatchFinish(batch_id, "cancelled", NULL);
	values[0] = CStringGetTextDatum(batch_id);
	ApExec(&sql, values, NULL, 1);
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

	ApBatchOpen(&call, batch_id, false, &bi, "read batches", NULL);
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

	ApBatchOpen(&call, batch_id, false, &bi, "read batches", NULL);
	result = ApBatchRowDatum(batch_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.list_batches(status, coordinator, page, page_limit): newest first. */
Datum
approvals_list_batches(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"SELECT b FROM approvals.batches b "
		"WHERE ($1::text IS NULL OR b.status = $1) "
		"AND ($2::text IS NULL OR b.coordinator = $2) "
		"AND ($3 OR b.tenant IS NULL OR b.tenant = ANY ($4)) "
		"ORDER BY b.created_at DESC, b.id DESC LIMIT $5 OFFSET $6",
		6, {TEXTOID, TEXTOID, BOOLOID, TEXTARRAYOID, INT4OID, INT8OID}
	};
	ReturnSetInfo *rsinfo;
	char	   *status = ApArgCString(fcinfo, 0);
	char	   *coordinator = ApArgCString(fcinfo, 1);
	int			page = PG_ARGISNULL(2) ? 1 : PG_GETARG_INT32(2);
	int			limit = PG_ARGISNULL(3) ? 20 : PG_GETARG_INT32(3);
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
	n = ApExec(&sql, values, nulls, 0);
	ApPutWholeRows(rsinfo, n);
	ApEnd(&call);
	return (Datum) 0;
}

/*
 * now() + timeout, or "never" for a timeout too large to add (a caller who
 * asks to wait a million years means "until it finishes").
 */
static TimestampTz
WaitDeadline(Datum timeout)
{
	Interval   *in = DatumGetIntervalP(timeout);

	/* any part alone may overflow the addition, whatever the others make of the total */
	if (ApIntervalOver(timeout, "100 years") || in->month > 1200 || in->day > 36600)
		return DT_NOEND;
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(GetCurrentTimestamp()),
												   timeout));
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
	deadline = WaitDeadline(PG_GETARG_DATUM(1));

	ApBegin(&call);
	for (int poll = 0;; poll++)
	{
		bool		terminal;
		char		status[NAMEDATALEN];

		/*
		 * Each poll in its own SPI connection: nothing accumulates while
		 * waiting (bi's strings die with it; status is copied out).
		 */
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		ApBatchLoadVisible(&call.caller, batch_id, false, &bi, "read batches");
		strlcpy(status, bi.status, sizeof(status));
		SPI_finish();
		terminal = strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
			strcmp(status, "cancelled") == 0;
		if (terminal || GetCurrentTimestamp() >= deadline)
			break;
		if (poll == 0 && strcmp(status, "pending") == 0)
			/* only start_batch, or a process_batch (another transaction's), moves it */
			ereport(NOTICE,
					(errmsg("batch \"%s\" is pending: nothing processes it until it is started",
							batch_id),
					 errhint("Call approvals.start_batch('%s') to queue it, or approvals.process_batch('%s') to process it now.",
							 batch_id, batch_id)));
		else if (poll == 0 && !ApQueueServesThisDatabase())
			ereport(NOTICE,
					(errmsg("no background worker processes batches in database \"%s\"",
							get_database_name(MyDatabaseId)),
					 errdetail("Batch \"%s\" is %s; it moves only when CALL approvals.run_queued() runs.",
							   batch_id, status),
					 errhint("Run CALL approvals.run_queued() (from psql or a pg_cron job), or preload approvals (shared_preload_libraries) with approvals.worker_enabled on.")));
		if (IsolationUsesXactSnapshot())
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
					 errmsg("wait_batch cannot see batch \"%s\" progress in a %s transaction",
							batch_id, IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
					 errdetail("The batch is %s; this transaction's snapshot will not show it change.",
							   status),
					 errhint("Call wait_batch outside a transaction block, or in a READ COMMITTED transaction.")));
		ApSleep(50);
	}
	result = ApBatchRowDatum(batch_id);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.purge_batches(older_than): delete finished batches and their items. */
Datum
approvals_purge_batches(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"WITH d AS (DELETE FROM approvals.batches "
		"  WHERE status IN ('completed', 'failed', 'cancelled') "
		"  AND coalesce(completed_at, cancelled_at, updated_at) < now() - $1 RETURNING id), "
		"l AS (DELETE FROM approvals.batch_item_lists WHERE batch_id IN (SELECT id FROM d)), "
		"r AS (DELETE FROM approvals.batch_item_results WHERE batch_id IN (SELECT id FROM d)) "
		"SELECT pg_catalog.count(*)::integer FROM d",
		1, {INTERVALOID}
	};
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
	/* nothing finished before now() minus a span too large to subtract */
	if (WaitDeadline(values[0]) == DT_NOEND)
		PG_RETURN_INT32(0);

	ApBegin(&call);
	ApExec(&sql, values, NULL, 1);
	n = DatumGetInt32(ApGetDatum(0, 1, &isnull));
	ApEnd(&call);
	PG_RETURN_INT32(n);
}

/*
 * CALL approvals.run_queued(max_batches): take and run queued batches of the
 * caller's tenants in this session, through the driver; as a CALL it
 * commits after every chunk, in a transaction block it runs in that
 * transaction.  A chunk that fails for good has handed its batch back; its
 * error goes on to the caller.
 */
Datum
approvals_run_queued(PG_FUNCTION_ARGS)
{
	bool		nonatomic = fcinfo->context && IsA(fcinfo->context, CallContext) &&
		!castNode(CallContext, fcinfo->context)->atomic;
	ApTxnFn		txn = nonatomic ? ApTxnCall : ApTxnInline;
	int			max_batches = PG_ARGISNULL(0) ? 0 : PG_GETARG_INT32(0);
	ApprovalsCaller caller;
	int			done = 0;
	MemoryContext loop_cxt;

	ApResolveCaller(&caller, NULL);
	if (!ApHasRole(caller.roleid, AP_ROLE_ADMIN))
		ApRequireRole(caller.roleid, AP_ROLE_COORDINATOR, "run queued batches");
	if (!PG_ARGISNULL(0) && max_batches < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_batches is %d; it must be at least 1", max_batches)));
	ApRequireSchemaVersion();

	/* survives the commits of a non-atomic CALL, like this function's own context */
	loop_cxt = AllocSetContextCreate(CurrentMemoryContext, "approvals run_queued",
									 ALLOCSET_DEFAULT_SIZES);
	while (max_batches == 0 || done < max_batches)
	{
		char	   *batch_id;
		ErrorData  *error;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(loop_cxt);
		if (!ApBatchTakeNext(&caller, txn, loop_cxt, &batch_id, &error))
			ReThrowError(error);
		if (batch_id == NULL)
			break;
		error = ApBatchRun(batch_id, txn);
		if (error)
			ReThrowError(error);
		done++;
	}
	MemoryContextDelete(loop_cxt);
	PG_RETURN_VOID();
}
