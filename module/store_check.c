/*
 * store_check.c - the consistency check, and its repair: every entry of
 * every sub-database is decoded and its references followed (a device to
 * its enrollments, an enrollment to its number, queue, positions and
 * results to their enrollment and command). The passes run in the order
 * the registry (store_kinds.c) gives them, one per sub-database, each
 * relying on the ones before; orphans are reported and, with repair,
 * removed or rebuilt.
 *
 * A new kind is added in store_kinds.c: its entry names its check pass
 * and the function here that checks one entry. See ARCHITECTURE.md,
 * "The store and its registry".
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lmdb.h>

#include "picomdm/message.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

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
	const struct store_kind *ak = store_kind_of_rec(kind);
	struct rec_r		 r;
	const unsigned char	*p;
	size_t			 n, i;
	unsigned		 tag;
	int			 rc;

	if (ak == NULL || rec_open(&r, v, kind) != 0)
		return "record header is wrong";
	while ((rc = rec_next(&r, &tag, &p, &n)) == 1)
		for (i = 0; i < ak->nf; i++)
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

/* The entry belongs to enrollment number eid, which does not exist
 * (repair: drop it). */
static int
check_orphan_of(struct check_ctx *c, enum store_dbi d, const MDB_val *k,
    const char *what, uint64_t eid)
{
	int rc;

	if ((rc = problem(c, d, k->mv_data, k->mv_size, c->repair,
		 "%s of enrollment number %llu, which does not exist", what,
		 (unsigned long long)eid)) != 0)
		return rc;
	return c->repair;
}

/* The same of a key that starts with the number. */
static int
check_orphan(
    struct check_ctx *c, enum store_dbi d, const MDB_val *k, const char *what)
{
	return check_orphan_of(c, d, k, what, key_get_u64(k->mv_data));
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
	unsigned char	  ik[16];
	MDB_val		  iv;
	uint64_t	  seq, eid;
	int		  rc, seq_first;

	check_tick(c);
	if (k->mv_size != 16)
		return check_malformed(c, DBI_RESULT, k);
	/* seq . eid; eid . seq in a store of format 1 or 2 (read-only:
	 * a writable open has upgraded it). */
	seq_first = t->s->format >= STORE_FORMAT_RESULT_SEQ;
	seq = key_get_u64((unsigned char *)k->mv_data + (seq_first ? 0 : 8));
	eid = key_get_u64((unsigned char *)k->mv_data + (seq_first ? 8 : 0));
	if (!u64set_has(&c->eids, eid))
		return check_orphan_of(c, DBI_RESULT, k, "result", eid);
	if (seq > c->max_seq)
		c->max_seq = seq;
	if ((why = rec_problem(v, REC_RESULT, NULL)) != NULL)
		return problem(
		    c, DBI_RESULT, k->mv_data, k->mv_size, 0, "%s", why);
	if (!seq_first)
		return 0;
	/* Its index entry (repair: add it). */
	be64(ik, eid);
	be64(ik + 8, seq);
	if ((rc = db_getv(t, DBI_RESULTIX, ik, 16, &iv)) != STORE_ENOTFOUND)
		return rc;
	if (c->repair && (rc = db_putv(t, DBI_RESULTIX, ik, 16, "", 0)) != 0)
		return rc;
	return problem(c, DBI_RESULT, k->mv_data, k->mv_size, c->repair,
	    "not in result_index: the API and inventory do not list it");
}

/* RESULTIX: the enrollment exists (repair: drop), the result it names
 * exists (repair: drop), the value is empty. */
static int
check_resultix(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct check_ctx *c = arg;
	unsigned char	  rk[16];
	MDB_val		  rv;
	int		  rc;

	check_tick(c);
	if (k->mv_size != 16)
		return check_malformed(c, DBI_RESULTIX, k);
	if (!u64set_has(&c->eids, key_get_u64(k->mv_data)))
		return check_orphan(c, DBI_RESULTIX, k, "result index entry");
	result_key_swap(k->mv_data, rk);
	if ((rc = db_getv(t, DBI_RESULT, rk, 16, &rv)) == STORE_ENOTFOUND) {
		if ((rc = problem(c, DBI_RESULTIX, k->mv_data, k->mv_size,
			 c->repair, "names no result")) != 0)
			return rc;
		return c->repair;
	}
	if (rc != 0)
		return rc;
	if (v->mv_size != 0)
		return problem(c, DBI_RESULTIX, k->mv_data, k->mv_size, 0,
		    "value is not empty");
	return 0;
}

