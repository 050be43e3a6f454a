/*
 * batch_revert.c
 *		Revert what a batch decided (cancel_batch of a processing batch, and the
 *		rollback of a batch over its failure threshold): the decided items one
 *		result row (the items one chunk processed) at a time, each chunk in its own SPI connection so memory stays
 *		flat; claims go back to pending (or are cancelled when a newer claim of
 *		their resource is pending), items become reverted, counters are fixed.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"

typedef struct RevertState
{
	const BatchInfo *bi;
	char	  **ids;
	int		   *positions;
	char	  **errors;			/* per item: NULL, or why its revert failed */
	const char *actor;
	const char *comment;
} RevertState;

/* Put a group of claims the batch decided back to pending (set-based). */
static void
RevertApplyGroup(void *state, int lo, int hi)
{
	/* returns ApApplyStatement's ApplyRow columns */
	static const ApStmt sql = {
		"WITH c AS ("
		"  UPDATE approvals.claims c SET (status, decided_at) = ("
		"    SELECT CASE WHEN g.give_way THEN 'cancelled' ELSE 'pending' END, "
		"           CASE WHEN g.give_way THEN now() END "
		"    FROM (SELECT "
		/*
		 * Must the claim give way?  Its resource has another pending claim
		 * (submitted since), or a newer claim of the same resource is
		 * reverted in this same group (only one claim of a resource may be
		 * pending): then it is cancelled instead of going back to pending.
		 */
		"      EXISTS (SELECT 1 FROM approvals.claims p "
		"              WHERE p.resource_type = c.resource_type AND p.resource_id = c.resource_id "
		"              AND p.status = 'pending' AND p.tenant IS NOT DISTINCT FROM c.tenant) "
		"      OR EXISTS (SELECT 1 FROM approvals.claims q "
		"              WHERE q.resource_type = c.resource_type AND q.resource_id = c.resource_id "
		"              AND q.tenant IS NOT DISTINCT FROM c.tenant AND q.id = ANY ($1) "
		"              AND q.batch_id = $2 AND q.status = $3 "
		"              AND (q.created_at, q.id) > (c.created_at, c.id)) AS give_way) g), "
		"    reviewer = NULL, assignee = c.approvers[c.route_position], updated_at = now() "
		"  WHERE c.id = ANY ($1) AND c.batch_id = $2 AND c.status = $3 "
		"  RETURNING c.id, c.tenant, c.snapshot_hash, c.resource_type, c.status), "
		"e AS ("
		"  INSERT INTO approvals.events (claim_id, batch_id, tenant, actor, action, "
		"    from_status, to_status, comment, snapshot_hash) "
		"  SELECT id, $2, tenant, $4, 'reverted', $3, status, $5, snapshot_hash FROM c "
		"  RETURNING claim_id, id) "
		APPLY_HANDLER_ROWS,
		5, {TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID}
	};
	RevertState *rs = (RevertState *) state;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, rs->comment == NULL};

	values[0] = ApCStringArrayDatum(rs->ids + lo, hi - lo);
	values[1] = CStringGetTextDatum(rs->bi->id);
	values[2] = CStringGetTextDatum(rs->bi->decision);
	values[3] = CStringGetTextDatum(rs->actor);
	values[4] = rs->comment ? CStringGetTextDatum(rs->comment) : (Datum) 0;
	ApApplyStatement(&sql, values, nulls, NULL, NULL);
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
 * Revert the decided items of one result row of the batch (the items one
 * chunk processed, positions [first, first + width)): their claims locked in
 * id order, the items marked reverted, the counters fixed.  One row keeps
 * every statement bounded by the chunk whatever the statistics say.  Returns
 * how many claims were reverted.
 */
