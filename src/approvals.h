/*
 * approvals.h
 *		Limits, SQLSTATEs, settings and shared types of the approvals
 *		extension, and the modules every other module builds on.
 *
 *		approvals.c		_PG_init: every setting, wiring only
 *		call.c			a call: arguments, caller and actor, roles, the version
 *						of the SQL objects, the SPI/search_path/owner bracket
 *		spi.c			our statements: saved plans, results
 *		datum.c			values: text[] <-> C strings, string-keyed hashes, ids,
 *						argument fingerprints
 *		retry.c			the one retry policy; work in a subtransaction
 *		tenant.c		tenant grants and visibility
 *		json.c			the JSON layer's C helpers
 *		notify.c		NOTIFY approvals
 *		audit.c			the append-only audit log
 *		seal.c			the tamper-evident chain of seals over the audit log
 *		stats.c			claim_stats, approver_stats
 *		handler.c		set_handler, invoking handlers, groups of items
 *		policy.c		set_policy, drop_policy, policy versions, the policy of a
 *						claim, the rules of a route
 *		claim.c			submit, decide, cancel_claim, the claim state machine
 *		steps.c			a claim's steps: validation, entering, approving,
 *						abstaining, escalating
 *		delegation.c	delegate, revoke_delegation, who may decide a claim
 *						(own right or through a delegation)
 *		inbox.c			inbox and the entries it reads
 *		expire.c		expire_due
 *		worker.c		the launcher, schedulers and batch workers (plumbing only)
 *		batch.h			the batch module family (batch_*.c)
 *
 * Words: a claim is one thing awaiting a decision; a batch decides many
 * claims, one item per claim; a chunk is the part of a batch processed in one
 * transaction; a group is a run of items of a chunk applied by one statement.
 */
#ifndef APPROVALS_H
#define APPROVALS_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "access/tupdesc.h"
#include "nodes/execnodes.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/portal.h"
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
#define AP_MAX_REFERENCE		255
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
	bool		outer_user_jit;
} ApprovalsCall;

/* Settings (approvals.c) */
#define AP_MAX_WORKERS_LIMIT	64
extern int	ap_max_batch_claims;
extern int	ap_chunk_size;
extern bool ap_notify;
extern char *ap_database;
extern int	ap_max_workers;
extern int	ap_naptime;
extern bool ap_worker_enabled;

/* call.c: arguments */
extern bool ApArgIsNull(FunctionCallInfo fcinfo, int argno);
extern text *ApArgText(FunctionCallInfo fcinfo, int argno);
extern char *ApArgCString(FunctionCallInfo fcinfo, int argno);
extern char *ApRequiredCString(FunctionCallInfo fcinfo, int argno, const char *name);
extern void ApCheckLength(const char *name, const char *value, int limit);
extern void ApCheckNotEmpty(const char *name, const char *value);
extern void ApCheckFiniteNumeric(const char *name, struct NumericData *value);
extern void ApCheckEnum(const char *name, const char *value, const char *const *allowed);

/* call.c: roles, actors, the version of the SQL objects, the call bracket */
extern bool ApRoleHasPrivsOf(Oid roleid, Oid member);
extern bool ApHasRole(Oid roleid, ApprovalsRole role);
extern void ApRequireRole(Oid roleid, ApprovalsRole role, const char *what);
extern void ApResolveCaller(ApprovalsCaller *caller, const char *actor_arg);
extern char *ApInstalledVersion(void);
extern void ApRequireSchemaVersion(void);
extern bool ApLockExtension(void);
extern bool ApRunInExtension(void (*fn) (void *arg), void *arg);
extern void ApBecomeOwner(ApprovalsPrivSwitch *sw);
extern void ApRestoreUser(ApprovalsPrivSwitch *sw);
extern void ApBegin(ApprovalsCall *call);
extern void ApBeginAnyVersion(ApprovalsCall *call);
extern void ApEnd(ApprovalsCall *call);
extern void ApEnterSafe(ApprovalsCall *call);
extern void ApLeaveSafe(ApprovalsCall *call);
extern bool ApUserEnableSeqscan(void);
extern bool ApUserJit(void);
extern int	ApSafeDepth(void);
extern void ApSafeDepthRestore(int depth);
extern void ApCallInit(void);

/* retry.c: the one retry policy */
#define AP_RETRIES			5	/* tries after the first, for transient errors */
#define AP_RETRY_FIRST_MS	10	/* first sleep; doubles per retry */
extern bool ApRetryTransient(int sqlerrcode, int attempt);
extern void ApRetrySleep(int attempt);
extern void ApSleep(long ms);
extern ErrorData *ApTryInSubxact(void (*work) (void *arg), void *arg, bool keep,
								 bool catch_cancel, MemoryContext errcxt);

