/*
 * seal.c
 *		The tamper-evident audit chain: seal_audit, verify_audit, audit_head.
 *
 *		A seal covers a contiguous range of event ids and holds the SHA-256 of
 *		the previous seal's hash and of every event of the range in id order,
 *		each event written as one line of PostgreSQL's COPY text format (the
 *		README gives the exact encoding, so that an auditor can recompute the
 *		chain outside the database).  Per event it also keeps the event id and
 *		the first 8 bytes of the SHA-256 of its line, so that verify_audit can
 *		name the first event that was changed, deleted or inserted.
 *
 *		The hard part is where a seal may end.  An event id is drawn when the
 *		event is inserted but becomes visible when its transaction commits, so
 *		a range must not end above an id that a running transaction may still
 *		commit.  Every transaction that inserts events holds RowExclusiveLock
 *		on approvals.events from before it draws its first id until it ends.
 *		So: read the last id drawn (V), then list the transactions holding
 *		that lock (GetLockConflicts; it acquires nothing, so no writer ever
 *		waits).  Any id <= V belongs to a transaction that has ended or is in
 *		that list.  When the list is empty, everything up to V can be sealed
 *		now; otherwise V and the list are kept (audit_seal_pending) and a later
 *		call seals up to V once every transaction in the list has ended
 *		(VirtualXactLock without waiting).  A candidate waits only for the
 *		transactions that existed when it was taken, so sealing always makes
 *		progress, and never holds a snapshot while it waits.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/memutils.h"

#include "approvals.h"

PG_FUNCTION_INFO_V1(approvals_seal_audit);
PG_FUNCTION_INFO_V1(approvals_verify_audit);

/* Events per seal at most (a seal's digests stay under 160 kB) */
#define SEAL_MAX_EVENTS		10000

/* Events read per cursor fetch */
#define SEAL_FETCH			1000

/* Bytes per event in a seal's digests: the id, then the first 8 bytes of its line's SHA-256 */
#define DIGEST_ENTRY		16

/* The hash before the first seal */
#define GENESIS_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"

/*
 * The canonical columns of an event, in order, as text: what a seal hashes
 * (the README's "\copy (SELECT …)" is this list).
 */
#define EVENT_LINE_COLUMNS \
	"e.id::text, e.claim_id, e.batch_id, e.tenant, e.actor, e.action, e.from_status, " \
	"e.to_status, e.comment, e.snapshot_hash, " \
	"to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), e.on_behalf_of"
#define EVENT_LINE_NCOLS	12

/* The events of an id range, canonical columns, in id order. */
static const ApStmt range_sql = {
	"SELECT " EVENT_LINE_COLUMNS " FROM approvals.events e WHERE e.id >= $1 AND e.id <= $2 "
	"ORDER BY e.id",
	2, {INT8OID, INT8OID}
};

/* Append one value in COPY text format (NULL is \N; \, tab, newline … escaped). */
static void
AppendCopyText(StringInfo line, const char *value)
{
	if (value == NULL)
	{
		appendStringInfoString(line, "\\N");
		return;
	}
	for (const char *p = value; *p; p++)
	{
		switch (*p)
		{
			case '\\':
				appendStringInfoString(line, "\\\\");
				break;
			case '\b':
				appendStringInfoString(line, "\\b");
				break;
			case '\f':
				appendStringInfoString(line, "\\f");
				break;
			case '\n':
				appendStringInfoString(line, "\\n");
				break;
			case '\r':
				appendStringInfoString(line, "\\r");
				break;
			case '\t':
				appendStringInfoString(line, "\\t");
				break;
			case '\v':
				appendStringInfoString(line, "\\v");
				break;
			default:
				appendStringInfoChar(line, *p);
		}
	}
}

/* Row r of a fetched page as its canonical line (tab-separated, newline-terminated). */
static void
EventLine(StringInfo line, SPITupleTable *page, uint64 r)
{
	resetStringInfo(line);
	for (int c = 1; c <= EVENT_LINE_NCOLS; c++)
	{
		if (c > 1)
			appendStringInfoChar(line, '\t');
		AppendCopyText(line, SPI_getvalue(page->vals[r], page->tupdesc, c));
	}
	appendStringInfoChar(line, '\n');
}