/*
 * QUEUE: the enrollment exists (repair: drop); the record decodes; the
 * command exists (repair: drop the entry and its position, as the queue
 * would stop at it); the position in the command's DBI_CMDQ record (in
 * DBI_QPOS for a store an older picomdm wrote, not opened for writing
 * since) points back (repair: add it, or drop this entry when the command
 * is queued elsewhere already).
 */
static int
check_queue(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_QUEUE_UUID, 0};
	struct check_ctx     *c = arg;
	unsigned char	      key[17], pk[KEY_MAX], pos[9];
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
		if (c->repair && queue_pos_get(t, uuid, key_get_u64(key),
		    pos) == 1 && memcmp(pos, key + 8, 9) == 0 &&
		    (rc = queue_pos_set(t, uuid, key_get_u64(key), NULL)) != 0)
			goto out;
		if ((rc = problem(c, DBI_QUEUE, key, 17, c->repair,
			 "queues command %s, which does not exist", uuid)) == 0)
			rc = c->repair;
		goto out;
	}
	if (rc < 0)
		goto out;
	/* The position is in the command's DBI_CMDQ record; a store not
	 * opened for writing since an older picomdm has it in DBI_QPOS
	 * (check_qpos looks at that one). */
	rc = queue_pos_get(t, uuid, key_get_u64(key), pos);
	if (rc == 0 && db_getv(t, DBI_QPOS, pk, pn, &pv) == 0) {
		if (pv.mv_size == 9)
			memcpy(pos, pv.mv_data, 9);
		else
			memset(pos, 0, 9);
		rc = 1;
	}
	if (rc == 0) {
		if (c->repair && (rc = queue_pos_set(t, uuid,
		    key_get_u64(key), key + 8)) != 0)
			goto out;
		rc = problem(c, DBI_QUEUE, key, 17, c->repair,
		    "command %s has no queue position", uuid);
	} else if (rc == 1 && memcmp(pos, key + 8, 9) != 0) {
		if ((rc = problem(c, DBI_QUEUE, key, 17, c->repair,
			 "a second queue entry for command %s", uuid)) == 0)
			rc = c->repair;
	} else if (rc == 1)
		rc = 0;
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
	unsigned char	     pos[9];
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
	/* A queue position: the queue entry there is of this command
	 * (repair: drop the position; the queue entry, if any, gets one
	 * back from check_queue, which runs before). */
	if ((rc = queue_pos_get(t, uuid, eid, pos)) < 0)
		return rc;
	if (rc == 1) {
		unsigned char qk[17];
		char	     *qu = NULL;
		MDB_val	      qv;
		int	      ok = 0;

		be64(qk, eid);
		memcpy(qk + 8, pos, 9);
		if ((rc = db_getv(t, DBI_QUEUE, qk, 17, &qv)) != 0 &&
		    rc != STORE_ENOTFOUND)
			return rc;
		if (rc == 0 && rec_field_str(&qv, REC_QUEUE, TAG_QUEUE_UUID,
		    &qu) == 0 && qu != NULL && strcmp(qu, uuid) == 0)
			ok = 1;
		free(qu);
		if (!ok) {
			if (c->repair &&
			    (rc = queue_pos_set(t, uuid, eid, NULL)) != 0)
				return rc;
			if ((rc = problem(c, DBI_CMDQ, kp, k->mv_size,
			    c->repair, "queue position of command %s points "
			    "at no queue entry of it", uuid)) != 0)
				return rc;
		}
	}
	if (rec_field(v, REC_CMDQ, TAG_CMDQ_SEQ, &p, &n) == 1 && n == 8 &&
	    (seq = key_get_u64(p)) > c->max_seq)
		c->max_seq = seq;
	return 0;
}

/*
 * A record keyed by one of its own fields: it decodes with the fields req
 * names and field keytag holds exactly its key (what names the field in
 * the problem).
 */
static int
check_own_key(struct check_ctx *c, enum store_dbi d, enum rec_kind kind,
    const unsigned *req, unsigned keytag, const char *what, const MDB_val *k,
    const MDB_val *v)
{
	const unsigned char *p;
	const char	    *why;
	size_t		     n;

	check_tick(c);
	if ((why = rec_problem(v, kind, req)) != NULL)
		return problem(c, d, k->mv_data, k->mv_size, 0, "%s", why);
	rec_field(v, kind, keytag, &p, &n);
	if (n != k->mv_size || memcmp(p, k->mv_data, n) != 0)
		return problem(c, d, k->mv_data, k->mv_size, 0,
		    "record holds another %s", what);
	return 0;
}

