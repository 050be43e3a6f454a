/*
 * batch_run.c
 *		The one driver of batches, used by process_batch, run_queued and the
 *		background worker: take a batch, then process it chunk by chunk until
 *		it needs no further chunk, with the one retry policy (retry.c).
 *
 * What differs between the three is only the bracket around a unit of work
 * (taking a batch, one chunk):
 *		ApTxnInline		process_batch, and run_queued inside a transaction
 *						block: the caller's transaction; an error propagates
 *		ApTxnCall		CALL run_queued: each unit in a subtransaction, then
 *						committed, so no snapshot or lock outlives a chunk
 *		the worker's	(worker.c) a transaction of its own per unit
 *
 * A chunk that raises is rolled back.  A transient error (deadlock,
 * serialization failure, lock not available) is retried; any other error
 * hands the batch back to the queue (no owner, still processing) and is
 * returned: the next take resumes the batch from its last committed chunk
 * and counts an attempt, so a batch that keeps failing is quarantined
 * (batch_queue.c).
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "batch.h"

/* A unit of work: take the next batch. */
typedef struct TakeWork
{
	const ApprovalsCaller *caller;
	MemoryContext cxt;			/* where the taken id is copied */
	char	   *batch_id;
} TakeWork;

/* A unit of work: one chunk of a batch. */
typedef struct ChunkWork
{
	const char *batch_id;
	bool		finished;		/* the batch needs no further chunk */
} ChunkWork;

/* The caller's transaction: the work runs as it is; an error propagates. */
bool
ApTxnInline(ApWorkFn work, void *arg, const char *activity pg_attribute_unused(),
			ErrorData **error)
{
	*error = NULL;
	work(arg);
	return true;
}

/*
 * A procedure that commits (CALL run_queued): the work in a subtransaction,
 * then the transaction committed, whether the work succeeded or was rolled
 * back.  The error copy lives in the caller's memory context, which a
 * non-atomic CALL keeps across commits.
 */
bool
ApTxnCall(ApWorkFn work, void *arg, const char *activity pg_attribute_unused(),
		  ErrorData **error)
{
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	*error = ApTryInSubxact(work, arg, true, true, outer);
	SPI_commit();
	SPI_finish();
	MemoryContextSwitchTo(outer);
	return *error == NULL;
}

/* Take the next batch (TakeWork), as the extension owner. */
static void
TakeNext(void *arg)
{
	TakeWork   *tw = (TakeWork *) arg;
	ApprovalsCall call;
	char	   *id;

	tw->batch_id = NULL;
	if (!ApLockExtension())
		return;
	ApEnterSafe(&call);
	id = ApBatchTakeNextInner(tw->caller);
	ApLeaveSafe(&call);
	if (id)
		tw->batch_id = MemoryContextStrdup(tw->cxt, id);
}

/*
 * Take the next batch the caller may process (caller NULL: the worker, any
 * tenant), in the given bracket.  *batch_id is its id (in cxt) or NULL when
 * none is left.  Returns false, with the error, when taking raised.
 */
bool
ApBatchTakeNext(const ApprovalsCaller *caller, ApTxnFn txn, MemoryContext cxt,
				char **batch_id, ErrorData **error)
{
	TakeWork	tw = {caller, cxt, NULL};
	bool		ok = txn(TakeNext, &tw, "approvals: looking for a queued batch", error);

	*batch_id = ok ? tw.batch_id : NULL;
	return ok;
}

/*
 * Lock the extension against DROP EXTENSION for the chunk (so that a DROP
 * waits for it instead of deadlocking with it), then process one chunk.
 */
static void
RunChunk(void *arg)
{
	ChunkWork  *cw = (ChunkWork *) arg;
	ApprovalsCall call;

	cw->finished = true;
	if (!ApLockExtension())
		return;
	ApEnterSafe(&call);
	cw->finished = ApBatchChunk(cw->batch_id, ap_chunk_size);
	ApLeaveSafe(&call);
}

/* Hand the batch back to the queue (after a chunk that failed for good). */
static void
HandBack(void *arg)
{
	ApprovalsCall call;

	if (!ApLockExtension())
		return;
	ApEnterSafe(&call);
	ApBatchHandBack((const char *) arg);
	ApLeaveSafe(&call);
}

/*
 * Process a batch this backend has taken, chunk by chunk, in the given
 * bracket, until it needs no further chunk (finished, cancelled, failed).
 * Returns NULL, or the error of a chunk that failed for good (the batch is
 * then handed back).
 */
ErrorData *
ApBatchRun(const char *batch_id, ApTxnFn txn)
{
	ChunkWork	cw = {batch_id, false};
	char		activity[128];

	snprintf(activity, sizeof(activity), "approvals: processing batch %s", batch_id);
	do
	{
		ErrorData  *error;

		CHECK_FOR_INTERRUPTS();
		for (int attempt = 0; !txn(RunChunk, &cw, activity, &error); attempt++)
		{
			if (!ApRetryTransient(error->sqlerrcode, attempt))
			{
				ErrorData  *ignored;

				if (!txn(HandBack, (void *) batch_id, activity, &ignored))
					FreeErrorData(ignored);
				return error;
			}
			FreeErrorData(error);
			ApRetrySleep(attempt);
		}
	} while (!cw.finished);
	return NULL;
}
