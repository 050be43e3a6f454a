/*
 * policy.c
 *		Policies: set_policy, the policy that applies to a claim at submit, and
 *		the rules for a policy's expires_in.
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
	Datum		max = DirectFunctionCall3(interval_in, CStringGetDatum(AP_MAX_EXPIRES_IN),
										  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	if (in->month < 0 || in->day < 0 || in->time < 0 ||
		(in->month == 0 && in->day == 0 && in->time == 0))
		return "must be a positive interval with no negative part";
	if (DatumGetBool(DirectFunctionCall2(interval_gt, expires_in, max)))
		return "must be at most " AP_MAX_EXPIRES_IN;
	return NULL;
}

/* approvals.set_policy(...): create or replace the policy of one (tenant, resource_type, kind). */
Datum
approvals_set_policy(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"INSERT INTO approvals.policies AS p (resource_type, kind, tenant, approvers, "
		"required_approvals, auto_approve_below, expires_in, on_expiry, allow_self_approval) "
		"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
		"ON CONFLICT (tenant, resource_type, kind) DO UPDATE SET "
		"approvers = EXCLUDED.approvers, required_approvals = EXCLUDED.required_approvals, "
		"auto_approve_below = EXCLUDED.auto_approve_below, expires_in = EXCLUDED.expires_in, "
		"on_expiry = EXCLUDED.on_expiry, allow_self_approval = EXCLUDED.allow_self_approval, "
		"updated_at = now()";
	Oid			types[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTARRAYOID, INT4OID, NUMERICOID,
	INTERVALOID, TEXTOID, BOOLOID};
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
	ApExec(sql, 9, types, values, nulls, 0);
	ApEnd(&call);
	PG_RETURN_VOID();
}

/* Find the most specific policy: tenant beats resource_type beats kind. */
void
ApPolicyLookup(const char *tenant, const char *resource_type, const char *kind,
			 PolicyMatch *pm)
{
	static const char *sql =
		"SELECT approvers, required_approvals, auto_approve_below, expires_in, "
		"on_expiry, allow_self_approval FROM approvals.policies "
		"WHERE (tenant IS NULL OR tenant = $1) "
		"AND (resource_type IS NULL OR resource_type = $2) "
		"AND (kind IS NULL OR kind = $3) "
		"ORDER BY tenant IS NULL, resource_type IS NULL, kind IS NULL LIMIT 1";
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		nulls[3] = {tenant == NULL, false, false};
	bool		isnull;

	values[0] = tenant ? CStringGetTextDatum(tenant) : (Datum) 0;
	values[1] = CStringGetTextDatum(resource_type);
	values[2] = CStringGetTextDatum(kind);
	memset(pm, 0, sizeof(*pm));
	if (ApExec(sql, 3, types, values, nulls, 1) == 0)
	{
		pm->approvers_null = pm->auto_approve_null = pm->expires_in_null = true;
		pm->required_approvals = 1;
		pm->on_expiry = "expire";
		return;
	}
	pm->found = true;
	pm->approvers = ApGetDatum(0, 1, &pm->approvers_null);
	pm->required_approvals = DatumGetInt32(ApGetDatum(0, 2, &isnull));
	pm->auto_approve_below = ApGetDatum(0, 3, &pm->auto_approve_null);
	pm->expires_in = ApGetDatum(0, 4, &pm->expires_in_null);
	pm->on_expiry = ApGetCString(0, 5);
	pm->allow_self_approval = DatumGetBool(ApGetDatum(0, 6, &isnull));
}