/* CMD: the record decodes and holds its own UUID. */
static int
check_cmd(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {1, 3, 0};

	(void)t;
	return check_own_key(
	    arg, DBI_CMD, REC_CMD, req, 1, "command UUID", k, v);
}

/* PUSHCERT: the record decodes, holds its own topic, a certificate and
 * a key. */
static int
check_pushcert(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_PUSHCERT_TOPIC, TAG_PUSHCERT_CERT,
	    TAG_PUSHCERT_KEY, TAG_PUSHCERT_NOTAFTER, 0};

	(void)t;
	return check_own_key(arg, DBI_PUSHCERT, REC_PUSHCERT, req,
	    TAG_PUSHCERT_TOPIC, "topic", k, v);
}

/* MACHINEINFO: the record decodes and holds the UDID it is keyed by. */
static int
check_machineinfo(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_MI_UDID, 0};

	(void)t;
	return check_own_key(arg, DBI_MACHINEINFO, REC_MACHINEINFO, req,
	    TAG_MI_UDID, "UDID", k, v);
}

/*
 * VPP (store_vpp.c): a token record decodes and holds its own name and
 * sToken; an asset, assignment or user record decodes, its key is the
 * length-prefixed strings of its layout (store_kinds.h, KK_STRS) and the
 * token its key starts with exists (repair: drop the orphan).
 */
static int
check_vpp(struct check_ctx *c, struct store_txn *t, enum store_dbi d,
    const MDB_val *k, const MDB_val *v, size_t parts, unsigned idtag)
{
	const unsigned char *kp = k->mv_data, *p;
	const char	    *why;
	size_t		     off = 0, l = 0, i, n;
	int		     rc;

	check_tick(c);
	for (i = 0; i < parts; i++) {
		if (k->mv_size - off < 3 ||
		    (l = (size_t)kp[off] << 8 | kp[off + 1]) == 0 ||
		    l > k->mv_size - off - 2)
			return check_malformed(c, d, k);
		off += 2 + l;
	}
	if (off != k->mv_size)
		return check_malformed(c, d, k);
	l = (size_t)kp[0] << 8 | kp[1];
	if ((rc = db_has(t, DBI_VPPTOKEN, kp + 2, l)) < 0)
		return rc;
	if (rc == 0) {
		if ((rc = problem(c, d, kp, k->mv_size, c->repair,
			 "belongs to VPP token %.*s, which does not exist",
			 (int)l, (const char *)kp + 2)) != 0)
			return rc;
		return c->repair;
	}
	if ((why = rec_problem(v, store_kinds[d].rec, NULL)) != NULL)
		return problem(c, d, kp, k->mv_size, 0, "%s", why);
	/* The record's ID is the key's second string. */
	l = (size_t)kp[2 + (kp[0] << 8 | kp[1])] << 8 |
	    kp[3 + (kp[0] << 8 | kp[1])];
	if (d != DBI_VPPASSIGN &&
	    (rec_field(v, store_kinds[d].rec, idtag, &p, &n) != 1 || n != l ||
		memcmp(p, kp + 4 + (kp[0] << 8 | kp[1]), l) != 0))
		return problem(c, d, kp, k->mv_size, 0,
		    "record holds another ID than its key");
	return 0;
}

static int
check_vpptoken(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_VPPTOKEN_NAME, 2, 0};

	(void)t;
	return check_own_key(arg, DBI_VPPTOKEN, REC_VPPTOKEN, req,
	    TAG_VPPTOKEN_NAME, "token name", k, v);
}

static int
check_vppasset(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return check_vpp(arg, t, DBI_VPPASSET, k, v, 3, 1);
}

static int
check_vppassign(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return check_vpp(arg, t, DBI_VPPASSIGN, k, v, 4, 0);
}

static int
check_vppuser(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return check_vpp(arg, t, DBI_VPPUSER, k, v, 2, 1);
}

static int
check_vppmeta(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return check_vpp(arg, t, DBI_VPPMETA, k, v, 2, 1);
}

static int
check_vppevent(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	return check_vpp(arg, t, DBI_VPPEVENT, k, v, 2, 1);
}

