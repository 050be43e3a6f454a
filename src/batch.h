/*
 * batch.h
 *		The batch module family.
 *
 * A batch is a coordinator's bulk decision (approve or reject) over a list
 * of claims; each claim of it is an item (approvals.batch_items, in the
 * batch's order, with its result: a view of the claim lists not processed
 * yet and the result rows the chunks wrote).  A batch is processed a chunk at a time:
 * at most approvals.chunk_size items, in one transaction (in the worker and
 * in run_queued) or all in the caller's transaction (process_batch).
 *
 *		batch_api.c		the SQL functions: create/update/start/process/cancel,
 *						results, get, list, wait, purge, run_queued
 *		batch_state.c	the batch row and its items: load, lock, ownership, finish,
 *						NOTIFY, append items, recount
 *		batch_run.c		the one driver: take a batch, run it chunk by chunk
 *						with the one retry policy, in one of three brackets
 *		batch_chunk.c	one chunk: lock and classify the items' claims,
 *						decide them, store the results, check the threshold
 *		batch_revert.c	revert what a batch decided (cancel, threshold)
 *		batch_queue.c	the queue: the per-batch lock, taking the next batch,
 *						orphans and quarantine, and who serves it (the table the
 *						launcher, the schedulers and their workers share)
 *
 * Dependencies run one way: worker.c -> batch_run.c -> batch_chunk.c ->
 * batch_revert.c -> batch_state.c / batch_queue.c -> claim/handler -> call/spi.
 */
#ifndef BATCH_H
#define BATCH_H

#include "approvals.h"
#include "storage/latch.h"

/* Item error texts (API.md section 4) */
#define ERR_NOT_FOUND		"Claim not found"
#define ERR_PROCESSED		"Claim already processed"
#define ERR_TENANT			"Claim belongs to another tenant"
#define ERR_REQUESTER		"Requester cannot decide own claim"
#define ERR_EXPIRED			"Claim expired"
#define ERR_LOCKED			"Claim is locked by another transaction"
/* not in API.md: an item the chunk could not classify (a defect, never expected) */
#define ERR_UNDECIDED		"Claim was not decided"

/*
 * Each item of a batch is written once.  Until it is processed it is in a
 * claim list (approvals.batch_item_lists: consecutive positions, at most this
 * many claim ids per row); the chunk that processes it removes it from there
 * (deleting the lists it finished, cutting the head off the one it stopped
 * in) and writes its result into the chunk's result row
 * (approvals.batch_item_results: the chunk's claim ids, decisions and errors
 * as arrays).  So a list holds only items not processed yet, and every item is
 * in exactly one of the two tables.
 */
#define AP_ITEM_LIST_SIZE	1000

/* A batch interrupted this many times (crash, or a chunk that kept failing) is quarantined */
#define AP_MAX_ATTEMPTS		3

/* The batch row, as far as processing needs it (batch_state.c). */
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

/* The columns ApBatchFromRow reads, named in BatchColumn */
#define BATCH_COLUMNS \
	"id, tenant, coordinator, comment, action, status, total_claims, failed_count, " \
	"max_failures, max_failure_ratio, on_threshold, auto_retry, next_position, attempts, " \
	"coalesce(worker_pid, 0), created_by"
enum BatchColumn
{
	BC_ID = 1, BC_TENANT, BC_COORDINATOR, BC_COMMENT, BC_ACTION, BC_STATUS,
	BC_TOTAL_CLAIMS, BC_FAILED_COUNT, BC_MAX_FAILURES, BC_MAX_FAILURE_RATIO,
	BC_ON_THRESHOLD, BC_AUTO_RETRY, BC_NEXT_POSITION, BC_ATTEMPTS, BC_WORKER_PID,
	BC_CREATED_BY
};

/* An entry of a claim-id index (ApStringHashCreate): claim id -> item (or position) */
typedef struct IdIndexEntry
{
	const char *id;
	int			item;
} IdIndexEntry;

/* batch_state.c */
extern void ApBatchFromRow(BatchInfo *bi, int row);
extern bool ApBatchLoad(const char *batch_id, bool lock, BatchInfo *bi);
extern void ApBatchLoadVisible(const ApprovalsCaller *caller, const char *batch_id, bool lock,
							   BatchInfo *bi, const char *what);
extern void ApBatchOpen(ApprovalsCall *call, const char *batch_id, bool lock, BatchInfo *bi,
						const char *what, const char *owner_what);
extern Datum ApBatchRowDatum(const char *batch_id);
extern void ApBatchReportState(const BatchInfo *bi, const char *what);
extern void ApBatchFinish(const char *batch_id, const char *status, const char *error);
extern void ApBatchInsertItems(const char *batch_id, char **ids, int n, int offset);
extern bool ApBatchItemSpan(const char *batch_id, int from, int *first, int *last);
extern Datum ApBatchClaimIds(const char *batch_id);
extern void ApBatchSetTotals(const char *batch_id, const char *tenant, Datum claim_ids);

/* batch_queue.c */
extern void ApBatchQueueLock(const char *batch_id);
extern bool ApBatchTakeOver(const BatchInfo *bi);
extern char *ApBatchTakeNextInner(const ApprovalsCaller *caller);
extern void ApBatchHandBack(const char *batch_id);
extern int	ApBatchCountTakeable(void);
extern void ApQueueShmemRequest(void);
extern void ApQueueShmemInit(void);
extern void ApQueueInit(void);
extern bool ApQueueShared(void);
extern bool ApQueueServesThisDatabase(void);
extern void ApQueueWake(void);
extern void ApQueueRescanAtCommit(void);
extern void ApQueueSetLauncher(Latch *latch);
extern bool ApQueueTakeRescan(void);
extern bool ApQueueMayServe(Oid dboid);
extern bool ApQueueAttachScheduler(void);
extern void ApQueueDetachScheduler(bool absent);
extern void ApQueueSchedulerState(bool *queue_changed, uint64 *takes, bool *stopping);
extern bool ApQueueReserveWorker(int takeable, int max_workers);
extern void ApQueueReleaseWorker(void);
extern void ApQueueStopDatabase(Oid dboid, int timeout_ms);
extern void ApQueueResumeDatabase(Oid dboid);

/* batch_chunk.c */
extern bool ApBatchChunk(const char *batch_id, int chunk_size);

/* batch_revert.c */
extern int	ApBatchRevert(const BatchInfo *bi, const char *actor, const char *comment);

/*
 * batch_run.c: the one driver.  A unit of work (taking a batch, one chunk)
 * runs inside a bracket that the caller chooses: ApTxnInline (the caller's
 * transaction; errors propagate), ApTxnCall (a procedure that commits after
 * every unit) or the worker's own (a transaction per unit).  A bracket
 * returns false, with a copy of the error, when the unit raised and was
 * rolled back.
 */
typedef void (*ApWorkFn) (void *arg);
typedef bool (*ApTxnFn) (ApWorkFn work, void *arg, const char *activity, ErrorData **error);

extern bool ApTxnInline(ApWorkFn work, void *arg, const char *activity, ErrorData **error);
extern bool ApTxnCall(ApWorkFn work, void *arg, const char *activity, ErrorData **error);
extern bool ApBatchTakeNext(const ApprovalsCaller *caller, ApTxnFn txn, MemoryContext cxt,
							char **batch_id, ErrorData **error);
extern ErrorData *ApBatchRun(const char *batch_id, ApTxnFn txn);

#endif							/* BATCH_H */
