/*
 * store_kinds.h - the registry of what the store holds: one entry per
 * sub-database, in the order of enum store_dbi, saying how its keys and
 * values are laid out and coded, which fields its records have (tag,
 * name, type, secret or not through their row of the data catalogue),
 * which source the data came through, what owns an entry for purge, and
 * how check verifies it. Dump, restore, check and repair, purge (by
 * device, enrollment, topic, token), the proof scan, stats and inventory
 * all walk store_kinds[]; none keeps a list of kinds of its own.
 *
 * Adding a kind: give it a sub-database in store_int.h (enum store_dbi,
 * and its name in store_dbi_names in store.c) and, for records, an enum
 * rec_kind, with the writer's field table handed out by its file's
 * *_fdesc function (store_int.h); then one entry in store_kinds[]
 * (store_kinds.c) with its field table (each field either a catalogue
 * row or CAT_OWN, picomdm's own bookkeeping; a catalogued one says how
 * the inventory shows it: under which message when its row is one of
 * every message ("*"), and which A_TIME field says when it came), its
 * key and value codec, its purge owner and its check pass, and the check
 * of one entry in store_check.c. test-admin fails while a codec, a
 * catalogue row, the purge owner or the check is missing, while a
 * catalogued field does not show in the inventory, and while a writer's
 * table it is handed disagrees with the registry's. See
 * ARCHITECTURE.md, "The store and its registry".
 */
#ifndef PICOMDM_STORE_KINDS_H
#define PICOMDM_STORE_KINDS_H

#include <stddef.h>

#include "picomdm/catalogue.h"
#include "picomdm/store.h"
#include "store_int.h"

/* How a record field is shown in a dump. */
enum afield_type {
	A_STR,	  /* text */
	A_BYTES,  /* opaque bytes: {"b64": ...} */
	A_PLIST,  /* raw plist: its XML text, {"b64": ...} when not text */
	A_U64,	  /* a number */
	A_TIME,	  /* µs since the epoch: RFC 3339 with microseconds */
	A_BOOL,	  /* 0 / 1 */
	A_ETYPE,  /* enum enroll_type by name */
	A_KIND,	  /* enum msg_kind by name */
	A_STATUS, /* enum cmd_status by name */
	A_HASH	  /* 32 bytes: hex */
};

/* Where a field's data comes from: a row of the catalogue (which says
 * whether it is a secret) or picomdm's own bookkeeping. 0 is neither, so
 * a field added without saying fails test-admin. */
enum afield_cat {
	CAT_UNSET = 0,
	CAT_ROW, /* svc, message, field name the catalogue row */
	CAT_OWN	 /* made by picomdm: times, counters, states, IDs */
};

struct afield {
	unsigned	 tag;
	const char	*name;
	enum afield_type type;
	enum afield_cat	 cat;
	enum inv_service svc; /* the catalogue row, when CAT_ROW */
	const char	*message;
	const char	*field;
	/* How the inventory (store_fields.c, inventory.c) shows a CAT_ROW
	 * field; every member 0 by default. */
	const char *inv_message; /* the message shown for a row of every
				  * message ("*"); NULL: message */
	unsigned    at_tag;	 /* the A_TIME field saying when it was
				  * received; 0: none */
	unsigned    at_or_tag;	 /* the one used when at_tag's is 0 */
	unsigned    flags;	 /* AF_KEY */
};

/* The field is the record's key: the inventory shows it as the device or
 * enrollment ID, not as a field. */
#define AF_KEY 0x1
/* The field identifies the device or enrollment it belongs to (IMEI,
 * UserID, PushMagic, ...): purge --verify looks for it afterwards
 * (store_purge_identifiers). */
#define AF_IDENT 0x2

/* How a key is laid out (its JSON form in brackets). */
enum kind_key {
	KK_UNSET = 0,
	KK_TEXT,	 /* bytes of a string: "id" */
	KK_U64,		 /* a big-endian number: n */
	KK_U64_U64,	 /* two numbers: [n, n] */
	KK_HASH,	 /* 32 bytes: "hex" */
	KK_U64_MSGKIND,	 /* eid . message kind: [eid, "kind"] */
	KK_U64_PRIO_U64, /* eid . (255 - priority) . seq: [eid, prio, seq] */
	KK_U64_TEXT,	 /* eid . string: [eid, "uuid"] */
	KK_TEXT_U64,	 /* length-prefixed string . eid: ["uuid", eid] */
	KK_STRS		 /* length-prefixed strings: ["token", "a", ...] */
};

/* How a value is laid out. */
enum kind_val {
	KV_UNSET = 0,
	KV_U64,	     /* a big-endian number */
	KV_TEXT,     /* the bytes of a string */
	KV_PRIO_SEQ, /* (255 - priority) . seq: [prio, seq] */
	KV_RECORD    /* a TLV record of kind rec (store_rec.c) */
};

/*
 * What an entry belongs to, which decides what a purge removes with it
 * (store_purge.c, purge_run: one phase per owner).
 */
