/*
 * store_vpp.c - Apps and Books in the store (include/picomdm/store_vpp.h):
 * content tokens (DBI_VPPTOKEN) and the assets, assignments and users of
 * each (DBI_VPPASSET, DBI_VPPASSIGN, DBI_VPPUSER; keys of length-prefixed
 * strings starting with the token's name, KK_STRS). Records are coded
 * through the registry (store_kinds.c) by their JSON form (store_json.c),
 * and Apple's v2 key names map onto fields through each field's
 * catalogue row, so a field added to the registry with its row is synced
 * with no change here.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picomdm/store.h"
#include "picomdm/store_vpp.h"
#include "picomdm/store_vpp_event.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

static const enum store_dbi list_dbi[STORE_VPP__MAX] = {
    [STORE_VPP_ASSETS] = DBI_VPPASSET,
    [STORE_VPP_ASSIGNMENTS] = DBI_VPPASSIGN,
    [STORE_VPP_USERS] = DBI_VPPUSER,
    [STORE_VPP_META] = DBI_VPPMETA,
};

/* See store_int.h. */
json_t *
vpp_time_json(uint64_t us)
{
	char	  b[64];
	time_t	  s = (time_t)(us / 1000000u);
	struct tm tm;
	size_t	  n;

	if (gmtime_r(&s, &tm) == NULL ||
	    (n = strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
		return NULL;
	snprintf(b + n, sizeof(b) - n, ".%06uZ", (unsigned)(us % 1000000u));
	return json_string(b);
}

/* See store_int.h. */
int
vpp_put_json(struct store_txn *t, enum store_dbi d, const struct key *k,
    const json_t *rec)
{
	struct buf  b = {0};
	const char *why;
	int	    rc;

	if (k->overflow || k->len == 0)
		return STORE_EINVAL;
	if (val_from_json(d, rec, &b, &why) != 0) {
		freezero(b.p, b.cap);
		return STORE_EINVAL;
	}
	rc = db_put(t, d, k, b.p, b.len, 0);
	freezero(b.p, b.cap);
	return rc;
}

int
store_vpp_token_put(struct store_txn *t, const json_t *rec)
{
	const char *name = json_string_value(json_object_get(rec, "name"));
	struct key  k;

	if (name == NULL || *name == '\0' ||
	    !json_is_string(json_object_get(rec, "stoken")))
		return STORE_EINVAL;
	key_init(&k);
	key_raw(&k, name, strlen(name));
	return vpp_put_json(t, DBI_VPPTOKEN, &k, rec);
}

int
store_vpp_token_get(
    struct store_txn *t, const char *name, int secrets, json_t **out)
{
	MDB_val v;
	size_t	n;
	int	rc;

	*out = NULL;
	if (name == NULL || (n = strlen(name)) == 0 || n > KEY_MAX)
		return STORE_EINVAL;
	if ((rc = db_getv(t, DBI_VPPTOKEN, name, n, &v)) != 0)
		return rc;
	if ((*out = val_json(DBI_VPPTOKEN, &v, secrets)) == NULL)
		return STORE_ECORRUPT;
	return 0;
}

int
store_vpp_token_each(
    struct store_txn *t, int (*cb)(json_t *, void *), void *arg)
{
	MDB_cursor *cur;
	MDB_val	    k, v;
	json_t	   *j;
	int	    rc, r = 0;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_VPPTOKEN], &cur)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if ((j = val_json(DBI_VPPTOKEN, &v, 0)) == NULL) {
			r = STORE_ECORRUPT;
			break;
		}
		r = cb(j, arg);
		json_decref(j);
	}
	mdb_cursor_close(cur);
	if (r != 0)
		return r < 0 ? r : 0;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* The value of Apple's key for field f, checked against its type:
 * 1 with *out, 0 when absent (or null), -1 when of the wrong type. */
static int
apple_field(const json_t *apple, const struct afield *f, json_t **out)
{
	json_t *j = json_object_get(apple, f->field);

	*out = NULL;
	if (j == NULL || json_is_null(j))
		return 0;
	switch (f->type) {
	case A_STR:
		if (!json_is_string(j) ||
		    strlen(json_string_value(j)) != json_string_length(j))
			return -1;
		break;
	case A_U64:
		if (!json_is_integer(j) || json_integer_value(j) < 0)
			return -1;
		break;
	case A_BOOL:
		if (!json_is_boolean(j))
			return -1;
		break;
	default:
		return -1;
	}
	*out = j;
	return 1;
}

