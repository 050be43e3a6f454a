/*
 * batch_queue.c
 *		The queue of batches: the per-batch lock everything that changes a batch
 *		takes first, taking a batch to process (the oldest queued one, or one
 *		whose processing backend is gone), handing it back, quarantine, and
 *		waking the launcher when a transaction that queued a batch commits.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "commands/dbcommands.h"
#include "storage/ipc.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "batch.h"

/* Advisory lock tag field 4 of the batch queue lock (pg_locks.objsubid) */
#define AP_BATCH_LOCK_SPACE	0x4150

static void CountTake(void);

/* A batch whose processing backend is gone: no backend with its pid and start time */
#define AP_BATCH_ORPHANED \
	"NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a " \
	"WHERE a.pid = worker_pid AND a.backend_start = worker_started)"

/* ------------------------------------------------------------------------
 * The per-batch lock
 * ------------------------------------------------------------------------ */

/*
 * Queue fairly for a batch: a transaction-level heavyweight lock on its id,
 * taken before the row lock by everything that changes the batch.  Waiters
 * on a row lock are not served in order, so without it a cancel waiting for
 * the current chunk could lose the row to the next chunk again and again;
 * the lock manager grants this lock first come, first served.
 */
static void
BatchQueueTag(const char *batch_id, LOCKTAG *tag)
{
	uint64		h = DatumGetUInt64(hash_any_extended((const unsigned char *) batch_id,
													 strlen(batch_id), 0));

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32) (h >> 32), (uint32) h,
						 AP_BATCH_LOCK_SPACE);
}

