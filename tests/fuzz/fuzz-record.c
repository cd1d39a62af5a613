/*
 * fuzz-record.c - fuzz the store's record and key decoding: whatever
 * bytes are in an LMDB file (a bug, a disk error, an edited backup) must
 * decode to an error, never to a crash or a read past a value.
 *
 * Each input is a whole store's contents. It is written, raw, into a
 * store in a temporary directory (opened once, without fsync) by a
 * test-only path - store_int.h's environment and sub-database handles
 * with mdb_put, after emptying every sub-database - and then everything
 * that reads records runs over it through the public API (store.h):
 * store_dump (JSON with and without secrets), store_check (report, then
 * repair), every enrollment through store_enrollment_iter with its
 * device, user channels, raw messages, queue, results and their
 * commands and targets, then store_queue_next and store_prune in a
 * write. Errors are fine; crashes, leaks and sanitizer reports are not.
 *
 * Input format: a flags byte (bit 0: also run the writes, queue_next,
 * prune and check --repair; they are slow under ASan, where each LMDB
 * write transaction maps and clears megabytes), then entries of
 *
 *	sub-database (1 byte, taken modulo the number of them)
 *	key length (1 byte; 0 skips the entry), key
 *	value length (2 bytes, big-endian), value
 *
 * up to the end. An input starting with 'R' is instead given to
 * store_restore() (--force) as a dump, the other parser of store bytes.
 *
 * Built with -DPICOMDM_LIBFUZZER this is a libFuzzer target. Otherwise
 * main() replays the files and directories given, or
 * tests/fuzz/corpus/record (through PICOMDM_TEST_DATA), as make check
 * does; "fuzz-record --seed FILE" writes a seed input: a store filled
 * through the public API with every kind of record, serialised.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "picomdm/log.h"
#include "picomdm/store.h"
#include "store_int.h"
#include "scratch.h"

#define FUZZ_INPUT_MAX (1024 * 1024)

static struct store *fz_store; /* scratch.h */

static FILE	    *fz_null;

/* The scratch store, once (scratch.h). */
static void
fuzz_init(void)
{
	if (fz_store != NULL)
		return;
	log_set_level(LOG_ERROR);
	fz_store = scratch_open("fuzz-record");
	if ((fz_null = fopen("/dev/null", "w")) == NULL)
		exit(2);
}

struct fuzz_in {
	const uint8_t *p;
	size_t	       n;
};

/* Empty every sub-database, then put the input's entries. */
static int
fuzz_load_op(struct store_txn *t, void *arg)
{
	const struct fuzz_in *in = arg;
	const uint8_t	     *p = in->p, *end = in->p + in->n;
	MDB_val		      k, v;
	unsigned	      d, kl, vl;
	int		      i, rc;

	for (i = 0; i < DBI__MAX; i++)
		if ((rc = mdb_drop(t->txn, t->s->dbi[i], 0)) != 0)
			return store_rc(rc);
	while (end - p >= 4) {
		d = p[0] % DBI__MAX;
		kl = p[1];
		if ((size_t)(end - p) < 2 + (size_t)kl + 2)
			break;
		k.mv_data = (void *)(uintptr_t)(p + 2);
		k.mv_size = kl;
		vl = (unsigned)p[2 + kl] << 8 | p[3 + kl];
		p += 4 + kl;
		if ((size_t)(end - p) < vl)
			vl = (unsigned)(end - p);
		v.mv_data = (void *)(uintptr_t)p;
		v.mv_size = vl;
		p += vl;
		if (kl == 0)
			continue;
		rc = mdb_put(t->txn, t->s->dbi[d], &k, &v, 0);
		if (rc != 0 && rc != MDB_BAD_VALSIZE)
			return store_rc(rc);
	}
	return 0;
}

/*
 * Read every byte of a string the store handed out, so a bad pointer or
 * a missing terminator shows. NULL is allowed for optional members; a
 * record without a field that store.h promises (the one naming it, its
 * raw bytes) must not decode at all, which need() checks.
 */
static void
touch(const char *s)
{
	if (s != NULL)
		(void)strlen(s);
}

static void
need(const void *p)
{
	if (p == NULL)
		abort();
}

static int
fuzz_problem(const struct store_problem *p, void *arg)
{
	touch(p->db);
	touch(p->key);
	touch(p->what);
	(void)arg;
	return 0;
}

