/*
 * store_vpp.h - what Apps and Books stores (module/store_vpp.c; the
 * registry entries are in store_kinds.c): content tokens by the name the
 * operator gave them, and the assets, assignments and users Apple lists
 * for each, keyed by the token's name first so that purge --token
 * removes them all (store_purge.c). Records go in and out as JSON
 * objects with the registry's field names (times in RFC 3339).
 */
#ifndef PICOMDM_STORE_VPP_H
#define PICOMDM_STORE_VPP_H

#include <jansson.h>

#include "picomdm/store.h"

enum store_vpp_list {
	STORE_VPP_ASSETS = 0,
	STORE_VPP_ASSIGNMENTS,
	STORE_VPP_USERS,
	STORE_VPP_META, /* app metadata (store_vpp_meta_put) */
	STORE_VPP__MAX
};

/* The longest token name a list can hold records of (store_vpp_page):
 * their keys start with the name's 2-byte length and the name. */
#define STORE_VPP_NAME_MAX (STORE_KEY_MAX - 2)
/* The longest cursor of store_vpp_page: a key in hex. */
#define STORE_VPP_CURSOR_MAX (2 * STORE_KEY_MAX)

/* A token record (fields by the registry's names: name, stoken, org,
 * expires, location, ...), written whole; its "name" is the key.
 * STORE_EINVAL when it lacks a name or stoken or a field does not fit. */
int store_vpp_token_put(struct store_txn *, const json_t *rec);
/* The record of a token; secrets: the sToken in clear (else length and
 * SHA-256). STORE_ENOTFOUND when none. *out is a new reference. */
int store_vpp_token_get(
    struct store_txn *, const char *name, int secrets, json_t **out);
/* Every token, by name, without secrets; cb returning nonzero stops
 * (a negative value is returned). */
int store_vpp_token_each(
    struct store_txn *, int (*cb)(json_t *rec, void *), void *arg);
/* Remove a token and every record it owns (by the registry: assets,
 * assignments, users, app metadata, write events), as picomdmctl purge
 * --vpp-token does; *n the entries removed besides the token.
 * STORE_ENOTFOUND when none. */
int store_vpp_token_remove(struct store_txn *, const char *name, uint64_t *n);
/* How many asset, assignment and user entries a token has. */
int store_vpp_count(struct store_txn *, const char *token, size_t *n);

/* One element of Apple's listing (its own JSON, v2 key names) stored as
 * a record of the token; its key is made of the token's name and the
 * record's IDs (adamId and pricingParam; serialNumber or clientUserId and
 * adamId; clientUserId). A field of the wrong type, or a missing ID, is
 * STORE_EINVAL (nothing written). synced_at is the transaction's time. */
int store_vpp_put(struct store_txn *, enum store_vpp_list,
    const char *token, const json_t *apple);
/* Remove the entry Apple's record names (its IDs as for store_vpp_put;
 * its other fields are not looked at): a delta that reports it gone.
 * *removed is 1 when there was one; none is not an error. */
int store_vpp_del(struct store_txn *, enum store_vpp_list,
    const char *token, const json_t *apple, int *removed);
/* Set fields (registry names: {"license_id": ...}) on the stored entry
 * Apple's record names (its IDs as for store_vpp_put), keeping the rest:
 * what only the legacy v1 API carries. *found is 0, and nothing is
 * written, when there is no such entry. A field not of the kind, or of
 * the wrong type, is STORE_EINVAL. */
int store_vpp_annotate(struct store_txn *, enum store_vpp_list,
    const char *token, const json_t *apple, const json_t *fields,
    int *found);
/* Remove every entry of this list of the token (a full listing starts
 * over); *n the number removed (may be NULL). */
int store_vpp_clear(struct store_txn *, enum store_vpp_list,
    const char *token, uint64_t *n);
/* Every entry of the list, of one token or (NULL) all: cb gets the token
 * and the record; nonzero stops (a negative value is returned). */
int store_vpp_each(struct store_txn *, enum store_vpp_list,
    const char *token, int (*cb)(const char *token, json_t *rec, void *),
    void *arg);
/* Like store_vpp_each, from after a cursor (NULL: the first): cb also
 * gets the record's cursor, an opaque string (the hex of its key) that
 * stays valid while records are added and removed; a page goes on from
 * the record after it. A cursor that is not one of this list (of this
 * token, when one is given) is STORE_EINVAL. */
int store_vpp_page(struct store_txn *, enum store_vpp_list,
    const char *token, const char *after,
    int (*cb)(const char *token, const char *cursor, json_t *rec, void *),
    void *arg);
/* The assignments to a device serial number, over every token. */
int store_vpp_of_serial(struct store_txn *, const char *serial,
    int (*cb)(const char *token, json_t *rec, void *), void *arg);
/* Is there any? 1, 0 or a store error (< 0). */
int store_vpp_serial_known(struct store_txn *, const char *serial);
/* Remove them (a device purge: its serial must not stay in the store);
 * *n counts what went. */
int store_vpp_forget_serial(struct store_txn *, const char *serial,
    uint64_t *n);

/*
 * App metadata (module/store_vpp_meta.c): one record per token and
 * adamId, fields by the registry's names (adam_id, name, description,
 * icon_url, bundle_id, copyright, genres, store_url, status, synced_at
 * in RFC 3339). put writes rec whole (its adam_id is the key; synced_at
 * is the transaction's time when rec has none): STORE_EINVAL when it
 * lacks adam_id or a field does not fit. get: STORE_ENOTFOUND when none;
 * *out is a new reference. remove: 0 or STORE_ENOTFOUND.
 */
int store_vpp_meta_put(struct store_txn *, const char *token,
    const json_t *rec);
int store_vpp_meta_get(struct store_txn *, const char *token,
    const char *adam_id, json_t **out);
int store_vpp_meta_remove(struct store_txn *, const char *token,
    const char *adam_id);
/*
 * Does the device of this serial hold a licence (an assignment) of
 * adam_id, from token (NULL: from any token)? 1 with the token's name in
 * tok (tokn bytes) when it does, 0 when not, or a store_err.
 */
int store_vpp_licensed(struct store_txn *, const char *serial,
    const char *adam_id, const char *token, char *tok, size_t tokn);

#endif
