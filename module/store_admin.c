/*
 * store_admin.c - store-wide operations for picomdmctl: environment
 * figures, dump and restore, hot backup, consistency check and repair,
 * purge (by device, by enrollment, by the topic or token the data came
 * through), the byte scan that proves a purge, and the retention listing.
 *
 * Everything here works on the raw sub-databases (store_int.h) so that it
 * sees every entry, including the ones no public call would reach (the
 * orphans check must find). Records are read with the TLV codec of
 * store_rec.c; the field tables below name each tag for the dump and link
 * it to its row of the data catalogue (inventory.c), which says whether
 * the value is a secret.
 *
 * The JSON dump is exact: every record is decoded to JSON and encoded
 * back, and only when that gives the same bytes is the decoded form
 * written; otherwise the entry is written as base64. So a restore
 * rebuilds every byte, and dump -> restore -> dump is byte-identical.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "picomdm/inventory.h"
#include "picomdm/log.h"
#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_int.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

#define DUMP_FORMAT  "picomdm-dump"
#define DUMP_VERSION 1

/* Progress is reported every this many entries. */
#define PROGRESS_EVERY 20000

static void
progress(const struct store_progress *p, const char *what, uint64_t done,
    uint64_t total)
{
	if (p != NULL && p->fn != NULL)
		p->fn(p->arg, what, done, total);
}

/* ---- small owned sets ---- */

/* A set of strings: appended, then sorted and deduplicated for bsearch. */
struct strset {
	char **v;
	size_t n, cap;
};

/* Add a copy of p[0..n) (NUL-terminated); 0 or STORE_ENOMEM. */
static int
strset_add(struct strset *s, const void *p, size_t n)
{
	char **nv, *c;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;

		if ((nv = reallocarray(s->v, cap, sizeof(*nv))) == NULL)
			return STORE_ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	if ((c = malloc(n + 1)) == NULL)
		return STORE_ENOMEM;
	memcpy(c, p, n);
	c[n] = '\0';
	s->v[s->n++] = c;
	return 0;
}

static int
strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates, ready for strset_has. */
static void
strset_sort(struct strset *s)
{
	size_t i, j;

	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(*s->v), strp_cmp);
	for (i = j = 1; i < s->n; i++) {
		if (strcmp(s->v[i], s->v[j - 1]) == 0)
			free(s->v[i]);
		else
			s->v[j++] = s->v[i];
	}
	s->n = j;
}

/* Is the (not NUL-terminated) p[0..n) in the sorted set? */
static int
strset_has(const struct strset *s, const void *p, size_t n)
{
	size_t lo = 0, hi = s->n, mid, l;
	int    c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		l = strlen(s->v[mid]);
		c = memcmp(s->v[mid], p, l < n ? l : n);
		if (c == 0)
			c = l < n ? -1 : l > n ? 1 : 0;
		if (c == 0)
			return 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static void
strset_free(struct strset *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* A set of u64, appended then sorted and deduplicated. */
struct u64set {
	uint64_t *v;
	size_t	  n, cap;
};

/* Add a number; 0 or STORE_ENOMEM. */
static int
u64set_add(struct u64set *s, uint64_t x)
{
	uint64_t *nv;

	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;

		if ((nv = reallocarray(s->v, cap, sizeof(*nv))) == NULL)
			return STORE_ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = x;
	return 0;
}

static int
u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
u64set_sort(struct u64set *s)
{
	size_t i, j;

	if (s->n == 0)
		return;
	qsort(s->v, s->n, sizeof(*s->v), u64_cmp);
	for (i = j = 1; i < s->n; i++)
		if (s->v[i] != s->v[j - 1])
			s->v[j++] = s->v[i];
	s->n = j;
}

static int
u64set_has(const struct u64set *s, uint64_t x)
{
	return s->n > 0 &&
	    bsearch(&x, s->v, s->n, sizeof(*s->v), u64_cmp) != NULL;
}

static void
u64set_free(struct u64set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- raw access ---- */

/* Find field tag of a record of kind; 1 with p/n, 0 absent, <0 corrupt. */
static int
rec_field(const MDB_val *v, enum rec_kind kind, unsigned want,
    const unsigned char **p, size_t *n)
{
	struct rec_r r;
	unsigned     tag;
	int	     rc;

	if ((rc = rec_open(&r, v, kind)) != 0)
		return rc;
	while ((rc = rec_next(&r, &tag, p, n)) == 1)
		if (tag == want)
			return 1;
	return rc;
}

/* A record field as an owned string; *out NULL when absent. */
static int
rec_field_str(const MDB_val *v, enum rec_kind kind, unsigned tag, char **out)
{
	const unsigned char *p;
	size_t		     n;
	int		     rc;

	*out = NULL;
	if ((rc = rec_field(v, kind, tag, &p, &n)) <= 0)
		return rc;
	return rec_dup_str(p, n, out);
}

/* Does a sub-database hold this key? 1, 0 or a store_err. */
static int
db_has(struct store_txn *t, enum store_dbi d, const void *k, size_t n)
{
	MDB_val kv, v;
	int	rc;

	if (n == 0 || n > KEY_MAX)
		return 0;
	kv.mv_data = (void *)(uintptr_t)k;
	kv.mv_size = n;
	rc = mdb_get(t->txn, t->s->dbi[d], &kv, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc == 0 ? 1 : store_rc(rc);
}

static int
db_getv(
    struct store_txn *t, enum store_dbi d, const void *k, size_t n, MDB_val *v)
{
	MDB_val kv;

	if (n == 0 || n > KEY_MAX)
		return STORE_ENOTFOUND;
	kv.mv_data = (void *)(uintptr_t)k;
	kv.mv_size = n;
	return store_rc(mdb_get(t->txn, t->s->dbi[d], &kv, v));
}

static int
db_putv(struct store_txn *t, enum store_dbi d, const void *k, size_t kn,
    const void *p, size_t n)
{
	MDB_val kv, v;

	kv.mv_data = (void *)(uintptr_t)k;
	kv.mv_size = kn;
	v.mv_data = (void *)(uintptr_t)p;
	v.mv_size = n;
	return store_rc(mdb_put(t->txn, t->s->dbi[d], &kv, &v, 0));
}

static int
db_delv(struct store_txn *t, enum store_dbi d, const void *k, size_t n)
{
	MDB_val kv;
	int	rc;

	kv.mv_data = (void *)(uintptr_t)k;
	kv.mv_size = n;
	rc = mdb_del(t->txn, t->s->dbi[d], &kv, NULL);
	return rc == MDB_NOTFOUND ? STORE_ENOTFOUND : store_rc(rc);
}

static void
be64(unsigned char *b, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
}

/*
 * Visit every entry of a sub-database. fn returns 0 to keep the entry, 1
 * to delete it (through the cursor), <0 to stop with that error. Key and
 * value are borrowed until fn returns; fn may write to other
 * sub-databases.
 */
typedef int (*visit_fn)(
    struct store_txn *, const MDB_val *k, const MDB_val *v, void *arg);

static int
db_visit(struct store_txn *t, enum store_dbi d, visit_fn fn, void *arg,
    uint64_t *deleted)
{
	MDB_cursor *c;
	MDB_val	    k, v;
	int	    rc, r;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[d], &c)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if ((r = fn(t, &k, &v, arg)) < 0) {
			mdb_cursor_close(c);
			return r;
		}
		if (r == 1) {
			/* MDB_NEXT after a delete yields the next entry. */
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			if (deleted != NULL)
				(*deleted)++;
		}
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* Delete every entry whose key starts with pfx; fn (may be NULL) sees each
 * first, as in db_visit (its return value is ignored unless < 0). */
static int
db_del_prefix(struct store_txn *t, enum store_dbi d, const void *pfx, size_t n,
    visit_fn fn, void *arg, uint64_t *deleted)
{
	MDB_cursor *c;
	MDB_val	    k, v;
	int	    rc, r;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[d], &c)) != 0)
		return store_rc(rc);
	for (;;) {
		k.mv_data = (void *)(uintptr_t)pfx;
		k.mv_size = n;
		if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)) != 0)
			break;
		if (k.mv_size < n || memcmp(k.mv_data, pfx, n) != 0) {
			rc = MDB_NOTFOUND;
			break;
		}
		if (fn != NULL && (r = fn(t, &k, &v, arg)) < 0) {
			mdb_cursor_close(c);
			return r;
		}
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		if (deleted != NULL)
			(*deleted)++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* ---- the field tables: tag, name, how it is shown, catalogue row ---- */

enum afield_type {
	A_STR,	  /* text */
	A_BYTES,  /* opaque bytes: {"b64": ...} */
	A_PLIST,  /* raw plist: its XML text, {"b64": ...} when not text */
	A_U64,	  /* a number */
	A_TIME,	  /* µs since the epoch: RFC 3339 with microseconds */
	A_BOOL,	  /* 0 / 1 */
	A_ETYPE,  /* enum enroll_type by name */
	A_KIND,	  /* enum msg_kind by name */
	A_STATUS, /* enum cmd_status by name */
	A_HASH	  /* 32 bytes: hex */
};

struct afield {
	unsigned	 tag;
	const char	*name;
	enum afield_type type;
	enum inv_service svc; /* catalogue row, when message != NULL */
	const char	*message;
	const char	*field;
};

/* clang-format off */
#define AF(tag, name, type) { tag, name, type, INV_CHECKIN, NULL, NULL }
#define AC(tag, name, type, m, f) { tag, name, type, INV_CHECKIN, m, f }
/* clang-format on */

/* Tags as written by store_device.c and store_queue.c. */
static const struct afield device_af[] = {
    AC(1, "id", A_STR, "*", "UDID"),
    AC(2, "serial_number", A_STR, "Authenticate", "SerialNumber"),
    AC(3, "udid", A_STR, "*", "UDID"),
    AC(4, "enrollment_id", A_STR, "*", "EnrollmentID"),
    AC(5, "model", A_STR, "Authenticate", "Model"),
    AC(6, "model_name", A_STR, "Authenticate", "ModelName"),
    AC(7, "device_name", A_STR, "Authenticate", "DeviceName"),
    AC(8, "product_name", A_STR, "Authenticate", "ProductName"),
    AC(9, "os_version", A_STR, "Authenticate", "OSVersion"),
    AC(10, "build_version", A_STR, "Authenticate", "BuildVersion"),
    AC(11, "imei", A_STR, "Authenticate", "IMEI"),
    AC(12, "meid", A_STR, "Authenticate", "MEID"),
    AC(13, "topic", A_STR, "Authenticate", "Topic"),
    AC(14, "identity_cert_sha256", A_HASH, "TLS client certificate",
	"certificate SHA-256"),
    AC(15, "unlock_token", A_BYTES, "TokenUpdate", "UnlockToken"),
    AF(16, "unlock_token_at", A_TIME),
    AC(17, "bootstrap_token", A_BYTES, "SetBootstrapToken", "BootstrapToken"),
    AF(18, "bootstrap_token_at", A_TIME),
    AF(19, "created_at", A_TIME),
    AF(20, "authenticated_at", A_TIME),
};

#define TAG_DEVICE_ID	  1
#define TAG_DEVICE_SERIAL 2
#define TAG_DEVICE_UDID	  3
#define TAG_DEVICE_EID	  4
#define TAG_DEVICE_TOPIC  13
#define TAG_DEVICE_CERT	  14

static const struct afield enroll_af[] = {
    AC(1, "id", A_STR, "*", "UDID"),
    AF(2, "device_id", A_STR),
    AF(3, "type", A_ETYPE),
    AC(4, "user_id", A_STR, "*", "UserID"),
    AC(5, "user_short_name", A_STR, "*", "UserShortName"),
    AC(6, "user_long_name", A_STR, "*", "UserLongName"),
    AC(7, "topic", A_STR, "TokenUpdate", "Topic"),
    AC(8, "push_magic", A_STR, "TokenUpdate", "PushMagic"),
    AC(9, "token", A_BYTES, "TokenUpdate", "Token"),
    AF(10, "enabled", A_BOOL),
    AC(11, "awaiting_configuration", A_BOOL, "TokenUpdate",
	"AwaitingConfiguration"),
    AF(12, "token_update_tally", A_U64),
    AF(13, "created_at", A_TIME),
    AF(14, "last_seen", A_TIME),
    AF(15, "token_updated_at", A_TIME),
    AF(16, "checked_out_at", A_TIME),
    AF(100, "eid", A_U64),
};

