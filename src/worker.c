/*
 * worker.c
 *		Background-worker plumbing only, in three kinds of process:
 *
 *		the launcher	one per cluster, connected to no database: lists the
 *						databases (every one that accepts connections and is not
 *						a template, or only approvals.database when that is set)
 *						and starts a scheduler for each that has none; looks again
 *						every naptime and whenever CREATE/DROP EXTENSION or CREATE
 *						DATABASE commits (noticed by a ProcessUtility hook)
 *		a scheduler		one per database that has the extension (one without it
 *						leaves at once and is not started again until the next
 *						look): expires due claims and seals the audit log every
 *						naptime, and starts batch
 *						workers for takeable batches, within its fair share of
 *						approvals.max_workers, backing off when they find nothing
 *		batch workers	take batches and run them through the driver
 *						(batch_run.c), a transaction of their own per unit of work
 *
 * DROP DATABASE (and ALTER DATABASE RENAME / SET TABLESPACE, CREATE DATABASE
 * ... TEMPLATE) need the database to have no other sessions: the hook asks
 * that database's scheduler and workers to leave first, without blocking.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "executor/spi.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/rel.h"
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
PGDLLEXPORT void ApprovalsSchedulerMain(Datum main_arg);
PGDLLEXPORT void ApprovalsBatchWorkerMain(Datum main_arg);

/* The launcher's backoff after a batch worker found nothing to take */
#define BACKOFF_FIRST_MS	1000
/* A scheduler looks at most this often, however often it is woken */
#define LOOP_MIN_MS			100
/* Transactions of notifications a scheduler sends per look (then it looks again) */
#define SEND_ROUNDS_MAX		50

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
 * Schedulers: one per database that has the extension
 * ------------------------------------------------------------------------ */

typedef struct SchedulerState
{
	bool		installed;		/* extension present in the database */
	bool		outdated;		/* present, but not the library's version */
	bool		logged_outdated;
	int			takeable;		/* queued + orphaned batches */
} SchedulerState;

/*
 * Look at the queue: is the extension there, at the library's version, and
 * how many batches could be taken?  (A library replaced before ALTER
 * EXTENSION UPDATE waits for the update instead of failing every unit of work.)
 */
static void
SchedulerLook(void *arg)
{
	SchedulerState *ss = (SchedulerState *) arg;
	ApprovalsCall call;
	char	   *version;

	ss->takeable = 0;
	ss->installed = ApLockExtension();
	if (!ss->installed)
		return;
	version = ApInstalledVersion();
	ss->outdated = version == NULL || strcmp(version, AP_EXTVERSION) != 0;
	if (ss->outdated)
		return;
	ApEnterSafe(&call);
	ss->takeable = ApBatchCountTakeable();
	ApLeaveSafe(&call);
}

/* The scheduler's periodic duties, each run every naptime in its own transaction. */
static const ApStmt expire_sql = {
	"SELECT approvals.expire_due()",
	0, {InvalidOid}
};

/* Events the scheduler seals per turn of its loop at most (about 0.2 s of work) */
#define SEAL_ROUND_EVENTS	50000

/* Run one periodic duty (arg: its ApStmt). */
static void
SchedulerDutyWork(void *arg)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ApExec((const ApStmt *) arg, NULL, NULL, 1);
	SPI_finish();
}

/* Run one periodic duty (its own transaction: a failure must not stop the queue). */
static void
SchedulerDuty(void *arg)
{
	(void) ApRunInExtension(SchedulerDutyWork, arg);
}

/* Seal a part of the audit log (ApSealAuditSome); *more when some is left. */
static void
SchedulerSealWork(void *arg)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	*(bool *) arg = ApSealAuditSome(SEAL_ROUND_EVENTS);
	SPI_finish();
}

/* Seal a part of the audit log (its own transaction). */
static void
SchedulerSeal(void *arg)
{
	*(bool *) arg = false;
	(void) ApRunInExtension(SchedulerSealWork, arg);
}

/* Send handed-over notifications (ApOutboxSend); *more when some are left. */
static void
SchedulerSendWork(void *arg)
{
	*(bool *) arg = ApOutboxSend();
}

/* Send notifications in their own transaction (a failure must not stop the queue). */
static void
SchedulerSend(void *arg)
{
	*(bool *) arg = false;
	(void) ApRunInExtension(SchedulerSendWork, arg);
}

