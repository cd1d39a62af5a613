/*
 * store_dump.c - the store as a whole, out and in: dump (JSON Lines, or
 * the mdb_dump format), restore of either into an empty store in one
 * transaction, and the hot backup (a compacting copy, 0600).
 *
 * The JSON dump is exact: every entry is coded to JSON (store_json.c) and
 * back, and only when that gives the same bytes is the decoded form
 * written; otherwise the entry is written as base64. So a restore
 * rebuilds every byte, and dump -> restore -> dump is byte-identical
 * (tests/data/store holds a frozen store and its dump to prove it stays
 * so). Sub-databases are written in the order of the registry
 * (store_kinds.c); a new kind is added there alone. See ARCHITECTURE.md,
 * "The store and its registry".
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

#define DUMP_FORMAT  "picomdm-dump"
#define DUMP_VERSION 1

/* ---- dump ---- */

struct dump_ctx {
	FILE			    *out;
	unsigned		     flags;
	const struct store_progress *prog;
	uint64_t		     records;
	uint64_t		     total;
	struct buf		     tmp;
	struct buf		     line;
	int			     ioerr;
};

static void
dump_write(struct dump_ctx *c, const void *p, size_t n)
{
	if (n > 0 && fwrite(p, 1, n, c->out) != n)
		c->ioerr = 1;
}

/* Append a JSON string: only the escapes JSON requires (jansson keeps
 * its strings valid UTF-8, which is copied as is). */
static int
json_emit_str(struct buf *b, const char *s, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	unsigned char	  c;
	char		  esc[6];
	size_t		  i, run;
	int		  rc = buf_append(b, "\"", 1);

	for (i = 0; i < n && rc == 0;) {
		for (run = i; run < n; run++) {
			c = (unsigned char)s[run];
			if (c < 0x20 || c == '"' || c == '\\')
				break;
		}
		if (run > i && (rc = buf_append(b, s + i, run - i)) != 0)
			break;
		if ((i = run) == n)
			break;
		c = (unsigned char)s[i++];
		esc[0] = '\\';
		switch (c) {
		case '"':
		case '\\':
			esc[1] = (char)c;
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\t':
			esc[1] = 't';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hx[c >> 4];
			esc[5] = hx[c & 15];
			rc = buf_append(b, esc, 6);
			continue;
		}
		rc = buf_append(b, esc, 2);
	}
	return rc == 0 ? buf_append(b, "\"", 1) : rc;
}

/*
 * Append the compact JSON of j: objects in the order their members were
 * set, which is the stored order of a record's fields. Faster than
 * json_dumps on large strings, and as deterministic.
 */
static int
json_emit(struct buf *b, json_t *j)
{
	const char *k;
	json_t	   *v;
	size_t	    i;
	char	    num[32];
	int	    rc = 0, first = 1;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		rc = buf_append(b, "{", 1);
		json_object_foreach(j, k, v)
		{
			if (rc == 0 && !first)
				rc = buf_append(b, ",", 1);
			first = 0;
			if (rc == 0)
				rc = json_emit_str(b, k, strlen(k));
			if (rc == 0)
				rc = buf_append(b, ":", 1);
			if (rc == 0)
				rc = json_emit(b, v);
		}
		return rc == 0 ? buf_append(b, "}", 1) : rc;
	case JSON_ARRAY:
		rc = buf_append(b, "[", 1);
		json_array_foreach(j, i, v)
		{
			if (rc == 0 && i > 0)
				rc = buf_append(b, ",", 1);
			if (rc == 0)
				rc = json_emit(b, v);
		}
		return rc == 0 ? buf_append(b, "]", 1) : rc;
	case JSON_STRING:
		return json_emit_str(
		    b, json_string_value(j), json_string_length(j));
	case JSON_INTEGER:
		snprintf(
		    num, sizeof(num), "%lld", (long long)json_integer_value(j));
		return buf_append(b, num, strlen(num));
	case JSON_REAL:
		snprintf(num, sizeof(num), "%.17g", json_real_value(j));
		return buf_append(b, num, strlen(num));
	case JSON_TRUE:
		return buf_append(b, "true", 4);
	case JSON_FALSE:
		return buf_append(b, "false", 5);
	default:
		return buf_append(b, "null", 4);
	}
}

