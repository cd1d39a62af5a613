/*
 * store_vpp_event.c - Apps and Books writes in the store
 * (include/picomdm/store_vpp_event.h): the event records (DBI_VPPEVENT,
 * key token . eventId, KK_STRS, so purge --token and token remove take
 * them with the token), the lookups picomdm-vpp makes before a write,
 * and a completed event's effect on the token's assignments, users and
 * asset counts, written with the event in one transaction. Records are
 * coded through the registry (store_kinds.c) by their JSON form.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picomdm/store.h"
#include "picomdm/store_vpp_event.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

static int
get_rec(struct store_txn *t, enum store_dbi d, const struct key *k,
    json_t **out)
{
	MDB_val v;
	int	rc;

	*out = NULL;
	if (k->overflow || k->len == 0)
		return STORE_EINVAL;
	if ((rc = db_get(t, d, k, &v)) != 0)
		return rc;
	if ((*out = val_json(d, &v, 0)) == NULL)
		return STORE_ECORRUPT;
	return 0;
}

static int
str_ok(const char *s)
{
	return s != NULL && *s != '\0';
}

/* token . a [. b [. c]] */
static void
key3(struct key *k, const char *token, const char *a, const char *b,
    const char *c)
{
	key_init(k);
	key_str(k, token);
	key_str(k, a);
	if (b != NULL)
		key_str(k, b);
	if (c != NULL)
		key_str(k, c);
}

int
store_vpp_event_put(struct store_txn *t, const char *token, const json_t *rec)
{
	const char *id = json_string_value(json_object_get(rec, "event_id"));
	struct key  k;

	if (!str_ok(token) || !str_ok(id))
		return STORE_EINVAL;
	key3(&k, token, id, NULL, NULL);
	return vpp_put_json(t, DBI_VPPEVENT, &k, rec);
}

int
store_vpp_event_get(struct store_txn *t, const char *token, const char *id,
    json_t **out)
{
	struct key k;

	*out = NULL;
	if (!str_ok(token) || !str_ok(id))
		return STORE_EINVAL;
	key3(&k, token, id, NULL, NULL);
	return get_rec(t, DBI_VPPEVENT, &k, out);
}

struct each_arg {
	int (*cb)(const char *, json_t *, void *);
	void *arg;
};

static int
each_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct each_arg	    *ea = arg;
	const unsigned char *p = k->mv_data;
	char		     token[KEY_MAX + 1];
	size_t		     l;
	json_t		    *j;
	int		     rc;

	(void)t;
	if (k->mv_size < 3 || (l = (size_t)p[0] << 8 | p[1]) == 0 ||
	    l > k->mv_size - 2)
		return STORE_ECORRUPT;
	memcpy(token, p + 2, l);
	token[l] = '\0';
	if ((j = val_json(DBI_VPPEVENT, v, 0)) == NULL)
		return STORE_ECORRUPT;
	rc = ea->cb(token, j, ea->arg);
	json_decref(j);
	return rc;
}

int
store_vpp_event_each(struct store_txn *t, const char *token,
    int (*cb)(const char *, json_t *, void *), void *arg)
{
	struct each_arg ea = {cb, arg};
	struct key	k;
	MDB_cursor     *cur;
	MDB_val		mk, mv;
	int		rc, r = 0;

	if (token != NULL) {
		key_init(&k);
		key_str(&k, token);
		if (k.overflow)
			return STORE_EINVAL;
		rc = db_prefix_each(t, DBI_VPPEVENT, k.b, k.len, 0, each_visit,
		    &ea);
		return rc > 0 ? 0 : rc;
	}
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_VPPEVENT], &cur)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(cur, &mk, &mv, MDB_FIRST); rc == 0 && r == 0;
	     rc = mdb_cursor_get(cur, &mk, &mv, MDB_NEXT))
		r = each_visit(t, &mk, &mv, &ea);
	mdb_cursor_close(cur);
	if (r != 0)
		return r < 0 ? r : 0;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

int
store_vpp_event_clear(struct store_txn *t, const char *token, uint64_t *n)
{
	struct key k;
	uint64_t   dummy = 0;

	if (!str_ok(token))
		return STORE_EINVAL;
	key_init(&k);
	key_str(&k, token);
	if (k.overflow)
		return STORE_EINVAL;
	return db_del_prefix(t, DBI_VPPEVENT, k.b, k.len, NULL, NULL,
	    n != NULL ? n : &dummy);
}

/* ---- lookups ---- */

struct collect {
	enum store_dbi d;
	json_t	      *all;
};