/* A SHA-256 context (PostgreSQL's own implementation), or an error. */
static pg_cryptohash_ctx *
Sha256Create(void)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not initialize a SHA-256 context");
	return ctx;
}

static void
Sha256Update(pg_cryptohash_ctx *ctx, const char *data, size_t len)
{
	if (pg_cryptohash_update(ctx, (const uint8 *) data, len) < 0)
		elog(ERROR, "could not compute SHA-256");
}

/* Finish ctx into 64 lowercase hex characters (and the raw digest, when wanted). */
static void
Sha256Final(pg_cryptohash_ctx *ctx, char *hex, uint8 *raw)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	static const char xd[] = "0123456789abcdef";

	if (pg_cryptohash_final(ctx, digest, sizeof(digest)) < 0)
		elog(ERROR, "could not compute SHA-256");
	if (raw)
		memcpy(raw, digest, sizeof(digest));
	if (hex)
	{
		for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		{
			hex[2 * i] = xd[digest[i] >> 4];
			hex[2 * i + 1] = xd[digest[i] & 15];
		}
		hex[2 * PG_SHA256_DIGEST_LENGTH] = '\0';
	}
}

/* The digest entry of one event: its id (big-endian), 8 bytes of its line's SHA-256. */
static void
DigestEntry(pg_cryptohash_ctx *line_ctx, int64 id, const StringInfo line, uint8 *entry)
{
	uint8		raw[PG_SHA256_DIGEST_LENGTH];

	if (pg_cryptohash_init(line_ctx) < 0)
		elog(ERROR, "could not initialize a SHA-256 context");
	Sha256Update(line_ctx, line->data, line->len);
	Sha256Final(line_ctx, NULL, raw);
	for (int b = 0; b < 8; b++)
		entry[b] = (uint8) ((uint64) id >> (56 - 8 * b));
	memcpy(entry + 8, raw, 8);
}

/* The id in a digest entry. */
static int64
DigestEntryId(const uint8 *entry)
{
	uint64		id = 0;

	for (int b = 0; b < 8; b++)
		id = (id << 8) | entry[b];
	return (int64) id;
}

/* ------------------------------------------------------------------------
 * seal_audit
 * ------------------------------------------------------------------------ */

/* One seal being built. */
typedef struct SealBuild
{
	pg_cryptohash_ctx *ctx;		/* the seal's hash */
	pg_cryptohash_ctx *line_ctx;	/* each line's digest */
	StringInfoData digests;
	int64		first_event;
	int64		last_event;
	int			count;
	char		prev_hash[2 * PG_SHA256_DIGEST_LENGTH + 1];
} SealBuild;

/* Start a seal of the range that begins at first_event, after prev_hash. */
static void
SealStart(SealBuild *sb, int64 first_event, const char *prev_hash)
{
	sb->ctx = Sha256Create();
	sb->first_event = first_event;
	sb->last_event = first_event - 1;
	sb->count = 0;
	strlcpy(sb->prev_hash, prev_hash, sizeof(sb->prev_hash));
	resetStringInfo(&sb->digests);
	Sha256Update(sb->ctx, sb->prev_hash, strlen(sb->prev_hash));
	Sha256Update(sb->ctx, "\n", 1);
}

/* Write the seal (its range ends at its last event); its hash becomes prev_hash. */
static void
SealWrite(SealBuild *sb, int64 seal_id)
{
	static const ApStmt sql = {
		"INSERT INTO approvals.audit_seals (id, first_event, last_event, event_count, "
		"prev_hash, hash, digests) VALUES ($1, $2, $3, $4, $5, $6, $7)",
		7, {INT8OID, INT8OID, INT8OID, INT4OID, TEXTOID, TEXTOID, BYTEAOID}
	};
	char		hash[2 * PG_SHA256_DIGEST_LENGTH + 1];
	Datum		values[7];
	bytea	   *digests;

	Sha256Final(sb->ctx, hash, NULL);
	pg_cryptohash_free(sb->ctx);
	sb->ctx = NULL;
	digests = (bytea *) palloc(VARHDRSZ + sb->digests.len);
	SET_VARSIZE(digests, VARHDRSZ + sb->digests.len);
	memcpy(VARDATA(digests), sb->digests.data, sb->digests.len);
	values[0] = Int64GetDatum(seal_id);
	values[1] = Int64GetDatum(sb->first_event);
	values[2] = Int64GetDatum(sb->last_event);
	values[3] = Int32GetDatum(sb->count);
	values[4] = CStringGetTextDatum(sb->prev_hash);
	values[5] = CStringGetTextDatum(hash);
	values[6] = PointerGetDatum(digests);
	ApExec(&sql, values, NULL, 0);
	pfree(digests);
	strlcpy(sb->prev_hash, hash, sizeof(sb->prev_hash));
}

