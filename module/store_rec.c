/*
 * store_rec.c - composite keys and the versioned record codec.
 *
 * A record is 'p', its kind, its version, then fields of tag (1 byte),
 * length (4 bytes, big-endian) and bytes. Unknown tags are skipped, so a
 * newer writer's extra fields do not break an older reader; a length that
 * runs past the end is STORE_ECORRUPT, never a read past the buffer.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "store_int.h"

void
key_init(struct key *k)
{
	k->len = 0;
	k->overflow = 0;
}

void
key_raw(struct key *k, const void *p, size_t n)
{
	if (k->overflow || n > KEY_MAX - k->len) {
		k->overflow = 1;
		return;
	}
	memcpy(k->b + k->len, p, n);
	k->len += n;
}

void
key_u8(struct key *k, unsigned v)
{
	unsigned char c = (unsigned char)v;

	key_raw(k, &c, 1);
}

void
key_u64(struct key *k, uint64_t v)
{
	unsigned char be[8];
	int           i;

	for (i = 7; i >= 0; i--, v >>= 8)
		be[i] = (unsigned char)v;
	key_raw(k, be, 8);
}

void
key_str(struct key *k, const char *s)
{
	size_t n = strlen(s);

	if (n > 0xffff) {
		k->overflow = 1;
		return;
	}
	key_u8(k, (unsigned)(n >> 8));
	key_u8(k, (unsigned)(n & 0xff));
	key_raw(k, s, n);
}

uint64_t
key_get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	int      i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int
db_get(struct store_txn *t, enum store_dbi d, const struct key *k,
    MDB_val *out)
{
	MDB_val kv;

	if (k->overflow || k->len == 0)
		return STORE_EINVAL;
	kv.mv_data = (void *)(uintptr_t)k->b;
	kv.mv_size = k->len;
	return store_rc(mdb_get(t->txn, t->s->dbi[d], &kv, out));
}

int
db_put(struct store_txn *t, enum store_dbi d, const struct key *k,
    const void *p, size_t n, unsigned flags)
{
	MDB_val kv, v;

	if (k->overflow || k->len == 0)
		return STORE_EINVAL;
	kv.mv_data = (void *)(uintptr_t)k->b;
	kv.mv_size = k->len;
	v.mv_data = (void *)(uintptr_t)p;
	v.mv_size = n;
	return store_rc(mdb_put(t->txn, t->s->dbi[d], &kv, &v, flags));
}

int
db_del(struct store_txn *t, enum store_dbi d, const struct key *k)
{
	MDB_val kv;

	if (k->overflow || k->len == 0)
		return STORE_EINVAL;
	kv.mv_data = (void *)(uintptr_t)k->b;
	kv.mv_size = k->len;
	return store_rc(mdb_del(t->txn, t->s->dbi[d], &kv, NULL));
}

int
db_prefix_each(struct store_txn *t, enum store_dbi d, const void *prefix,
    size_t plen, size_t klen, db_each_fn fn, void *arg)
{
	MDB_cursor *c;
	MDB_val     k, v;
	int         rc, frc = 0;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[d], &c)) != 0)
		return store_rc(rc);
	k.mv_data = (void *)(uintptr_t)prefix;
	k.mv_size = plen;
	/* LMDB refuses an empty key: no prefix is every entry. */
	for (rc = mdb_cursor_get(c, &k, &v, plen ? MDB_SET_RANGE : MDB_FIRST);
	     rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
			break;
		if (klen != 0 && k.mv_size != klen)
			continue;
		if ((frc = fn(t, &k, &v, arg)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (frc != 0) /* fn stopped: 1 is not an error */
		return frc == 1 ? 0 : frc;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

void
rec_begin(struct rec_w *w, enum rec_kind kind)
{
	unsigned char h[3] = { 'p', (unsigned char)kind, REC_VERSION };

	memset(w, 0, sizeof(*w));
	w->b.max = (size_t)64 << 20;
	if (buf_append(&w->b, h, sizeof(h)) == -1)
		w->err = 1;
}

void
rec_bytes(struct rec_w *w, unsigned tag, const void *p, size_t n)
{
	unsigned char h[5];

	if (w->err)
		return;
	if (n > 0xffffffffu) {
		w->err = 1;
		return;
	}
	h[0] = (unsigned char)tag;
	h[1] = (unsigned char)(n >> 24);
	h[2] = (unsigned char)(n >> 16);
	h[3] = (unsigned char)(n >> 8);
	h[4] = (unsigned char)n;
	if (buf_append(&w->b, h, sizeof(h)) == -1 ||
	    buf_append(&w->b, p, n) == -1)
		w->err = 1;
}

void
rec_str(struct rec_w *w, unsigned tag, const char *s)
{
	if (s != NULL)
		rec_bytes(w, tag, s, strlen(s));
}

void
rec_u64(struct rec_w *w, unsigned tag, uint64_t v)
{
	unsigned char be[8];
	int           i;

	for (i = 7; i >= 0; i--, v >>= 8)
		be[i] = (unsigned char)v;
	rec_bytes(w, tag, be, 8);
}

int
rec_open(struct rec_r *r, const MDB_val *v, enum rec_kind kind)
{
	const unsigned char *p = v->mv_data;

	if (v->mv_size < 3 || p[0] != 'p' || p[1] != kind ||
	    p[2] == 0 || p[2] > REC_VERSION)
		return STORE_ECORRUPT;
	r->p = p;
	r->len = v->mv_size;
	r->off = 3;
	return 0;
}

int
rec_next(struct rec_r *r, unsigned *tag, const unsigned char **p, size_t *n)
{
	size_t len;

	if (r->off == r->len)
		return 0;
	if (r->len - r->off < 5)
		return STORE_ECORRUPT;
	*tag = r->p[r->off];
	len = (size_t)r->p[r->off + 1] << 24 | (size_t)r->p[r->off + 2] << 16 |
	    (size_t)r->p[r->off + 3] << 8 | r->p[r->off + 4];
	if (len > r->len - r->off - 5)
		return STORE_ECORRUPT;
	*p = r->p + r->off + 5;
	*n = len;
	r->off += 5 + len;
	return 1;
}

int
rec_field(const MDB_val *v, enum rec_kind kind, unsigned tag,
    const unsigned char **p, size_t *n)
{
	struct rec_r r;
	unsigned     t;
	int          rc;

	if ((rc = rec_open(&r, v, kind)) != 0)
		return rc;
	while ((rc = rec_next(&r, &t, p, n)) == 1)
		if (t == tag)
			return 1;
	return rc;
}

int
rec_dup_str(const unsigned char *p, size_t n, char **out)
{
	char *s;

	if (memchr(p, '\0', n) != NULL)
		return STORE_ECORRUPT;
	if ((s = malloc(n + 1)) == NULL)
		return STORE_ENOMEM;
	memcpy(s, p, n);
	s[n] = '\0';
	free(*out);
	*out = s;
	return 0;
}

int
rec_dup_bytes(const unsigned char *p, size_t n, unsigned char **out,
    size_t *outlen)
{
	unsigned char *b;

	if ((b = malloc(n ? n : 1)) == NULL)
		return STORE_ENOMEM;
	memcpy(b, p, n);
	free(*out);
	*out = b;
	*outlen = n;
	return 0;
}

int
rec_get_u64(const unsigned char *p, size_t n, uint64_t *out)
{
	if (n != 8)
		return STORE_ECORRUPT;
	*out = key_get_u64(p);
	return 0;
}

#define FPTR(obj, off) ((unsigned char *)(obj) + (off))

void
rec_encode(struct rec_w *w, const struct fdesc *f, size_t n, const void *obj)
{
	const unsigned char *o = obj;
	size_t               i;

	for (i = 0; i < n; i++) {
		const void *field = o + f[i].off;

		switch (f[i].type) {
		case F_STR:
			rec_str(w, f[i].tag, *(char *const *)field);
			break;
		case F_BYTES:
			if (*(unsigned char *const *)field != NULL)
				rec_bytes(w, f[i].tag,
				    *(unsigned char *const *)field,
				    *(const size_t *)(o + f[i].lenoff));
			break;
		case F_U64:
			if (*(const uint64_t *)field != 0)
				rec_u64(w, f[i].tag, *(const uint64_t *)field);
			break;
		case F_INT:
			if (*(const int *)field != 0)
				rec_u64(w, f[i].tag,
				    (uint64_t)*(const int *)field);
			break;
		case F_HASH32:
			if (*(const int *)(o + f[i].lenoff))
				rec_bytes(w, f[i].tag, field, 32);
			break;
		}
	}
}

int
rec_decode(const MDB_val *v, enum rec_kind kind, const struct fdesc *f,
    size_t n, void *obj, rec_extra_fn extra, void *extra_arg)
{
	struct rec_r         r;
	const unsigned char *p;
	size_t               len, i;
	unsigned             tag;
	uint64_t             u, seen = 0;
	int                  rc;

	if (n > 64)
		return STORE_EINVAL;
	if ((rc = rec_open(&r, v, kind)) != 0)
		return rc;
	while ((rc = rec_next(&r, &tag, &p, &len)) == 1) {
		for (i = 0; i < n && f[i].tag != tag; i++)
			continue;
		if (i == n) {
			if (extra != NULL &&
			    (rc = extra(tag, p, len, extra_arg)) != 0)
				return rc;
			continue;
		}
		switch (f[i].type) {
		case F_STR:
			rc = rec_dup_str(p, len, (char **)FPTR(obj, f[i].off));
			break;
		case F_BYTES:
			rc = rec_dup_bytes(p, len,
			    (unsigned char **)FPTR(obj, f[i].off),
			    (size_t *)FPTR(obj, f[i].lenoff));
			break;
		case F_U64:
			rc = rec_get_u64(p, len, (uint64_t *)FPTR(obj, f[i].off));
			break;
		case F_INT:
			if ((rc = rec_get_u64(p, len, &u)) == 0) {
				if (u > 0x7fffffff)
					return STORE_ECORRUPT;
				*(int *)FPTR(obj, f[i].off) = (int)u;
			}
			break;
		case F_HASH32:
			if (len != 32)
				return STORE_ECORRUPT;
			memcpy(FPTR(obj, f[i].off), p, 32);
			*(int *)FPTR(obj, f[i].lenoff) = 1;
			rc = 0;
			break;
		}
		if (rc != 0)
			return rc;
		seen |= (uint64_t)1 << i;
	}
	for (i = 0; rc == 0 && i < n; i++)
		if (f[i].required && !(seen & (uint64_t)1 << i))
			rc = STORE_ECORRUPT;
	return rc;
}

void
rec_free_fields(const struct fdesc *f, size_t n, void *obj)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (f[i].type == F_STR) {
			free(*(char **)FPTR(obj, f[i].off));
			*(char **)FPTR(obj, f[i].off) = NULL;
		} else if (f[i].type == F_BYTES) {
			freezero(*(unsigned char **)FPTR(obj, f[i].off),
			    *(size_t *)FPTR(obj, f[i].lenoff));
			*(unsigned char **)FPTR(obj, f[i].off) = NULL;
		}
	}
}