static int
collect_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v,
    void *arg)
{
	struct collect *c = arg;
	json_t	       *j;

	(void)t;
	(void)k;
	if ((j = val_json(c->d, v, 0)) == NULL)
		return STORE_ECORRUPT;
	return json_array_append_new(c->all, j) == 0 ? 0 : STORE_ENOMEM;
}

/* Every record of d under the prefix, as an array. */
static int
collect(struct store_txn *t, enum store_dbi d, const struct key *pfx,
    json_t **out)
{
	struct collect c = {d, json_array()};
	int	       rc;

	*out = NULL;
	if (c.all == NULL)
		return STORE_ENOMEM;
	if (pfx->overflow) {
		json_decref(c.all);
		return STORE_EINVAL;
	}
	rc = db_prefix_each(t, d, pfx->b, pfx->len, 0, collect_visit, &c);
	if (rc < 0) {
		json_decref(c.all);
		return rc;
	}
	*out = c.all;
	return 0;
}

int
store_vpp_assets_of(struct store_txn *t, const char *token, const char *adam,
    json_t **out)
{
	struct key k;

	*out = NULL;
	if (!str_ok(token) || !str_ok(adam))
		return STORE_EINVAL;
	key3(&k, token, adam, NULL, NULL);
	return collect(t, DBI_VPPASSET, &k, out);
}

int
store_vpp_assigned(struct store_txn *t, const char *token, int user,
    const char *id, const char *adam)
{
	struct key k;

	if (!str_ok(token) || !str_ok(id) || !str_ok(adam))
		return STORE_EINVAL;
	key3(&k, token, user ? "user" : "device", id, adam);
	if (k.overflow)
		return STORE_EINVAL;
	return db_has(t, DBI_VPPASSIGN, k.b, k.len);
}

int
store_vpp_user_get(struct store_txn *t, const char *token, const char *id,
    json_t **out)
{
	struct key k;

	*out = NULL;
	if (!str_ok(token) || !str_ok(id))
		return STORE_EINVAL;
	key3(&k, token, id, NULL, NULL);
	return get_rec(t, DBI_VPPUSER, &k, out);
}

/* ---- a completed event's effect ---- */

/* The asset's assigned count up by d (available down by d), neither
 * below 0; no asset record, no change. */