/*
 * Seal every committed event with an id in (*last_event, upto], in seals
 * of at most SEAL_MAX_EVENTS events; advances *seal_id, *last_event and
 * prev_hash.  Returns how many events it sealed.
 */
static int64
SealRange(int64 *seal_id, int64 *last_event, char *prev_hash, int64 upto, int64 limit,
		  bool *stopped)
{
	SealBuild	sb;
	Portal		portal;
	Datum		values[2];
	StringInfoData line;
	int64		sealed = 0;
	MemoryContext caller_cxt = CurrentMemoryContext;
	MemoryContext fetch_cxt;

	*stopped = false;
	if (upto <= *last_event)
		return 0;
	initStringInfo(&line);
	initStringInfo(&sb.digests);
	sb.line_ctx = Sha256Create();
	SealStart(&sb, *last_event + 1, prev_hash);
	fetch_cxt = AllocSetContextCreate(CurrentMemoryContext, "approvals seal fetch",
									  ALLOCSET_DEFAULT_SIZES);
	values[0] = Int64GetDatum(*last_event + 1);
	values[1] = Int64GetDatum(upto);
	portal = ApCursorOpen(&range_sql, values, NULL);
	for (;;)
	{
		/* the page is kept apart: writing a seal below replaces SPI_tuptable */
		SPITupleTable *page;
		uint64		nrows;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, SEAL_FETCH);
		MemoryContextSwitchTo(caller_cxt);
		page = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
		{
			SPI_freetuptable(page);
			break;
		}
		for (uint64 r = 0; r < nrows; r++)
		{
			MemoryContext old = MemoryContextSwitchTo(fetch_cxt);
			int64		id = pg_strtoint64(SPI_getvalue(page->vals[r], page->tupdesc, 1));
			uint8		entry[DIGEST_ENTRY];

			EventLine(&line, page, r);
			MemoryContextSwitchTo(old);
			MemoryContextReset(fetch_cxt);
			Sha256Update(sb.ctx, line.data, line.len);
			DigestEntry(sb.line_ctx, id, &line, entry);
			appendBinaryStringInfo(&sb.digests, (char *) entry, DIGEST_ENTRY);
			sb.last_event = id;
			sb.count++;
			sealed++;
			if (sb.count == SEAL_MAX_EVENTS)
			{
				SealWrite(&sb, ++(*seal_id));
				*last_event = sb.last_event;
				SealStart(&sb, sb.last_event + 1, sb.prev_hash);
				/* enough for this call: the rest of the range is left for the next */
				if (limit > 0 && sealed >= limit)
				{
					*stopped = true;
					break;
				}
			}
		}
		SPI_freetuptable(page);
		if (*stopped)
			break;
	}
	SPI_cursor_close(portal);
	if (sb.count > 0 && !*stopped)
	{
		SealWrite(&sb, ++(*seal_id));
		*last_event = sb.last_event;
	}
	else
		pg_cryptohash_free(sb.ctx);
	pg_cryptohash_free(sb.line_ctx);
	strlcpy(prev_hash, sb.prev_hash, 2 * PG_SHA256_DIGEST_LENGTH + 1);
	MemoryContextDelete(fetch_cxt);
	pfree(line.data);
	pfree(sb.digests.data);
	return sealed;
}

/* Has every transaction in the list ("backend/lxid" texts) ended?  Never waits. */
static bool
VxidsEnded(Datum list)
{
	int			n;
	char	  **items = ApTextArrayToCStrings(list, &n);

	for (int i = 0; i < n; i++)
	{
		VirtualTransactionId vxid;
		int			backend;
		unsigned int lxid;

		if (items[i] == NULL || sscanf(items[i], "%d/%u", &backend, &lxid) != 2)
			continue;
		vxid.backendId = backend;
		vxid.localTransactionId = lxid;
		if (!VirtualXactLock(vxid, false))
			return false;
	}
	return true;
}