/* Write a JSON value compactly, then a newline; j is released. */
static int
dump_json_line(struct dump_ctx *c, json_t *j)
{
	int rc;

	if (j == NULL)
		return STORE_ENOMEM;
	c->line.len = 0;
	rc = json_emit(&c->line, j);
	json_decref(j);
	if (rc != 0 || buf_append(&c->line, "\n", 1) != 0)
		return STORE_ENOMEM;
	dump_write(c, c->line.p, c->line.len);
	return c->ioerr ? STORE_EIO : 0;
}

/*
 * One entry as a JSON line. The decoded key and value are used only when
 * encoding them again gives the stored bytes; otherwise base64 (or, for a
 * value without --secrets, only its length and hash).
 */
static int
dump_json_entry(
    struct dump_ctx *c, enum store_dbi d, const MDB_val *k, const MDB_val *v)
{
	int	    secrets = (c->flags & STORE_DUMP_SECRETS) != 0;
	json_t	   *line, *jk, *jv, *shown;
	struct key  kk;
	const char *why;

	if ((line = json_object()) == NULL)
		return STORE_ENOMEM;
	json_object_set_new(line, "db", json_string(store_dbi_names[d]));
	jk = key_json(d, k->mv_data, k->mv_size);
	if (jk != NULL &&
	    (key_from_json(d, jk, &kk) == -1 || kk.len != k->mv_size ||
		memcmp(kk.b, k->mv_data, kk.len) != 0)) {
		json_decref(jk);
		jk = NULL;
	}
	if (jk != NULL)
		json_object_set_new(line, "key", jk);
	else
		json_object_set_new(
		    line, "key_b64", j_b64str(k->mv_data, k->mv_size));
	jv = val_json(d, v, 1);
	if (jv != NULL &&
	    (val_from_json(d, jv, &c->tmp, &why) == -1 ||
		c->tmp.len != v->mv_size ||
		memcmp(c->tmp.p, v->mv_data, v->mv_size) != 0)) {
		json_decref(jv);
		jv = NULL;
	}
	if (jv != NULL && !secrets && store_kinds[d].val == KV_RECORD) {
		shown = val_json(d, v, 0);
		json_decref(jv);
		jv = shown;
		if (jv == NULL) {
			json_decref(line);
			return STORE_ENOMEM;
		}
	}
	if (jv != NULL)
		json_object_set_new(line, "value", jv);
	else if (secrets)
		json_object_set_new(
		    line, "value_b64", j_b64str(v->mv_data, v->mv_size));
	else
		json_object_set_new(
		    line, "value_undecoded", j_secret(v->mv_data, v->mv_size));
	return dump_json_line(c, line);
}

/* Write " HEX\n" of p[0..n) (the mdb_dump bytevalue line). */
static void
dump_hex_line(struct dump_ctx *c, const void *p, size_t n)
{
	c->tmp.len = 0;
	if (n > (SIZE_MAX - 3) / 2) {
		c->ioerr = 1;
		return;
	}
	if (c->tmp.cap < 2 * n + 3) {
		unsigned char *np;

		if ((np = realloc(c->tmp.p, 2 * n + 3)) == NULL) {
			c->ioerr = 1;
			return;
		}
		c->tmp.p = np;
		c->tmp.cap = 2 * n + 3;
	}
	c->tmp.p[0] = ' ';
	hex_encode(p, n, (char *)c->tmp.p + 1);
	c->tmp.p[2 * n + 1] = '\n';
	dump_write(c, c->tmp.p, 2 * n + 2);
}

