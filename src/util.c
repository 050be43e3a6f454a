/*
 * util.c
 *		Argument checks, the actor and role rules, tenant checks, privilege
 *		switching, cached SPI plans, ids and notifications.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "storage/lmgr.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "common/hashfn.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/guc.h"
#include "optimizer/cost.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/wait_event.h"
#include "utils/resowner.h"
#include "utils/syscache.h"

#include "approvals.h"

static const char *const role_names[] = {
	[AP_ROLE_READER] = "approvals_reader",
	[AP_ROLE_REQUESTER] = "approvals_requester",
	[AP_ROLE_REVIEWER] = "approvals_reviewer",
	[AP_ROLE_COORDINATOR] = "approvals_coordinator",
	[AP_ROLE_ADMIN] = "approvals_admin",
	[AP_ROLE_PLATFORM] = "approvals_platform",
};

/* ------------------------------------------------------------------------
 * Arguments
 * ------------------------------------------------------------------------ */

/* The text argument argno, or NULL when SQL NULL. */
text *
ApArgText(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return PG_GETARG_TEXT_PP(argno);
}

/* The text argument argno as a C string, or NULL when SQL NULL. */
char *
ApArgCString(FunctionCallInfo fcinfo, int argno)
{
	text	   *t = ApArgText(fcinfo, argno);

	return t ? text_to_cstring(t) : NULL;
}

/* A required text argument: 22004 when NULL. */
char *
ApRequiredCString(FunctionCallInfo fcinfo, int argno, const char *name)
{
	char	   *s = ApArgCString(fcinfo, argno);

	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
	return s;
}

/* 22001 when value is longer than limit characters. */
void
ApCheckLength(const char *name, const char *value, int limit)
{
	int			len;

	if (value == NULL)
		return;
	len = pg_mbstrlen(value);
	if (len > limit)
		ereport(ERROR,
				(errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
				 errmsg("%s is %d characters; the limit is %d", name, len, limit)));
}

/* 22023 when value is the empty string. */
void
ApCheckNotEmpty(const char *name, const char *value)
{
	if (value != NULL && value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name)));
}

/* 22023 when a numeric argument is NaN or infinite (amounts are sums of money). */
void
ApCheckFiniteNumeric(const char *name, Numeric value)
{
	if (numeric_is_nan(value) || numeric_is_inf(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite number", name)));
}

/* 22023 unless value is one of the NULL-terminated allowed list. */
void
ApCheckEnum(const char *name, const char *value, const char *const *allowed)
{
	StringInfoData list;

	if (value == NULL)
		return;
	for (const char *const *a = allowed; *a; a++)
		if (strcmp(value, *a) == 0)
			return;

	initStringInfo(&list);
	for (const char *const *a = allowed; *a; a++)
		appendStringInfo(&list, "%s%s", a == allowed ? "" : ", ", *a);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid %s \"%s\"", name, value),
			 errdetail("Allowed values are: %s.", list.data)));
}

/* ------------------------------------------------------------------------
 * Roles, actors, tenants
 * ------------------------------------------------------------------------ */

/*
 * The one membership rule of the extension, for group roles and tenant
 * grants alike: roleid has the privileges of member (directly, or through
 * roles it inherits from; a NOINHERIT member must SET ROLE first), as
 * PostgreSQL itself decides for table privileges.
 */
bool
ApRoleHasPrivsOf(Oid roleid, Oid member)
{
	return OidIsValid(member) && has_privs_of_role(roleid, member);
}

/* Does roleid have the privileges of the given group role? */
bool
ApHasRole(Oid roleid, ApprovalsRole role)
{
	if (superuser_arg(roleid))
		return true;
	return ApRoleHasPrivsOf(roleid, get_role_oid(role_names[role], true));
}

/* 42501 unless roleid has the privileges of the group role. */
void
ApRequireRole(Oid roleid, ApprovalsRole role, const char *what)
{
	if (!ApHasRole(roleid, role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Role \"%s\" is not a member of %s.",
						   GetUserNameFromId(roleid, false), role_names[role])));
}

/*
 * Fix who is calling and as which actor: the calling role's name, or the
 * actor argument, which only members of approvals_platform may set to
 * somebody else.
 */
