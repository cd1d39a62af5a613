/*
 * message.h - validated device messages (check-ins and command reports).
 *
 * validate.c turns a request body into a struct mdm_msg only after the
 * depth scan, the XML parse and a check of every key against the schema
 * tables (type, required-ness, length). Handlers read values with the
 * msg_* getters, which can only see keys that passed those checks.
 */
#ifndef PICOMDM_MESSAGE_H
#define PICOMDM_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <plist/plist.h>

enum msg_kind {
	MSG_AUTHENTICATE = 0,
	MSG_TOKEN_UPDATE,
	MSG_CHECK_OUT,
	MSG_USER_AUTHENTICATE,
	MSG_SET_BOOTSTRAP_TOKEN,
	MSG_GET_BOOTSTRAP_TOKEN,
	MSG_DECLARATIVE_MANAGEMENT,
	MSG_GET_TOKEN,
	MSG_CONNECT, /* a command report (Status, CommandUUID, ...) */
	MSG__MAX
};

/* Enrollment types, as NanoMDM numbers them (ARCHITECTURE.md section 3). */
enum enroll_type {
	ENROLL_NONE = 0,
	ENROLL_DEVICE,      /* UDID */
	ENROLL_USER,        /* UDID + UserID */
	ENROLL_UE_DEVICE,   /* EnrollmentID */
	ENROLL_UE_USER,     /* EnrollmentID + EnrollmentUserID */
	ENROLL_SHARED_IPAD, /* UDID + all-F UserID + UserShortName */
	ENROLL__MAX
};

enum cmd_status {
	CMD_STATUS_NONE = 0, /* queued, no report yet */
	CMD_STATUS_IDLE,
	CMD_STATUS_ACKNOWLEDGED,
	CMD_STATUS_ERROR,
	CMD_STATUS_FORMAT_ERROR,
	CMD_STATUS_NOT_NOW,
	CMD_STATUS_EXPIRED,   /* never sent: its expiry passed */
	CMD_STATUS_CANCELLED, /* removed by an operator */
	CMD_STATUS__MAX
};

/* Longest enrollment ID we accept (device ID + ":" + user part); it is
 * an LMDB key, and LMDB keys stop at 511 bytes. */
#define MSG_ID_MAX 481
/* Longest identity key (UDID, EnrollmentID, UserID, short name, ...). */
#define MSG_IDENT_MAX 240
/* Longest Topic a check-in may carry: no enrollment's is longer. */
#define MSG_TOPIC_MAX 255

struct mdm_msg {
	enum msg_kind    kind;
	enum enroll_type type;
	int              user_channel;        /* 1 on a user channel */
	char             id[MSG_ID_MAX + 1];  /* the enrollment ID */
	char             device_id[MSG_ID_MAX + 1]; /* device-channel ID */
	enum cmd_status  status;              /* MSG_CONNECT only */
	const char      *command_uuid;        /* MSG_CONNECT; NULL for Idle */
	plist_t          root;                /* owned */
	int              well_formed;         /* connect: 0 = kept raw only */
	const char      *reason;              /* why not well-formed */
};

/*
 * Derive the enrollment IDs from the identity keys of a parsed dict (UDID
 * wins over EnrollmentID; user channel by UserID / EnrollmentUserID;
 * Shared iPad by the all-F UserID and UserShortName). Fills type, id,
 * device_id and user_channel. Returns 0, or -1 with *reason set.
 */
int msg_resolve_ids(plist_t, struct mdm_msg *, const char **reason);

/*
 * Validate a check-in body. Returns 0 and a message the caller frees with
 * msg_free(), or an HTTP-ish status (400; 500 when memory runs out) with
 * *reason set (a static string naming the key, or one formatted into a
 * per-thread buffer that stays valid until this thread's next msg_*
 * call; reasons never echo values from the body).
 */
int msg_parse_checkin(const char *, size_t, struct mdm_msg **,
    const char **reason);

/*
 * Validate a command report. Identity keys and Status must be right (else
 * 400); command-specific keys that do not match Apple's response schema
 * leave the message usable with well_formed = 0, so the raw result is still
 * stored and the queue moves on. Then msg->reason (and *reason) is the
 * message's own copy, freed with it.
 */
int msg_parse_connect(const char *, size_t, struct mdm_msg **,
    const char **reason);

/*
 * An Acknowledged report against the response keys of its command's
 * RequestType (Apple's schema): a mismatch clears well_formed and sets
 * reason; nothing else changes.
 */
void msg_check_response(struct mdm_msg *, const char *request_type);
void msg_free(struct mdm_msg *);

const char *msg_kind_name(enum msg_kind);
const char *enroll_type_name(enum enroll_type);
const char *cmd_status_name(enum cmd_status);
int         cmd_status_parse(const char *); /* -1 if unknown */

/* Getters for validated keys; borrowed from msg->root. */
const char          *msg_str(const struct mdm_msg *, const char *key);
const unsigned char *msg_data(const struct mdm_msg *, const char *key,
    size_t *len);
int                  msg_bool(const struct mdm_msg *, const char *key,
                     int dflt);
plist_t              msg_node(const struct mdm_msg *, const char *key);

#endif
