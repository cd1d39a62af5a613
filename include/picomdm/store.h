/*
 * store.h - the only way into picomdm's state.
 *
 * One LMDB environment holds everything, in named sub-databases. No LMDB
 * type crosses this header, so a second backend can implement it later.
 *
 * Writes go through store_write(): the operation runs inside a write
 * transaction that the group-commit writer shares between every request
 * waiting at that moment; if one of them fails, the batch is run again
 * with each in its own nested transaction, so one failing operation
 * discards only its own changes. store_write() returns
 * only after the shared transaction is durably committed (one sync for the
 * whole batch). Reads use store_read() and never wait for the writer.
 *
 * Records are versioned TLV; decoders reject anything malformed with
 * STORE_ECORRUPT rather than trusting lengths, and so a record without
 * the field that names it (a device's or enrollment's ID, a command's
 * UUID, RequestType and plist, a queue entry's or result's UUID, a
 * result's or message's raw bytes, a message's enrollment ID). Other
 * string members may be NULL when the device never sent them. Records
 * handed out are owned by the caller (free with the matching *_free);
 * nothing points into LMDB memory after a transaction ends.
 */
#ifndef PICOMDM_STORE_H
#define PICOMDM_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "picomdm/catalogue.h"
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
	STORE_EREADERS = -9, /* reader table full */
	STORE_ENOSPC = -10,  /* the file system is full (ENOSPC, EDQUOT) */
	STORE_EDISK = -11    /* the disk failed a read or write (EIO) */
};
const char *store_strerror(int);

/*
 * The store's format, recorded in meta "schema_version". This build
 * writes STORE_SCHEMA_VERSION and reads back to STORE_SCHEMA_OLDEST,
 * upgrading at the first read-write open; a newer store is refused.
 *   1: queue positions in the qpos sub-database
 *   2: queue positions in the command's cmdq record (an older picomdm,
 *      which refuses anything but 1, would misread them)
 *   3: results keyed by the store-wide sequence, then the enrollment's
 *      number (each report appends to one end of the tree), and found
 *      per enrollment through result_index; 1 and 2 keyed them by the
 *      enrollment's number first
 */
#define STORE_SCHEMA_VERSION 3
#define STORE_SCHEMA_OLDEST  1

/* The longest key, LMDB's limit: nothing the store finds by key (a
 * serial number, a token's records) has a longer one. */
#define STORE_KEY_MAX 511

struct store_opts {
	size_t   map_size;    /* initial map size, bytes (default 64 MiB) */
	size_t   map_max;     /* the map grows up to this (default 16 GiB) */
	unsigned max_readers; /* default 126 */
	int      readonly;    /* open read-only (CLI inspection) */
	int      nosync;      /* tests and bench only: no fsync; NOT durable */
	unsigned commit_delay; /* us the writer may wait for requests being
				* read to join its batch (store_request_begin);
				* 0: commit at once */
};

/*
 * Open (creating when absent and not readonly) the environment in dir.
 * Creates the sub-databases and checks the schema version. Returns 0 or a
 * store_err; *out is owned by the caller (store_close).
 */
int  store_open(const char *dir, const struct store_opts *, struct store **out);

/*
 * The jobs only one process may do on a store at a time, each a byte of
 * the store's data.mdb locked with lock_slot() (util.h) before the store
 * is opened: two picomdm-notify would send every push and webhook twice,
 * two ADE syncs would fetch every page twice.
 */
enum store_role {
	STORE_ROLE_NOTIFY = 0, /* picomdm-notify: pushes and webhooks */
	STORE_ROLE_DEP_SYNC,   /* picomdm-dep sync */
	/*
	 * picomdm-vpp talking to Apple for one content token: bytes
	 * STORE_ROLE_VPP_TOKEN + (a hash of the token's name mod
	 * STORE_ROLE_VPP_SLOTS). Two runs on one token at once would each
	 * pace to the service's limit and together exceed it. Two tokens
	 * sharing a byte only wait for each other.
	 */
	STORE_ROLE_VPP_TOKEN = 16,
};
#define STORE_ROLE_VPP_SLOTS 1024
void store_close(struct store *);

/* Operation run inside a transaction. Return 0 to keep its changes; any
 * other value discards them and is returned by store_write/store_read. */
typedef int (*store_op_fn)(struct store_txn *, void *arg);