/* ENRTOKEN: keyed by a SHA-256; the record decodes and has an expiry. */
static int
check_enrtoken(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {3, 0}; /* expires_at */
	struct check_ctx     *c = arg;
	const char	     *why;

	(void)t;
	check_tick(c);
	if (k->mv_size != 32)
		return problem(c, DBI_ENRTOKEN, k->mv_data, k->mv_size, 0,
		    "key is not a SHA-256");
	if ((why = rec_problem(v, REC_ENRTOKEN, req)) != NULL)
		return problem(
		    c, DBI_ENRTOKEN, k->mv_data, k->mv_size, 0, "%s", why);
	return 0;
}

/* ADE_TOKEN: the record decodes and holds the name it is keyed by. */
static int
check_adetoken(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_ADETOKEN_NAME, 0};

	(void)t;
	return check_own_key(arg, DBI_ADETOKEN, REC_ADETOKEN, req,
	    TAG_ADETOKEN_NAME, "token name", k, v);
}

/* ADE_DEVICE: the record decodes and holds the serial it is keyed by. */
static int
check_adedevice(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_ADEDEV_SERIAL, 0};

	(void)t;
	return check_own_key(arg, DBI_ADEDEVICE, REC_ADEDEVICE, req,
	    TAG_ADEDEV_SERIAL, "serial number", k, v);
}

/* EVENT: keyed by a sequence number (the counter "seq" stays above
 * it); the record decodes with its enrollment, topic and URL; the
 * enrollment exists (repair: drop the event, which no purge would reach
 * otherwise). */
static int
check_event(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {TAG_EVENT_ENROLL, 2, 14, 0};
	struct check_ctx     *c = arg;
	const char	     *why;
	const unsigned char  *p;
	size_t		      n;
	uint64_t	      seq;
	int		      rc;

	check_tick(c);
	if (k->mv_size != 8)
		return check_malformed(c, DBI_EVENT, k);
	if ((seq = key_get_u64(k->mv_data)) > c->max_seq)
		c->max_seq = seq;
	if ((why = rec_problem(v, REC_EVENT, req)) != NULL)
		return problem(
		    c, DBI_EVENT, k->mv_data, k->mv_size, 0, "%s", why);
	if ((rc = rec_field(v, REC_EVENT, TAG_EVENT_ENROLL, &p, &n)) != 1)
		return rc < 0 ? rc : 0;
	if ((rc = db_has(t, DBI_ENROLL, p, n)) < 0)
		return rc;
	if (rc == 1)
		return 0;
	if ((rc = problem(c, DBI_EVENT, k->mv_data, k->mv_size, c->repair,
		 "webhook event of an enrollment that does not exist")) != 0)
		return rc;
	return c->repair;
}

/* PUSHQ, PUSHSTATE: keyed by an enrollment number in use (repair: drop);
 * the record decodes (an outbox record has its queued_at). */
static int
check_push_kind(struct check_ctx *c, enum store_dbi d, enum rec_kind r,
    const unsigned *req, const MDB_val *k, const MDB_val *v)
{
	const char *why;

	check_tick(c);
	if (k->mv_size != 8)
		return check_malformed(c, d, k);
	if (!u64set_has(&c->eids, key_get_u64(k->mv_data)))
		return check_orphan(c, d, k, "push record");
	if ((why = rec_problem(v, r, req)) != NULL)
		return problem(c, d, k->mv_data, k->mv_size, 0, "%s", why);
	return 0;
}

static int
check_pushq(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	static const unsigned req[] = {1, 0}; /* queued_at */

	(void)t;
	return check_push_kind(arg, DBI_PUSHQ, REC_PUSHQ, req, k, v);
}