/* The transactions that may still commit event ids (see the file comment), as texts. */
static Datum
EventWriters(Oid events_relid)
{
	LOCKTAG		tag;
	VirtualTransactionId *vxids;
	int			n;
	char	  **items;
	int			k = 0;

	SET_LOCKTAG_RELATION(tag, MyDatabaseId, events_relid);
	vxids = GetLockConflicts(&tag, ShareLock, &n);
	items = palloc(sizeof(char *) * Max(n, 1));
	for (int i = 0; i < n && VirtualTransactionIdIsValid(vxids[i]); i++)
		items[k++] = psprintf("%d/%u", vxids[i].backendId, vxids[i].localTransactionId);
	return ApCStringArrayDatum(items, k);
}

/*
 * Seal what can be sealed now; returns how many events were sealed.  Called
 * inside ApBegin (SPI connected, as the owner).
 */
static int64
SealAudit(int64 limit, bool *more)
{
	static const ApStmt state_sql = {
		"SELECT last_event, waiting_for, 'approvals.events'::regclass::oid "
		"FROM approvals.audit_seal_pending FOR UPDATE",
		0, {InvalidOid}
	};
	enum
	{
		S_CAND = 1, S_WAITING, S_EVENTS
	};
	/* read after the lock: a sealer that waited for another sees its seals */
	static const ApStmt last_sql = {
		"SELECT id, last_event, hash FROM approvals.audit_seals ORDER BY id DESC LIMIT 1",
		0, {InvalidOid}
	};
	enum
	{
		L_SEAL_ID = 1, L_LAST_EVENT, L_HASH
	};
	static const ApStmt drawn_sql = {
		"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
		"FROM approvals.events_id_seq",
		0, {InvalidOid}
	};
	static const ApStmt pending_sql = {
		"UPDATE approvals.audit_seal_pending SET last_event = $1, waiting_for = $2",
		2, {INT8OID, TEXTARRAYOID}
	};
	bool		isnull;
	bool		cand_null;
	bool		waiting_null;
	int64		cand;
	Datum		waiting;
	Oid			events_relid;
	int64		seal_id;
	int64		last_event;
	char		prev_hash[2 * PG_SHA256_DIGEST_LENGTH + 1];
	int64		sealed = 0;
	int64		drawn;
	Datum		writers;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	int			n_writers;
	bool		stopped;

	/* one sealer at a time: the pending row is locked until commit */
	if (ApExec(&state_sql, NULL, NULL, 1) != 1)
		elog(ERROR, "approvals.audit_seal_pending has no row");
	cand = DatumGetInt64(ApGetDatum(0, S_CAND, &cand_null));
	waiting = ApGetDatum(0, S_WAITING, &waiting_null);
	if (!waiting_null)
		waiting = datumCopy(waiting, false, -1);
	events_relid = DatumGetObjectId(ApGetDatum(0, S_EVENTS, &isnull));
	if (ApExec(&last_sql, NULL, NULL, 1) == 0)
	{
		seal_id = 0;
		last_event = 0;
		strlcpy(prev_hash, GENESIS_HASH, sizeof(prev_hash));
	}
	else
	{
		seal_id = DatumGetInt64(ApGetDatum(0, L_SEAL_ID, &isnull));
		last_event = DatumGetInt64(ApGetDatum(0, L_LAST_EVENT, &isnull));
		strlcpy(prev_hash, ApGetCString(0, L_HASH), sizeof(prev_hash));
	}

	*more = false;
	/* a candidate kept earlier: sealable once the transactions it waited for ended */
	if (!cand_null)
	{
		if (!waiting_null && !VxidsEnded(waiting))
			return 0;
		sealed += SealRange(&seal_id, &last_event, prev_hash, cand, limit, &stopped);
		if (stopped)
		{
			/* the candidate stays (its transactions have ended): the next call goes on */
			*more = true;
			return sealed;
		}
	}

	/* a new candidate: the last id drawn, then who may still commit ids up to it */
	ApExec(&drawn_sql, NULL, NULL, 1);
	drawn = DatumGetInt64(ApGetDatum(0, 1, &isnull));
	writers = EventWriters(events_relid);
	(void) ApTextArrayToCStrings(writers, &n_writers);
	if (drawn > last_event && n_writers == 0)
	{
		/* nobody can add an id up to drawn any more: a fresh snapshot sees them all */
		sealed += SealRange(&seal_id, &last_event, prev_hash, drawn, limit, &stopped);
		if (stopped)
		{
			/* kept as a candidate that waits for nobody: the next call goes on */
			values[0] = Int64GetDatum(drawn);
			nulls[1] = true;
			*more = true;
		}
		else
			nulls[0] = nulls[1] = true;
	}
	else if (drawn > last_event)
	{
		values[0] = Int64GetDatum(drawn);
		values[1] = writers;
	}
	else
		nulls[0] = nulls[1] = true;
	ApExec(&pending_sql, values, nulls, 0);
	return sealed;
}