#define TAG_ENROLL_ID	      1
#define TAG_ENROLL_DEVICE     2
#define TAG_ENROLL_TOPIC      7
#define TAG_ENROLL_CHECKEDOUT 16
#define TAG_ENROLL_EID	      100

static const struct afield msg_af[] = {
    AF(1, "enrollment_id", A_STR),
    AF(2, "kind", A_KIND),
    AF(3, "received_at", A_TIME),
    AF(4, "topic", A_STR),
    AF(5, "raw", A_PLIST),
};

#define TAG_MSG_ENROLL 1
#define TAG_MSG_KIND   2
#define TAG_MSG_TOPIC  4

static const struct afield cmd_af[] = {
    AF(1, "command_uuid", A_STR),
    AF(2, "request_type", A_STR),
    AF(3, "raw", A_PLIST),
    AF(4, "created_at", A_TIME),
};

static const struct afield queue_af[] = {
    AF(1, "command_uuid", A_STR),
    AF(2, "status", A_STATUS),
    AF(3, "expires_at", A_TIME),
    AF(4, "enqueued_at", A_TIME),
    AF(5, "not_now_count", A_U64),
    AF(6, "sent_count", A_U64),
    AF(7, "updated_at", A_TIME),
    AF(8, "priority", A_U64),
};

#define TAG_QUEUE_UUID 1

static const struct afield result_af[] = {
    AF(1, "command_uuid", A_STR),
    AF(2, "status", A_STATUS),
    AF(3, "received_at", A_TIME),
    AF(4, "raw", A_PLIST),
    AF(5, "known", A_BOOL),
    AF(6, "well_formed", A_BOOL),
};

#define TAG_RESULT_UUID 1

static const struct afield cmdq_af[] = {
    AF(1, "status", A_STATUS),
    AF(2, "updated_at", A_TIME),
    AF(3, "result_seq", A_U64),
};

#define TAG_CMDQ_SEQ 3

/* One record kind: its table and the service of its raw plist. */
struct akind {
	enum rec_kind	     kind;
	const struct afield *f;
	size_t		     n;
	enum inv_service     plist_svc;
};

static const struct akind akinds[] = {
    {REC_DEVICE, device_af, NF(device_af), INV_CHECKIN},
    {REC_ENROLL, enroll_af, NF(enroll_af), INV_CHECKIN},
    {REC_MSG, msg_af, NF(msg_af), INV_CHECKIN},
    {REC_CMD, cmd_af, NF(cmd_af), INV_COMMAND},
    {REC_QUEUE, queue_af, NF(queue_af), INV_COMMAND},
    {REC_RESULT, result_af, NF(result_af), INV_COMMAND},
    {REC_CMDQ, cmdq_af, NF(cmdq_af), INV_COMMAND},
};

static const struct akind *
akind_of(enum rec_kind k)
{
	size_t i;

	for (i = 0; i < NF(akinds); i++)
		if (akinds[i].kind == k)
			return &akinds[i];
	return NULL;
}

/* Is this field a secret? The catalogue row of the field decides. */
static int
afield_secret(const struct afield *f)
{
	const struct inv_row *r;

	if (f->message == NULL)
		return 0;
	r = inventory_find(f->svc, f->message, f->field);
	return r != NULL && r->secret;
}

/* The record kind held by a sub-database (0: not records). */
static enum rec_kind
dbi_rec_kind(enum store_dbi d)
{
	switch (d) {
	case DBI_DEVICE:
		return REC_DEVICE;
	case DBI_ENROLL:
		return REC_ENROLL;
	case DBI_MSG:
		return REC_MSG;
	case DBI_CMD:
		return REC_CMD;
	case DBI_QUEUE:
		return REC_QUEUE;
	case DBI_RESULT:
		return REC_RESULT;
	case DBI_CMDQ:
		return REC_CMDQ;
	default:
		return 0;
	}
}

static int
dbi_by_name(const char *name)
{
	int i;

	for (i = 0; i < DBI__MAX; i++)
		if (strcmp(store_dbi_names[i], name) == 0)
			return i;
	return -1;
}

/* ---- JSON forms of keys and values ---- */

static json_t *
j_u64(uint64_t x)
{
	return x > (uint64_t)INT64_MAX ? NULL : json_integer((json_int_t)x);
}

static int
j_get_u64(const json_t *j, uint64_t *out)
{
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(j);
	return 0;
}

