/*
 * store.h - the only way into picomdm's state.
 *
 * One LMDB environment holds everything, in named sub-databases. No LMDB
 * type crosses this header, so a second backend can implement it later.
 *
 * Writes go through store_write(): the operation runs inside a write
 * transaction that the group-commit writer shares between every request
 * waiting at that moment, each in its own nested transaction, so one
 * failing operation discards only its own changes. store_write() returns
 * only after the shared transaction is durably committed (one sync for the
 * whole batch). Reads use store_read() and never wait for the writer.
 *
 * Records are versioned TLV; decoders reject anything malformed with
 * STORE_ECORRUPT rather than trusting lengths. Records handed out are
 * owned by the caller (free with the matching *_free); nothing points into
 * LMDB memory after a transaction ends.
 */
#ifndef PICOMDM_STORE_H
#define PICOMDM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "picomdm/message.h"

struct store;
struct store_txn;

/* Store errors are negative so that operations may return HTTP-ish
 * statuses (positive) through store_write() unchanged. */
enum store_err {
	STORE_OK = 0,
	STORE_ENOTFOUND = -1,
	STORE_EEXIST = -2,
	STORE_EFULL = -3,    /* the map is full and cannot grow */
	STORE_ECORRUPT = -4, /* a record does not decode */
	STORE_EINVAL = -5,   /* bad argument (key too long, ...) */
	STORE_EIO = -6,      /* any other LMDB or system error */
	STORE_ENOMEM = -7,
	STORE_EREADONLY = -8,
	STORE_EREADERS = -9  /* reader table full */
};
const char *store_strerror(int);

#define STORE_SCHEMA_VERSION 1

struct store_opts {
	size_t   map_size;    /* initial map size, bytes (default 64 MiB) */
	size_t   map_max;     /* the map grows up to this (default 16 GiB) */
	unsigned max_readers; /* default 126 */
	int      readonly;    /* open read-only (CLI inspection) */
	int      nosync;      /* tests and bench only: no fsync; NOT durable */
};

/*
 * Open (creating when absent and not readonly) the environment in dir.
 * Creates the sub-databases and checks the schema version. Returns 0 or a
 * store_err; *out is owned by the caller (store_close).
 */
int  store_open(const char *dir, const struct store_opts *, struct store **out);
void store_close(struct store *);

/* Operation run inside a transaction. Return 0 to keep its changes; any
 * other value discards them and is returned by store_write/store_read. */
typedef int (*store_op_fn)(struct store_txn *, void *arg);

/*
 * Run op in a durable write transaction. Without a writer thread the call
 * runs its own transaction. If the map fills, the map grows and op is run
 * again from the start (ops must reset their outputs on entry); when it
 * cannot grow, returns STORE_EFULL and nothing of op is kept.
 */
int store_write(struct store *, store_op_fn, void *arg);
/* Run op in a read-only transaction (a consistent snapshot). */
int store_read(struct store *, store_op_fn, void *arg);

/* Start / stop the group-commit writer thread (the responder does). */
int  store_writer_start(struct store *);
void store_writer_stop(struct store *);

/* Statistics of the writer: batches committed, operations in them. */
void store_writer_stats(struct store *, uint64_t *batches, uint64_t *ops);

/* ---- time and sequence ---- */

/* The time of this transaction (µs since the epoch), fixed at begin. */
uint64_t store_txn_now(struct store_txn *);
/* Next value of the store-wide sequence (monotonic, persisted). */
int store_seq_next(struct store_txn *, uint64_t *out);

/* ---- devices (device channel facts; key: device-channel ID) ---- */

struct store_device {
	char          *id;
	char          *serial;
	char          *udid;          /* NULL for User Enrollment */
	char          *enrollment_id; /* User Enrollment */
	char          *model;
	char          *model_name;
	char          *device_name;
	char          *product_name;
	char          *os_version;
	char          *build_version;
	char          *imei;
	char          *meid;
	char          *topic;         /* APNs topic it authenticated with */
	unsigned char  cert_hash[32]; /* current identity certificate */
	int            has_cert;
	unsigned char *unlock_token;
	size_t         unlock_token_len;
	uint64_t       unlock_token_at;
	unsigned char *bootstrap_token;
	size_t         bootstrap_token_len;
	uint64_t       bootstrap_token_at;
	uint64_t       created_at;
	uint64_t       authenticated_at;
};

