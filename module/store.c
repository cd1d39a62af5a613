/*
 * store.c - the LMDB environment, transactions, map growth and the
 * group-commit writer.
 *
 * Durability: the environment is opened without MDB_NOSYNC, so a commit
 * returns only after its pages and meta page are on disk. The writer
 * thread takes every write waiting at that moment, runs them all in one
 * transaction, commits it once, and only then releases the waiting
 * requests. Should one of them fail, the batch is aborted and run again
 * with each operation in a nested transaction of one parent, so a failing
 * operation discards only its own changes (store_run_flat). Reads run in
 * their own read-only transactions and never wait.
 * A request is released either by waking its thread (store_write) or by
 * calling its completion from the writer thread (store_submit), so the
 * thread that read the request need not wait for the disk.
 *
 * Map growth: an operation that hits MDB_MAP_FULL is discarded, the batch
 * commits without it, the map doubles (up to map_max) while no transaction
 * of this process is open (resize_lock), and the operation runs again.
 * Another process's growth shows up as MDB_MAP_RESIZED and is adopted.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "picomdm/log.h"
#include "picomdm/metrics.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_int.h"
#include "store_kinds.h"

const char *const store_dbi_names[DBI__MAX] = {
	"meta", "device", "enroll", "eid", "uchan", "serial", "cert", "msg",
	"cmd", "queue", "qpos", "result", "cmdq", "pushcert", "machineinfo",
	"enrollment_token", "ade_token", "ade_device", "event", "vpp_token",
	"vpp_asset", "vpp_assignment", "vpp_user", "push_outbox", "push_state",
	"vpp_metadata", "vpp_event", "result_index"
};

#define BATCH_MAX 256 /* jobs in one group commit, at most */

/*
 * A write waiting for the writer. store_write()'s job lives on its
 * caller's stack and is released by done; store_submit()'s is allocated
 * and carries the completion to call.
 */
struct store_job {
	store_op_fn       fn;
	void             *arg;
	store_done_fn     done_fn;   /* NULL: a store_write() caller waits */
	void             *done_arg;
	int               rc;
	int               done;
	struct store_job *next;
};

const char *
store_strerror(int rc)
{
	switch (rc) {
	case STORE_OK:
		return "ok";
	case STORE_ENOTFOUND:
		return "not found";
	case STORE_EEXIST:
		return "already exists";
	case STORE_EFULL:
		return "store full (map cannot grow)";
	case STORE_ECORRUPT:
		return "record does not decode";
	case STORE_EINVAL:
		return "invalid argument";
	case STORE_EIO:
		return "store i/o error";
	case STORE_ENOMEM:
		return "out of memory";
	case STORE_EREADONLY:
		return "store is read-only";
	case STORE_EREADERS:
		return "too many readers";
	case STORE_ENOSPC:
		return "file system full";
	case STORE_EDISK:
		return "disk i/o error";
	default:
		return rc > 0 ? "refused" : "unknown store error";
	}
}

/* Map an LMDB or errno code to a store_err, logging the unexpected. */
int
store_rc(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return STORE_OK;
	case MDB_NOTFOUND:
		return STORE_ENOTFOUND;
	case MDB_KEYEXIST:
		return STORE_EEXIST;
	case MDB_MAP_FULL:
		return STORE_EFULL;
	case MDB_READERS_FULL:
		return STORE_EREADERS;
	case MDB_BAD_VALSIZE:
		return STORE_EINVAL;
	case ENOMEM:
		return STORE_ENOMEM;
	case EACCES:
	case EROFS:
		return STORE_EREADONLY;
	case ENOSPC:
	case EDQUOT:
		return STORE_ENOSPC;
	case EIO:
		return STORE_EDISK;
	default:
		log_error("lmdb: %s", mdb_strerror(rc));
		return STORE_EIO;
	}
}

/* See store_int.h. */
int
store_schema_put(struct store_txn *t)
{
	struct key    k;
	uint64_t      ver = STORE_SCHEMA_VERSION;
	unsigned char be[8];
	int           i;

	for (i = 7; i >= 0; i--, ver >>= 8)
		be[i] = (unsigned char)ver;
	key_init(&k);
	key_raw(&k, "schema_version", 14);
	return db_put(t, DBI_META, &k, be, 8, 0);
}

/*
 * Check the schema version (store.h): record this build's on a new store;
 * refuse one newer than this build knows, or none it reads, with one line
 * saying so. *found: the version the store has (this build's for a new
 * one, or for a read-only view of a store never written).
 */
