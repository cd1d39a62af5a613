/*
 * store_enroll.h - what enrollment stores (module/store_enroll.c): the
 * MachineInfo Setup Assistant sent (keyed by UDID, purged with the
 * device) and one-time enrollment tokens (keyed by the SHA-256 of the
 * token; the token itself is never stored).
 */
#ifndef PICOMDM_STORE_ENROLL_H
#define PICOMDM_STORE_ENROLL_H

#include <stddef.h>
#include <stdint.h>

#include "picomdm/store.h"

/* MachineInfo as Apple sent it (enroll.c verified its signature). */
struct store_machineinfo {
	char	*udid; /* required: the key */
	char	*serial, *product, *version, *imei, *meid, *language;
	uint64_t received_at; /* µs since the epoch */
};

/* Write (replace) the MachineInfo of mi->udid; received_at is the
 * transaction's time. 0 or a store_err. */
int  store_machineinfo_put(struct store_txn *, const struct store_machineinfo *);
/* Read; STORE_ENOTFOUND when none. Free with store_machineinfo_free. */
int  store_machineinfo_get(
     struct store_txn *, const char *udid, struct store_machineinfo **out);
void store_machineinfo_free(struct store_machineinfo *);

/* An enrollment token, as stored: never the token, only its hash. */
struct store_enroll_token {
	unsigned char hash[32]; /* SHA-256 of the token: the key */
	int	      has_hash;
	char	     *note;	  /* the operator's note or device hint */
	uint64_t      created_at; /* µs */
	uint64_t      expires_at; /* µs */
	uint64_t      used_at;	  /* µs; 0 while unused */
	char	     *purpose;	  /* NULL or "enroll": a token for GET
				   * /mdm/enroll; "scep": an issued SCEP
				   * challenge (scep_challenge_issued) */
};

#define STORE_TOKEN_SCEP "scep"

/* Store a new token (hash, note, expires_at set by the caller). */
int store_enroll_token_put(struct store_txn *, const struct store_enroll_token *);

/*
 * Use the token whose hash is given, of this purpose (NULL: a token for
 * /mdm/enroll; another purpose is unknown here): 0 when it existed, was unused and
 * unexpired at the transaction's time (it is now marked used, in the same
 * transaction); STORE_ENOTFOUND when unknown; STORE_EINVAL when used or
 * expired (nothing changes).
 */
int store_enroll_token_use(
    struct store_txn *, const unsigned char hash[32], const char *purpose);

/* Call fn for every token, in hash order; fn returns 0 to go on. */
typedef int (*store_token_fn)(const struct store_enroll_token *, void *);
int store_enroll_token_each(struct store_txn *, store_token_fn, void *);

/* Delete one token by hash; STORE_ENOTFOUND when none. */
int store_enroll_token_del(struct store_txn *, const unsigned char hash[32]);

/* Delete the tokens expired before `before` (µs) or used; *removed counts. */
int store_enroll_token_prune(
    struct store_txn *, uint64_t before, uint64_t *removed);

#endif