/*
 * Run op in a durable write transaction. Without a writer thread the call
 * runs its own transaction. If the map fills, the map grows and op is run
 * again from the start; when it cannot grow, returns STORE_EFULL and
 * nothing of op is kept. An op is also run again when another op of the
 * same group commit failed (the batch is then rerun with each op in a
 * nested transaction): ops must reset their outputs on entry.
 */
int store_write(struct store *, store_op_fn, void *arg);
/*
 * Queue op for the writer's next group commit and return at once.
 * done(rc, done_arg) is called with what store_write() would have
 * returned, once the commit is durable (or has failed): from the writer
 * thread, so it must be quick and must not block or call store_write();
 * without a writer thread, before store_submit() returns. Returns 0, or
 * STORE_ENOMEM / STORE_EREADONLY without calling done.
 */
typedef void (*store_done_fn)(int rc, void *done_arg);
int store_submit(struct store *, store_op_fn, void *arg, store_done_fn,
    void *done_arg);
/*
 * fn() is called after the done functions of each group commit have all
 * been called, in the thread that called them (the writer, or the
 * store_submit() caller without a writer thread): a caller that queues
 * what done hands it can pass the whole batch on at once. Set before the
 * writer starts; NULL (the default) calls nothing.
 */
void store_set_batch_done(struct store *, void (*fn)(void));
/* Run op in a read-only transaction (a consistent snapshot). */
int store_read(struct store *, store_op_fn, void *arg);

/*
 * A thread has begun reading a request that may bring a write, or is done
 * with it. While any request is being read, a writer with a commit_delay
 * that finds fewer than STORE_GATHER_MIN writes queued waits for them, up
 * to commit_delay us, so that one commit (two flushes) serves more
 * requests. The request stops counting when its thread hands its first
 * write over (store_submit, store_write) or calls store_request_end,
 * whichever comes first; both are no-ops for a thread not counted.
 */
#define STORE_GATHER_MIN 32
void store_request_begin(struct store *);
void store_request_end(struct store *);

/* Start / stop the group-commit writer thread (the responder does). Stop
 * first runs every queued operation and calls its completion. */
int  store_writer_start(struct store *);
void store_writer_stop(struct store *);

/* Statistics of the writer: batches committed, operations in them. */
void store_writer_stats(struct store *, uint64_t *batches, uint64_t *ops);

/*
 * Commit health, for /healthz and /metrics. Counters run from
 * store_open(); last_error is the store_err of the latest write commit
 * that failed, or 0 once a commit has succeeded after it (so a store
 * whose file system filled up and was then freed reads healthy again).
 */
struct store_health {
	uint64_t commit_failures; /* write commits that failed, any cause */
	uint64_t commit_nospc;    /* ... of them STORE_ENOSPC */
	uint64_t commit_disk;     /* ... of them STORE_EDISK */
	int      last_error;      /* 0, or the last failed commit's error */
	uint64_t last_error_at;   /* µs since the epoch, 0 when none */
};
void store_health_get(struct store *, struct store_health *out);
/* Is rc a store that cannot take writes now but may later (full map or
 * file system, disk error, read-only, reader table): 503, Retry-After. */
int  store_err_unavailable(int rc);

/* ---- time and sequence ---- */

/* The time of this transaction (µs since the epoch), fixed at begin. */
uint64_t store_txn_now(struct store_txn *);
/* Next value of the store-wide sequence (monotonic, persisted). */
int store_seq_next(struct store_txn *, uint64_t *out);

/* ---- push certificates (key: APNs topic; store_pushcert.c) ---- */

/* One topic's push certificate. key_pem is a secret: wiped on free,
 * never logged, shown in a dump only with --secrets. Times in µs. */
struct store_pushcert {
	char    *topic;
	char    *cert_pem;
	char    *key_pem;
	uint64_t not_after;
	uint64_t imported_at;
	char    *subject;
	char    *sha256; /* hex, of the DER certificate */
};

int  store_pushcert_get(struct store_txn *, const char *topic,
    struct store_pushcert **out);
/* Write (or replace) the certificate of c->topic, without any rule. */
int  store_pushcert_put(struct store_txn *, const struct store_pushcert *);
/* STORE_ENOTFOUND when the topic has none. */
int  store_pushcert_del(struct store_txn *, const char *topic);
void store_pushcert_free(struct store_pushcert *);
/* Every certificate in topic order; cb returns non-zero to stop (that
 * value is returned when < 0). */