static int
store_check_schema(struct store *s, const char *dir, uint64_t *found)
{
	struct store_txn t = { .s = s };
	struct key       k;
	MDB_val          v;
	int              rc, wr = 0;

	*found = STORE_SCHEMA_VERSION;
	/* Read first: the usual open does not wait for LMDB's write lock. */
again:
	if ((rc = mdb_txn_begin(s->env, NULL, wr ? 0 : MDB_RDONLY,
	    &t.txn)) != 0)
		return store_rc(rc);
	key_init(&k);
	key_raw(&k, "schema_version", 14);
	rc = db_get(&t, DBI_META, &k, &v);
	if (rc == STORE_ENOTFOUND && !s->readonly && !wr) {
		mdb_txn_abort(t.txn);
		wr = 1;
		goto again;
	} else if (rc == STORE_ENOTFOUND && !s->readonly) {
		if ((rc = store_schema_put(&t)) != 0)
			goto out;
		if ((rc = mdb_txn_commit(t.txn)) != 0)
			return store_rc(rc);
		return 0;
	} else if (rc == 0 && v.mv_size == 8 &&
	    key_get_u64(v.mv_data) > STORE_SCHEMA_VERSION) {
		log_error("store: %s: made by a newer picomdm (store format "
		    "%llu, this one knows %d at most): run that version or a "
		    "later one", dir,
		    (unsigned long long)key_get_u64(v.mv_data),
		    STORE_SCHEMA_VERSION);
		rc = STORE_EINVAL;
	} else if (rc == 0 && (v.mv_size != 8 ||
	    key_get_u64(v.mv_data) < STORE_SCHEMA_OLDEST)) {
		log_error("store: %s: store format %llu is not one this "
		    "picomdm reads (%d to %d)", dir, v.mv_size == 8 ?
		    (unsigned long long)key_get_u64(v.mv_data) : 0ULL,
		    STORE_SCHEMA_OLDEST, STORE_SCHEMA_VERSION);
		rc = STORE_ECORRUPT;
	} else if (rc == 0)
		*found = key_get_u64(v.mv_data);
	else if (rc == STORE_ENOTFOUND)
		rc = 0; /* read-only view of a store never written */
out:
	mdb_txn_abort(t.txn);
	return rc;
}

/* Record this build's schema version after an upgrade (the moves done
 * at a read-write open, in store_open1, have committed). */
static int
store_schema_upgrade(struct store *s, const char *dir, uint64_t found)
{
	struct store_txn t = { .s = s };
	int              rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t.txn)) != 0)
		return store_rc(rc);
	if ((rc = store_schema_put(&t)) != 0) {
		mdb_txn_abort(t.txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(t.txn)) != 0)
		return store_rc(rc);
	log_info("store: %s: upgraded from store format %llu to %d; an "
	    "older picomdm refuses it now", dir, (unsigned long long)found,
	    STORE_SCHEMA_VERSION);
	return 0;
}

/*
 * A store made by an older picomdm lacks the sub-databases added since.
 * A read-write open creates them; a read-only one cannot, so it adds them
 * here in a short read-write open of its own (empty sub-databases change
 * no record) when the store is a picomdm store (it has "meta") and the
 * directory is writable. 0 when they now exist; STORE_ENOTFOUND, said,
 * otherwise. LMDB wants one open of an environment per process at a
 * time, so the caller has closed its read-only one.
 */
#define OPEN_AGAIN 1 /* store_open1: added what was missing, open again */

static int store_open1(const char *, const struct store_opts *,
    struct store **, int);

static int
store_add_missing(const char *dir, const char *missing)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi	 dbi;
	int	 rc, i;

	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, DBI__MAX)) != 0)
		goto out;
	if (access(dir, W_OK) == -1 ||
	    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) != 0) {
		log_error("store: %s: made by an older picomdm (it has no "
		    "sub-database \"%s\"), and it cannot be opened "
		    "read-write to add it: start picomdm-fcgi on it once, "
		    "or run picomdmctl --db %s check as a user who can "
		    "write it", dir, missing, dir);
		rc = STORE_ENOTFOUND;
		goto out;
	}
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
		goto out;
	if ((rc = mdb_dbi_open(txn, store_dbi_names[DBI_META], 0, &dbi)) != 0) {
		mdb_txn_abort(txn);
		log_error("store: %s: not a picomdm store", dir);
		rc = STORE_ENOTFOUND;
		goto out;
	}
	for (i = 0; i < DBI__MAX; i++)
		if ((rc = mdb_dbi_open(txn, store_dbi_names[i], MDB_CREATE,
		    &dbi)) != 0) {
			mdb_txn_abort(txn);
			goto out;
		}
	if ((rc = mdb_txn_commit(txn)) == 0)
		log_info("store: %s: added the sub-databases this version "
		    "keeps (\"%s\" and any others missing)", dir, missing);
