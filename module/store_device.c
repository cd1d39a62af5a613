/*
 * store_device.c - devices, enrollments (with their internal numbers and
 * the device -> user-channel index), serial numbers, certificate bindings
 * and the raw Apple messages kept beside the decoded fields.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "picomdm/store.h"
#include "store_int.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define DF(tag, type, m) \
	{ tag, type, offsetof(struct store_device, m), 0, 0 }
#define DB(tag, m, l)                                                         \
	{ tag, F_BYTES, offsetof(struct store_device, m),                     \
	    offsetof(struct store_device, l), 0 }

static const struct fdesc device_fields[] = {
	{ 1, F_STR, offsetof(struct store_device, id), 0, 1 },
	DF(2, F_STR, serial),
	DF(3, F_STR, udid),
	DF(4, F_STR, enrollment_id),
	DF(5, F_STR, model),
	DF(6, F_STR, model_name),
	DF(7, F_STR, device_name),
	DF(8, F_STR, product_name),
	DF(9, F_STR, os_version),
	DF(10, F_STR, build_version),
	DF(11, F_STR, imei),
	DF(12, F_STR, meid),
	DF(13, F_STR, topic),
	{ 14, F_HASH32, offsetof(struct store_device, cert_hash),
	    offsetof(struct store_device, has_cert), 0 },
	DB(15, unlock_token, unlock_token_len),
	DF(16, F_U64, unlock_token_at),
	DB(17, bootstrap_token, bootstrap_token_len),
	DF(18, F_U64, bootstrap_token_at),
	DF(19, F_U64, created_at),
	DF(20, F_U64, authenticated_at),
};

#define EF(tag, type, m) \
	{ tag, type, offsetof(struct store_enrollment, m), 0, 0 }

static const struct fdesc enroll_fields[] = {
	{ 1, F_STR, offsetof(struct store_enrollment, id), 0, 1 },
	EF(2, F_STR, device_id),
	EF(3, F_INT, type),
	EF(4, F_STR, user_id),
	EF(5, F_STR, user_short_name),
	EF(6, F_STR, user_long_name),
	EF(7, F_STR, topic),
	EF(8, F_STR, push_magic),
	{ 9, F_BYTES, offsetof(struct store_enrollment, token),
	    offsetof(struct store_enrollment, token_len), 0 },
	EF(10, F_INT, enabled),
	EF(11, F_INT, awaiting_configuration),
	EF(12, F_U64, token_update_tally),
	EF(13, F_U64, created_at),
	EF(14, F_U64, last_seen),
	EF(15, F_U64, token_updated_at),
	EF(16, F_U64, checked_out_at),
};
#define ENROLL_TAG_EID 100

static int
str_key(struct key *k, const char *s)
{
	key_init(k);
	if (s == NULL || *s == '\0')
		return STORE_EINVAL;
	key_raw(k, s, strlen(s));
	return k->overflow ? STORE_EINVAL : 0;
}

/* ---- devices ---- */

void
store_device_free(struct store_device *d)
{
	if (d == NULL)
		return;
	rec_free_fields(device_fields, NF(device_fields), d);
	free(d);
}

int
store_device_get(struct store_txn *t, const char *id,
    struct store_device **out)
{
	struct store_device *d;
	struct key           k;
	MDB_val              v;
	int                  rc;

	*out = NULL;
	if ((rc = str_key(&k, id)) != 0 || (rc = db_get(t, DBI_DEVICE, &k,
	    &v)) != 0)
		return rc;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(&v, REC_DEVICE, device_fields,
	    NF(device_fields), d, NULL, NULL)) != 0 || d->id == NULL) {
		store_device_free(d);
		return rc ? rc : STORE_ECORRUPT;
	}
	*out = d;
	return 0;
}

/*
 * Is hash the device's current certificate (device_fields tag 14)? Reads
 * the one field without decoding the record: identity_authorize asks on
 * every device request, in the writer. 0 with *match set, or the
 * lookup's error (STORE_ENOTFOUND for no such device).
 */
