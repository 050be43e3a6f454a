/*
 * spi.c
 *		Our statements: each prepared once per backend (a saved plan keyed by its
 *		text) and executed with its parameters; results read back by column, or
 *		streamed into a tuplestore a page at a time.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "approvals.h"

typedef struct PlanEntry
{
	const char *sql;			/* hash key: the statement's text (a copy) */
	SPIPlanPtr	plan;
	int			nargs;
	Oid			argtypes[AP_STMT_MAX_ARGS];
} PlanEntry;

static HTAB *plan_cache = NULL;

/*
 * The saved plan of a parameterised statement, prepared once per backend and
 * keyed by the statement's text, so two call sites sharing a text share a
 * plan and no two texts can ever share one.
 */
static SPIPlanPtr
ApPlan(const ApStmt *stmt)
{
	const char *sql = stmt->sql;
	int			nargs = stmt->nargs;
	const Oid  *argtypes = stmt->argtypes;
	PlanEntry  *entry;
	bool		found;

	if (nargs < 0 || nargs > AP_STMT_MAX_ARGS)
		elog(ERROR, "statement with %d parameters", nargs);
	if (plan_cache == NULL)
		plan_cache = ApStringHashCreate("approvals plans", 64, sizeof(PlanEntry),
										TopMemoryContext);

	entry = ApStringHashSearch(plan_cache, sql, HASH_FIND, NULL);
	if (entry != NULL)
	{
		if (entry->nargs != nargs ||
			(nargs > 0 && memcmp(entry->argtypes, argtypes, sizeof(Oid) * nargs) != 0))
			elog(ERROR, "statement prepared with other parameter types: \"%s\"", sql);
		return entry->plan;
	}

	{
		/*
		 * Key lookups get one generic plan (planning them again for every
		 * call is pure cost).  A statement that takes a set of keys as an
		 * array (= ANY, unnest) is planned for every call, always: only then
		 * does the planner see how many keys there are.  A generic plan
		 * guesses 10, and under statistics of a table thought empty a scan
		 * of a whole partial index filtered by the array wins: left to
		 * itself, the plan cache switches to that plan after five calls (a
		 * chunk of a million-claim batch once took 10 s instead of 20 ms).
		 * A statement whose array only filters rows found by key, or can
		 * only be looked up in the primary key, says so (AP_GENERIC_PLAN):
		 * a custom plan of a million keys estimates each one.
		 */
		bool		set_based = strncmp(sql, AP_GENERIC_PLAN, strlen(AP_GENERIC_PLAN)) != 0 &&
			(strstr(sql, "ANY (") != NULL || strstr(sql, "unnest(") != NULL);
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes,
											  set_based ? CURSOR_OPT_CUSTOM_PLAN
											  : CURSOR_OPT_GENERIC_PLAN);
		char	   *key;

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
				 SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		/* only a fully prepared plan enters the cache (an error above adds nothing) */
		key = MemoryContextStrdup(TopMemoryContext, sql);
		entry = ApStringHashSearch(plan_cache, key, HASH_ENTER, &found);
		Assert(!found);
		entry->sql = key;
		entry->plan = plan;
		entry->nargs = nargs;
		if (nargs > 0)
			memcpy(entry->argtypes, argtypes, sizeof(Oid) * nargs);
		return plan;
	}
}

/* SPI's nulls string of a statement's arguments. */
static void
ApNullsString(int nargs, const bool *isnull, char *nulls)
{
	for (int i = 0; i < nargs; i++)
		nulls[i] = (isnull && isnull[i]) ? 'n' : ' ';
	nulls[nargs] = '\0';
}

/*
 * Execute a parameterised statement through its saved plan (ApPlan).
 * Returns the number of rows processed; results are in SPI_tuptable.
 */
int
ApExec(const ApStmt *stmt, const Datum *values, const bool *isnull, long tcount)
{
	SPIPlanPtr	plan = ApPlan(stmt);
	char		nulls[AP_STMT_MAX_ARGS + 1];
	int			rc;
	MemoryContext caller_cxt;

	ApNullsString(stmt->nargs, isnull, nulls);
	caller_cxt = CurrentMemoryContext;
	rc = SPI_execute_plan(plan, (Datum *) values, nulls, false, tcount);
	MemoryContextSwitchTo(caller_cxt);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed (%s) for \"%s\"",
			 SPI_result_code_string(rc), stmt->sql);
	return (int) SPI_processed;
}

/*
 * Open a cursor on a statement (its saved plan), to read its rows a page at
 * a time with SPI_cursor_fetch.  Opened with a fresh snapshot.
 */
Portal
ApCursorOpen(const ApStmt *stmt, const Datum *values, const bool *isnull)
{
	SPIPlanPtr	plan = ApPlan(stmt);
	char		nulls[AP_STMT_MAX_ARGS + 1];
	MemoryContext caller_cxt = CurrentMemoryContext;
	Portal		portal;

	ApNullsString(stmt->nargs, isnull, nulls);
	portal = SPI_cursor_open(NULL, plan, (Datum *) values, nulls, false);
	MemoryContextSwitchTo(caller_cxt);
	return portal;
}

/*
 * Stream the rows of a read-only statement into a tuplestore, a page at a
 * time through a cursor, so that a result of a million rows is never held
 * twice (once by SPI, once by the tuplestore).  Columns are copied in order;
 * the statement's columns must match desc.
 */
void
ApExecIntoTuplestore(const ApStmt *stmt, const Datum *values, const bool *isnull,
					 Tuplestorestate *store, TupleDesc desc)
{
	Portal		portal;
	MemoryContext caller_cxt = CurrentMemoryContext;
	Datum	   *cols = palloc(sizeof(Datum) * desc->natts);
	bool	   *colnulls = palloc(sizeof(bool) * desc->natts);

	portal = ApCursorOpen(stmt, values, isnull);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, 1000);
		MemoryContextSwitchTo(caller_cxt);
		if (SPI_processed == 0)
			break;
		if (SPI_tuptable->tupdesc->natts != desc->natts)
			elog(ERROR, "statement returns %d columns, expected %d",
				 SPI_tuptable->tupdesc->natts, desc->natts);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			for (int c = 0; c < desc->natts; c++)
				cols[c] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
										c + 1, &colnulls[c]);
			tuplestore_putvalues(store, desc, cols, colnulls);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_freetuptable(SPI_tuptable);
	SPI_cursor_close(portal);
	pfree(cols);
	pfree(colnulls);
}

/* Column col (1-based) of result row row. */
Datum
ApGetDatum(int row, int col, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);
}

/* Column col of result row row as a C string (NULL when SQL NULL). */
char *
ApGetCString(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

/*
 * Put the first n rows of the last result, whole rows of a table's row type
 * in column 1, into a materialized SRF's result (the rows as stored, dropped
 * columns included, as the function's declared result is).
 */
void
ApPutWholeRows(ReturnSetInfo *rsinfo, int n)
{
	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		HeapTupleHeader row = DatumGetHeapTupleHeader(ApGetDatum(i, 1, &isnull));
		HeapTupleData tuple;

		tuple.t_len = HeapTupleHeaderGetDatumLength(row);
		ItemPointerSetInvalid(&tuple.t_self);
		tuple.t_tableOid = InvalidOid;
		tuple.t_data = row;
		tuplestore_puttuple(rsinfo->setResult, &tuple);
	}
}
