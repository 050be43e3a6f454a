/*
 * tenant.c
 *		Tenants: who may see and act on which tenant (grants to roles, and the
 *		membership rule of call.c), grant_tenant / revoke_tenant, and the two
 *		functions the row-level security policies call.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/syscache.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_grant_tenant);
PG_FUNCTION_INFO_V1(approvals_revoke_tenant);
PG_FUNCTION_INFO_V1(approvals_sees_all_tenants);
PG_FUNCTION_INFO_V1(approvals_visible_tenants);

/*
 * May the caller see and act on this tenant?  NULL tenants are open to all.
 * Must be called while connected to SPI and switched to the owner.
 */
bool
ApTenantAllowed(const ApprovalsCaller *caller, const char *tenant)
{
	static const ApStmt sql = {
		"SELECT member FROM approvals.tenant_grants WHERE tenant = $1",
		1, {TEXTOID}
	};
	Datum		values[1];
	bool		nulls[1] = {false};
	uint64		n;

	if (tenant == NULL || caller->sees_all)
		return true;

	values[0] = CStringGetTextDatum(tenant);
	n = ApExec(&sql, values, nulls, 0);
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
	static const ApStmt sql = {
		"SELECT DISTINCT tenant, member FROM approvals.tenant_grants ORDER BY tenant",
		0, {InvalidOid}
	};
	enum
	{
		G_TENANT = 1, G_MEMBER
	};
	char	  **tenants;
	int			n = 0;
	int			rows;

	rows = ApExec(&sql, NULL, NULL, 0);
	tenants = palloc(sizeof(char *) * Max(rows, 1));
	for (int i = 0; i < rows; i++)
	{
		bool		isnull;
		Oid			member = DatumGetObjectId(ApGetDatum(i, G_MEMBER, &isnull));
		char	   *tenant = ApGetCString(i, G_TENANT);

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

/* Shared argument handling of grant_tenant and revoke_tenant. */
static void
TenantGrantChange(FunctionCallInfo fcinfo, const ApStmt *stmt, const char *what)
{
	Datum		values[2];
	char	   *tenant;
	ApprovalsCall call;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_ADMIN, what);
	tenant = ApRequiredCString(fcinfo, 0, "tenant");
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("member must not be null")));
	ApCheckNotEmpty("tenant", tenant);
	ApCheckLength("tenant", tenant, AP_MAX_TENANT);
	if (!SearchSysCacheExists1(AUTHOID, PG_GETARG_DATUM(1)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u does not exist", PG_GETARG_OID(1)),
				 errhint("Name an existing role; PUBLIC cannot hold a tenant grant.")));
	values[0] = CStringGetTextDatum(tenant);
	values[1] = PG_GETARG_DATUM(1);

	ApBegin(&call);
	ApExec(stmt, values, NULL, 0);
	ApEnd(&call);
}

/* approvals.grant_tenant(tenant, member) */
Datum
approvals_grant_tenant(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.tenant_grants (tenant, member) VALUES ($1, $2) "
		"ON CONFLICT DO NOTHING",
		2, {TEXTOID, OIDOID}
	};

	TenantGrantChange(fcinfo, &sql, "grant tenants");
	PG_RETURN_VOID();
}

/* approvals.revoke_tenant(tenant, member) */
Datum
approvals_revoke_tenant(PG_FUNCTION_ARGS)
{
	static const ApStmt sql = {
		"DELETE FROM approvals.tenant_grants WHERE tenant = $1 AND member = $2",
		2, {TEXTOID, OIDOID}
	};

	TenantGrantChange(fcinfo, &sql, "revoke tenants");
	PG_RETURN_VOID();
}

/* approvals.sees_all_tenants(): superuser, platform or admin. */
Datum
approvals_sees_all_tenants(PG_FUNCTION_ARGS)
{
	Oid			roleid = GetUserId();

	PG_RETURN_BOOL(ApHasRole(roleid, AP_ROLE_PLATFORM) || ApHasRole(roleid, AP_ROLE_ADMIN));
}

/* approvals.visible_tenants(): the tenants granted to the current role (or its groups). */
Datum
approvals_visible_tenants(PG_FUNCTION_ARGS)
{
	ApprovalsCall call;
	Datum		result;

	ApResolveCaller(&call.caller, NULL);
	ApBeginAnyVersion(&call);
	result = SPI_datumTransfer(ApVisibleTenants(call.caller.roleid), false, -1);
	ApEnd(&call);
	PG_RETURN_DATUM(result);
}
