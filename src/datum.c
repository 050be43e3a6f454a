/*
 * datum.c
 *		Values between C and SQL: text[] to and from C strings, hash tables keyed
 *		by strings of any length, new ids, and the fingerprint of a call's
 *		arguments that an idempotency key remembers.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/hashfn.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "approvals.h"

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

/*
 * The tenant's routing key: the first byte of SHA-256 of its name in UTF-8
 * (a NULL tenant hashes as the empty string).  Ids carry it so that a router in front
 * of several nodes (approvals_router) finds the partition of an id without a
 * lookup; its SQL twin is approvals_router.tenant_key().
 */
uint8
ApTenantKey(const char *tenant)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	/* UTF-8 whatever the database's encoding: the router hashes the same bytes */
	const char *s = tenant ? pg_server_to_any(tenant, strlen(tenant), PG_UTF8) : "";

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) s, strlen(s)) < 0 ||
		pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256");
	pg_cryptohash_free(ctx);
	return digest[0];
}

/* n bytes of strong randomness, or an error. */
static void
ApRandomBytes(uint8 *bytes, int n)
{
	if (!pg_strong_random(bytes, n))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random id")));
}

/*
 * prefix + 16 lowercase hex characters: the tenant's routing key (2), then
 * 56 bits of strong randomness (14).
 */
char *
ApNewId(const char *prefix, const char *tenant)
{
	uint8		bytes[8];
	StringInfoData buf;

	bytes[0] = ApTenantKey(tenant);
	ApRandomBytes(bytes + 1, sizeof(bytes) - 1);
	initStringInfo(&buf);
	appendStringInfoString(&buf, prefix);
	for (int i = 0; i < (int) sizeof(bytes); i++)
		appendStringInfo(&buf, "%02x", bytes[i]);
	return buf.data;
}

/* A version 4 UUID whose first byte is the tenant's routing key (a batch's tracking_id). */
char *
ApNewTrackingId(const char *tenant)
{
	uint8		b[16];

	b[0] = ApTenantKey(tenant);
	ApRandomBytes(b + 1, sizeof(b) - 1);
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
	return psprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
					b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
					b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
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

/*
 * The number of elements of an array Datum, read from its header: a limit is
 * checked with it before the elements are read, so that an oversized argument
 * is refused without costing memory.
 */
int64
ApArrayLength(Datum array)
{
	ArrayType  *arr = DatumGetArrayTypeP(array);

	return ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
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

/* Is the interval longer than limit (an interval literal such as "100 years")? */
bool
ApIntervalOver(Datum interval, const char *limit)
{
	Datum		max = DirectFunctionCall3(interval_in, CStringGetDatum(limit),
										  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));

	return DatumGetBool(DirectFunctionCall2(interval_gt, interval, max));
}
