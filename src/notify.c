/*
 * notify.c
 *		NOTIFY approvals: one place that sends, honouring approvals.notify.
 *
 *		PostgreSQL serializes the commits of every transaction that issued a
 *		NOTIFY: each holds a database-wide lock from its pre-commit until its
 *		commit record is flushed, so notifying decisions cannot share a WAL
 *		flush.  When a scheduler serves this database, a transaction hands its
 *		notifications to it instead (the outbox):
 *
 *		- ApNotify keeps the payload in memory (a rolled-back savepoint drops
 *		  its own);
 *		- at pre-commit (or pre-prepare) they are written to approvals.outbox
 *		  in one statement, their ids drawn at that moment, and the scheduler's
 *		  latch is set when the transaction commits;
 *		- the scheduler sends them in id order from its own short transactions
 *		  (ApOutboxSend) and deletes what it sent in the same transaction.
 *
 *		Ids drawn at pre-commit keep any order an observer can see: a
 *		transaction that begins its commit after another's COMMIT returned
 *		draws a larger id; the scheduler sends only committed rows, the
 *		smaller ids first.  Without a scheduler, NOTIFY is sent directly.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "approvals.h"

/* Notifications the scheduler sends per transaction at most */
#define OUTBOX_SEND_MAX		1000
/* The longest payload NOTIFY accepts is one byte less (commands/async.c) */
#define PAYLOAD_MAX			(BLCKSZ - NAMEDATALEN - 128)

/* A notification waiting for its transaction to commit */
typedef struct HeldNotification
{
	int			nest_level;		/* the (sub)transaction that made it */
	char	   *payload;
} HeldNotification;

/* This transaction's held notifications (in TopTransactionContext), oldest first */
static List *held = NIL;

/* Whether this transaction hands its notifications to the scheduler (decided once) */
static LocalTransactionId handoff_lxid = InvalidLocalTransactionId;
static bool handoff = false;

/* Does this transaction hand its notifications to this database's scheduler? */
static bool
HandsOff(void)
{
	if (MyProc == NULL)
		return false;
	if (handoff_lxid != MyProc->lxid || handoff_lxid == InvalidLocalTransactionId)
	{
		handoff = ApQueueSchedulerAttached();
		handoff_lxid = MyProc->lxid;
	}
	return handoff;
}

/* NOTIFY approvals, payload (delivered after commit), unless approvals.notify is off. */
void
ApNotify(const char *payload)
{
	MemoryContext old;
	HeldNotification *n;

	if (!ap_notify)
		return;
	if (!HandsOff() || IsParallelWorker())
	{
		Async_Notify("approvals", payload);
		return;
	}
	/* refused now, as NOTIFY would, not later by the scheduler */
	if (strlen(payload) >= PAYLOAD_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("payload string too long")));
	old = MemoryContextSwitchTo(TopTransactionContext);
	n = palloc(sizeof(HeldNotification));
	n->nest_level = GetCurrentTransactionNestLevel();
	n->payload = pstrdup(payload);
	held = lappend(held, n);
	MemoryContextSwitchTo(old);
}

/*
 * Write the held notifications to approvals.outbox (at pre-commit), as the
 * extension owner.  Nothing is written when the extension was dropped in
 * this very transaction.
 */
static void
WriteOutbox(void)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.outbox (payload) SELECT pg_catalog.unnest($1)",
		1, {TEXTARRAYOID}
	};
	Datum	   *payloads;
	Datum		values[1];
	int			n = 0;
	ListCell   *lc;
	ApprovalsPrivSwitch sw;
	bool		pushed = false;
	HTAB	   *seen;

	if (!OidIsValid(get_namespace_oid("approvals", true)))
		return;
	/* equal payloads of one transaction are one notification, as with NOTIFY */
	seen = ApStringHashCreate("approvals held payloads", list_length(held), sizeof(char *),
							  CurrentMemoryContext);
	payloads = palloc(sizeof(Datum) * list_length(held));
	foreach(lc, held)
	{
		const char *payload = ((HeldNotification *) lfirst(lc))->payload;
		bool		found;

		(void) ApStringHashSearch(seen, payload, HASH_ENTER, &found);
		if (!found)
			payloads[n++] = CStringGetTextDatum(payload);
	}
	hash_destroy(seen);
	values[0] = PointerGetDatum(construct_array(payloads, n, TEXTOID, -1, false,
												TYPALIGN_INT));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (!ActiveSnapshotSet())
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		pushed = true;
	}
	ApBecomeOwner(&sw);
	ApExec(&sql, values, NULL, 0);
	ApRestoreUser(&sw);
	if (pushed)
		PopActiveSnapshot();
	SPI_finish();
	ApQueuePokeAtCommit();
}

