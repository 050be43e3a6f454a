/*
 * policy.c
 *		Policies, handlers, tenant grants and visibility, the append-only
 *		trigger of the audit log, and small helpers of the JSON layer.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "lib/stringinfo.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "storage/lmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/syscache.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_set_policy);
PG_FUNCTION_INFO_V1(approvals_set_handler);
PG_FUNCTION_INFO_V1(approvals_grant_tenant);
PG_FUNCTION_INFO_V1(approvals_revoke_tenant);
PG_FUNCTION_INFO_V1(approvals_sees_all_tenants);
PG_FUNCTION_INFO_V1(approvals_visible_tenants);
PG_FUNCTION_INFO_V1(approvals_events_append_only);
PG_FUNCTION_INFO_V1(approvals_json_required);
PG_FUNCTION_INFO_V1(approvals_json_text_array);

static const char *const expiry_actions[] = {"expire", "escalate", NULL};

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
	static const char *upsert_sql =
		"INSERT INTO approvals.handlers (resource_type, handler, search_path) "
		"VALUES ($1, $2, $3) "
		"ON CONFLICT (resource_type) DO UPDATE SET handler = EXCLUDED.handler, "
		"search_path = EXCLUDED.search_path, created_at = now()";
	static const char *delete_sql =
		"DELETE FROM approvals.handlers WHERE resource_type = $1";
	Oid			types[3] = {TEXTOID, REGPROCEDUREOID, TEXTOID};
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
		ApExec(delete_sql, 1, types, values, NULL, 0);
	else
		ApExec(upsert_sql, 3, types, values, NULL, 0);
	ApEnd(&call);
	PG_RETURN_VOID();
}

/* Shared argument handling of grant_tenant and revoke_tenant. */
static void
TenantGrantChange(FunctionCallInfo fcinfo, const char *sql, const char *what)
{
	Oid			types[2] = {TEXTOID, OIDOID};
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
	ApExec(sql, 2, types, values, NULL, 0);
	ApEnd(&call);
}

/* approvals.grant_tenant(tenant, member) */
Datum
approvals_grant_tenant(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"INSERT INTO approvals.tenant_grants (tenant, member) VALUES ($1, $2) "
		"ON CONFLICT DO NOTHING";

	TenantGrantChange(fcinfo, sql, "grant tenants");
	PG_RETURN_VOID();
}

/* approvals.revoke_tenant(tenant, member) */
Datum
approvals_revoke_tenant(PG_FUNCTION_ARGS)
{
	static const char *sql =
		"DELETE FROM approvals.tenant_grants WHERE tenant = $1 AND member = $2";

	TenantGrantChange(fcinfo, sql, "revoke tenants");
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

/* Trigger on approvals.events: the audit log is append-only. */
Datum
approvals_events_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("approvals.events_append_only() must be called as a trigger")));
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "DELETE";
	else if (TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		op = "TRUNCATE";
	else
		op = "this operation";
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("approvals.events is append-only"),
			 errdetail("%s is not allowed on the audit log.", op)));
	PG_RETURN_NULL();
}

/*
 * The member key of the JSON object request body (argument 0; key is
 * argument 1), or NULL when absent or JSON null.
 */
static JsonbValue *
BodyMember(FunctionCallInfo fcinfo, char **key, JsonbValue *vbuf)
{
	Jsonb	   *body;
	JsonbValue *v;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("request body must not be null")));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key must not be null")));
	body = PG_GETARG_JSONB_P(0);
	*key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!JB_ROOT_IS_OBJECT(body))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("request body must be a JSON object")));
	v = getKeyJsonValueFromContainer(&body->root, *key, strlen(*key), vbuf);
	return (v == NULL || v->type == jbvNull) ? NULL : v;
}

/* approvals.json_required(body, key): a required string member of a JSON body. */
Datum
approvals_json_required(PG_FUNCTION_ARGS)
{
	char	   *key;
	JsonbValue	vbuf;
	JsonbValue *v = BodyMember(fcinfo, &key, &vbuf);

	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("request body needs \"%s\"", key)));
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" must be a JSON string", key)));
	PG_RETURN_TEXT_P(cstring_to_text_with_len(v->val.string.val, v->val.string.len));
}

/*
 * approvals.json_text_array(body, key, required): a JSON array of strings
 * in a request body as text[]; NULL when absent and not required.
 */
Datum
approvals_json_text_array(PG_FUNCTION_ARGS)
{
	char	   *key;
	bool		required;
	JsonbValue	vbuf;
	JsonbValue *v;
	JsonbContainer *arr;
	int			n;
	char	  **items;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("required must not be null")));
	required = PG_GETARG_BOOL(2);
	v = BodyMember(fcinfo, &key, &vbuf);
	if (v == NULL)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("request body needs \"%s\"", key)));
		PG_RETURN_NULL();
	}
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" must be a JSON array of strings", key)));
	arr = v->val.binary.data;
	n = JsonContainerSize(arr);
	items = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		JsonbValue *e = getIthJsonbValueFromContainer(arr, i);

		if (e->type == jbvNull)
			items[i] = NULL;
		else if (e->type == jbvString)
			items[i] = pnstrdup(e->val.string.val, e->val.string.len);
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("\"%s\" must be a JSON array of strings", key)));
	}
	PG_RETURN_DATUM(ApCStringArrayDatum(items, n));
}
