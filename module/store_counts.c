/*
 * store_counts.c - how many enrollments are enabled and disabled, kept in
 * meta ("enrollments_enabled", "enrollments_disabled") by every write
 * that adds, changes or removes an enrollment, so that /metrics reads two
 * numbers instead of every enrollment record (ARCHITECTURE.md section 5).
 *
 * The counters are exact or absent. A store opened for writing without
 * them (made by an older picomdm, or restored from its dump) is counted
 * once at the open; until then they are not kept (enroll_count_add does
 * nothing) and store_enrollment_counts counts the records itself.
 * picomdmctl check compares them with the records and --repair sets them.
 */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include <lmdb.h>

#include "picomdm/store.h"
#include "store_admin.h"
#include "store_int.h"

/* Indexed by "enabled": 0 or 1. */
static const char *const count_name[2] = {
    "enrollments_disabled", "enrollments_enabled"};

/* Is the enrollment record v enabled? A zero field is not written. */
static int
rec_enabled(const MDB_val *v)
{
	const unsigned char *p;
	size_t		     n;

	return rec_field(v, REC_ENROLL, TAG_ENROLL_ENABLED, &p, &n) == 1 &&
	    n == 8 && key_get_u64(p) != 0;
}

/* 1 with *out, 0 when the counter is absent, <0 on error. */
static int
count_get(struct store_txn *t, int enabled, uint64_t *out)
{
	const char *name = count_name[enabled != 0];
	MDB_val	    v;
	int	    rc;

	rc = db_getv(t, DBI_META, name, strlen(name), &v);
	if (rc == STORE_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (v.mv_size != 8)
		return STORE_ECORRUPT;
	*out = key_get_u64(v.mv_data);
	return 1;
}

static int
count_set(struct store_txn *t, int enabled, uint64_t n)
{
	const char   *name = count_name[enabled != 0];
	unsigned char b[8];

	be64(b, n);
	return db_putv(t, DBI_META, name, strlen(name), b, 8);
}

/* See store_int.h. A counter that would go below zero stays at zero:
 * a metric never fails a write; check reports the difference. */
int
enroll_count_add(struct store_txn *t, int enabled, int64_t delta)
{
	uint64_t n;
	int	 rc;

	if (delta == 0 || (rc = count_get(t, enabled, &n)) == 0)
		return 0;
	if (rc < 0)
		return rc;
	if (delta < 0)
		n = (uint64_t)-delta > n ? 0 : n - (uint64_t)-delta;
	else
		n += (uint64_t)delta;
	return count_set(t, enabled, n);
}

/* See store_int.h. */
int
enroll_count_of(const MDB_val *v)
{
	return rec_enabled(v);
}

static int
count_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v,
    void *arg)
{
	uint64_t *n = arg;

	(void)t;
	(void)k;
	n[rec_enabled(v)]++;
	return 0;
}

/* See store_int.h. */
int
enroll_count_records(struct store_txn *t, uint64_t *disabled,
    uint64_t *enabled)
{
	uint64_t n[2] = {0, 0};
	int	 rc;

	if ((rc = db_visit(t, DBI_ENROLL, count_visit, n, NULL)) != 0)
		return rc;
	*disabled = n[0];
	*enabled = n[1];
	return 0;
}

/* See store_int.h. */
int
enroll_count_reset(struct store_txn *t)
{
	uint64_t d, e;
	int	 rc;

	if ((rc = enroll_count_records(t, &d, &e)) != 0 ||
	    (rc = count_set(t, 0, d)) != 0)
		return rc;
	return count_set(t, 1, e);
}

/* 1 when both counters are there, 0 when either is missing. */
static int
count_both(struct store_txn *t)
{
	uint64_t n;
	int	 a, b;

	if ((a = count_get(t, 0, &n)) < 0)
		return a;
	if ((b = count_get(t, 1, &n)) < 0)
		return b;
	return a == 1 && b == 1;
}

/* See store_int.h. A transaction of its own, not the writer's: this
 * runs in store_open, before any writer, and is no request. */
int
enroll_count_ensure(struct store *s)
{
	struct store_txn t = {.s = s};
	int		 rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t.txn)) != 0)
		return store_rc(rc);
	rc = count_both(&t);
	mdb_txn_abort(t.txn);
	if (rc != 0)
		return rc < 0 ? rc : 0; /* 1: both there, the usual open */
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t.txn)) != 0)
		return store_rc(rc);
	if ((rc = count_both(&t)) == 0)
		rc = enroll_count_reset(&t);
	if (rc < 0) {
		mdb_txn_abort(t.txn);
		return rc;
	}
	return (rc = mdb_txn_commit(t.txn)) != 0 ? store_rc(rc) : 0;
}

/* See store.h. */
int
store_enrollment_counts(struct store_txn *t, uint64_t *enabled,
    uint64_t *disabled)
{
	int rc;

	if ((rc = count_both(t)) < 0)
		return rc;
	if (rc == 0)
		return enroll_count_records(t, disabled, enabled);
	if ((rc = count_get(t, 0, disabled)) < 0 ||
	    (rc = count_get(t, 1, enabled)) < 0)
		return rc;
	return 0;
}
