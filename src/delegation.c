/*
 * delegation.c
 *		Delegation (out of office): delegate, revoke_delegation, and who may
 *		decide a claim - by their own right, or through a delegation for a
 *		delegator who has that right.
 *
 *		A delegation lets its delegate decide, while it is active and for
 *		claims in its scope, every claim its delegator may decide by their own
 *		right (never through someone else's delegation: no cascade).  The
 *		decision counts as the delegator's.  decide locks the delegation it uses
 *		(FOR SHARE), so that a concurrent revoke_delegation either waits for the
 *		decision to commit or commits first and the decision is refused.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_delegate);
PG_FUNCTION_INFO_V1(approvals_revoke_delegation);

/*
 * Why person has no right of their own to decide the claim now, or NULL when
 * they have one: the requester (unless the claim allows self-approval), not
 * an approver of the current step, not the route's assignee.
 */
const char *
ApClaimRightProblem(const ClaimState *st, const char *person)
{
	const ApStep *step = ApStepCurrent(st);
	const char *assignee = ApClaimAssignee(st);

	if (strcmp(person, st->requester) == 0 && !st->allow_self_approval)
		return psprintf("\"%s\" requested claim \"%s\" and cannot decide it", person, st->id);
	if (step != NULL && !st->step_escalated)
	{
		if (!ApStepIsApprover(st, person))
			return psprintf("claim \"%s\" is at step %d (\"%s\") and \"%s\" is not one of its approvers",
							st->id, st->current_step, step->name, person);
		return NULL;
	}
	if (step == NULL && assignee != NULL && strcmp(person, assignee) != 0)
		return psprintf("claim \"%s\" is assigned to \"%s\", not \"%s\"", st->id, assignee, person);
	return NULL;
}

/*
 * The delegators whose active delegations to actor cover the claim (scope:
 * resource type, tenant, amount), locked FOR SHARE; only_from restricts them
 * to one delegator.  Returns how many rows; names in *delegators.
 */
static int
CoveringDelegations(const ClaimState *st, const char *actor, const char *only_from,
					char ***delegators)
{
	static const ApStmt sql = {
		"SELECT delegator FROM approvals.delegations "
		"WHERE delegate = $1 AND ($2::text IS NULL OR delegator = $2) "
		"AND revoked_at IS NULL AND valid_from <= now() "
		"AND (valid_until IS NULL OR valid_until > now()) "
		"AND (resource_type IS NULL OR resource_type = $3) "
		"AND (tenant IS NULL OR tenant = $4) "
		"AND (max_amount IS NULL OR max_amount >= $5) "
		"ORDER BY delegator, id FOR SHARE",
		5, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, NUMERICOID}
	};
	Datum		values[5];
	bool		nulls[5] = {false, only_from == NULL, false, st->tenant == NULL, st->amount_null};
	int			n;

	values[0] = CStringGetTextDatum(actor);
	values[1] = only_from ? CStringGetTextDatum(only_from) : (Datum) 0;
	values[2] = CStringGetTextDatum(st->resource_type);
	values[3] = st->tenant ? CStringGetTextDatum(st->tenant) : (Datum) 0;
	values[4] = st->amount;
	n = ApExec(&sql, values, nulls, 0);
	*delegators = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
		(*delegators)[i] = ApGetCString(i, 1);
	return n;
}

/* 42501: nobody decides a claim they requested through a delegation, nor for its requester. */
static void
CheckNotRequester(const ClaimState *st, const char *actor, const char *delegator)
{
	if (strcmp(actor, st->requester) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" requested claim \"%s\" and cannot decide it, through a delegation or not",
						actor, st->id)));
	if (strcmp(delegator, st->requester) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" requested claim \"%s\"; nobody decides it on their behalf",
						delegator, st->id)));
}

/*
 * Whom actor decides the (locked, pending) claim for: themselves when they
 * have the right, else the one delegator whose delegation covers it.
 * on_behalf_of names the delegator explicitly.  42501 when neither gives a
 * right; 22023 when several delegations would and none is named.
 */
