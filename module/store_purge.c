/*
 * store_purge.c - purge (by device, by enrollment, by the topic or token
 * the data came through) and the byte scan that proves a purge. What an
 * entry belongs to is its owner in the registry (store_kinds.c): purge
 * removes, in one transaction, the enrollments of the devices asked for
 * with everything their numbers own, the commands no enrollment refers
 * to any more, then the devices and every binding to them. A purge by
 * source walks the kinds whose registry entry names the field that holds
 * their source.
 *
 * A new kind is added in store_kinds.c: its owner decides which phase of
 * purge_run removes it, its source fields make purge by topic or token
 * find it. See ARCHITECTURE.md, "The store and its registry".
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
#include "picomdm/store_ade.h"
#include "picomdm/store_vpp.h"
#include "store_kinds.h"

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
	struct strset		   topics; /* OWN_TOPIC keys to remove */
	struct strset		   serials; /* OWN_SERIAL keys to remove */
	struct strset		   tokens;  /* OWN_TOKEN keys to remove */
	/* The serials of the devices purged, whose Apps and Books licences
	 * go too; not those of ADE records dropped with their token. */
	struct strset		   dev_serials;
	/* Retention (store_purge_enrollments): what Apple's services say
	 * of the device (its ADE record, its licences) stays. */
	int			   keep_service;
};

static void
purge_ctx_free(struct purge_ctx *pc)
{
	strset_free(&pc->devs);
	strset_free(&pc->want);
	strset_free(&pc->found);
	u64set_free(&pc->eids);
	strset_free(&pc->uuids);
	strset_free(&pc->topics);
	strset_free(&pc->serials);
	strset_free(&pc->tokens);
	strset_free(&pc->dev_serials);
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
	/* The record names its device: that decides (a device whose own
	 * ID holds a ':' is not another's user channel). Only a record
	 * without the field goes by the form of its ID. */
	if (rec_field(v, REC_ENROLL, TAG_ENROLL_DEVICE, &p, &n) == 1)
		hit = strset_has(&pc->devs, p, n);
	else
		hit = purge_owned(pc, k->mv_data, k->mv_size);
	hit = hit || strset_has(&pc->want, k->mv_data, k->mv_size);
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

	if (k->mv_size != 8 ||
	    (!purge_owned(pc, v->mv_data, v->mv_size) &&
		!strset_has(&pc->want, v->mv_data, v->mv_size)))
		return 0;
	/* One whose record exists was decided by purge_find_enroll. */
	if (v->mv_size > 0 && v->mv_size <= KEY_MAX &&
	    (rc = db_has(t, DBI_ENROLL, v->mv_data, v->mv_size)) != 0)
		return rc < 0 ? rc : 0;
	if ((rc = strset_add(&pc->found, v->mv_data, v->mv_size)) != 0)
		return rc;
	return u64set_add(&pc->eids, key_get_u64(k->mv_data));
}

/*
 * Remember the command an entry being removed refers to (its registry
 * entry says where the CommandUUID is), so that a command no enrollment
 * refers to any more goes too.
 */
static int
purge_note_ref(struct store_txn *t, const struct store_kind *kind,
    const MDB_val *k, const MDB_val *v, struct purge_ctx *pc)
{
	const unsigned char *p;
	size_t		     n;

	(void)t;
	switch (kind->ref) {
	case REF_CMD_FIELD:
		if (rec_field(v, kind->rec, kind->ref_tag, &p, &n) == 1 &&
		    n > 0 && memchr(p, '\0', n) == NULL)
			return strset_add(&pc->uuids, p, n);
		return 0;
	case REF_CMD_KEY:
		/* The string part of the key: after the enrollment's number,
		 * or before it, length-prefixed. */
		if (kind->key == KK_U64_TEXT && k->mv_size > 8) {
			p = (const unsigned char *)k->mv_data + 8;
			n = k->mv_size - 8;
		} else if (kind->key == KK_TEXT_U64 && k->mv_size >= 11 &&
		    (size_t)(((const unsigned char *)k->mv_data)[0] << 8 |
			((const unsigned char *)k->mv_data)[1]) ==
			k->mv_size - 10) {
			p = (const unsigned char *)k->mv_data + 2;
			n = k->mv_size - 10;
		} else
			return 0;
		if (n == 0 || memchr(p, '\0', n) != NULL)
			return 0;
		return strset_add(&pc->uuids, p, n);
	case REF_NONE:
		return 0;
	}
	return 0;
}

