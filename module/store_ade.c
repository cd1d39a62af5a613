/*
 * store_ade.c - ADE tokens (DBI_ADETOKEN, keyed by name) and ADE device
 * records (DBI_ADEDEVICE, keyed by serial) in the store
 * (picomdm/store_ade.h). Their registry entries are in store_kinds.c,
 * the catalogue rows of Apple's fields under ADE in catalogue.c.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lmdb.h>

#include "picomdm/store.h"
#include "picomdm/store_ade.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

const char *const store_ade_field_names[ADE_DEV__MAX] = {"serial_number",
    "model", "description", "color", "asset_tag", "profile_status",
    "profile_uuid", "profile_assign_time", "profile_push_time",
    "device_assigned_date", "device_assigned_by", "os", "device_family",
    "op_type", "op_date"};

const char *const store_ade_account_names[ADE_ACCT__MAX] = {"server_name",
    "server_uuid", "admin_id", "org_name", "org_email", "org_phone",
    "org_address", "org_id", "org_type", "org_version"};

/* The tags of adedevice_af in store_kinds.c: Apple's fields 1-15. */
#define DF(i)                                                               \
	{                                                                   \
		(i) + 1, F_STR, offsetof(struct store_ade_device, f[i]), 0, \
		    (i) == 0                                                \
	}
static const struct fdesc dev_fields[] = {
    DF(0),
    DF(1),
    DF(2),
    DF(3),
    DF(4),
    DF(5),
    DF(6),
    DF(7),
    DF(8),
    DF(9),
    DF(10),
    DF(11),
    DF(12),
    DF(13),
    DF(14),
    {16, F_STR, offsetof(struct store_ade_device, token), 0, 0},
    {17, F_U64, offsetof(struct store_ade_device, synced_at), 0, 0},
};

/* The tags of adetoken_af in store_kinds.c. */
#define TS(tag, m)                                                    \
	{                                                             \
		tag, F_STR, offsetof(struct store_ade_token, m), 0, 0 \
	}
#define TU(tag, m)                                                    \
	{                                                             \
		tag, F_U64, offsetof(struct store_ade_token, m), 0, 0 \
	}
#define TA(i)                                                                 \
	{                                                                     \
		(i) + 9, F_STR, offsetof(struct store_ade_token, acct[i]), 0, \
		    0                                                         \
	}
static const struct fdesc tok_fields[] = {
    {1, F_STR, offsetof(struct store_ade_token, name), 0, 1},
    TS(2, consumer_key),
    TS(3, consumer_secret),
    TS(4, access_token),
    TS(5, access_secret),
    TU(6, expiry),
    TS(7, key_pem),
    TS(8, cert_pem),
    TA(0),
    TA(1),
    TA(2),
    TA(3),
    TA(4),
    TA(5),
    TA(6),
    TA(7),
    TA(8),
    TA(9),
    TU(19, account_at),
    TS(20, cursor),
    {21, F_INT, offsetof(struct store_ade_token, fetched), 0, 0},
    TU(22, synced_at),
    TS(23, default_profile),
    TU(24, created_at),
    TU(25, imported_at),
};

_Static_assert(ADE_ACCT__MAX == 10, "account fields are tags 9 to 18");

/* See store_int.h. */
const struct fdesc *
store_ade_fdesc(enum rec_kind k, size_t *n)
{
	if (k == REC_ADETOKEN) {
		*n = NF(tok_fields);
		return tok_fields;
	}
	if (k == REC_ADEDEVICE) {
		*n = NF(dev_fields);
		return dev_fields;
	}
	return NULL;
}

static int
name_ok(const char *s, size_t max)
{
	size_t n;

	return s != NULL && (n = strlen(s)) > 0 && n <= max;
}

/* ---- tokens ---- */

static void
str_wipe(char *s)
{
	if (s != NULL)
		explicit_bzero(s, strlen(s));
}

void
store_ade_token_free(struct store_ade_token *tk)
{
	if (tk == NULL)
		return;
	str_wipe(tk->consumer_key);
	str_wipe(tk->consumer_secret);
	str_wipe(tk->access_token);
	str_wipe(tk->access_secret);
	str_wipe(tk->key_pem);
	rec_free_fields(tok_fields, NF(tok_fields), tk);
	free(tk);
}