typedef int (*store_pushcert_cb)(const struct store_pushcert *, void *);
int  store_pushcert_each(struct store_txn *, store_pushcert_cb, void *);

/*
 * Import with the rule of picomdmctl(8), "pushcert import": a topic's
 * certificate is replaced by one of the same topic; a certificate of a
 * new topic is refused (STORE_EEXIST, the old topic in *conflict, caller
 * frees) when the store holds exactly one certificate, of another topic,
 * and at least one enrollment record has that old topic (from its
 * TokenUpdate), unless force. Otherwise it is added beside the others.
 */
int store_pushcert_import(struct store_txn *, const struct store_pushcert *,
    int force, char **conflict);
/* Fill c from a parsed certificate (pushcert.h), imported at now (µs).
 * The strings are borrowed from pc: do not free c's members. */
struct pushcert;
void store_pushcert_from(struct store_pushcert *c, struct pushcert *pc,
    uint64_t now);

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
/* 0 with *match 1 when hash is the device's current certificate's. */
int  store_device_cert_is(struct store_txn *, const char *id,
     const unsigned char hash[32], int *match);
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
/* Update last_seen only (STORE_ENOTFOUND when there is no such enrollment);
 * cheaper than a get and a put. */
int  store_enrollment_touch(struct store_txn *, const char *id);
/* The same, and *eid the enrollment's number in the store: what the _eid
 * calls below take in place of its ID, in this transaction only (a
 * connect's report looks its enrollment up once, not three times). */
int  store_enrollment_touch_eid(struct store_txn *, const char *id,
     uint64_t *eid);

/* How many enrollments are enabled and disabled: two counters the writes
 * keep (store_counts.c), or a count of the records when a store opened
 * read-only has no counters yet. */
int store_enrollment_counts(struct store_txn *, uint64_t *enabled,
    uint64_t *disabled);

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
/* Only a command's RequestType, without copying its plist; caller frees. */
int  store_command_type(struct store_txn *, const char *uuid, char **out);
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
int store_queue_next_eid(struct store_txn *, uint64_t eid, int skip_not_now,
    struct store_command **out);
/*
 * Record a device report for (enrollment, uuid): stores the result with
 * its raw bytes; NotNow keeps the command queued, any other status takes
 * it off the queue. An unknown or duplicate UUID is recorded as such
 * (*known = 0) and touches no queue entry.
 */
int store_result_put(struct store_txn *, const char *enrollment_id,
    const char *uuid, enum cmd_status, const void *raw, size_t len,
    int well_formed, int *known);
int store_result_put_eid(struct store_txn *, uint64_t eid, const char *uuid,
    enum cmd_status, const void *raw, size_t len, int well_formed,
    int *known);
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

/* Iterate an enrollment's results, newest first, from before_seq (0: the
 * newest) down. */
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

/* ---- the catalogued fields of a device's or enrollment's records ---- */

/* How a field's value is to be read. */
enum store_field_form {
	SF_TEXT,   /* a string, not NUL-terminated */
	SF_BYTES,  /* opaque bytes */
	SF_HASH,   /* 32 bytes */
	SF_BOOL,   /* n == 0: false (a false flag is not stored) */
	SF_NUMBER, /* 8 bytes, big-endian */
	SF_TIME	   /* 8 bytes, big-endian, µs since the epoch */
};

/* One field with a row of the data catalogue, from one record. */
struct store_field {
	const char	     *kind;    /* the record's sub-database */
	enum inv_service      svc;     /* its row of the catalogue */
	const char	     *message; /* (the message the field came in) */
	const char	     *field;
	int		      secret; /* the row says so */
	enum store_field_form form;
	const unsigned char  *p;
	size_t		      n;
	uint64_t	      at;    /* when it was received; 0: not known */
	const char	     *topic; /* the record's push topic, or NULL */
};
typedef int (*store_field_fn)(const struct store_field *, void *arg);
/*
 * Every kind of the store's registry (store_kinds.c) whose records are
 * keyed by a device ID (enrollment 0), or by an enrollment ID or begin
 * with that enrollment's number (1): the fields of id's records that
 * have a row of the catalogue, kind by kind in the registry's order,
 * records in key order, fields in their table's order. 0, what fn
 * returned, or STORE_ECORRUPT for a record that does not decode.
 */