/* approvals.seal_audit(): seal every event that can no longer change (admin). */
Datum
approvals_seal_audit(PG_FUNCTION_ARGS)
{
	ApprovalsCall call;
	int64		sealed;
	bool		more;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_ADMIN, "seal the audit log");
	/* a seal must see every event committed before it; a transaction snapshot would not */
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("seal_audit cannot run in a %s transaction",
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errhint("Call it outside a transaction block, or in a READ COMMITTED transaction.")));
	ApBegin(&call);
	sealed = SealAudit(0, &more);
	ApEnd(&call);
	PG_RETURN_INT64(sealed);
}

/*
 * The scheduler's sealing: at most about limit events per call, so that a
 * backlog (a million events a batch just wrote) is sealed over several turns
 * of its loop, between which it goes on starting batches and sending
 * notifications.  True when more is left.  SPI connected, in the safe bracket.
 */
bool
ApSealAuditSome(int64 limit)
{
	bool		more;

	(void) SealAudit(limit, &more);
	return more;
}

/* ------------------------------------------------------------------------
 * verify_audit
 * ------------------------------------------------------------------------ */

/* What verifying one seal found. */
typedef struct SealCheck
{
	bool		ok;
	int64		first_bad_event;
	bool		first_bad_null;
	char	   *detail;
} SealCheck;

/*
 * Note a problem (the first one found is the one reported: only its detail is
 * formatted, so a range with millions of bad events costs no memory).
 */
static void
pg_attribute_printf(4, 5)
SealBad(SealCheck *sc, int64 event, bool has_event, const char *fmt,...)
{
	StringInfoData detail;

	if (!sc->ok)
		return;
	sc->ok = false;
	sc->first_bad_null = !has_event;
	sc->first_bad_event = event;
	initStringInfo(&detail);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&detail, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&detail, needed);
	}
	sc->detail = detail.data;
}

/*
 * Recompute one seal from the events of its range and compare, event by
 * event (digests), then as a whole (hash).
 */