int
store_device_cert_is(struct store_txn *t, const char *id,
    const unsigned char hash[32], int *match)
{
	struct key           k;
	MDB_val              v;
	const unsigned char *p;
	size_t               n, i;
	unsigned char        diff = 0;
	int                  rc;

	*match = 0;
	if ((rc = str_key(&k, id)) != 0 ||
	    (rc = db_get(t, DBI_DEVICE, &k, &v)) != 0 ||
	    (rc = rec_field(&v, REC_DEVICE, 14, &p, &n)) != 1)
		return rc; /* 0: no certificate bound, no match */
	if (n != 32)
		return STORE_ECORRUPT;
	/* In constant time, as identity.c compares. */
	for (i = 0; i < 32; i++)
		diff |= (unsigned char)(p[i] ^ hash[i]);
	*match = diff == 0;
	return 0;
}

/* Write the device and keep the serial index pointing at it. */
int
store_device_put(struct store_txn *t, const struct store_device *d)
{
	struct store_device *old = NULL;
	struct rec_w         w;
	struct key           k, sk;
	int                  rc;

	if ((rc = str_key(&k, d->id)) != 0)
		return rc;
	rc = store_device_get(t, d->id, &old);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	if (old != NULL && old->serial != NULL &&
	    (d->serial == NULL || strcmp(old->serial, d->serial) != 0)) {
		MDB_val v;

		str_key(&sk, old->serial);
		if (db_get(t, DBI_SERIAL, &sk, &v) == 0 &&
		    v.mv_size == strlen(d->id) &&
		    memcmp(v.mv_data, d->id, v.mv_size) == 0 &&
		    (rc = db_del(t, DBI_SERIAL, &sk)) != 0)
			goto out;
	}
	if (d->serial != NULL && *d->serial != '\0') {
		if ((rc = str_key(&sk, d->serial)) != 0 ||
		    (rc = db_put(t, DBI_SERIAL, &sk, d->id, strlen(d->id),
		    0)) != 0)
			goto out;
	}
	rec_begin(&w, REC_DEVICE);
	rec_encode(&w, device_fields, NF(device_fields), d);
	rc = w.err ? STORE_ENOMEM : db_put(t, DBI_DEVICE, &k, w.b.p, w.b.len,
	    0);
	freezero(w.b.p, w.b.cap);
out:
	store_device_free(old);
	return rc;
}

int
store_device_by_serial(struct store_txn *t, const char *serial, char **id)
{
	struct key k;
	MDB_val    v;
	int        rc;

	*id = NULL;
	if ((rc = str_key(&k, serial)) != 0 ||
	    (rc = db_get(t, DBI_SERIAL, &k, &v)) != 0)
		return rc;
	return rec_dup_str(v.mv_data, v.mv_size, id);
}

/* ---- enrollments ---- */

void
store_enrollment_free(struct store_enrollment *e)
{
	if (e == NULL)
		return;
	rec_free_fields(enroll_fields, NF(enroll_fields), e);
	free(e);
}

static int
enroll_extra(unsigned tag, const unsigned char *p, size_t n, void *arg)
{
	if (tag == ENROLL_TAG_EID)
		return rec_get_u64(p, n, arg);
	return 0;
}

/* Decode an enrollment record, with its eid when eid is non-NULL. */
static int
enroll_decode(const MDB_val *v, struct store_enrollment **out, uint64_t *eid)
{
	struct store_enrollment *e;
	uint64_t                 x = 0;
	int                      rc;

	*out = NULL;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return STORE_ENOMEM;
	rc = rec_decode(v, REC_ENROLL, enroll_fields, NF(enroll_fields), e,
	    enroll_extra, &x);
	if (rc == 0 && (e->id == NULL || x == 0 || e->type < 0 ||
	    e->type >= ENROLL__MAX))
		rc = STORE_ECORRUPT;
	if (rc != 0) {
		store_enrollment_free(e);
		return rc;
	}
	if (eid != NULL)
		*eid = x;
	*out = e;
	return 0;
}

int
store_enrollment_get(struct store_txn *t, const char *id,
    struct store_enrollment **out)
{
	struct key k;
	MDB_val    v;
	int        rc;

	*out = NULL;
	if ((rc = str_key(&k, id)) != 0 || (rc = db_get(t, DBI_ENROLL, &k,
	    &v)) != 0)
		return rc;
	return enroll_decode(&v, out, NULL);
}