out:
	if (rc != 0 && rc != STORE_ENOTFOUND) {
		log_error("store: %s: adding sub-database \"%s\": %s", dir,
		    missing, mdb_strerror(rc));
		rc = STORE_ENOTFOUND;
	}
	if (env != NULL)
		mdb_env_close(env);
	return rc;
}

/*
 * Open the environment and every named sub-database. With readonly, the
 * sub-databases must already exist (the responder or a restore made
 * them); those an older picomdm did not make are added first when the
 * store can be written (store_add_missing).
 */
int
store_open(const char *dir, const struct store_opts *o, struct store **out)
{
	int rc, upgraded = 0;

again:
	rc = store_open1(dir, o, out, upgraded);
	if (rc == OPEN_AGAIN) {
		upgraded = 1;
		goto again;
	}
	return rc;
}

/* Open every named sub-database in a read transaction, none created; 0,
 * MDB_NOTFOUND when one is missing (nothing kept), or an LMDB error.
 * Handles opened in a read transaction that commits stay the
 * environment's. */
static int
store_dbi_open_existing(struct store *s)
{
	MDB_txn *txn;
	int      rc, i;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return rc;
	for (i = 0; i < DBI__MAX; i++)
		if ((rc = mdb_dbi_open(txn, store_dbi_names[i], 0,
		    &s->dbi[i])) != 0)
			break;
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

/* store_open's work; OPEN_AGAIN: a read-only open found a sub-database
 * missing and has added it (upgraded: it tried already). */
static int
store_open1(const char *dir, const struct store_opts *o, struct store **out,
    int upgraded)
{
	struct store      *s;
	MDB_txn           *txn = NULL;
	struct stat        st;
	pthread_condattr_t ca;
	unsigned           flags = MDB_NOTLS;
	size_t             want;
	uint64_t           found;
	int                rc, i;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return STORE_ENOMEM;
	s->readonly = o->readonly;
	s->map_size = o->map_size ? o->map_size : (size_t)64 << 20;
	s->map_max = o->map_max ? o->map_max : (size_t)16 << 30;
	if (s->map_max < s->map_size)
		s->map_max = s->map_size;
	pthread_rwlock_init(&s->resize_lock, NULL);
	s->commit_delay = o->commit_delay;
	pthread_mutex_init(&s->mu, NULL);
	/* The writer's timed wait (gather) runs on the monotonic clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv_work, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->cv_done, NULL);

	if (!o->readonly && stat(dir, &st) == -1 && errno == ENOENT &&
	    mkdir(dir, 0700) == -1) {
		log_error("store: mkdir %s: %s", dir, strerror(errno));
		rc = STORE_EIO;
		goto fail;
	}
	if ((rc = mdb_env_create(&s->env)) != 0)
		goto fail_mdb;
	if ((rc = mdb_env_set_maxdbs(s->env, DBI__MAX)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env,
	    o->max_readers ? o->max_readers : 126)) != 0)
		goto fail_mdb;
	if (o->readonly)
		flags |= MDB_RDONLY;
	if (o->nosync)
		flags |= MDB_NOSYNC | MDB_NOMETASYNC;
	if ((rc = mdb_env_open(s->env, dir, flags, 0600)) != 0) {
		log_error("store: open %s: %s", dir, mdb_strerror(rc));
		goto fail_mdb;
	}
	/* An existing larger map (grown earlier) is kept. */
	{
		MDB_envinfo ei;

		mdb_env_info(s->env, &ei);
		want = ei.me_mapsize > s->map_size ? ei.me_mapsize
		                                   : s->map_size;
		if (!o->readonly &&
		    (rc = mdb_env_set_mapsize(s->env, want)) != 0)
			goto fail_mdb;
		s->map_size = want;
	}
	/* Reader slots left by processes that died are reclaimed now. */
	(void)mdb_reader_check(s->env, &i);
	/* The usual open of a store that can be written: every sub-database
	 * exists, and opening them in a read transaction does not wait for
	 * LMDB's write lock (a writer elsewhere, the responder's). */
	rc = o->readonly ? MDB_NOTFOUND : store_dbi_open_existing(s);
	if (rc != 0 && rc != MDB_NOTFOUND)
		goto fail_mdb;
	if (rc == MDB_NOTFOUND) {
		if ((rc = mdb_txn_begin(s->env, NULL,
		    o->readonly ? MDB_RDONLY : 0, &txn)) != 0)
			goto fail_mdb;
		for (i = 0; i < DBI__MAX; i++) {
			rc = mdb_dbi_open(txn, store_dbi_names[i],
			    o->readonly ? 0 : MDB_CREATE, &s->dbi[i]);
			if (rc == MDB_NOTFOUND && o->readonly) {
				mdb_txn_abort(txn);
				if (i == DBI_META || upgraded) {
					log_error("store: %s: not a picomdm "
					    "store", dir);
					rc = STORE_ENOTFOUND;
					goto fail;
				}
				store_close(s);
				s = NULL;
				rc = store_add_missing(dir,
				    store_dbi_names[i]);
				return rc == 0 ? OPEN_AGAIN : rc;
			}
			if (rc != 0) {
				mdb_txn_abort(txn);
				goto fail_mdb;
			}
		}
		if ((rc = mdb_txn_commit(txn)) != 0)
			goto fail_mdb;
	}
	if ((rc = store_check_schema(s, dir, &found)) != 0 ||
	    (!o->readonly && ((rc = enroll_count_ensure(s)) != 0 ||
	    (rc = queue_pos_upgrade(s)) != 0 ||
	    (found < STORE_FORMAT_RESULT_SEQ &&
	    (rc = results_upgrade(s)) != 0) ||
	    (found < STORE_SCHEMA_VERSION &&
	    (rc = store_schema_upgrade(s, dir, found)) != 0))))
		goto fail;
	s->format = o->readonly ? found : STORE_SCHEMA_VERSION;
	*out = s;
	return 0;
fail_mdb:
	if (rc != MDB_NOTFOUND)
		log_error("store: %s: %s", dir, mdb_strerror(rc));
	rc = store_rc(rc);
fail:
	store_close(s);
	return rc;
}

void
store_close(struct store *s)
{
	if (s == NULL)
		return;
	store_writer_stop(s);
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->resize_lock);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv_work);
	pthread_cond_destroy(&s->cv_done);
	free(s);
}

