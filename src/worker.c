/*
 * worker.c
 *		Background-worker plumbing only: the launcher (one per cluster,
 *		connected to approvals.database) and the batch workers it starts.  No
 *		batch logic lives here: a batch worker takes batches and runs them
 *		through the driver (batch_run.c) with a transaction of its own per
 *		unit of work; the launcher expires due claims every naptime and starts
 *		batch workers while batches can be taken, backing off when they find
 *		nothing.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "batch.h"

PGDLLEXPORT void ApprovalsLauncherMain(Datum main_arg);
PGDLLEXPORT void ApprovalsBatchWorkerMain(Datum main_arg);

/* The launcher's backoff after a batch worker found nothing to take */
#define BACKOFF_FIRST_MS	1000

/* Register the launcher (with the preload, not under binary upgrade). */
void
ApWorkerRegister(void)
{
	BackgroundWorker worker;

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

/*
 * A worker's bracket around a unit of work: its own short transaction.  An
 * error is reported to the log, the transaction aborted (with interrupts
 * held, as PostgreSQL's own workers do) and a copy of the error returned, so
 * that the worker survives it.
 */
static bool
WorkerTxn(ApWorkFn work, void *arg, const char *activity, ErrorData **error)
{
	MemoryContext outer = CurrentMemoryContext;

	*error = NULL;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
	PG_TRY();
	{
		work(arg);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(outer);
		*error = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(outer);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return *error == NULL;
}

/* Standard signal set-up of both kinds of worker. */
static void
WorkerSignals(void)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
}

/* Reload the configuration when asked (SIGHUP). */
static void
WorkerReloadConfig(void)
{
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/* ------------------------------------------------------------------------
 * Batch workers
 * ------------------------------------------------------------------------ */

/* A batch worker: take and run batches until none is left. */
void
ApprovalsBatchWorkerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext batch_cxt;

	WorkerSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("approvals batch worker");

	batch_cxt = AllocSetContextCreate(TopMemoryContext, "approvals batch worker",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		char	   *batch_id;
		ErrorData  *error;

		CHECK_FOR_INTERRUPTS();
		WorkerReloadConfig();
		MemoryContextReset(batch_cxt);
		MemoryContextSwitchTo(batch_cxt);
		if (!ApBatchTakeNext(NULL, WorkerTxn, batch_cxt, &batch_id, &error) ||
			batch_id == NULL)
			break;
		/* an error is in the log already; the batch was handed back */
		error = ApBatchRun(batch_id, WorkerTxn);
		if (error)
			FreeErrorData(error);
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
	int			takeable;		/* queued + orphaned batches */
} LauncherState;

/*
 * Look at the queue: is the extension there, at the library's version, and
 * how many batches could be taken?  (A library replaced before ALTER
 * EXTENSION UPDATE waits for the update instead of failing every unit of work.)
 */
static void
LauncherLook(void *arg)
{
	LauncherState *ls = (LauncherState *) arg;
	ApprovalsCall call;
	char	   *version;

	ls->takeable = 0;
	ls->installed = ApLockExtension();
	if (!ls->installed)
		return;
	version = ApInstalledVersion();
	ls->outdated = version == NULL || strcmp(version, AP_EXTVERSION) != 0;
	if (ls->outdated)
		return;
	ApEnterSafe(&call);
	ls->takeable = ApBatchCountTakeable();
	ApLeaveSafe(&call);
}

/* Expire due claims (its own transaction: a failure must not stop the queue). */
static void
LauncherExpire(void *arg pg_attribute_unused())
{
	static const ApStmt expire_sql = {
		"SELECT approvals.expire_due()",
		0, {InvalidOid}
	};
	ApprovalsCall call;

	if (!ApLockExtension())
		return;
	ApEnterSafe(&call);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ApExec(&expire_sql, NULL, NULL, 1);
	SPI_finish();
	ApLeaveSafe(&call);
}

/* Forget the launcher's latch when it exits. */
static void
LauncherDetach(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	ApQueueSetLauncher(NULL);
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

/* Log, once per change, why the launcher waits. */
static void
LauncherLogState(LauncherState *ls)
{
	if (!ls->installed && !ls->logged_missing)
		ereport(LOG,
				(errmsg("approvals launcher: extension \"approvals\" is not installed in database \"%s\"; waiting",
						ap_database)));
	ls->logged_missing = !ls->installed;
	if (ls->installed && ls->outdated && !ls->logged_outdated)
		ereport(LOG,
				(errmsg("approvals launcher: extension \"approvals\" in database \"%s\" is not at version %s, the version of the loaded library; waiting for ALTER EXTENSION approvals UPDATE",
						ap_database, AP_EXTVERSION)));
	ls->logged_outdated = ls->installed && ls->outdated;
}

/* The launcher: expire claims every naptime, start batch workers for takeable batches. */
void
ApprovalsLauncherMain(Datum main_arg pg_attribute_unused())
{
	BackgroundWorkerHandle *workers[AP_MAX_WORKERS_LIMIT];
	uint64		takes_at_start[AP_MAX_WORKERS_LIMIT];	/* takes when each started */
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
	ApQueueSetLauncher(MyLatch);
	on_shmem_exit(LauncherDetach, (Datum) 0);

	ereport(LOG, (errmsg("approvals launcher started in database \"%s\"", ap_database)));
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "approvals launcher",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		int			running = 0;
		TimestampTz now = GetCurrentTimestamp();
		long		sleep_ms = ap_naptime * 1000L;
		bool		queue_changed = ApQueueChanged();
		uint64		takes = ApQueueTakes();
		bool		idle_exit = false;
		ErrorData  *error;

		CHECK_FOR_INTERRUPTS();
		WorkerReloadConfig();
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);

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
				if (!WorkerTxn(LauncherExpire, NULL, "approvals launcher: expiring due claims",
							   &error))
					FreeErrorData(error);
				last_expire = now;
			}
			if (WorkerTxn(LauncherLook, &ls, "approvals launcher: checking the queue", &error))
				LauncherLogState(&ls);
			else
			{
				FreeErrorData(error);
				ls.takeable = 0;
			}

			if (now < backoff_until)
				sleep_ms = Min(sleep_ms, TimestampDifferenceMilliseconds(now, backoff_until) + 1);
			for (int i = 0; i < AP_MAX_WORKERS_LIMIT && now >= backoff_until &&
				 ls.takeable > running && running < ap_max_workers; i++)
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