/*
 * The map size written into a raw dump, for mdb_load (whose default of
 * 1 MiB holds little). It is derived from the data, not taken from the
 * environment, so that equal stores dump to equal bytes: four times the
 * bytes of keys, values and per-entry overhead, as a power of two.
 */
static int
dump_map_size(struct store_txn *t, uint64_t *out)
{
	MDB_cursor *cur;
	MDB_val	    k, v;
	uint64_t    bytes = 0, map = (uint64_t)1 << 20;
	int	    d, rc;

	for (d = 0; d < DBI__MAX; d++) {
		if ((rc = mdb_cursor_open(t->txn, t->s->dbi[d], &cur)) != 0)
			return store_rc(rc);
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			bytes += k.mv_size + v.mv_size + 16;
		mdb_cursor_close(cur);
		if (rc != MDB_NOTFOUND)
			return store_rc(rc);
	}
	while (map < bytes * 4 && map < ((uint64_t)1 << 46))
		map <<= 1;
	*out = map;
	return 0;
}

/*
 * The dump, in one read transaction: a header line (JSON), then every
 * sub-database in enum order, every entry in key order, then the end line
 * with the count (JSON) or DATA=END per section (raw).
 */
static int
dump_op(struct store_txn *t, void *arg)
{
	struct dump_ctx *c = arg;
	MDB_cursor	*cur;
	MDB_stat	 st;
	MDB_val		 k, v;
	uint64_t	 map = 0, schema = STORE_SCHEMA_VERSION;
	char		 hdr[256];
	int		 d, rc = 0, n;

	c->records = c->total = 0;
	c->ioerr = 0;
	for (d = 0; d < DBI__MAX; d++) {
		if ((rc = mdb_stat(t->txn, t->s->dbi[d], &st)) != 0)
			return store_rc(rc);
		c->total += st.ms_entries;
	}
	/* The store's format (an older one until its first read-write
	 * open), so that the dump restores to the same. */
	if (db_getv(t, DBI_META, "schema_version", 14, &v) == 0 &&
	    v.mv_size == 8)
		schema = key_get_u64(v.mv_data);
	if (!(c->flags & STORE_DUMP_RAW) &&
	    (rc = dump_json_line(c,
		 json_pack("{s:s, s:i, s:i, s:b}", "format", DUMP_FORMAT,
		     "version", DUMP_VERSION, "schema_version",
		     (int)(schema > INT_MAX ? INT_MAX : schema), "secrets",
		     (c->flags & STORE_DUMP_SECRETS) != 0))) != 0)
		return rc;
	if ((c->flags & STORE_DUMP_RAW) && (rc = dump_map_size(t, &map)) != 0)
		return rc;
	for (d = 0; d < DBI__MAX && rc == 0; d++) {
		if (c->flags & STORE_DUMP_RAW) {
			n = snprintf(hdr, sizeof(hdr),
			    "VERSION=3\n"
			    "format=bytevalue\ndatabase=%s\ntype=btree\n"
			    "mapsize=%llu\nHEADER=END\n",
			    store_dbi_names[d], (unsigned long long)map);
			if (n < 0 || (size_t)n >= sizeof(hdr))
				return STORE_EINVAL;
			dump_write(c, hdr, (size_t)n);
		}
		if ((rc = mdb_cursor_open(t->txn, t->s->dbi[d], &cur)) != 0)
			return store_rc(rc);
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (c->flags & STORE_DUMP_RAW) {
				dump_hex_line(c, k.mv_data, k.mv_size);
				dump_hex_line(c, v.mv_data, v.mv_size);
			} else if ((rc = dump_json_entry(
					c, (enum store_dbi)d, &k, &v)) != 0)
				break;
			if (c->ioerr) {
				rc = STORE_EIO;
				break;
			}
			if (++c->records % PROGRESS_EVERY == 0)
				progress(c->prog, "dump", c->records, c->total);
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			rc = 0;
		else if (rc > 0)
			rc = store_rc(rc);
		if (rc == 0 && (c->flags & STORE_DUMP_RAW))
			dump_write(c, "DATA=END\n", 9);
	}
	if (rc == 0 && !(c->flags & STORE_DUMP_RAW))
		rc = dump_json_line(c,
		    json_pack("{s:b, s:I}", "end", 1, "records",
			(json_int_t)c->records));
	progress(c->prog, "dump", c->records, c->total);
	return rc != 0 ? rc : c->ioerr ? STORE_EIO : 0;
}