/* The key's IDs from Apple's record: NULL when one is missing. */
static const char *
apple_str(const json_t *apple, const char *name)
{
	const char *s = json_string_value(json_object_get(apple, name));

	return s != NULL && *s != '\0' ? s : NULL;
}

/* The key of Apple's record of list l: token, then its IDs (adamId and
 * pricingParam; "device" or "user", serialNumber or clientUserId, then
 * adamId; clientUserId). STORE_EINVAL when an ID is missing. */
static int
apple_key(enum store_vpp_list l, const char *token, const json_t *apple,
    struct key *key)
{
	const char *a, *b;

	if ((unsigned)l >= STORE_VPP__MAX || token == NULL || *token == '\0' ||
	    !json_is_object(apple))
		return STORE_EINVAL;
	key_init(key);
	key_str(key, token);
	switch (l) {
	case STORE_VPP_ASSETS:
		if ((a = apple_str(apple, "adamId")) == NULL ||
		    (b = apple_str(apple, "pricingParam")) == NULL)
			return STORE_EINVAL;
		key_str(key, a);
		key_str(key, b);
		break;
	case STORE_VPP_ASSIGNMENTS:
		if ((a = apple_str(apple, "adamId")) == NULL)
			return STORE_EINVAL;
		if ((b = apple_str(apple, "serialNumber")) != NULL)
			key_str(key, "device");
		else if ((b = apple_str(apple, "clientUserId")) != NULL)
			key_str(key, "user");
		else
			return STORE_EINVAL;
		key_str(key, b);
		key_str(key, a);
		break;
	case STORE_VPP_USERS:
		if ((a = apple_str(apple, "clientUserId")) == NULL)
			return STORE_EINVAL;
		key_str(key, a);
		break;
	default:
		return STORE_EINVAL;
	}
	return key->overflow ? STORE_EINVAL : 0;
}

int
store_vpp_put(struct store_txn *t, enum store_vpp_list l, const char *token,
    const json_t *apple)
{
	const struct store_kind *k;
	struct key		 key;
	json_t			*rec, *j;
	size_t			 i;
	int			 rc;

	if ((rc = apple_key(l, token, apple, &key)) != 0)
		return rc;
	k = &store_kinds[list_dbi[l]];
	if ((rec = json_object()) == NULL)
		return STORE_ENOMEM;
	for (i = 0; i < k->nf; i++) {
		if (k->f[i].cat != CAT_ROW)
			continue;
		if ((rc = apple_field(apple, &k->f[i], &j)) < 0) {
			json_decref(rec);
			return STORE_EINVAL;
		}
		if (rc == 1)
			json_object_set(rec, k->f[i].name, j);
	}
	json_object_set_new(rec, "synced_at", vpp_time_json(t->now));
	rc = vpp_put_json(t, k->dbi, &key, rec);
	json_decref(rec);
	return rc;
}

/* See store_vpp.h. */
int
store_vpp_del(struct store_txn *t, enum store_vpp_list l, const char *token,
    const json_t *apple, int *removed)
{
	struct key key;
	int	   rc;

	*removed = 0;
	if ((rc = apple_key(l, token, apple, &key)) != 0)
		return rc;
	rc = db_del(t, list_dbi[l], &key);
	if (rc == STORE_ENOTFOUND)
		return 0;
	if (rc == 0)
		*removed = 1;
	return rc;
}