static void
VerifySeal(int64 seal_id, int64 first_event, int64 last_event, int event_count,
		   const char *prev_hash, const char *hash, bytea *digests, SealCheck *sc)
{
	pg_cryptohash_ctx *ctx = Sha256Create();
	pg_cryptohash_ctx *line_ctx = Sha256Create();
	const uint8 *want = (const uint8 *) VARDATA_ANY(digests);
	int			n_want = VARSIZE_ANY_EXHDR(digests) / DIGEST_ENTRY;
	int			k = 0;
	int			seen = 0;
	Portal		portal;
	Datum		values[2];
	StringInfoData line;
	char		got[2 * PG_SHA256_DIGEST_LENGTH + 1];
	MemoryContext caller_cxt = CurrentMemoryContext;
	/* what reading one event allocates, freed after each */
	MemoryContext row_cxt = AllocSetContextCreate(caller_cxt, "approvals verify event",
												  ALLOCSET_SMALL_SIZES);

	initStringInfo(&line);
	Sha256Update(ctx, prev_hash, strlen(prev_hash));
	Sha256Update(ctx, "\n", 1);
	values[0] = Int64GetDatum(first_event);
	values[1] = Int64GetDatum(last_event);
	portal = ApCursorOpen(&range_sql, values, NULL);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, SEAL_FETCH);
		MemoryContextSwitchTo(caller_cxt);
		if (SPI_processed == 0)
			break;
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			MemoryContext old = MemoryContextSwitchTo(row_cxt);
			int64		id = pg_strtoint64(SPI_getvalue(SPI_tuptable->vals[r],
														SPI_tuptable->tupdesc, 1));
			uint8		entry[DIGEST_ENTRY];

			EventLine(&line, SPI_tuptable, r);
			MemoryContextSwitchTo(old);
			MemoryContextReset(row_cxt);
			Sha256Update(ctx, line.data, line.len);
			DigestEntry(line_ctx, id, &line, entry);
			seen++;
			/* sealed events before this one that are gone */
			while (k < n_want && DigestEntryId(want + k * DIGEST_ENTRY) < id)
			{
				SealBad(sc, DigestEntryId(want + k * DIGEST_ENTRY), true,
						"event %lld of seal %lld was deleted",
						(long long) DigestEntryId(want + k * DIGEST_ENTRY),
						(long long) seal_id);
				k++;
			}
			if (k < n_want && DigestEntryId(want + k * DIGEST_ENTRY) == id)
			{
				if (memcmp(want + k * DIGEST_ENTRY, entry, DIGEST_ENTRY) != 0)
					SealBad(sc, id, true,
							"event %lld of seal %lld was changed", (long long) id,
							(long long) seal_id);
				k++;
			}
			else
				SealBad(sc, id, true,
						"event %lld was inserted inside the range of seal %lld (events %lld to %lld)",
						(long long) id, (long long) seal_id,
						(long long) first_event, (long long) last_event);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_freetuptable(SPI_tuptable);
	SPI_cursor_close(portal);
	if (k < n_want)
		SealBad(sc, DigestEntryId(want + k * DIGEST_ENTRY), true,
				"event %lld of seal %lld was deleted",
				(long long) DigestEntryId(want + k * DIGEST_ENTRY), (long long) seal_id);
	Sha256Final(ctx, got, NULL);
	pg_cryptohash_free(ctx);
	pg_cryptohash_free(line_ctx);
	pfree(line.data);
	MemoryContextDelete(row_cxt);
	if (seen != event_count && sc->ok)
		SealBad(sc, 0, false,
				"seal %lld was changed: it counts %d events, its range holds %d",
				(long long) seal_id, event_count, seen);
	if (strcmp(got, hash) != 0)
		SealBad(sc, 0, false,
				"seal %lld was changed: its hash does not match its events",
				(long long) seal_id);
}

/*
 * approvals.verify_audit(from_seal, to_seal): recompute every seal of the
 * range (all by default) and the chain between them; one row per seal.
 */
