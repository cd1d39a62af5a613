/*
 * store_int.h - internals shared by the store_*.c files: the environment,
 * the sub-databases, key building and the record (TLV) codec. Nothing
 * outside module/store*.c includes this.
 */
#ifndef PICOMDM_STORE_INT_H
#define PICOMDM_STORE_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "picomdm/store.h"
#include "picomdm/util.h"

/*
 * Sub-databases. Enrollments get a compact internal number (eid) when
 * first stored; composite keys use it, so no key depends on a separator
 * an enrollment ID could contain, and keys stay far below LMDB's limit.
 */
enum store_dbi {
	DBI_META = 0, /* "schema_version", "seq", "eid" -> u64 */
	DBI_DEVICE,   /* device-channel ID -> device record */
	DBI_ENROLL,   /* enrollment ID -> enrollment record (holds eid) */
	DBI_EID,      /* eid -> enrollment ID */
	DBI_UCHAN,    /* device eid . user eid -> "" */
	DBI_SERIAL,   /* serial -> device ID */
	DBI_CERT,     /* SHA-256 of a certificate -> device ID */
	DBI_MSG,      /* eid . kind -> raw message record */
	DBI_CMD,      /* CommandUUID -> command record */
	DBI_QUEUE,    /* eid . (255 - priority) . seq -> queue record */
	DBI_QPOS,     /* eid . uuid -> (255 - priority) . seq */
	DBI_RESULT,   /* seq . eid -> result record (store format 3; eid .
		       * seq before: results_upgrade) */
	DBI_CMDQ,     /* uuid . eid -> command-per-enrollment status record */
	DBI_PUSHCERT, /* APNs topic -> push certificate record */
	DBI_MACHINEINFO, /* UDID -> MachineInfo record (store_enroll.c) */
	DBI_ENRTOKEN, /* SHA-256 of a token -> enrollment token record */
	DBI_ADETOKEN, /* ADE token name -> ADE token record (store_ade.c) */
	DBI_ADEDEVICE, /* serial -> ADE device record (store_ade.c) */
	DBI_EVENT,    /* seq -> webhook event record (store_event.c) */
	DBI_VPPTOKEN, /* VPP token name -> content token record (store_vpp.c) */
	DBI_VPPASSET, /* token . adamId . pricingParam -> asset record */
	DBI_VPPASSIGN, /* token . "device"|"user" . serial|clientUserId .
			* adamId -> assignment record */
	DBI_VPPUSER,  /* token . clientUserId -> user record */
	DBI_PUSHQ,    /* eid -> push outbox record (store_push.c) */
	DBI_PUSHSTATE, /* eid -> push state record (store_push.c) */
	DBI_VPPMETA,  /* token . adamId -> app metadata record
		       * (store_vpp_meta.c) */
	DBI_VPPEVENT, /* VPP token . eventId -> write event record
		       * (store_vpp_event.c) */
	DBI_RESULTIX, /* eid . seq -> "": an enrollment's results, in
		       * order (store format 3) */
	DBI__MAX
};

extern const char *const store_dbi_names[DBI__MAX];

struct store_job;

struct store {
	MDB_env         *env;
	MDB_dbi          dbi[DBI__MAX];
	size_t           map_size;
	size_t           map_max;
	int              readonly;
	uint64_t         format; /* STORE_SCHEMA_VERSION once a read-write
				  * open has upgraded; a read-only open of
				  * an older store sees that store's */
	pthread_rwlock_t resize_lock; /* read: any txn; write: resizing */

	/* group-commit writer */
	pthread_mutex_t   mu;
	pthread_cond_t    cv_work;
	pthread_cond_t    cv_done;
	struct store_job *head, *tail;
	size_t            queued;     /* jobs from head to tail */
	unsigned          commit_delay; /* us; store_opts */
	int               reading;    /* requests being read (atomic) */
	int               gathering;  /* the writer waits for them (atomic) */
	int               running;
	int               stop;
	pthread_t         thread;
	void            (*batch_done)(void); /* store_set_batch_done */
	uint64_t          batches;
	uint64_t          ops;
	/* commit health (store_health_get), atomics */
	uint64_t          commit_failures;
	uint64_t          commit_nospc;
	uint64_t          commit_disk;
	int               last_error;
	uint64_t          last_error_at;
};

struct store_txn {
	struct store *s;
	MDB_txn      *txn;
	uint64_t      now;
	int           rdonly;
	/* A purge's count in a read transaction (store_purge.c): db_delv,
	 * db_del_prefix and db_visit count what they would delete and
	 * delete nothing. */
	int           count_only;
};

int store_rc(int mdb_rc); /* LMDB rc -> store_err */

/* ---- keys ---- */

#define KEY_MAX STORE_KEY_MAX

struct key {
	unsigned char b[KEY_MAX];
	size_t        len;
	int           overflow;
};