int store_owner_fields(struct store_txn *, int enrollment, const char *id,
    store_field_fn fn, void *arg);

/* ---- inspection (picomdmctl) ---- */

struct store_dbi_stat {
	const char *name;
	uint64_t    entries;
	uint64_t    pages;
	uint32_t    depth;
};
/* One entry per kind of the store's registry (store_kinds.c), in its
 * order; returns their number, or STORE_EINVAL when n is too few to hold
 * them all (32 holds every kind). */
int store_stat(struct store_txn *, struct store_dbi_stat *, size_t n);

/* ---- administration (picomdmctl stats, dump, restore, backup, check,
 * purge, prune; module/store_admin.c, store_dump.c, store_check.c,
 * store_purge.c, walking the registry of kinds in store_kinds.c) ---- */

/*
 * Long operations report progress through this (picomdmctl prints it on
 * a terminal): what is being done, how far, out of how much (0: unknown).
 */
struct store_progress {
	void (*fn)(void *arg, const char *what, uint64_t done, uint64_t total);
	void *arg;
};

/* The environment as a whole. */
struct store_env_stat {
	uint64_t map_size;    /* bytes mapped (the file may grow to this) */
	uint64_t page_size;
	uint64_t pages_used;  /* high-water mark: last page + 1 */
	uint64_t pages_free;  /* on the free list, reusable */
	uint64_t last_txn;    /* ID of the last committed transaction */
	uint32_t readers;     /* reader slots in use, this process included */
	uint32_t max_readers;
};
int store_env_stat(struct store_txn *, struct store_env_stat *);

/*
 * Write every record of every sub-database to out, in key order, from one
 * read transaction (a consistent snapshot; the responder may keep
 * serving). Default: JSON Lines, a header line then one decoded record
 * per line; raw Apple messages and commands as XML text (base64 when not
 * text); secrets as length and SHA-256 and raw messages with their
 * secret keys redacted, unless STORE_DUMP_SECRETS. STORE_DUMP_RAW writes
 * the mdb_dump format (VERSION=3, bytevalue, one section per
 * sub-database), which mdb_load reads; it holds every byte and so needs
 * STORE_DUMP_SECRETS too. The output is deterministic: the same store
 * dumps to the same bytes. *records counts what was written.
 */
#define STORE_DUMP_SECRETS 0x1
#define STORE_DUMP_RAW     0x2
int store_dump(struct store *, FILE *out, unsigned flags,
    const struct store_progress *, uint64_t *records);

/*
 * Load a dump (either format, detected) into this store in one durable
 * transaction. The store must be empty (a new one holds only its schema
 * version) unless STORE_RESTORE_FORCE, which first empties it in the same
 * transaction. A JSON dump made without secrets is refused (it would lose
 * push tokens). Returns 0, STORE_EEXIST (not empty), STORE_EINVAL (the
 * dump is malformed; err says where), or a store_err. err gets a
 * NUL-terminated message on failure.
 */
#define STORE_RESTORE_FORCE 0x1
int store_restore(struct store *, const void *dump, size_t len,
    unsigned flags, const struct store_progress *, uint64_t *records,
    char *err, size_t errlen);

/*
 * Consistent, compacting copy of the environment into dir (created when
 * absent; must not hold a data.mdb), made from a read transaction while
 * the store stays in use. The copy is a store of its own; its data.mdb is
 * 0600, as the store's is, and is removed when the copy fails.
 */
int store_backup(struct store *, const char *dir);

/* One problem found by store_check. */
struct store_problem {
	const char *db;   /* sub-database */
	const char *key;  /* the entry, printable */
	const char *what; /* what is wrong */
	int         repaired;
};
typedef int (*store_problem_cb)(const struct store_problem *, void *);
struct store_check_count {
	uint64_t records;  /* entries looked at */
	uint64_t problems;
	uint64_t repaired;
};
/*
 * Check that every index points at an existing record and every record
 * decodes: serial and certificate bindings to devices, enrollments and
 * their numbers both ways, user channels, queue entries and their
 * positions both ways, queue entries and per-command status to commands,
 * results and raw messages to enrollments, counters above every number
 * in use. With repair, in one write transaction, what is safe is fixed:
 * dangling index entries and orphans are dropped, missing index entries
 * added, counters raised; undecodable records are only reported. cb gets
 * every problem after the check (and any repair) finished.
 */
