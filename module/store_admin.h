/*
 * store_admin.h - what the store-wide operations (store_admin.c,
 * store_json.c, store_dump.c, store_check.c, store_purge.c) share: small
 * owned sets, raw access to the sub-databases, progress, and the JSON
 * codec of an entry. Nothing outside those files includes this; the
 * kinds they walk are in store_kinds.h, and a new kind is added there
 * (store_kinds.c), not here.
 */
#ifndef PICOMDM_STORE_ADMIN_H
#define PICOMDM_STORE_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <lmdb.h>

#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_int.h"
#include "store_kinds.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

/* Progress is reported every this many entries. */
#define PROGRESS_EVERY 20000

void progress(const struct store_progress *, const char *what, uint64_t done,
    uint64_t total);

/* ---- small owned sets ---- */

/* A set of strings: appended, then sorted and deduplicated for bsearch. */
struct strset {
	char **v;
	size_t n, cap;
};
/* Add a copy of p[0..n) (NUL-terminated); 0 or STORE_ENOMEM. */
int strset_add(struct strset *, const void *p, size_t n);
/* Sort and drop duplicates, ready for strset_has. */
void strset_sort(struct strset *);
/* Is the (not NUL-terminated) p[0..n) in the sorted set? */
int  strset_has(const struct strset *, const void *p, size_t n);
void strset_free(struct strset *);

/* A device purge: every Apps and Books write event (store_vpp_event.c)
 * that names one of these serials in its items or failures is written
 * back without them (the event stays: the organisation's record of the
 * request); *n counts the events changed. The set must be sorted. */
int vpp_event_forget_serials(struct store_txn *, const struct strset *,
    uint64_t *n);

/* A set of u64, appended then sorted and deduplicated. */
struct u64set {
	uint64_t *v;
	size_t	  n, cap;
};
/* Add a number; 0 or STORE_ENOMEM. */
int  u64set_add(struct u64set *, uint64_t);
void u64set_sort(struct u64set *);
int  u64set_has(const struct u64set *, uint64_t);
void u64set_free(struct u64set *);

/* ---- raw access ---- */

/* A record field as an owned string; *out NULL when absent. */
int rec_field_str(const MDB_val *v, enum rec_kind, unsigned tag, char **out);
/* Does a sub-database hold this key? 1, 0 or a store_err. */
int db_has(struct store_txn *, enum store_dbi, const void *k, size_t n);
int db_getv(
    struct store_txn *, enum store_dbi, const void *k, size_t n, MDB_val *v);
int  db_putv(struct store_txn *, enum store_dbi, const void *k, size_t kn,
     const void *p, size_t n);
int  db_delv(struct store_txn *, enum store_dbi, const void *k, size_t n);
/* Encode obj as a record of kind with its fields and put it under k; the
 * encoding is wiped afterwards (records may hold secrets). */
int  rec_putv(struct store_txn *, enum store_dbi, const void *k, size_t kn,
     enum rec_kind, const struct fdesc *, size_t nf, const void *obj);
void be64(unsigned char *b, uint64_t v);
/*
 * Call fn for every entry of d; fn returns 0 to keep the entry, 1 to
 * delete it (counted in *deleted when not NULL), or a store_err. With
 * t->count_only (a purge's count, store_purge.c) db_visit, db_del_prefix
 * and db_delv count what they would delete and delete nothing.
 */
int db_visit(
    struct store_txn *, enum store_dbi, visit_fn, void *arg, uint64_t *deleted);
/* Delete every entry whose key starts with pfx; fn (may be NULL) sees each
 * first, as in db_visit (its return value is ignored unless < 0). */
int db_del_prefix(struct store_txn *, enum store_dbi, const void *pfx, size_t n,
    visit_fn fn, void *arg, uint64_t *deleted);

/* ---- JSON forms of entries (store_json.c) ---- */

int j_get_u64(const json_t *, uint64_t *out);
/* Base64 as a JSON string. */
json_t *j_b64str(const void *p, size_t n);
/* A secret as it may be shown: length and SHA-256, never the value. */
json_t *j_secret(const void *p, size_t n);
/* The key of an entry of sub-database d in its JSON form, or NULL when
 * the bytes do not have that sub-database's layout. */
json_t *key_json(enum store_dbi d, const unsigned char *k, size_t n);
/* The inverse of key_json; 0 or -1. */
int key_from_json(enum store_dbi d, const json_t *j, struct key *out);
/* The value of an entry of d in JSON form; NULL when it does not fit. */
json_t *val_json(enum store_dbi d, const MDB_val *v, int secrets);
/* The inverse of val_json into out (reset here); 0 or -1 with *why. */
int val_from_json(
    enum store_dbi d, const json_t *j, struct buf *out, const char **why);

#endif
