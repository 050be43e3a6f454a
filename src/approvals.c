/*
 * approvals.c
 *		Module entry point: every setting, and the wiring of the modules.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/guc.h"

#include "batch.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

int			ap_max_batch_claims = 1000000;
int			ap_chunk_size = 1000;
bool		ap_notify = true;
char	   *ap_database = NULL;
int			ap_max_workers = 2;
int			ap_naptime = 10;
bool		ap_worker_enabled = true;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Reserve the shared memory of the queue (with the preload). */
static void
ApShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	ApQueueShmemRequest();
}

/* Attach to the shared memory of the queue. */
static void
ApShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	ApQueueShmemInit();
}

/* Define the settings and wire the modules. */
void
_PG_init(void)
{
	DefineCustomIntVariable("approvals.max_batch_claims",
							"Largest number of claims one batch may hold.",
							"create_batch and update_batch refuse more (SQLSTATE 22023).",
							&ap_max_batch_claims,
							1000000, 1, 100000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("approvals.chunk_size",
							"Claims processed per chunk (one transaction per chunk in run_queued and the worker).",
							NULL,
							&ap_chunk_size,
							1000, 1, 100000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("approvals.notify",
							 "Whether decisions and finished batches send NOTIFY approvals.",
							 NULL,
							 &ap_notify, true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
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
	ApCallInit();
	ApQueueInit();
	ApNotifyInit();

	if (process_shared_preload_libraries_in_progress)
	{
		DefineCustomStringVariable("approvals.database",
								   "Restricts the background worker to this one database.",
								   "Empty (the default): every database that has the extension.",
								   &ap_database, "",
								   PGC_POSTMASTER, 0, NULL, NULL, NULL);
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = ApShmemRequest;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = ApShmemStartup;
		ApWorkerInstallHooks();
		if (!IsBinaryUpgrade)
			ApWorkerRegister();
	}
	MarkGUCPrefixReserved("approvals");
}