/* db_del_prefix's view of purge_note_ref. */
struct note_arg {
	const struct store_kind *kind;
	struct purge_ctx	*pc;
};

static int
purge_note(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct note_arg *na = arg;

	return purge_note_ref(t, na->kind, k, v, na->pc);
}

/* OWN_EID_INDEX: the entries of enrollment eid that its index names
 * (result_each_of, which knows the store's layout), noted, then removed;
 * *n counts them. */
struct indexed_arg {
	struct note_arg *na;
	unsigned char  (*keys)[16];
	size_t		 n, cap;
};

static int
purge_indexed_each(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct indexed_arg *ia = arg;
	unsigned char(*nk)[16];
	int rc;

	if (k->mv_size != 16)
		return 0;
	if (ia->na->kind->ref != REF_NONE &&
	    (rc = purge_note(t, k, v, ia->na)) != 0)
		return rc;
	if (ia->n == ia->cap) {
		ia->cap = ia->cap ? ia->cap * 2 : 64;
		if ((nk = reallocarray(ia->keys, ia->cap, 16)) == NULL)
			return STORE_ENOMEM;
		ia->keys = nk;
	}
	memcpy(ia->keys[ia->n++], k->mv_data, 16);
	return 0;
}

static int
purge_indexed(
    struct store_txn *t, uint64_t eid, struct note_arg *na, uint64_t *n)
{
	struct indexed_arg ia;
	size_t		   i;
	int		   rc;

	memset(&ia, 0, sizeof(ia));
	ia.na = na;
	/* Noted while walking, removed after: no write under the walk. */
	rc = result_each_of(t, eid, purge_indexed_each, &ia);
	for (i = 0; rc == 0 && i < ia.n; i++) {
		if ((rc = db_delv(t, na->kind->dbi, ia.keys[i], 16)) == 0)
			(*n)++;
		else if (rc == STORE_ENOTFOUND)
			rc = 0;
	}
	free(ia.keys);
	return rc;
}

/* OWN_EID_INDEX (results): an entry whose key's enrollment number is one
 * of the numbers, noted. Found by its key, not through its index: an
 * entry the index lacks (check reports one) goes too. Those the index
 * names went with purge_indexed; a count, which removed nothing, still
 * sees them here and counted them there. */
static int
purge_eid_half(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct note_arg *na = arg;
	unsigned char	 ik[16];
	uint64_t	 eid;
	int		 rc;

	if (result_key_eid(t, k, &eid) != 0 || !u64set_has(&na->pc->eids, eid))
		return 0;
	if (t->count_only) {
		result_key_swap(k->mv_data, ik);
		if ((rc = db_has(t, DBI_RESULTIX, ik, 16)) != 0)
			return rc < 0 ? rc : 0;
	}
	if (na->kind->ref != REF_NONE && (rc = purge_note(t, k, v, na)) != 0)
		return rc;
	return 1;
}

/* The entries of sub-database d in t (O(1)). */
static int
db_entries(struct store_txn *t, enum store_dbi d, uint64_t *n)
{
	MDB_stat st;
	int	 rc;

	if ((rc = mdb_stat(t->txn, t->s->dbi[d], &st)) != 0)
		return store_rc(rc);
	*n = st.ms_entries;
	return 0;
}

