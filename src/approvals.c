/*
 * approvals.c
 *		Module entry point: settings and wiring only.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "approvals.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

int			ap_max_batch_claims = 1000000;
int			ap_chunk_size = 1000;
bool		ap_notify = true;

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
	ApUtilInit();
	ApWorkerInit();
	MarkGUCPrefixReserved("approvals");
}