/* Adopt a map grown by another process (MDB_MAP_RESIZED). */
static void
store_adopt_mapsize(struct store *s)
{
	MDB_envinfo ei;

	pthread_rwlock_wrlock(&s->resize_lock);
	if (mdb_env_set_mapsize(s->env, 0) == 0) {
		mdb_env_info(s->env, &ei);
		s->map_size = ei.me_mapsize;
	}
	pthread_rwlock_unlock(&s->resize_lock);
}

/* See store_int.h. */
int
store_grow(struct store *s)
{
	MDB_envinfo ei;
	size_t      want;
	int         rc;

	pthread_rwlock_wrlock(&s->resize_lock);
	mdb_env_info(s->env, &ei);
	if (ei.me_mapsize > s->map_size)
		s->map_size = ei.me_mapsize;
	if (s->map_size >= s->map_max) {
		pthread_rwlock_unlock(&s->resize_lock);
		return STORE_EFULL;
	}
	want = s->map_size > s->map_max / 2 ? s->map_max : s->map_size * 2;
	if ((rc = mdb_env_set_mapsize(s->env, want)) != 0) {
		pthread_rwlock_unlock(&s->resize_lock);
		log_error("store: grow map to %zu: %s", want, mdb_strerror(rc));
		return STORE_EFULL;
	}
	log_info("store: map grown to %zu bytes", want);
	s->map_size = want;
	pthread_rwlock_unlock(&s->resize_lock);
	return 0;
}

/* Begin a top-level transaction, holding resize_lock for reading until
 * txn_end(). Retries once after adopting another process's map growth. */
static int
txn_begin(struct store *s, int rdonly, struct store_txn *t)
{
	int rc, tries;

	memset(t, 0, sizeof(*t));
	t->s = s;
	t->rdonly = rdonly;
	for (tries = 0; tries < 3; tries++) {
		pthread_rwlock_rdlock(&s->resize_lock);
		rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0,
		    &t->txn);
		if (rc == 0) {
			t->now = time_now_us();
			return 0;
		}
		pthread_rwlock_unlock(&s->resize_lock);
		if (rc == MDB_READERS_FULL) {
			/* Slots of processes that died (kill -9) are stale. */
			int dead = 0;

			if (mdb_reader_check(s->env, &dead) == 0 && dead > 0) {
				log_warn("store: cleared %d stale reader slots",
				    dead);
				continue;
			}
			return STORE_EREADERS;
		}
		if (rc != MDB_MAP_RESIZED)
			return store_rc(rc);
		store_adopt_mapsize(s);
	}
	return STORE_EIO;
}

