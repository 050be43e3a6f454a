/*
 * worker.c
 *		The background worker (launcher and batch workers).
 */
#include "postgres.h"

#include "approvals.h"

/* Register the launcher when preloaded (not yet: see issue 4). */
void
ApWorkerInit(void)
{
}

/* Wake the launcher when the current transaction commits (not yet). */
void
ApWakeWorker(void)
{
}