/* See store_vpp.h. */
int
store_vpp_annotate(struct store_txn *t, enum store_vpp_list l,
    const char *token, const json_t *apple, const json_t *fields, int *found)
{
	struct key  key;
	MDB_val	    v;
	json_t	   *rec;
	const char *k;
	json_t	   *x;
	int	    rc;

	*found = 0;
	if ((rc = apple_key(l, token, apple, &key)) != 0)
		return rc;
	rc = db_getv(t, list_dbi[l], key.b, key.len, &v);
	if (rc == STORE_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if ((rec = val_json(list_dbi[l], &v, 1)) == NULL)
		return STORE_ECORRUPT;
	json_object_foreach((json_t *)(uintptr_t)fields, k, x)
		json_object_set(rec, k, x);
	rc = vpp_put_json(t, list_dbi[l], &key, rec);
	json_decref(rec);
	if (rc == 0)
		*found = 1;
	return rc;
}

int
store_vpp_clear(struct store_txn *t, enum store_vpp_list l, const char *token,
    uint64_t *n)
{
	struct key key;
	uint64_t   dummy = 0;

	if ((unsigned)l >= STORE_VPP__MAX || token == NULL || *token == '\0')
		return STORE_EINVAL;
	key_init(&key);
	key_str(&key, token);
	if (key.overflow)
		return STORE_EINVAL;
	return db_del_prefix(t, list_dbi[l], key.b, key.len, NULL, NULL,
	    n != NULL ? n : &dummy);
}

struct each_arg {
	enum store_dbi d;
	int (*cb)(const char *, json_t *, void *);
	void *arg;
	char  token[KEY_MAX + 1];
};

static int
each_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct each_arg	    *ea = arg;
	const unsigned char *p = k->mv_data;
	size_t		     l;
	json_t		    *j;
	int		     rc;

	(void)t;
	if (k->mv_size < 3 || (l = (size_t)p[0] << 8 | p[1]) == 0 ||
	    l > k->mv_size - 2)
		return STORE_ECORRUPT;
	memcpy(ea->token, p + 2, l);
	ea->token[l] = '\0';
	if ((j = val_json(ea->d, v, 0)) == NULL)
		return STORE_ECORRUPT;
	rc = ea->cb(ea->token, j, ea->arg);
	json_decref(j);
	return rc;
}

int
store_vpp_each(struct store_txn *t, enum store_vpp_list l, const char *token,
    int (*cb)(const char *, json_t *, void *), void *arg)
{
	struct each_arg ea;
	struct key	key;
	int		rc;

	if ((unsigned)l >= STORE_VPP__MAX)
		return STORE_EINVAL;
	ea.d = list_dbi[l];
	ea.cb = cb;
	ea.arg = arg;
	if (token != NULL) {
		key_init(&key);
		key_str(&key, token);
		if (key.overflow)
			return STORE_EINVAL;
		rc = db_prefix_each(
		    t, ea.d, key.b, key.len, 0, each_visit, &ea);
		return rc > 0 ? 0 : rc;
	}
	{
		MDB_cursor *cur;
		MDB_val	    k, v;
		int	    r = 0;

		if ((rc = mdb_cursor_open(t->txn, t->s->dbi[ea.d], &cur)) != 0)
			return store_rc(rc);
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		     rc == 0 && r == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			r = each_visit(t, &k, &v, &ea);
		mdb_cursor_close(cur);
		if (r != 0)
			return r < 0 ? r : 0;
		return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
	}
}

/* Whether k is a whole KK_STRS key: length-prefixed strings, none empty,
 * up to its end. */
static int
key_strs_ok(const unsigned char *k, size_t n)
{
	size_t i = 0, l;

	if (n == 0)
		return 0;
	while (i < n) {
		if (n - i < 2)
			return 0;
		l = (size_t)k[i] << 8 | k[i + 1];
		if (l == 0 || l > n - i - 2)
			return 0;
		i += 2 + l;
	}
	return 1;
}