static int
token_decode(const MDB_val *v, struct store_ade_token **out)
{
	struct store_ade_token *tk;
	int			rc;

	if ((tk = calloc(1, sizeof(*tk))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(v, REC_ADETOKEN, tok_fields, NF(tok_fields), tk,
		 NULL, NULL)) != 0) {
		store_ade_token_free(tk);
		return rc;
	}
	*out = tk;
	return 0;
}

int
store_ade_token_get(
    struct store_txn *t, const char *name, struct store_ade_token **out)
{
	MDB_val v;
	int	rc;

	*out = NULL;
	if (!name_ok(name, STORE_ADE_NAME_MAX))
		return STORE_ENOTFOUND;
	if ((rc = db_getv(t, DBI_ADETOKEN, name, strlen(name), &v)) != 0)
		return rc;
	return token_decode(&v, out);
}

int
store_ade_token_put(struct store_txn *t, const struct store_ade_token *tk)
{
	if (!name_ok(tk->name, STORE_ADE_NAME_MAX))
		return STORE_EINVAL;
	return rec_putv(t, DBI_ADETOKEN, tk->name, strlen(tk->name),
	    REC_ADETOKEN, tok_fields, NF(tok_fields), tk);
}

int
store_ade_token_del(struct store_txn *t, const char *name)
{
	if (!name_ok(name, STORE_ADE_NAME_MAX))
		return STORE_ENOTFOUND;
	return db_delv(t, DBI_ADETOKEN, name, strlen(name));
}