static int
fuzz_target_cb(const struct store_target *tg, void *arg)
{
	touch(tg->enrollment_id);
	(void)arg;
	return 0;
}

struct fuzz_walk {
	struct store_txn *t;
	int		  n;
};

static int
fuzz_queue_cb(const struct store_queue_item *q, void *arg)
{
	struct fuzz_walk     *w = arg;
	struct store_command *c = NULL;

	if (w->n++ > 64)
		return 1;
	touch(q->enrollment_id);
	need(q->uuid);
	if (store_command_get(w->t, q->uuid, &c) == 0) {
		need(c->uuid);
		need(c->request_type);
		need(c->raw);
		touch(c->uuid);
		touch(c->request_type);
		store_command_free(c);
	}
	(void)store_command_targets(w->t, q->uuid, fuzz_target_cb, NULL);
	return 0;
}

static int
fuzz_result_cb(const struct store_result *r, void *arg)
{
	struct fuzz_walk    *w = arg;
	struct store_result *one = NULL;

	if (w->n++ > 64)
		return 1;
	need(r->uuid);
	need(r->raw);
	touch(r->uuid);
	if (r->enrollment_id != NULL &&
	    store_result_get(w->t, r->enrollment_id, r->seq, &one) == 0)
		store_result_free(one);
	return 0;
}

static int
fuzz_msg_cb(const struct store_msg *m, void *arg)
{
	need(m->enrollment_id);
	need(m->raw);
	touch(m->enrollment_id);
	touch(m->topic);
	(void)arg;
	return 0;
}

static int
fuzz_id_cb(const char *id, void *arg)
{
	touch(id);
	(void)arg;
	return 0;
}

static int
fuzz_enroll_cb(const struct store_enrollment *e, void *arg)
{
	struct fuzz_walk    *w = arg, sub = {w->t, 0};
	struct store_device *d = NULL;
	char		    *id = NULL;

	if (w->n++ > 256)
		return 1;
	need(e->id);
	if (e->device_id != NULL &&
	    store_device_get(w->t, e->device_id, &d) == 0) {
		need(d->id);
		if (d->serial != NULL &&
		    store_device_by_serial(w->t, d->serial, &id) == 0)
			free(id);
		id = NULL;
		store_device_free(d);
		(void)store_user_channels(w->t, e->device_id, fuzz_id_cb, NULL);
	}
	if (store_device_resolve(w->t, e->id, &id) == 0)
		free(id);
	(void)store_msg_iter(w->t, e->id, fuzz_msg_cb, NULL);
	(void)store_queue_iter(w->t, e->id, fuzz_queue_cb, &sub);
	sub.n = 0;
	(void)store_result_iter(w->t, e->id, UINT64_MAX, fuzz_result_cb, &sub);
	return 0;
}

static int
fuzz_read_op(struct store_txn *t, void *arg)
{
	struct fuzz_walk      w = {t, 0};
	struct store_dbi_stat st[DBI__MAX];
	struct store_env_stat es;

	(void)arg;
	(void)store_stat(t, st, DBI__MAX);
	(void)store_env_stat(t, &es);
	return store_enrollment_iter(t, NULL, fuzz_enroll_cb, &w);
}

static int
fuzz_next_cb(const struct store_enrollment *e, void *arg)
{
	char **ids = arg;
	int    i;

	for (i = 0; i < 8 && ids[i] != NULL; i++)
		;
	if (i == 8)
		return 1;
	if (e->id == NULL)
		return 0;
	if ((ids[i] = strdup(e->id)) == NULL)
		return STORE_ENOMEM;
	return 0;
}

/* In a write: the next command of up to 8 enrollments, then a prune. */
static int
fuzz_write_op(struct store_txn *t, void *arg)
{
	struct store_command	*c = NULL;
	struct store_prune_count pc;
	char			*ids[9] = {NULL};
	int			 i, rc;

	(void)arg;
	rc = store_enrollment_iter(t, NULL, fuzz_next_cb, ids);
	for (i = 0; i < 8 && ids[i] != NULL; i++) {
		if (store_queue_next(t, ids[i], i & 1, &c) == 0)
			store_command_free(c);
		c = NULL;
		free(ids[i]);
	}
	memset(&pc, 0, sizeof(pc));
	(void)store_prune(t, UINT64_MAX, 64, &pc);
	(void)rc;
	return 0;
}