const char *
ApDelegationResolve(const ClaimState *st, const char *actor, const char *on_behalf_of)
{
	const char *own = NULL;
	char	  **from;
	int			n;
	const char *found = NULL;
	StringInfoData names;
	int			n_found = 0;

	if (on_behalf_of == NULL || strcmp(on_behalf_of, actor) == 0)
	{
		own = ApClaimRightProblem(st, actor);
		if (own == NULL)
			return actor;
		if (on_behalf_of != NULL)
			ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("%s", own)));
	}
	else
	{
		const char *problem;

		if (CoveringDelegations(st, actor, on_behalf_of, &from) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("no active delegation from \"%s\" to \"%s\" covers claim \"%s\"",
							on_behalf_of, actor, st->id),
					 errhint("See approvals.delegations: a delegation covers claims of its resource_type, tenant and max_amount while valid and not revoked.")));
		CheckNotRequester(st, actor, on_behalf_of);
		problem = ApClaimRightProblem(st, on_behalf_of);
		if (problem)
			ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("%s", problem)));
		return on_behalf_of;
	}

	/* no right of their own: the delegations to the actor whose delegator has one */
	n = CoveringDelegations(st, actor, NULL, &from);
	initStringInfo(&names);
	for (int i = 0; i < n; i++)
	{
		if (found && strcmp(found, from[i]) == 0)
			continue;
		if (strcmp(actor, st->requester) == 0 || strcmp(from[i], st->requester) == 0 ||
			ApClaimRightProblem(st, from[i]) != NULL)
			continue;
		appendStringInfo(&names, "%s\"%s\"", n_found > 0 ? ", " : "", from[i]);
		found = from[i];
		n_found++;
	}
	if (n_found == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s", own),
				 strcmp(actor, st->requester) == 0 ?
				 errdetail("Four-eyes rule: the requester never decides their own claim unless the policy allows self-approval.") : 0));
	if (n_found > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("several delegations let \"%s\" decide claim \"%s\": on behalf of %s",
						actor, st->id, names.data),
				 errhint("Name the delegator in on_behalf_of.")));
	return found;
}

/* A delegation row (the whole row of the last SPI result's column 1) for the caller. */
static Datum
DelegationRow(void)
{
	bool		isnull;

	return SPI_datumTransfer(ApGetDatum(0, 1, &isnull), false, -1);
}

/*
 * approvals.delegate(delegate, valid_until, valid_from, resource_type, tenant,
 * max_amount, comment, delegator): let delegate decide for delegator.
 */
