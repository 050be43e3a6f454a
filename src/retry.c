/*
 * retry.c
 *		Trying work again: the one retry policy of the extension, and the one
 *		way to try work in a subtransaction.
 *
 *		An error is transient when trying again can succeed: a deadlock, a
 *		serialization failure, a lock that was not available.  Whatever retries (a
 *		group of items, the lock pass of a chunk, a whole chunk) tries again at
 *		most AP_RETRIES times, sleeping AP_RETRY_FIRST_MS, then twice as long each
 *		time.
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/wait_event.h"

#include "approvals.h"

/* May work that failed with sqlerrcode on attempt (0-based) be tried again? */
bool
ApRetryTransient(int sqlerrcode, int attempt)
{
	if (attempt >= AP_RETRIES)
		return false;
	return sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/* Sleep before attempt + 1: AP_RETRY_FIRST_MS, doubling, interruptibly. */
void
ApRetrySleep(int attempt)
{
	ApSleep((long) AP_RETRY_FIRST_MS << Min(attempt, 16));
}

/* Sleep ms milliseconds, interruptibly. */
void
ApSleep(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Run work(arg) in a subtransaction, kept when keep and it succeeds, else
 * rolled back.  On error return a copy of it, made in errcxt (which must
 * outlive whatever the caller cleans up next); a cancel or shutdown goes on
 * unless catch_cancel.
 */
ErrorData *
ApTryInSubxact(void (*work) (void *arg), void *arg, bool keep, bool catch_cancel,
			   MemoryContext errcxt)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	int			depth = ApSafeDepth();
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		work(arg);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(errcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ApSafeDepthRestore(depth);
		if (!catch_cancel &&
			(edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			 edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN))
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}