static int
fuzz_one(const uint8_t *data, size_t size)
{
	struct fuzz_in		 in = {data, size};
	struct store_check_count cc;
	uint64_t		 n;
	char			 err[256];
	int			 writes;

	fuzz_init();
	if (size == 0)
		return 0;
	writes = data[0] & 1;
	if (data[0] == 'R') {
		(void)store_restore(fz_store, data + 1, size - 1,
		    STORE_RESTORE_FORCE, NULL, &n, err, sizeof(err));
	} else {
		in.p = data + 1;
		in.n = size - 1;
		if (store_write(fz_store, fuzz_load_op, &in) != 0)
			return 0;
	}
	(void)store_dump(fz_store, fz_null, 0, NULL, &n);
	(void)store_dump(fz_store, fz_null, STORE_DUMP_SECRETS, NULL, &n);
	(void)store_read(fz_store, fuzz_read_op, NULL);
	(void)store_check(fz_store, 0, NULL, fuzz_problem, NULL, &cc);
	if (writes) {
		(void)store_write(fz_store, fuzz_write_op, NULL);
		(void)store_check(fz_store, 1, NULL, fuzz_problem, NULL, &cc);
	}
	(void)fflush(fz_null);
	return 0;
}

/* ---- --seed: a store with every kind of record, serialised ---- */