/* Set when a scheduler leaves because its database has no extension. */
static bool scheduler_found_no_extension = false;

/* Leave the queue table when the scheduler exits. */
static void
SchedulerDetach(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	ApQueueDetachScheduler(scheduler_found_no_extension);
}

/* Start one dynamic worker in this database; false (with a WARNING) when no slot is free. */
static bool
StartWorker(const char *function, const char *name, Oid dboid,
			BackgroundWorkerHandle **handle)
{
	BackgroundWorker worker;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	bool		ok;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "approvals");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(worker.bgw_name, BGW_MAXLEN, "%s", name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", name);
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	ok = RegisterDynamicBackgroundWorker(&worker, handle);
	MemoryContextSwitchTo(old);
	if (!ok)
	{
		*handle = NULL;
		ereport(WARNING,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("approvals: could not start %s", name),
				 errhint("Raise max_worker_processes (the launcher, a scheduler per database and approvals.max_workers batch workers need a slot each).")));
	}
	return ok;
}

/* Stop this scheduler's batch workers and wait for them (the database is being dropped). */
static void
StopBatchWorkers(BackgroundWorkerHandle **workers)
{
	for (int i = 0; i < AP_MAX_WORKERS_LIMIT; i++)
		if (workers[i] != NULL)
			TerminateBackgroundWorker(workers[i]);
	for (int i = 0; i < AP_MAX_WORKERS_LIMIT; i++)
		if (workers[i] != NULL)
		{
			(void) WaitForBackgroundWorkerShutdown(workers[i]);
			ApQueueReleaseWorker();
			pfree(workers[i]);
			workers[i] = NULL;
		}
}