void
ApBatchQueueLock(const char *batch_id)
{
	LOCKTAG		tag;

	BatchQueueTag(batch_id, &tag);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/* The same lock, only if nobody holds or awaits it. */
static bool
BatchQueueLockConditional(const char *batch_id)
{
	LOCKTAG		tag;

	BatchQueueTag(batch_id, &tag);
	return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

/* ------------------------------------------------------------------------
 * Taking a batch
 * ------------------------------------------------------------------------ */

/*
 * Mark a batch processing by this backend (from pending or queued, or
 * resuming after a crash).  Returns false when it was quarantined instead.
 */
bool
ApBatchTakeOver(const BatchInfo *bi)
{
	static const ApStmt sql = {
		"UPDATE approvals.batches SET status = 'processing', worker_pid = $2, "
		"worker_started = $3, attempts = attempts + 1, "
		"started_at = coalesce(started_at, now()), "
		"queued_at = coalesce(queued_at, now()), updated_at = now() WHERE id = $1",
		3, {TEXTOID, INT4OID, TIMESTAMPTZOID}
	};
	Datum		values[3] = {CStringGetTextDatum(bi->id), Int32GetDatum(MyProcPid),
	TimestampTzGetDatum(MyStartTimestamp)};

	if (strcmp(bi->status, "processing") == 0 && bi->attempts >= AP_MAX_ATTEMPTS)
	{
		StringInfoData msg;

		initStringInfo(&msg);
		appendStringInfo(&msg, "quarantined: processing was interrupted %d times "
						 "(last at position %d); claims decided so far stay decided",
						 bi->attempts, bi->next_position);
		ApBatchFinish(bi->id, "failed", msg.data);
		ereport(WARNING,
				(errmsg("approvals: batch \"%s\" quarantined after %d interrupted attempts",
						bi->id, bi->attempts)));
		return false;
	}
	ApExec(&sql, values, NULL, 0);
	return true;
}

/*
 * Take the next batch among the first few takeable ones of the given tenants
 * (all when all_tenants): the oldest queued, or one whose processing backend
 * is gone (or is this one, after an error).  Marks it processing by this
 * backend.  Returns its id, or NULL.
 */
static char *
TakeNextAmong(bool all_tenants, Datum tenants)
{
	static const ApStmt sql = {
		"SELECT " BATCH_COLUMNS " FROM approvals.batches "
		"WHERE (status = 'queued' OR (status = 'processing' AND "
		"  (worker_pid = pg_catalog.pg_backend_pid() OR " AP_BATCH_ORPHANED "))) "
		"AND ($1 OR tenant IS NULL OR tenant = ANY ($2)) "
		"ORDER BY queued_at NULLS LAST, id LIMIT 10 FOR UPDATE SKIP LOCKED",
		2, {BOOLOID, TEXTARRAYOID}
	};
	Datum		values[2] = {BoolGetDatum(all_tenants), tenants};
	int			n;
	BatchInfo  *candidates;

	n = ApExec(&sql, values, NULL, 10);
	candidates = palloc(sizeof(BatchInfo) * Max(n, 1));
	for (int i = 0; i < n; i++)
		ApBatchFromRow(&candidates[i], i);
	for (int i = 0; i < n; i++)
	{
		/*
		 * Someone queued on the batch (a cancel, say) goes first: take the
		 * queue lock only if it is free, in the order everything uses.
		 */
		if (!BatchQueueLockConditional(candidates[i].id))
			continue;
		if (ApBatchTakeOver(&candidates[i]))
			return candidates[i].id;
	}
	return NULL;
}

/*
 * Take the next batch to process among the tenants the caller may act on
 * (all of them for the worker: caller NULL), in its own SPI connection.
 * Returns its id (allocated in the caller's memory context), or NULL.
 */
char *
ApBatchTakeNextInner(const ApprovalsCaller *caller)
{
	char	   *id;
	char	   *result = NULL;
	bool		all_tenants = (caller == NULL || caller->sees_all);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	id = TakeNextAmong(all_tenants,
					   all_tenants ? ApCStringArrayDatum(NULL, 0)
					   : ApVisibleTenants(caller->roleid));
	if (id)
	{
		result = SPI_palloc(strlen(id) + 1);
		strcpy(result, id);
		CountTake();
	}
	SPI_finish();
	return result;
}

/*
 * Hand a batch this backend is processing back to the queue (no owner, still
 * processing): after a chunk that failed for good, so that the worker or a
 * run_queued resumes it (and counts an attempt toward quarantine) instead of
 * it staying owned for as long as this backend lives.
 */
void
ApBatchHandBack(const char *batch_id)
{
	static const ApStmt sql = {
		"UPDATE approvals.batches SET worker_pid = NULL, worker_started = NULL "
		"WHERE id = $1 AND status = 'processing' AND worker_pid = pg_catalog.pg_backend_pid()",
		1, {TEXTOID}
	};
	Datum		values[1] = {CStringGetTextDatum(batch_id)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ApExec(&sql, values, NULL, 0);
	SPI_finish();
}

/* How many batches could be taken now: queued, or processing by a backend that is gone. */
int
ApBatchCountTakeable(void)
{
	static const ApStmt sql = {
		"SELECT pg_catalog.count(*)::integer FROM approvals.batches "
		"WHERE status = 'queued' OR (status = 'processing' AND " AP_BATCH_ORPHANED ")",
		0, {InvalidOid}
	};
	bool		isnull;
	int			n;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ApExec(&sql, NULL, NULL, 1);
	n = DatumGetInt32(ApGetDatum(0, 1, &isnull));
	SPI_finish();
	return n;
}

/* ------------------------------------------------------------------------
 * Who serves the queue (with the preload)
 *
 * The launcher starts a scheduler per database that has the extension; a
 * scheduler runs that database's batch workers.  They share this table: a
 * transaction that queues a batch sets its database's scheduler latch when it
 * commits (a batch starts within milliseconds; approvals.naptime polling is
 * only the fallback), schedulers share the approvals.max_workers budget
 * through it, and DROP DATABASE asks a database's workers to leave through it.
 * ------------------------------------------------------------------------ */

#define AP_MAX_DATABASES	128

typedef struct QueueDb
{
	Oid			dboid;			/* InvalidOid: free entry */
	pid_t		scheduler_pid;	/* 0: no scheduler */
	Latch	   *scheduler_latch;
	bool		queue_changed;	/* a transaction that queued a batch committed */
	bool		absent;			/* its scheduler found no extension here */
	bool		stopping;		/* DROP/ALTER DATABASE waits for our workers to leave */
	int			running;		/* batch workers running for it */
	int			takeable;		/* batches its scheduler could give workers */
	uint64		takes;			/* batches taken by its batch workers */
} QueueDb;

typedef struct QueueShared
{
	slock_t		mutex;
	Latch	   *launcher_latch;
	bool		rescan;			/* databases or extensions came or went */
	QueueDb		dbs[AP_MAX_DATABASES];
} QueueShared;

static QueueShared *queue_shared = NULL;

/* Set by ApQueueWake / ApQueueRescanAtCommit; acted on when the transaction commits. */
static bool wake_at_commit = false;
static bool rescan_at_commit = false;
static bool poke_at_commit = false;

/* Reserve the shared memory (shmem_request_hook). */
void
ApQueueShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(QueueShared)));
}