void key_init(struct key *);
void key_u8(struct key *, unsigned);
void key_u64(struct key *, uint64_t);
/* Length-prefixed (2 bytes, big-endian) string. */
void key_str(struct key *, const char *);
/* Raw bytes, no length (only as the last component). */
void key_raw(struct key *, const void *, size_t);
uint64_t key_get_u64(const unsigned char *);

/* get/put/del by key in a sub-database; values are borrowed until the
 * transaction ends. */
int db_get(struct store_txn *, enum store_dbi, const struct key *,
    MDB_val *out);
int db_put(struct store_txn *, enum store_dbi, const struct key *,
    const void *, size_t, unsigned flags);
int db_del(struct store_txn *, enum store_dbi, const struct key *);

/*
 * Call fn(t, key, value, arg) for every entry of d whose key starts with
 * the plen bytes of prefix and is klen bytes long (0: any length), in key
 * order. fn returns 0 to go on, 1 to stop (not an error) or a store_err,
 * which is returned. fn must not write to d.
 */
typedef int (*db_each_fn)(struct store_txn *, const MDB_val *,
    const MDB_val *, void *);
int db_prefix_each(struct store_txn *, enum store_dbi, const void *prefix,
    size_t plen, size_t klen, db_each_fn, void *arg);

/* ---- records: 'p' kind version, then fields: tag(1) len(4 BE) bytes ---- */

enum rec_kind {
	REC_DEVICE = 1,
	REC_ENROLL,
	REC_MSG,
	REC_CMD,
	REC_QUEUE,
	REC_RESULT,
	REC_CMDQ,
	REC_PUSHCERT,
	REC_MACHINEINFO,
	REC_ENRTOKEN,
	REC_ADETOKEN,
	REC_ADEDEVICE,
	REC_EVENT,
	REC_VPPTOKEN,
	REC_VPPASSET,
	REC_VPPASSIGN,
	REC_VPPUSER,
	REC_PUSHQ,
	REC_PUSHSTATE,
	REC_VPPMETA,
	REC_VPPEVENT,
	REC__MAX /* every kind has its entry in store_kinds.c */
};

#define REC_VERSION 1

struct rec_w {
	struct buf b;
	int        err;
};
void rec_begin(struct rec_w *, enum rec_kind);
void rec_str(struct rec_w *, unsigned tag, const char *); /* NULL: omitted */
void rec_bytes(struct rec_w *, unsigned tag, const void *, size_t);
void rec_u64(struct rec_w *, unsigned tag, uint64_t);

struct rec_r {
	const unsigned char *p;
	size_t               len;
	size_t               off;
};
/* 0, or STORE_ECORRUPT when the header is not of this kind. */
int rec_open(struct rec_r *, const MDB_val *, enum rec_kind);
/* 1 with the next field, 0 at the end, STORE_ECORRUPT on a bad length. */
int rec_next(struct rec_r *, unsigned *tag, const unsigned char **p,
    size_t *n);
/* Field tag of a stored record of this kind, read in place: 1 with *p and
 * *n, 0 when the record has none, STORE_ECORRUPT (a bad header or
 * length). */
int rec_field(const MDB_val *, enum rec_kind, unsigned tag,
    const unsigned char **p, size_t *n);
/* Field decoders: 0 or STORE_ECORRUPT / STORE_ENOMEM. */
int rec_dup_str(const unsigned char *, size_t, char **out);
int rec_dup_bytes(const unsigned char *, size_t, unsigned char **out,
    size_t *outlen);
int rec_get_u64(const unsigned char *, size_t, uint64_t *out);

/*
 * Table-driven codec for flat structs: one descriptor per field. F_HASH32
 * is a 32-byte array at off whose presence flag (int) is at lenoff; F_BYTES
 * keeps its length (size_t) at lenoff.
 */
enum fdesc_type { F_STR, F_BYTES, F_U64, F_INT, F_HASH32 };
struct fdesc {
	unsigned        tag;
	enum fdesc_type type;
	size_t          off;
	size_t          lenoff;
	int             required; /* a record without it does not decode */
};
void rec_encode(struct rec_w *, const struct fdesc *, size_t, const void *);
/* Decode fields into obj (zeroed by the caller); unknown tags skipped and,
 * when extra is non-NULL, passed to it. A record missing a required field
 * is STORE_ECORRUPT. 0 or a store_err. At most 64 descriptors. */
typedef int (*rec_extra_fn)(unsigned tag, const unsigned char *, size_t,
    void *);
int rec_decode(const MDB_val *, enum rec_kind, const struct fdesc *, size_t,
    void *obj, rec_extra_fn extra, void *extra_arg);
/* Free the F_STR and F_BYTES members of obj (secrets wiped). */
void rec_free_fields(const struct fdesc *, size_t, void *obj);
/* The writer's table of a record kind (store_device.c, store_queue.c);
 * NULL when the kind is not that file's. test-admin holds each to the
 * kind's field table in the registry (store_kinds.c): same tags, types
 * that agree. */
