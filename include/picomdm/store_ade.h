/*
 * store_ade.h - Automated Device Enrollment in the store
 * (module/store_ade.c): the ADE tokens picomdm-dep(8) holds, keyed by
 * their name, and the device records Apple sends through them, keyed by
 * serial number. A device record holds every field of Apple's device
 * record by Apple's name, the token it came through and when it was
 * synced; a deleted device is kept as a tombstone (op_type "deleted").
 * Registry entries: store_kinds.c; catalogue rows: catalogue.c (ADE).
 */
#ifndef PICOMDM_STORE_ADE_H
#define PICOMDM_STORE_ADE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "picomdm/store.h"

/* Apple's device record, field by field (tag = index + 1). */
enum ade_dev_field {
	ADE_SERIAL = 0, /* serial_number: the key */
	ADE_MODEL,
	ADE_DESCRIPTION,
	ADE_COLOR,
	ADE_ASSET_TAG,
	ADE_PROFILE_STATUS,
	ADE_PROFILE_UUID,
	ADE_PROFILE_ASSIGN_TIME,
	ADE_PROFILE_PUSH_TIME,
	ADE_DEVICE_ASSIGNED_DATE,
	ADE_DEVICE_ASSIGNED_BY,
	ADE_OS,
	ADE_DEVICE_FAMILY,
	ADE_OP_TYPE,
	ADE_OP_DATE,
	ADE_DEV__MAX
};

/* Apple's JSON name of each field (index: enum ade_dev_field). */
extern const char *const store_ade_field_names[ADE_DEV__MAX];

struct store_ade_device {
	char	*f[ADE_DEV__MAX]; /* Apple's values as sent; NULL: absent */
	char	*token;		  /* the token it came through */
	uint64_t synced_at;	  /* µs: the transaction that wrote it */
};

/* Apple's /account fields kept with a token (index + 9 = tag). */
enum ade_acct_field {
	ADE_ACCT_SERVER_NAME = 0,
	ADE_ACCT_SERVER_UUID,
	ADE_ACCT_ADMIN_ID,
	ADE_ACCT_ORG_NAME,
	ADE_ACCT_ORG_EMAIL,
	ADE_ACCT_ORG_PHONE,
	ADE_ACCT_ORG_ADDRESS,
	ADE_ACCT_ORG_ID,
	ADE_ACCT_ORG_TYPE,
	ADE_ACCT_ORG_VERSION,
	ADE_ACCT__MAX
};
extern const char *const store_ade_account_names[ADE_ACCT__MAX];

/*
 * An ADE token. The OAuth credentials and the private key are secrets
 * (wiped on free, never in a dump without --secrets). A token made by
 * `token new` has its key and certificate and no credentials until
 * `token import`.
 */
struct store_ade_token {
	char	*name; /* the key */
	char	*consumer_key, *consumer_secret, *access_token, *access_secret;
	uint64_t expiry; /* µs: access_token_expiry; 0 before import */
	char	*key_pem, *cert_pem;
	char	*acct[ADE_ACCT__MAX]; /* from /account; NULL: not yet */
	uint64_t account_at;	      /* µs: when /account answered */
	char	*cursor;	      /* the cursor of the last page applied */
	int	 fetched;	      /* 1: the full fetch is complete and the
				       * cursor is a sync cursor */
	uint64_t synced_at;	      /* µs: the last page applied */
	char	*default_profile;     /* profile UUID for auto-assign */
	uint64_t created_at, imported_at;
};

#define STORE_ADE_NAME_MAX 64

int store_ade_token_get(
    struct store_txn *, const char *name, struct store_ade_token **out);
/* Write (replace); 0 or a store_err (STORE_EINVAL: no or a bad name). */
int store_ade_token_put(struct store_txn *, const struct store_ade_token *);
/* Remove the token record only; STORE_ENOTFOUND when none. */
int  store_ade_token_del(struct store_txn *, const char *name);
void store_ade_token_free(struct store_ade_token *);
typedef int (*store_ade_token_fn)(const struct store_ade_token *, void *);
/* Every token in name order; fn returns 0 to go on, <0 to stop with it. */
int store_ade_token_each(struct store_txn *, store_ade_token_fn, void *);

int store_ade_device_get(
    struct store_txn *, const char *serial, struct store_ade_device **out);
/* Write (replace) d; synced_at is the transaction's time. */
int  store_ade_device_put(struct store_txn *, const struct store_ade_device *);
void store_ade_device_free(struct store_ade_device *);
typedef int (*store_ade_device_fn)(const struct store_ade_device *, void *);
/* Devices in serial order strictly after after (NULL or "": from the
 * first; longer than a key can be: STORE_EINVAL, fn not called); fn
 * returns 0 to go on, 1 to stop, <0 to stop with it. */
int store_ade_device_each(
    struct store_txn *, const char *after, store_ade_device_fn, void *);

/*
 * Apply one device of Apple's answer (a JSON object's fields, already
 * checked to be strings or absent) coming through token: op_type
 * "deleted" keeps a tombstone; an event older (op_date) than the one
 * stored is ignored. *changed (may be NULL) says whether anything was
 * written, *added whether the serial was new or a tombstone before.
 */
int store_ade_device_apply(struct store_txn *, const char *token,
    struct store_ade_device *in, int *changed, int *added);

/* Remove the tombstones (op_type "deleted") synced before before_us;
 * *n the number removed. 0 or a store_err. */
int store_ade_prune(struct store_txn *, uint64_t before_us, uint64_t *n);

/* A device record as JSON: Apple's fields by Apple's names (those
 * present), "token" and "synced_at" (RFC 3339). NULL on no memory. */
json_t *store_ade_device_json(const struct store_ade_device *);

/* The serial an ADE record would be keyed by for this device ID: the
 * device's, else its MachineInfo's, else id itself when an ADE record
 * is keyed by it. *serial NULL when none. */
int store_ade_serial_of(
    struct store_txn *, const char *device_id, char **serial);

#endif
