/*
 * approvals.h
 *		Shared declarations of the approvals extension.
 *
 * Module map:
 *		approvals.c		_PG_init: settings and wiring only
 *		util.c			argument checks, actor and role rules, SPI helpers,
 *						privilege switching, ids, NOTIFY
 *		claim.c			claims: submit, decide, cancel, expiry, handlers
 *		policy.c		policies, handlers, tenants, the audit-log trigger
 *		batch.c			batches and the chunk processor
 *		worker.c		the background worker
 */
#ifndef APPROVALS_H
#define APPROVALS_H

#include "postgres.h"

#include "fmgr.h"
#include "access/tupdesc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

#ifndef AP_EXTVERSION
#error "AP_EXTVERSION must be defined (the Makefile takes it from approvals.control)"
#endif

/* SQLSTATEs of our own (API.md section 8) */
#define ERRCODE_APPROVALS_STALE_SNAPSHOT	MAKE_SQLSTATE('A','P','0','0','1')
#define ERRCODE_APPROVALS_CONFIRMATION		MAKE_SQLSTATE('A','P','0','0','2')

/* Limits (characters) */
#define AP_MAX_ACTOR			128
#define AP_MAX_TENANT			128
#define AP_MAX_RESOURCE_TYPE	64
#define AP_MAX_RESOURCE_ID		255
#define AP_MAX_KIND				64
#define AP_MAX_SNAPSHOT_HASH	128
#define AP_MAX_NOTE				2000
#define AP_MAX_COMMENT			2000
#define AP_MAX_CONTEXT			1000
#define AP_MAX_TITLE			255
#define AP_MAX_CURRENCY			16
#define AP_MAX_ID				64
#define AP_MAX_IDEMPOTENCY_KEY	255
#define AP_MAX_FIELDS			20
#define AP_MAX_APPROVERS		50	/* actors in one route */
#define AP_MAX_EXPIRES_IN		"100 years"	/* longest policy expires_in */

/* The group roles */
typedef enum ApprovalsRole
{
	AP_ROLE_READER,
	AP_ROLE_REQUESTER,
	AP_ROLE_REVIEWER,
	AP_ROLE_COORDINATOR,
	AP_ROLE_ADMIN,
	AP_ROLE_PLATFORM
} ApprovalsRole;

/*
 * Who is calling, fixed at function entry (before any privilege switch).
 */
typedef struct ApprovalsCaller
{
	Oid			roleid;			/* the calling role (current_user) */
	char	   *actor;			/* the actor the call acts as */
	bool		sees_all;		/* platform, admin or superuser */
} ApprovalsCaller;

/*
 * The extension owner's identity, switched to around table access so that
 * no group role ever needs write privileges on the tables.
 */
typedef struct ApprovalsPrivSwitch
{
	Oid			save_userid;
	int			save_sec_context;
} ApprovalsPrivSwitch;

/*
 * One call of a SQL-callable function that touches the tables: a safe
 * search_path, an SPI connection and the owner's identity, undone by ApEnd
 * (or by transaction abort).
 */
typedef struct ApprovalsCall
{
	ApprovalsCaller caller;
	ApprovalsPrivSwitch sw;
	int			guc_nest;
	bool		outer_user_seqscan;
} ApprovalsCall;

/* util.c: arguments */
extern text *ApArgText(FunctionCallInfo fcinfo, int argno);
extern char *ApArgCString(FunctionCallInfo fcinfo, int argno);
extern char *ApRequiredCString(FunctionCallInfo fcinfo, int argno, const char *name);
extern void ApCheckLength(const char *name, const char *value, int limit);
extern void ApCheckNotEmpty(const char *name, const char *value);
extern void ApCheckFiniteNumeric(const char *name, struct NumericData *value);
extern void ApCheckEnum(const char *name, const char *value, const char *const *allowed);