/*
 * spi.c: statements.  Each is defined once, where it is used, as a static
 * ApStmt: its text and its parameter types; a statement that returns more
 * than one column names them in an enum beside it.
 */
#define AP_STMT_MAX_ARGS	24
typedef struct ApStmt
{
	const char *sql;
	int			nargs;
	Oid			argtypes[AP_STMT_MAX_ARGS];
} ApStmt;

/*
 * Starts a statement with an array whose generic plan cannot go wrong: the
 * array only filters the rows its key lookups find, or no index but the
 * primary key can take it.  It keeps one generic plan (see ApPlan in spi.c).
 */
#define AP_GENERIC_PLAN		"/* generic plan */ "

extern int	ApExec(const ApStmt *stmt, const Datum *values, const bool *isnull, long tcount);
extern Portal ApCursorOpen(const ApStmt *stmt, const Datum *values, const bool *isnull);
extern void ApExecIntoTuplestore(const ApStmt *stmt, const Datum *values, const bool *isnull,
								 Tuplestorestate *store, TupleDesc desc);
extern Datum ApGetDatum(int row, int col, bool *isnull);
extern void ApPutWholeRows(ReturnSetInfo *rsinfo, int n);
extern char *ApGetCString(int row, int col);

/* datum.c: values */
extern HTAB *ApStringHashCreate(const char *name, long nelem, Size entrysize,
								MemoryContext cxt);
extern void *ApStringHashSearch(HTAB *table, const char *key, HASHACTION action,
								bool *found);
extern uint8 ApTenantKey(const char *tenant);
extern char *ApNewId(const char *prefix, const char *tenant);
extern char *ApNewTrackingId(const char *tenant);
extern Datum ApCStringArrayDatum(char **items, int n);
extern int64 ApArrayLength(Datum array);
extern char **ApTextArrayToCStrings(Datum array, int *n);
extern Datum ApTextArrayFromArgs(FunctionCallInfo fcinfo, int skip_argno);
extern bool ApIntervalOver(Datum interval, const char *limit);

/* tenant.c */
extern bool ApTenantAllowed(const ApprovalsCaller *caller, const char *tenant);
extern Datum ApVisibleTenants(Oid roleid);
extern void ApRequireTenant(const ApprovalsCaller *caller, const char *tenant,
							const char *what);

/* json.c, notify.c */
extern void ApJsonAppendPair(StringInfo buf, const char *key, const char *value);
extern void ApNotify(const char *payload);
extern void ApNotifyInit(void);
extern bool ApOutboxSend(void);
/* batch_queue.c: the scheduler that sends handed-over notifications */
extern bool ApQueueSchedulerAttached(void);
extern void ApQueuePokeAtCommit(void);

/* handler.c */
typedef void (*ApGroupApplyFn) (void *state, int lo, int hi);
typedef void (*ApGroupFailFn) (void *state, int idx, const char *message);
extern bool ApRunHandler(const char *resource_type, const char *claim_id, int64 event_id);
extern void ApInvokeHandler(Oid handler, const char *path, const char *claim_id,
							int64 event_id);
/*
 * The end of an ApApplyStatement statement whose CTE c (id, resource_type)
 * changed the claims and e (claim_id, id) appended their events: a claim row
 * per claim with a handler, and the event rows when any handler exists.
 */
#define APPLY_HANDLER_ROWS \
	"SELECT c.id, NULL::bigint, h.handler::oid, h.search_path " \
	"FROM c JOIN approvals.handlers h ON h.resource_type = c.resource_type " \
	"UNION ALL SELECT e.claim_id, e.id, NULL, NULL FROM e " \
	"WHERE EXISTS (SELECT 1 FROM approvals.handlers)"
/* sees claim row r of ApApplyStatement's statement (SPI_tuptable) */
typedef void (*ApApplyRowFn) (void *state, int r);
extern void ApApplyStatement(const ApStmt *stmt, const Datum *values, const bool *nulls,
							 ApApplyRowFn on_claim, void *state);
extern void ApApplyGroups(ApGroupApplyFn apply, ApGroupFailFn fail, void *state,
						  int lo, int hi, bool guarded, bool auto_retry);

/* policy.c */
/* The policy that applies at submit, if any. */
typedef struct PolicyMatch
{
	bool		found;
	Datum		approvers;
	bool		approvers_null;
	int			required_approvals;
	Datum		auto_approve_below;
	bool		auto_approve_null;
	Datum		expires_in;
	bool		expires_in_null;
	char	   *on_expiry;
	bool		allow_self_approval;
	Datum		steps;			/* jsonb */
	bool		steps_null;
	int64		id;				/* with version: the policy version that matched */
	int			version;
} PolicyMatch;