/*
 * Walk an enrollment record without decoding it: its eid, whether it is
 * enabled (when enabled is not NULL) and where the eight bytes of
 * last_seen are (*seen_off 0 when it has none). What enroll_decode()
 * refuses in the fields read here is refused too; nothing is allocated:
 * every report and check-in reads its enrollment this way (a report
 * once, store_enrollment_touch_eid; a check-in that rewrites it once
 * more, in store_enrollment_put).
 */
static int
enroll_scan(const MDB_val *v, uint64_t *eid, int *enabled, size_t *seen_off)
{
	struct rec_r         r;
	const unsigned char *p;
	size_t               n;
	unsigned             tag;
	uint64_t             x = 0, type = 0, on = 0;
	int                  rc, has_id = 0;

	*seen_off = 0;
	if ((rc = rec_open(&r, v, REC_ENROLL)) != 0)
		return rc;
	while ((rc = rec_next(&r, &tag, &p, &n)) == 1) {
		if (tag == 1)
			has_id = memchr(p, '\0', n) == NULL;
		else if (tag == ENROLL_TAG_EID && rec_get_u64(p, n, &x) != 0)
			return STORE_ECORRUPT;
		else if (tag == 3 && rec_get_u64(p, n, &type) != 0)
			return STORE_ECORRUPT;
		else if (tag == 10 && (rec_get_u64(p, n, &on) != 0 ||
		    on > 0x7fffffff))
			return STORE_ECORRUPT;
		else if (tag == 14) {
			if (n != 8)
				return STORE_ECORRUPT;
			*seen_off = (size_t)(p - r.p);
		}
	}
	if (rc != 0 || !has_id || x == 0 || type >= ENROLL__MAX)
		return rc ? rc : STORE_ECORRUPT;
	*eid = x;
	if (enabled != NULL)
		*enabled = on != 0;
	return 0;
}

int
enroll_eid(struct store_txn *t, const char *id, uint64_t *eid)
{
	struct key k;
	MDB_val    v;
	size_t     off;
	int        rc;

	if ((rc = str_key(&k, id)) != 0 ||
	    (rc = db_get(t, DBI_ENROLL, &k, &v)) != 0)
		return rc;
	return enroll_scan(&v, eid, NULL, &off);
}

int
enroll_id_of(struct store_txn *t, uint64_t eid, char **id)
{
	struct key k;
	MDB_val    v;
	int        rc;

	*id = NULL;
	key_init(&k);
	key_u64(&k, eid);
	if ((rc = db_get(t, DBI_EID, &k, &v)) != 0)
		return rc;
	return rec_dup_str(v.mv_data, v.mv_size, id);
}

static int
enroll_write(struct store_txn *t, const struct store_enrollment *e,
    uint64_t eid)
{
	struct rec_w w;
	struct key   k;
	int          rc;

	if ((rc = str_key(&k, e->id)) != 0)
		return rc;
	rec_begin(&w, REC_ENROLL);
	rec_encode(&w, enroll_fields, NF(enroll_fields), e);
	rec_u64(&w, ENROLL_TAG_EID, eid);
	rc = w.err ? STORE_ENOMEM : db_put(t, DBI_ENROLL, &k, w.b.p, w.b.len,
	    0);
	freezero(w.b.p, w.b.cap);
	return rc;
}

/*
 * Insert or replace an enrollment. A new one gets the next eid, its
 * eid -> ID entry, and (for a user channel) an entry under its device's
 * eid in the user-channel index.
 */