/* RFC 3339 UTC with microseconds: exact, and read by time_parse_rfc3339. */
static json_t *
j_time(uint64_t us)
{
	char	  buf[64];
	time_t	  t = (time_t)(us / 1000000u);
	struct tm tm;
	size_t	  n;
	int	  m;

	if (gmtime_r(&t, &tm) == NULL ||
	    (n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
		return NULL;
	m = snprintf(
	    buf + n, sizeof(buf) - n, ".%06uZ", (unsigned)(us % 1000000u));
	if (m < 0 || (size_t)m >= sizeof(buf) - n)
		return NULL;
	return json_string(buf);
}

/* Base64 as a JSON string. */
static json_t *
j_b64str(const void *p, size_t n)
{
	char   *s;
	json_t *j;

	if ((s = base64_encode(p, n)) == NULL)
		return NULL;
	j = json_string(s);
	free(s);
	return j;
}

static json_t *
j_b64(const void *p, size_t n)
{
	char   *s;
	json_t *j;

	if ((s = base64_encode(p, n)) == NULL)
		return NULL;
	j = json_pack("{s:s}", "b64", s);
	free(s);
	return j;
}

static json_t *
j_hex(const void *p, size_t n)
{
	char   *s;
	json_t *j;

	if ((s = malloc(n * 2 + 1)) == NULL)
		return NULL;
	hex_encode(p, n, s);
	j = json_string(s);
	free(s);
	return j;
}

/* A secret as it may be shown: length and SHA-256, never the value. */
static json_t *
j_secret(const void *p, size_t n)
{
	unsigned char h[32];
	char	      hex[65];

	sha256(p, n, h);
	hex_encode(h, sizeof(h), hex);
	return json_pack("{s:I, s:s}", "length", (json_int_t)n, "sha256", hex);
}

/* A JSON array of the given items; NULL (and every item released) when
 * any item is NULL. */
static json_t *
j_arr(size_t n, json_t *a, json_t *b, json_t *c)
{
	json_t *items[3] = {a, b, c}, *arr;
	size_t	i;
	int	bad = 0;

	for (i = 0; i < n; i++)
		bad |= items[i] == NULL;
	if (bad || (arr = json_array()) == NULL) {
		for (i = 0; i < n; i++)
			json_decref(items[i]);
		return NULL;
	}
	for (i = 0; i < n; i++)
		json_array_append_new(arr, items[i]);
	return arr;
}

static int
hex_val(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode 2n hex digits into out[n]; 0 or -1. */
static int
hex_decode(const char *s, size_t n, unsigned char *out)
{
	size_t i;
	int    hi, lo;

	for (i = 0; i < n; i++) {
		if ((hi = hex_val(s[2 * i])) < 0 ||
		    (lo = hex_val(s[2 * i + 1])) < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* {"b64": "..."} into an owned buffer; 0 or -1. */
static int
j_get_b64(const json_t *j, unsigned char **out, size_t *n)
{
	const json_t *s;

	if (!json_is_object(j) || json_object_size(j) != 1 ||
	    (s = json_object_get(j, "b64")) == NULL || !json_is_string(s))
		return -1;
	*out = base64_decode(json_string_value(s), json_string_length(s), n);
	return *out == NULL ? -1 : 0;
}

static int
name_index(const char *(*namefn)(int), int max, const char *s)
{
	int i;

	for (i = 0; i < max; i++)
		if (strcmp(namefn(i), s) == 0)
			return i;
	return -1;
}

static const char *
kind_name(int i)
{
	return msg_kind_name((enum msg_kind)i);
}

static const char *
etype_name(int i)
{
	return enroll_type_name((enum enroll_type)i);
}

static const char *
status_name(int i)
{
	return cmd_status_name((enum cmd_status)i);
}

/* The key of an entry of sub-database d in its JSON form, or NULL when
 * the bytes do not have that sub-database's layout. */
static json_t *
key_json(enum store_dbi d, const unsigned char *k, size_t n)
{
	size_t l;

	switch (d) {
	case DBI_META:
	case DBI_DEVICE:
	case DBI_ENROLL:
	case DBI_SERIAL:
	case DBI_CMD:
		return json_stringn((const char *)k, n);
	case DBI_EID:
		return n == 8 ? j_u64(key_get_u64(k)) : NULL;
	case DBI_UCHAN:
	case DBI_RESULT:
		if (n != 16)
			return NULL;
		return j_arr(
		    2, j_u64(key_get_u64(k)), j_u64(key_get_u64(k + 8)), NULL);
	case DBI_CERT:
		return n == 32 ? j_hex(k, n) : NULL;
	case DBI_MSG:
		if (n != 9 || k[8] >= MSG__MAX)
			return NULL;
		return j_arr(2, j_u64(key_get_u64(k)),
		    json_string(msg_kind_name((enum msg_kind)k[8])), NULL);
	case DBI_QUEUE:
		if (n != 17)
			return NULL;
		return j_arr(3, j_u64(key_get_u64(k)), json_integer(255 - k[8]),
		    j_u64(key_get_u64(k + 9)));
	case DBI_QPOS:
		if (n <= 8)
			return NULL;
		return j_arr(2, j_u64(key_get_u64(k)),
		    json_stringn((const char *)k + 8, n - 8), NULL);
	case DBI_CMDQ:
		if (n < 11 || (l = (size_t)k[0] << 8 | k[1]) != n - 10 ||
		    l == 0)
			return NULL;
		return j_arr(2, json_stringn((const char *)k + 2, l),
		    j_u64(key_get_u64(k + 2 + l)), NULL);
	default:
		return NULL;
	}
}

/* The inverse of key_json; 0 or -1. */
static int
key_from_json(enum store_dbi d, const json_t *j, struct key *out)
{
	const json_t *a, *b, *c;
	uint64_t      x, y;
	json_int_t    prio;
	int	      kind;

	key_init(out);
	switch (d) {
	case DBI_META:
	case DBI_DEVICE:
	case DBI_ENROLL:
	case DBI_SERIAL:
	case DBI_CMD:
		if (!json_is_string(j))
			return -1;
		key_raw(out, json_string_value(j), json_string_length(j));
		break;
	case DBI_EID:
		if (j_get_u64(j, &x) == -1)
			return -1;
		key_u64(out, x);
		break;
	case DBI_UCHAN:
	case DBI_RESULT:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    j_get_u64(json_array_get(j, 0), &x) == -1 ||
		    j_get_u64(json_array_get(j, 1), &y) == -1)
			return -1;
		key_u64(out, x);
		key_u64(out, y);
		break;
	case DBI_CERT:
		if (!json_is_string(j) || json_string_length(j) != 64 ||
		    hex_decode(json_string_value(j), 32, out->b) == -1)
			return -1;
		out->len = 32;
		break;
	case DBI_MSG:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    j_get_u64(json_array_get(j, 0), &x) == -1 ||
		    !json_is_string(b = json_array_get(j, 1)) ||
		    (kind = name_index(
			 kind_name, MSG__MAX, json_string_value(b))) < 0)
			return -1;
		key_u64(out, x);
		key_u8(out, (unsigned)kind);
		break;
	case DBI_QUEUE:
		if (!json_is_array(j) || json_array_size(j) != 3 ||
		    j_get_u64(json_array_get(j, 0), &x) == -1 ||
		    !json_is_integer(a = json_array_get(j, 1)) ||
		    (prio = json_integer_value(a)) < 0 || prio > 255 ||
		    j_get_u64(json_array_get(j, 2), &y) == -1)
			return -1;
		key_u64(out, x);
		key_u8(out, 255u - (unsigned)prio);
		key_u64(out, y);
		break;
	case DBI_QPOS:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    j_get_u64(json_array_get(j, 0), &x) == -1 ||
		    !json_is_string(c = json_array_get(j, 1)))
			return -1;
		key_u64(out, x);
		key_raw(out, json_string_value(c), json_string_length(c));
		break;
	case DBI_CMDQ:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    !json_is_string(c = json_array_get(j, 0)) ||
		    json_string_length(c) > 0xffff ||
		    j_get_u64(json_array_get(j, 1), &x) == -1)
			return -1;
		key_u8(out, (unsigned)(json_string_length(c) >> 8));
		key_u8(out, (unsigned)(json_string_length(c) & 0xff));
		key_raw(out, json_string_value(c), json_string_length(c));
		key_u64(out, x);
		break;
	default:
		return -1;
	}
	return out->overflow || out->len == 0 ? -1 : 0;
}

/*
 * Replace, in a parsed plist, the values of keys the catalogue calls
 * secret (at any depth) by "redacted: N bytes, sha256 HEX". Returns the
 * number replaced, or -1.
 */
static int
plist_redact(plist_t node, enum inv_service svc, int depth)
{
	plist_dict_iter it = NULL;
	plist_t		val, rep;
	char	       *key = NULL, *sval = NULL, txt[128];
	unsigned char	h[32];
	char		hex[65];
	uint64_t	len = 0;
	uint32_t	i, n;
	int		count = 0, r;

	if (depth > PLIST_DEPTH_MAX)
		return 0;
	if (plist_get_node_type(node) == PLIST_ARRAY) {
		n = plist_array_get_size(node);
		for (i = 0; i < n; i++) {
			if ((r = plist_redact(plist_array_get_item(node, i),
				 svc, depth + 1)) < 0)
				return -1;
			count += r;
		}
		return count;
	}
	if (plist_get_node_type(node) != PLIST_DICT)
		return 0;
	plist_dict_new_iter(node, &it);
	for (;;) {
		key = NULL;
		val = NULL;
		plist_dict_next_item(node, it, &key, &val);
		if (key == NULL || val == NULL) {
			free(key);
			break;
		}
		if (!inventory_secret_key(svc, key)) {
			r = plist_redact(val, svc, depth + 1);
			free(key);
			if (r < 0) {
				count = -1;
				break;
			}
			count += r;
			continue;
		}
		sval = NULL;
		len = 0;
		if (plist_get_node_type(val) == PLIST_DATA)
			plist_get_data_val(val, &sval, &len);
		else if (plist_get_node_type(val) == PLIST_STRING) {
			plist_get_string_val(val, &sval);
			len = sval != NULL ? strlen(sval) : 0;
		}
		sha256(sval != NULL ? sval : "", (size_t)len, h);
		hex_encode(h, sizeof(h), hex);
		freezero(sval, (size_t)len);
		snprintf(txt, sizeof(txt), "redacted: %llu bytes, sha256 %s",
		    (unsigned long long)len, hex);
		/* Replacing a value keeps the dict's layout: safe while
		 * iterating. */
		if ((rep = plist_new_string(txt)) == NULL) {
			free(key);
			count = -1;
			break;
		}
		plist_dict_set_item(node, key, rep);
		free(key);
		count++;
	}
	free(it);
	return count;
}

/* A raw plist as text, or base64 when it is not UTF-8. */
static json_t *
plist_json(const unsigned char *p, size_t n)
{
	json_t *j;

	if ((j = json_stringn((const char *)p, n)) != NULL)
		return j;
	return j_b64(p, n);
}

/* A raw plist with its secrets redacted (dumps without --secrets). One
 * that does not parse cannot be vouched for: length and hash only. */
static json_t *
plist_json_redacted(const unsigned char *p, size_t n, enum inv_service svc)
{
	plist_t root = NULL;
	char   *xml = NULL;
	size_t	xlen = 0;
	json_t *j = NULL, *s;
	int	r;

	if (plist_safe_parse((const char *)p, n, &root) != PLIST_SAFE_OK)
		return json_pack("{s:o}", "unparsed", j_secret(p, n));
	if ((r = plist_redact(root, svc, 0)) == 0)
		j = plist_json(p, n);
	else if (r > 0 && plist_to_xml_buf(root, &xml, &xlen) == 0 &&
	    (s = json_stringn(xml, xlen)) != NULL)
		j = json_pack("{s:o}", "redacted_xml", s);
	free(xml);
	plist_free(root);
	return j;
}

/* One field's JSON form; NULL when the bytes do not fit its type. */
static json_t *
field_json(const struct afield *f, const unsigned char *p, size_t n,
    int secrets, enum inv_service svc)
{
	uint64_t x = 0;
	json_t	*j;

	if (n == 8)
		x = key_get_u64(p);
	switch (f->type) {
	case A_STR:
		if ((j = json_stringn((const char *)p, n)) == NULL || secrets ||
		    !afield_secret(f))
			return j;
		/* Text, so it decodes; but shown as length and hash. */
		json_decref(j);
		return j_secret(p, n);
	case A_BYTES:
		if (!secrets && afield_secret(f))
			return j_secret(p, n);
		return j_b64(p, n);
	case A_PLIST:
		return secrets ? plist_json(p, n)
			       : plist_json_redacted(p, n, svc);
	case A_U64:
		return n == 8 ? j_u64(x) : NULL;
	case A_TIME:
		return n == 8 ? j_time(x) : NULL;
	case A_BOOL:
		return n == 8 && x <= 1 ? json_boolean(x) : NULL;
	case A_ETYPE:
		return n == 8 && x < ENROLL__MAX
		    ? json_string(enroll_type_name((enum enroll_type)x))
		    : NULL;
	case A_KIND:
		return n == 8 && x < MSG__MAX
		    ? json_string(msg_kind_name((enum msg_kind)x))
		    : NULL;
	case A_STATUS:
		return n == 8 && x < CMD_STATUS__MAX
		    ? json_string(cmd_status_name((enum cmd_status)x))
		    : NULL;
	case A_HASH:
		return n == 32 ? j_hex(p, n) : NULL;
	}
	return NULL;
}

/*
 * A record as a JSON object, fields in stored order. Fields that do not
 * decode, and unknown tags, appear as "tag_N": {"b64": ...}. NULL when
 * the record itself does not decode (or repeats a field).
 */
static json_t *
rec_json(enum rec_kind kind, const MDB_val *v, int secrets)
{
	const struct akind  *ak = akind_of(kind);
	const struct afield *f;
	struct rec_r	     r;
	const unsigned char *p;
	enum inv_service     svc;
	json_t		    *obj, *j;
	size_t		     n, i;
	const char	    *fname;
	unsigned	     tag;
	char		     name[16];
	int		     rc;

	if (ak == NULL || rec_open(&r, v, kind) != 0 || v->mv_size < 3 ||
	    ((const unsigned char *)v->mv_data)[2] != REC_VERSION)
		return NULL;
	svc = ak->plist_svc;
	if (kind == REC_MSG && rec_field(v, kind, TAG_MSG_KIND, &p, &n) == 1 &&
	    n == 8 && key_get_u64(p) == MSG_CONNECT)
		svc = INV_COMMAND;
	if ((obj = json_object()) == NULL)
		return NULL;
	while ((rc = rec_next(&r, &tag, &p, &n)) == 1) {
		for (i = 0, f = NULL; i < ak->n && f == NULL; i++)
			if (ak->f[i].tag == tag)
				f = &ak->f[i];
		j = f != NULL ? field_json(f, p, n, secrets, svc) : NULL;
		if (j != NULL)
			fname = f->name;
		else {
			snprintf(name, sizeof(name), "tag_%u", tag);
			fname = name;
			if ((j = j_b64(p, n)) == NULL)
				break;
		}
		if (json_object_get(obj, fname) != NULL) {
			json_decref(j);
			break;
		}
		json_object_set_new(obj, fname, j);
	}
	if (rc != 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Is j a value shown in place of a secret (the dump lacks it)? */
static int
j_is_redacted(const json_t *j)
{
	return json_is_object(j) &&
	    (json_object_get(j, "sha256") != NULL ||
		json_object_get(j, "redacted_xml") != NULL ||
		json_object_get(j, "unparsed") != NULL);
}

/* Append one field from its JSON form; 0, or -1 with *why set. */
static int
field_from_json(
    const struct afield *f, const json_t *j, struct rec_w *w, const char **why)
{
	unsigned char *b = NULL, h[32];
	size_t	       n;
	uint64_t       x;
	int	       i;

	if (j_is_redacted(j)) {
		*why = "a secret is missing (dump made without --secrets)";
		return -1;
	}
	*why = "field value of the wrong type";
	switch (f->type) {
	case A_STR:
		if (!json_is_string(j))
			return -1;
		rec_bytes(
		    w, f->tag, json_string_value(j), json_string_length(j));
		return 0;
	case A_PLIST:
	case A_BYTES:
		/* A plist is its text, or base64 when it is not text. */
		if (f->type == A_PLIST && json_is_string(j)) {
			rec_bytes(w, f->tag, json_string_value(j),
			    json_string_length(j));
			return 0;
		}
		if (j_get_b64(j, &b, &n) == -1)
			return -1;
		rec_bytes(w, f->tag, b, n);
		freezero(b, n);
		return 0;
	case A_U64:
		if (j_get_u64(j, &x) == -1)
			return -1;
		break;
	case A_TIME:
		if (!json_is_string(j) ||
		    time_parse_rfc3339(json_string_value(j), &x) == -1)
			return -1;
		break;
	case A_BOOL:
		if (!json_is_boolean(j))
			return -1;
		x = json_is_true(j);
		break;
	case A_ETYPE:
	case A_KIND:
	case A_STATUS:
		if (!json_is_string(j))
			return -1;
		i = name_index(f->type == A_ETYPE ? etype_name
			: f->type == A_KIND	  ? kind_name
						  : status_name,
		    f->type == A_ETYPE	    ? ENROLL__MAX
			: f->type == A_KIND ? MSG__MAX
					    : CMD_STATUS__MAX,
		    json_string_value(j));
		if (i < 0)
			return -1;
		x = (uint64_t)i;
		break;
	case A_HASH:
		if (!json_is_string(j) || json_string_length(j) != 64 ||
		    hex_decode(json_string_value(j), 32, h) == -1)
			return -1;
		rec_bytes(w, f->tag, h, 32);
		return 0;
	default:
		return -1;
	}
	rec_u64(w, f->tag, x);
	return 0;
}

/* A record from its JSON form into w (rec_begin'd here); 0 or -1. */
static int
rec_from_json(
    enum rec_kind kind, const json_t *obj, struct rec_w *w, const char **why)
{
	const struct akind  *ak = akind_of(kind);
	const struct afield *f;
	const char	    *name;
	json_t		    *j;
	unsigned char	    *b;
	size_t		     i, n;
	long long	     tag;

	rec_begin(w, kind);
	if (ak == NULL || !json_is_object(obj)) {
		*why = "value is not a record";
		return -1;
	}
	json_object_foreach((json_t *)(uintptr_t)obj, name, j)
	{
		if (strncmp(name, "tag_", 4) == 0) {
			if (num_parse(name + 4, 0, 255, &tag) == -1 ||
			    j_get_b64(j, &b, &n) == -1) {
				*why = "bad tag_N field";
				return -1;
			}
			rec_bytes(w, (unsigned)tag, b, n);
			freezero(b, n);
			continue;
		}
		for (i = 0, f = NULL; i < ak->n && f == NULL; i++)
			if (strcmp(ak->f[i].name, name) == 0)
				f = &ak->f[i];
		if (f == NULL) {
			*why = "unknown field";
			return -1;
		}
		if (field_from_json(f, j, w, why) == -1)
			return -1;
	}
	if (w->err) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* The value of an entry of d in JSON form; NULL when it does not fit. */
static json_t *
val_json(enum store_dbi d, const MDB_val *v, int secrets)
{
	const unsigned char *p = v->mv_data;
	enum rec_kind	     kind;

	switch (d) {
	case DBI_META:
		return v->mv_size == 8 ? j_u64(key_get_u64(p)) : NULL;
	case DBI_EID:
	case DBI_SERIAL:
	case DBI_CERT:
	case DBI_UCHAN:
		return json_stringn((const char *)p, v->mv_size);
	case DBI_QPOS:
		if (v->mv_size != 9)
			return NULL;
		return j_arr(2, json_integer(255 - p[0]),
		    j_u64(key_get_u64(p + 1)), NULL);
	default:
		if ((kind = dbi_rec_kind(d)) == 0)
			return NULL;
		return rec_json(kind, v, secrets);
	}
}

/* The inverse of val_json into out (reset here); 0 or -1 with *why. */
static int
val_from_json(
    enum store_dbi d, const json_t *j, struct buf *out, const char **why)
{
	unsigned char b[9];
	struct rec_w  w;
	uint64_t      x;
	json_int_t    prio;
	enum rec_kind kind;
	int	      rc;

	out->len = 0;
	*why = "value of the wrong type";
	switch (d) {
	case DBI_META:
		if (j_get_u64(j, &x) == -1)
			return -1;
		be64(b, x);
		return buf_append(out, b, 8);
	case DBI_EID:
	case DBI_SERIAL:
	case DBI_CERT:
	case DBI_UCHAN:
		if (!json_is_string(j))
			return -1;
		return buf_append(
		    out, json_string_value(j), json_string_length(j));
	case DBI_QPOS:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    !json_is_integer(json_array_get(j, 0)) ||
		    (prio = json_integer_value(json_array_get(j, 0))) < 0 ||
		    prio > 255 || j_get_u64(json_array_get(j, 1), &x) == -1)
			return -1;
		b[0] = (unsigned char)(255 - prio);
		be64(b + 1, x);
		return buf_append(out, b, 9);
	default:
		if ((kind = dbi_rec_kind(d)) == 0)
			return -1;
		rc = rec_from_json(kind, j, &w, why);
		if (rc == 0 && buf_append(out, w.b.p, w.b.len) == -1) {
			*why = "out of memory";
			rc = -1;
		}
		freezero(w.b.p, w.b.cap);
		return rc;
	}
}

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
	if (jv != NULL && !secrets && dbi_rec_kind(d) != 0) {
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
	uint64_t	 map = 0;
	char		 hdr[256];
	int		 d, rc = 0, n;

	c->records = c->total = 0;
	c->ioerr = 0;
	for (d = 0; d < DBI__MAX; d++) {
		if ((rc = mdb_stat(t->txn, t->s->dbi[d], &st)) != 0)
			return store_rc(rc);
		c->total += st.ms_entries;
	}
	if (!(c->flags & STORE_DUMP_RAW) &&
	    (rc = dump_json_line(c,
		 json_pack("{s:s, s:i, s:i, s:b}", "format", DUMP_FORMAT,
		     "version", DUMP_VERSION, "schema_version",
		     STORE_SCHEMA_VERSION, "secrets",
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
	/* the last key put in each sub-database (appends when in order) */
	unsigned char last[DBI__MAX][KEY_MAX];
	size_t	      lastlen[DBI__MAX];
};

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
	    (d = dbi_by_name(json_string_value(jd))) < 0)
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
			else if (json_integer_value(json_object_get(o,
				     "schema_version")) != STORE_SCHEMA_VERSION)
				rc = restore_fail(c, STORE_EINVAL,
				    "dump of another schema version");
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
				if ((d = dbi_by_name(name)) < 0)
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
		else if (d == DBI_META && st.ms_entries > 1)
			empty = 0;
		else if (d == DBI_META && st.ms_entries == 1 &&
		    db_has(t, DBI_META, "schema_version", 14) != 1)
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
	if (key_get_u64(v.mv_data) != STORE_SCHEMA_VERSION)
		return restore_fail(
		    c, STORE_EINVAL, "dump of another schema version");
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
	freezero(c.val.p, c.val.cap);
	if (records != NULL)
		*records = rc == 0 ? c.records : 0;
	if (rc != 0 && c.err[0] == '\0')
		snprintf(c.err, c.errlen, "%s", store_strerror(rc));
	return rc;
}

/* ---- backup and environment figures ---- */

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

/* mdb_reader_list calls this with its table, one line per reader after
 * a heading; count the lines that start (after blanks) with a pid. */
static int
reader_line(const char *msg, void *arg)
{
	while (*msg == ' ')
		msg++;
	if (*msg >= '0' && *msg <= '9')
		(*(uint32_t *)arg)++;
	return 0;
}

/* See store.h. The free pages are counted as mdb_stat -f counts them. */
int
store_env_stat(struct store_txn *t, struct store_env_stat *out)
{
	MDB_envinfo ei;
	MDB_stat    st;
	MDB_cursor *c;
	MDB_val	    k, v;
	size_t	    npg;
	int	    rc;

	memset(out, 0, sizeof(*out));
	if ((rc = mdb_env_info(t->s->env, &ei)) != 0 ||
	    (rc = mdb_env_stat(t->s->env, &st)) != 0)
		return store_rc(rc);
	out->map_size = ei.me_mapsize;
	out->page_size = st.ms_psize;
	out->pages_used = (uint64_t)ei.me_last_pgno + 1;
	out->last_txn = ei.me_last_txnid;
	out->max_readers = ei.me_maxreaders;
	if (mdb_reader_list(t->s->env, reader_line, &out->readers) < 0)
		out->readers = 0;
	/* The free list (database 0): each value is a list of page numbers
	 * whose first word is its length (as mdb_stat -f counts). */
	if ((rc = mdb_cursor_open(t->txn, 0, &c)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (v.mv_size < sizeof(npg))
			continue;
		memcpy(&npg, v.mv_data, sizeof(npg));
		out->pages_free += npg;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* ---- check ---- */

struct problem {
	const char *db;
	char	   *key;
	char	   *what;
	int	    repaired;
};

struct check_ctx {
	int			     repair;
	const struct store_progress *prog;
	uint64_t		     done;
	uint64_t		     total;
	struct problem		    *p;
	size_t			     np, cap;
	struct u64set		     eids; /* numbers of sound enrollments */
	uint64_t		     max_eid;
	uint64_t		     max_seq;
};

static void
check_reset(struct check_ctx *c)
{
	size_t i;

	for (i = 0; i < c->np; i++) {
		free(c->p[i].key);
		free(c->p[i].what);
	}
	free(c->p);
	c->p = NULL;
	c->np = c->cap = 0;
	u64set_free(&c->eids);
	c->done = c->total = c->max_eid = c->max_seq = 0;
}

/* A printable form of a key: its dump form, else hex. */
static char *
key_text(enum store_dbi d, const void *k, size_t n)
{
	json_t *j;
	char   *s;

	if ((j = key_json(d, k, n)) != NULL) {
		s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(j);
		if (s != NULL)
			return s;
	}
	if ((s = malloc(n * 2 + 1)) != NULL)
		hex_encode(k, n, s);
	return s;
}

/* Record a problem (repaired says whether it was fixed). */
static int problem(struct check_ctx *c, enum store_dbi d, const void *k,
    size_t kn, int repaired, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int
problem(struct check_ctx *c, enum store_dbi d, const void *k, size_t kn,
    int repaired, const char *fmt, ...)
{
	struct problem *np;
	va_list		ap;
	char		buf[1024];
	int		n;

	if (c->np == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;

		if ((np = reallocarray(c->p, cap, sizeof(*np))) == NULL)
			return STORE_ENOMEM;
		c->p = np;
		c->cap = cap;
	}
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return STORE_EINVAL;
	np = &c->p[c->np];
	np->db = store_dbi_names[d];
	np->repaired = repaired;
	np->key = key_text(d, k, kn);
	np->what = strdup(buf);
	if (np->key == NULL || np->what == NULL) {
		free(np->key);
		free(np->what);
		return STORE_ENOMEM;
	}
	c->np++;
	return 0;
}

static void
check_tick(struct check_ctx *c)
{
	if (++c->done % PROGRESS_EVERY == 0)
		progress(c->prog, "check", c->done, c->total);
}

/* Does a field fit its type the way the store's decoders demand? */
static int
field_ok(const struct afield *f, const unsigned char *p, size_t n)
{
	uint64_t x;

	switch (f->type) {
	case A_STR:
		return memchr(p, '\0', n) == NULL;
	case A_BYTES:
	case A_PLIST:
		return 1;
	case A_HASH:
		return n == 32;
	default:
		break;
	}
	if (n != 8)
		return 0;
	x = key_get_u64(p);
	switch (f->type) {
	case A_BOOL:
		return x <= 0x7fffffff;
	case A_ETYPE:
		return x < ENROLL__MAX;
	case A_KIND:
		return x < MSG__MAX;
	case A_STATUS:
		return x < CMD_STATUS__MAX;
	default:
		return 1;
	}
}

/* Why a record does not decode, or NULL when it does. req lists tags
 * the record must hold (0-terminated). */
static const char *
rec_problem(const MDB_val *v, enum rec_kind kind, const unsigned *req)
{
	const struct akind  *ak = akind_of(kind);
	struct rec_r	     r;
	const unsigned char *p;
	size_t		     n, i;
	unsigned	     tag;
	int		     rc;

	if (ak == NULL || rec_open(&r, v, kind) != 0)
		return "record header is wrong";
	while ((rc = rec_next(&r, &tag, &p, &n)) == 1)
		for (i = 0; i < ak->n; i++)
			if (ak->f[i].tag == tag && !field_ok(&ak->f[i], p, n))
				return "a field does not decode";
	if (rc != 0)
		return "record is truncated";
	for (; req != NULL && *req != 0; req++)
		if (rec_field(v, kind, *req, &p, &n) != 1)
			return "a required field is missing";
	return NULL;
}

/*
 * DEVICE: the record decodes and holds its own ID; its serial number and
 * certificate are indexed (repair: index them).
 */
static int
check_device(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_DEVICE_ID, 0};
	struct check_ctx     *c = arg;
	const unsigned char  *p;
	unsigned char	      key[KEY_MAX], hash[32];
	char		     *serial = NULL;
	const char	     *why;
	size_t		      n, kn = k->mv_size;
	int		      rc = 0, has_cert = 0;

	check_tick(c);
	memcpy(key, k->mv_data, kn);
	if ((why = rec_problem(v, REC_DEVICE, req)) != NULL)
		return problem(c, DBI_DEVICE, key, kn, 0, "%s", why);
	rec_field(v, REC_DEVICE, TAG_DEVICE_ID, &p, &n);
	if (n != kn || memcmp(p, key, n) != 0 || memchr(key, '\0', kn) != NULL)
		return problem(c, DBI_DEVICE, key, kn, 0,
		    "record holds another device ID");
	if ((rc = rec_field_str(v, REC_DEVICE, TAG_DEVICE_SERIAL, &serial)) < 0)
		return rc;
	if (rec_field(v, REC_DEVICE, TAG_DEVICE_CERT, &p, &n) == 1 && n == 32) {
		memcpy(hash, p, 32);
		has_cert = 1;
	}
	/* v is not used after this point: writes below. */
	rc = 0;
	if (serial != NULL && *serial != '\0' && strlen(serial) <= KEY_MAX &&
	    (rc = db_has(t, DBI_SERIAL, serial, strlen(serial))) == 0) {
		if (c->repair &&
		    (rc = db_putv(
			 t, DBI_SERIAL, serial, strlen(serial), key, kn)) != 0)
			goto out;
		rc = problem(c, DBI_DEVICE, key, kn, c->repair,
		    "serial number %s is not indexed", serial);
	}
	if (rc < 0)
		goto out;
	if (has_cert && (rc = db_has(t, DBI_CERT, hash, 32)) == 0) {
		if (c->repair &&
		    (rc = db_putv(t, DBI_CERT, hash, 32, key, kn)) != 0)
			goto out;
		rc = problem(c, DBI_DEVICE, key, kn, c->repair,
		    "identity certificate is not bound to it");
	}
out:
	free(serial);
	return rc < 0 ? rc : 0;
}

/* SERIAL and CERT: the device named must exist. */
static int
check_binding(struct store_txn *t, enum store_dbi d, const MDB_val *k,
    const MDB_val *v, struct check_ctx *c)
{
	char   id[KEY_MAX + 1];
	size_t n;
	int    rc;

	check_tick(c);
	if (v->mv_size == 0 || v->mv_size > KEY_MAX)
		rc = 0;
	else if ((rc = db_has(t, DBI_DEVICE, v->mv_data, v->mv_size)) < 0)
		return rc;
	if (rc == 1)
		return 0;
	n = v->mv_size <= KEY_MAX ? v->mv_size : 0;
	memcpy(id, v->mv_data, n);
	id[n] = '\0';
	if ((rc = problem(c, d, k->mv_data, k->mv_size, c->repair,
		 "names device \"%s\", which does not exist", id)) != 0)
		return rc;
	return c->repair ? 1 : 0;
}

static int
check_serial(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return check_binding(t, DBI_SERIAL, k, v, arg);
}

static int
check_cert(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return check_binding(t, DBI_CERT, k, v, arg);
}

/*
 * ENROLL: the record decodes and holds its ID and number; the number is
 * indexed to it (repair: index it); a user channel's device channel
 * exists and indexes it (repair: add the entry); a device channel has a
 * device record.
 */
static int
check_enroll(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_ENROLL_ID, TAG_ENROLL_EID, 0};
	struct check_ctx     *c = arg;
	const unsigned char  *p;
	unsigned char	      key[KEY_MAX], eb[16];
	char		     *dev = NULL, other[KEY_MAX + 1];
	const char	     *why;
	MDB_val		      ev, dv;
	size_t		      n, kn = k->mv_size;
	uint64_t	      eid, deid = 0;
	int		      rc, user;

	check_tick(c);
	memcpy(key, k->mv_data, kn);
	if ((why = rec_problem(v, REC_ENROLL, req)) != NULL)
		return problem(c, DBI_ENROLL, key, kn, 0, "%s", why);
	rec_field(v, REC_ENROLL, TAG_ENROLL_ID, &p, &n);
	if (n != kn || memcmp(p, key, n) != 0)
		return problem(c, DBI_ENROLL, key, kn, 0,
		    "record holds another enrollment ID");
	rec_field(v, REC_ENROLL, TAG_ENROLL_EID, &p, &n);
	if (n != 8 || (eid = key_get_u64(p)) == 0)
		return problem(c, DBI_ENROLL, key, kn, 0,
		    "enrollment number is malformed");
	if (eid > c->max_eid)
		c->max_eid = eid;
	if ((rc = rec_field_str(v, REC_ENROLL, TAG_ENROLL_DEVICE, &dev)) < 0)
		return rc;
	user = dev != NULL && (strlen(dev) != kn || memcmp(dev, key, kn) != 0);
	/* Number -> ID. */
	be64(eb, eid);
	rc = db_getv(t, DBI_EID, eb, 8, &ev);
	if (rc == STORE_ENOTFOUND) {
		if (c->repair &&
		    (rc = db_putv(t, DBI_EID, eb, 8, key, kn)) != 0)
			goto out;
		rc = problem(c, DBI_ENROLL, key, kn, c->repair,
		    "number %llu is not indexed", (unsigned long long)eid);
	} else if (rc == 0 &&
	    (ev.mv_size != kn || memcmp(ev.mv_data, key, kn) != 0)) {
		n = ev.mv_size < KEY_MAX ? ev.mv_size : KEY_MAX;
		memcpy(other, ev.mv_data, n);
		other[n] = '\0';
		rc = problem(c, DBI_ENROLL, key, kn, 0,
		    "number %llu is indexed to \"%s\"", (unsigned long long)eid,
		    other);
	}
	if (rc < 0)
		goto out;
	if (user) {
		/* A user channel: its device channel, and the index entry. */
		if (strlen(dev) == 0 || strlen(dev) > KEY_MAX)
			rc = STORE_ENOTFOUND;
		else
			rc = db_getv(t, DBI_ENROLL, dev, strlen(dev), &dv);
		if (rc == 0 &&
		    (rc = rec_field(&dv, REC_ENROLL, TAG_ENROLL_EID, &p, &n)) ==
			1 &&
		    n == 8)
			deid = key_get_u64(p);
		if (rc == STORE_ENOTFOUND || (rc >= 0 && deid == 0)) {
			rc = problem(c, DBI_ENROLL, key, kn, 0,
			    "user channel of device channel \"%s\", which does "
			    "not exist",
			    dev);
			goto out;
		}
		if (rc < 0)
			goto out;
		be64(eb, deid);
		be64(eb + 8, eid);
		if ((rc = db_has(t, DBI_UCHAN, eb, 16)) == 0) {
			if (c->repair &&
			    (rc = db_putv(t, DBI_UCHAN, eb, 16, "", 0)) != 0)
				goto out;
			rc = problem(c, DBI_ENROLL, key, kn, c->repair,
			    "user channel is not indexed under its device");
		}
	} else if ((rc = db_has(t, DBI_DEVICE, key, kn)) == 0)
		rc = problem(c, DBI_ENROLL, key, kn, 0,
		    "device channel without a device record");
out:
	free(dev);
	return rc < 0 ? rc : 0;
}

/*
 * EID: each number names an enrollment that has that number (repair:
 * drop the entry). Sound numbers are collected for the passes after.
 */
static int
check_eid(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct check_ctx    *c = arg;
	const unsigned char *p;
	MDB_val		     ev;
	char		     id[KEY_MAX + 1];
	size_t		     n;
	uint64_t	     eid;
	int		     rc;

	check_tick(c);
	if (k->mv_size != 8 || v->mv_size == 0 || v->mv_size > KEY_MAX) {
		if ((rc = problem(c, DBI_EID, k->mv_data, k->mv_size, c->repair,
			 "malformed entry")) != 0)
			return rc;
		return c->repair;
	}
	eid = key_get_u64(k->mv_data);
	memcpy(id, v->mv_data, v->mv_size);
	id[v->mv_size] = '\0';
	rc = db_getv(t, DBI_ENROLL, id, v->mv_size, &ev);
	if (rc == STORE_ENOTFOUND) {
		if ((rc = problem(c, DBI_EID, k->mv_data, k->mv_size, c->repair,
			 "names enrollment \"%s\", which does not "
			 "exist",
			 id)) != 0)
			return rc;
		return c->repair;
	}
	if (rc != 0)
		return rc;
	if (rec_field(&ev, REC_ENROLL, TAG_ENROLL_EID, &p, &n) == 1 && n == 8 &&
	    key_get_u64(p) == eid)
		return u64set_add(&c->eids, eid);
	if (rec_field(&ev, REC_ENROLL, TAG_ENROLL_EID, &p, &n) != 1 || n != 8)
		return 0; /* reported with the enrollment */
	if ((rc = problem(c, DBI_EID, k->mv_data, k->mv_size, c->repair,
		 "names enrollment \"%s\", whose number is %llu", id,
		 (unsigned long long)key_get_u64(p))) != 0)
		return rc;
	return c->repair;
}

/* An entry keyed by an enrollment number that is not in use. */
static int
check_orphan(
    struct check_ctx *c, enum store_dbi d, const MDB_val *k, const char *what)
{
	int rc;

	if ((rc = problem(c, d, k->mv_data, k->mv_size, c->repair,
		 "%s of enrollment number %llu, which does not exist", what,
		 (unsigned long long)key_get_u64(k->mv_data))) != 0)
		return rc;
	return c->repair;
}

static int
check_malformed(struct check_ctx *c, enum store_dbi d, const MDB_val *k)
{
	int rc;

	if ((rc = problem(c, d, k->mv_data, k->mv_size, c->repair,
		 "malformed key")) != 0)
		return rc;
	return c->repair;
}

/* UCHAN: both numbers are in use (repair: drop the entry). */
static int
check_uchan(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct check_ctx *c = arg;

	(void)t;
	(void)v;
	check_tick(c);
	if (k->mv_size != 16)
		return check_malformed(c, DBI_UCHAN, k);
	if (!u64set_has(&c->eids, key_get_u64(k->mv_data)))
		return check_orphan(c, DBI_UCHAN, k, "user channel");
	if (!u64set_has(
		&c->eids, key_get_u64((unsigned char *)k->mv_data + 8))) {
		int rc;

		if ((rc = problem(c, DBI_UCHAN, k->mv_data, k->mv_size,
			 c->repair,
			 "names user channel number %llu, which does "
			 "not exist",
			 (unsigned long long)key_get_u64(
			     (unsigned char *)k->mv_data + 8))) != 0)
			return rc;
		return c->repair;
	}
	return 0;
}

/* MSG: the enrollment exists (repair: drop); the record decodes. */
static int
check_msg(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct check_ctx *c = arg;
	const char	 *why;

	(void)t;
	check_tick(c);
	if (k->mv_size != 9)
		return check_malformed(c, DBI_MSG, k);
	if (!u64set_has(&c->eids, key_get_u64(k->mv_data)))
		return check_orphan(c, DBI_MSG, k, "raw message");
	if ((why = rec_problem(v, REC_MSG, NULL)) != NULL)
		return problem(
		    c, DBI_MSG, k->mv_data, k->mv_size, 0, "%s", why);
	return 0;
}

/* RESULT: the enrollment exists (repair: drop); the record decodes. */
static int
check_result(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct check_ctx *c = arg;
	const char	 *why;
	uint64_t	  seq;

	(void)t;
	check_tick(c);
	if (k->mv_size != 16)
		return check_malformed(c, DBI_RESULT, k);
	if (!u64set_has(&c->eids, key_get_u64(k->mv_data)))
		return check_orphan(c, DBI_RESULT, k, "result");
	if ((seq = key_get_u64((unsigned char *)k->mv_data + 8)) > c->max_seq)
		c->max_seq = seq;
	if ((why = rec_problem(v, REC_RESULT, NULL)) != NULL)
		return problem(
		    c, DBI_RESULT, k->mv_data, k->mv_size, 0, "%s", why);
	return 0;
}

/*
 * QUEUE: the enrollment exists (repair: drop); the record decodes; the
 * command exists (repair: drop the entry and its position, as the queue
 * would stop at it); the position entry points back (repair: add it, or
 * drop this entry when the command is queued elsewhere already).
 */
static int
check_queue(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_QUEUE_UUID, 0};
	struct check_ctx     *c = arg;
	unsigned char	      key[17], pk[KEY_MAX];
	char		     *uuid = NULL;
	const char	     *why;
	MDB_val		      pv;
	size_t		      pn;
	uint64_t	      seq;
	int		      rc;

	check_tick(c);
	if (k->mv_size != 17)
		return check_malformed(c, DBI_QUEUE, k);
	if (!u64set_has(&c->eids, key_get_u64(k->mv_data)))
		return check_orphan(c, DBI_QUEUE, k, "queue entry");
	memcpy(key, k->mv_data, 17);
	if ((seq = key_get_u64(key + 9)) > c->max_seq)
		c->max_seq = seq;
	if ((why = rec_problem(v, REC_QUEUE, req)) != NULL)
		return problem(c, DBI_QUEUE, key, 17, 0, "%s", why);
	if ((rc = rec_field_str(v, REC_QUEUE, TAG_QUEUE_UUID, &uuid)) < 0)
		return rc;
	pn = strlen(uuid);
	if (pn == 0 || pn > KEY_MAX - 8) {
		free(uuid);
		return problem(
		    c, DBI_QUEUE, key, 17, 0, "command UUID is malformed");
	}
	memcpy(pk, key, 8);
	memcpy(pk + 8, uuid, pn);
	pn += 8;
	if ((rc = db_has(t, DBI_CMD, uuid, strlen(uuid))) == 0) {
		/* Undeliverable (the queue would stop at it): drop it and
		 * its position. */
		if (c->repair && db_getv(t, DBI_QPOS, pk, pn, &pv) == 0 &&
		    pv.mv_size == 9 && memcmp(pv.mv_data, key + 8, 9) == 0 &&
		    (rc = db_delv(t, DBI_QPOS, pk, pn)) != 0)
			goto out;
		if ((rc = problem(c, DBI_QUEUE, key, 17, c->repair,
			 "queues command %s, which does not exist", uuid)) == 0)
			rc = c->repair;
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = db_getv(t, DBI_QPOS, pk, pn, &pv);
	if (rc == STORE_ENOTFOUND) {
		if (c->repair &&
		    (rc = db_putv(t, DBI_QPOS, pk, pn, key + 8, 9)) != 0)
			goto out;
		rc = problem(c, DBI_QUEUE, key, 17, c->repair,
		    "command %s has no queue position entry", uuid);
	} else if (rc == 0 &&
	    (pv.mv_size != 9 || memcmp(pv.mv_data, key + 8, 9) != 0)) {
		if ((rc = problem(c, DBI_QUEUE, key, 17, c->repair,
			 "a second queue entry for command %s", uuid)) == 0)
			rc = c->repair;
	}
out:
	free(uuid);
	return rc;
}

/* QPOS: the enrollment exists and the queue entry it points at is of
 * this command (repair: drop). */
static int
check_qpos(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct check_ctx *c = arg;
	unsigned char	  qk[17];
	char		 *uuid = NULL;
	MDB_val		  qv;
	size_t		  un;
	int		  rc, ok = 0;

	check_tick(c);
	if (k->mv_size <= 8)
		return check_malformed(c, DBI_QPOS, k);
	if (!u64set_has(&c->eids, key_get_u64(k->mv_data)))
		return check_orphan(c, DBI_QPOS, k, "queue position");
	if (v->mv_size == 9) {
		memcpy(qk, k->mv_data, 8);
		memcpy(qk + 8, v->mv_data, 9);
		rc = db_getv(t, DBI_QUEUE, qk, 17, &qv);
		if (rc != 0 && rc != STORE_ENOTFOUND)
			return rc;
		un = k->mv_size - 8;
		if (rc == 0 &&
		    rec_field_str(&qv, REC_QUEUE, TAG_QUEUE_UUID, &uuid) == 0 &&
		    uuid != NULL && strlen(uuid) == un &&
		    memcmp(uuid, (unsigned char *)k->mv_data + 8, un) == 0)
			ok = 1;
		free(uuid);
	}
	if (ok)
		return 0;
	if ((rc = problem(c, DBI_QPOS, k->mv_data, k->mv_size, c->repair,
		 "points at no queue entry of this command")) != 0)
		return rc;
	return c->repair;
}

/* CMDQ: the command and the enrollment exist (repair: drop); the
 * record decodes. */
static int
check_cmdq(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct check_ctx    *c = arg;
	const unsigned char *kp = k->mv_data, *p;
	const char	    *why;
	char		     uuid[KEY_MAX + 1];
	size_t		     l, n;
	uint64_t	     eid, seq;
	int		     rc;

	check_tick(c);
	if (k->mv_size < 11 || (l = (size_t)kp[0] << 8 | kp[1]) == 0 ||
	    l != k->mv_size - 10)
		return check_malformed(c, DBI_CMDQ, k);
	memcpy(uuid, kp + 2, l);
	uuid[l] = '\0';
	eid = key_get_u64(kp + 2 + l);
	if ((rc = db_has(t, DBI_CMD, uuid, l)) < 0)
		return rc;
	if (rc == 0) {
		if ((rc = problem(c, DBI_CMDQ, kp, k->mv_size, c->repair,
			 "status of command %s, which does not exist", uuid)) !=
		    0)
			return rc;
		return c->repair;
	}
	if (!u64set_has(&c->eids, eid)) {
		if ((rc = problem(c, DBI_CMDQ, kp, k->mv_size, c->repair,
			 "status for enrollment number %llu, which does not exist",
			 (unsigned long long)eid)) != 0)
			return rc;
		return c->repair;
	}
	if ((why = rec_problem(v, REC_CMDQ, NULL)) != NULL)
		return problem(c, DBI_CMDQ, kp, k->mv_size, 0, "%s", why);
	if (rec_field(v, REC_CMDQ, TAG_CMDQ_SEQ, &p, &n) == 1 && n == 8 &&
	    (seq = key_get_u64(p)) > c->max_seq)
		c->max_seq = seq;
	return 0;
}

/* CMD: the record decodes and holds its own UUID. */
static int
check_cmd(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {1, 3, 0};
	struct check_ctx     *c = arg;
	const unsigned char  *p;
	const char	     *why;
	size_t		      n;

	(void)t;
	check_tick(c);
	if ((why = rec_problem(v, REC_CMD, req)) != NULL)
		return problem(
		    c, DBI_CMD, k->mv_data, k->mv_size, 0, "%s", why);
	rec_field(v, REC_CMD, 1, &p, &n);
	if (n != k->mv_size || memcmp(p, k->mv_data, n) != 0)
		return problem(c, DBI_CMD, k->mv_data, k->mv_size, 0,
		    "record holds another command UUID");
	return 0;
}

/* A counter in meta must be above every number in use. */
static int
check_counter(
    struct store_txn *t, struct check_ctx *c, const char *name, uint64_t in_use)
{
	unsigned char b[8];
	MDB_val	      v;
	uint64_t      have = 0;
	int	      rc, present = 0;

	rc = db_getv(t, DBI_META, name, strlen(name), &v);
	if (rc == 0 && v.mv_size == 8) {
		have = key_get_u64(v.mv_data);
		present = 1;
	} else if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	if ((present && have >= in_use) ||
	    (rc == STORE_ENOTFOUND && in_use == 0))
		return 0;
	be64(b, in_use > have ? in_use : have);
	if (c->repair &&
	    (rc = db_putv(t, DBI_META, name, strlen(name), b, 8)) != 0)
		return rc;
	if (!present && rc == 0 && v.mv_size != 8)
		return problem(c, DBI_META, name, strlen(name), c->repair,
		    "counter is malformed");
	return problem(c, DBI_META, name, strlen(name), c->repair,
	    "counter %llu is below %llu, which is in use",
	    (unsigned long long)have, (unsigned long long)in_use);
}

/* All passes, in an order where each can rely on the ones before. */
static int
check_op(struct store_txn *t, void *arg)
{
	static const struct {
		enum store_dbi d;
		visit_fn       fn;
	} passes[] = {
	    /* Enrollments before their numbers (repair adds missing
	     * numbers), numbers before everything keyed by them. */
	    {DBI_DEVICE, check_device},
	    {DBI_SERIAL, check_serial},
	    {DBI_CERT, check_cert},
	    {DBI_ENROLL, check_enroll},
	    {DBI_EID, check_eid},
	    {DBI_UCHAN, check_uchan},
	    {DBI_MSG, check_msg},
	    {DBI_RESULT, check_result},
	    {DBI_CMD, check_cmd},
	    {DBI_QUEUE, check_queue},
	    {DBI_QPOS, check_qpos},
	    {DBI_CMDQ, check_cmdq},
	};
	struct check_ctx *c = arg;
	MDB_stat	  st;
	MDB_val		  v;
	size_t		  i;
	int		  d, rc;

	check_reset(c);
	for (d = 0; d < DBI__MAX; d++) {
		if ((rc = mdb_stat(t->txn, t->s->dbi[d], &st)) != 0)
			return store_rc(rc);
		c->total += st.ms_entries;
	}
	for (i = 0; i < NF(passes); i++) {
		if ((rc = db_visit(t, passes[i].d, passes[i].fn, c, NULL)) != 0)
			return rc;
		if (passes[i].d == DBI_EID)
			u64set_sort(&c->eids);
	}
	rc = db_getv(t, DBI_META, "schema_version", 14, &v);
	if (rc == STORE_ENOTFOUND ||
	    (rc == 0 &&
		(v.mv_size != 8 ||
		    key_get_u64(v.mv_data) != STORE_SCHEMA_VERSION)))
		rc = problem(c, DBI_META, "schema_version", 14, 0,
		    "missing or not %d", STORE_SCHEMA_VERSION);
	if (rc != 0 || (rc = check_counter(t, c, "seq", c->max_seq)) != 0 ||
	    (rc = check_counter(t, c, "eid", c->max_eid)) != 0)
		return rc;
	progress(c->prog, "check", c->total, c->total);
	return 0;
}

/* See store.h. Problems are handed to cb once the transaction is over,
 * so that a repair run again after map growth reports them once. */
int
store_check(struct store *s, int repair, const struct store_progress *prog,
    store_problem_cb cb, void *arg, struct store_check_count *count)
{
	struct store_problem sp;
	struct check_ctx     c;
	size_t		     i;
	int		     rc;

	memset(&c, 0, sizeof(c));
	memset(count, 0, sizeof(*count));
	c.repair = repair;
	c.prog = prog;
	rc =
	    repair ? store_write(s, check_op, &c) : store_read(s, check_op, &c);
	if (rc == 0) {
		count->records = c.total;
		for (i = 0; i < c.np; i++) {
			count->problems++;
			count->repaired += c.p[i].repaired != 0;
			sp.db = c.p[i].db;
			sp.key = c.p[i].key;
			sp.what = c.p[i].what;
			sp.repaired = c.p[i].repaired;
			if (cb != NULL && (rc = cb(&sp, arg)) != 0)
				break;
		}
	}
	check_reset(&c);
	return rc;
}

/* ---- purge ---- */

_Static_assert(DBI__MAX <= STORE_REPORT_DB_MAX,
    "a purge report counts every sub-database");

struct purge_ctx {
	struct store_purge_report *r;
	struct strset		   devs;  /* device IDs to remove */
	struct strset		   want;  /* single enrollments asked for */
	struct strset		   found; /* enrollment IDs found */
	struct u64set		   eids;  /* their numbers */
	struct strset		   uuids; /* commands they touched */
};

static void
purge_ctx_free(struct purge_ctx *pc)
{
	strset_free(&pc->devs);
	strset_free(&pc->want);
	strset_free(&pc->found);
	u64set_free(&pc->eids);
	strset_free(&pc->uuids);
}

void
store_purge_report_free(struct store_purge_report *r)
{
	size_t i;

	if (r == NULL)
		return;
	for (i = 0; i < r->ndevices; i++)
		free(r->devices[i]);
	for (i = 0; i < r->nenrollments; i++)
		free(r->enrollments[i]);
	free(r->devices);
	free(r->enrollments);
	memset(r, 0, sizeof(*r));
}

static void
purge_report_init(struct store_purge_report *r)
{
	int d;

	store_purge_report_free(r);
	r->ndb = DBI__MAX;
	for (d = 0; d < DBI__MAX && d < STORE_REPORT_DB_MAX; d++)
		r->db[d] = store_dbi_names[d];
}

/* Is id a device in the set, or a user channel ("DEVICE:user") of one? */
static int
purge_owned(const struct purge_ctx *pc, const unsigned char *id, size_t n)
{
	size_t i;

	if (strset_has(&pc->devs, id, n))
		return 1;
	for (i = 1; i < n; i++)
		if (id[i] == ':' && strset_has(&pc->devs, id, i))
			return 1;
	return 0;
}

/* ENROLL: find the enrollments of the devices, and those asked for. */
static int
purge_find_enroll(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct purge_ctx    *pc = arg;
	const unsigned char *p;
	size_t		     n;
	int		     rc, hit;

	(void)t;
	hit = purge_owned(pc, k->mv_data, k->mv_size) ||
	    strset_has(&pc->want, k->mv_data, k->mv_size);
	if (!hit && rec_field(v, REC_ENROLL, TAG_ENROLL_DEVICE, &p, &n) == 1)
		hit = strset_has(&pc->devs, p, n);
	if (!hit)
		return 0;
	if ((rc = strset_add(&pc->found, k->mv_data, k->mv_size)) != 0)
		return rc;
	if (rec_field(v, REC_ENROLL, TAG_ENROLL_EID, &p, &n) == 1 && n == 8)
		return u64set_add(&pc->eids, key_get_u64(p));
	return 0;
}

/* EID: numbers whose enrollment record is already gone. */
static int
purge_find_eid(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct purge_ctx *pc = arg;
	int		  rc;

	(void)t;
	if (k->mv_size != 8 ||
	    (!purge_owned(pc, v->mv_data, v->mv_size) &&
		!strset_has(&pc->want, v->mv_data, v->mv_size)))
		return 0;
	if ((rc = strset_add(&pc->found, v->mv_data, v->mv_size)) != 0)
		return rc;
	return u64set_add(&pc->eids, key_get_u64(k->mv_data));
}

/* Remember the command of a queue entry or result being removed. */
static int
purge_note_rec_uuid(struct store_txn *t, const MDB_val *k, const MDB_val *v,
    void *arg, enum rec_kind kind)
{
	struct purge_ctx    *pc = arg;
	const unsigned char *p;
	size_t		     n;

	(void)t;
	(void)k;
	if (rec_field(v, kind, 1, &p, &n) == 1 && n > 0 &&
	    memchr(p, '\0', n) == NULL)
		return strset_add(&pc->uuids, p, n);
	return 0;
}

static int
purge_note_queue(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return purge_note_rec_uuid(t, k, v, arg, REC_QUEUE);
}

static int
purge_note_result(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return purge_note_rec_uuid(t, k, v, arg, REC_RESULT);
}

static int
purge_note_qpos(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct purge_ctx *pc = arg;

	(void)t;
	(void)v;
	if (k->mv_size <= 8 ||
	    memchr((unsigned char *)k->mv_data + 8, '\0', k->mv_size - 8))
		return 0;
	return strset_add(
	    &pc->uuids, (unsigned char *)k->mv_data + 8, k->mv_size - 8);
}

/* UCHAN: entries naming one of the numbers as the user channel. */
static int
purge_uchan(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct purge_ctx *pc = arg;

	(void)t;
	(void)v;
	return k->mv_size == 16 &&
	    (u64set_has(&pc->eids, key_get_u64(k->mv_data)) ||
		u64set_has(
		    &pc->eids, key_get_u64((unsigned char *)k->mv_data + 8)));
}

/* CMDQ: per-command status of the removed enrollments. */
static int
purge_cmdq(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct purge_ctx    *pc = arg;
	const unsigned char *kp = k->mv_data;
	size_t		     l;
	int		     rc;

	(void)t;
	(void)v;
	if (k->mv_size < 11 ||
	    (l = (size_t)kp[0] << 8 | kp[1]) != k->mv_size - 10 ||
	    !u64set_has(&pc->eids, key_get_u64(kp + 2 + l)))
		return 0;
	if (memchr(kp + 2, '\0', l) == NULL &&
	    (rc = strset_add(&pc->uuids, kp + 2, l)) != 0)
		return rc;
	return 1;
}

/* SERIAL and CERT: bindings to the removed devices. */
static int
purge_binding(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct purge_ctx *pc = arg;

	(void)t;
	(void)k;
	return strset_has(&pc->devs, v->mv_data, v->mv_size);
}

/* Does any enrollment still hold a status for this command? */
static int
command_referenced(struct store_txn *t, const char *uuid)
{
	MDB_cursor *c;
	MDB_val	    k, v;
	struct key  pk;
	int	    rc;

	key_init(&pk);
	key_str(&pk, uuid);
	if (pk.overflow)
		return 1;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_CMDQ], &c)) != 0)
		return store_rc(rc);
	k.mv_data = pk.b;
	k.mv_size = pk.len;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return store_rc(rc);
	return k.mv_size == pk.len + 8 && memcmp(k.mv_data, pk.b, pk.len) == 0;
}

/*
 * Remove everything the context names: first collect the enrollments
 * (those of the devices, user channels included, and those asked for)
 * with their numbers, then delete what is keyed by the numbers, the
 * per-command status, the commands left without any enrollment, and
 * finally the devices with their serial and certificate bindings.
 */
static int
purge_run(struct store_txn *t, struct purge_ctx *pc)
{
	struct store_purge_report *r = pc->r;
	unsigned char		   eb[8];
	MDB_val			   v;
	size_t			   i, n, total = 0;
	char			 **list;
	int			   rc, d, existed;

	strset_sort(&pc->devs);
	strset_sort(&pc->want);
	if ((rc = db_visit(t, DBI_ENROLL, purge_find_enroll, pc, NULL)) != 0 ||
	    (rc = db_visit(t, DBI_EID, purge_find_eid, pc, NULL)) != 0)
		return rc;
	strset_sort(&pc->found);
	u64set_sort(&pc->eids);

	for (i = 0; i < pc->eids.n; i++) {
		be64(eb, pc->eids.v[i]);
		if ((rc = db_del_prefix(t, DBI_MSG, eb, 8, NULL, NULL,
			 &r->removed[DBI_MSG])) != 0 ||
		    (rc = db_del_prefix(t, DBI_QUEUE, eb, 8, purge_note_queue,
			 pc, &r->removed[DBI_QUEUE])) != 0 ||
		    (rc = db_del_prefix(t, DBI_QPOS, eb, 8, purge_note_qpos, pc,
			 &r->removed[DBI_QPOS])) != 0 ||
		    (rc = db_del_prefix(t, DBI_RESULT, eb, 8, purge_note_result,
			 pc, &r->removed[DBI_RESULT])) != 0 ||
		    (rc = db_del_prefix(t, DBI_UCHAN, eb, 8, NULL, NULL,
			 &r->removed[DBI_UCHAN])) != 0)
			return rc;
		if ((rc = db_delv(t, DBI_EID, eb, 8)) == 0)
			r->removed[DBI_EID]++;
		else if (rc != STORE_ENOTFOUND)
			return rc;
	}
	if ((rc = db_visit(
		 t, DBI_UCHAN, purge_uchan, pc, &r->removed[DBI_UCHAN])) != 0)
		return rc;
	for (i = 0; i < pc->found.n; i++) {
		n = strlen(pc->found.v[i]);
		if ((rc = db_delv(t, DBI_ENROLL, pc->found.v[i], n)) == 0)
			r->removed[DBI_ENROLL]++;
		else if (rc != STORE_ENOTFOUND)
			return rc;
	}
	if ((rc = db_visit(
		 t, DBI_CMDQ, purge_cmdq, pc, &r->removed[DBI_CMDQ])) != 0)
		return rc;
	strset_sort(&pc->uuids);
	for (i = 0; i < pc->uuids.n; i++) {
		if ((rc = command_referenced(t, pc->uuids.v[i])) < 0)
			return rc;
		if (rc == 1)
			continue;
		rc =
		    db_delv(t, DBI_CMD, pc->uuids.v[i], strlen(pc->uuids.v[i]));
		if (rc == 0)
			r->removed[DBI_CMD]++;
		else if (rc != STORE_ENOTFOUND)
			return rc;
	}

	/* The devices: their record, then every binding to them. */
	if ((r->devices = calloc(pc->devs.n + 1, sizeof(char *))) == NULL)
		return STORE_ENOMEM;
	for (i = 0; i < pc->devs.n; i++) {
		n = strlen(pc->devs.v[i]);
		rc = n > 0 && n <= KEY_MAX
		    ? db_getv(t, DBI_DEVICE, pc->devs.v[i], n, &v)
		    : STORE_ENOTFOUND;
		if (rc != 0 && rc != STORE_ENOTFOUND)
			return rc;
		existed = rc == 0 || strset_has(&pc->found, pc->devs.v[i], n);
		if (rc == 0) {
			if ((rc = db_delv(t, DBI_DEVICE, pc->devs.v[i], n)) !=
			    0)
				return rc;
			r->removed[DBI_DEVICE]++;
		}
		if (existed &&
		    (r->devices[r->ndevices++] = strdup(pc->devs.v[i])) == NULL)
			return STORE_ENOMEM;
	}
	if ((rc = db_visit(t, DBI_SERIAL, purge_binding, pc,
		 &r->removed[DBI_SERIAL])) != 0 ||
	    (rc = db_visit(
		 t, DBI_CERT, purge_binding, pc, &r->removed[DBI_CERT])) != 0)
		return rc;
	/*
	 * ADE device records and VPP licences tied to the serial numbers
	 * join here once those sub-databases exist.
	 */

	list = calloc(pc->found.n + 1, sizeof(char *));
	if (list == NULL)
		return STORE_ENOMEM;
	r->enrollments = list;
	for (i = 0; i < pc->found.n; i++) {
		if ((list[i] = strdup(pc->found.v[i])) == NULL)
			return STORE_ENOMEM;
		r->nenrollments++;
	}
	for (d = 0; d < DBI__MAX; d++)
		total += r->removed[d];
	return total == 0 ? STORE_ENOTFOUND : 0;
}

/* See store.h. */
int
store_purge_devices(struct store_txn *t, const char *const *ids, size_t n,
    struct store_purge_report *r)
{
	struct purge_ctx pc;
	size_t		 i;
	int		 rc = 0;

	purge_report_init(r);
	memset(&pc, 0, sizeof(pc));
	pc.r = r;
	for (i = 0; i < n && rc == 0; i++)
		rc = strset_add(&pc.devs, ids[i], strlen(ids[i]));
	if (rc == 0)
		rc = purge_run(t, &pc);
	purge_ctx_free(&pc);
	return rc;
}

/* See store.h. A device channel given here takes its whole device. */
int
store_purge_enrollments(struct store_txn *t, const char *const *ids, size_t n,
    struct store_purge_report *r)
{
	struct purge_ctx pc;
	MDB_val		 v;
	char		*dev;
	size_t		 i, l;
	int		 rc = 0;

	purge_report_init(r);
	memset(&pc, 0, sizeof(pc));
	pc.r = r;
	for (i = 0; i < n && rc == 0; i++) {
		l = strlen(ids[i]);
		dev = NULL;
		if (l == 0 || l > KEY_MAX)
			continue;
		rc = db_getv(t, DBI_ENROLL, ids[i], l, &v);
		if (rc == 0)
			rc = rec_field_str(
			    &v, REC_ENROLL, TAG_ENROLL_DEVICE, &dev);
		else if (rc == STORE_ENOTFOUND)
			rc = 0;
		if (rc < 0)
			break;
		/* A device channel takes its whole device. */
		if (dev == NULL || strcmp(dev, ids[i]) == 0)
			rc = strset_add(
			    dev != NULL ? &pc.devs : &pc.want, ids[i], l);
		else
			rc = strset_add(&pc.want, ids[i], l);
		free(dev);
	}
	if (rc == 0)
		rc = purge_run(t, &pc);
	purge_ctx_free(&pc);
	return rc;
}

/*
 * Where the service and token of each record from Apple are written: one
 * row per kind of record. A record matches when its field `tag` equals
 * the topic or token name; the device it belongs to is then purged whole.
 * ADE device records and VPP assets, licences and users add their rows
 * (STORE_SOURCE_TOKEN) with their sub-databases.
 */
enum source_owner {
	OWNER_KEY = 0,	  /* the key is the device ID */
	OWNER_DEVICE_TAG, /* field owner_tag holds the device ID */
	OWNER_ENROLL_TAG  /* field owner_tag holds an enrollment ID */
};

static const struct source_scan {
	enum store_source src;
	enum store_dbi	  dbi;
	enum rec_kind	  kind;
	unsigned	  tag;
	enum source_owner owner;
	unsigned	  owner_tag;
} sources[] = {
    {STORE_SOURCE_TOPIC, DBI_DEVICE, REC_DEVICE, TAG_DEVICE_TOPIC, OWNER_KEY,
	0},
    {STORE_SOURCE_TOPIC, DBI_ENROLL, REC_ENROLL, TAG_ENROLL_TOPIC,
	OWNER_DEVICE_TAG, TAG_ENROLL_DEVICE},
    {STORE_SOURCE_TOPIC, DBI_MSG, REC_MSG, TAG_MSG_TOPIC, OWNER_ENROLL_TAG,
	TAG_MSG_ENROLL},
};

struct source_ctx {
	const struct source_scan *row;
	const char		 *name;
	struct purge_ctx	 *pc;
	size_t			  matched;
};

/* A record whose source field names the topic or token: note the device
 * it belongs to (its enrollment's device, for a raw message). */
static int
source_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct source_ctx	 *sc = arg;
	const struct source_scan *row = sc->row;
	const unsigned char	 *p;
	MDB_val			  ev;
	char			 *owner = NULL, *dev = NULL;
	size_t			  n;
	int			  rc;

	if (rec_field(v, row->kind, row->tag, &p, &n) != 1 ||
	    n != strlen(sc->name) || memcmp(p, sc->name, n) != 0)
		return 0;
	sc->matched++;
	if (row->owner == OWNER_KEY)
		return strset_add(&sc->pc->devs, k->mv_data, k->mv_size);
	if ((rc = rec_field_str(v, row->kind, row->owner_tag, &owner)) < 0)
		return rc;
	if (owner == NULL)
		return row->owner == OWNER_DEVICE_TAG
		    ? strset_add(&sc->pc->devs, k->mv_data, k->mv_size)
		    : 0;
	if (row->owner == OWNER_DEVICE_TAG) {
		rc = strset_add(&sc->pc->devs, owner, strlen(owner));
		free(owner);
		return rc;
	}
	/* An enrollment: its device, or itself when it is gone. */
	rc = *owner != '\0' && strlen(owner) <= KEY_MAX
	    ? db_getv(t, DBI_ENROLL, owner, strlen(owner), &ev)
	    : STORE_ENOTFOUND;
	if (rc == 0 &&
	    (rc = rec_field_str(&ev, REC_ENROLL, TAG_ENROLL_DEVICE, &dev)) ==
		0 &&
	    dev != NULL)
		rc = strset_add(&sc->pc->devs, dev, strlen(dev));
	else if (rc == 0 || rc == STORE_ENOTFOUND)
		rc = strset_add(&sc->pc->want, owner, strlen(owner));
	free(dev);
	free(owner);
	return rc;
}

/* See store.h: every row of sources[] for this kind of source. */
int
store_purge_source(struct store_txn *t, enum store_source src, const char *name,
    struct store_purge_report *r)
{
	struct purge_ctx  pc;
	struct source_ctx sc;
	size_t		  i, matched = 0;
	int		  rc = 0;

	purge_report_init(r);
	if (name == NULL || *name == '\0' || src >= STORE_SOURCE__MAX)
		return STORE_EINVAL;
	memset(&pc, 0, sizeof(pc));
	pc.r = r;
	for (i = 0; i < NF(sources) && rc == 0; i++) {
		if (sources[i].src != src)
			continue;
		memset(&sc, 0, sizeof(sc));
		sc.row = &sources[i];
		sc.name = name;
		sc.pc = &pc;
		rc = db_visit(t, sources[i].dbi, source_visit, &sc, NULL);
		matched += sc.matched;
	}
	if (rc == 0)
		rc = matched == 0 ? STORE_ENOTFOUND : purge_run(t, &pc);
	purge_ctx_free(&pc);
	return rc;
}

/* ---- verify scan, resolution, retention listing ---- */

/*
 * Many needles (a purge by topic proves thousands of devices gone) are
 * searched by length: a rolling hash of every window of that length is
 * looked up in a bit filter, then in the sorted hashes of the needles,
 * and a candidate is compared byte for byte. One pass over the data per
 * distinct length, whatever the number of needles.
 */
#define SCAN_BASE	 0x100000001b3ULL
#define SCAN_FILTER_BITS 20

struct scan_hash {
	uint64_t h;
	size_t	 idx;
};

struct scan_group {
	size_t		  len;
	uint64_t	  pow; /* SCAN_BASE^(len-1) */
	struct scan_hash *v;
	size_t		  n;
	unsigned char	 *filter;
};

struct scan_ctx {
	const void *const *needles;
	const size_t	  *lens;
	size_t		   n;
	struct scan_group *g;
	size_t		   ng;
	size_t		  *found; /* needles found in the current entry */
	size_t		   nfound;
};

static uint64_t
scan_hash_of(const unsigned char *p, size_t n)
{
	uint64_t h = 0;
	size_t	 i;

	for (i = 0; i < n; i++)
		h = h * SCAN_BASE + p[i];
	return h;
}

static int
scan_hash_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct scan_hash *)a)->h;
	uint64_t y = ((const struct scan_hash *)b)->h;

	return x < y ? -1 : x > y;
}

