/*
 * store_admin.c - what the store-wide operations for picomdmctl share
 * (store_admin.h): small owned sets, raw access to the sub-databases and
 * progress; and the small operations of their own: environment figures,
 * the resolution of a device argument and the retention listing.
 *
 * The operations themselves are one job per file, each walking the
 * registry of record kinds (store_kinds.c): store_json.c (an entry and
 * its JSON form), store_dump.c (dump, restore, backup), store_check.c
 * (check and repair), store_purge.c (purge and the byte scan proving it).
 * A new kind is added in store_kinds.c alone (see there); none of these
 * files keeps a list of kinds. See ARCHITECTURE.md, "The store and its
 * registry".
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "picomdm/message.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"
#include "picomdm/store_vpp.h"

/* See store_admin.h. */
void
progress(const struct store_progress *p, const char *what, uint64_t done,
    uint64_t total)
{
	if (p != NULL && p->fn != NULL)
		p->fn(p->arg, what, done, total);
}

/* ---- small owned sets ---- */

/* Add a copy of p[0..n) (NUL-terminated); 0 or STORE_ENOMEM. */
int
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
void
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
int
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

void
strset_free(struct strset *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Add a number; 0 or STORE_ENOMEM. */
int
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

void
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

int
u64set_has(const struct u64set *s, uint64_t x)
{
	return s->n > 0 &&
	    bsearch(&x, s->v, s->n, sizeof(*s->v), u64_cmp) != NULL;
}

void
u64set_free(struct u64set *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- raw access ---- */

/* A record field as an owned string; *out NULL when absent. */
int
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
int
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

int
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

int
rec_putv(struct store_txn *t, enum store_dbi d, const void *k, size_t kn,
    enum rec_kind kind, const struct fdesc *f, size_t nf, const void *obj)
{
	struct rec_w w;
	int	     rc;

	rec_begin(&w, kind);
	rec_encode(&w, f, nf, obj);
	rc = w.err ? STORE_ENOMEM : db_putv(t, d, k, kn, w.b.p, w.b.len);
	if (w.b.p != NULL)
		freezero(w.b.p, w.b.cap);
	return rc;
}

int
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

int
db_delv(struct store_txn *t, enum store_dbi d, const void *k, size_t n)
{
	MDB_val kv;
	int	rc;

	if (t->count_only) {
		rc = db_has(t, d, k, n);
		return rc == 1 ? 0 : rc == 0 ? STORE_ENOTFOUND : rc;
	}
	kv.mv_data = (void *)(uintptr_t)k;
	kv.mv_size = n;
	rc = mdb_del(t->txn, t->s->dbi[d], &kv, NULL);
	return rc == MDB_NOTFOUND ? STORE_ENOTFOUND : store_rc(rc);
}

void
be64(unsigned char *b, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		b[i] = (unsigned char)v;
}

/*
 * Visit every entry of a sub-database. fn returns 0 to keep the entry, 1
 * to delete it (through the cursor; with t->count_only it is counted and
 * stays), <0 to stop with that error. Key and
 * value are borrowed until fn returns; fn may write to other
 * sub-databases.
 */
int
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
			if (!t->count_only && (rc = mdb_cursor_del(c, 0)) != 0)
				break;
			if (deleted != NULL)
				(*deleted)++;
		}
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* Delete every entry whose key starts with pfx; fn (may be NULL) sees each
 * first, as in db_visit (its return value is ignored unless < 0). With
 * t->count_only each is counted and stays. */
int
db_del_prefix(struct store_txn *t, enum store_dbi d, const void *pfx, size_t n,
    visit_fn fn, void *arg, uint64_t *deleted)
{
	MDB_cursor *c;
	MDB_val	    k, v;
	int	    rc, r;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[d], &c)) != 0)
		return store_rc(rc);
	k.mv_data = (void *)(uintptr_t)pfx;
	k.mv_size = n;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size < n || memcmp(k.mv_data, pfx, n) != 0) {
			rc = MDB_NOTFOUND;
			break;
		}
		if (fn != NULL && (r = fn(t, &k, &v, arg)) < 0) {
			mdb_cursor_close(c);
			return r;
		}
		if (!t->count_only && (rc = mdb_cursor_del(c, 0)) != 0)
			break;
		if (deleted != NULL)
			(*deleted)++;
		if (t->count_only) {
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		k.mv_data = (void *)(uintptr_t)pfx;
		k.mv_size = n;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* ---- environment figures ---- */

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

/* ---- resolution and retention listing ---- */

/* machineinfo_visit's search: a serial, and the UDID it was found with. */
struct mi_find {
	const char *serial;
	size_t	    n;
	char	   *udid;
};

static int
machineinfo_visit(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct mi_find	    *f = arg;
	const unsigned char *p;
	size_t		     n;

	(void)t;
	if (rec_field(v, REC_MACHINEINFO, TAG_MI_SERIAL, &p, &n) != 1 ||
	    n != f->n || memcmp(p, f->serial, n) != 0)
		return 0;
	if ((f->udid = strndup(k->mv_data, k->mv_size)) == NULL)
		return STORE_ENOMEM;
	return STORE_EEXIST; /* found: stop */
}

/* The UDID of a device that sent MachineInfo with this serial (and may
 * never have enrolled): a scan, made only when nothing else knows the
 * serial. STORE_ENOTFOUND when none. */
static int
machineinfo_of_serial(struct store_txn *t, const char *serial, char **udid)
{
	struct mi_find f = {serial, strlen(serial), NULL};
	int	       rc;

	rc = db_visit(t, DBI_MACHINEINFO, machineinfo_visit, &f, NULL);
	if (rc == STORE_EEXIST) {
		*udid = f.udid;
		return 0;
	}
	free(f.udid);
	return rc != 0 ? rc : STORE_ENOTFOUND;
}

/* See store.h: an enrollment ID, then a device ID, then a serial (bound
 * to a device, in a MachineInfo, in an ADE record, or in an Apps and
 * Books licence). */
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
	if ((rc = db_getv(t, DBI_DEVICE, arg, n, &v)) == 0 ||
	    (rc == STORE_ENOTFOUND &&
		(rc = db_getv(t, DBI_MACHINEINFO, arg, n, &v)) == 0))
		return (*device_id = strdup(arg)) == NULL ? STORE_ENOMEM : 0;
	if (rc != STORE_ENOTFOUND)
		return rc;
	rc = store_device_by_serial(t, arg, device_id);
	/* A device that sent MachineInfo but did not enroll: its UDID. */
	if (rc == STORE_ENOTFOUND)
		rc = machineinfo_of_serial(t, arg, device_id);
	if (rc != STORE_ENOTFOUND)
		return rc;
	/* A serial known only by its ADE record, or only by the Apps and
	 * Books licences assigned to it, stands for the device. */
	if ((rc = db_has(t, DBI_ADEDEVICE, arg, n)) == 0)
		rc = store_vpp_serial_known(t, arg);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return STORE_ENOTFOUND;
	return (*device_id = strdup(arg)) == NULL ? STORE_ENOMEM : 0;
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