int
store_enrollment_put(struct store_txn *t, const struct store_enrollment *e)
{
	struct key k;
	MDB_val    v;
	size_t     off;
	uint64_t   eid = 0, deid;
	int        rc, was_on = 0;

	/* The record as this transaction has it: its eid and whether it
	 * counts as enabled, read in place (enroll_scan), not decoded. */
	if ((rc = str_key(&k, e->id)) != 0)
		return rc;
	if ((rc = db_get(t, DBI_ENROLL, &k, &v)) == 0)
		rc = enroll_scan(&v, &eid, &was_on, &off);
	if (rc == 0 && !was_on != !e->enabled &&
	    ((rc = enroll_count_add(t, was_on, -1)) != 0 ||
		(rc = enroll_count_add(t, e->enabled, 1)) != 0))
		return rc;
	if (rc == 0)
		return enroll_write(t, e, eid);
	if (rc != STORE_ENOTFOUND)
		return rc;
	if ((rc = enroll_count_add(t, e->enabled, 1)) != 0)
		return rc;
	if ((rc = store_eid_next(t, &eid)) != 0)
		return rc;
	key_init(&k);
	key_u64(&k, eid);
	if ((rc = db_put(t, DBI_EID, &k, e->id, strlen(e->id), 0)) != 0)
		return rc;
	if (e->device_id != NULL && strcmp(e->device_id, e->id) != 0) {
		rc = enroll_eid(t, e->device_id, &deid);
		if (rc == 0) {
			key_init(&k);
			key_u64(&k, deid);
			key_u64(&k, eid);
			if ((rc = db_put(t, DBI_UCHAN, &k, "", 0, 0)) != 0)
				return rc;
		} else if (rc != STORE_ENOTFOUND)
			return rc;
	}
	return enroll_write(t, e, eid);
}

/*
 * last_seen is rewritten in a copy of the record as it is, without a
 * decode and an encode; a record without the field (never written so by
 * picomdm) goes the long way.
 */
int
store_enrollment_touch(struct store_txn *t, const char *id)
{
	uint64_t eid;

	return store_enrollment_touch_eid(t, id, &eid);
}

int
store_enrollment_touch_eid(struct store_txn *t, const char *id,
    uint64_t *eidp)
{
	struct store_enrollment *e;
	struct key               k;
	MDB_val                  v;
	unsigned char           *b;
	uint64_t                 eid, x;
	size_t                   off;
	int                      rc, i;

	if ((rc = str_key(&k, id)) != 0 ||
	    (rc = db_get(t, DBI_ENROLL, &k, &v)) != 0 ||
	    (rc = enroll_scan(&v, &eid, NULL, &off)) != 0)
		return rc;
	*eidp = eid;
	if (off == 0) {
		if ((rc = enroll_decode(&v, &e, NULL)) != 0)
			return rc;
		e->last_seen = t->now;
		rc = enroll_write(t, e, eid);
		store_enrollment_free(e);
		return rc;
	}
	/* The value lives in the map (or a dirty page): copy, then put. */
	if ((b = malloc(v.mv_size)) == NULL)
		return STORE_ENOMEM;
	memcpy(b, v.mv_data, v.mv_size);
	for (i = 7, x = t->now; i >= 0; i--, x >>= 8)
		b[off + (size_t)i] = (unsigned char)x;
	rc = db_put(t, DBI_ENROLL, &k, b, v.mv_size, 0);
	freezero(b, v.mv_size);
	return rc;
}

int
store_enrollment_iter(struct store_txn *t, const char *after,
    store_enrollment_cb fn, void *arg)
{
	struct store_enrollment *e;
	MDB_cursor              *c;
	MDB_val                  k, v;
	MDB_cursor_op            op = MDB_FIRST;
	int                      rc;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_ENROLL], &c)) != 0)
		return store_rc(rc);
	if (after != NULL && *after != '\0') {
		k.mv_data = (void *)(uintptr_t)after;
		k.mv_size = strlen(after);
		op = MDB_SET_RANGE;
	}
	for (rc = mdb_cursor_get(c, &k, &v, op); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (op == MDB_SET_RANGE && k.mv_size == strlen(after) &&
		    memcmp(k.mv_data, after, k.mv_size) == 0)
			continue;
		if ((rc = enroll_decode(&v, &e, NULL)) != 0)
			break;
		rc = fn(e, arg);
		store_enrollment_free(e);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND || rc == 1)
		return 0;
	return rc < 0 ? rc : store_rc(rc);
}

struct uchan_ctx {
	store_id_cb fn;
	void       *arg;
};

static int
uchan_each(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct uchan_ctx *c = arg;
	char             *id;
	int               rc;

	(void)v;
	rc = enroll_id_of(t, key_get_u64((unsigned char *)k->mv_data + 8), &id);
	if (rc == STORE_ENOTFOUND)
		return 0; /* a removed channel */
	if (rc != 0)
		return rc;
	rc = c->fn(id, c->arg);
	free(id);
	return rc;
}