/* See store.h. */
int
store_dump(struct store *s, FILE *out, unsigned flags,
    const struct store_progress *prog, uint64_t *records)
{
	struct dump_ctx c;
	int		rc;

	if (records != NULL)
		*records = 0;
	/* The raw form is every byte: it cannot leave secrets out. */
	if ((flags & STORE_DUMP_RAW) && !(flags & STORE_DUMP_SECRETS))
		return STORE_EINVAL;
	memset(&c, 0, sizeof(c));
	c.out = out;
	c.flags = flags;
	c.prog = prog;
	rc = store_read(s, dump_op, &c);
	freezero(c.tmp.p, c.tmp.cap);
	freezero(c.line.p, c.line.cap);
	if (rc == 0 && fflush(out) != 0)
		rc = STORE_EIO;
	if (records != NULL)
		*records = c.records;
	return rc;
}

/* ---- restore ---- */

struct restore_ctx {
	const char		    *buf;
	size_t			     len;
	unsigned		     flags;
	const struct store_progress *prog;
	uint64_t		     records;
	uint64_t		     line;
	char			    *err;
	size_t			     errlen;
	struct buf		     val;
	uint64_t		     format; /* the dump's store format */
	/* the last key put in each sub-database (appends when in order) */
	unsigned char last[DBI__MAX][KEY_MAX];
	size_t	      lastlen[DBI__MAX];
};

/* Whether a dump's store format is one this build reads (store.h); an
 * older one is upgraded at the store's next read-write open. */
static int
schema_reads(json_int_t v)
{
	return v >= STORE_SCHEMA_OLDEST && v <= STORE_SCHEMA_VERSION;
}

static int
restore_fail(struct restore_ctx *c, int rc, const char *what)
{
	if (c->line > 0)
		snprintf(c->err, c->errlen, "line %llu: %s",
		    (unsigned long long)c->line, what);
	else
		snprintf(c->err, c->errlen, "%s", what);
	return rc;
}

/* The next line of the dump (without its newline); 0 at the end. */
static int
restore_next_line(struct restore_ctx *c, size_t *off, const char **p, size_t *n)
{
	const char *nl;

	if (*off >= c->len)
		return 0;
	*p = c->buf + *off;
	if ((nl = memchr(*p, '\n', c->len - *off)) == NULL) {
		*n = c->len - *off;
		*off = c->len;
	} else {
		*n = (size_t)(nl - *p);
		*off += *n + 1;
	}
	c->line++;
	if (c->line % PROGRESS_EVERY == 0)
		progress(c->prog, "restore", *off, c->len);
	return 1;
}

/*
 * Put one entry; a key given twice is an error. A dump is in key order,
 * so entries are appended (no search, full pages) while their keys keep
 * growing, in LMDB's order: bytes compared, then the shorter first.
 */