/* A scheduler: expire claims every naptime, start batch workers for takeable batches. */
void
ApprovalsSchedulerMain(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	BackgroundWorkerHandle *workers[AP_MAX_WORKERS_LIMIT];
	uint64		takes_at_start[AP_MAX_WORKERS_LIMIT];	/* takes when each started */
	SchedulerState ss;
	char	   *dbname;
	TimestampTz last_duties = 0;
	bool		seal_more = false;
	MemoryContext loop_cxt;
	uint64		seen_takes = 0;
	long		backoff_ms = 0;
	TimestampTz backoff_until = 0;

	memset(workers, 0, sizeof(workers));
	memset(&ss, 0, sizeof(ss));
	WorkerSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("approvals scheduler");
	StartTransactionCommand();
	dbname = MemoryContextStrdup(TopMemoryContext, get_database_name(MyDatabaseId));
	CommitTransactionCommand();
	if (!ApQueueAttachScheduler())
		proc_exit(0);
	on_shmem_exit(SchedulerDetach, (Datum) 0);

	loop_cxt = AllocSetContextCreate(TopMemoryContext, "approvals scheduler",
									 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		int			running = 0;
		TimestampTz now = GetCurrentTimestamp();
		long		sleep_ms = ap_naptime * 1000L;
		bool		queue_changed;
		bool		stopping;
		uint64		takes;
		bool		idle_exit = false;
		bool		send_more = false;
		long		elapsed;
		ErrorData  *error;

		CHECK_FOR_INTERRUPTS();
		WorkerReloadConfig();
		MemoryContextReset(loop_cxt);
		MemoryContextSwitchTo(loop_cxt);
		ApQueueSchedulerState(&queue_changed, &takes, &stopping);
		if (stopping)
		{
			StopBatchWorkers(workers);
			proc_exit(0);
		}

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
				ApQueueReleaseWorker();
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

		if (!WorkerTxn(SchedulerLook, &ss, "approvals scheduler: checking the queue", &error))
		{
			FreeErrorData(error);
			ss.takeable = 0;
		}
		else if (!ss.installed)
		{
			ereport(LOG,
					(errmsg("approvals scheduler: extension \"approvals\" is not installed in database \"%s\"; leaving",
							dbname)));
			StopBatchWorkers(workers);
			scheduler_found_no_extension = true;
			proc_exit(0);
		}
		else if (ss.outdated && !ss.logged_outdated)
		{
			ereport(LOG,
					(errmsg("approvals scheduler: extension \"approvals\" in database \"%s\" is not at version %s, the version of the loaded library; waiting for ALTER EXTENSION approvals UPDATE",
							dbname, AP_EXTVERSION)));
			ss.logged_outdated = true;
		}
		if (!ss.outdated)
			ss.logged_outdated = false;

		/*
		 * Notifications handed over by committed transactions: all of them,
		 * a transaction per OUTBOX_SEND_MAX (they wake us at commit).
		 */
		if (!ss.outdated)
		{
			bool		more = true;

			for (int round = 0; more && round < SEND_ROUNDS_MAX; round++)
			{
				CHECK_FOR_INTERRUPTS();
				if (!WorkerTxn(SchedulerSend, &more, "approvals scheduler: sending notifications",
							   &error))
				{
					FreeErrorData(error);
					more = false;
				}
			}
			if (more)
				send_more = true;	/* look again after the throttle, not after naptime */
		}

		if (ap_worker_enabled && !ss.outdated &&
			TimestampDifferenceExceeds(last_duties, now, ap_naptime * 1000))
		{
			if (!WorkerTxn(SchedulerDuty, (void *) &expire_sql,
						   "approvals scheduler: expiring due claims", &error))
				FreeErrorData(error);
			last_duties = now;
			seal_more = true;
		}
		if (ap_worker_enabled && !ss.outdated && seal_more)
		{
			/* a part per turn: a backlog is sealed between starting batches and sending */
			if (!WorkerTxn(SchedulerSeal, &seal_more, "approvals scheduler: sealing the audit log",
						   &error))
			{
				FreeErrorData(error);
				seal_more = false;
			}
			if (seal_more)
				send_more = true;	/* come back after the throttle, not after naptime */
		}

		if (now < backoff_until)
			sleep_ms = Min(sleep_ms, TimestampDifferenceMilliseconds(now, backoff_until) + 1);
		for (int i = 0; i < AP_MAX_WORKERS_LIMIT && ap_worker_enabled && now >= backoff_until &&
			 running < ap_max_workers; i++)
		{
			if (workers[i] != NULL)
				continue;
			if (!ApQueueReserveWorker(ss.takeable, ap_max_workers))
				break;
			if (!StartWorker("ApprovalsBatchWorkerMain", "approvals batch worker", MyDatabaseId,
							 &workers[i]))
			{
				ApQueueReleaseWorker();
				break;
			}
			takes_at_start[i] = takes;
			running++;
		}
		if (ss.takeable > running)
			sleep_ms = Min(sleep_ms, 1000L);	/* waiting for a share of the budget */
		if (send_more)
			sleep_ms = 0;

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);

		/*
		 * Every committing decision sets our latch: look at most every
		 * LOOP_MIN_MS, so that a busy database gets its notifications in
		 * batches instead of a scheduler spinning beside it.
		 */
		elapsed = TimestampDifferenceMilliseconds(now, GetCurrentTimestamp());
		if (elapsed < LOOP_MIN_MS)
			(void) WaitLatch(NULL, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, LOOP_MIN_MS - elapsed,
							 PG_WAIT_EXTENSION);
	}
}

/* ------------------------------------------------------------------------
 * The launcher: a scheduler for every database that has the extension
 * ------------------------------------------------------------------------ */

typedef struct LauncherDb
{
	Oid			dboid;
	BackgroundWorkerHandle *handle;
} LauncherDb;

#define LAUNCHER_MAX_DBS	128

/* Forget the launcher's latch when it exits. */
static void
LauncherDetach(int code pg_attribute_unused(), Datum arg pg_attribute_unused())
{
	ApQueueSetLauncher(NULL);
}

/*
 * The databases a scheduler may serve: every one that accepts connections
 * and is not a template, or only approvals.database when that is set.
 */
static int
ListDatabases(Oid *oids, int max)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	int			n = 0;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL && n < max)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (!db->datallowconn || db->datistemplate)
			continue;
		if (ap_database && ap_database[0] && strcmp(NameStr(db->datname), ap_database) != 0)
			continue;
		oids[n++] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return n;
}