/* See store_vpp.h. */
int
store_vpp_page(struct store_txn *t, enum store_vpp_list l, const char *token,
    const char *after, int (*cb)(const char *, const char *, json_t *, void *),
    void *arg)
{
	struct each_arg ea;
	struct key	pfx;
	unsigned char	ak[KEY_MAX];
	char		cursor[2 * KEY_MAX + 1];
	size_t		an = 0, hn;
	MDB_cursor     *cur;
	MDB_val		k, v;
	json_t	       *j;
	int		rc, r = 0, op;

	if ((unsigned)l >= STORE_VPP__MAX)
		return STORE_EINVAL;
	key_init(&pfx);
	if (token != NULL) {
		key_str(&pfx, token);
		if (pfx.overflow)
			return STORE_EINVAL;
	}
	if (after != NULL) {
		/* The cursor: the hex of the last key of the page before,
		 * which need not exist any more. */
		hn = strlen(after);
		if (hn == 0 || hn % 2 != 0 || hn / 2 > KEY_MAX ||
		    hex_decode(after, hn / 2, ak) != 0 ||
		    !key_strs_ok(ak, hn / 2) || hn / 2 < pfx.len ||
		    memcmp(ak, pfx.b, pfx.len) != 0)
			return STORE_EINVAL;
		an = hn / 2;
	}
	ea.d = list_dbi[l];
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[ea.d], &cur)) != 0)
		return store_rc(rc);
	if (an > 0) {
		k.mv_data = ak;
		k.mv_size = an;
	} else {
		k.mv_data = pfx.b;
		k.mv_size = pfx.len;
	}
	op = k.mv_size > 0 ? MDB_SET_RANGE : MDB_FIRST;
	for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0 && r == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < pfx.len ||
		    memcmp(k.mv_data, pfx.b, pfx.len) != 0) {
			rc = MDB_NOTFOUND;
			break;
		}
		if (an > 0 && k.mv_size == an &&
		    memcmp(k.mv_data, ak, an) == 0)
			continue; /* the last of the page before */
		if (k.mv_size > KEY_MAX || !key_strs_ok(k.mv_data, k.mv_size)) {
			r = STORE_ECORRUPT;
			break;
		}
		{
			const unsigned char *p = k.mv_data;
			size_t		     tl = (size_t)p[0] << 8 | p[1];

			memcpy(ea.token, p + 2, tl);
			ea.token[tl] = '\0';
		}
		hex_encode(k.mv_data, k.mv_size, cursor);
		if ((j = val_json(ea.d, &v, 0)) == NULL) {
			r = STORE_ECORRUPT;
			break;
		}
		r = cb(ea.token, cursor, j, arg);
		json_decref(j);
	}
	mdb_cursor_close(cur);
	if (r != 0)
		return r < 0 ? r : 0;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/*
 * Call fn with the key prefix token . "device" . serial of every token
 * that begins a licence's key (DBI_VPPASSIGN), whether its token record
 * is still there or not: where that token's assignments to the serial
 * are. The names are gathered first (a jump from one to the next), so
 * fn may write. Stops at the first nonzero fn (a negative one is
 * returned).
 */
static int
serial_prefixes(struct store_txn *t, const char *serial,
    int (*fn)(struct store_txn *, const struct key *, void *), void *arg)
{
	MDB_cursor	    *cur;
	MDB_val		     k, v;
	struct strset	     names;
	struct key	     key;
	const unsigned char *p;
	unsigned char	     next[2 + KEY_MAX + 1];
	size_t		     i, l;
	int		     rc, r = 0;

	memset(&names, 0, sizeof(names));
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_VPPASSIGN], &cur)) !=
	    0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;) {
		p = k.mv_data;
		if (k.mv_size < 2 || (l = (size_t)p[0] << 8 | p[1]) == 0 ||
		    l > KEY_MAX || k.mv_size < 2 + l) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
			continue; /* not a licence's key: check's to report */
		}
		if (memchr(p + 2, '\0', l) == NULL &&
		    (r = strset_add(&names, p + 2, l)) != 0)
			break;
		/* The first key after every one starting with this name. */
		memcpy(next, p, 2 + l);
		next[2 + l] = 0xff;
		k.mv_data = next;
		k.mv_size = 2 + l + 1;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		/* A key of the name itself followed by 0xff bytes: step on. */
		while (rc == 0 && k.mv_size >= 2 + l &&
		    memcmp(k.mv_data, next, 2 + l) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (r == 0 && rc != MDB_NOTFOUND)
		r = store_rc(rc);
	for (i = 0; i < names.n && r == 0; i++) {
		key_init(&key);
		key_str(&key, names.v[i]);
		key_str(&key, "device");
		key_str(&key, serial);
		if (!key.overflow)
			r = fn(t, &key, arg);
	}
	strset_free(&names);
	return r < 0 ? r : 0;
}

static int
of_serial_fn(struct store_txn *t, const struct key *pfx, void *arg)
{
	return db_prefix_each(t, DBI_VPPASSIGN, pfx->b, pfx->len, 0,
	    each_visit, arg);
}