const struct fdesc *store_device_fdesc(enum rec_kind, size_t *n);
const struct fdesc *store_queue_fdesc(enum rec_kind, size_t *n);
const struct fdesc *store_ade_fdesc(enum rec_kind, size_t *n);
const struct fdesc *store_event_fdesc(enum rec_kind, size_t *n);

/* ---- enrollments' internal numbers ---- */

/* Allocate the next eid (persisted counter in meta). */
int store_eid_next(struct store_txn *, uint64_t *out);

/* eid of an enrollment ID; STORE_ENOTFOUND if none. */
int enroll_eid(struct store_txn *, const char *id, uint64_t *eid);
/* The enrollment ID of an eid; caller frees. */
int enroll_id_of(struct store_txn *, uint64_t eid, char **id);

/*
 * The enabled / disabled enrollment counters in meta (store_counts.c).
 * enroll_count_add moves one counter by delta when the counters are kept;
 * enroll_count_of says whether a raw enrollment record is enabled (the
 * counter it is in); enroll_count_records counts the records;
 * enroll_count_reset sets both counters from the records;
 * enroll_count_ensure, at a writable open, counts once when they are not
 * there yet.
 */
int enroll_count_add(struct store_txn *, int enabled, int64_t delta);
int enroll_count_of(const MDB_val *);
int enroll_count_records(struct store_txn *, uint64_t *disabled,
    uint64_t *enabled);
int enroll_count_reset(struct store_txn *);
int enroll_count_ensure(struct store *);

/*
 * Queue positions (store_queue.c): a store made before they moved into
 * the DBI_CMDQ records keeps them in DBI_QPOS. queue_pos_upgrade, at a
 * writable open, moves them over and empties DBI_QPOS, in a transaction
 * of its own.
 */
int queue_pos_upgrade(struct store *);
/*
 * Results (store_queue.c): store format 3 keys them seq . eid, so that a
 * report appends at the end of DBI_RESULT, with DBI_RESULTIX (eid . seq)
 * to find an enrollment's; formats 1 and 2 keyed them eid . seq.
 * results_upgrade, at a writable open of an older store, rekeys them and
 * records format 3 in the same transaction (an interrupted upgrade leaves
 * the old store, never half of each). A read-only open of an older store
 * reads them as they are (s->format).
 */
int results_upgrade(struct store *);
/* Double the map (up to map_max). 0, or STORE_EFULL when at the limit
 * (store.c). */
int store_grow(struct store *);
/* Record this build's store format in t's meta (store.c). */
int store_schema_put(struct store_txn *);
/* Call fn with each DBI_RESULT entry of enrollment eid, oldest first, in
 * either layout; fn returns 0 to go on, anything else stops the walk and
 * is returned. */
int result_each_of(struct store_txn *, uint64_t eid, db_each_fn fn,
    void *arg);
/* out = the 16-byte key k with its two numbers swapped: a DBI_RESULT
 * key (seq . eid) to its DBI_RESULTIX key (eid . seq) and back. */
void result_key_swap(const void *k, unsigned char out[16]);
/* *eid = the enrollment number of DBI_RESULT key k, in t's layout;
 * 0, or -1 when k is not a result's key. */
int result_key_eid(const struct store_txn *, const MDB_val *k,
    uint64_t *eid);
/* The first store format that keys results seq . eid. */
#define STORE_FORMAT_RESULT_SEQ 3
/* A queued command's position for eid, as the last nine bytes of its
 * DBI_QUEUE key: 1 with pos, 0 when it has none, <0 on error. */
int queue_pos_get(struct store_txn *, const char *uuid, uint64_t eid,
    unsigned char pos[9]);
/* Set (pos) or drop (NULL) it, making the record if need be (check
 * --repair). */
int queue_pos_set(struct store_txn *, const char *uuid, uint64_t eid,
    const unsigned char *pos);

/*
 * What the Apps and Books kinds (store_vpp.c, store_vpp_event.c) share:
 * a time as the dump writes it (RFC 3339 UTC with microseconds; NULL out
 * of memory), and a record put from its JSON form (val_from_json), the
 * encoding wiped; STORE_EINVAL for a bad key or record.
 */
struct json_t;
struct json_t *vpp_time_json(uint64_t us);
/*
 * Remove what a VPP token owns (OWN_VPP_TOKEN in the registry): its
 * record, keyed by its name, and every entry whose key starts with the
 * name as its first length-prefixed string (assets, assignments, users,
 * app metadata, write events); removed[d] counts those of sub-database
 * d (DBI__MAX of them). No device goes with them: a licence is Apple's
 * record of the token, not the device's. The one path of purge
 * --vpp-token and of picomdm-vpp token remove --purge (store_vpp.c).
 */
int vpp_token_drop(struct store_txn *, const char *name, uint64_t *removed);
int vpp_put_json(struct store_txn *, enum store_dbi, const struct key *,
    const struct json_t *rec);

#endif