static int
count(struct store_txn *t, const char *token, const char *adam,
    const char *pricing, int d, uint64_t *changed)
{
	struct key k;
	json_t	  *a;
	uint64_t   as = 0, av = 0;
	int	   rc;

	if (!str_ok(adam) || !str_ok(pricing))
		return 0;
	key3(&k, token, adam, pricing, NULL);
	if ((rc = get_rec(t, DBI_VPPASSET, &k, &a)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	j_get_u64(json_object_get(a, "assigned_count"), &as);
	j_get_u64(json_object_get(a, "available_count"), &av);
	if (d > 0) {
		as += (uint64_t)d;
		av = av > (uint64_t)d ? av - (uint64_t)d : 0;
	} else {
		as = as > (uint64_t)-d ? as - (uint64_t)-d : 0;
		av += (uint64_t)-d;
	}
	json_object_set_new(a, "assigned_count", json_integer((json_int_t)as));
	json_object_set_new(a, "available_count", json_integer((json_int_t)av));
	rc = vpp_put_json(t, DBI_VPPASSET, &k, a);
	json_decref(a);
	if (rc == 0)
		(*changed)++;
	return rc;
}

static int
in_array(const json_t *a, const char *s)
{
	size_t	i;
	json_t *x;

	json_array_foreach(a, i, x)
		if (json_is_string(x) && strcmp(json_string_value(x), s) == 0)
			return 1;
	return 0;
}

static int
apply_item(struct store_txn *t, const char *token, const json_t *rec,
    const char *type, int user, const char *id, uint64_t *changed)
{
	const char *adam = json_string_value(json_object_get(rec, "adam_id"));
	const char *pp = json_string_value(json_object_get(rec,
	    "pricing_param"));
	const char *kind = user ? "user" : "device";
	struct key  k;
	json_t	   *r, *all, *x;
	size_t	    i;
	int	    rc;

	if (strcmp(type, "ASSOCIATE") == 0 || strcmp(type, "DISASSOCIATE") == 0) {
		if (!str_ok(adam) || !str_ok(pp))
			return STORE_EINVAL;
		key3(&k, token, kind, id, adam);
		if (k.overflow)
			return STORE_EINVAL;
		if ((rc = db_has(t, DBI_VPPASSIGN, k.b, k.len)) < 0)
			return rc;
		if (type[0] == 'A') {
			if (rc == 1)
				return 0;
			r = json_pack("{s:s, s:s, s:s, s:o}", "adam_id", adam,
			    "pricing_param", pp, user ? "client_user_id" :
			    "serial_number", id, "synced_at", vpp_time_json(t->now));
			if (r == NULL)
				return STORE_ENOMEM;
			rc = vpp_put_json(t, DBI_VPPASSIGN, &k, r);
			json_decref(r);
			if (rc != 0)
				return rc;
			(*changed)++;
			return count(t, token, adam, pp, 1, changed);
		}
		if (rc == 0)
			return 0;
		if ((rc = db_del(t, DBI_VPPASSIGN, &k)) != 0)
			return rc;
		(*changed)++;
		return count(t, token, adam, pp, -1, changed);
	}
	if (strcmp(type, "REVOKE") == 0) {
		/* Every licence of the serial or user goes. */
		key3(&k, token, kind, id, NULL);
		if ((rc = collect(t, DBI_VPPASSIGN, &k, &all)) != 0)
			return rc;
		json_array_foreach(all, i, x) {
			const char *a = json_string_value(json_object_get(x,
			    "adam_id"));
			struct key  one;

			if (!str_ok(a))
				continue;
			key3(&one, token, kind, id, a);
			if ((rc = db_del(t, DBI_VPPASSIGN, &one)) != 0 ||
			    (rc = count(t, token, a, json_string_value(
			    json_object_get(x, "pricing_param")), -1,
			    changed)) != 0) {
				json_decref(all);
				return rc;
			}
			(*changed)++;
		}
		json_decref(all);
		return 0;
	}
	if (strcmp(type, "CREATE") == 0 || strcmp(type, "RETIRE") == 0) {
		key3(&k, token, id, NULL, NULL);
		rc = get_rec(t, DBI_VPPUSER, &k, &r);
		if (rc != 0 && rc != STORE_ENOTFOUND)
			return rc;
		if (type[0] == 'C') {
			if (rc == 0) { /* a sync saw it first */
				json_decref(r);
				return 0;
			}
			r = json_pack("{s:s, s:s, s:o}", "client_user_id", id,
			    "status", "Registered", "synced_at",
			    vpp_time_json(t->now));
			if (r == NULL)
				return STORE_ENOMEM;
			if ((x = json_object_get(rec, "email")) != NULL)
				json_object_set(r, "email", x);
			if ((x = json_object_get(rec, "managed_apple_id")) !=
			    NULL)
				json_object_set(r, "managed_apple_id", x);
		} else {
			if (rc == STORE_ENOTFOUND)
				return 0;
			json_object_set_new(r, "status", json_string("Retired"));
		}
		rc = vpp_put_json(t, DBI_VPPUSER, &k, r);
		json_decref(r);
		if (rc == 0)
			(*changed)++;
		return rc;
	}
	return STORE_EINVAL;
}

int
store_vpp_event_finish(struct store_txn *t, const char *token,
    const json_t *rec, const json_t *failed, uint64_t *changed)
{
	const char *id = json_string_value(json_object_get(rec, "event_id"));
	const char *type = json_string_value(json_object_get(rec, "type"));
	const char *ik = json_string_value(json_object_get(rec, "item_kind"));
	const char *st;
	json_t	   *old, *items, *x;
	size_t	    i;
	int	    rc;

	*changed = 0;
	if (!str_ok(token) || !str_ok(id) || type == NULL || ik == NULL ||
	    !json_is_array(failed))
		return STORE_EINVAL;
	rc = store_vpp_event_get(t, token, id, &old);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	if (rc == 0) {
		st = json_string_value(json_object_get(old, "status"));
		rc = st != NULL && (strcmp(st, "COMPLETE") == 0 ||
		    strcmp(st, "FAILED") == 0);
		json_decref(old);
		if (rc) /* applied already */
			return 0;
	}
	if ((rc = store_vpp_event_put(t, token, rec)) != 0)
		return rc;
	items = json_loads(json_string_value(json_object_get(rec, "items")) ?:
	    "", 0, NULL);
	if (!json_is_array(items)) {
		json_decref(items);
		return STORE_EINVAL;
	}
	rc = 0;
	json_array_foreach(items, i, x) {
		if (!json_is_string(x) || in_array(failed, json_string_value(x)))
			continue;
		if ((rc = apply_item(t, token, rec, type,
		    strcmp(ik, "user") == 0, json_string_value(x),
		    changed)) != 0)
			break;
	}
	json_decref(items);
	return rc;
}

/* ---- a device purge ---- */

/* An event record to write back without the purged serials. */
struct scrub_one {
	unsigned char *k;
	size_t	       klen;
	json_t	      *rec;
};

struct scrub {
	const struct strset *serials;
	struct scrub_one    *v;
	size_t		     n, cap;
};

/*
 * The JSON text of an event's items (serials) or failures (objects whose
 * "item" is the serial) without the serials of the set: the number
 * dropped, with the new text in *out; 0 (and *out NULL) when none was
 * there, or the text is not an array; STORE_ENOMEM.
 */
static int
scrub_list(const char *text, const struct strset *serials, char **out)
{
	json_t *a, *x;
	size_t	i;
	int	dropped = 0;

	*out = NULL;
	if (text == NULL || (a = json_loads(text, 0, NULL)) == NULL)
		return 0;
	for (i = json_is_array(a) ? json_array_size(a) : 0; i-- > 0;) {
		x = json_array_get(a, i);
		if (json_is_object(x))
			x = json_object_get(x, "item");
		if (json_is_string(x) && strset_has(serials,
		    json_string_value(x), json_string_length(x))) {
			json_array_remove(a, i);
			dropped++;
		}
	}
	if (dropped > 0 && (*out = json_dumps(a, JSON_COMPACT)) == NULL)
		dropped = STORE_ENOMEM;
	json_decref(a);
	return dropped;
}

/* Keep key k and rec (owned from here on success) for the write-back. */
static int
scrub_keep(struct scrub *s, const MDB_val *k, json_t *rec)
{
	struct scrub_one *nv;
	size_t		  cap;

	if (s->n == s->cap) {
		cap = s->cap ? s->cap * 2 : 8;
		if ((nv = reallocarray(s->v, cap, sizeof(*nv))) == NULL)
			return STORE_ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	if ((s->v[s->n].k = malloc(k->mv_size)) == NULL)
		return STORE_ENOMEM;
	memcpy(s->v[s->n].k, k->mv_data, k->mv_size);
	s->v[s->n].klen = k->mv_size;
	s->v[s->n++].rec = rec;
	return 0;
}

static int
scrub_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v,
    void *arg)
{
	struct scrub	 *s = arg;
	const char	 *kind;
	json_t		 *rec;
	char		 *items = NULL, *fails = NULL;
	int		  a, b, rc = 0;

	(void)t;
	if ((rec = val_json(DBI_VPPEVENT, v, 1)) == NULL)
		return STORE_ECORRUPT;
	kind = json_string_value(json_object_get(rec, "item_kind"));
	if (kind == NULL || strcmp(kind, "serial") != 0) {
		json_decref(rec);
		return 0;
	}
	a = scrub_list(json_string_value(json_object_get(rec, "items")),
	    s->serials, &items);
	b = scrub_list(json_string_value(json_object_get(rec, "failures")),
	    s->serials, &fails);
	if (a < 0 || b < 0)
		rc = STORE_ENOMEM;
	else if (a + b > 0) {
		if ((items != NULL && json_object_set_new(rec, "items",
		    json_string(items)) != 0) || (fails != NULL &&
		    json_object_set_new(rec, "failures", json_string(fails)) !=
		    0))
			rc = STORE_ENOMEM;
		else if ((rc = scrub_keep(s, k, rec)) == 0)
			rec = NULL; /* kept */
	}
	free(items);
	free(fails);
	json_decref(rec);
	return rc;
}

/* See store_admin.h. */
int
vpp_event_forget_serials(struct store_txn *t, const struct strset *serials,
    uint64_t *n)
{
	struct scrub s;
	struct key   k;
	size_t	     i;
	int	     rc;

	if (serials->n == 0)
		return 0;
	memset(&s, 0, sizeof(s));
	s.serials = serials;
	rc = db_visit(t, DBI_VPPEVENT, scrub_visit, &s, NULL);
	for (i = 0; i < s.n; i++) {
		if (rc == 0 && t->count_only) /* a purge's count */
			(*n)++;
		else if (rc == 0) {
			key_init(&k);
			key_raw(&k, s.v[i].k, s.v[i].klen);
			if ((rc = vpp_put_json(t, DBI_VPPEVENT, &k,
			    s.v[i].rec)) == 0)
				(*n)++;
		}
		free(s.v[i].k);
		json_decref(s.v[i].rec);
	}
	free(s.v);
	return rc;
}