static void
scan_ctx_free(struct scan_ctx *c)
{
	size_t i;

	for (i = 0; i < c->ng; i++) {
		free(c->g[i].v);
		free(c->g[i].filter);
	}
	free(c->g);
	free(c->found);
}

/* Group the needles by length, hash them and build each group's bit
 * filter. */
static int
scan_ctx_init(struct scan_ctx *c, const void *const *needles,
    const size_t *lens, size_t n)
{
	struct scan_group *g;
	size_t		   i, j, k;
	uint64_t	   h;

	memset(c, 0, sizeof(*c));
	c->needles = needles;
	c->lens = lens;
	c->n = n;
	if ((c->g = calloc(n + 1, sizeof(*c->g))) == NULL ||
	    (c->found = calloc(n + 1, sizeof(*c->found))) == NULL)
		return STORE_ENOMEM;
	for (i = 0; i < n; i++) {
		if (lens[i] == 0)
			continue;
		for (j = 0; j < c->ng && c->g[j].len != lens[i]; j++)
			continue;
		g = &c->g[j];
		if (j == c->ng) {
			c->ng++;
			g->len = lens[i];
			for (g->pow = 1, k = 1; k < lens[i]; k++)
				g->pow *= SCAN_BASE;
			if ((g->v = calloc(n, sizeof(*g->v))) == NULL ||
			    (g->filter = calloc(1,
				 (size_t)1 << (SCAN_FILTER_BITS - 3))) == NULL)
				return STORE_ENOMEM;
		}
		h = scan_hash_of(needles[i], lens[i]);
		g->v[g->n].h = h;
		g->v[g->n++].idx = i;
		g->filter[(h & ((1u << SCAN_FILTER_BITS) - 1)) >> 3] |=
		    (unsigned char)(1u << (h & 7));
	}
	for (j = 0; j < c->ng; j++)
		qsort(c->g[j].v, c->g[j].n, sizeof(*c->g[j].v), scan_hash_cmp);
	return 0;
}

