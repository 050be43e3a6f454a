/*
 * handler.c
 *		Handlers: set_handler, invoking a handler with a state change (as its
 *		owner, with the search_path recorded at set_handler), and the one
 *		mechanism that applies a group of items whose handlers may raise.
 *
 *		A group of items is applied by one set-based statement.  When the group has
 *		handlers it runs in one subtransaction; when that raises, the failing items
 *		are found by bisection with probe subtransactions that are always rolled
 *		back (an aborted subtransaction leaves nothing in the backend's 64-entry
 *		cache of subtransaction ids), then every unbroken run of good items is
 *		applied again in one subtransaction.  So a group leaves at most one
 *		committed subtransaction per failing item plus one, never one per claim.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_set_handler);

/* ------------------------------------------------------------------------
 * set_handler
 * ------------------------------------------------------------------------ */

/* The row type of approvals.<relname>. */
static Oid
ApprovalsRowType(const char *relname)
{
	Oid			nsp = get_namespace_oid("approvals", false);
	Oid			typid = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
										CStringGetDatum(relname), ObjectIdGetDatum(nsp));

	if (!OidIsValid(typid))
		elog(ERROR, "type approvals.%s does not exist", relname);
	return typid;
}

/* Does the search_path setting name pg_temp as one of its elements? */
static bool
SearchPathNamesTemp(const char *setting)
{
	char	   *copy = pstrdup(setting);
	List	   *names;
	ListCell   *lc;
	bool		found = false;

	if (!SplitIdentifierString(copy, ',', &names))
		return false;			/* unparsable: append pg_temp to be safe */
	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), "pg_temp") == 0)
			found = true;
	return found;
}

/* approvals.set_handler(resource_type, handler): set or (NULL) remove a handler. */
Datum
approvals_set_handler(PG_FUNCTION_ARGS)
{
	static const ApStmt upsert_sql = {
		"INSERT INTO approvals.handlers (resource_type, handler, search_path) "
		"VALUES ($1, $2, $3) "
		"ON CONFLICT (resource_type) DO UPDATE SET handler = EXCLUDED.handler, "
		"search_path = EXCLUDED.search_path, created_at = now()",
		3, {TEXTOID, REGPROCEDUREOID, TEXTOID}
	};
	static const ApStmt delete_sql = {
		"DELETE FROM approvals.handlers WHERE resource_type = $1",
		1, {TEXTOID}
	};
	Datum		values[3];
	char	   *resource_type;
	ApprovalsCall call;
	StringInfoData path;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_ADMIN, "set handlers");
	resource_type = ApRequiredCString(fcinfo, 0, "resource_type");
	ApCheckNotEmpty("resource_type", resource_type);
	ApCheckLength("resource_type", resource_type, AP_MAX_RESOURCE_TYPE);
	values[0] = CStringGetTextDatum(resource_type);

	if (!PG_ARGISNULL(1))
	{
		Oid			handler = PG_GETARG_OID(1);
		Oid		   *argtypes;
		int			nargs;
		Oid			rettype;

		/* locked first, so that a concurrent DROP FUNCTION cannot slip in between */
		LockDatabaseObject(ProcedureRelationId, handler, 0, AccessShareLock);
		if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(handler)))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FUNCTION),
					 errmsg("function with OID %u does not exist", handler),
					 errhint("Pass the handler as 'schema.f(approvals.claims, approvals.events)'::regprocedure.")));
		rettype = get_func_signature(handler, &argtypes, &nargs);

		if (nargs != 2 || argtypes[0] != ApprovalsRowType("claims") ||
			argtypes[1] != ApprovalsRowType("events") || rettype != VOIDOID ||
			get_func_retset(handler) || get_func_prokind(handler) != PROKIND_FUNCTION)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("handler %s has the wrong signature", format_procedure(handler)),
					 errhint("A handler is declared f(claim approvals.claims, event approvals.events) RETURNS void.")));
#if PG_VERSION_NUM >= 160000
		if (!object_ownercheck(ProcedureRelationId, handler, call.caller.roleid))
#else
		if (!pg_proc_ownercheck(handler, call.caller.roleid))
#endif
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("must be the owner of function %s to use it as a handler",
							format_procedure(handler)),
					 errdetail("Handlers run with the privileges of their owner.")));
		values[1] = ObjectIdGetDatum(handler);
	}

	/*
	 * The handler will run with the search_path its registrant has now, with
	 * pg_temp searched last so that no caller's temporary objects can stand
	 * in for the handler's tables.
	 */
	initStringInfo(&path);
	appendStringInfoString(&path, namespace_search_path ? namespace_search_path : "");
	if (!SearchPathNamesTemp(path.data))
		appendStringInfoString(&path, path.len > 0 ? ", pg_temp" : "pg_temp");
	values[2] = CStringGetTextDatum(path.data);

	ApBegin(&call);
	if (PG_ARGISNULL(1))
		ApExec(&delete_sql, values, NULL, 0);
	else
		ApExec(&upsert_sql, values, NULL, 0);
	ApEnd(&call);
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------------
 * Invoking handlers
 * ------------------------------------------------------------------------ */

