/*
 * batch_chunk.c
 *		One chunk of a batch: its next items (at most chunk_size), decided
 *		first by one statement that takes no lock ahead (uncontended, the
 *		usual case); the claims it left undecided, or all of them when that
 *		statement could not finish without waiting, are then locked in id order
 *		(SKIP LOCKED, waited for with the retry policy when auto_retry) and
 *		classified, the rest decided by one set-based statement per group of
 *		items; then the items' results and the batch's counters are written in
 *		one statement each, and the failure threshold checked (rolling the
 *		batch back when it says so).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/multixact.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/procarray.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "batch.h"

static bool ChunkInner(const char *batch_id, int chunk_size);

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
	char	  **inbox_ids;		/* locked claims that are in someone's inbox */
	int			n_inbox;
	const char *actor;
	HTAB	   *index;			/* claim id -> item */
} ChunkState;

/*
 * What deciding claims writes, in both statements that decide them (the
 * uncontended one and ChunkApplyGroup): $2 the decision, $3 the actor, $4
 * the batch, $5 the comment; CTE c returns the claims decided, e their events.
 */
#define DECIDE_CLAIMS_SET \
	"UPDATE approvals.claims c SET status = $2, reviewer = $3, batch_id = $4, " \
	"  assignee = NULL, decided_at = now(), updated_at = now() "
#define DECIDE_EVENTS \
	"e AS (" \
	"  INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action, " \
	"    from_status, to_status, comment, snapshot_hash) " \
	"  SELECT id, $4, tenant, $3, $2, 'pending', $2, $5, snapshot_hash FROM c " \
	"  RETURNING claim_id, id) "

/* Decide a group of locked claims: set-based update + events + handlers. */
static void
ChunkApplyGroup(void *state, int lo, int hi)
{
	/* returns ApApplyStatement's ApplyRow rows */
	static const ApStmt sql = {
		"WITH c AS (" DECIDE_CLAIMS_SET
		"  WHERE c.ctid = ANY ($1) AND c.status = 'pending' "
		"  RETURNING c.id, c.tenant, c.snapshot_hash, c.resource_type), "
		DECIDE_EVENTS
		APPLY_HANDLER_ROWS,
		5, {TIDARRAYOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	};
	ChunkState *cs = (ChunkState *) state;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, cs->bi->comment == NULL};
	Datum	   *tids;

	tids = palloc(sizeof(Datum) * (hi - lo));
	for (int k = lo; k < hi; k++)
		tids[k - lo] = PointerGetDatum(&cs->apply_tids[k]);
	values[0] = PointerGetDatum(construct_array(tids, hi - lo, TIDOID, sizeof(ItemPointerData),
												false, TYPALIGN_SHORT));
	values[1] = CStringGetTextDatum(cs->bi->decision);
	values[2] = CStringGetTextDatum(cs->actor);
	values[3] = CStringGetTextDatum(cs->bi->id);
	values[4] = cs->bi->comment ? CStringGetTextDatum(cs->bi->comment) : (Datum) 0;
	ApApplyStatement(&sql, values, nulls, NULL, NULL);
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
 * How long the uncontended statement may wait for a row lock before it gives
 * up (rolled back) and the chunk takes the lock pass instead, which skips
 * locked claims rather than waiting for them.
 */
#define CHUNK_UNCONTENDED_LOCK_TIMEOUT "10ms"

/* What claim_row_unlocked keeps between calls of one statement (fn_extra). */
typedef struct RowCheckCache
{
	Oid			relid;			/* approvals.claims */
	BlockNumber nblocks;		/* its size when last looked at */
} RowCheckCache;

/*
 * approvals.claim_row_unlocked(claim_row tid) -> boolean: does no other
 * transaction hold (or is still writing) the approvals.claims row version at
 * that location?  The uncontended statement leaves such claims to the lock
 * pass, which skips them, rather than waiting for them.  Reads the row's
 * header only; a location that holds no row version answers true (an update
 * finds nothing there), and so does anything but a heap table.
 */
PG_FUNCTION_INFO_V1(approvals_claim_row_unlocked);
Datum
approvals_claim_row_unlocked(PG_FUNCTION_ARGS)
{
	ItemPointer tid = (ItemPointer) PG_GETARG_POINTER(0);
	BlockNumber block = ItemPointerGetBlockNumberNoCheck(tid);
	OffsetNumber offset = ItemPointerGetOffsetNumberNoCheck(tid);
	RowCheckCache *cache = (RowCheckCache *) fcinfo->flinfo->fn_extra;
	Relation	rel;
	Buffer		buf;
	Page		page;
	uint16		infomask = HEAP_XMAX_INVALID;
	TransactionId xmax = InvalidTransactionId;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(RowCheckCache));
		cache->relid = get_relname_relid("claims", get_namespace_oid("approvals", false));
		if (!OidIsValid(cache->relid))
			elog(ERROR, "table approvals.claims does not exist");
		fcinfo->flinfo->fn_extra = cache;
	}
	/* kept until the end of the transaction, so the table cannot shrink meanwhile */
	rel = table_open(cache->relid, AccessShareLock);
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		table_close(rel, NoLock);
		PG_RETURN_BOOL(true);
	}
	if (block >= cache->nblocks)
		cache->nblocks = RelationGetNumberOfBlocks(rel);
	if (block >= cache->nblocks)
	{
		table_close(rel, NoLock);
		PG_RETURN_BOOL(true);
	}
	buf = ReadBuffer(rel, block);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	if (offset >= FirstOffsetNumber && offset <= PageGetMaxOffsetNumber(page) &&
		ItemIdIsNormal(PageGetItemId(page, offset)))
	{
		HeapTupleHeader tuple = (HeapTupleHeader) PageGetItem(page, PageGetItemId(page, offset));

		infomask = tuple->t_infomask;
		xmax = HeapTupleHeaderGetRawXmax(tuple);
	}
	UnlockReleaseBuffer(buf);
	table_close(rel, NoLock);

	if (infomask & HEAP_XMAX_INVALID)
		PG_RETURN_BOOL(true);
	if (infomask & HEAP_XMAX_IS_MULTI)
		PG_RETURN_BOOL(!MultiXactIdIsRunning((MultiXactId) xmax,
											 HEAP_XMAX_IS_LOCKED_ONLY(infomask)));
	PG_RETURN_BOOL(!TransactionIdIsNormal(xmax) ||
				   TransactionIdIsCurrentTransactionId(xmax) ||
				   !TransactionIdIsInProgress(xmax));
}