int
store_vpp_of_serial(struct store_txn *t, const char *serial,
    int (*cb)(const char *, json_t *, void *), void *arg)
{
	struct each_arg ea;

	if (serial == NULL || *serial == '\0')
		return STORE_EINVAL;
	ea.d = DBI_VPPASSIGN;
	ea.cb = cb;
	ea.arg = arg;
	return serial_prefixes(t, serial, of_serial_fn, &ea);
}

static int
forget_fn(struct store_txn *t, const struct key *pfx, void *arg)
{
	return db_del_prefix(t, DBI_VPPASSIGN, pfx->b, pfx->len, NULL, NULL,
	    arg);
}

static int
any_fn(const char *token, json_t *rec, void *arg)
{
	(void)token;
	(void)rec;
	*(int *)arg = 1;
	return 1; /* one is enough */
}

/* See store_vpp.h. */
int
store_vpp_serial_known(struct store_txn *t, const char *serial)
{
	int any = 0, rc;

	if ((rc = store_vpp_of_serial(t, serial, any_fn, &any)) != 0)
		return rc;
	return any;
}

/* See store_vpp.h. */
int
store_vpp_forget_serial(struct store_txn *t, const char *serial, uint64_t *n)
{
	if (serial == NULL || *serial == '\0')
		return 0;
	return serial_prefixes(t, serial, forget_fn, n);
}

/* See store_vpp.h. */
int
store_vpp_count(struct store_txn *t, const char *token, size_t *n)
{
	struct key key;
	MDB_cursor *cur;
	MDB_val	    k, v;
	size_t	    i;
	int	    rc;

	*n = 0;
	key_init(&key);
	key_str(&key, token);
	if (key.overflow)
		return STORE_EINVAL;
	/* Every kind keyed by the token's name first (the lists, the write
	 * events), as purge --token walks them. */
	for (i = 0; i < DBI__MAX; i++) {
		if (store_kinds[i].owner != OWN_VPP_TOKEN ||
		    store_kinds[i].key != KK_STRS)
			continue;
		if ((rc = mdb_cursor_open(t->txn, t->s->dbi[i],
			 &cur)) != 0)
			return store_rc(rc);
		k.mv_data = key.b;
		k.mv_size = key.len;
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		     rc == 0 && k.mv_size >= key.len &&
		     memcmp(k.mv_data, key.b, key.len) == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
			(*n)++;
		mdb_cursor_close(cur);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_rc(rc);
	}
	return 0;
}

/* See store_int.h. */
int
vpp_token_drop(struct store_txn *t, const char *name, uint64_t *removed)
{
	const struct store_kind *k;
	struct key		 pfx;
	size_t			 j, n = strlen(name);
	int			 rc;

	key_init(&pfx);
	key_str(&pfx, name);
	if (pfx.overflow || n == 0 || n > KEY_MAX)
		return 0;
	for (j = 0; j < DBI__MAX; j++) {
		k = &store_kinds[j];
		if (k->owner != OWN_VPP_TOKEN)
			continue;
		if (k->key == KK_TEXT) {
			rc = db_delv(t, k->dbi, name, n);
			if (rc == 0)
				removed[k->dbi]++;
			else if (rc != STORE_ENOTFOUND)
				return rc;
			continue;
		}
		if ((rc = db_del_prefix(t, k->dbi, pfx.b, pfx.len, NULL, NULL,
			 &removed[k->dbi])) != 0)
			return rc;
	}
	return 0;
}

/* See store_vpp.h: what the registry says the token owns, as purge
 * --vpp-token removes it (vpp_token_drop). */
int
store_vpp_token_remove(struct store_txn *t, const char *name, uint64_t *n)
{
	uint64_t removed[DBI__MAX];
	size_t	 i;
	int	 rc;

	*n = 0;
	if (name == NULL || *name == '\0' || strlen(name) > KEY_MAX)
		return STORE_EINVAL;
	if ((rc = db_has(t, DBI_VPPTOKEN, name, strlen(name))) != 1)
		return rc == 0 ? STORE_ENOTFOUND : rc;
	memset(removed, 0, sizeof(removed));
	if ((rc = vpp_token_drop(t, name, removed)) != 0)
		return rc;
	/* The records besides the token's own. */
	for (i = 0; i < DBI__MAX; i++)
		if (store_kinds[i].owner == OWN_VPP_TOKEN &&
		    store_kinds[i].key != KK_TEXT)
			*n += removed[i];
	return 0;
}