void
ApResolveCaller(ApprovalsCaller *caller, const char *actor_arg)
{
	char	   *self;

	caller->roleid = GetUserId();
	caller->sees_all = ApHasRole(caller->roleid, AP_ROLE_PLATFORM) ||
		ApHasRole(caller->roleid, AP_ROLE_ADMIN);
	self = GetUserNameFromId(caller->roleid, false);

	if (actor_arg == NULL)
	{
		caller->actor = self;
		return;
	}
	ApCheckLength("actor", actor_arg, AP_MAX_ACTOR);
	ApCheckNotEmpty("actor", actor_arg);
	if (strcmp(actor_arg, self) != 0 && !ApHasRole(caller->roleid, AP_ROLE_PLATFORM))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("role \"%s\" may not act as \"%s\"", self, actor_arg),
				 errhint("Only members of approvals_platform may pass an actor other than themselves.")));
	caller->actor = pstrdup(actor_arg);
}

/*
 * May the caller see and act on this tenant?  NULL tenants are open to all.
 * Must be called while connected to SPI and switched to the owner.
 */
bool
ApTenantAllowed(const ApprovalsCaller *caller, const char *tenant)
{
	static const char *sql =
		"SELECT member FROM approvals.tenant_grants WHERE tenant = $1";
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	bool		nulls[1] = {false};
	uint64		n;

	if (tenant == NULL || caller->sees_all)
		return true;

	values[0] = CStringGetTextDatum(tenant);
	n = ApExec(sql, 1, types, values, nulls, 0);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		Oid			member = DatumGetObjectId(ApGetDatum(i, 1, &isnull));

		if (!isnull && ApRoleHasPrivsOf(caller->roleid, member))
			return true;
	}
	return false;
}

/*
 * The tenants granted to roleid or a role it belongs to, as text[].
 * Must be called while connected to SPI and switched to the owner.
 */
Datum
ApVisibleTenants(Oid roleid)
{
	static const char *sql =
		"SELECT DISTINCT tenant, member FROM approvals.tenant_grants ORDER BY tenant";
	char	  **tenants;
	int			n = 0;
	int			rows;

	rows = ApExec(sql, 0, NULL, NULL, NULL, 0);
	tenants = palloc(sizeof(char *) * Max(rows, 1));
	for (int i = 0; i < rows; i++)
	{
		bool		isnull;
		Oid			member = DatumGetObjectId(ApGetDatum(i, 2, &isnull));
		char	   *tenant = ApGetCString(i, 1);

		if (ApRoleHasPrivsOf(roleid, member) &&
			(n == 0 || strcmp(tenants[n - 1], tenant) != 0))
			tenants[n++] = tenant;
	}
	return ApCStringArrayDatum(tenants, n);
}

/* 42501 unless the caller may act on the tenant. */
void
ApRequireTenant(const ApprovalsCaller *caller, const char *tenant, const char *what)
{
	if (!ApTenantAllowed(caller, tenant))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s of tenant \"%s\"", what, tenant),
				 errhint("An approvals_admin can grant it with approvals.grant_tenant().")));
}

/* ------------------------------------------------------------------------
 * The version of the SQL objects
 * ------------------------------------------------------------------------ */

/*
 * The installed version of extension approvals in this database
 * (pg_extension.extversion, palloc'd), or NULL when it is not installed.
 */
char *
ApInstalledVersion(void)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *version = NULL;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("approvals"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			version = text_to_cstring(DatumGetTextPP(d));
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return version;
}

/* The local transaction in which the installed version was last found right. */
static LocalTransactionId version_checked_lxid = InvalidLocalTransactionId;

/*
 * 55000 unless the installed SQL objects are the version this library was
 * built for (AP_EXTVERSION): after the library is replaced by a newer one,
 * its statements may name columns or functions that ALTER EXTENSION UPDATE
 * has not created yet.  Checked once per transaction.
 */
void
ApRequireSchemaVersion(void)
{
	char	   *version;

	if (MyProc != NULL && version_checked_lxid == MyProc->lxid &&
		version_checked_lxid != InvalidLocalTransactionId)
		return;
	version = ApInstalledVersion();
	if (version == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"approvals\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION approvals.")));
	if (strcmp(version, AP_EXTVERSION) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"approvals\" is at version %s but its loaded library is version %s",
						version, AP_EXTVERSION),
				 errhint("Run ALTER EXTENSION approvals UPDATE.")));
	pfree(version);
	if (MyProc != NULL)
		version_checked_lxid = MyProc->lxid;
}

/* ------------------------------------------------------------------------
 * Privilege switching
 * ------------------------------------------------------------------------ */