int
store_ade_token_each(struct store_txn *t, store_ade_token_fn fn, void *arg)
{
	struct store_ade_token *tk;
	MDB_cursor	       *cur;
	MDB_val			k, v;
	int			rc, r = 0;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_ADETOKEN], &cur)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if ((r = token_decode(&v, &tk)) != 0)
			break;
		r = fn(tk, arg);
		store_ade_token_free(tk);
		if (r != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (r != 0)
		return r < 0 ? r : 0;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* ---- devices ---- */

void
store_ade_device_free(struct store_ade_device *d)
{
	if (d == NULL)
		return;
	rec_free_fields(dev_fields, NF(dev_fields), d);
	free(d);
}

static int
device_decode(const MDB_val *v, struct store_ade_device **out)
{
	struct store_ade_device *d;
	int			 rc;

	if ((d = calloc(1, sizeof(*d))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(v, REC_ADEDEVICE, dev_fields, NF(dev_fields), d,
		 NULL, NULL)) != 0) {
		store_ade_device_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

int
store_ade_device_get(
    struct store_txn *t, const char *serial, struct store_ade_device **out)
{
	MDB_val v;
	int	rc;

	*out = NULL;
	if (!name_ok(serial, KEY_MAX))
		return STORE_ENOTFOUND;
	if ((rc = db_getv(t, DBI_ADEDEVICE, serial, strlen(serial), &v)) != 0)
		return rc;
	return device_decode(&v, out);
}

int
store_ade_device_put(struct store_txn *t, const struct store_ade_device *d)
{
	struct store_ade_device w2 = *d;

	if (!name_ok(d->f[ADE_SERIAL], KEY_MAX))
		return STORE_EINVAL;
	w2.synced_at = store_txn_now(t);
	return rec_putv(t, DBI_ADEDEVICE, d->f[ADE_SERIAL],
	    strlen(d->f[ADE_SERIAL]), REC_ADEDEVICE, dev_fields, NF(dev_fields),
	    &w2);
}

int
store_ade_device_each(
    struct store_txn *t, const char *after, store_ade_device_fn fn, void *arg)
{
	struct store_ade_device *d;
	MDB_cursor		*cur;
	MDB_val			 k, v;
	MDB_cursor_op		 op = MDB_FIRST;
	size_t			 alen = after != NULL ? strlen(after) : 0;
	int			 rc, r = 0;

	/* LMDB compares a longer one as it is: no error, no page. */
	if (alen > KEY_MAX)
		return STORE_EINVAL;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_ADEDEVICE], &cur)) != 0)
		return store_rc(rc);
	if (alen > 0) {
		k.mv_data = (void *)(uintptr_t)after;
		k.mv_size = alen;
		op = MDB_SET_RANGE;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (op == MDB_SET_RANGE && k.mv_size == alen &&
		    memcmp(k.mv_data, after, alen) == 0)
			continue; /* strictly after */
		if ((r = device_decode(&v, &d)) != 0)
			break;
		r = fn(d, arg);
		store_ade_device_free(d);
		if (r != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (r != 0)
		return r < 0 ? r : 0;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* Is event date a older than b? Apple's dates are RFC 3339 in UTC with
 * one layout, so they compare as text; anything else is not older. */
static int
older(const char *a, const char *b)
{
	return a != NULL && b != NULL && strlen(a) == strlen(b) &&
	    strcmp(a, b) < 0;
}

int
store_ade_device_apply(struct store_txn *t, const char *token,
    struct store_ade_device *in, int *changed, int *added)
{
	struct store_ade_device *old = NULL;
	char			*keep = in->token;
	int			 rc, dead;

	if (changed != NULL)
		*changed = 0;
	if (added != NULL)
		*added = 0;
	rc = store_ade_device_get(t, in->f[ADE_SERIAL], &old);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	dead = old == NULL ||
	    (old->f[ADE_OP_TYPE] != NULL &&
		strcmp(old->f[ADE_OP_TYPE], "deleted") == 0);
	if (old != NULL && older(in->f[ADE_OP_DATE], old->f[ADE_OP_DATE])) {
		store_ade_device_free(old);
		return 0;
	}
	store_ade_device_free(old);
	in->token = (char *)(uintptr_t)token;
	rc = store_ade_device_put(t, in);
	in->token = keep;
	if (rc == 0 && changed != NULL)
		*changed = 1;
	if (rc == 0 && added != NULL)
		*added = dead &&
		    (in->f[ADE_OP_TYPE] == NULL ||
			strcmp(in->f[ADE_OP_TYPE], "deleted") != 0);
	return rc;
}

/* See store_ade.h. */
int
store_ade_serial_of(struct store_txn *t, const char *id, char **serial)
{
	MDB_val v;
	size_t	n = strlen(id);
	int	rc;

	*serial = NULL;
	if (n == 0 || n > KEY_MAX)
		return 0;
	rc = db_getv(t, DBI_DEVICE, id, n, &v);
	if (rc == 0 &&
	    (rc = rec_field_str(&v, REC_DEVICE, TAG_DEVICE_SERIAL, serial)) ==
		0 &&
	    *serial != NULL)
		return 0;
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	rc = db_getv(t, DBI_MACHINEINFO, id, n, &v);
	if (rc == 0 &&
	    (rc = rec_field_str(&v, REC_MACHINEINFO, TAG_MI_SERIAL, serial)) ==
		0 &&
	    *serial != NULL)
		return 0;
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	if ((rc = db_has(t, DBI_ADEDEVICE, id, n)) < 0)
		return rc;
	if (rc == 1 && (*serial = strdup(id)) == NULL)
		return STORE_ENOMEM;
	return 0;
}

/* See store_ade.h. */
json_t *
store_ade_device_json(const struct store_ade_device *d)
{
	json_t *o = json_object();
	char	when[32];
	size_t	i;

	if (o == NULL)
		return NULL;
	for (i = 0; i < ADE_DEV__MAX; i++)
		if (d->f[i] != NULL)
			json_object_set_new(
			    o, store_ade_field_names[i], json_string(d->f[i]));
	json_object_set_new(
	    o, "token", d->token != NULL ? json_string(d->token) : json_null());
	time_format(d->synced_at, when, sizeof(when));
	json_object_set_new(o, "synced_at",
	    d->synced_at != 0 ? json_string(when) : json_null());
	return o;
}

struct prune_arg {
	uint64_t before;
};

/* A tombstone synced before the limit: 1 (delete it). */
static int
prune_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct prune_arg    *pa = arg;
	const unsigned char *p;
	size_t		     n;
	uint64_t	     at;
	int		     rc;

	(void)t;
	(void)k;
	rc = rec_field(v, REC_ADEDEVICE, ADE_OP_TYPE + 1, &p, &n);
	if (rc < 0)
		return rc;
	if (rc == 0 || n != 7 || memcmp(p, "deleted", 7) != 0)
		return 0;
	rc = rec_field(v, REC_ADEDEVICE, 17, &p, &n);
	if (rc < 0)
		return rc;
	if (rc == 1 && (n != 8 || rec_get_u64(p, n, &at) != 0))
		return STORE_ECORRUPT;
	return rc == 0 || at < pa->before;
}

/* See store_ade.h. */
int
store_ade_prune(struct store_txn *t, uint64_t before, uint64_t *n)
{
	struct prune_arg pa = {before};

	*n = 0;
	return db_visit(t, DBI_ADEDEVICE, prune_visit, &pa, n);
}
