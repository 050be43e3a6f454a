/*
 * policy.c
 *		Policies: set_policy, the policy that applies to a claim at submit, the
 *		rules for a policy's expires_in, and the rules of a route (approvers and
 *		required_approvals), which submit shares.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_set_policy);

static const char *const expiry_actions[] = {"expire", "escalate", NULL};

/*
 * What is wrong with a policy's expires_in, or NULL.  Every part must be
 * positive or zero ('1 mon -30 days' is positive as a whole but can end
 * before it starts), and it is bounded, so that now() plus it can never
 * overflow when a claim is escalated.
 */
const char *
ApExpiresInProblem(Datum expires_in)
{
	Interval   *in = DatumGetIntervalP(expires_in);

	if (in->month < 0 || in->day < 0 || in->time < 0 ||
		(in->month == 0 && in->day == 0 && in->time == 0))
		return "must be a positive interval with no negative part";
	if (ApIntervalOver(expires_in, AP_MAX_EXPIRES_IN))
		return "must be at most " AP_MAX_EXPIRES_IN;
	return NULL;
}

/* approvals.set_policy(...): create or replace the policy of one (tenant, resource_type, kind). */
Datum
approvals_set_policy(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.policies AS p (resource_type, kind, tenant, approvers, "
		"required_approvals, auto_approve_below, expires_in, on_expiry, allow_self_approval) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
		"ON CONFLICT (tenant, resource_type, kind) DO UPDATE SET "
		"approvers = EXCLUDED.approvers, required_approvals = EXCLUDED.required_approvals, "
		"auto_approve_below = EXCLUDED.auto_approve_below, expires_in = EXCLUDED.expires_in, "
		"on_expiry = EXCLUDED.on_expiry, allow_self_approval = EXCLUDED.allow_self_approval, "
		"updated_at = now()",
		9, {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, NUMERICOID, INTERVALOID, TEXTOID, BOOLOID}
	};
	Datum		values[9];
	bool		nulls[9];
	char	   *resource_type = ApArgCString(fcinfo, 0);
	char	   *kind = ApArgCString(fcinfo, 1);
	char	   *tenant = ApArgCString(fcinfo, 2);
	char	   *on_expiry = PG_ARGISNULL(7) ? "expire" : ApArgCString(fcinfo, 7);
	int			required = PG_ARGISNULL(4) ? 1 : PG_GETARG_INT32(4);
	int			n_approvers = 0;
	char	  **approvers = NULL;
	ApprovalsCall call;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_ADMIN, "set policies");
	ApCheckNotEmpty("resource_type", resource_type);
	ApCheckNotEmpty("kind", kind);
	ApCheckNotEmpty("tenant", tenant);
	ApCheckLength("resource_type", resource_type, AP_MAX_RESOURCE_TYPE);
	ApCheckLength("kind", kind, AP_MAX_KIND);
	ApCheckLength("tenant", tenant, AP_MAX_TENANT);
	ApCheckEnum("on_expiry", on_expiry, expiry_actions);
	if (!PG_ARGISNULL(3))
	{
		approvers = ApTextArrayToCStrings(PG_GETARG_DATUM(3), &n_approvers);
		ApCheckApprovers(approvers, n_approvers);
	}
	ApCheckRequiredApprovals(required, !PG_ARGISNULL(3), n_approvers);
	if (!PG_ARGISNULL(5))
		ApCheckFiniteNumeric("auto_approve_below", PG_GETARG_NUMERIC(5));
	if (!PG_ARGISNULL(5) &&
		DatumGetBool(DirectFunctionCall2(numeric_le, PG_GETARG_DATUM(5),
										 DirectFunctionCall1(int4_numeric, Int32GetDatum(0)))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("auto_approve_below must be greater than 0")));
	if (!PG_ARGISNULL(6))
	{
		const char *problem = ApExpiresInProblem(PG_GETARG_DATUM(6));

		if (problem)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("expires_in %s", problem)));
	}
	if (strcmp(on_expiry, "escalate") == 0 && PG_ARGISNULL(6))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("on_expiry \"escalate\" needs expires_in")));

	for (int i = 0; i < 9; i++)
	{
		nulls[i] = PG_ARGISNULL(i);
		values[i] = nulls[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	if (approvers)
		values[3] = ApCStringArrayDatum(approvers, n_approvers);	/* numbered from 1 */
	nulls[4] = false;
	values[4] = Int32GetDatum(required);
	nulls[7] = false;
	values[7] = CStringGetTextDatum(on_expiry);
	nulls[8] = false;
	values[8] = BoolGetDatum(PG_ARGISNULL(8) ? false : PG_GETARG_BOOL(8));

	ApBegin(&call);
	ApRequireTenant(&call.caller, tenant, "set policies");
	ApExec(&sql, values, nulls, 0);
	ApEnd(&call);
	PG_RETURN_VOID();
}

/* Find the most specific policy: tenant beats resource_type beats kind. */
void
ApPolicyLookup(const char *tenant, const char *resource_type, const char *kind,
			 PolicyMatch *pm)
{
	static const ApStmt sql = {
		"SELECT approvers, required_approvals, auto_approve_below, expires_in, "
		"on_expiry, allow_self_approval FROM approvals.policies "
		"WHERE (tenant IS NULL OR tenant = $1) "
		"AND (resource_type IS NULL OR resource_type = $2) "
		"AND (kind IS NULL OR kind = $3) "
		"ORDER BY tenant IS NULL, resource_type IS NULL, kind IS NULL LIMIT 1",
		3, {TEXTOID, TEXTOID, TEXTOID}
	};
	enum
	{
		P_APPROVERS = 1, P_REQUIRED_APPROVALS, P_AUTO_APPROVE_BELOW, P_EXPIRES_IN, P_ON_EXPIRY,
		P_ALLOW_SELF_APPROVAL
	};
	Datum		values[3];
	bool		nulls[3] = {tenant == NULL, false, false};
	bool		isnull;

	values[0] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	values[1] = CStringGetTextDatum(resource_type);
	values[2] = CStringGetTextDatum(kind);
	memset(pm, 0, sizeof(*pm));
	if (ApExec(&sql, values, nulls, 1) == 0)
	{
		pm->approvers_null = pm->auto_approve_null = pm->expires_in_null = true;
		pm->required_approvals = 1;
		pm->on_expiry = "expire";
		return;
	}
	pm->found = true;
	pm->approvers = ApGetDatum(0, P_APPROVERS, &pm->approvers_null);
	pm->required_approvals = DatumGetInt32(ApGetDatum(0, P_REQUIRED_APPROVALS, &isnull));
	pm->auto_approve_below = ApGetDatum(0, P_AUTO_APPROVE_BELOW, &pm->auto_approve_null);
	pm->expires_in = ApGetDatum(0, P_EXPIRES_IN, &pm->expires_in_null);
	pm->on_expiry = ApGetCString(0, P_ON_EXPIRY);
	pm->allow_self_approval = DatumGetBool(ApGetDatum(0, P_ALLOW_SELF_APPROVAL, &isnull));
}

/* ------------------------------------------------------------------------
 * Routes (of policies and of claims)
 * ------------------------------------------------------------------------ */

static int
CompareApprovers(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * 22023/22001 unless approvers is a non-empty list of at most AP_MAX_APPROVERS
 * distinct actor ids.
 */
void
ApCheckApprovers(char **approvers, int n)
{
	char	  **sorted;

	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("approvers must not be empty"),
				 errhint("Pass NULL for a claim without a route.")));
	if (n > AP_MAX_APPROVERS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("approvers lists %d actors; the limit is %d", n, AP_MAX_APPROVERS)));
	for (int i = 0; i < n; i++)
	{
		if (approvers[i] == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("approvers must not contain NULL")));
		ApCheckNotEmpty("approver", approvers[i]);
		ApCheckLength("approver", approvers[i], AP_MAX_ACTOR);
	}
	sorted = palloc(sizeof(char *) * n);
	memcpy(sorted, approvers, sizeof(char *) * n);
	qsort(sorted, n, sizeof(char *), CompareApprovers);
	for (int i = 1; i < n; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("approvers lists \"%s\" twice", sorted[i])));
	pfree(sorted);
}

/* 22023 unless 1 <= required <= n_approvers (when there is a route). */
void
ApCheckRequiredApprovals(int required, bool has_route, int n_approvers)
{
	if (required < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("required_approvals is %d; it must be at least 1", required)));
	if (has_route && required > n_approvers)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("required_approvals is %d; the route has only %d approvers",
						required, n_approvers)));
}
