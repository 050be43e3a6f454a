/*
 * json.c
 *		The JSON layer's C helpers: required members of request bodies, arrays of
 *		strings, and JSON objects built for NOTIFY payloads.  The endpoint
 *		functions themselves are SQL wrappers (sql/approvals--*.sql).
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_json_required);
PG_FUNCTION_INFO_V1(approvals_json_text_array);
PG_FUNCTION_INFO_V1(approvals_json_string);

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

/*
 * The string member key (argument 1) of the request body (argument 0), or
 * NULL when absent or JSON null (22004 when required); 22023 when it is not
 * a string.
 */
static char *
StringMember(FunctionCallInfo fcinfo, bool required, char **key)
{
	JsonbValue	vbuf;
	JsonbValue *v = BodyMember(fcinfo, key, &vbuf);

	if (v == NULL)
	{
		if (required)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("request body needs \"%s\"", *key)));
		return NULL;
	}
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" must be a JSON string", *key)));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* approvals.json_required(body, key): a required string member of a JSON body. */
Datum
approvals_json_required(PG_FUNCTION_ARGS)
{
	char	   *key;

	PG_RETURN_TEXT_P(cstring_to_text(StringMember(fcinfo, true, &key)));
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

/*
 * approvals.json_string(body, key, required, allowed): a string member of a
 * request body; NULL when absent or JSON null (22004 when required), 22023
 * when it is not a string or, with allowed, not one of those values.
 */
Datum
approvals_json_string(PG_FUNCTION_ARGS)
{
	char	   *key;
	char	   *value;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("required must not be null")));
	value = StringMember(fcinfo, PG_GETARG_BOOL(2), &key);
	if (value == NULL)
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(3))
	{
		int			n;
		char	  **allowed = ApTextArrayToCStrings(PG_GETARG_DATUM(3), &n);
		StringInfoData list;

		for (int i = 0; i < n; i++)
			if (allowed[i] && strcmp(allowed[i], value) == 0)
				PG_RETURN_TEXT_P(cstring_to_text(value));
		initStringInfo(&list);
		for (int i = 0; i < n; i++)
			appendStringInfo(&list, "%s%s", i ? ", " : "", allowed[i] ? allowed[i] : "NULL");
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid \"%s\" \"%s\"", key, value),
				 errdetail("Allowed values are: %s.", list.data)));
	}
	PG_RETURN_TEXT_P(cstring_to_text(value));
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