Datum
approvals_verify_audit(PG_FUNCTION_ARGS)
{
	static const ApStmt seals_sql = {
		"SELECT id, first_event, last_event, event_count, prev_hash, hash, digests "
		"FROM approvals.audit_seals WHERE id >= $1 AND id <= $2 ORDER BY id",
		2, {INT8OID, INT8OID}
	};
	enum
	{
		V_ID = 1, V_FIRST, V_LAST, V_COUNT, V_PREV, V_HASH, V_DIGESTS
	};
	static const ApStmt before_sql = {
		"SELECT id, last_event, hash FROM approvals.audit_seals WHERE id < $1 "
		"ORDER BY id DESC LIMIT 1",
		1, {INT8OID}
	};
	ReturnSetInfo *rsinfo;
	ApprovalsCall call;
	int64		from = PG_ARGISNULL(0) ? 1 : PG_GETARG_INT64(0);
	int64		to = PG_ARGISNULL(1) ? PG_INT64_MAX : PG_GETARG_INT64(1);
	int64		prev_id = 0;
	int64		prev_last = 0;
	char	   *prev_hash = GENESIS_HASH;
	char	   *prev_hash_copy = NULL;	/* prev_hash when this loop copied it */
	Datum		values[2];
	Portal		portal;
	MemoryContext caller_cxt;
	MemoryContext seal_cxt;

	ApResolveCaller(&call.caller, NULL);
	ApRequireRole(call.caller.roleid, AP_ROLE_READER, "verify the audit log");
	if (from < 1)
		from = 1;
	InitMaterializedSRF(fcinfo, 0);
	rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	ApBegin(&call);
	caller_cxt = CurrentMemoryContext;
	/* the seal before the range: where the chain comes from */
	values[0] = Int64GetDatum(from);
	if (ApExec(&before_sql, values, NULL, 1) == 1)
	{
		bool		isnull;

		prev_id = DatumGetInt64(ApGetDatum(0, 1, &isnull));
		prev_last = DatumGetInt64(ApGetDatum(0, 2, &isnull));
		prev_hash = ApGetCString(0, 3);
	}
	seal_cxt = AllocSetContextCreate(caller_cxt, "approvals verify seal", ALLOCSET_DEFAULT_SIZES);
	values[0] = Int64GetDatum(from);
	values[1] = Int64GetDatum(to);
	portal = ApCursorOpen(&seals_sql, values, NULL);
	for (;;)
	{
		HeapTuple	row;
		TupleDesc	desc;
		bool		isnull;
		int64		id;
		int64		first_event;
		int64		last_event;
		SealCheck	sc = {true, 0, true, NULL};
		char	   *hash;
		Datum		out[4];
		bool		outnull[4] = {false, false, false, false};

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, 1);
		MemoryContextSwitchTo(caller_cxt);
		if (SPI_processed == 0)
			break;
		MemoryContextReset(seal_cxt);
		MemoryContextSwitchTo(seal_cxt);
		row = heap_copytuple(SPI_tuptable->vals[0]);	/* in seal_cxt, not SPI's */
		desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
		SPI_freetuptable(SPI_tuptable);
		id = DatumGetInt64(heap_getattr(row, V_ID, desc, &isnull));
		first_event = DatumGetInt64(heap_getattr(row, V_FIRST, desc, &isnull));
		last_event = DatumGetInt64(heap_getattr(row, V_LAST, desc, &isnull));
		hash = TextDatumGetCString(heap_getattr(row, V_HASH, desc, &isnull));

		/* the chain: consecutive ids, contiguous ranges, each after the previous hash */
		if (id != prev_id + 1)
			SealBad(&sc, 0, false,
					"seal %lld is missing: seal %lld follows seal %lld",
					(long long) (prev_id + 1), (long long) id, (long long) prev_id);
		else if (first_event != prev_last + 1)
			SealBad(&sc, prev_last + 1, true,
					"seal %lld starts at event %lld, not %lld where seal %lld ended",
					(long long) id, (long long) first_event,
					(long long) (prev_last + 1), (long long) prev_id);
		else if (strcmp(TextDatumGetCString(heap_getattr(row, V_PREV, desc, &isnull)),
						prev_hash) != 0)
			SealBad(&sc, 0, false,
					"the chain is broken at seal %lld: its prev_hash is not the hash of seal %lld",
					(long long) id, (long long) prev_id);
		VerifySeal(id, first_event, last_event,
				   DatumGetInt32(heap_getattr(row, V_COUNT, desc, &isnull)),
				   TextDatumGetCString(heap_getattr(row, V_PREV, desc, &isnull)), hash,
				   DatumGetByteaPP(heap_getattr(row, V_DIGESTS, desc, &isnull)), &sc);

		MemoryContextSwitchTo(caller_cxt);
		out[0] = Int64GetDatum(id);
		out[1] = BoolGetDatum(sc.ok);
		out[2] = Int64GetDatum(sc.first_bad_event);
		outnull[2] = sc.ok || sc.first_bad_null;
		outnull[3] = sc.ok;
		out[3] = sc.ok ? (Datum) 0 : CStringGetTextDatum(sc.detail);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, out, outnull);
		prev_id = id;
		prev_last = last_event;
		if (prev_hash_copy)
			pfree(prev_hash_copy);
		prev_hash = prev_hash_copy = MemoryContextStrdup(caller_cxt, hash);
	}
	SPI_freetuptable(SPI_tuptable);
	SPI_cursor_close(portal);
	MemoryContextDelete(seal_cxt);
	ApEnd(&call);
	return (Datum) 0;
}