static int
seed_fill_op(struct store_txn *t, void *arg)
{
	static const char cmd1[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">"
	    "<dict><key>Command</key><dict><key>RequestType</key><string>"
	    "DeviceInformation</string><key>Queries</key><array><string>"
	    "OSVersion</string></array></dict><key>CommandUUID</key><string>"
	    "SEED-CMD-1</string></dict></plist>\n";
	static const char cmd2[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">"
	    "<dict><key>Command</key><dict><key>RequestType</key><string>"
	    "ProfileList</string></dict><key>CommandUUID</key><string>"
	    "SEED-CMD-2</string></dict></plist>\n";
	static const char ack[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">"
	    "<dict><key>CommandUUID</key><string>SEED-CMD-1</string><key>"
	    "Status</key><string>Acknowledged</string><key>UDID</key><string>"
	    "SEED-UDID</string></dict></plist>\n";
	static const char auth[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">"
	    "<dict><key>MessageType</key><string>Authenticate</string><key>"
	    "Topic</key><string>com.apple.mgmt.External.seed</string><key>UDID"
	    "</key><string>SEED-UDID</string></dict></plist>\n";
	struct store_device	d;
	struct store_enrollment e, u;
	struct store_command	c;
	unsigned char		tok[32], hash[32];
	int			rc, known;

	(void)arg;
	memset(tok, 0x5a, sizeof(tok));
	memset(hash, 0xa5, sizeof(hash));
	memset(&d, 0, sizeof(d));
	d.id = d.udid = (char *)(uintptr_t) "SEED-UDID";
	d.serial = (char *)(uintptr_t) "SEEDSERIAL1";
	d.model = (char *)(uintptr_t) "MLPF3LL/A";
	d.os_version = (char *)(uintptr_t) "17.5.1";
	d.topic = (char *)(uintptr_t) "com.apple.mgmt.External.seed";
	memcpy(d.cert_hash, hash, 32);
	d.has_cert = 1;
	d.unlock_token = tok;
	d.unlock_token_len = 24;
	d.bootstrap_token = tok;
	d.bootstrap_token_len = 32;
	d.created_at = d.authenticated_at = store_txn_now(t);
	if ((rc = store_device_put(t, &d)) != 0 ||
	    (rc = store_cert_put(t, hash, "SEED-UDID")) != 0)
		return rc;
	memset(&e, 0, sizeof(e));
	e.id = e.device_id = (char *)(uintptr_t) "SEED-UDID";
	e.type = ENROLL_DEVICE;
	e.topic = d.topic;
	e.push_magic =
	    (char *)(uintptr_t) "8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13";
	e.token = tok;
	e.token_len = sizeof(tok);
	e.enabled = 1;
	e.token_update_tally = 3;
	e.created_at = e.last_seen = store_txn_now(t);
	if ((rc = store_enrollment_put(t, &e)) != 0)
		return rc;
	u = e;
	u.id = (char *)(uintptr_t) "SEED-UDID:user@example.com";
	u.type = ENROLL_USER;
	u.user_id = (char *)(uintptr_t) "user@example.com";
	u.user_short_name = (char *)(uintptr_t) "user";
	if ((rc = store_enrollment_put(t, &u)) != 0)
		return rc;
	if ((rc = store_msg_put(t, "SEED-UDID", MSG_AUTHENTICATE, d.topic, auth,
		 sizeof(auth) - 1)) != 0)
		return rc;
	memset(&c, 0, sizeof(c));
	c.uuid = (char *)(uintptr_t) "SEED-CMD-1";
	c.request_type = (char *)(uintptr_t) "DeviceInformation";
	c.raw = (unsigned char *)(uintptr_t)cmd1;
	c.raw_len = sizeof(cmd1) - 1;
	c.created_at = store_txn_now(t);
	if ((rc = store_command_put(t, &c)) != 0)
		return rc;
	c.uuid = (char *)(uintptr_t) "SEED-CMD-2";
	c.request_type = (char *)(uintptr_t) "ProfileList";
	c.raw = (unsigned char *)(uintptr_t)cmd2;
	c.raw_len = sizeof(cmd2) - 1;
	if ((rc = store_command_put(t, &c)) != 0 ||
	    (rc = store_queue_push(t, "SEED-UDID", "SEED-CMD-1", 10, 0)) != 0 ||
	    (rc = store_queue_push(t, "SEED-UDID", "SEED-CMD-2", 200,
		 store_txn_now(t) + 3600000000ULL)) != 0 ||
	    (rc = store_queue_push(
		 t, "SEED-UDID:user@example.com", "SEED-CMD-2", 50, 0)) != 0)
		return rc;
	return store_result_put(t, "SEED-UDID", "SEED-CMD-1",
	    CMD_STATUS_ACKNOWLEDGED, ack, sizeof(ack) - 1, 1, &known);
}

struct seed_out {
	FILE *f;
	int   err;
};

/* Write every entry of every sub-database in the input format. */
static int
seed_dump_op(struct store_txn *t, void *arg)
{
	struct seed_out *o = arg;
	MDB_cursor	*cur;
	MDB_val		 k, v;
	int		 i, rc;

	for (i = 0; i < DBI__MAX; i++) {
		if (mdb_cursor_open(t->txn, t->s->dbi[i], &cur) != 0)
			return STORE_EIO;
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			if (k.mv_size > 255 || v.mv_size > 0xffff) {
				o->err = 1;
				continue;
			}
			fputc(i, o->f);
			fputc((int)k.mv_size, o->f);
			fwrite(k.mv_data, 1, k.mv_size, o->f);
			fputc((int)(v.mv_size >> 8), o->f);
			fputc((int)(v.mv_size & 0xff), o->f);
			fwrite(v.mv_data, 1, v.mv_size, o->f);
		}
		mdb_cursor_close(cur);
	}
	return 0;
}

static int
seed(const char *path)
{
	struct seed_out o = {NULL, 0};
	int		rc;

	fuzz_init();
	if ((rc = store_write(fz_store, seed_fill_op, NULL)) != 0) {
		fprintf(stderr, "fuzz-record: seed: %s\n", store_strerror(rc));
		return 1;
	}
	if ((o.f = fopen(path, "wb")) == NULL) {
		fprintf(stderr, "fuzz-record: %s: %s\n", path, strerror(errno));
		return 1;
	}
	fputc(1, o.f); /* flags: run the writes too */
	rc = store_read(fz_store, seed_dump_op, &o);
	if (fclose(o.f) != 0 || rc != 0 || o.err) {
		fprintf(
		    stderr, "fuzz-record: %s: cannot write the seed\n", path);
		return 1;
	}
	return 0;
}

/* --seed FILE, or -1 for the replay. */
static int
seed_args(int argc, char *argv[])
{
	if (argc == 3 && strcmp(argv[1], "--seed") == 0)
		return seed(argv[2]);
	return -1;
}

#include "replay.h"

REPLAY_TARGET("record", .usage = "       fuzz-record --seed FILE\n",
    .max = FUZZ_INPUT_MAX, .exact = 1, .args = seed_args);