static int
RevertChunk(const BatchInfo *bi, const char *actor, const char *comment,
			int first, int width)
{
	static const ApStmt items_select_sql = {
		"SELECT r.first_position + (x.o - 1)::integer, x.claim_id "
		"FROM approvals.batch_item_results r, "
		"ROWS FROM (pg_catalog.unnest(r.claim_ids), pg_catalog.unnest(r.decisions)) "
		"  WITH ORDINALITY AS x(claim_id, decision, o) "
		"WHERE r.batch_id = $1 AND r.first_position = $3 AND x.decision = $2 "
		"ORDER BY x.o",
		3, {TEXTOID, TEXTOID, INT4OID}
	};
	enum
	{
		ITEM_POSITION = 1, ITEM_CLAIM_ID
	};
	static const ApStmt select_sql = {
		"SELECT c.id, "
		"EXISTS (SELECT 1 FROM approvals.handlers h WHERE h.resource_type = c.resource_type), "
		"c.named_approvers IS NOT NULL "
		"FROM approvals.claims c WHERE c.id = ANY ($3) AND c.batch_id = $1 AND c.status = $2 "
		"ORDER BY c.id FOR UPDATE",
		3, {TEXTOID, TEXTOID, TEXTARRAYOID}
	};
	enum
	{
		CLAIM_ID = 1, CLAIM_HAS_HANDLER, CLAIM_NAMED
	};
	/*
	 * the row's items whose claims were locked ($4), by their offset in it:
	 * reverted, or with the reason their revert failed ($3)
	 */
	static const ApStmt items_sql = {
		"UPDATE approvals.batch_item_results SET "
		"decisions = ARRAY(SELECT CASE WHEN x.touched AND x.error IS NULL THEN 'reverted' "
		"    ELSE x.decision END "
		"  FROM ROWS FROM (pg_catalog.unnest(decisions), pg_catalog.unnest($3::text[]), "
		"    pg_catalog.unnest($4::boolean[])) WITH ORDINALITY AS x(decision, error, touched, o) "
		"  ORDER BY x.o), "
		"errors = ARRAY(SELECT CASE WHEN x.touched THEN x.error ELSE x.old END "
		"  FROM ROWS FROM (pg_catalog.unnest(errors), pg_catalog.unnest($3::text[]), "
		"    pg_catalog.unnest($4::boolean[])) WITH ORDINALITY AS x(old, error, touched, o) "
		"  ORDER BY x.o) "
		"WHERE batch_id = $1 AND first_position = $2 AND last_position = $2 + $5 - 1",
		5, {TEXTOID, INT4OID, TEXTARRAYOID, BOOLARRAYOID, INT4OID}
	};
	static const ApStmt counters_sql = {
		"UPDATE approvals.batches SET "
		"approved_count = approved_count - CASE WHEN action = 'approve' THEN $2 ELSE 0 END, "
		"rejected_count = rejected_count - CASE WHEN action = 'reject' THEN $2 ELSE 0 END, "
		"reverted_count = reverted_count + $2, "
		"approved_amount = approved_amount - CASE WHEN action = 'approve' THEN "
		"  coalesce((SELECT pg_catalog.sum(amount) FROM approvals.claims WHERE id = ANY ($3)), 0) "
		"  ELSE 0 END, "
		"updated_at = now() WHERE id = $1",
		3, {TEXTOID, INT4OID, TEXTARRAYOID}
	};
	Datum		values[3];
	RevertState rs;
	int			n;
	int			n_items;
	char	  **item_ids;
	HTAB	   *index;
	bool		guarded = false;
	int			reverted = 0;
	char	  **done_ids;
	char	  **inbox_ids;
	int			n_inbox = 0;
	char	  **errors;
	Datum	   *touched;

	/*
	 * The items the batch decided, then their claims, locked in id order:
	 * two single-table statements, so that no join order can go quadratic.
	 */
	values[0] = CStringGetTextDatum(bi->id);
	values[1] = CStringGetTextDatum(bi->decision);
	values[2] = Int32GetDatum(first);
	n_items = ApExec(&items_select_sql, values, NULL, 0);
	if (n_items == 0)
		return 0;
	index = ApStringHashCreate("approvals revert ids", n_items, sizeof(IdIndexEntry),
							   CurrentMemoryContext);
	item_ids = palloc(sizeof(char *) * n_items);
	for (int i = 0; i < n_items; i++)
	{
		bool		isnull;
		IdIndexEntry *e;

		item_ids[i] = ApGetCString(i, ITEM_CLAIM_ID);
		e = ApStringHashSearch(index, item_ids[i], HASH_ENTER, NULL);
		e->item = DatumGetInt32(ApGetDatum(i, ITEM_POSITION, &isnull));
	}
	SPI_freetuptable(SPI_tuptable);
	values[2] = ApCStringArrayDatum(item_ids, n_items);
	n = ApExec(&select_sql, values, NULL, 0);
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
	inbox_ids = palloc(sizeof(char *) * n);
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		rs.ids[i] = ApGetCString(i, CLAIM_ID);
		rs.positions[i] = ((IdIndexEntry *) ApStringHashSearch(index, rs.ids[i], HASH_FIND,
														NULL))->item;
		if (DatumGetBool(ApGetDatum(i, CLAIM_HAS_HANDLER, &isnull)))
			guarded = true;
		if (DatumGetBool(ApGetDatum(i, CLAIM_NAMED, &isnull)))
			inbox_ids[n_inbox++] = rs.ids[i];
	}
	SPI_freetuptable(SPI_tuptable);
	hash_destroy(index);

	ApApplyGroups(RevertApplyGroup, RevertApplyFailed, &rs, 0, n, guarded, bi->auto_retry);
	/* claims back to pending return to the inboxes they were in */
	ApInboxRefresh(inbox_ids, n_inbox);

	done_ids = palloc(sizeof(char *) * n);
	errors = palloc0(sizeof(char *) * width);
	touched = palloc(sizeof(Datum) * width);
	for (int k = 0; k < width; k++)
		touched[k] = BoolGetDatum(false);
	for (int i = 0; i < n; i++)
	{
		errors[rs.positions[i] - first] = rs.errors[i];
		touched[rs.positions[i] - first] = BoolGetDatum(true);
		if (rs.errors[i] == NULL)
			done_ids[reverted++] = rs.ids[i];
	}
	{
		Datum		ivalues[5];
		Datum		cvalues[3];

		ivalues[0] = values[0];
		ivalues[1] = Int32GetDatum(first);
		ivalues[2] = ApCStringArrayDatum(errors, width);
		ivalues[3] = PointerGetDatum(construct_array(touched, width, BOOLOID, 1, true,
													 TYPALIGN_CHAR));
		ivalues[4] = Int32GetDatum(width);
		if (ApExec(&items_sql, ivalues, NULL, 0) != 1)
			elog(ERROR, "batch \"%s\": items changed while being reverted", bi->id);

		cvalues[0] = values[0];
		cvalues[1] = Int32GetDatum(reverted);
		cvalues[2] = ApCStringArrayDatum(done_ids, reverted);
		ApExec(&counters_sql, cvalues, NULL, 0);
	}
	return reverted;
}