int  store_device_get(struct store_txn *, const char *id,
     struct store_device **out);
int  store_device_put(struct store_txn *, const struct store_device *);
void store_device_free(struct store_device *);
/* Find a device ID by serial number; caller frees *id. */
int  store_device_by_serial(struct store_txn *, const char *serial,
     char **id);

/* ---- enrollments (device and user channels; key: enrollment ID) ---- */

struct store_enrollment {
	char            *id;
	char            *device_id;
	enum enroll_type type;
	char            *user_id;
	char            *user_short_name;
	char            *user_long_name;
	char            *topic;
	char            *push_magic;
	unsigned char   *token;
	size_t           token_len;
	int              enabled;
	int              awaiting_configuration;
	uint64_t         token_update_tally;
	uint64_t         created_at;
	uint64_t         last_seen;
	uint64_t         token_updated_at;
	uint64_t         checked_out_at;
};

int  store_enrollment_get(struct store_txn *, const char *id,
     struct store_enrollment **out);
/* Insert or replace; also maintains the device -> user-channel index. */
int  store_enrollment_put(struct store_txn *, const struct store_enrollment *);
void store_enrollment_free(struct store_enrollment *);
/* Update last_seen only (no-op when the enrollment does not exist). */
int  store_enrollment_touch(struct store_txn *, const char *id);

/* Iterate enrollments in ID order, starting after `after` (NULL = first).
 * fn returns 0 to go on, 1 to stop, <0 on error (returned). */
typedef int (*store_enrollment_cb)(const struct store_enrollment *, void *);
int store_enrollment_iter(struct store_txn *, const char *after,
    store_enrollment_cb, void *);
/* Iterate the user channels of a device (IDs only). */
typedef int (*store_id_cb)(const char *id, void *);
int store_user_channels(struct store_txn *, const char *device_id,
    store_id_cb, void *);

/* ---- certificate bindings ---- */

/* The device ID a certificate hash was ever bound to; caller frees. */
int store_cert_get(struct store_txn *, const unsigned char hash[32],
    char **device_id);
int store_cert_put(struct store_txn *, const unsigned char hash[32],
    const char *device_id);

/* ---- raw Apple messages (latest per enrollment and kind) ---- */

struct store_msg {
	char          *enrollment_id;
	enum msg_kind  kind;
	uint64_t       received_at;
	char          *topic; /* the APNs topic (service token) it came through */
	unsigned char *raw;
	size_t         raw_len;
};

int  store_msg_put(struct store_txn *, const char *enrollment_id,
     enum msg_kind, const char *topic, const void *raw, size_t len);
typedef int (*store_msg_cb)(const struct store_msg *, void *);
int  store_msg_iter(struct store_txn *, const char *enrollment_id,
     store_msg_cb, void *);
void store_msg_free(struct store_msg *);

/* ---- commands and queues ---- */

struct store_command {
	char          *uuid;
	char          *request_type;
	unsigned char *raw; /* the plist exactly as enqueued */
	size_t         raw_len;
	uint64_t       created_at;
};

/* Store a command; STORE_EEXIST when its CommandUUID is already known. */
int  store_command_put(struct store_txn *, const struct store_command *);
int  store_command_get(struct store_txn *, const char *uuid,
     struct store_command **out);
void store_command_free(struct store_command *);

/* One queued command of an enrollment. */
struct store_queue_item {
	char           *enrollment_id;
	char           *uuid;
	int             priority; /* 0..255, higher first */
	uint64_t        seq;      /* enqueue order */
	uint64_t        enqueued_at;
	uint64_t        expires_at; /* 0 = never */
	enum cmd_status status;     /* NONE or NOT_NOW while queued */
	uint64_t        not_now_count;
	uint64_t        sent_count;
	uint64_t        updated_at;
};