/* ApApplyStatement's claim rows of the uncontended statement: then the amount, the inbox flag */
enum
{
	UNCONTENDED_AMOUNT = 5, UNCONTENDED_NAMED
};

/* A claim the uncontended statement decided: its item is done. */
static void
ChunkUncontendedClaim(void *state, int r)
{
	ChunkState *cs = (ChunkState *) state;
	char	   *id = ApGetCString(r, 1);
	IdIndexEntry *e = ApStringHashSearch(cs->index, id, HASH_FIND, NULL);
	bool		isnull;

	if (e == NULL)
		elog(ERROR, "claim \"%s\" was decided but is not in the chunk", id);
	cs->decision[e->item] = cs->bi->decision;
	ChunkKeepAmount(cs, e->item, r, UNCONTENDED_AMOUNT);
	if (DatumGetBool(ApGetDatum(r, UNCONTENDED_NAMED, &isnull)))
		cs->inbox_ids[cs->n_inbox++] = id;
}

/*
 * Decide, without locking anything ahead, every claim of the chunk that is
 * pending and passes the checks of ChunkLockAndClassify (same tenant, not the
 * coordinator's own unless allowed, not expired), and run their handlers.
 * Runs in a subtransaction (the caller's try), the statement under a short
 * lock_timeout: a lock taken between claim_row_unlocked's look and the
 * update makes it fail rather than wait.
 */