/* Queue the held notifications with NOTIFY after all (PostgreSQL sends them at commit). */
static void
SendHeldDirectly(void)
{
	ListCell   *lc;

	foreach(lc, held)
		Async_Notify("approvals", ((HeldNotification *) lfirst(lc))->payload);
}

/* Pre-commit: hand the held notifications over; any end: forget them. */
static void
NotifyXactCallback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* a transaction made read-only after deciding cannot write: NOTIFY */
			if (held != NIL && XactReadOnly)
				SendHeldDirectly();
			else if (held != NIL)
				WriteOutbox();
			held = NIL;
			break;
		case XACT_EVENT_PRE_PREPARE:
			/* PREPARE refuses a transaction that notifies, as with NOTIFY itself */
			if (held != NIL)
				SendHeldDirectly();
			held = NIL;
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
			held = NIL;			/* its memory went with TopTransactionContext */
			handoff_lxid = InvalidLocalTransactionId;
			break;
		default:
			break;
	}
}

/* A savepoint rolled back drops its notifications; one released passes them up. */
static void
NotifySubXactCallback(SubXactEvent event, SubTransactionId mySubid pg_attribute_unused(),
					  SubTransactionId parentSubid pg_attribute_unused(),
					  void *arg pg_attribute_unused())
{
	int			level = GetCurrentTransactionNestLevel();
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, held)
		{
			HeldNotification *n = lfirst(lc);

			if (n->nest_level >= level)
				held = foreach_delete_current(held, lc);
		}
	}
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, held)
		{
			HeldNotification *n = lfirst(lc);

			if (n->nest_level >= level)
				n->nest_level = level - 1;
		}
	}
}

/* Called once from _PG_init. */
void
ApNotifyInit(void)
{
	RegisterXactCallback(NotifyXactCallback, NULL);
	RegisterSubXactCallback(NotifySubXactCallback, NULL);
}

/*
 * The scheduler's part: send the oldest notifications of the outbox, in id
 * order, and delete them, in the caller's transaction (they are delivered
 * when it commits).  NOTIFY drops a payload equal to one already sent in the
 * same transaction, so a repeated payload waits for the next transaction.
 * Returns true when more may be waiting.
 */
bool
ApOutboxSend(void)
{
	static const ApStmt take_sql = {
		"SELECT id, payload FROM approvals.outbox ORDER BY id LIMIT $1",
		1, {INT4OID}
	};
	static const ApStmt delete_sql = {
		"DELETE FROM approvals.outbox WHERE id = ANY ($1)",
		1, {INT8ARRAYOID}
	};
	enum
	{
		O_ID = 1, O_PAYLOAD
	};
	Datum		limit[1] = {Int32GetDatum(OUTBOX_SEND_MAX)};
	Datum	   *ids;
	int			n_rows;
	int			n_sent = 0;
	HTAB	   *seen;
	Datum		values[1];

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n_rows = ApExec(&take_sql, limit, NULL, OUTBOX_SEND_MAX);
	if (n_rows == 0)
	{
		SPI_finish();
		return false;
	}
	ids = palloc(sizeof(Datum) * n_rows);
	seen = ApStringHashCreate("approvals outbox payloads", n_rows, sizeof(char *),
							  CurrentMemoryContext);
	for (int r = 0; r < n_rows; r++)
	{
		bool		isnull;
		char	   *payload = ApGetCString(r, O_PAYLOAD);
		bool		found;

		CHECK_FOR_INTERRUPTS();
		(void) ApStringHashSearch(seen, payload, HASH_ENTER, &found);
		if (found)
			break;
		/* a row written by hand that NOTIFY refuses must not block the rest */
		if (strlen(payload) >= PAYLOAD_MAX)
			ereport(WARNING,
					(errmsg("approvals: dropped notification %lld of the outbox: payload of %zu bytes is too long for NOTIFY",
							(long long) DatumGetInt64(ApGetDatum(r, O_ID, &isnull)),
							strlen(payload))));
		else
			Async_Notify("approvals", payload);
		ids[n_sent++] = ApGetDatum(r, O_ID, &isnull);
	}
	values[0] = PointerGetDatum(construct_array(ids, n_sent, INT8OID, 8, FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	ApExec(&delete_sql, values, NULL, 0);
	hash_destroy(seen);
	SPI_finish();
	return n_sent < n_rows || n_rows == OUTBOX_SEND_MAX;
}
