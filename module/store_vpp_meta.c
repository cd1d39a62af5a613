/*
 * store_vpp_meta.c - the App Store metadata of a VPP token's assets in
 * the store (DBI_VPPMETA, include/picomdm/store_vpp.h): keyed by the
 * token's name and the adamId (KK_STRS) like the assets it describes,
 * so that purge --token and token remove --purge take it with them
 * (store_purge.c walks every OWN_VPP_TOKEN kind of the registry); and
 * the licence check of an App Store install (api_vpp_install.c): an
 * assignment of the adamId to the device's serial.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picomdm/store.h"
#include "picomdm/store_vpp.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

static int
meta_key(struct key *k, const char *token, const char *adam_id)
{
	if (token == NULL || *token == '\0' || adam_id == NULL ||
	    *adam_id == '\0')
		return -1;
	key_init(k);
	key_str(k, token);
	key_str(k, adam_id);
	return k->overflow ? -1 : 0;
}

/* See store_vpp.h. */
int
store_vpp_meta_put(struct store_txn *t, const char *token, const json_t *rec)
{
	struct buf  b = {0};
	struct key  k;
	const char *why;
	json_t	   *r;
	char	    ts[64];
	time_t	    s;
	struct tm   tm;
	size_t	    n;
	int	    rc;

	if (!json_is_object(rec) ||
	    meta_key(&k, token, json_string_value(json_object_get(rec,
				    "adam_id"))) != 0)
		return STORE_EINVAL;
	if ((r = json_copy((json_t *)(uintptr_t)rec)) == NULL)
		return STORE_ENOMEM;
	if (json_object_get(r, "synced_at") == NULL) {
		s = (time_t)(t->now / 1000000u);
		if (gmtime_r(&s, &tm) == NULL ||
		    (n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S",
			 &tm)) == 0) {
			json_decref(r);
			return STORE_EINVAL;
		}
		snprintf(ts + n, sizeof(ts) - n, ".%06uZ",
		    (unsigned)(t->now % 1000000u));
		json_object_set_new(r, "synced_at", json_string(ts));
	}
	rc = val_from_json(DBI_VPPMETA, r, &b, &why);
	json_decref(r);
	if (rc != 0) {
		free(b.p);
		return STORE_EINVAL;
	}
	rc = db_put(t, DBI_VPPMETA, &k, b.p, b.len, 0);
	free(b.p);
	return rc;
}

/* See store_vpp.h. */
int
store_vpp_meta_get(struct store_txn *t, const char *token, const char *adam_id,
    json_t **out)
{
	struct key k;
	MDB_val	   v;
	int	   rc;

	*out = NULL;
	if (meta_key(&k, token, adam_id) != 0)
		return STORE_EINVAL;
	if ((rc = db_get(t, DBI_VPPMETA, &k, &v)) != 0)
		return rc;
	if ((*out = val_json(DBI_VPPMETA, &v, 0)) == NULL)
		return STORE_ECORRUPT;
	return 0;
}

/* See store_vpp.h. */
int
store_vpp_meta_remove(struct store_txn *t, const char *token,
    const char *adam_id)
{
	struct key k;

	if (meta_key(&k, token, adam_id) != 0)
		return STORE_EINVAL;
	return db_del(t, DBI_VPPMETA, &k);
}

struct licensed_arg {
	const char *adam_id;
	const char *token;
	char	   *tok;
	size_t	    tokn;
	int	    found;
};

static int
licensed_cb(const char *token, json_t *rec, void *arg)
{
	struct licensed_arg *la = arg;
	const char *a = json_string_value(json_object_get(rec, "adam_id"));

	if (a == NULL || strcmp(a, la->adam_id) != 0 ||
	    (la->token != NULL && strcmp(token, la->token) != 0))
		return 0;
	if (la->tokn > 0)
		snprintf(la->tok, la->tokn, "%s", token);
	la->found = 1;
	return 1; /* found: stop */
}

/* See store_vpp.h. */
int
store_vpp_licensed(struct store_txn *t, const char *serial,
    const char *adam_id, const char *token, char *tok, size_t tokn)
{
	struct licensed_arg la = {adam_id, token, tok, tokn, 0};
	int		    rc;

	if (serial == NULL || *serial == '\0' || adam_id == NULL ||
	    *adam_id == '\0')
		return STORE_EINVAL;
	if (tokn > 0)
		tok[0] = '\0';
	rc = store_vpp_of_serial(t, serial, licensed_cb, &la);
	return rc < 0 ? rc : la.found;
}