/* Note every needle found in p[0..n) (once per entry). */
static void
scan_buf(struct scan_ctx *c, const unsigned char *p, size_t n)
{
	const struct scan_group *g;
	const struct scan_hash	*e;
	struct scan_hash	 key;
	size_t			 j, i, f, lo, hi;
	uint64_t		 h, fb;

	for (j = 0; j < c->ng; j++) {
		g = &c->g[j];
		if (n < g->len)
			continue;
		h = scan_hash_of(p, g->len);
		for (i = 0;; i++) {
			fb = h & ((1u << SCAN_FILTER_BITS) - 1);
			if (g->filter[fb >> 3] & (1u << (fb & 7))) {
				key.h = h;
				e = bsearch(&key, g->v, g->n, sizeof(*g->v),
				    scan_hash_cmp);
				/* Equal hashes sit together: try each. */
				for (lo = e ? (size_t)(e - g->v) : g->n;
				     lo > 0 && g->v[lo - 1].h == h; lo--)
					continue;
				for (hi = lo; hi < g->n && g->v[hi].h == h;
				     hi++) {
					size_t idx = g->v[hi].idx;

					if (memcmp(p + i, c->needles[idx],
						g->len) != 0)
						continue;
					for (f = 0; f < c->nfound &&
					     c->found[f] != idx;
					     f++)
						continue;
					if (f == c->nfound)
						c->found[c->nfound++] = idx;
				}
			}
			if (i + g->len >= n)
				break;
			h = (h - p[i] * g->pow) * SCAN_BASE + p[i + g->len];
		}
	}
}

