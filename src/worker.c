/*
 * worker.c
 *		The background worker: a launcher per cluster (connected to
 *		approvals.database) that expires due claims every naptime and starts
 *		batch workers for queued batches; batch workers that process batches
 *		one chunk per transaction through the shared chunk processor.
 *
 * A transaction that queues a batch sets the launcher's latch when it
 * commits, so a batch starts within milliseconds; approvals.naptime
 * polling is only the fallback.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "approvals.h"

PGDLLEXPORT void ApprovalsLauncherMain(Datum main_arg);
PGDLLEXPORT void ApprovalsBatchWorkerMain(Datum main_arg);

/* Settings */
static char *ap_database = NULL;
static int	ap_max_workers = 2;
static int	ap_naptime = 10;
static bool ap_worker_enabled = true;

#define AP_MAX_WORKERS_LIMIT	64
/* A chunk that raises is retried this many times by its worker before it gives up */
#define CHUNK_RETRIES			3

/* What the launcher publishes in shared memory. */
typedef struct ApprovalsShared
{
	slock_t		mutex;
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	bool		queue_changed;	/* a transaction that queued a batch committed */
	uint64		takes;			/* batches taken by batch workers */
} ApprovalsShared;

/* The launcher's backoff after a batch worker found nothing to take */
#define BACKOFF_FIRST_MS	1000

static ApprovalsShared *ap_shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Set by ApWakeWorker; acted on when the transaction commits. */
static bool wake_at_commit = false;

/* Reserve our shared memory. */
static void
ApShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(ApprovalsShared)));
}