static int
txn_end(struct store_txn *t, int commit)
{
	uint64_t t0 = commit ? time_mono_us() : 0;
	int      rc = 0;

	if (commit) {
		rc = mdb_txn_commit(t->txn); /* page writes and fdatasync */
		metrics_commit_time(time_mono_us() - t0);
	} else
		mdb_txn_abort(t->txn);
	t->txn = NULL;
	pthread_rwlock_unlock(&t->s->resize_lock);
	return rc == 0 ? 0 : store_rc(rc);
}

int
store_read(struct store *s, store_op_fn fn, void *arg)
{
	struct store_txn t;
	int              rc;

	if ((rc = txn_begin(s, 1, &t)) != 0)
		return rc;
	rc = fn(&t, arg);
	txn_end(&t, 0);
	return rc;
}

/* Below this much free space, a file system counts as full. */
#define STORE_FS_FULL_BYTES ((uint64_t)4 << 20)

/*
 * The error a failed write commit stands for. LMDB reports a short
 * write as EIO, and a file system that fills up in the middle of a
 * commit gives exactly that: an EIO while the store's file system has
 * (next to) no space left is a full file system.
 */
static int
store_commit_cause(struct store *s, int rc)
{
	struct statvfs vfs;
	const char    *dir = NULL;

	if (rc != STORE_EDISK || mdb_env_get_path(s->env, &dir) != 0 ||
	    dir == NULL || statvfs(dir, &vfs) == -1)
		return rc;
	if ((uint64_t)vfs.f_bavail * vfs.f_frsize < STORE_FS_FULL_BYTES)
		return STORE_ENOSPC;
	return rc;
}

/*
 * A write commit failed with rc (a store_err): count it, remember it for
 * store_health_get() and log the cause by name. A full file system or a
 * failing disk leaves the store as it was before the batch (LMDB writes
 * the meta page last), and the batch's requests are answered 503.
 */
static void
store_commit_failed(struct store *s, int rc, size_t n)
{
	__atomic_add_fetch(&s->commit_failures, 1, __ATOMIC_RELAXED);
	if (rc == STORE_ENOSPC)
		__atomic_add_fetch(&s->commit_nospc, 1, __ATOMIC_RELAXED);
	else if (rc == STORE_EDISK)
		__atomic_add_fetch(&s->commit_disk, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&s->last_error_at, time_now_us(), __ATOMIC_RELAXED);
	__atomic_store_n(&s->last_error, rc, __ATOMIC_RELAXED);
	log_error("store: commit of %zu operations failed: %s%s", n,
	    store_strerror(rc), store_err_unavailable(rc) ?
	    " (answering 503 until a commit succeeds)" : "");
}

void
store_health_get(struct store *s, struct store_health *out)
{
	out->commit_failures = __atomic_load_n(&s->commit_failures,
	    __ATOMIC_RELAXED);
	out->commit_nospc = __atomic_load_n(&s->commit_nospc,
	    __ATOMIC_RELAXED);
	out->commit_disk = __atomic_load_n(&s->commit_disk, __ATOMIC_RELAXED);
	out->last_error = __atomic_load_n(&s->last_error, __ATOMIC_RELAXED);
	out->last_error_at = out->last_error == 0 ? 0 :
	    __atomic_load_n(&s->last_error_at, __ATOMIC_RELAXED);
}

int
store_err_unavailable(int rc)
{
	return rc == STORE_EFULL || rc == STORE_ENOSPC || rc == STORE_EDISK ||
	    rc == STORE_EREADONLY || rc == STORE_EREADERS;
}

/* A commit went through: if earlier ones failed, say it is over. */
static void
batch_recovered(struct store *s)
{
	if (__atomic_load_n(&s->last_error, __ATOMIC_RELAXED) != 0) {
		__atomic_store_n(&s->last_error, 0, __ATOMIC_RELAXED);
		log_info("store: commits succeed again");
	}
}

/* One batch of n operations ran (store_writer_stats, /metrics). */
static void
batch_counted(struct store *s, size_t n)
{
	__atomic_add_fetch(&s->batches, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&s->ops, n, __ATOMIC_RELAXED);
	metrics_commit(n);
}