/*
 * Where the batch's next result row after position "after" lies: false when
 * there is none (a probe of the primary key).
 */
static bool
RevertNextRow(const char *batch_id, int after, int *first, int *width)
{
	static const ApStmt sql = {
		"SELECT first_position, last_position - first_position + 1 "
		"FROM approvals.batch_item_results WHERE batch_id = $1 AND first_position > $2 "
		"ORDER BY first_position LIMIT 1",
		2, {TEXTOID, INT4OID}
	};
	Datum		values[2] = {CStringGetTextDatum(batch_id), Int32GetDatum(after)};
	bool		isnull;

	if (ApExec(&sql, values, NULL, 1) == 0)
		return false;
	*first = DatumGetInt32(ApGetDatum(0, 1, &isnull));
	*width = DatumGetInt32(ApGetDatum(0, 2, &isnull));
	return true;
}

/*
 * Revert every claim the batch decided, one result row (the items of one
 * chunk) at a time, each in its own SPI connection, so memory stays flat for
 * any batch size: claims locked in id order within a row, their items marked
 * reverted and the counters fixed.  Returns how many were reverted.
 */
int
ApBatchRevert(const BatchInfo *bi, const char *actor, const char *comment)
{
	int			total = 0;
	int			first = 0;
	int			width = 0;

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (!RevertNextRow(bi->id, first, &first, &width))
		{
			SPI_finish();
			break;
		}
		total += RevertChunk(bi, actor, comment, first, width);
		SPI_finish();
	}
	return total;
}