static int
restore_put(struct restore_ctx *c, struct store_txn *t, int d, const void *k,
    size_t kn, const void *v, size_t vn)
{
	MDB_val	 kv, vv;
	size_t	 ln = c->lastlen[d];
	unsigned flags = MDB_NOOVERWRITE;
	int	 rc, cmp;

	if (kn == 0 || kn > KEY_MAX)
		return restore_fail(c, STORE_EINVAL, "bad key length");
	cmp = memcmp(c->last[d], k, ln < kn ? ln : kn);
	if (ln == 0 || cmp < 0 || (cmp == 0 && ln < kn))
		flags |= MDB_APPEND;
	kv.mv_data = (void *)(uintptr_t)k;
	kv.mv_size = kn;
	vv.mv_data = (void *)(uintptr_t)v;
	vv.mv_size = vn;
	rc = mdb_put(t->txn, t->s->dbi[d], &kv, &vv, flags);
	if (rc == 0 && (flags & MDB_APPEND)) {
		memcpy(c->last[d], k, kn);
		c->lastlen[d] = kn;
	}
	if (rc == MDB_KEYEXIST)
		return restore_fail(c, STORE_EINVAL, "key given twice");
	if (rc != 0)
		return store_rc(rc);
	c->records++;
	return 0;
}

/* Decode a JSON string holding base64; owned buffer or NULL. */
static unsigned char *
j_get_b64str(const json_t *j, size_t *n)
{
	if (!json_is_string(j))
		return NULL;
	return base64_decode(json_string_value(j), json_string_length(j), n);
}

/* One entry line of a JSON dump. */
static int
restore_json_entry(struct restore_ctx *c, struct store_txn *t, json_t *o)
{
	const json_t  *jd, *jk, *jv;
	unsigned char *kb = NULL, *vb = NULL;
	const void    *kp, *vp;
	size_t	       kn, vn;
	struct key     key;
	const char    *why;
	int	       d, rc;

	if ((jd = json_object_get(o, "db")) == NULL || !json_is_string(jd) ||
	    (d = store_kind_by_name(json_string_value(jd))) < 0)
		return restore_fail(c, STORE_EINVAL, "unknown sub-database");
	if ((jk = json_object_get(o, "key")) != NULL) {
		if (key_from_json((enum store_dbi)d, jk, &key) == -1)
			return restore_fail(c, STORE_EINVAL, "bad key");
		kp = key.b;
		kn = key.len;
	} else if ((kb = j_get_b64str(json_object_get(o, "key_b64"), &kn)) !=
	    NULL)
		kp = kb;
	else
		return restore_fail(c, STORE_EINVAL, "no key");
	if ((jv = json_object_get(o, "value")) != NULL) {
		if (val_from_json((enum store_dbi)d, jv, &c->val, &why) == -1) {
			free(kb);
			return restore_fail(c, STORE_EINVAL, why);
		}
		vp = c->val.p;
		vn = c->val.len;
	} else if ((vb = j_get_b64str(json_object_get(o, "value_b64"), &vn)) !=
	    NULL)
		vp = vb;
	else {
		free(kb);
		return restore_fail(c, STORE_EINVAL,
		    json_object_get(o, "value_undecoded") != NULL
			? "a secret is missing (dump made without --secrets)"
			: "no value");
	}
	rc = restore_put(c, t, d, kp, kn, vp != NULL ? vp : "", vn);
	free(kb);
	freezero(vb, vn);
	return rc;
}

/*
 * A JSON Lines dump: the header (format, version, schema version, and
 * secrets, without which it is refused), the entries, the end line whose
 * count must match. Anything after the end line, or no end line, is an
 * error: a truncated dump never loads.
 */