/*
 * Run jobs[0..n) in one parent transaction, each in a child. Jobs that hit
 * a full map are left with rc = STORE_EFULL for the caller to retry after
 * growth; if the parent cannot commit, every job fails with its error.
 */
static void
store_run_batch(struct store *s, struct store_job **jobs, size_t n)
{
	struct store_txn parent, child;
	size_t           i;
	int              rc;

	if ((rc = txn_begin(s, 0, &parent)) != 0) {
		for (i = 0; i < n; i++)
			jobs[i]->rc = rc;
		return;
	}
	for (i = 0; i < n; i++) {
		child = parent;
		if ((rc = mdb_txn_begin(s->env, parent.txn, 0,
		    &child.txn)) != 0) {
			jobs[i]->rc = store_rc(rc);
			continue;
		}
		rc = jobs[i]->fn(&child, jobs[i]->arg);
		if (rc == 0 && (rc = mdb_txn_commit(child.txn)) != 0)
			rc = store_rc(rc);
		else if (rc != 0)
			mdb_txn_abort(child.txn);
		jobs[i]->rc = rc;
	}
	if ((rc = txn_end(&parent, 1)) != 0) {
		rc = store_commit_cause(s, rc);
		store_commit_failed(s, rc, n);
		for (i = 0; i < n; i++)
			if (jobs[i]->rc == 0)
				jobs[i]->rc = rc;
	} else
		batch_recovered(s);
	batch_counted(s, n);
}

/*
 * The common case, cheaper: every job of the batch directly in the parent,
 * without a child transaction each. A child copies every page it touches
 * even when the parent has it dirty already, and allocates its own dirty
 * list: for a report or a check-in that was most of the writer's work.
 * All or nothing: if any job fails, or the commit does, the batch is
 * aborted (nothing of it is kept) and 1 is returned, for the caller to
 * run it again with store_run_batch(), where a failing job discards only
 * its own changes. A lone job's failure stands as it is (a child of its
 * own would have discarded the same changes). 0 when the batch is done.
 */
static int
store_run_flat(struct store *s, struct store_job **jobs, size_t n)
{
	struct store_txn t;
	size_t           i;
	int              rc = 0;

	if (txn_begin(s, 0, &t) != 0)
		return 1;
	for (i = 0; i < n && rc == 0; i++)
		rc = jobs[i]->rc = jobs[i]->fn(&t, jobs[i]->arg);
	if (rc != 0) {
		txn_end(&t, 0);
		if (n > 1)
			return 1;
	} else if (txn_end(&t, 1) != 0)
		return 1;
	else
		batch_recovered(s);
	batch_counted(s, n);
	return 0;
}

/*
 * Run a batch, growing the map and rerunning the jobs it could not hold.
 * jobs[] is left as given (the caller marks every one done afterwards);
 * the reruns go through a separate list.
 */
static void
store_run_jobs(struct store *s, struct store_job **jobs, size_t n)
{
	struct store_job *retry[BATCH_MAX], **run = jobs;
	size_t            i, m;

	for (;;) {
		if (store_run_flat(s, run, n) != 0)
			store_run_batch(s, run, n);
		for (i = m = 0; i < n; i++)
			if (run[i]->rc == STORE_EFULL)
				retry[m++] = run[i];
		if (m == 0 || store_grow(s) != 0)
			return;
		run = retry;
		n = m;
	}
}

/* The store in which this thread's request is counted as being read
 * (store_request_begin), or NULL. */
static __thread struct store *reading_here;

void
store_request_begin(struct store *s)
{
	if (s->commit_delay == 0 || reading_here != NULL)
		return;
	reading_here = s;
	__atomic_add_fetch(&s->reading, 1, __ATOMIC_SEQ_CST);
}

/* This thread's request stops counting: the requests still being read
 * after it, or -1 when it was not counted. */
static int
reading_leave(struct store *s)
{
	if (reading_here != s)
		return -1;
	reading_here = NULL;
	return __atomic_sub_fetch(&s->reading, 1, __ATOMIC_SEQ_CST);
}

/*
 * The last request being read is done without a write: a writer waiting
 * for it commits now. The writer sets gathering before it looks at
 * reading, and this thread looks at gathering after it has lowered
 * reading (both sequentially consistent), so one of the two sees the
 * other; a signal sent before the writer waits cannot be, as it holds mu
 * from its look until its wait.
 */