/* Attach to (or create) our shared memory. */
static void
ApShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	ap_shared = ShmemInitStruct("approvals", sizeof(ApprovalsShared), &found);
	if (!found)
	{
		memset(ap_shared, 0, sizeof(ApprovalsShared));
		SpinLockInit(&ap_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* At commit, wake the launcher if this transaction queued a batch. */
static void
ApWorkerXactCallback(XactEvent event, void *arg pg_attribute_unused())
{
	Latch	   *latch = NULL;

	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
	{
		wake_at_commit = false;
		return;
	}
	if (event != XACT_EVENT_COMMIT || !wake_at_commit)
		return;
	wake_at_commit = false;
	if (ap_shared == NULL)
		return;
	SpinLockAcquire(&ap_shared->mutex);
	latch = ap_shared->launcher_latch;
	ap_shared->queue_changed = true;
	SpinLockRelease(&ap_shared->mutex);
	if (latch)
		SetLatch(latch);
}

/* Count a batch taken by a batch worker (the launcher's backoff watches it). */
static void
CountTake(void)
{
	SpinLockAcquire(&ap_shared->mutex);
	ap_shared->takes++;
	SpinLockRelease(&ap_shared->mutex);
}

/* Ask for the launcher to look at the queue once this transaction commits. */
void
ApWakeWorker(void)
{
	wake_at_commit = true;
}

/* Register the settings, shared memory and the launcher (when preloaded). */
void
ApWorkerInit(void)
{
	BackgroundWorker worker;

	DefineCustomIntVariable("approvals.max_workers",
							"Batches processed at once by background workers.",
							"Each needs a slot of max_worker_processes.",
							&ap_max_workers, 2, 1, AP_MAX_WORKERS_LIMIT,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("approvals.naptime",
							"How often the launcher expires due claims and polls for queued batches.",
							"Queued batches normally wake the launcher at commit; this is the fallback.",
							&ap_naptime, 10, 1, 3600,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomBoolVariable("approvals.worker_enabled",
							 "Whether the background worker processes queued batches and expires claims.",
							 NULL,
							 &ap_worker_enabled, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
	RegisterXactCallback(ApWorkerXactCallback, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomStringVariable("approvals.database",
							   "Database in which the background worker processes batches.",
							   NULL,
							   &ap_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = ApShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = ApShmemStartup;

	if (IsBinaryUpgrade)
		return;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "approvals");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ApprovalsLauncherMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "approvals launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "approvals launcher");
	RegisterBackgroundWorker(&worker);
}

/* ------------------------------------------------------------------------
 * Transaction bracket shared by the launcher and the batch workers
 * ------------------------------------------------------------------------ */

typedef bool (*WorkerStepFn) (void *arg);

/*
 * Run fn in its own short transaction, connected to SPI.  Errors are reported and swallowed (the transaction is
 * aborted) so that a worker survives them; returns fn's result, or false.
 */
static bool
RunStep(WorkerStepFn fn, void *arg, const char *activity, bool *failed)
{
	MemoryContext step_cxt = CurrentMemoryContext;
	volatile bool result = false;

	*failed = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		result = fn(arg);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		/* no interrupt may cut the cleanup short (as in PostgreSQL's own workers) */
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(step_cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		RESUME_INTERRUPTS();
		*failed = true;
		result = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(step_cxt);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

/* Standard signal set-up of both kinds of worker. */
static void
WorkerSignals(void)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
}

/* ------------------------------------------------------------------------
 * Batch workers
 * ------------------------------------------------------------------------ */

typedef struct BatchWorkerState
{
	char	   *batch_id;		/* the batch being processed, or NULL */
	MemoryContext keep_cxt;		/* where batch_id lives */
} BatchWorkerState;

/*
 * Lock the extension against DROP for this transaction and tell whether its
 * SQL objects are the version this library needs (a library replaced before
 * ALTER EXTENSION UPDATE waits for the update instead of failing every step).
 */
static bool
SchemaReady(bool *outdated)
{
	char	   *version;
	bool		ready;

	*outdated = false;
	if (!ApLockExtension())
		return false;
	version = ApInstalledVersion();
	ready = version != NULL && strcmp(version, AP_EXTVERSION) == 0;
	*outdated = version != NULL && !ready;
	return ready;
}

/* Take the next batch to process (as the extension owner). */
static bool
StepClaim(void *arg)
{
	BatchWorkerState *st = (BatchWorkerState *) arg;
	ApprovalsCall call;
	char	   *id;

	bool		outdated;

	st->batch_id = NULL;
	if (!SchemaReady(&outdated))
		return false;
	ApEnterSafe(&call);
	id = ApClaimNextBatch(NULL);
	ApLeaveSafe(&call);
	st->batch_id = id ? MemoryContextStrdup(st->keep_cxt, id) : NULL;
	return id != NULL;
}

/* Process one chunk of the current batch; true when it is finished. */
static bool
StepChunk(void *arg)
{
	BatchWorkerState *st = (BatchWorkerState *) arg;
	ApprovalsCall call;
	bool		finished;
	bool		outdated;

	if (!SchemaReady(&outdated))
		return true;
	ApEnterSafe(&call);
	finished = ApBatchStep(st->batch_id, ap_chunk_size);
	ApLeaveSafe(&call);
	return finished;
}

/* A batch worker: process batches until none is left, one chunk per transaction. */
void
ApprovalsBatchWorkerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	BatchWorkerState st;
	MemoryContext chunk_cxt;
	int			chunk_failures = 0;

	WorkerSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("approvals batch worker");

	st.keep_cxt = AllocSetContextCreate(TopMemoryContext, "approvals batch worker",
										ALLOCSET_DEFAULT_SIZES);
	chunk_cxt = AllocSetContextCreate(TopMemoryContext, "approvals chunk",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		bool		failed;
		bool		finished;
		char		activity[128];

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(st.keep_cxt);
		MemoryContextSwitchTo(chunk_cxt);
		if (!RunStep(StepClaim, &st, "approvals: looking for a queued batch", &failed))
			break;
		CountTake();

		do
		{
			CHECK_FOR_INTERRUPTS();
			if (ConfigReloadPending)
			{
				ConfigReloadPending = false;
				ProcessConfigFile(PGC_SIGHUP);
			}
			MemoryContextReset(chunk_cxt);
			MemoryContextSwitchTo(chunk_cxt);
			snprintf(activity, sizeof(activity), "approvals: processing batch %s",
					 st.batch_id);
			finished = RunStep(StepChunk, &st, activity, &failed);
			if (!failed)
				chunk_failures = 0;
			else if (++chunk_failures < CHUNK_RETRIES)
			{
				/* a passing failure (deadlock, lock timeout): retry the chunk */
				ApBackoffSleep(1000L * chunk_failures);
				finished = false;
			}
			else
			{
				/*
				 * Leave it processing: the next claim resumes it and counts an
				 * attempt, so a batch that keeps failing is quarantined.
				 */
				chunk_failures = 0;
				finished = true;
			}
		} while (!finished);
	}
	proc_exit(0);
}

/* ------------------------------------------------------------------------
 * The launcher
 * ------------------------------------------------------------------------ */

typedef struct LauncherState
{
	bool		installed;		/* extension present in the database */
	bool		outdated;		/* present, but not the library's version */
	bool		logged_missing;
	bool		logged_outdated;
	int			claimable;		/* queued + orphaned batches */
} LauncherState;

static bool
StepLauncher(void *arg)
{
	static const char *count_sql =
		"SELECT pg_catalog.count(*)::integer FROM approvals.batches "
		"WHERE status = 'queued' OR (status = 'processing' AND " AP_BATCH_ORPHANED ")";
	LauncherState *ls = (LauncherState *) arg;
	ApprovalsCall call;
	bool		isnull;

	ls->claimable = 0;
	ls->installed = SchemaReady(&ls->outdated) || ls->outdated;
	if (!ls->installed || ls->outdated)
		return false;
	ApEnterSafe(&call);
	ApExec(count_sql, 0, NULL, NULL, NULL, 1);
	ls->claimable = DatumGetInt32(ApGetDatum(0, 1, &isnull));
	ApLeaveSafe(&call);
	return true;
}

/* Expire due claims (its own transaction: a failure must not stop the queue). */
static bool
StepExpire(void *arg pg_attribute_unused())
{
	static const char *expire_sql = "SELECT approvals.expire_due()";
	ApprovalsCall call;
	bool		outdated;

	if (!SchemaReady(&outdated))
		return false;
	ApEnterSafe(&call);
	ApExec(expire_sql, 0, NULL, NULL, NULL, 1);
	ApLeaveSafe(&call);
	return true;
}

/* Forget the launcher's latch when it exits. */
static void
LauncherDetach(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	SpinLockAcquire(&ap_shared->mutex);
	if (ap_shared->launcher_pid == MyProcPid)
	{
		ap_shared->launcher_pid = 0;
		ap_shared->launcher_latch = NULL;
	}
	SpinLockRelease(&ap_shared->mutex);
}

/* Start one batch worker; false (with a WARNING) when no slot is free. */
static bool
StartBatchWorker(BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "approvals");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "ApprovalsBatchWorkerMain");
	snprintf(worker.bgw_name, BGW_MAXLEN, "approvals batch worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "approvals batch worker");
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("approvals: could not start a batch worker"),
				 errhint("Raise max_worker_processes (approvals.max_workers batch workers and the launcher need a slot each).")));
		return false;
	}
	return true;
}

/* The launcher: expire claims every naptime, start batch workers for queued batches. */
void
ApprovalsLauncherMain(Datum main_arg pg_attribute_unused())
{
	BackgroundWorkerHandle *workers[AP_MAX_WORKERS_LIMIT];
	uint64		takes_at_start[AP_MAX_WORKERS_LIMIT];	/* shared takes when each started */
	LauncherState ls;
	TimestampTz last_expire = 0;
	MemoryContext loop_cxt;
	uint64		seen_takes = 0;
	long		backoff_ms = 0;
	TimestampTz backoff_until = 0;

	memset(workers, 0, sizeof(workers));
	memset(&ls, 0, sizeof(ls));
	WorkerSignals();
	if (IsBinaryUpgrade)
		proc_exit(0);
	BackgroundWorkerInitializeConnection(ap_database, NULL, 0);
	pgstat_report_appname("approvals launcher");

	SpinLockAcquire(&ap_shared->mutex);
	ap_shared->launcher_pid = MyProcPid;
	ap_shared->launcher_latch = MyLatch;
	SpinLockRelease(&ap_shared->mutex);
	on_shmem_exit(LauncherDetach, (Datum) 0);

	ereport(LOG, (errmsg("approvals launcher started in database \"%s\"", ap_database)));
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "approvals launcher",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		int			running = 0;
		bool		failed;
		TimestampTz now = GetCurrentTimestamp();
		long		sleep_ms = ap_naptime * 1000L;
		bool		queue_changed;
		bool		idle_exit = false;
		uint64		takes;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

		SpinLockAcquire(&ap_shared->mutex);
		queue_changed = ap_shared->queue_changed;
		ap_shared->queue_changed = false;
		takes = ap_shared->takes;
		SpinLockRelease(&ap_shared->mutex);

		/* a worker that stopped with no batch taken since it started found nothing */
		for (int i = 0; i < AP_MAX_WORKERS_LIMIT; i++)
		{
			pid_t		pid;

			if (workers[i] == NULL)
				continue;
			if (GetBackgroundWorkerPid(workers[i], &pid) == BGWH_STOPPED)
			{
				if (takes == takes_at_start[i])
					idle_exit = true;
				pfree(workers[i]);
				workers[i] = NULL;
			}
			else
				running++;
		}

		/*
		 * Back off when a batch worker found nothing to take (the batch the
		 * queue count saw is row-locked by an open transaction, say, or the
		 * worker could not even connect): wait 1 s, 2 s, 4 s ... up to
		 * naptime before starting another, until a batch is taken or a
		 * transaction queues one.
		 */
		if (queue_changed || takes != seen_takes)
		{
			backoff_ms = 0;
			backoff_until = 0;
		}
		else if (idle_exit)
		{
			backoff_ms = backoff_ms == 0 ? BACKOFF_FIRST_MS
				: Min(backoff_ms * 2, ap_naptime * 1000L);
			backoff_until = TimestampTzPlusMilliseconds(now, backoff_ms);
		}
		seen_takes = takes;

		if (ap_worker_enabled)
		{
			if (TimestampDifferenceExceeds(last_expire, now, ap_naptime * 1000))
			{
				RunStep(StepExpire, NULL, "approvals launcher: expiring due claims", &failed);
				last_expire = now;
			}
			RunStep(StepLauncher, &ls, "approvals launcher: checking the queue", &failed);
			if (!ls.installed && !failed && !ls.logged_missing)
			{
				ereport(LOG,
						(errmsg("approvals launcher: extension \"approvals\" is not installed in database \"%s\"; waiting",
								ap_database)));
				ls.logged_missing = true;
			}
			if (ls.installed)
				ls.logged_missing = false;
			if (ls.outdated && !failed && !ls.logged_outdated)
			{
				ereport(LOG,
						(errmsg("approvals launcher: extension \"approvals\" in database \"%s\" is not at version %s, the version of the loaded library; waiting for ALTER EXTENSION approvals UPDATE",
								ap_database, AP_EXTVERSION)));
				ls.logged_outdated = true;
			}
			if (!ls.outdated)
				ls.logged_outdated = false;

			if (now < backoff_until)
				sleep_ms = Min(sleep_ms, TimestampDifferenceMilliseconds(now, backoff_until) + 1);
			for (int i = 0; i < AP_MAX_WORKERS_LIMIT && now >= backoff_until &&
				 ls.claimable > running && running < ap_max_workers; i++)
			{
				MemoryContext old;

				if (workers[i] != NULL)
					continue;
				old = MemoryContextSwitchTo(TopMemoryContext);
				if (!StartBatchWorker(&workers[i]))
				{
					workers[i] = NULL;
					MemoryContextSwitchTo(old);
					break;
				}
				takes_at_start[i] = takes;
				MemoryContextSwitchTo(old);
				running++;
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