/* Queue a stored command for an enrollment (STORE_EEXIST if queued). */
int store_queue_push(struct store_txn *, const char *enrollment_id,
    const char *uuid, int priority, uint64_t expires_at);
/*
 * Find the next command to send: highest priority, then enqueue order,
 * among queued commands with no result; NotNow'd ones only when
 * skip_not_now is 0. Expired commands met on the way are removed and
 * recorded as expired. Returns 0 with *out (caller frees), or
 * STORE_ENOTFOUND when nothing is pending. Marks the item as sent.
 */
int store_queue_next(struct store_txn *, const char *enrollment_id,
    int skip_not_now, struct store_command **out);
/*
 * Record a device report for (enrollment, uuid): stores the result with
 * its raw bytes; NotNow keeps the command queued, any other status takes
 * it off the queue. An unknown or duplicate UUID is recorded as such
 * (*known = 0) and touches no queue entry.
 */
int store_result_put(struct store_txn *, const char *enrollment_id,
    const char *uuid, enum cmd_status, const void *raw, size_t len,
    int well_formed, int *known);
/* Remove every queued command of an enrollment (*count removed). */
int store_queue_clear(struct store_txn *, const char *enrollment_id,
    enum cmd_status why, size_t *count);
/* Remove one queued command; STORE_ENOTFOUND if it was not queued. */
int store_queue_cancel(struct store_txn *, const char *enrollment_id,
    const char *uuid);
typedef int (*store_queue_cb)(const struct store_queue_item *, void *);
int store_queue_iter(struct store_txn *, const char *enrollment_id,
    store_queue_cb, void *);
void store_queue_item_free(struct store_queue_item *);

/* One stored report. */
struct store_result {
	char           *enrollment_id;
	char           *uuid;
	uint64_t        seq;
	uint64_t        received_at;
	enum cmd_status status;
	int             known;       /* the UUID was queued for it */
	int             well_formed; /* passed Apple's response schema */
	unsigned char  *raw;
	size_t          raw_len;
};

/* Iterate an enrollment's results, newest first, skipping `skip`. */
typedef int (*store_result_cb)(const struct store_result *, void *);
int  store_result_iter(struct store_txn *, const char *enrollment_id,
     uint64_t before_seq, store_result_cb, void *);
void store_result_free(struct store_result *);

/* Where one command stands for each enrollment it was queued to. */
struct store_target {
	char           *enrollment_id;
	enum cmd_status status;     /* NONE (queued), NOT_NOW, a result, ... */
	uint64_t        updated_at;
	uint64_t        result_seq; /* 0 when no result */
};
typedef int (*store_target_cb)(const struct store_target *, void *);
/* Iterate the enrollments a command was queued to, in eid order. */
int store_command_targets(struct store_txn *, const char *uuid,
    store_target_cb, void *);
/* One result of an enrollment by its sequence number; caller frees. */
int store_result_get(struct store_txn *, const char *enrollment_id,
    uint64_t seq, struct store_result **out);

/*
 * Retention: remove results received before `before` (µs), then commands
 * that no queue holds any more and that were created before it, with their
 * per-enrollment status. At most `limit` records go per call (0: no limit)
 * so a long prune can run in several short transactions; *removed counts
 * what went. Returns 0 or a store_err.
 */
struct store_prune_count {
	uint64_t results;
	uint64_t commands;
	uint64_t targets;
};
int store_prune(struct store_txn *, uint64_t before, uint64_t limit,
    struct store_prune_count *removed);

/* ---- inspection (picomdmctl) ---- */

struct store_dbi_stat {
	const char *name;
	uint64_t    entries;
	uint64_t    pages;
	uint32_t    depth;
};
/* Fill up to n entries; returns the number of sub-databases. */
int store_stat(struct store_txn *, struct store_dbi_stat *, size_t n);

#endif