void
store_request_end(struct store *s)
{
	if (reading_leave(s) == 0 &&
	    __atomic_load_n(&s->gathering, __ATOMIC_SEQ_CST)) {
		pthread_mutex_lock(&s->mu);
		pthread_cond_signal(&s->cv_work);
		pthread_mutex_unlock(&s->mu);
	}
}

/*
 * Append a job to the writer's queue; s->mu held. The request it comes
 * from is no longer being read. A writer gathering a batch is woken only
 * once the batch is worth committing: STORE_GATHER_MIN jobs queued, or
 * no request left that could add one.
 */
static void
enqueue_job(struct store *s, struct store_job *j)
{
	int reading;

	if (s->tail != NULL)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	s->queued++;
	if ((reading = reading_leave(s)) == -1)
		reading = __atomic_load_n(&s->reading, __ATOMIC_SEQ_CST);
	if (!__atomic_load_n(&s->gathering, __ATOMIC_SEQ_CST) ||
	    s->queued >= STORE_GATHER_MIN || reading == 0)
		pthread_cond_signal(&s->cv_work);
}

/*
 * Called with jobs queued and s->mu held: while requests are being read
 * and fewer than STORE_GATHER_MIN jobs wait, wait for more, up to
 * commit_delay us. A commit costs its flushes and their CPU whatever it
 * holds, so under load a slightly later commit of more requests is
 * cheaper a request (BENCHMARKS.md, "the writer's commit delay").
 */
static void
gather(struct store *s)
{
	struct timespec until;
	uint64_t        t0, end;

	if (s->commit_delay == 0 || s->queued >= STORE_GATHER_MIN)
		return;
	__atomic_store_n(&s->gathering, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->reading, __ATOMIC_SEQ_CST) > 0) {
		t0 = time_mono_us(); /* CLOCK_MONOTONIC, as cv_work's */
		end = t0 + s->commit_delay;
		until.tv_sec = (time_t)(end / 1000000);
		until.tv_nsec = (long)(end % 1000000) * 1000;
		while (!s->stop && s->queued < STORE_GATHER_MIN &&
		    __atomic_load_n(&s->reading, __ATOMIC_SEQ_CST) > 0 &&
		    pthread_cond_timedwait(&s->cv_work, &s->mu, &until) == 0)
			;
		metrics_commit_delay(time_mono_us() - t0);
	}
	__atomic_store_n(&s->gathering, 0, __ATOMIC_SEQ_CST);
}

