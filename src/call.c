/*
 * call.c
 *		Everything about one call of a SQL-callable function: its arguments
 *		(NULL handling and limits), who is calling and as which actor, the group
 *		roles, the version of the SQL objects, and the bracket every call runs in:
 *		SPI, a pinned search_path and the extension owner's identity.
 *
 *		The NULL rule: no function is STRICT (a required argument that is NULL is
 *		22004, which STRICT would hide as a NULL result); every argument is read
 *		through ApArg* or checked with PG_ARGISNULL before PG_GETARG_*.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "jit/jit.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/elog.h"
#include "utils/memutils.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
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
	if (ApArgIsNull(fcinfo, argno))
		return NULL;
	return PG_GETARG_TEXT_PP(argno);
}

/*
 * Is argument argno NULL or not passed at all?  (An older version's SQL
 * declaration, before ALTER EXTENSION UPDATE, passes fewer arguments.)
 */
bool
ApArgIsNull(FunctionCallInfo fcinfo, int argno)
{
	return PG_NARGS() <= argno || PG_ARGISNULL(argno);
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
 * Roles and actors
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

/*
 * Run fn(arg) as the extension owner with our search_path, the extension
 * locked against DROP EXTENSION for the rest of the transaction (so that a
 * DROP waits for the unit instead of deadlocking with it): how the driver
 * and the worker run each unit of work.  False, without running fn, when the
 * extension is not installed (any more).
 */
bool
ApRunInExtension(void (*fn) (void *arg), void *arg)
{
	ApprovalsCall call;

	if (!ApLockExtension())
		return false;
	ApEnterSafe(&call);
	fn(arg);
	ApLeaveSafe(&call);
	return true;
}

/* ------------------------------------------------------------------------
 * The call bracket: SPI, search_path, the owner's identity
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

/*
 * The caller's enable_seqscan when the outermost approvals call began (the
 * setting handlers run with), and how deeply our brackets are nested: a
 * bracket inside another (the driver's chunk inside process_batch, an
 * approvals call from a handler) keeps the outermost caller's setting.
 */
static bool user_enable_seqscan = true;
static bool user_jit = true;
static int	safe_depth = 0;

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
	call->outer_user_jit = user_jit;
	if (safe_depth == 0)
	{
		user_enable_seqscan = enable_seqscan;
		user_jit = jit_enabled;
	}
	safe_depth++;
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

	/*
	 * Where a scan must be sequential anyway (a sequence, a one-row table),
	 * the cost of the setting above pushes the statement over jit_above_cost:
	 * 100 ms of compiling for a statement that runs in microseconds.
	 */
	(void) set_config_option("jit", "off",
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
	user_jit = call->outer_user_jit;
	safe_depth--;
}

/* How deeply our brackets are nested now (saved around a subtransaction). */
int
ApSafeDepth(void)
{
	return safe_depth;
}

/* After a subtransaction rolled back: the brackets it left are gone. */
void
ApSafeDepthRestore(int depth)
{
	safe_depth = depth;
}

/* The caller's own enable_seqscan, likewise. */
bool
ApUserEnableSeqscan(void)
{
	return user_enable_seqscan;
}

/* The caller's own jit setting, likewise. */
bool
ApUserJit(void)
{
	return user_jit;
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
			user_jit = true;
			safe_depth = 0;
			break;
		default:
			break;
	}
}

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * A role without any approvals_* role meets PostgreSQL's own "permission
 * denied for schema approvals" before any of our code runs: give it a hint
 * that says what gets it in (when this library is loaded in the backend,
 * which the preload makes always).
 */
static void
ApEmitLogHook(ErrorData *edata)
{
	static const char *const schema_denied = "permission denied for schema %s";

	if (edata->elevel >= ERROR && edata->hint == NULL &&
		edata->sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE &&
		edata->message_id != NULL && strcmp(edata->message_id, schema_denied) == 0 &&
		edata->message != NULL && strlen(edata->message) >= strlen(" approvals") &&
		strcmp(edata->message + strlen(edata->message) - strlen(" approvals"), " approvals") == 0)
	{
		MemoryContext old = MemoryContextSwitchTo(ErrorContext);

		edata->hint = pstrdup("Schema approvals is for members of the approvals_* roles: an administrator can GRANT approvals_reader (or approvals_requester, approvals_reviewer, approvals_coordinator, approvals_admin, approvals_platform) TO this role.");
		MemoryContextSwitchTo(old);
	}
	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
}

/* Called once from _PG_init. */
void
ApCallInit(void)
{
	RegisterXactCallback(ApXactCallback, NULL);
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = ApEmitLogHook;
}