static int
restore_json(struct restore_ctx *c, struct store_txn *t)
{
	json_error_t  jerr;
	json_t	     *o;
	const json_t *j;
	const char   *p;
	size_t	      off = 0, n;
	uint64_t      want;
	int	      rc = 0, ended = 0, first = 1;

	while (rc == 0 && restore_next_line(c, &off, &p, &n)) {
		if (n == 0 && off >= c->len)
			break; /* the final newline */
		if (ended)
			return restore_fail(
			    c, STORE_EINVAL, "data after the end line");
		if ((o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr)) ==
			NULL ||
		    !json_is_object(o)) {
			json_decref(o);
			return restore_fail(
			    c, STORE_EINVAL, "not a JSON object");
		}
		if (first) {
			first = 0;
			j = json_object_get(o, "format");
			if (!json_is_string(j) ||
			    strcmp(json_string_value(j), DUMP_FORMAT) != 0 ||
			    json_integer_value(json_object_get(o, "version")) !=
				DUMP_VERSION)
				rc = restore_fail(c, STORE_EINVAL,
				    "not a picomdm dump (or a newer one)");
			else if (!schema_reads(json_integer_value(
				     json_object_get(o, "schema_version"))))
				rc = restore_fail(c, STORE_EINVAL,
				    "dump of a store format this picomdm does "
				    "not read (a newer picomdm's?)");
			else if (!json_is_true(json_object_get(o, "secrets")))
				rc = restore_fail(c, STORE_EINVAL,
				    "dump made without --secrets: restoring it "
				    "would lose push tokens and UnlockTokens");
		} else if (json_object_get(o, "end") != NULL) {
			ended = 1;
			if (j_get_u64(json_object_get(o, "records"), &want) ==
				-1 ||
			    want != c->records)
				rc = restore_fail(c, STORE_EINVAL,
				    "record count does not match the end line");
		} else
			rc = restore_json_entry(c, t, o);
		json_decref(o);
	}
	if (rc == 0 && !ended)
		rc = restore_fail(
		    c, STORE_EINVAL, "dump is truncated (no end line)");
	return rc;
}

/* Decode one data line of the mdb_dump format (" HEX" or " print")
 * into out; 0 or -1. */
static int
raw_decode(const char *p, size_t n, int print, struct buf *out)
{
	unsigned char b;
	size_t	      i;
	int	      hi, lo;

	out->len = 0;
	if (n < 1 || p[0] != ' ')
		return -1;
	for (i = 1; i < n;) {
		if (!print || p[i] == '\\') {
			if (print)
				i++;
			if (print && i < n && p[i] == '\\') {
				b = '\\';
				i++;
			} else {
				if (i + 1 >= n || (hi = hex_val(p[i])) < 0 ||
				    (lo = hex_val(p[i + 1])) < 0)
					return -1;
				b = (unsigned char)(hi << 4 | lo);
				i += 2;
			}
		} else
			b = (unsigned char)p[i++];
		if (buf_append(out, &b, 1) == -1)
			return -1;
	}
	return 0;
}