int
store_write(struct store *s, store_op_fn fn, void *arg)
{
	struct store_job  job = { fn, arg, NULL, NULL, 0, 0, NULL };
	struct store_job *jp = &job;

	if (s->readonly)
		return STORE_EREADONLY;
	pthread_mutex_lock(&s->mu);
	if (!s->running) {
		pthread_mutex_unlock(&s->mu);
		store_run_jobs(s, &jp, 1);
		return job.rc;
	}
	enqueue_job(s, &job);
	while (!job.done)
		pthread_cond_wait(&s->cv_done, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return job.rc;
}

int
store_submit(struct store *s, store_op_fn fn, void *arg, store_done_fn done,
    void *done_arg)
{
	struct store_job *j;

	if (s->readonly)
		return STORE_EREADONLY;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return STORE_ENOMEM;
	j->fn = fn;
	j->arg = arg;
	j->done_fn = done;
	j->done_arg = done_arg;
	pthread_mutex_lock(&s->mu);
	if (!s->running) {
		pthread_mutex_unlock(&s->mu);
		store_run_jobs(s, &j, 1);
		done(j->rc, done_arg);
		free(j);
		if (s->batch_done != NULL)
			s->batch_done();
		return 0;
	}
	enqueue_job(s, j);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void
store_set_batch_done(struct store *s, void (*fn)(void))
{
	s->batch_done = fn;
}

/*
 * Release the jobs of a committed batch: completions first (outside the
 * lock, in batch order, then the batch_done hook once), then the waiting
 * store_write() callers, with one broadcast for the batch only if it
 * held any.
 */
static void
release_jobs(struct store *s, struct store_job **jobs, size_t n)
{
	size_t i, waiters = 0, done = 0;

	for (i = 0; i < n; i++) {
		metrics_store_rc(jobs[i]->rc);
		if (jobs[i]->done_fn == NULL) {
			jobs[waiters++] = jobs[i];
			continue;
		}
		jobs[i]->done_fn(jobs[i]->rc, jobs[i]->done_arg);
		free(jobs[i]);
		done++;
	}
	if (done > 0 && s->batch_done != NULL)
		s->batch_done();
	if (waiters == 0)
		return;
	pthread_mutex_lock(&s->mu);
	for (i = 0; i < waiters; i++)
		jobs[i]->done = 1;
	pthread_cond_broadcast(&s->cv_done);
	pthread_mutex_unlock(&s->mu);
}

static void *
store_writer_main(void *arg)
{
	struct store     *s = arg;
	struct store_job *jobs[BATCH_MAX], *j;
	size_t            n;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (s->head == NULL && !s->stop)
			pthread_cond_wait(&s->cv_work, &s->mu);
		if (s->head == NULL && s->stop)
			break;
		gather(s);
		for (n = 0; s->head != NULL && n < BATCH_MAX; n++) {
			j = s->head;
			s->head = j->next;
			jobs[n] = j;
		}
		s->queued -= n;
		if (s->head == NULL)
			s->tail = NULL;
		pthread_mutex_unlock(&s->mu);
		metrics_busy(METRICS_WRITER, 1);
		store_run_jobs(s, jobs, n);
		release_jobs(s, jobs, n);
		metrics_busy(METRICS_WRITER, 0);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int
store_writer_start(struct store *s)
{
	int rc;

	pthread_mutex_lock(&s->mu);
	if (s->running) {
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	s->stop = 0;
	if ((rc = pthread_create(&s->thread, NULL, store_writer_main, s)) != 0) {
		pthread_mutex_unlock(&s->mu);
		log_error("store: writer thread: %s", strerror(rc));
		return STORE_EIO;
	}
	s->running = 1;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

void
store_writer_stop(struct store *s)
{
	struct store_job *j;

	pthread_mutex_lock(&s->mu);
	if (!s->running) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	s->stop = 1;
	pthread_cond_signal(&s->cv_work);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	/* Jobs queued after the writer's last look run here, one by one. */
	pthread_mutex_lock(&s->mu);
	s->running = 0;
	while ((j = s->head) != NULL) {
		s->head = j->next;
		s->queued--;
		if (s->head == NULL)
			s->tail = NULL;
		pthread_mutex_unlock(&s->mu);
		store_run_jobs(s, &j, 1);
		release_jobs(s, &j, 1);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
}

void
store_writer_stats(struct store *s, uint64_t *batches, uint64_t *ops)
{
	*batches = __atomic_load_n(&s->batches, __ATOMIC_RELAXED);
	*ops = __atomic_load_n(&s->ops, __ATOMIC_RELAXED);
}

uint64_t
store_txn_now(struct store_txn *t)
{
	return t->now;
}

/* Increment and return a u64 counter in the meta database. */
static int
meta_counter_next(struct store_txn *t, const char *name, uint64_t *out)
{
	struct key    k;
	MDB_val       v;
	unsigned char be[8];
	uint64_t      n = 0, x;
	int           rc, i;

	key_init(&k);
	key_raw(&k, name, strlen(name));
	rc = db_get(t, DBI_META, &k, &v);
	if (rc == 0) {
		if (v.mv_size != 8)
			return STORE_ECORRUPT;
		n = key_get_u64(v.mv_data);
	} else if (rc != STORE_ENOTFOUND)
		return rc;
	n++;
	for (i = 7, x = n; i >= 0; i--, x >>= 8)
		be[i] = (unsigned char)x;
	if ((rc = db_put(t, DBI_META, &k, be, 8, 0)) != 0)
		return rc;
	*out = n;
	return 0;
}

int
store_seq_next(struct store_txn *t, uint64_t *out)
{
	return meta_counter_next(t, "seq", out);
}

int
store_eid_next(struct store_txn *t, uint64_t *out)
{
	return meta_counter_next(t, "eid", out);
}

int
store_stat(struct store_txn *t, struct store_dbi_stat *out, size_t n)
{
	const struct store_kind *k;
	MDB_stat		 st;
	size_t			 i;
	int			 rc;

	/* Every kind of the registry, in its order, or none: a caller's
	 * array too short would leave a kind out of stats. */
	if (n < DBI__MAX)
		return STORE_EINVAL;
	for (i = 0; i < DBI__MAX; i++) {
		k = &store_kinds[i];
		if ((rc = mdb_stat(t->txn, t->s->dbi[k->dbi], &st)) != 0)
			return store_rc(rc);
		out[i].name = store_kind_name(k);
		out[i].entries = st.ms_entries;
		out[i].pages = st.ms_branch_pages + st.ms_leaf_pages +
		    st.ms_overflow_pages;
		out[i].depth = st.ms_depth;
	}
	return DBI__MAX;
}