/* See store.h. */
long long
store_scan(struct store_txn *t, const void *const *needles, const size_t *lens,
    size_t n, store_hit_cb cb, void *arg)
{
	struct scan_ctx c;
	MDB_cursor     *cur;
	MDB_val		k, v;
	long long	hits = 0;
	size_t		i;
	int		d, rc, stop = 0;

	if ((rc = scan_ctx_init(&c, needles, lens, n)) != 0)
		goto out;
	for (d = 0; d < DBI__MAX && !stop; d++) {
		if ((rc = mdb_cursor_open(t->txn, t->s->dbi[d], &cur)) != 0) {
			rc = store_rc(rc);
			goto out;
		}
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		     rc == 0 && !stop;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			c.nfound = 0;
			scan_buf(&c, k.mv_data, k.mv_size);
			scan_buf(&c, v.mv_data, v.mv_size);
			for (i = 0; i < c.nfound && !stop; i++) {
				hits++;
				if (cb != NULL &&
				    (stop = cb(store_dbi_names[d], k.mv_data,
					 k.mv_size, c.found[i], arg)) != 0)
					break;
			}
		}
		mdb_cursor_close(cur);
		if (!stop && rc != MDB_NOTFOUND) {
			rc = store_rc(rc);
			goto out;
		}
		rc = 0;
	}
	if (stop < 0)
		rc = stop;