static int
check_pushstate(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	(void)t;
	return check_push_kind(arg, DBI_PUSHSTATE, REC_PUSHSTATE, NULL, k, v);
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

/* The enabled / disabled counters (store_counts.c) must match the
 * records; absent is fine (a store not yet opened for writing by this
 * version), and --repair sets them from the records. */
static int
check_enroll_counts(struct store_txn *t, struct check_ctx *c)
{
	static const char *const name[2] = {
	    "enrollments_disabled", "enrollments_enabled"};
	uint64_t		 have[2], want[2];
	MDB_val			 v;
	int			 i, rc, absent = 0;

	for (i = 0; i < 2; i++) {
		rc = db_getv(t, DBI_META, name[i], strlen(name[i]), &v);
		if (rc == STORE_ENOTFOUND) {
			absent++;
			continue;
		}
		if (rc != 0)
			return rc;
		have[i] = v.mv_size == 8 ? key_get_u64(v.mv_data) : UINT64_MAX;
	}
	if (absent == 2)
		return 0;
	if ((rc = enroll_count_records(t, &want[0], &want[1])) != 0)
		return rc;
	if (absent == 0 && have[0] == want[0] && have[1] == want[1])
		return 0;
	if (c->repair && (rc = enroll_count_reset(t)) != 0)
		return rc;
	for (i = 0; i < 2 && rc == 0; i++) {
		if (absent == 0 && have[i] == want[i])
			continue;
		rc = problem(c, DBI_META, name[i], strlen(name[i]), c->repair,
		    "counter does not match the %llu enrollment records that "
		    "are %s", (unsigned long long)want[i],
		    i ? "enabled" : "disabled");
	}
	return rc;
}

/*
 * The check of one entry, by sub-database; the registry (store_kinds.c)
 * says in which pass each runs.
 */
static const visit_fn checks[DBI__MAX] = {
    [DBI_DEVICE] = check_device,
    [DBI_ENROLL] = check_enroll,
    [DBI_EID] = check_eid,
    [DBI_UCHAN] = check_uchan,
    [DBI_SERIAL] = check_serial,
    [DBI_CERT] = check_cert,
    [DBI_MSG] = check_msg,
    [DBI_CMD] = check_cmd,
    [DBI_QUEUE] = check_queue,
    [DBI_QPOS] = check_qpos,
    [DBI_RESULT] = check_result,
    [DBI_RESULTIX] = check_resultix,
    [DBI_CMDQ] = check_cmdq,
    [DBI_PUSHCERT] = check_pushcert,
    [DBI_MACHINEINFO] = check_machineinfo,
    [DBI_ENRTOKEN] = check_enrtoken,
    [DBI_ADETOKEN] = check_adetoken,
    [DBI_ADEDEVICE] = check_adedevice,
    [DBI_EVENT] = check_event,
    [DBI_VPPTOKEN] = check_vpptoken,
    [DBI_VPPASSET] = check_vppasset,
    [DBI_VPPASSIGN] = check_vppassign,
    [DBI_VPPUSER] = check_vppuser,
    [DBI_VPPMETA] = check_vppmeta,
    [DBI_PUSHQ] = check_pushq,
    [DBI_PUSHSTATE] = check_pushstate,
    [DBI_VPPEVENT] = check_vppevent,
};

/* See store_kinds.h. */
int
store_check_has(enum store_dbi d)
{
	return (unsigned)d < DBI__MAX && checks[d] != NULL;
}

/*
 * All passes, in the order of their numbers in the registry, where each
 * can rely on the ones before: enrollments before their numbers (repair
 * adds missing numbers), numbers before everything keyed by them.
 */
static int
check_op(struct store_txn *t, void *arg)
{
	struct check_ctx	*c = arg;
	const struct store_kind *k;
	MDB_stat		 st;
	MDB_val			 v;
	size_t			 i;
	int			 d, pass, rc;

	check_reset(c);
	for (d = 0; d < DBI__MAX; d++) {
		if ((rc = mdb_stat(t->txn, t->s->dbi[d], &st)) != 0)
			return store_rc(rc);
		c->total += st.ms_entries;
	}
	for (pass = 1; pass <= DBI__MAX; pass++)
		for (i = 0; i < DBI__MAX; i++) {
			k = &store_kinds[i];
			if (k->check_pass != pass || checks[k->dbi] == NULL)
				continue;
			if ((rc = db_visit(t, k->dbi, checks[k->dbi], c,
				 NULL)) != 0)
				return rc;
			if (k->dbi == DBI_EID)
				u64set_sort(&c->eids);
		}
	rc = db_getv(t, DBI_META, "schema_version", 14, &v);
	/* An older format is one a read-only check sees before the first
	 * read-write open upgrades it (store.h). */
	if (rc == STORE_ENOTFOUND ||
	    (rc == 0 &&
		(v.mv_size != 8 ||
		    key_get_u64(v.mv_data) < STORE_SCHEMA_OLDEST ||
		    key_get_u64(v.mv_data) > STORE_SCHEMA_VERSION)))
		rc = problem(c, DBI_META, "schema_version", 14, 0,
		    "missing or not %d to %d", STORE_SCHEMA_OLDEST,
		    STORE_SCHEMA_VERSION);
	if (rc != 0 || (rc = check_counter(t, c, "seq", c->max_seq)) != 0 ||
	    (rc = check_counter(t, c, "eid", c->max_eid)) != 0 ||
	    (rc = check_enroll_counts(t, c)) != 0)
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