int store_check(struct store *, int repair, const struct store_progress *,
    store_problem_cb, void *, struct store_check_count *);

/* Resolve an enrollment ID, device ID or serial number to the device ID
 * (device channel); caller frees. STORE_ENOTFOUND when nothing matches. */
int store_device_resolve(struct store_txn *, const char *id_or_serial,
    char **device_id);

/* What a purge removed. */
#define STORE_REPORT_DB_MAX 32
struct store_purge_report {
	size_t      ndb;
	const char *db[STORE_REPORT_DB_MAX];      /* sub-database names */
	uint64_t    removed[STORE_REPORT_DB_MAX]; /* entries removed in each */
	char      **devices;                      /* device IDs removed */
	size_t      ndevices;
	char      **enrollments;                  /* enrollment IDs removed */
	size_t      nenrollments;
};
/* Free the ID lists and zero the report. */
void store_purge_report_free(struct store_purge_report *);

/*
 * The purges below, given a read transaction (store_read), change
 * nothing and report what they would remove, with the numbers the same
 * purge in a write transaction on that data gives: the count a
 * confirmation names, made without LMDB's write lock.
 */

/*
 * Remove everything about these devices in the caller's transaction: the
 * device channels and user channels, their numbers, raw messages, queue
 * entries and positions, results, per-command status, commands no other
 * enrollment references, device records, serial and certificate
 * bindings. The report is reset first (ops may be run again). Devices
 * that do not exist are skipped; STORE_ENOTFOUND when none existed.
 */
int store_purge_devices(struct store_txn *, const char *const *ids,
    size_t n, struct store_purge_report *);
/* The same for single enrollments (user channels); a device channel
 * given here takes its whole device. This is retention (picomdmctl
 * prune): what Apple's services say of a device, its ADE record and its
 * Apps and Books licences, stays; a purge by device removes them. */
int store_purge_enrollments(struct store_txn *, const char *const *ids,
    size_t n, struct store_purge_report *);

/*
 * Every stored record from Apple knows the service and token it came
 * through: check-ins their APNs topic; ADE and VPP records their token.
 * A topic: purge every device with any record that arrived through it,
 * and everything about it. A token: every record of that service that
 * came through it, and the token; no device. STORE_ENOTFOUND when no
 * record names the source (an unknown topic or token). An ADE token and
 * a VPP token may share a name: each is purged on its own.
 */
enum store_source {
	STORE_SOURCE_TOPIC = 0,  /* an APNs topic (push certificate) */
	STORE_SOURCE_TOKEN,      /* an ADE token, by name */
	STORE_SOURCE_VPP_TOKEN,  /* an Apps and Books (VPP) token, by name */
	STORE_SOURCE__MAX
};
int store_purge_source(struct store_txn *, enum store_source,
    const char *name, struct store_purge_report *);

/*
 * What else identifies the devices and enrollments of a purge report
 * (purge --verify), to be read before the purge commits: the fields the
 * registry marks as identifying (IMEI, MEID, UserID, PushMagic, the push
 * token as base64, MachineInfo's UDID and serial) of their records, but
 * values of fewer than 8 bytes and values a record that stays holds too.
 * fn gets each once (borrowed until it returns); it returns 0 to go on,
 * anything else stops and is returned.
 */
int store_purge_identifiers(struct store_txn *,
    const struct store_purge_report *, store_id_cb fn, void *);

/*
 * Look for byte strings in every key and value of every sub-database
 * (purge --verify). cb gets each hit with the index of the needle; the
 * key is borrowed until cb returns. Returns the number of hits, or a
 * store_err.
 */
typedef int (*store_hit_cb)(const char *db, const void *key, size_t keylen,
    size_t needle, void *);
long long store_scan(struct store_txn *, const void *const *needles,
    const size_t *lens, size_t n, store_hit_cb, void *);

/* IDs of enrollments checked out before `before` (µs), device channels
 * and user channels alike, in ID order (prune). */
int store_checked_out(struct store_txn *, uint64_t before, store_id_cb,
    void *);

#endif