/*
 * Run the handler registered for resource_type (if any) with the claim row
 * and the event row (see ApInvokeHandler); whether there was one.
 */
bool
ApRunHandler(const char *resource_type, const char *claim_id, int64 event_id)
{
	static const ApStmt handler_sql = {
		"SELECT handler::oid, search_path FROM approvals.handlers WHERE resource_type = $1",
		1, {TEXTOID}
	};
	enum
	{
		H_HANDLER = 1, H_SEARCH_PATH
	};
	Datum		values[1] = {CStringGetTextDatum(resource_type)};
	bool		isnull;
	Oid			handler;
	char	   *path;

	if (ApExec(&handler_sql, values, NULL, 1) == 0)
		return false;
	handler = DatumGetObjectId(ApGetDatum(0, H_HANDLER, &isnull));
	path = ApGetCString(0, H_SEARCH_PATH);
	SPI_freetuptable(SPI_tuptable);
	ApInvokeHandler(handler, path, claim_id, event_id);
	return true;
}

/*
 * Call handler with the claim row and the event row, as the handler's owner,
 * with the search_path recorded by set_handler (never the caller's: that
 * would let a caller steer the owner's code to objects of its choosing) and
 * the caller's planner settings.  An error propagates: the state change does
 * not happen.
 */
void
ApInvokeHandler(Oid handler, const char *path, const char *claim_id, int64 event_id)
{
	static const ApStmt claim_sql = {
		"SELECT c FROM approvals.claims c WHERE id = $1",
		1, {TEXTOID}
	};
	static const ApStmt event_sql = {
		"SELECT e FROM approvals.events e WHERE id = $1",
		1, {INT8OID}
	};
	Datum		values[1] = {CStringGetTextDatum(claim_id)};
	Datum		event_values[1] = {Int64GetDatum(event_id)};
	bool		isnull;
	Datum		claim_row;
	Datum		event_row;
	SPITupleTable *claim_table;
	SPITupleTable *event_table;
	HeapTuple	proctup;
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	int			nest;
	FmgrInfo	flinfo;

	LOCAL_FCINFO(hcinfo, 2);

	if (ApExec(&claim_sql, values, NULL, 1) != 1)
		ApReportNoClaim(claim_id);
	claim_table = SPI_tuptable;
	claim_row = ApGetDatum(0, 1, &isnull);
	if (ApExec(&event_sql, event_values, NULL, 1) != 1)
		elog(ERROR, "event " INT64_FORMAT " not found", event_id);
	event_table = SPI_tuptable;
	event_row = ApGetDatum(0, 1, &isnull);

	proctup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
	if (!HeapTupleIsValid(proctup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("handler function %u of claim \"%s\" does not exist",
						handler, claim_id)));
	owner = ((Form_pg_proc) GETSTRUCT(proctup))->proowner;
	ReleaseSysCache(proctup);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	nest = NewGUCNestLevel();
	(void) set_config_option("search_path", path,
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("enable_seqscan", ApUserEnableSeqscan() ? "on" : "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	(void) set_config_option("jit", ApUserJit() ? "on" : "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	fmgr_info(handler, &flinfo);
	InitFunctionCallInfoData(*hcinfo, &flinfo, 2, InvalidOid, NULL, NULL);
	hcinfo->args[0].value = claim_row;
	hcinfo->args[0].isnull = false;
	hcinfo->args[1].value = event_row;
	hcinfo->args[1].isnull = false;
	(void) FunctionCallInvoke(hcinfo);

	AtEOXact_GUC(true, nest);
	SetUserIdAndSecContext(save_userid, save_sec_context);
	SPI_freetuptable(claim_table);
	SPI_freetuptable(event_table);
}

/*
 * Run one set-based statement over a group of claims (parameter $1: their
 * ids as text[], or their row locations as tid[]) that changes them and
 * appends their events; then run the handlers of the claims it changed (no
 * second look-up per claim).  The statement returns rows of the ApplyRow
 * columns of two kinds, matched here by claim id:
 *		a claim row per claim it changed (or per one with a handler):
 *			claim id, NULL, its handler or NULL, the handler's search_path
 *		an event row per event it appended (none when there are no handlers):
 *			claim id, event id, NULL, NULL
 * (a join of the two in SQL would be planned from estimates of CTE scans,
 * which can make it a loop over the group per row).  on_claim, when given,
 * sees each claim row first (row r of SPI_tuptable), with any columns the
 * statement adds after those of ApplyRow.
 */
enum ApplyRow
{
	APPLY_CLAIM_ID = 1, APPLY_EVENT_ID, APPLY_HANDLER, APPLY_SEARCH_PATH
};

/* A claim of the statement's result: the handler to run for it, and its event. */
typedef struct HandlerCall
{
	const char *claim_id;		/* hash key */
	Oid			handler;
	char	   *path;
	int64		event_id;
} HandlerCall;

void
ApApplyStatement(const ApStmt *stmt, const Datum *values, const bool *nulls,
				 ApApplyRowFn on_claim, void *state)
{
	int			rows;
	int			n = 0;
	HTAB	   *calls;
	HandlerCall **order;

	rows = ApExec(stmt, values, nulls, 0);
	if (rows == 0)
		return;
	calls = ApStringHashCreate("approvals handler calls", rows, sizeof(HandlerCall),
							   CurrentMemoryContext);
	order = palloc(sizeof(HandlerCall *) * rows);
	for (int r = 0; r < rows; r++)
	{
		char	   *id = ApGetCString(r, APPLY_CLAIM_ID);
		bool		found;
		bool		isnull;
		HandlerCall *call = ApStringHashSearch(calls, id, HASH_ENTER, &found);
		Datum		event_id = ApGetDatum(r, APPLY_EVENT_ID, &isnull);

		if (!found)
		{
			call->handler = InvalidOid;
			call->path = NULL;
			call->event_id = 0;
			order[n++] = call;
		}
		if (!isnull)
		{
			call->event_id = DatumGetInt64(event_id);
			continue;
		}
		if (on_claim)
			on_claim(state, r);
		call->handler = DatumGetObjectId(ApGetDatum(r, APPLY_HANDLER, &isnull));
		if (isnull)
			call->handler = InvalidOid;
		else
			call->path = ApGetCString(r, APPLY_SEARCH_PATH);
	}
	SPI_freetuptable(SPI_tuptable);
	for (int i = 0; i < n; i++)
		if (OidIsValid(order[i]->handler))
			ApInvokeHandler(order[i]->handler, order[i]->path, order[i]->claim_id,
							order[i]->event_id);
	hash_destroy(calls);
}

/* ------------------------------------------------------------------------
 * Groups of items whose handlers may raise
 * ------------------------------------------------------------------------ */

/* A range of items to try as one unit. */
typedef struct GroupTry
{
	ApGroupApplyFn apply;
	void	   *state;
	int			lo;
	int			hi;
} GroupTry;

static void
GroupTryWork(void *arg)
{
	GroupTry   *g = (GroupTry *) arg;

	g->apply(g->state, g->lo, g->hi);
}

/* Apply items [lo, hi) in a subtransaction (kept when keep), retrying transient errors. */
static ErrorData *
TryGroup(ApGroupApplyFn apply, void *state, int lo, int hi, bool keep, bool auto_retry)
{
	GroupTry	g = {apply, state, lo, hi};

	for (int attempt = 0;; attempt++)
	{
		ErrorData  *edata = ApTryInSubxact(GroupTryWork, &g, keep, false,
										   CurrentMemoryContext);

		if (edata == NULL || !auto_retry || !ApRetryTransient(edata->sqlerrcode, attempt))
			return edata;
		FreeErrorData(edata);
		ApRetrySleep(attempt);
	}
}

/* Find the failing items of [lo, hi) with rolled-back probes; note why each failed. */
static void
ProbeBisect(ApGroupApplyFn apply, void *state, int lo, int hi, int base,
			char **why, bool auto_retry)
{
	ErrorData  *edata;

	if (lo >= hi)
		return;
	edata = TryGroup(apply, state, lo, hi, false, auto_retry);
	if (edata == NULL)
		return;
	if (hi - lo == 1)
		why[lo - base] = pstrdup(edata->message);
	FreeErrorData(edata);
	if (hi - lo == 1)
		return;
	ProbeBisect(apply, state, lo, lo + (hi - lo) / 2, base, why, auto_retry);
	ProbeBisect(apply, state, lo + (hi - lo) / 2, hi, base, why, auto_retry);
}

/*
 * Apply items [lo, hi): straight through when no item has a handler (nothing
 * there can raise but a bug), else guarded as described above; items that
 * fail are reported through fail.
 */
void
ApApplyGroups(ApGroupApplyFn apply, ApGroupFailFn fail, void *state, int lo, int hi,
			  bool guarded, bool auto_retry)
{
	ErrorData  *edata;
	char	  **why;

	if (lo >= hi)
		return;
	if (!guarded)
	{
		apply(state, lo, hi);
		return;
	}
	edata = TryGroup(apply, state, lo, hi, true, auto_retry);
	if (edata == NULL)
		return;
	FreeErrorData(edata);

	why = palloc0(sizeof(char *) * (hi - lo));
	ProbeBisect(apply, state, lo, hi, lo, why, auto_retry);
	for (int i = lo; i < hi;)
	{
		int			run_end = i;

		if (why[i - lo] != NULL)
		{
			i++;
			continue;
		}
		while (run_end < hi && why[run_end - lo] == NULL)
			run_end++;
		/* a good run that fails now (a handler that is not deterministic) fails whole */
		edata = TryGroup(apply, state, i, run_end, true, auto_retry);
		for (int k = i; edata != NULL && k < run_end; k++)
			why[k - lo] = pstrdup(edata->message);
		if (edata)
			FreeErrorData(edata);
		i = run_end;
	}
	for (int i = lo; i < hi; i++)
		if (why[i - lo] != NULL)
			fail(state, i, why[i - lo]);
}