/* The mdb_dump format, as written by dump --raw or mdb_dump -a. */
static int
restore_raw(struct restore_ctx *c, struct store_txn *t)
{
	struct buf  key;
	const char *p;
	size_t	    off = 0, n;
	char	    name[64];
	int	    d = -1, inhdr = 0, print = 0, rc = 0, sections = 0;

	memset(&key, 0, sizeof(key));
	while (rc == 0 && restore_next_line(c, &off, &p, &n)) {
		if (!inhdr && d < 0) {
			if (n == 0 && off >= c->len)
				break;
			if (n != 9 || memcmp(p, "VERSION=3", 9) != 0) {
				rc = restore_fail(
				    c, STORE_EINVAL, "expected VERSION=3");
				break;
			}
			inhdr = 1;
			name[0] = '\0';
			print = 0;
			continue;
		}
		if (inhdr) {
			if (n == 10 && memcmp(p, "HEADER=END", 10) == 0) {
				if ((d = store_kind_by_name(name)) < 0)
					rc = restore_fail(c, STORE_EINVAL,
					    "section of an unknown (or no) "
					    "database");
				inhdr = 0;
				sections++;
			} else if (n == 16 &&
			    memcmp(p, "format=bytevalue", 16) == 0)
				print = 0;
			else if (n == 12 && memcmp(p, "format=print", 12) == 0)
				print = 1;
			else if (n > 9 && memcmp(p, "database=", 9) == 0 &&
			    n - 9 < sizeof(name)) {
				memcpy(name, p + 9, n - 9);
				name[n - 9] = '\0';
			} else if (n > 7 && memcmp(p, "format=", 7) == 0)
				rc = restore_fail(
				    c, STORE_EINVAL, "unknown format");
			else if (n > 5 && memcmp(p, "type=", 5) == 0 &&
			    (n != 10 || memcmp(p, "type=btree", 10) != 0))
				rc = restore_fail(
				    c, STORE_EINVAL, "not a btree");
			else if (n > 11 && memcmp(p, "duplicates=", 11) == 0)
				rc = restore_fail(c, STORE_EINVAL,
				    "duplicate keys are not a picomdm store");
			/* mapsize=, maxreaders=, db_pagesize=...: ignored */
			continue;
		}
		if (n == 8 && memcmp(p, "DATA=END", 8) == 0) {
			d = -1;
			continue;
		}
		if (raw_decode(p, n, print, &key) == -1) {
			rc = restore_fail(c, STORE_EINVAL, "bad key line");
			break;
		}
		if (!restore_next_line(c, &off, &p, &n) ||
		    raw_decode(p, n, print, &c->val) == -1) {
			rc = restore_fail(c, STORE_EINVAL, "bad value line");
			break;
		}
		rc = restore_put(c, t, d, key.p, key.len,
		    c->val.p != NULL ? (const void *)c->val.p : "", c->val.len);
	}
	if (rc == 0 && (inhdr || d >= 0))
		rc = restore_fail(
		    c, STORE_EINVAL, "dump is truncated (no DATA=END)");
	if (rc == 0 && sections == 0)
		rc = restore_fail(c, STORE_EINVAL, "no data sections");
	freezero(key.p, key.cap);
	return rc;
}

/* What a store no one has written to holds in meta: its schema version
 * and, once opened for writing, the enrollment counters (zero). */
static size_t
meta_fresh_entries(struct store_txn *t)
{
	static const char *const fresh[] = {"schema_version",
	    "enrollments_disabled", "enrollments_enabled"};
	size_t i, n = 0;

	for (i = 0; i < NF(fresh); i++)
		if (db_has(t, DBI_META, fresh[i], strlen(fresh[i])) == 1)
			n++;
	return n;
}

/*
 * The restore operation: check the store is empty (or empty it with
 * force), load the dump, then check its schema version. Runs from the
 * start again if the map had to grow.
 */
static int
restore_op(struct store_txn *t, void *arg)
{
	struct restore_ctx *c = arg;
	MDB_stat	    st;
	MDB_val		    v;
	int		    d, rc, empty = 1;

	c->records = 0;
	c->line = 0;
	c->err[0] = '\0';
	memset(c->lastlen, 0, sizeof(c->lastlen));
	for (d = 0; d < DBI__MAX; d++) {
		if ((rc = mdb_stat(t->txn, t->s->dbi[d], &st)) != 0)
			return store_rc(rc);
		if (d != DBI_META && st.ms_entries > 0)
			empty = 0;
		else if (d == DBI_META &&
		    st.ms_entries > meta_fresh_entries(t))
			empty = 0;
	}
	if (!empty && !(c->flags & STORE_RESTORE_FORCE))
		return restore_fail(c, STORE_EEXIST,
		    "store is not empty (--force replaces it)");
	for (d = 0; d < DBI__MAX; d++)
		if ((rc = mdb_drop(t->txn, t->s->dbi[d], 0)) != 0)
			return store_rc(rc);
	if (c->len >= 9 && memcmp(c->buf, "VERSION=3", 9) == 0)
		rc = restore_raw(c, t);
	else
		rc = restore_json(c, t);
	if (rc != 0)
		return rc;
	c->line = 0;
	if ((rc = db_getv(t, DBI_META, "schema_version", 14, &v)) != 0 ||
	    v.mv_size != 8)
		return restore_fail(
		    c, STORE_EINVAL, "dump holds no schema version");
	if (key_get_u64(v.mv_data) > STORE_SCHEMA_VERSION ||
	    !schema_reads((json_int_t)key_get_u64(v.mv_data)))
		return restore_fail(c, STORE_EINVAL,
		    "dump of a store format this picomdm does not read (a "
		    "newer picomdm's?)");
	c->format = key_get_u64(v.mv_data);
	/* Counted from the records, whatever the dump said. */
	if ((rc = enroll_count_reset(t)) != 0)
		return rc;
	progress(c->prog, "restore", c->len, c->len);
	return 0;
}