out:
	scan_ctx_free(&c);
	return rc != 0 ? rc : hits;
}

/* See store.h: an enrollment ID, then a device ID, then a serial. */
int
store_device_resolve(struct store_txn *t, const char *arg, char **device_id)
{
	struct store_enrollment *e = NULL;
	MDB_val			 v;
	size_t			 n = strlen(arg);
	int			 rc;

	*device_id = NULL;
	if (n == 0 || n > KEY_MAX)
		return STORE_ENOTFOUND;
	rc = store_enrollment_get(t, arg, &e);
	if (rc == 0) {
		*device_id =
		    strdup(e->device_id != NULL ? e->device_id : e->id);
		store_enrollment_free(e);
		return *device_id == NULL ? STORE_ENOMEM : 0;
	}
	if (rc != STORE_ENOTFOUND && rc != STORE_ECORRUPT)
		return rc;
	if ((rc = db_getv(t, DBI_DEVICE, arg, n, &v)) == 0)
		return (*device_id = strdup(arg)) == NULL ? STORE_ENOMEM : 0;
	if (rc != STORE_ENOTFOUND)
		return rc;
	return store_device_by_serial(t, arg, device_id);
}

/* See store.h. */
int
store_checked_out(
    struct store_txn *t, uint64_t before, store_id_cb fn, void *arg)
{
	const unsigned char *p;
	MDB_cursor	    *c;
	MDB_val		     k, v;
	char		     id[KEY_MAX + 1];
	uint64_t	     at;
	size_t		     n;
	int		     rc;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_ENROLL], &c)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (rec_field(&v, REC_ENROLL, TAG_ENROLL_CHECKEDOUT, &p, &n) !=
			1 ||
		    n != 8 || (at = key_get_u64(p)) == 0 || at >= before ||
		    k.mv_size > KEY_MAX || memchr(k.mv_data, '\0', k.mv_size))
			continue;
		memcpy(id, k.mv_data, k.mv_size);
		id[k.mv_size] = '\0';
		if ((rc = fn(id, arg)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND || rc == 1)
		return 0;
	return rc < 0 ? rc : store_rc(rc);
}