/* util.c: callers, roles, tenants */
extern bool ApRoleHasPrivsOf(Oid roleid, Oid member);
extern bool ApHasRole(Oid roleid, ApprovalsRole role);
extern void ApRequireRole(Oid roleid, ApprovalsRole role, const char *what);
extern void ApResolveCaller(ApprovalsCaller *caller, const char *actor_arg);
extern bool ApTenantAllowed(const ApprovalsCaller *caller, const char *tenant);
extern Datum ApVisibleTenants(Oid roleid);
extern void ApRequireTenant(const ApprovalsCaller *caller, const char *tenant,
							const char *what);

/* util.c: privilege switch and SPI */
extern void ApBecomeOwner(ApprovalsPrivSwitch *sw);
extern void ApRestoreUser(ApprovalsPrivSwitch *sw);
extern char *ApInstalledVersion(void);
extern void ApRequireSchemaVersion(void);
extern void ApBegin(ApprovalsCall *call);
extern void ApBeginAnyVersion(ApprovalsCall *call);
extern void ApEnd(ApprovalsCall *call);
extern void ApEnterSafe(ApprovalsCall *call);
extern void ApLeaveSafe(ApprovalsCall *call);
extern bool ApUserEnableSeqscan(void);
extern void ApUtilInit(void);
extern bool ApLockExtension(void);
extern int	ApExec(const char *sql, int nargs, const Oid *argtypes,
				   const Datum *values, const bool *isnull, long tcount);
extern void ApExecIntoTuplestore(const char *sql, int nargs, const Oid *argtypes,
								 const Datum *values, const bool *isnull,
								 Tuplestorestate *store, TupleDesc desc);
extern Datum ApGetDatum(int row, int col, bool *isnull);
extern HTAB *ApStringHashCreate(const char *name, long nelem, Size entrysize,
								MemoryContext cxt);
extern void *ApStringHashSearch(HTAB *table, const char *key, HASHACTION action,
								bool *found);
extern char *ApGetCString(int row, int col);

/* util.c: guarded group application (see ApApplyGroups) */
#define AP_BACKOFF_MS			10	/* first backoff; doubles per retry */
#define AP_TRANSIENT_RETRIES	3	/* retries of deadlocks/serialization failures */
typedef void (*ApGroupApplyFn) (void *state, int lo, int hi);
typedef void (*ApGroupFailFn) (void *state, int idx, const char *message);
extern void ApApplyGroups(ApGroupApplyFn apply, ApGroupFailFn fail, void *state,
						  int lo, int hi, bool guarded, bool auto_retry);
extern void ApBackoffSleep(long ms);

/* util.c: ids, JSON, NOTIFY */
extern char *ApNewId(const char *prefix);
extern void ApJsonAppendPair(StringInfo buf, const char *key, const char *value);
extern void ApNotify(const char *payload);
extern Datum ApTextArrayFromArgs(FunctionCallInfo fcinfo, int skip_argno);
extern Datum ApCStringArrayDatum(char **items, int n);
extern char **ApTextArrayToCStrings(Datum array, int *n);

/* approvals.c: settings */
extern int	ap_max_batch_claims;
extern int	ap_chunk_size;
extern bool ap_notify;

/* claim.c: shared with policies and batches */
extern char *ApIdempotencyLookup(const char *scope, const char *requester, const char *key,
								 Datum request, const char *object_id);
extern void ApCheckApprovers(char **approvers, int n);
extern void ApCheckRequiredApprovals(int required, bool has_route, int n_approvers);
extern void ApRunHandler(const char *resource_type, const char *claim_id, int64 event_id);
extern const char *ApExpiresInProblem(Datum expires_in);
extern void ApInvokeHandler(Oid handler, const char *path, const char *claim_id,
							int64 event_id);

/* batch.c: the chunk processor, shared with the worker */
extern bool ApBatchStep(const char *batch_id, int chunk_size);
extern char *ApClaimNextBatch(const ApprovalsCaller *caller);

/* A batch whose processing backend is gone: no backend with its pid and start time */
#define AP_BATCH_ORPHANED \
	"NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a " \
	"WHERE a.pid = worker_pid AND a.backend_start = worker_started)"

/* worker.c */
extern void ApWorkerInit(void);
extern void ApWakeWorker(void);

#endif							/* APPROVALS_H */