/* See store.h. The dump is read from memory, so the operation can run
 * again from the start after the map grows. */
int
store_restore(struct store *s, const void *dump, size_t len, unsigned flags,
    const struct store_progress *prog, uint64_t *records, char *err,
    size_t errlen)
{
	struct restore_ctx c;
	char		   dummy[8];
	int		   rc;

	memset(&c, 0, sizeof(c));
	c.buf = dump;
	c.len = len;
	c.flags = flags;
	c.prog = prog;
	c.err = err != NULL && errlen > 0 ? err : dummy;
	c.errlen = err != NULL && errlen > 0 ? errlen : sizeof(dummy);
	c.err[0] = '\0';
	rc = store_write(s, restore_op, &c);
	/* The store is of the dump's format until a writable open
	 * upgrades it: read (and written) as such meanwhile. */
	if (rc == 0)
		s->format = c.format;
	freezero(c.val.p, c.val.cap);
	if (records != NULL)
		*records = rc == 0 ? c.records : 0;
	if (rc != 0 && c.err[0] == '\0')
		snprintf(c.err, c.errlen, "%s", store_strerror(rc));
	return rc;
}

/* ---- backup ---- */

/*
 * See store.h. The copy is written into data.mdb created here 0600, as
 * the store itself is (mdb_env_copy2 would make it 0644: the copy holds
 * every secret of the store), from a read transaction; it is then synced,
 * as LMDB does not. A copy that fails is removed.
 */
int
store_backup(struct store *s, const char *dir)
{
	struct stat st;
	char	    path[PATH_MAX];
	int	    rc, fd, dfd, n;

	if (stat(dir, &st) == -1) {
		if (errno != ENOENT || mkdir(dir, 0700) == -1) {
			log_error("backup: %s: %s", dir, strerror(errno));
			return STORE_EIO;
		}
	} else if (!S_ISDIR(st.st_mode)) {
		log_error("backup: %s: not a directory", dir);
		return STORE_EINVAL;
	}
	n = snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return STORE_EINVAL;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) ==
	    -1) {
		if (errno == EEXIST)
			return STORE_EEXIST;
		log_error("backup: %s: %s", path, strerror(errno));
		return STORE_EIO;
	}
	/* A read transaction inside: the responder keeps writing. */
	pthread_rwlock_rdlock(&s->resize_lock);
	rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
	pthread_rwlock_unlock(&s->resize_lock);
	if (rc != 0) {
		log_error("backup: %s: %s", path, mdb_strerror(rc));
		rc = STORE_EIO;
	} else if (fsync(fd) == -1) {
		/* mdb_env_copyfd2 does not sync: make the copy durable. */
		log_error("backup: sync %s: %s", path, strerror(errno));
		rc = STORE_EIO;
	}
	if (close(fd) == -1 && rc == 0) {
		log_error("backup: close %s: %s", path, strerror(errno));
		rc = STORE_EIO;
	}
	if (rc != 0) {
		unlink(path);
		return rc;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    fsync(dfd) == -1) {
		log_error("backup: sync %s: %s", dir, strerror(errno));
		rc = STORE_EIO;
	}
	if (dfd != -1)
		close(dfd);
	return rc;
}
