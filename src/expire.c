/*
 * expire.c
 *		expire_due: expire (or escalate, per policy) pending claims past
 *		expires_at, a chunk of EXPIRE_CHUNK claims at a time, each claim through the claim state machine
 *		and its handler; a claim whose handler refuses stays pending and is
 *		skipped for the rest of the call.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_expire_due);

/*
 * Expire or escalate one locked, due claim.  Escalating passes a route on to
 * its next approver (with a new deadline) or opens it to any reviewer; on a
 * claim with steps it escalates the current step.
 */
static void
ExpireOne(const char *claim_id)
{
	ClaimState	st;

	if (!ApClaimLoad(claim_id, &st) || strcmp(st.status, "pending") != 0)
		return;
	if (strcmp(st.on_expiry, "escalate") == 0)
	{
		const ApStep *step = ApStepCurrent(&st);
		bool		next = false;
		char	   *comment;

		if (step != NULL)
		{
			comment = psprintf("expired; step %d (\"%s\") escalated: any reviewer may give its missing approvals",
							   st.current_step, step->name);
			st.step_escalated = true;
		}
		else
		{
			next = ApClaimAdvanceRoute(&st) == false && st.route_position > 0;
			comment = next ? "expired; passed to the next approver"
				: "expired; any reviewer may decide";
		}
		/* an expires_in stored before it was checked cannot overflow here */
		if (next && !st.expires_in_null && ApExpiresInProblem(st.expires_in) == NULL)
			st.expires_at = DirectFunctionCall2(timestamptz_pl_interval,
												TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
												st.expires_in);
		else
			st.expires_at_null = true;
		ApClaimCommit(&st, "system", "escalated", "pending", comment);
	}
	else
	{
		st.status = "expired";
		st.route_position = 0;
		ApClaimCommit(&st, "system", "expired", "pending", NULL);
	}
}

/* Claims per chunk of expire_due */
#define EXPIRE_CHUNK		1000

/* What expire_due carries between chunks. */
typedef struct ExpireState
{
	char	  **ids;			/* this chunk's claim ids (NULL once failed) */
	char	  **failed;			/* every claim whose handler refused, so far */
	int			n_failed;
	int			max_failed;
	MemoryContext keep;			/* where failed lives */
} ExpireState;

/*
 * Expire a group of claims (ApApplyGroups callback), each in its own SPI
 * connection so that memory stays flat however many claims are due.
 */
static void
ExpireGroup(void *state, int lo, int hi)
{
	ExpireState *es = (ExpireState *) state;

	for (int i = lo; i < hi; i++)
	{
		CHECK_FOR_INTERRUPTS();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		ExpireOne(es->ids[i]);
		SPI_finish();
	}
}

/* A claim whose handler refused its expiry stays pending; say so, skip it. */
static void
ExpireFailed(void *state, int idx, const char *message)
{
	ExpireState *es = (ExpireState *) state;

	ereport(WARNING,
			(errmsg("claim \"%s\" was not expired: %s", es->ids[idx], message)));
	if (es->n_failed == es->max_failed)
	{
		es->max_failed *= 2;
		es->failed = repalloc(es->failed, sizeof(char *) * es->max_failed);
	}
	es->failed[es->n_failed++] = MemoryContextStrdup(es->keep, es->ids[idx]);
	es->ids[idx] = NULL;
}

/* approvals.expire_due(): expire or escalate pending claims past expires_at. */
Datum
approvals_expire_due(PG_FUNCTION_ARGS)
{
	static const ApStmt due_sql = {
		"SELECT c.id, EXISTS (SELECT 1 FROM approvals.handlers h "
		"                     WHERE h.resource_type = c.resource_type) "
		"FROM approvals.claims c "
		"WHERE c.status = 'pending' AND c.expires_at <= now() AND NOT (c.id = ANY ($1)) "
		"ORDER BY c.expires_at, c.id LIMIT $2 FOR UPDATE OF c SKIP LOCKED",
		2, {TEXTARRAYOID, INT4OID}
	};
	enum
	{
		DUE_ID = 1, DUE_HAS_HANDLER
	};
	Datum		values[2];
	ApprovalsCall call;
	ExpireState es;
	MemoryContext chunk_cxt;
	MemoryContext oldcxt;
	int			done = 0;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_ADMIN, "expire claims");

	ApBegin(&call);
	memset(&es, 0, sizeof(es));
	es.keep = CurrentMemoryContext;
	es.max_failed = 16;
	es.failed = palloc(sizeof(char *) * es.max_failed);
	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "approvals expire chunk",
									 ALLOCSET_DEFAULT_SIZES);
	values[1] = Int32GetDatum(EXPIRE_CHUNK);
	for (;;)
	{
		int			n;
		bool		guarded = false;

		MemoryContextReset(chunk_cxt);
		oldcxt = MemoryContextSwitchTo(chunk_cxt);
		values[0] = ApCStringArrayDatum(es.failed, es.n_failed);
		n = ApExec(&due_sql, values, NULL, 0);
		es.ids = palloc(sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
		{
			bool		isnull;

			es.ids[i] = ApGetCString(i, DUE_ID);
			if (DatumGetBool(ApGetDatum(i, DUE_HAS_HANDLER, &isnull)))
				guarded = true;
		}
		SPI_freetuptable(SPI_tuptable);
		if (n > 0)
			ApApplyGroups(ExpireGroup, ExpireFailed, &es, 0, n, guarded, true);
		for (int i = 0; i < n; i++)
			if (es.ids[i] != NULL)
				done++;
		MemoryContextSwitchTo(oldcxt);
		if (n < EXPIRE_CHUNK)
			break;
	}
	MemoryContextDelete(chunk_cxt);
	ApEnd(&call);
	PG_RETURN_INT32(done);
}