Datum
approvals_delegate(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.delegations AS d (id, tenant, delegator, delegate, resource_type, "
		"max_amount, valid_from, valid_until, comment, created_by) "
		"VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), $8, $9, $10) RETURNING d",
		10, {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, NUMERICOID, TIMESTAMPTZOID,
			TIMESTAMPTZOID, TEXTOID, TEXTOID}
	};
	char	   *delegate;
	char	   *resource_type = ApArgCString(fcinfo, 3);
	char	   *tenant = ApArgCString(fcinfo, 4);
	char	   *comment = ApArgCString(fcinfo, 6);
	char	   *delegator_arg = ApArgCString(fcinfo, 7);
	TimestampTz valid_from;
	ApprovalsCall call;
	Datum		values[10];
	bool		nulls[10] = {false};
	Datum		result;

	ApResolveCaller(&call.caller, delegator_arg);
	ApRequireRole(call.caller.roleid, AP_ROLE_REVIEWER, "delegate");
	delegate = ApRequiredCString(fcinfo, 0, "delegate");
	ApCheckNotEmpty("delegate", delegate);
	ApCheckNotEmpty("resource_type", resource_type);
	ApCheckNotEmpty("tenant", tenant);
	ApCheckLength("delegate", delegate, AP_MAX_ACTOR);
	ApCheckLength("resource_type", resource_type, AP_MAX_RESOURCE_TYPE);
	ApCheckLength("tenant", tenant, AP_MAX_TENANT);
	ApCheckLength("comment", comment, AP_MAX_COMMENT);
	if (strcmp(delegate, call.caller.actor) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" cannot delegate to themselves", delegate)));
	valid_from = PG_ARGISNULL(2) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(2);
	if (!PG_ARGISNULL(1) && PG_GETARG_TIMESTAMPTZ(1) <= valid_from)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("valid_until must be later than valid_from")));
	if (TIMESTAMP_NOT_FINITE(valid_from))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("valid_from must be a finite time")));
	if (!PG_ARGISNULL(5))
	{
		ApCheckFiniteNumeric("max_amount", PG_GETARG_NUMERIC(5));
		if (DatumGetBool(DirectFunctionCall2(numeric_lt, PG_GETARG_DATUM(5),
											 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_amount must not be negative")));
	}

	ApBegin(&call);
	ApRequireTenant(&call.caller, tenant, "delegate");
	values[0] = CStringGetTextDatum(ApNewId("dlg_", tenant));
	nulls[1] = (tenant == NULL);
	values[1] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	values[2] = CStringGetTextDatum(call.caller.actor);
	values[3] = CStringGetTextDatum(delegate);
	nulls[4] = (resource_type == NULL);
	values[4] = resource_type ? CStringGetTextDatum(resource_type) : (Datum) 0;
	nulls[5] = PG_ARGISNULL(5);
	values[5] = nulls[5] ? (Datum) 0 : PG_GETARG_DATUM(5);
	values[6] = TimestampTzGetDatum(valid_from);
	nulls[7] = PG_ARGISNULL(1);
	values[7] = nulls[7] ? (Datum) 0 : PG_GETARG_DATUM(1);
	nulls[8] = (comment == NULL);
	values[8] = comment ? CStringGetTextDatum(comment) : (Datum) 0;
	values[9] = CStringGetTextDatum(GetUserNameFromId(call.caller.roleid, false));
	ApExec(&sql, values, nulls, 1);
	result = DelegationRow();
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}

/* approvals.revoke_delegation(delegation_id, comment): end a delegation now. */
Datum
approvals_revoke_delegation(PG_FUNCTION_ARGS)
{
	static const ApStmt lock_sql = {
		"SELECT delegator, created_by, revoked_at, tenant FROM approvals.delegations "
		"WHERE id = $1 FOR UPDATE",
		1, {TEXTOID}
	};
	static const ApStmt sql = {
		"UPDATE approvals.delegations AS d SET revoked_at = now(), revoked_by = $2, "
		"revoke_comment = $3 WHERE id = $1 RETURNING d",
		3, {TEXTOID, TEXTOID, TEXTOID}
	};
	enum
	{
		L_DELEGATOR = 1, L_CREATED_BY, L_REVOKED_AT, L_TENANT
	};
	char	   *id;
	char	   *comment = ApArgCString(fcinfo, 1);
	char	   *self;
	char	   *delegator;
	char	   *created_by;
	char	   *revoked_at;
	ApprovalsCall call;
	Datum		values[3];
	bool		nulls[3] = {false, false, comment == NULL};
	Datum		result;

	ApResolveCaller(&call.caller, NULL);
	if (!ApHasRole(call.caller.roleid, AP_ROLE_ADMIN))
		ApRequireRole(call.caller.roleid, AP_ROLE_REVIEWER, "revoke delegations");
	id = ApRequiredCString(fcinfo, 0, "delegation_id");
	ApCheckLength("comment", comment, AP_MAX_COMMENT);
	self = call.caller.actor;

	ApBegin(&call);
	values[0] = CStringGetTextDatum(id);
	if (ApExec(&lock_sql, values, NULL, 1) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("delegation \"%s\" does not exist", id)));
	/* copied out first: the tenant check runs a statement of its own */
	delegator = ApGetCString(0, L_DELEGATOR);
	created_by = ApGetCString(0, L_CREATED_BY);
	revoked_at = ApGetCString(0, L_REVOKED_AT);
	ApRequireTenant(&call.caller, ApGetCString(0, L_TENANT), "revoke delegations");
	if (strcmp(self, delegator) != 0 && strcmp(self, created_by) != 0 &&
		!ApHasRole(call.caller.roleid, AP_ROLE_ADMIN))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" may not revoke delegation \"%s\" of \"%s\"",
						self, id, delegator),
				 errhint("Only the delegator, the delegation's creator or an approvals_admin member may revoke it.")));
	if (revoked_at != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("delegation \"%s\" was already revoked at %s", id, revoked_at)));
	values[1] = CStringGetTextDatum(self);
	values[2] = comment ? CStringGetTextDatum(comment) : (Datum) 0;
	ApExec(&sql, values, nulls, 1);
	result = DelegationRow();
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}