/*
 * Can a result of the numbers being purged be left after purge_indexed
 * (and the index entries' removal with the numbers' keys)? Only one that
 * result_index does not name, which check reports. Whole-scanning the
 * results for one would cost every purge (every batch of a prune) a pass
 * over the largest sub-database; instead the two are counted, which LMDB
 * keeps (O(1)): every result named by exactly one index entry and every
 * index entry naming a result makes the counts equal, so when they differ
 * the scan (purge_eid_half) runs. The counts are taken before the purge
 * and what it removed from each is subtracted: a count, which removes
 * nothing, decides as the purge does.
 *
 * Equal counts can still hide one: as many index entries naming no
 * result (of enrollments not purged) as unindexed results. That takes
 * two kinds of damage at once, each of which check reports ("not in
 * result_index", "names no result"); after the purge check reports the
 * result left as one of an enrollment that does not exist, --repair
 * removes it, and purge --verify finds it by the identifiers its raw
 * message holds. A store in that state is one to check and repair, not
 * one for the purge to pay a whole scan for in every transaction.
 *
 * In a store of format 1 or 2 results are keyed by their enrollment's
 * number first: result_each_of walks them by key, none is missed.
 */
struct eid_index_counts {
	uint64_t results, index;     /* entries before the purge */
	uint64_t rm_results, rm_index; /* the report's counts then */
};

static int
purge_index_counts(struct store_txn *t, const struct store_kind *k,
    const struct store_purge_report *r, struct eid_index_counts *ec)
{
	int rc;

	if ((rc = db_entries(t, k->dbi, &ec->results)) != 0 ||
	    (rc = db_entries(t, DBI_RESULTIX, &ec->index)) != 0)
		return rc;
	ec->rm_results = r->removed[k->dbi];
	ec->rm_index = r->removed[DBI_RESULTIX];
	return 0;
}

static int
purge_unindexed_possible(const struct store_txn *t, const struct store_kind *k,
    const struct store_purge_report *r, const struct eid_index_counts *ec)
{
	if (t->s->format < STORE_FORMAT_RESULT_SEQ)
		return 0;
	return ec->results - (r->removed[k->dbi] - ec->rm_results) !=
	    ec->index - (r->removed[DBI_RESULTIX] - ec->rm_index);
}

/* UCHAN: entries naming one of the numbers as the user channel. */
static int
purge_uchan(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct purge_ctx *pc = arg;

	(void)v;
	/* A count (store_admin.h) still sees those under the first number:
	 * counted with their prefix. */
	if (t->count_only && k->mv_size == 16 &&
	    u64set_has(&pc->eids, key_get_u64(k->mv_data)))
		return 0;
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

/* OWN_ENROLL_TAG (webhook events): the record names a removed
 * enrollment in its field owner_tag. */
static int
purge_enroll_tag(
    struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct note_arg	    *na = arg;
	const unsigned char *p;
	size_t		     n;
	int		     rc;

	(void)t;
	(void)k;
	/* An undecodable one is left to check, which reports it. */
	rc = rec_field(v, na->kind->rec, na->kind->owner_tag, &p, &n);
	return rc == 1 && strset_has(&na->pc->found, p, n);
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

/* Does any enrollment but those being purged (eids) hold a status for
 * this command? Theirs are gone by now, but not in a count. */
static int
command_referenced(
    struct store_txn *t, const struct u64set *eids, const char *uuid)
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
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != pk.len + 8 ||
		    memcmp(k.mv_data, pk.b, pk.len) != 0)
			break;
		if (!u64set_has(
			eids, key_get_u64((unsigned char *)k.mv_data + pk.len)))
			break;
	}
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
static int purge_note_serial(
    struct store_txn *, struct purge_ctx *, const char *, int *);

/* The enrollments found leave the enabled / disabled counters
 * (store_counts.c); read before anything is deleted. */
