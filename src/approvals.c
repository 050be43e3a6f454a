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

/* Wire the modules and reserve the approvals.* settings namespace. */
void
_PG_init(void)
{
	ApUtilInit();
	MarkGUCPrefixReserved("approvals");
}