/* Attach to (or create) the shared memory (shmem_startup_hook). */
void
ApQueueShmemInit(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	queue_shared = ShmemInitStruct("approvals queue", sizeof(QueueShared), &found);
	if (!found)
	{
		memset(queue_shared, 0, sizeof(QueueShared));
		SpinLockInit(&queue_shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Is the shared table there (the library was preloaded)? */
bool
ApQueueShared(void)
{
	return queue_shared != NULL;
}

/* The entry of a database, or NULL (caller holds the mutex). */
static QueueDb *
FindDb(Oid dboid)
{
	for (int i = 0; i < AP_MAX_DATABASES; i++)
		if (queue_shared->dbs[i].dboid == dboid)
			return &queue_shared->dbs[i];
	return NULL;
}

/* The entry of a database, created when missing; NULL when the table is full. */
static QueueDb *
FindOrAddDb(Oid dboid)
{
	QueueDb    *db = FindDb(dboid);

	if (db == NULL && (db = FindDb(InvalidOid)) != NULL)
	{
		memset(db, 0, sizeof(QueueDb));
		db->dboid = dboid;
	}
	return db;
}

/* At commit: wake this database's scheduler, and the launcher after a rescan request. */
static void
QueueXactCallback(XactEvent event, void *arg pg_attribute_unused())
{
	Latch	   *scheduler = NULL;
	Latch	   *launcher = NULL;

	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		wake_at_commit = rescan_at_commit = poke_at_commit = false;
		return;
	}
	if (event != XACT_EVENT_COMMIT || !(wake_at_commit || rescan_at_commit || poke_at_commit))
		return;
	if (queue_shared != NULL)
	{
		SpinLockAcquire(&queue_shared->mutex);
		if (wake_at_commit || poke_at_commit)
		{
			QueueDb    *db = FindDb(MyDatabaseId);

			if (db)
			{
				if (wake_at_commit)
					db->queue_changed = true;
				scheduler = db->scheduler_latch;
			}
		}
		if (rescan_at_commit)
		{
			queue_shared->rescan = true;
			launcher = queue_shared->launcher_latch;
		}
		SpinLockRelease(&queue_shared->mutex);
	}
	wake_at_commit = rescan_at_commit = poke_at_commit = false;
	if (scheduler)
		SetLatch(scheduler);
	if (launcher)
		SetLatch(launcher);
}

/* Called once from _PG_init. */
void
ApQueueInit(void)
{
	RegisterXactCallback(QueueXactCallback, NULL);
}

/* Ask for this database's scheduler to look at the queue once this transaction commits. */
void
ApQueueWake(void)
{
	wake_at_commit = true;
}

/* Wake this database's scheduler once this transaction commits (the outbox has rows). */
void
ApQueuePokeAtCommit(void)
{
	poke_at_commit = true;
}

/* Does a scheduler serve this database right now (so it can send our notifications)? */
bool
ApQueueSchedulerAttached(void)
{
	QueueDb    *db;
	bool		attached;

	if (queue_shared == NULL)
		return false;
	SpinLockAcquire(&queue_shared->mutex);
	db = FindDb(MyDatabaseId);
	attached = db != NULL && db->scheduler_pid != 0 && !db->stopping;
	SpinLockRelease(&queue_shared->mutex);
	return attached;
}

/* Ask the launcher to look for databases again once this transaction commits. */
void
ApQueueRescanAtCommit(void)
{
	rescan_at_commit = true;
}

/* The launcher publishes its latch (NULL when it exits). */
void
ApQueueSetLauncher(Latch *latch)
{
	SpinLockAcquire(&queue_shared->mutex);
	queue_shared->launcher_latch = latch;
	SpinLockRelease(&queue_shared->mutex);
}

/* Should the launcher look for databases again?  (Clears the request and every "absent".) */
bool
ApQueueTakeRescan(void)
{
	bool		rescan;

	SpinLockAcquire(&queue_shared->mutex);
	rescan = queue_shared->rescan;
	queue_shared->rescan = false;
	if (rescan)
		for (int i = 0; i < AP_MAX_DATABASES; i++)
			queue_shared->dbs[i].absent = false;
	SpinLockRelease(&queue_shared->mutex);
	return rescan;
}

/* May the launcher start a scheduler for this database now? */
bool
ApQueueMayServe(Oid dboid)
{
	QueueDb    *db;
	bool		may;

	SpinLockAcquire(&queue_shared->mutex);
	db = FindDb(dboid);
	may = db == NULL || (!db->absent && !db->stopping && db->scheduler_pid == 0);
	SpinLockRelease(&queue_shared->mutex);
	return may;
}

/*
 * A scheduler registers for its database (MyDatabaseId).  False when the
 * database is being dropped, another scheduler serves it, or the table is full.
 */
bool
ApQueueAttachScheduler(void)
{
	QueueDb    *db;
	bool		ok = false;

	SpinLockAcquire(&queue_shared->mutex);
	db = FindOrAddDb(MyDatabaseId);
	if (db && !db->stopping && db->scheduler_pid == 0)
	{
		db->scheduler_pid = MyProcPid;
		db->scheduler_latch = MyLatch;
		db->absent = false;
		db->running = 0;
		ok = true;
	}
	SpinLockRelease(&queue_shared->mutex);
	return ok;
}

/* A scheduler leaves (absent: it found no extension in its database). */
void
ApQueueDetachScheduler(bool absent)
{
	QueueDb    *db;
	Latch	   *launcher;

	SpinLockAcquire(&queue_shared->mutex);
	db = FindDb(MyDatabaseId);
	if (db && db->scheduler_pid == MyProcPid)
	{
		db->scheduler_pid = 0;
		db->scheduler_latch = NULL;
		db->absent = absent;
		db->running = 0;
		db->takeable = 0;
	}
	launcher = queue_shared->launcher_latch;
	SpinLockRelease(&queue_shared->mutex);
	if (launcher)
		SetLatch(launcher);
}

/* What this database's scheduler wakes up for: a queue change, and the takes so far. */
void
ApQueueSchedulerState(bool *queue_changed, uint64 *takes, bool *stopping)
{
	QueueDb    *db;

	SpinLockAcquire(&queue_shared->mutex);
	db = FindDb(MyDatabaseId);
	*queue_changed = db && db->queue_changed;
	*takes = db ? db->takes : 0;
	*stopping = db && db->stopping;
	if (db)
		db->queue_changed = false;
	SpinLockRelease(&queue_shared->mutex);
}

/*
 * May this database's scheduler start one more batch worker?  The budget
 * approvals.max_workers is shared fairly: a database with takeable batches
 * gets at most its share (the budget divided among the databases that have
 * work, rounded up) while others wait.  Publishes takeable; reserves the
 * worker when it says yes.
 */
bool
ApQueueReserveWorker(int takeable, int max_workers)
{
	QueueDb    *me;
	int			total = 0;
	int			busy = 0;
	bool		ok = false;

	SpinLockAcquire(&queue_shared->mutex);
	me = FindDb(MyDatabaseId);
	if (me)
	{
		me->takeable = takeable;
		for (int i = 0; i < AP_MAX_DATABASES; i++)
		{
			QueueDb    *db = &queue_shared->dbs[i];

			if (db->dboid == InvalidOid)
				continue;
			total += db->running;
			if (db->takeable > 0 || db->running > 0)
				busy++;
		}
		if (!me->stopping && me->takeable > me->running && total < max_workers &&
			me->running < (max_workers + Max(busy, 1) - 1) / Max(busy, 1))
		{
			me->running++;
			ok = true;
		}
	}
	SpinLockRelease(&queue_shared->mutex);
	return ok;
}

/* A batch worker of this database stopped (or could not start). */
void
ApQueueReleaseWorker(void)
{
	QueueDb    *db;

	SpinLockAcquire(&queue_shared->mutex);
	db = FindDb(MyDatabaseId);
	if (db && db->running > 0)
		db->running--;
	SpinLockRelease(&queue_shared->mutex);
}

/* Count a batch taken in this database: its scheduler stops backing off. */
static void
CountTake(void)
{
	QueueDb    *db;

	if (queue_shared == NULL)
		return;
	SpinLockAcquire(&queue_shared->mutex);
	db = FindDb(MyDatabaseId);
	if (db)
		db->takes++;
	SpinLockRelease(&queue_shared->mutex);
}

/*
 * Ask a database's scheduler and batch workers to leave (DROP DATABASE,
 * ALTER DATABASE ... RENAME / SET TABLESPACE, CREATE DATABASE ... TEMPLATE
 * need it to have no other sessions), and wait up to timeout_ms for them.
 * Nothing is started there until ApQueueResumeDatabase.
 */
void
ApQueueStopDatabase(Oid dboid, int timeout_ms)
{
	QueueDb    *db;
	Latch	   *latch = NULL;

	if (queue_shared == NULL || !OidIsValid(dboid))
		return;
	SpinLockAcquire(&queue_shared->mutex);
	db = FindOrAddDb(dboid);
	if (db)
	{
		db->stopping = true;
		latch = db->scheduler_latch;
	}
	SpinLockRelease(&queue_shared->mutex);
	if (db == NULL)
		return;
	if (latch)
		SetLatch(latch);
	for (int waited = 0; waited < timeout_ms; waited += 50)
	{
		bool		gone;

		SpinLockAcquire(&queue_shared->mutex);
		gone = db->scheduler_pid == 0;
		SpinLockRelease(&queue_shared->mutex);
		if (gone)
			break;
		ApSleep(50);
	}
}

/* Let the launcher serve a database again (after ApQueueStopDatabase), and rescan. */
void
ApQueueResumeDatabase(Oid dboid)
{
	QueueDb    *db;
	Latch	   *launcher;

	if (queue_shared == NULL)
		return;
	SpinLockAcquire(&queue_shared->mutex);
	db = FindDb(dboid);
	if (db)
	{
		db->stopping = false;
		if (db->scheduler_pid == 0)
			db->dboid = InvalidOid;	/* forget it: it may be gone for good */
	}
	queue_shared->rescan = true;
	launcher = queue_shared->launcher_latch;
	SpinLockRelease(&queue_shared->mutex);
	if (launcher)
		SetLatch(launcher);
}

/*
 * Does a background worker serve this database?  (The library preloaded,
 * approvals.worker_enabled on, and approvals.database empty or this one.)
 */
bool
ApQueueServesThisDatabase(void)
{
	char	   *name;

	if (!ApQueueShared() || !ap_worker_enabled)
		return false;
	if (ap_database == NULL || ap_database[0] == '\0')
		return true;
	name = get_database_name(MyDatabaseId);
	return name != NULL && strcmp(name, ap_database) == 0;
}