/* Become the owner of schema approvals (the extension owner). */
void
ApBecomeOwner(ApprovalsPrivSwitch *sw)
{
	Oid			nsp = get_namespace_oid("approvals", false);
	HeapTuple	tup;
	Oid			owner;

	tup = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for namespace %u", nsp);
	owner = ((Form_pg_namespace) GETSTRUCT(tup))->nspowner;
	ReleaseSysCache(tup);

	GetUserIdAndSecContext(&sw->save_userid, &sw->save_sec_context);
	SetUserIdAndSecContext(owner, sw->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
}

/* Undo ApBecomeOwner. */
void
ApRestoreUser(ApprovalsPrivSwitch *sw)
{
	SetUserIdAndSecContext(sw->save_userid, sw->save_sec_context);
}

static void EnterSafe(ApprovalsCall *call);

/* The caller's enable_seqscan when the outermost approvals call began. */
static bool user_enable_seqscan = true;

/*
 * Enter a call: pin a safe search_path for our own statements, connect to
 * SPI and become the owner.  The caller must be resolved first (ApResolveCaller).
 */
void
ApBegin(ApprovalsCall *call)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	ApEnterSafe(call);
}

/*
 * ApBegin for the few functions that must work under any installed version
 * of the SQL objects (the row-level security helpers: every read of the
 * tables calls them, an ALTER EXTENSION UPDATE included).
 */
void
ApBeginAnyVersion(ApprovalsCall *call)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	EnterSafe(call);
}

/* Leave a call begun with ApBegin (on success; abort undoes it otherwise). */
void
ApEnd(ApprovalsCall *call)
{
	ApLeaveSafe(call);
	SPI_finish();
}

/*
 * The part of ApBegin that needs no SPI connection: safe search_path and
 * owner identity (for callers that manage SPI and transactions themselves).
 */
void
ApEnterSafe(ApprovalsCall *call)
{
	ApRequireSchemaVersion();
	EnterSafe(call);
}

static void
EnterSafe(ApprovalsCall *call)
{
	call->outer_user_seqscan = user_enable_seqscan;
	user_enable_seqscan = enable_seqscan;
	call->guc_nest = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, approvals, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);

	/*
	 * Every statement of ours is meant to be an index lookup (by claim id,
	 * batch id and position, or a partial index).  Statistics taken while a
	 * table held only dead rows, or before a bulk load in this transaction,
	 * must not turn them into sequential scans repeated per id: steer the
	 * planner away from those (it still scans where no index applies).
	 */
	(void) set_config_option("enable_seqscan", "off",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE,
							 true, 0, false);
	ApBecomeOwner(&call->sw);
}

/* Undo ApEnterSafe. */
void
ApLeaveSafe(ApprovalsCall *call)
{
	ApRestoreUser(&call->sw);
	AtEOXact_GUC(true, call->guc_nest);
	user_enable_seqscan = call->outer_user_seqscan;
}

/* Forget per-call state at the end of every transaction. */
static void
ApXactCallback(XactEvent event, void *arg pg_attribute_unused())
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			user_enable_seqscan = true;
			break;
		default:
			break;
	}
}

/* Called once from _PG_init. */
void
ApUtilInit(void)
{
	RegisterXactCallback(ApXactCallback, NULL);
}

/*
 * Lock the extension against DROP EXTENSION for the rest of the transaction
 * (as the worker and run_queued do before every chunk, so that a concurrent
 * DROP waits for the chunk instead of deadlocking with it).  Returns false
 * when the extension is not installed (any more).
 */
bool
ApLockExtension(void)
{
	Oid			extoid = get_extension_oid("approvals", true);

	if (!OidIsValid(extoid))
		return false;
	LockDatabaseObject(ExtensionRelationId, extoid, 0, AccessShareLock);
	/* a DROP we waited for has removed it */
	return get_extension_name(extoid) != NULL;
}

/* The caller's own enable_seqscan, likewise. */
bool
ApUserEnableSeqscan(void)
{
	return user_enable_seqscan;
}

/* ------------------------------------------------------------------------
 * SPI with saved plans
 * ------------------------------------------------------------------------ */

/*
 * Hash tables keyed by C strings of any length (a claim id of 64 multibyte
 * characters is up to 256 bytes): the key is a char pointer, hashed and
 * compared by the string it points to.  The strings must outlive the table.
 */
static uint32
StringKeyHash(const void *key, Size keysize pg_attribute_unused())
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, (int) strlen(s));
}