int
store_user_channels(struct store_txn *t, const char *device_id,
    store_id_cb fn, void *arg)
{
	struct uchan_ctx c = { fn, arg };
	struct key       pk;
	uint64_t         deid;
	int              rc;

	if ((rc = enroll_eid(t, device_id, &deid)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	key_init(&pk);
	key_u64(&pk, deid);
	return db_prefix_each(t, DBI_UCHAN, pk.b, pk.len, 16, uchan_each, &c);
}

/* ---- certificate bindings ---- */

int
store_cert_get(struct store_txn *t, const unsigned char hash[32],
    char **device_id)
{
	struct key k;
	MDB_val    v;
	int        rc;

	*device_id = NULL;
	key_init(&k);
	key_raw(&k, hash, 32);
	if ((rc = db_get(t, DBI_CERT, &k, &v)) != 0)
		return rc;
	return rec_dup_str(v.mv_data, v.mv_size, device_id);
}

int
store_cert_put(struct store_txn *t, const unsigned char hash[32],
    const char *device_id)
{
	struct key k;

	key_init(&k);
	key_raw(&k, hash, 32);
	return db_put(t, DBI_CERT, &k, device_id, strlen(device_id), 0);
}

/* ---- raw messages ---- */

#define MF(tag, type, m) \
	{ tag, type, offsetof(struct store_msg, m), 0, 0 }

static const struct fdesc msg_fields[] = {
	{ 1, F_STR, offsetof(struct store_msg, enrollment_id), 0, 1 },
	MF(2, F_INT, kind),
	MF(3, F_U64, received_at),
	MF(4, F_STR, topic),
	{ 5, F_BYTES, offsetof(struct store_msg, raw),
	    offsetof(struct store_msg, raw_len), 1 },
};

/* See store_int.h. */
const struct fdesc *
store_device_fdesc(enum rec_kind k, size_t *n)
{
	switch (k) {
	case REC_DEVICE:
		*n = NF(device_fields);
		return device_fields;
	case REC_ENROLL:
		*n = NF(enroll_fields);
		return enroll_fields;
	case REC_MSG:
		*n = NF(msg_fields);
		return msg_fields;
	default:
		return NULL;
	}
}

void
store_msg_free(struct store_msg *m)
{
	if (m == NULL)
		return;
	rec_free_fields(msg_fields, NF(msg_fields), m);
	free(m);
}

int
store_msg_put(struct store_txn *t, const char *enrollment_id,
    enum msg_kind kind, const char *topic, const void *raw, size_t len)
{
	struct store_msg m;
	struct rec_w     w;
	struct key       k;
	uint64_t         eid;
	int              rc;

	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc;
	memset(&m, 0, sizeof(m));
	m.enrollment_id = (char *)(uintptr_t)enrollment_id;
	m.kind = kind;
	m.received_at = t->now;
	m.topic = (char *)(uintptr_t)topic;
	m.raw = (unsigned char *)(uintptr_t)raw;
	m.raw_len = len;
	key_init(&k);
	key_u64(&k, eid);
	key_u8(&k, (unsigned)kind);
	rec_begin(&w, REC_MSG);
	rec_encode(&w, msg_fields, NF(msg_fields), &m);
	rc = w.err ? STORE_ENOMEM : db_put(t, DBI_MSG, &k, w.b.p, w.b.len, 0);
	freezero(w.b.p, w.b.cap);
	return rc;
}

struct msg_ctx {
	store_msg_cb fn;
	void        *arg;
};

static int
msg_each(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct msg_ctx   *c = arg;
	struct store_msg *m;
	int               rc;

	(void)t;
	(void)k;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(v, REC_MSG, msg_fields, NF(msg_fields), m, NULL,
	    NULL)) == 0)
		rc = c->fn(m, c->arg);
	store_msg_free(m);
	return rc;
}

int
store_msg_iter(struct store_txn *t, const char *enrollment_id,
    store_msg_cb fn, void *arg)
{
	struct msg_ctx c = { fn, arg };
	struct key     pk;
	uint64_t       eid;
	int            rc;

	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc;
	key_init(&pk);
	key_u64(&pk, eid);
	return db_prefix_each(t, DBI_MSG, pk.b, pk.len, 9, msg_each, &c);
}