static int
purge_uncount(struct store_txn *t, struct purge_ctx *pc)
{
	int64_t n[2] = {0, 0};
	MDB_val v;
	size_t	i;
	int	rc;

	if (t->count_only) /* they are not entries: not in the report */
		return 0;
	for (i = 0; i < pc->found.n; i++) {
		rc = db_getv(t, DBI_ENROLL, pc->found.v[i],
		    strlen(pc->found.v[i]), &v);
		if (rc == STORE_ENOTFOUND)
			continue;
		if (rc != 0)
			return rc;
		n[enroll_count_of(&v)]++;
	}
	if ((rc = enroll_count_add(t, 0, -n[0])) != 0)
		return rc;
	return enroll_count_add(t, 1, -n[1]);
}

static int
purge_run(struct store_txn *t, struct purge_ctx *pc)
{
	struct store_purge_report *r = pc->r;
	const struct store_kind	  *k;
	struct note_arg		   na;
	struct eid_index_counts	   ec = {0, 0, 0, 0};
	unsigned char		   eb[8];
	MDB_val			   v;
	size_t			   i, j, n, total = 0;
	struct strset		  *set;
	char			 **list;
	int			   rc, d, existed;

	strset_sort(&pc->devs);
	strset_sort(&pc->want);
	if ((rc = db_visit(t, DBI_ENROLL, purge_find_enroll, pc, NULL)) != 0 ||
	    (rc = db_visit(t, DBI_EID, purge_find_eid, pc, NULL)) != 0)
		return rc;
	strset_sort(&pc->found);
	u64set_sort(&pc->eids);
	if ((rc = purge_uncount(t, pc)) != 0)
		return rc;

	/* What the enrollments' numbers own: entries found through an
	 * index (before the index goes with the keys below), then keys
	 * starting with one. */
	if (pc->eids.n > 0 && (rc = purge_index_counts(t,
	    &store_kinds[DBI_RESULT], r, &ec)) != 0)
		return rc;
	for (i = 0; i < pc->eids.n; i++) {
		for (j = 0; j < DBI__MAX; j++) {
			k = &store_kinds[j];
			if (k->owner != OWN_EID_INDEX)
				continue;
			na.kind = k;
			na.pc = pc;
			if ((rc = purge_indexed(t, pc->eids.v[i], &na,
			    &r->removed[k->dbi])) != 0)
				return rc;
		}
		be64(eb, pc->eids.v[i]);
		for (j = 0; j < DBI__MAX; j++) {
			k = &store_kinds[j];
			if (k->owner != OWN_EID && k->owner != OWN_EID_PAIR)
				continue;
			na.kind = k;
			na.pc = pc;
			if ((rc = db_del_prefix(t, k->dbi, eb, 8,
				 k->ref != REF_NONE ? purge_note : NULL, &na,
				 &r->removed[k->dbi])) != 0)
				return rc;
		}
	}
	for (j = 0; j < DBI__MAX; j++) {
		k = &store_kinds[j];
		switch (k->owner) {
		case OWN_EID_PAIR: /* the number as the second of the pair */
			rc = db_visit(
			    t, k->dbi, purge_uchan, pc, &r->removed[k->dbi]);
			break;
		case OWN_ENROLL:
			for (i = 0, rc = 0; i < pc->found.n && rc == 0; i++) {
				n = strlen(pc->found.v[i]);
				rc = db_delv(t, k->dbi, pc->found.v[i], n);
				if (rc == 0)
					r->removed[k->dbi]++;
				else if (rc == STORE_ENOTFOUND)
					rc = 0;
			}
			break;
		case OWN_EID_SUFFIX:
			rc = db_visit(
			    t, k->dbi, purge_cmdq, pc, &r->removed[k->dbi]);
			break;
		case OWN_EID_INDEX: /* a scan: only when one can be left */
			na.kind = k;
			na.pc = pc;
			rc = pc->eids.n == 0 ||
				!purge_unindexed_possible(t, k, r, &ec)
			    ? 0
			    : db_visit(t, k->dbi, purge_eid_half, &na,
				  &r->removed[k->dbi]);
			break;
		case OWN_ENROLL_TAG:
			na.kind = k;
			na.pc = pc;
			rc = db_visit(t, k->dbi, purge_enroll_tag, &na,
			    &r->removed[k->dbi]);
			break;
		case OWN_UNSET:
		case OWN_STORE:
		case OWN_EID:
		case OWN_DEVICE:
		case OWN_DEVICE_VAL:
		case OWN_COMMAND:
		case OWN_TOPIC:
		case OWN_EXPIRY:
		case OWN_SERIAL:
		case OWN_TOKEN:
		case OWN_VPP_TOKEN:
			rc = 0; /* before or after this phase */
			break;
		}
		if (rc != 0)
			return rc;
	}
	/* The commands no enrollment refers to any more. */
	strset_sort(&pc->uuids);
	for (j = 0; j < DBI__MAX; j++) {
		if (store_kinds[j].owner != OWN_COMMAND)
			continue;
		d = (int)store_kinds[j].dbi;
		for (i = 0; i < pc->uuids.n; i++) {
			if ((rc = command_referenced(
				 t, &pc->eids, pc->uuids.v[i])) < 0)
				return rc;
			if (rc == 1)
				continue;
			rc = db_delv(t, (enum store_dbi)d, pc->uuids.v[i],
			    strlen(pc->uuids.v[i]));
			if (rc == 0)
				r->removed[d]++;
			else if (rc != STORE_ENOTFOUND)
				return rc;
		}
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
		/* Its serial, read before its record goes: the ADE record
		 * keyed by it goes too, and its licences (not on retention:
		 * those are Apple's current records of the organisation's
		 * device, which no sync would bring back). */
		if (n > 0 && n <= KEY_MAX && !pc->keep_service &&
		    (d = purge_note_serial(t, pc, pc->devs.v[i], &existed)) !=
			0)
			return d;
		if (rc == 0) {
			if ((rc = db_delv(t, DBI_DEVICE, pc->devs.v[i], n)) !=
			    0)
				return rc;
			r->removed[DBI_DEVICE]++;
		}
		/* Other kinds keyed by the device ID (MachineInfo): they
		 * may exist before the device ever checked in. */
		for (j = 0; n > 0 && n <= KEY_MAX && j < DBI__MAX; j++) {
			k = &store_kinds[j];
			if (k->owner != OWN_DEVICE || k->dbi == DBI_DEVICE)
				continue;
			rc = db_delv(t, k->dbi, pc->devs.v[i], n);
			if (rc == STORE_ENOTFOUND)
				continue;
			if (rc != 0)
				return rc;
			r->removed[k->dbi]++;
			existed = 1;
		}
		if (existed &&
		    (r->devices[r->ndevices++] = strdup(pc->devs.v[i])) == NULL)
			return STORE_ENOMEM;
	}
	/* Bindings: serial numbers, certificates (and the ADE records and
	 * VPP licences tied to a device, once those kinds exist). */
	for (j = 0; j < DBI__MAX; j++) {
		k = &store_kinds[j];
		if (k->owner == OWN_DEVICE_VAL &&
		    (rc = db_visit(t, k->dbi, purge_binding, pc,
			 &r->removed[k->dbi])) != 0)
			return rc;
	}

	/* Each key once: a count (store_admin.h) would find it again. */
	strset_sort(&pc->topics);
	strset_sort(&pc->serials);
	strset_sort(&pc->tokens);
	strset_sort(&pc->dev_serials);
	/* What is keyed by a topic being purged (push certificates). */
	for (j = 0; j < DBI__MAX; j++) {
		k = &store_kinds[j];
		if (k->owner != OWN_TOPIC)
			continue;
		for (i = 0; i < pc->topics.n; i++) {
			rc = db_delv(t, k->dbi, pc->topics.v[i],
			    strlen(pc->topics.v[i]));
			if (rc == 0)
				r->removed[k->dbi]++;
			else if (rc != STORE_ENOTFOUND)
				return rc;
		}
	}

	/* What is keyed by a serial (ADE device records) or a token being
	 * purged (ADE tokens). */
	for (j = 0; j < DBI__MAX; j++) {
		k = &store_kinds[j];
		if (k->owner == OWN_SERIAL)
			set = &pc->serials;
		else if (k->owner == OWN_TOKEN)
			set = &pc->tokens;
		else
			continue;
		for (i = 0; i < set->n; i++) {
			rc = db_delv(t, k->dbi, set->v[i], strlen(set->v[i]));
			if (rc == 0)
				r->removed[k->dbi]++;
			else if (rc != STORE_ENOTFOUND)
				return rc;
		}
	}
	/* The Apps and Books licences assigned to the purged devices'
	 * serials: kept per token (purge --vpp-token), but they name the
	 * device. An ADE token's records name serials too; their licences
	 * are not that token's and stay. */
	for (i = 0; i < pc->dev_serials.n; i++)
		if ((rc = store_vpp_forget_serial(t, pc->dev_serials.v[i],
		    &r->removed[DBI_VPPASSIGN])) != 0)
			return rc;
	/* And the write events that name them lose them. */
	if ((rc = vpp_event_forget_serials(t, &pc->dev_serials,
	    &r->removed[DBI_VPPEVENT])) != 0)
		return rc;

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

/* purge_run; in a read transaction (store.h) a count that changes
 * nothing. */
static int
purge_run_in(struct store_txn *t, struct purge_ctx *pc)
{
	int rc, saved = t->count_only;

	t->count_only = t->rdonly;
	rc = purge_run(t, pc);
	t->count_only = saved;
	return rc;
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
		rc = purge_run_in(t, &pc);
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
	pc.keep_service = 1;
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
		rc = purge_run_in(t, &pc);
	purge_ctx_free(&pc);
	return rc;
}

/*
 * Note the serial of device id for the kinds keyed by a serial (ADE
 * device records) and the licences assigned to it: the device's, its
 * MachineInfo's, or id itself when it is a serial known only by ADE or
 * by Apps and Books licences (*existed is then set: the purge lists it
 * as a device).
 */
static int
purge_note_serial(
    struct store_txn *t, struct purge_ctx *pc, const char *id, int *existed)
{
	char *serial = NULL;
	int   rc;

	if ((rc = store_ade_serial_of(t, id, &serial)) != 0)
		return rc;
	if (serial == NULL) {
		/* A serial known only by its Apps and Books licences. */
		if ((rc = store_vpp_serial_known(t, id)) != 1)
			return rc;
		if ((serial = strdup(id)) == NULL)
			return STORE_ENOMEM;
	}
	rc = strset_add(&pc->serials, serial, strlen(serial));
	if (rc == 0)
		rc = strset_add(&pc->dev_serials, serial, strlen(serial));
	if (rc == 0 && strcmp(serial, id) == 0 &&
	    db_has(t, DBI_DEVICE, id, strlen(id)) != 1)
		*existed = 1;
	free(serial);
	return rc;
}

/*
 * Purge by source: the kinds whose registry entry names a source field
 * (src_tag) for this kind of source. A record matches when that field
 * equals the topic or token name; the device it belongs to is then
 * purged whole.
 */
struct source_ctx {
	const struct store_kind *row;
	const char		*name;
	struct purge_ctx	*pc;
	size_t			 matched;
};

/* A record whose source field names the topic or token: note the device
 * it belongs to (its enrollment's device, for a raw message). */
static int
source_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct source_ctx	*sc = arg;
	const struct store_kind *row = sc->row;
	const unsigned char	*p;
	MDB_val			 ev;
	char			*owner = NULL, *dev = NULL;
	size_t			 n;
	int			 rc;

	if (rec_field(v, row->rec, row->src_tag, &p, &n) != 1 ||
	    n != strlen(sc->name) || memcmp(p, sc->name, n) != 0)
		return 0;
	sc->matched++;
	if (row->src_owner == SRC_SELF)
		return strset_add(row->owner == OWN_SERIAL ? &sc->pc->serials
			: row->owner == OWN_TOKEN	   ? &sc->pc->tokens
							   : &sc->pc->topics,
		    k->mv_data, k->mv_size);
	if (row->src_owner == SRC_KEY)
		return strset_add(&sc->pc->devs, k->mv_data, k->mv_size);
	if ((rc = rec_field_str(v, row->rec, row->src_owner_tag, &owner)) < 0)
		return rc;
	if (owner == NULL)
		return row->src_owner == SRC_DEVICE_TAG
		    ? strset_add(&sc->pc->devs, k->mv_data, k->mv_size)
		    : 0;
	if (row->src_owner == SRC_DEVICE_TAG) {
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

/* What a VPP token owns (vpp_token_drop, store_vpp.c); *matched counts
 * it. */
static int
purge_vpp_token(struct store_txn *t, const char *name,
    struct store_purge_report *r, size_t *matched)
{
	uint64_t before = 0, after = 0;
	size_t	 j;
	int	 rc;

	for (j = 0; j < DBI__MAX; j++)
		before += r->removed[j];
	if ((rc = vpp_token_drop(t, name, r->removed)) != 0)
		return rc;
	for (j = 0; j < DBI__MAX; j++)
		after += r->removed[j];
	*matched += (size_t)(after - before);
	return 0;
}

/* See store.h: every kind of the registry with a field for this kind of
 * source; for a VPP token what the token of that name owns. */
int
store_purge_source(struct store_txn *t, enum store_source src, const char *name,
    struct store_purge_report *r)
{
	struct purge_ctx  pc;
	struct source_ctx sc;
	size_t		  i, matched = 0;
	int		  rc = 0, saved;

	purge_report_init(r);
	if (name == NULL || *name == '\0' || src >= STORE_SOURCE__MAX)
		return STORE_EINVAL;
	memset(&pc, 0, sizeof(pc));
	pc.r = r;
	for (i = 0; i < DBI__MAX && rc == 0; i++) {
		if (store_kinds[i].src != src ||
		    store_kinds[i].val != KV_RECORD)
			continue;
		memset(&sc, 0, sizeof(sc));
		sc.row = &store_kinds[i];
		sc.name = name;
		sc.pc = &pc;
		rc = db_visit(t, store_kinds[i].dbi, source_visit, &sc, NULL);
		matched += sc.matched;
	}
	saved = t->count_only;
	t->count_only = t->rdonly;
	if (rc == 0 && src == STORE_SOURCE_VPP_TOKEN)
		rc = purge_vpp_token(t, name, r, &matched);
	if (rc == 0)
		rc = matched == 0 ? STORE_ENOTFOUND : purge_run(t, &pc);
	t->count_only = saved;
	purge_ctx_free(&pc);
	return rc;
}

/* ---- what else identifies what a purge removes (--verify) ---- */

/* Shorter values (an IMEI of "0") would be found in any byte string. */
#define IDENT_MIN 8

struct ident_ctx {
	struct strset		 devs, enrs; /* the report's, sorted */
	struct strset		 cand;	     /* their AF_IDENT values */
	struct strset		 kept;	     /* those a record that stays holds */
	const struct store_kind *kind;
};

/* The keys of the report a kind's records are purged by; NULL: none. */
static const struct strset *
ident_keys(const struct ident_ctx *ic, const struct store_kind *k)
{
	if (k->val != KV_RECORD)
		return NULL;
	return k->owner == OWN_DEVICE ? &ic->devs
	    : k->owner == OWN_ENROLL  ? &ic->enrs
				      : NULL;
}

/* Add each AF_IDENT field of record v (a kind's) to set: text as it is,
 * bytes as base64 (their form in Apple's plists); with want, only those
 * in want. */
static int
ident_fields(const struct store_kind *k, const MDB_val *v, struct strset *set,
    const struct strset *want)
{
	const unsigned char *p;
	char		    *b64;
	size_t		     i, n;
	int		     rc;

	for (i = 0; i < k->nf; i++) {
		if (!(k->f[i].flags & AF_IDENT) ||
		    rec_field(v, k->rec, k->f[i].tag, &p, &n) != 1 || n == 0)
			continue;
		if (k->f[i].type == A_BYTES) {
			if ((b64 = base64_encode(p, n)) == NULL)
				return STORE_ENOMEM;
			p = (const unsigned char *)b64;
			n = strlen(b64);
		} else if (memchr(p, '\0', n) != NULL)
			continue;
		else
			b64 = NULL;
		rc = n < IDENT_MIN || (want != NULL && !strset_has(want, p, n))
		    ? 0
		    : strset_add(set, p, n);
		free(b64);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* A record that stays: the identifiers it holds too are not the purged
 * one's own. */
static int
ident_kept(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct ident_ctx *ic = arg;

	(void)t;
	if (strset_has(ident_keys(ic, ic->kind), k->mv_data, k->mv_size))
		return 0;
	return ident_fields(ic->kind, v, &ic->kept, &ic->cand);
}

static int
ident_has_field(const struct store_kind *k)
{
	size_t i;

	for (i = 0; i < k->nf; i++)
		if (k->f[i].flags & AF_IDENT)
			return 1;
	return 0;
}

/* See store.h: the AF_IDENT fields of the records of the report's
 * devices and enrollments, read from t (before the purge commits), but
 * those shorter than IDENT_MIN and those a record that stays holds too
 * (a PushMagic every device shares names none of them). */
int
store_purge_identifiers(struct store_txn *t,
    const struct store_purge_report *r, store_id_cb fn, void *arg)
{
	struct ident_ctx	 ic;
	const struct store_kind *k;
	const struct strset	*keys;
	MDB_val			 v;
	size_t			 i, j, n;
	int			 rc = 0;

	memset(&ic, 0, sizeof(ic));
	for (i = 0; i < r->ndevices && rc == 0; i++)
		rc = strset_add(&ic.devs, r->devices[i], strlen(r->devices[i]));
	for (i = 0; i < r->nenrollments && rc == 0; i++)
		rc = strset_add(
		    &ic.enrs, r->enrollments[i], strlen(r->enrollments[i]));
	strset_sort(&ic.devs);
	strset_sort(&ic.enrs);
	/* The purged records' identifiers. */
	for (j = 0; j < DBI__MAX && rc == 0; j++) {
		k = &store_kinds[j];
		if ((keys = ident_keys(&ic, k)) == NULL || !ident_has_field(k))
			continue;
		for (i = 0; i < keys->n && rc == 0; i++) {
			n = strlen(keys->v[i]);
			if (n == 0 || n > KEY_MAX)
				continue;
			rc = db_getv(t, k->dbi, keys->v[i], n, &v);
			if (rc == 0)
				rc = ident_fields(k, &v, &ic.cand, NULL);
			else if (rc == STORE_ENOTFOUND)
				rc = 0;
		}
	}
	strset_sort(&ic.cand);
	/* Those the records that stay hold too. */
	for (j = 0; j < DBI__MAX && rc == 0 && ic.cand.n > 0; j++) {
		ic.kind = &store_kinds[j];
		if (ident_keys(&ic, ic.kind) != NULL && ident_has_field(ic.kind))
			rc = db_visit(t, ic.kind->dbi, ident_kept, &ic, NULL);
	}
	strset_sort(&ic.kept);
	for (i = 0; i < ic.cand.n && rc == 0; i++)
		if (!strset_has(&ic.kept, ic.cand.v[i], strlen(ic.cand.v[i])))
			rc = fn(ic.cand.v[i], arg);
	strset_free(&ic.devs);
	strset_free(&ic.enrs);
	strset_free(&ic.cand);
	strset_free(&ic.kept);
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
	size_t		i, kd;
	int		d, rc, stop = 0;

	if ((rc = scan_ctx_init(&c, needles, lens, n)) != 0)
		goto out;
	for (kd = 0; kd < DBI__MAX && !stop; kd++) {
		d = (int)store_kinds[kd].dbi;
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