/* The launcher: start a scheduler for every database that needs one. */
void
ApprovalsLauncherMain(Datum main_arg pg_attribute_unused())
{
	LauncherDb	dbs[LAUNCHER_MAX_DBS];
	int			n_dbs = 0;
	TimestampTz last_look = 0;

	WorkerSignals();
	if (IsBinaryUpgrade)
		proc_exit(0);
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("approvals launcher");
	ApQueueSetLauncher(MyLatch);
	on_shmem_exit(LauncherDetach, (Datum) 0);
	if (ap_database && ap_database[0])
		ereport(LOG, (errmsg("approvals launcher started; serving database \"%s\" only",
							 ap_database)));
	else
		ereport(LOG, (errmsg("approvals launcher started; serving every database that has the extension")));

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		rescan;

		CHECK_FOR_INTERRUPTS();
		WorkerReloadConfig();
		rescan = ApQueueTakeRescan();

		/* forget schedulers that stopped */
		for (int i = 0; i < n_dbs;)
		{
			pid_t		pid;

			if (dbs[i].handle == NULL ||
				GetBackgroundWorkerPid(dbs[i].handle, &pid) == BGWH_STOPPED)
			{
				if (dbs[i].handle)
					pfree(dbs[i].handle);
				dbs[i] = dbs[--n_dbs];
			}
			else
				i++;
		}

		/* look every naptime, and at once when something changed */
		if (rescan || TimestampDifferenceExceeds(last_look, now, ap_naptime * 1000))
		{
			Oid			oids[LAUNCHER_MAX_DBS];
			int			n = ListDatabases(oids, LAUNCHER_MAX_DBS);

			last_look = now;
			for (int k = 0; k < n && n_dbs < LAUNCHER_MAX_DBS; k++)
			{
				bool		served = false;

				for (int i = 0; i < n_dbs; i++)
					served |= dbs[i].dboid == oids[k];
				if (served || !ApQueueMayServe(oids[k]))
					continue;
				if (!StartWorker("ApprovalsSchedulerMain", "approvals scheduler", oids[k],
								 &dbs[n_dbs].handle))
					break;
				dbs[n_dbs++].dboid = oids[k];
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ap_naptime * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ------------------------------------------------------------------------
 * Noticing databases and the extension come and go
 * ------------------------------------------------------------------------ */

static ProcessUtility_hook_type prev_ProcessUtility = NULL;

/* The database a utility statement needs without other sessions, or InvalidOid. */
static Oid
DatabaseToVacate(Node *stmt)
{
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_DropdbStmt:
			return get_database_oid(((DropdbStmt *) stmt)->dbname, true);
		case T_RenameStmt:
			if (((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
				return get_database_oid(((RenameStmt *) stmt)->subname, true);
			return InvalidOid;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
				if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
					return get_database_oid(((AlterDatabaseStmt *) stmt)->dbname, true);
			return InvalidOid;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) stmt)->options)
				if (strcmp(((DefElem *) lfirst(lc))->defname, "template") == 0)
					return get_database_oid(defGetString((DefElem *) lfirst(lc)), true);
			return InvalidOid;
		default:
			return InvalidOid;
	}
}

/* Does this statement create or drop the extension, or create a database? */
static bool
ChangesWhatIsServed(Node *stmt)
{
	switch (nodeTag(stmt))
	{
		case T_CreateExtensionStmt:
			return strcmp(((CreateExtensionStmt *) stmt)->extname, "approvals") == 0;
		case T_CreatedbStmt:
			return true;
		case T_DropStmt:
			return ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION;
		default:
			return false;
	}
}

/*
 * ProcessUtility hook (with the preload): before a statement that needs a
 * database without other sessions, our scheduler and workers there leave
 * (they come back after it); after CREATE/DROP EXTENSION or CREATE DATABASE,
 * the launcher looks again when the transaction commits.
 */
static void
ApProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				 ProcessUtilityContext context, ParamListInfo params,
				 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	Oid			vacate = DatabaseToVacate(stmt);

	if (ChangesWhatIsServed(stmt))
		ApQueueRescanAtCommit();
	if (OidIsValid(vacate))
		ApQueueStopDatabase(vacate, 10000);
	PG_TRY();
	{
		if (prev_ProcessUtility)
			prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (OidIsValid(vacate))
			ApQueueResumeDatabase(vacate);
	}
	PG_END_TRY();
}

/* Install the hook (with the preload). */
void
ApWorkerInstallHooks(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = ApProcessUtility;
}
