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

/* Take the next batch (TakeWork). */
static void
TakeNextWork(void *arg)
{
	TakeWork   *tw = (TakeWork *) arg;
	char	   *id = ApBatchTakeNextInner(tw->caller);

	if (id)
		tw->batch_id = MemoryContextStrdup(tw->cxt, id);
}

static void
TakeNext(void *arg)
{
	((TakeWork *) arg)->batch_id = NULL;
	(void) ApRunInExtension(TakeNextWork, arg);
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

/* Process one chunk (ChunkWork). */
static void
ChunkWorkFn(void *arg)
{
	ChunkWork  *cw = (ChunkWork *) arg;

	cw->finished = ApBatchChunk(cw->batch_id, ap_chunk_size);
}

/* One chunk, in the extension's bracket; a dropped extension finishes the batch. */
static void
RunChunk(void *arg)
{
	((ChunkWork *) arg)->finished = true;
	(void) ApRunInExtension(ChunkWorkFn, arg);
}

/* Hand the batch back to the queue (after a chunk that failed for good). */
static void
HandBackWork(void *arg)
{
	ApBatchHandBack((const char *) arg);
}

static void
HandBack(void *arg)
{
	(void) ApRunInExtension(HandBackWork, arg);
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