static int
StringKeyCompare(const void *a, const void *b, Size keysize pg_attribute_unused())
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* A hash table in cxt whose entries (entrysize bytes) start with a char * key. */
HTAB *
ApStringHashCreate(const char *name, long nelem, Size entrysize, MemoryContext cxt)
{
	HASHCTL		ctl;

	Assert(entrysize >= sizeof(char *));
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = StringKeyHash;
	ctl.match = StringKeyCompare;
	ctl.hcxt = cxt;
	return hash_create(name, Max(nelem, 1), &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/* Look up (action HASH_FIND) or add (HASH_ENTER) the entry of string key. */
void *
ApStringHashSearch(HTAB *table, const char *key, HASHACTION action, bool *found)
{
	return hash_search(table, &key, action, found);
}

typedef struct PlanEntry
{
	const char *sql;			/* hash key: the statement's text (a copy) */
	SPIPlanPtr	plan;
	int			nargs;
	Oid			argtypes[FUNC_MAX_ARGS];
} PlanEntry;

static HTAB *plan_cache = NULL;

/*
 * The saved plan of a parameterised statement, prepared once per backend and
 * keyed by the statement's text, so two call sites sharing a text share a
 * plan and no two texts can ever share one.
 */
static SPIPlanPtr
ApPlan(const char *sql, int nargs, const Oid *argtypes)
{
	PlanEntry  *entry;
	bool		found;

	if (nargs < 0 || nargs > FUNC_MAX_ARGS)
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
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) argtypes);
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
ApExec(const char *sql, int nargs, const Oid *argtypes,
	   const Datum *values, const bool *isnull, long tcount)
{
	SPIPlanPtr	plan = ApPlan(sql, nargs, argtypes);
	char		nulls[FUNC_MAX_ARGS + 1];
	int			rc;
	MemoryContext caller_cxt;

	ApNullsString(nargs, isnull, nulls);
	caller_cxt = CurrentMemoryContext;
	rc = SPI_execute_plan(plan, (Datum *) values, nulls, false, tcount);
	MemoryContextSwitchTo(caller_cxt);
	if (rc < 0)
		elog(ERROR, "SPI_execute_plan failed (%s) for \"%s\"",
			 SPI_result_code_string(rc), sql);
	return (int) SPI_processed;
}

/*
 * Stream the rows of a read-only statement into a tuplestore, a page at a
 * time through a cursor, so that a result of a million rows is never held
 * twice (once by SPI, once by the tuplestore).  Columns are copied in order;
 * the statement's columns must match desc.
 */
void
ApExecIntoTuplestore(const char *sql, int nargs, const Oid *argtypes,
					 const Datum *values, const bool *isnull,
					 Tuplestorestate *store, TupleDesc desc)
{
	SPIPlanPtr	plan = ApPlan(sql, nargs, argtypes);
	char		nulls[FUNC_MAX_ARGS + 1];
	Portal		portal;
	MemoryContext caller_cxt = CurrentMemoryContext;
	Datum	   *cols = palloc(sizeof(Datum) * desc->natts);
	bool	   *colnulls = palloc(sizeof(bool) * desc->natts);

	ApNullsString(nargs, isnull, nulls);
	portal = SPI_cursor_open(NULL, plan, (Datum *) values, nulls, false);
	MemoryContextSwitchTo(caller_cxt);
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

/* ------------------------------------------------------------------------
 * Ids, JSON, NOTIFY, arrays
 * ------------------------------------------------------------------------ */

/* prefix + 16 lowercase hex characters of strong randomness. */
char *
ApNewId(const char *prefix)
{
	uint8		bytes[8];
	StringInfoData buf;

	if (!pg_strong_random(bytes, sizeof(bytes)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random id")));
	initStringInfo(&buf);
	appendStringInfoString(&buf, prefix);
	for (int i = 0; i < (int) sizeof(bytes); i++)
		appendStringInfo(&buf, "%02x", bytes[i]);
	return buf.data;
}

/* Append "key":"value" (or null) to a JSON object under construction. */
void
ApJsonAppendPair(StringInfo buf, const char *key, const char *value)
{
	if (buf->len > 1)
		appendStringInfoChar(buf, ',');
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
	if (value)
		escape_json(buf, value);
	else
		appendStringInfoString(buf, "null");
}

/* NOTIFY approvals, payload (delivered at commit), unless approvals.notify is off. */
void
ApNotify(const char *payload)
{
	if (!ap_notify)
		return;
	Async_Notify("approvals", payload);
}

/* A text[] Datum from C strings (NULL items become NULL elements). */
Datum
ApCStringArrayDatum(char **items, int n)
{
	Datum	   *elems = palloc0(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc0(sizeof(bool) * Max(n, 1));
	int			dims[1] = {n};
	int			lbs[1] = {1};

	for (int i = 0; i < n; i++)
	{
		nulls[i] = (items[i] == NULL);
		if (items[i])
			elems[i] = CStringGetTextDatum(items[i]);
	}
	if (n == 0)
		return PointerGetDatum(construct_empty_array(TEXTOID));
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs,
											  TEXTOID, -1, false, TYPALIGN_INT));
}

/* A text[] Datum as C strings (NULL elements stay NULL). */
char **
ApTextArrayToCStrings(Datum array, int *n)
{
	ArrayType  *arr = DatumGetArrayTypeP(array);
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("expected a one-dimensional array")));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	out = palloc0(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		out[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
	return out;
}

/*
 * Every argument of the current call except skip_argno, printed by its type's
 * output function: the fingerprint an idempotency key remembers.  Printed
 * with fixed TimeZone, DateStyle, IntervalStyle and extra_float_digits, so a
 * retry from a session with other settings has the same fingerprint.
 */
Datum
ApTextArrayFromArgs(FunctionCallInfo fcinfo, int skip_argno)
{
	int			nargs = PG_NARGS();
	char	  **items = palloc0(sizeof(char *) * nargs);
	int			n = 0;
	Oid		   *argtypes;
	int			nproc;

	int			guc_nest;
	static const char *const canonical[][2] = {
		{"TimeZone", "UTC"}, {"DateStyle", "ISO, YMD"},
		{"IntervalStyle", "postgres"}, {"extra_float_digits", "1"}};

	get_func_signature(fcinfo->flinfo->fn_oid, &argtypes, &nproc);
	if (nproc != nargs)
		elog(ERROR, "argument count mismatch for function %u", fcinfo->flinfo->fn_oid);
	guc_nest = NewGUCNestLevel();
	for (int i = 0; i < (int) lengthof(canonical); i++)
		(void) set_config_option(canonical[i][0], canonical[i][1], PGC_USERSET,
								 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);

	for (int i = 0; i < nargs; i++)
	{
		Oid			typid;
		Oid			outfunc;
		bool		varlena;

		if (i == skip_argno)
			continue;
		if (PG_ARGISNULL(i))
		{
			items[n++] = NULL;
			continue;
		}
		typid = argtypes[i];
		getTypeOutputInfo(typid, &outfunc, &varlena);
		items[n++] = OidOutputFunctionCall(outfunc, PG_GETARG_DATUM(i));
	}
	AtEOXact_GUC(true, guc_nest);
	return ApCStringArrayDatum(items, n);
}

/* ------------------------------------------------------------------------
 * Guarded group application.  A group that has handlers runs in one
 * subtransaction.  When it raises, the failing items are found by bisection
 * with probe subtransactions that are always rolled back (an aborted
 * subtransaction leaves nothing in the backend's 64-entry cache of
 * subtransaction ids), then every unbroken run of good items is applied
 * again in one subtransaction.  So a group leaves at most one committed
 * subtransaction per failing item plus one, never one per claim.
 * ------------------------------------------------------------------------ */

static bool
IsTransient(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/* Sleep ms milliseconds, interruptibly. */
void
ApBackoffSleep(long ms)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
}

/*
 * Run apply(lo, hi) in a subtransaction, kept when keep and it succeeds,
 * else rolled back; on error return a copy of it.
 */
static ErrorData *
TryInSubxact(ApGroupApplyFn apply, void *state, int lo, int hi, bool keep)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		apply(state, lo, hi);
		if (keep)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
			edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
	}
	PG_END_TRY();
	return edata;
}

/* TryInSubxact, retrying deadlocks and serialization failures with backoff. */
static ErrorData *
TryWithRetries(ApGroupApplyFn apply, void *state, int lo, int hi, bool keep,
			   bool auto_retry)
{
	for (int attempt = 0;; attempt++)
	{
		ErrorData  *edata = TryInSubxact(apply, state, lo, hi, keep);

		if (edata == NULL ||
			!(auto_retry && IsTransient(edata->sqlerrcode) && attempt < AP_TRANSIENT_RETRIES))
			return edata;
		FreeErrorData(edata);
		ApBackoffSleep(AP_BACKOFF_MS << attempt);
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
	edata = TryWithRetries(apply, state, lo, hi, false, auto_retry);
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
	edata = TryWithRetries(apply, state, lo, hi, true, auto_retry);
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
		edata = TryWithRetries(apply, state, i, run_end, true, auto_retry);
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