extern void ApPolicyLookup(const char *tenant, const char *resource_type, const char *kind,
						   PolicyMatch *pm);
extern const char *ApExpiresInProblem(Datum expires_in);
extern char **ApApproversArg(Datum array, int *n_out);
extern void ApCheckRequiredApprovals(int required, bool has_route, int n_approvers);

/* steps.c: the steps of a claim (sequential steps, parallel approvers within one) */
#define AP_MAX_STEPS			10	/* steps of one claim or policy */
#define AP_MAX_STEP_NAME		100

typedef struct ApStep
{
	char	   *name;
	char	  **approvers;
	int			n_approvers;
	int			required;
	bool		has_min_amount;
	Datum		min_amount;		/* numeric, when has_min_amount */
} ApStep;

/* claim.c: the claim state machine (shared with expire.c and delegation.c) */

/* An event a state change appends after its own (step_completed, escalated). */
typedef struct ClaimFollowUp
{
	const char *action;
	char	   *comment;
} ClaimFollowUp;

#define AP_MAX_FOLLOWUPS		4

/* The decision-relevant state of one claim, loaded under a row lock. */
typedef struct ClaimState
{
	char	   *id;
	char	   *tenant;
	char	   *resource_type;
	char	   *snapshot_hash;
	char	   *status;
	char	   *requester;
	char	   *reviewer;
	char	  **approvers;
	int			n_approvers;
	int			required_approvals;
	int			approval_count;
	char	  **approved_by;	/* everyone who took part in an approval */
	int			n_approved_by;
	int			route_position; /* 1-based; 0 when no current assignee */
	bool		allow_self_approval;
	char	   *on_expiry;
	Datum		expires_in;
	bool		expires_in_null;
	Datum		expires_at;
	bool		expires_at_null;
	bool		is_expired;
	Datum		amount;
	bool		amount_null;
	/* steps (n_steps 0 without) */
	ApStep	   *steps;
	int			n_steps;
	int			current_step;	/* 1-based; 0 when none */
	int			step_approvals; /* approvals given in the current step */
	char	  **step_abstained; /* approvers of the current step who abstained */
	int			n_step_abstained;
	bool		step_escalated; /* the current step takes any reviewer */
	/* who the claim waited for by name when loaded (named_approvers) */
	char	  **named;
	int			n_named;
	Datum		loaded_expires_at;
	bool		loaded_expires_at_null;
	/* the claim row as last stored (NULL: not known), and whether a handler ran since */
	Datum		row;
	bool		handler_ran;
	/* set by the change being made */
	const char *on_behalf_of;	/* the delegator a decision is made for */
	ClaimFollowUp followups[AP_MAX_FOLLOWUPS];
	int			n_followups;
} ClaimState;

extern bool ApClaimLoad(const char *claim_id, ClaimState *st);
extern int64 ApClaimEvent(ClaimState *st, const char *batch_id, const char *actor,
						  const char *action, const char *from_status, const char *comment);
extern void ApClaimCommit(ClaimState *st, const char *actor, const char *action,
						  const char *from_status, const char *comment);
extern void ApClaimFollowUp(ClaimState *st, const char *action, char *comment);
extern bool ApClaimAdvanceRoute(ClaimState *st);
extern const char *ApClaimAssignee(const ClaimState *st);
extern char **ApClaimNamed(const ClaimState *st, int *n);
extern bool ApStringIn(char **items, int n, const char *value);
extern void ApReportNoClaim(const char *claim_id);
extern char *ApIdempotencyLookup(const char *scope, const char *requester, const char *key,
								 Datum request, const char *object_id);

/* seal.c */
extern bool ApSealAuditSome(int64 limit);

/* steps.c */
extern ApStep *ApStepsParse(Jsonb *doc, int *n);
extern void ApStepsCheckArgs(bool has_steps, bool has_approvers);
extern int	ApStepsRequired(const ClaimState *st);
extern bool ApStepsEnter(ClaimState *st, int from);
extern const ApStep *ApStepCurrent(const ClaimState *st);
extern bool ApStepIsApprover(const ClaimState *st, const char *person);
extern void ApStepsApprove(ClaimState *st);
extern void ApStepsAbstain(ClaimState *st, const char *person);
extern void ApStepsEscalate(ClaimState *st, const char *why);

/* delegation.c */
extern const char *ApDelegationResolve(const ClaimState *st, const char *actor,
									   const char *on_behalf_of);
extern const char *ApClaimRightProblem(const ClaimState *st, const char *person);

/* inbox.c */
extern void ApInboxRefresh(char **claim_ids, int n);

/* worker.c */
extern void ApWorkerRegister(void);
extern void ApWorkerInstallHooks(void);

#endif							/* APPROVALS_H */