static void
ChunkDecideUncontended(void *arg)
{
	/* returns ApApplyStatement's ApplyRow rows, a claim row for every claim decided */
	static const ApStmt sql = {
		"WITH c AS (" DECIDE_CLAIMS_SET
		"  WHERE c.id = ANY ($1) AND c.status = 'pending' "
		"    AND c.tenant IS NOT DISTINCT FROM $6 "
		"    AND (c.requester IS DISTINCT FROM $3 OR c.allow_self_approval IS TRUE) "
		"    AND NOT coalesce(c.expires_at <= now(), false) "
		"    AND approvals.claim_row_unlocked(c.ctid) "
		"  RETURNING c.id, c.tenant, c.snapshot_hash, c.resource_type, c.amount, "
		"    c.named_approvers IS NOT NULL AS named), "
		DECIDE_EVENTS
		"SELECT c.id, NULL::bigint, h.handler::oid, h.search_path, c.amount, c.named "
		"FROM c LEFT JOIN approvals.handlers h ON h.resource_type = c.resource_type "
		"UNION ALL SELECT e.claim_id, e.id, NULL, NULL, NULL, NULL FROM e "
		"WHERE EXISTS (SELECT 1 FROM approvals.handlers)",
		6, {TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	};
	ChunkState *cs = (ChunkState *) arg;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, cs->bi->comment == NULL,
	cs->bi->tenant == NULL};
	int			nest = NewGUCNestLevel();

	(void) set_config_option("lock_timeout", CHUNK_UNCONTENDED_LOCK_TIMEOUT, PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	values[0] = ApCStringArrayDatum(cs->claim_ids, cs->n);
	values[1] = CStringGetTextDatum(cs->bi->decision);
	values[2] = CStringGetTextDatum(cs->actor);
	values[3] = CStringGetTextDatum(cs->bi->id);
	values[4] = cs->bi->comment ? CStringGetTextDatum(cs->bi->comment) : (Datum) 0;
	values[5] = cs->bi->tenant ? CStringGetTextDatum(cs->bi->tenant) : (Datum) 0;
	ApApplyStatement(&sql, values, nulls, ChunkUncontendedClaim, cs);
	AtEOXact_GUC(true, nest);
}

/*
 * The uncontended pass: on success the items of the claims it decided are
 * done; if it failed (a lock it would have had to wait for, a handler that
 * raised, anything) nothing of it stays.  The lock pass takes what is left.
 */
static void
ChunkUncontended(ChunkState *cs)
{
	ErrorData  *edata = ApTryInSubxact(ChunkDecideUncontended, cs, true, false,
									   CurrentMemoryContext);

	if (edata == NULL)
		return;
	ereport(DEBUG1,
			(errmsg("approvals: batch \"%s\": a chunk takes the lock pass: %s",
					cs->bi->id, edata->message)));
	FreeErrorData(edata);
	cs->n_inbox = 0;
	for (int i = 0; i < cs->n; i++)
	{
		cs->decision[i] = NULL;
		cs->amount_null[i] = true;
	}
}

/*
 * Lock the pending claims of the items not decided yet (SKIP LOCKED, retried
 * with backoff when auto_retry) and classify each of those items: failed
 * with an item error, or ready to be decided (apply list).
 */
static void
ChunkLockAndClassify(ChunkState *cs)
{
	static const ApStmt lock_sql = {
		"SELECT c.id, c.tenant IS NOT DISTINCT FROM $2, c.requester, c.allow_self_approval, "
		"coalesce(c.expires_at <= now(), false), "
		"EXISTS (SELECT 1 FROM approvals.handlers h WHERE h.resource_type = c.resource_type), "
		"c.ctid, c.amount, c.named_approvers IS NOT NULL "
		"FROM approvals.claims c WHERE c.id = ANY ($1) AND c.status = 'pending' "
		"ORDER BY c.id FOR UPDATE OF c SKIP LOCKED",
		2, {TEXTARRAYOID, TEXTOID}
	};
	enum
	{
		LOCK_ID = 1, LOCK_SAME_TENANT, LOCK_REQUESTER, LOCK_SELF_APPROVAL, LOCK_EXPIRED,
		LOCK_HAS_HANDLER, LOCK_CTID, LOCK_AMOUNT, LOCK_NAMED
	};
	static const ApStmt classify_sql = {
		"SELECT c.id, c.tenant IS NOT DISTINCT FROM $2, c.status, c.amount "
		"FROM approvals.claims c WHERE c.id = ANY ($1)",
		2, {TEXTARRAYOID, TEXTOID}
	};
	enum
	{
		CLASSIFY_ID = 1, CLASSIFY_SAME_TENANT, CLASSIFY_STATUS, CLASSIFY_AMOUNT
	};
	Datum		values[2];
	bool		nulls[2] = {false, cs->bi->tenant == NULL};
	HTAB	   *index = cs->index;
	char	  **waiting = palloc(sizeof(char *) * cs->n);
	int			n_waiting = 0;
	bool	   *seen = palloc(sizeof(bool) * cs->n);

	values[1] = cs->bi->tenant ? CStringGetTextDatum(cs->bi->tenant) : (Datum) 0;
	for (int i = 0; i < cs->n; i++)
		if (cs->decision[i] == NULL)
			waiting[n_waiting++] = cs->claim_ids[i];

	for (int attempt = 0; n_waiting > 0; attempt++)
	{
		int			rows;
		int			still = 0;

		memset(seen, 0, sizeof(bool) * cs->n);
		values[0] = ApCStringArrayDatum(waiting, n_waiting);
		rows = ApExec(&lock_sql, values, nulls, 0);
		for (int r = 0; r < rows; r++)
		{
			char	   *id = ApGetCString(r, LOCK_ID);
			IdIndexEntry *e = ApStringHashSearch(index, id, HASH_FIND, NULL);
			bool		isnull;
			int			item;

			if (e == NULL)
				continue;
			item = e->item;
			seen[item] = true;
			if (DatumGetBool(ApGetDatum(r, LOCK_SAME_TENANT, &isnull)))
				ChunkKeepAmount(cs, item, r, LOCK_AMOUNT);
			if (!DatumGetBool(ApGetDatum(r, LOCK_SAME_TENANT, &isnull)))
				ItemFail(cs, item, ERR_TENANT);
			else if (strcmp(ApGetCString(r, LOCK_REQUESTER), cs->bi->coordinator) == 0 &&
					 !DatumGetBool(ApGetDatum(r, LOCK_SELF_APPROVAL, &isnull)))
				ItemFail(cs, item, ERR_REQUESTER);
			else if (DatumGetBool(ApGetDatum(r, LOCK_EXPIRED, &isnull)))
				ItemFail(cs, item, ERR_EXPIRED);
			else
			{
				cs->apply_item[cs->n_apply] = item;
				ItemPointerCopy((ItemPointer) DatumGetPointer(ApGetDatum(r, LOCK_CTID, &isnull)),
								&cs->apply_tids[cs->n_apply]);
				cs->n_apply++;
				if (DatumGetBool(ApGetDatum(r, LOCK_HAS_HANDLER, &isnull)))
					cs->apply_guarded = true;
				if (DatumGetBool(ApGetDatum(r, LOCK_NAMED, &isnull)))
					cs->inbox_ids[cs->n_inbox++] = id;
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
		rows = ApExec(&classify_sql, values, nulls, 0);
		for (int r = 0; r < rows; r++)
		{
			IdIndexEntry *e = ApStringHashSearch(index, ApGetCString(r, CLASSIFY_ID), HASH_FIND, NULL);
			bool		isnull;

			if (e == NULL)
				continue;
			seen[e->item] = true;
			if (DatumGetBool(ApGetDatum(r, CLASSIFY_SAME_TENANT, &isnull)))
				ChunkKeepAmount(cs, e->item, r, CLASSIFY_AMOUNT);
			if (!DatumGetBool(ApGetDatum(r, CLASSIFY_SAME_TENANT, &isnull)))
				ItemFail(cs, e->item, ERR_TENANT);
			else if (strcmp(ApGetCString(r, CLASSIFY_STATUS), "pending") != 0)
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
		if (!cs->bi->auto_retry || attempt >= AP_RETRIES)
		{
			for (int w = 0; w < n_waiting; w++)
			{
				IdIndexEntry *e = ApStringHashSearch(index, waiting[w], HASH_FIND, NULL);

				ItemFail(cs, e->item, ERR_LOCKED);
			}
			break;
		}
		ApRetrySleep(attempt);
	}
}

/*
 * Write the chunk's results and take its items out of the claim lists: one
 * result row per run of consecutive positions (the chunk's whole range, but
 * for claim lists with gaps between them), then the lists the chunk finished
 * deleted and the head cut off the one it stopped in.
 */
static void
ChunkStoreItems(ChunkState *cs, int first, int width)
{
	static const ApStmt results_sql = {
		"INSERT INTO approvals.batch_item_results (batch_id, first_position, last_position, "
		"claim_ids, decisions, errors, processed_at) VALUES ($1, $2, $3, $4, $5, $6, now())",
		6, {TEXTOID, INT4OID, INT4OID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID}
	};
	/* the lists holding positions $2 .. $3; the rest of the last one stays, from $3 + 1 */
	static const ApStmt lists_sql = {
		"WITH d AS (DELETE FROM approvals.batch_item_lists "
		"  WHERE batch_id = $1 AND first_position >= $2 AND first_position <= $3 "
		"  RETURNING first_position, last_position, claim_ids) "
		"INSERT INTO approvals.batch_item_lists (batch_id, first_position, last_position, claim_ids) "
		"SELECT $1, $3 + 1, d.last_position, d.claim_ids[$3 - d.first_position + 2 :] "
		"FROM d WHERE d.last_position > $3",
		3, {TEXTOID, INT4OID, INT4OID}
	};
	Datum		values[6];

	values[0] = CStringGetTextDatum(cs->bi->id);
	for (int lo = 0, hi; lo < cs->n; lo = hi)
	{
		for (hi = lo + 1; hi < cs->n && cs->positions[hi] == cs->positions[hi - 1] + 1; hi++)
			;
		values[1] = Int32GetDatum(cs->positions[lo]);
		values[2] = Int32GetDatum(cs->positions[hi - 1]);
		values[3] = ApCStringArrayDatum(cs->claim_ids + lo, hi - lo);
		values[4] = ApCStringArrayDatum((char **) cs->decision + lo, hi - lo);
		values[5] = ApCStringArrayDatum(cs->error + lo, hi - lo);
		ApExec(&results_sql, values, NULL, 0);
	}
	values[1] = Int32GetDatum(first);
	values[2] = Int32GetDatum(first + width - 1);
	ApExec(&lists_sql, values, NULL, 0);
}

/*
 * Advance the batch's counters by the chunk's results; returns the new
 * failed_count.
 */
static int
ChunkStoreCounters(ChunkState *cs, int next_position)
{
	static const ApStmt sql = {
		"UPDATE approvals.batches SET processed_count = processed_count + $2, "
		"approved_count = approved_count + $3, rejected_count = rejected_count + $4, "
		"failed_count = failed_count + $5, approved_amount = approved_amount + $6, "
		"failed_amount = failed_amount + $7, "
		"next_position = $8, updated_at = now() WHERE id = $1 RETURNING failed_count",
		8, {TEXTOID, INT4OID, INT4OID, INT4OID, INT4OID, NUMERICOID, NUMERICOID, INT4OID}
	};
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
	ApExec(&sql, values, NULL, 1);
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

bool
ApBatchChunk(const char *batch_id, int chunk_size)
{
	bool		finished;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	finished = ChunkInner(batch_id, chunk_size);
	SPI_finish();
	return finished;
}

/*
 * One chunk: the items of positions [first, first + chunk_size), first being
 * the position of the next item not processed yet, read from the claim lists
 * that hold them.  Fetching a position range keeps every statement bounded by
 * the chunk, whatever the statistics say.  Everything it allocates dies with
 * its SPI connection.
 */
static bool
ChunkInner(const char *batch_id, int chunk_size)
{
	static const ApStmt items_sql = {
		"SELECT p.position, p.claim_id FROM approvals.batch_item_lists l, "
		"LATERAL (SELECT l.first_position + (u.o - 1)::integer AS position, u.id AS claim_id "
		"  FROM pg_catalog.unnest(l.claim_ids) WITH ORDINALITY AS u(id, o)) p "
		"WHERE l.batch_id = $1 AND l.first_position >= $2 AND l.first_position < $2 + $3 "
		"AND p.position >= $2 AND p.position < $2 + $3 "
		"ORDER BY p.position",
		3, {TEXTOID, INT4OID, INT4OID}
	};
	enum
	{
		ITEM_POSITION = 1, ITEM_CLAIM_ID
	};
	Datum		values[3];
	BatchInfo	bi;
	ChunkState	cs;
	int			failed;
	int			last_position;
	int			first;
	int			width;
	bool		isnull;

	if (!ApBatchLoad(batch_id, true, &bi) || strcmp(bi.status, "processing") != 0)
		return true;

	if (!ApBatchItemSpan(batch_id, bi.next_position, &first, &last_position))
	{
		ApBatchFinish(batch_id, "completed",
					ThresholdExceeded(&bi, bi.failed_count)
					? "failure threshold exceeded; continued (on_threshold = continue)" : NULL);
		return true;
	}
	/* the range ends at the last item at most (positions stay far from INT_MAX) */
	width = (int) Min((int64) chunk_size, (int64) last_position - first + 1);

	values[0] = CStringGetTextDatum(batch_id);
	values[1] = Int32GetDatum(first);
	values[2] = Int32GetDatum(width);
	memset(&cs, 0, sizeof(cs));
	cs.bi = &bi;
	cs.actor = bi.coordinator;
	cs.n = ApExec(&items_sql, values, NULL, 0);

	cs.positions = palloc(sizeof(int) * Max(cs.n, 1));
	cs.claim_ids = palloc(sizeof(char *) * Max(cs.n, 1));
	cs.decision = palloc0(sizeof(char *) * Max(cs.n, 1));
	cs.error = palloc0(sizeof(char *) * Max(cs.n, 1));
	cs.apply_item = palloc(sizeof(int) * Max(cs.n, 1));
	cs.apply_tids = palloc(sizeof(ItemPointerData) * Max(cs.n, 1));
	cs.amount = palloc0(sizeof(Datum) * Max(cs.n, 1));
	cs.amount_null = palloc(sizeof(bool) * Max(cs.n, 1));
	cs.inbox_ids = palloc(sizeof(char *) * Max(cs.n, 1));
	for (int i = 0; i < cs.n; i++)
		cs.amount_null[i] = true;

	cs.index = ApStringHashCreate("approvals chunk ids", cs.n, sizeof(IdIndexEntry),
								  CurrentMemoryContext);
	for (int i = 0; i < cs.n; i++)
	{
		IdIndexEntry *entry;
		bool		found;

		cs.positions[i] = DatumGetInt32(ApGetDatum(i, ITEM_POSITION, &isnull));
		cs.claim_ids[i] = ApGetCString(i, ITEM_CLAIM_ID);
		entry = ApStringHashSearch(cs.index, cs.claim_ids[i], HASH_ENTER, &found);
		/* the API never lists a claim twice; an edited claim list could */
		if (found)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("batch \"%s\" lists claim \"%s\" at positions %d and %d",
							batch_id, cs.claim_ids[i], cs.positions[entry->item],
							cs.positions[i]),
					 errhint("Its claim lists (approvals.batch_item_lists) were edited; cancel the batch.")));
		entry->item = i;
	}
	SPI_freetuptable(SPI_tuptable);

	if (cs.n > 0)
	{
		ChunkUncontended(&cs);
		ChunkLockAndClassify(&cs);
		ApApplyGroups(ChunkApplyGroup, ChunkApplyFailed, &cs, 0, cs.n_apply,
					  cs.apply_guarded, bi.auto_retry);
		/* decided claims leave the inboxes they were in */
		ApInboxRefresh(cs.inbox_ids, cs.n_inbox);
		for (int k = 0; k < cs.n_apply; k++)
			if (cs.decision[cs.apply_item[k]] == NULL)
				cs.decision[cs.apply_item[k]] = bi.decision;
		/* every item gets a result (none can be left without one through the API) */
		for (int i = 0; i < cs.n; i++)
			if (cs.decision[i] == NULL)
				ItemFail(&cs, i, ERR_UNDECIDED);
		ChunkStoreItems(&cs, first, width);
	}
	hash_destroy(cs.index);
	failed = ChunkStoreCounters(&cs, first + width);

	if (ThresholdExceeded(&bi, failed) && bi.rollback)
	{
		StringInfoData msg;

		ApBatchRevert(&bi, "system", "failure threshold exceeded; batch rolled back");
		initStringInfo(&msg);
		appendStringInfo(&msg, "failure threshold exceeded: %d of %d claims failed", failed,
						 bi.total_claims);
		if (bi.has_max_failures)
			appendStringInfo(&msg, " (max_failures %d)", bi.max_failures);
		if (bi.has_max_ratio)
			appendStringInfo(&msg, " (max_failure_ratio %g)", (double) bi.max_ratio);
		appendStringInfoString(&msg, "; decided claims were reverted");
		ApBatchFinish(batch_id, "failed", msg.data);
		return true;
	}
	if (first + width > last_position)
	{
		ApBatchFinish(batch_id, "completed",
					ThresholdExceeded(&bi, failed)
					? "failure threshold exceeded; continued (on_threshold = continue)" : NULL);
		return true;
	}
	return false;
}