enum kind_owner {
	OWN_UNSET = 0,
	OWN_STORE,	/* the store's own counters: never purged */
	OWN_DEVICE,	/* keyed by the device ID */
	OWN_DEVICE_VAL, /* a binding whose value is the device ID */
	OWN_ENROLL,	/* keyed by the enrollment ID */
	OWN_EID,	/* key starts with the enrollment's number */
	OWN_EID_PAIR,	/* key is two numbers, either one the owner's */
	OWN_EID_SUFFIX, /* key ends with the enrollment's number */
	OWN_EID_INDEX,	/* key is seq . eid, an enrollment's entries listed
			 * through its range of DBI_RESULTIX (results:
			 * result_each_of); purge walks that, and finds
			 * by the eid half of the key those the index
			 * lacks (purge_unindexed_possible) */
	OWN_COMMAND,	/* shared by enrollments: removed with the last
			 * entry that refers to it */
	OWN_TOPIC,	/* keyed by an APNs topic: removed by purge --topic
			 * of that topic only (source SRC_SELF) */
	OWN_EXPIRY,	/* belongs to no device: removed by prune once
			 * expired or used (enrollment tokens) */
	OWN_SERIAL,	/* keyed by a serial number (ADE device records):
			 * removed with the device of that serial, and by
			 * purge --token of the token it came through */
	OWN_TOKEN,	/* keyed by a service token's name (ADE tokens):
			 * removed by purge --token of that name */
	OWN_ENROLL_TAG,	/* keyed by a sequence; record field owner_tag
			 * holds the owning enrollment's ID (webhook
			 * events) */
	OWN_VPP_TOKEN	/* keyed by a VPP token's name (KK_TEXT) or starting
			 * with it (KK_STRS): removed by purge --token of
			 * that name, with no device (store_vpp.c) */
};

/* What an entry refers to, beyond its owner (purge notes the commands
 * of what it removes; check verifies the reference). */
enum kind_ref {
	REF_NONE = 0,
	REF_CMD_FIELD, /* a CommandUUID in record field ref_tag */
	REF_CMD_KEY    /* a CommandUUID in the key's string part */
};

/* How the source of a record is found (purge by topic or token): the
 * record matches when field src_tag equals the name, and it belongs
 * to the device that src_owner says. */
enum source_owner {
	SRC_NONE = 0,
	SRC_KEY,	/* the key is the device ID */
	SRC_DEVICE_TAG, /* field src_owner_tag holds the device ID */
	SRC_ENROLL_TAG,	/* field src_owner_tag holds an enrollment ID */
	SRC_SELF	/* the entry itself is removed, no device with it */
};

typedef int (*visit_fn)(
    struct store_txn *, const MDB_val *k, const MDB_val *v, void *arg);

struct store_kind {
	enum store_dbi	     dbi;
	enum kind_key	     key;
	enum kind_val	     val;
	enum rec_kind	     rec; /* KV_RECORD: the record kind */
	const struct afield *f;	  /* KV_RECORD: its fields */
	size_t		     nf;
	enum inv_service     plist_svc; /* catalogue of its raw plists */
	enum kind_owner	     owner;
	enum kind_ref	     ref;
	unsigned	     ref_tag;
	unsigned	     owner_tag; /* OWN_ENROLL_TAG: the field */
	/* Purge by source: STORE_SOURCE__MAX when none. */
	enum store_source src;
	unsigned	  src_tag;
	enum source_owner src_owner;
	unsigned	  src_owner_tag;
	/* Check: the pass it runs in (passes run in that order, each
	 * relying on the ones before); the check of one entry is
	 * store_check.c's for this sub-database. 0 only for OWN_STORE:
	 * the counters are checked against what the passes saw, after
	 * them. */
	int check_pass;
};

/* One entry per sub-database, store_kinds[d].dbi == d. */
extern const struct store_kind store_kinds[DBI__MAX];

/* The entry of a record kind; NULL when there is none. */
const struct store_kind *store_kind_of_rec(enum rec_kind);
/* The name of a kind's sub-database (as in a dump and in stats). */
const char *store_kind_name(const struct store_kind *);
/* The sub-database of a name (as in a dump); -1 when none. */
int store_kind_by_name(const char *);
/* Is this field a secret? Its catalogue row decides. */
int afield_secret(const struct afield *);

/* Tags the store-wide operations read (as written by store_device.c and
 * store_queue.c). */
#define TAG_DEVICE_ID	      1
#define TAG_DEVICE_SERIAL     2
#define TAG_DEVICE_UDID	      3
#define TAG_DEVICE_EID	      4
#define TAG_DEVICE_TOPIC      13
#define TAG_DEVICE_CERT	      14
#define TAG_ENROLL_ID	      1
#define TAG_ENROLL_DEVICE     2
#define TAG_ENROLL_ENABLED    10
#define TAG_ENROLL_TOPIC      7
#define TAG_ENROLL_CHECKEDOUT 16
#define TAG_ENROLL_EID	      100
#define TAG_MI_SERIAL	      2 /* MachineInfo (machineinfo_af) */
#define TAG_MSG_ENROLL	      1
#define TAG_MSG_KIND	      2
#define TAG_MSG_TOPIC	      4
#define TAG_QUEUE_UUID	      1
#define TAG_RESULT_UUID	      1
#define TAG_CMDQ_SEQ	      3
#define TAG_PUSHCERT_TOPIC    1
#define TAG_PUSHCERT_CERT     2
#define TAG_PUSHCERT_KEY      3
#define TAG_PUSHCERT_NOTAFTER 4
#define TAG_MI_UDID	      1
#define TAG_MI_SERIAL	      2
#define TAG_ADETOKEN_NAME     1
#define TAG_ADEDEV_SERIAL     1
#define TAG_ADEDEV_TOKEN      16
#define TAG_EVENT_ENROLL      1
#define TAG_VPPTOKEN_NAME     1

/* Does store_check.c have the check of one entry of this sub-database?
 * (test-admin: every kind with a pass has one.) */
int store_check_has(enum store_dbi);

#endif
