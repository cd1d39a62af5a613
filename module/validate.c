/*
 * validate.c - turn a device's request body into a struct mdm_msg.
 *
 * Order: plist_safe_parse() (depth scan, XML only, root dict), then every
 * key the schema tables know is checked for type and length, recursively
 * where Apple describes the nested keys; unknown keys are tolerated (they
 * stay in the raw body). Then the rules the tables cannot express: which
 * keys a message needs on its channel, and the enrollment IDs
 * (ARCHITECTURE.md section 3; README.md, "The protocol as implemented").
 *
 * Refusal reasons name the key, never echo a value, and are static strings
 * or live in a per-thread buffer (valid until the next call on the same
 * thread); a connect message's not-well-formed reason is copied into the
 * message itself.
 */
#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <plist/plist.h>

#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/schema.h"

#define MSG_REASON_MAX 128
#define MSG_STR_MAX    4096  /* any other string value */
#define MSG_DATA_MAX   65536 /* any other data value */
#define MSG_TOKEN_MAX  256 /* APNs device token */
#define MSG_MAGIC_MAX  255 /* PushMagic */
#define MSG_UUID_MAX   255 /* CommandUUID */

/* The all-F UserID Shared iPad sends on its user channel. */
#define MSG_SHARED_IPAD_USERID "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"

static _Thread_local char msg_reason_buf[MSG_REASON_MAX];

static const char *const msg_kind_names[MSG__MAX] = {
    [MSG_AUTHENTICATE] = "Authenticate",
    [MSG_TOKEN_UPDATE] = "TokenUpdate",
    [MSG_CHECK_OUT] = "CheckOut",
    [MSG_USER_AUTHENTICATE] = "UserAuthenticate",
    [MSG_SET_BOOTSTRAP_TOKEN] = "SetBootstrapToken",
    [MSG_GET_BOOTSTRAP_TOKEN] = "GetBootstrapToken",
    [MSG_DECLARATIVE_MANAGEMENT] = "DeclarativeManagement",
    [MSG_GET_TOKEN] = "GetToken",
    [MSG_CONNECT] = "Connect",
};

/* NanoMDM's names for the enrollment types. */
static const char *const enroll_type_names[ENROLL__MAX] = {
    [ENROLL_NONE] = "None",
    [ENROLL_DEVICE] = "Device",
    [ENROLL_USER] = "User",
    [ENROLL_UE_DEVICE] = "UserEnrollmentDevice",
    [ENROLL_UE_USER] = "UserEnrollment",
    [ENROLL_SHARED_IPAD] = "SharediPad",
};

/* Apple's Status strings; the last three are picomdm's own states. */
static const char *const cmd_status_names[CMD_STATUS__MAX] = {
    [CMD_STATUS_NONE] = "Queued",
    [CMD_STATUS_IDLE] = "Idle",
    [CMD_STATUS_ACKNOWLEDGED] = "Acknowledged",
    [CMD_STATUS_ERROR] = "Error",
    [CMD_STATUS_FORMAT_ERROR] = "CommandFormatError",
    [CMD_STATUS_NOT_NOW] = "NotNow",
    [CMD_STATUS_EXPIRED] = "Expired",
    [CMD_STATUS_CANCELLED] = "Cancelled",
};

/*
 * Length rules for top-level keys: strings and data outside this table
 * get 0..MSG_STR_MAX and 0..MSG_DATA_MAX. ident also refuses control
 * characters (the value becomes part of a store key and of log lines).
 */
struct msg_limit {
	const char *key;
	size_t	    min;
	size_t	    max;
	int	    ident;
};

static const struct msg_limit msg_limits[] = {
    {"UDID", 1, MSG_IDENT_MAX, 1},
    {"EnrollmentID", 1, MSG_IDENT_MAX, 1},
    {"UserID", 1, MSG_IDENT_MAX, 1},
    {"UserShortName", 1, MSG_IDENT_MAX, 1},
    {"UserLongName", 1, MSG_IDENT_MAX, 1},
    {"EnrollmentUserID", 1, MSG_IDENT_MAX, 1},
    {"Topic", 1, MSG_TOPIC_MAX, 1},
    /* A key of the serial index (store_device.c): absent in a User
     * Enrollment, never longer than an identity key. */
    {"SerialNumber", 0, MSG_IDENT_MAX, 1},
    {"Token", 1, MSG_TOKEN_MAX, 0},
    {"PushMagic", 1, MSG_MAGIC_MAX, 1},
    {"CommandUUID", 1, MSG_UUID_MAX, 1},
};

/*
 * The identity keys, valid in every message whether or not Apple's schema
 * for it lists them (SetBootstrapToken's does not, yet devices send UDID).
 */
static const struct schema_key msg_ident_keys[] = {
    {"UDID", SCHEMA_STRING, 0, NULL, 0},
    {"EnrollmentID", SCHEMA_STRING, 0, NULL, 0},
    {"UserID", SCHEMA_STRING, 0, NULL, 0},
    {"UserShortName", SCHEMA_STRING, 0, NULL, 0},
    {"UserLongName", SCHEMA_STRING, 0, NULL, 0},
    {"EnrollmentUserID", SCHEMA_STRING, 0, NULL, 0},
};
#define MSG_NIDENT (sizeof(msg_ident_keys) / sizeof(msg_ident_keys[0]))

/* One ErrorChain item (Apple's schema of command reports). */
static const struct schema_key msg_error_item_keys[] = {
    {"ErrorCode", SCHEMA_INTEGER, 1, NULL, 0},
    {"ErrorDomain", SCHEMA_STRING, 1, NULL, 0},
    {"LocalizedDescription", SCHEMA_STRING, 0, NULL, 0},
    {"USEnglishDescription", SCHEMA_STRING, 0, NULL, 0},
};
static const struct schema_key msg_error_chain_item[] = {
    {NULL, SCHEMA_DICT, 0, msg_error_item_keys,
	sizeof(msg_error_item_keys) / sizeof(msg_error_item_keys[0])},
};

/*
 * Keys of a command report beyond identity, Status and CommandUUID whose
 * shape we know; a mismatch leaves the report usable (well_formed 0).
 */
static const struct schema_key msg_connect_keys[] = {
    {"ErrorChain", SCHEMA_ARRAY, 0, msg_error_chain_item, 1},
    {"RequestType", SCHEMA_STRING, 0, NULL, 0},
};
#define MSG_NCONNECT (sizeof(msg_connect_keys) / sizeof(msg_connect_keys[0]))

/* Keys each check-in needs beyond the generated table's required ones. */
static const char *const msg_needs_auth[] = {"Topic", NULL};
static const char *const msg_needs_token[] = {
    "Topic", "Token", "PushMagic", NULL};
static const char *const msg_needs_user_auth[] = {"UserID", NULL};
static const char *const msg_needs_dm[] = {"Endpoint", NULL};
static const char *const msg_needs_get_token[] = {"TokenServiceType", NULL};
static const char *const *const msg_needs[MSG__MAX] = {
    [MSG_AUTHENTICATE] = msg_needs_auth,
    [MSG_TOKEN_UPDATE] = msg_needs_token,
    [MSG_USER_AUTHENTICATE] = msg_needs_user_auth,
    [MSG_DECLARATIVE_MANAGEMENT] = msg_needs_dm,
    [MSG_GET_TOKEN] = msg_needs_get_token,
};

/*
 * Format a refusal reason into the per-thread buffer. Callers bound every
 * %s with a precision so the text always fits; should it not, a generic
 * reason is returned rather than a truncated one.
 */
static const char *reason_fmt(const char *, ...)
    __attribute__((format(printf, 1, 2)));
static const char *
reason_fmt(const char *fmt, ...)
{
	va_list ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(msg_reason_buf, sizeof(msg_reason_buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg_reason_buf))
		return "invalid value";
	return msg_reason_buf;
}

/* Apple's name for the type of a parsed node. */
static const char *
node_type_name(plist_t node)
{
	switch (plist_get_node_type(node)) {
	case PLIST_BOOLEAN:
		return "boolean";
	case PLIST_UINT:
		return "integer";
	case PLIST_REAL:
		return "real";
	case PLIST_STRING:
		return "string";
	case PLIST_ARRAY:
		return "array";
	case PLIST_DICT:
		return "dictionary";
	case PLIST_DATE:
		return "date";
	case PLIST_DATA:
		return "data";
	case PLIST_KEY:
		return "key";
	case PLIST_UID:
		return "uid";
	default:
		return "unknown";
	}
}

/* The length rule of a top-level key, or NULL for the defaults. */
static const struct msg_limit *
limit_find(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(msg_limits) / sizeof(msg_limits[0]); i++)
		if (strcmp(msg_limits[i].key, key) == 0)
			return &msg_limits[i];
	return NULL;
}

/*
 * Where a value sits, for reasons: "Key" at the top level, "Top.Key"
 * below it (array items are "Top.item").
 */
struct msg_path {
	const char *top;  /* top-level key, or NULL at the top */
	const char *leaf; /* this key, or "item" */
};

static const char *
reason_path(const struct msg_path *p, const char *what)
{
	if (p->top == NULL || p->top == p->leaf)
		return reason_fmt("%.48s: %.60s", p->leaf, what);
	return reason_fmt("%.40s.%.40s: %.40s", p->top, p->leaf, what);
}

/*
 * Check a string or data node against its length rule. Strings must not
 * contain NUL (libplist keeps them, C strings would drop the rest); ident
 * strings must not contain control characters. Returns 0 or -1.
 */
static int
check_length(plist_t node, const struct msg_path *p,
    const struct msg_limit *lim, const char **reason)
{
	size_t	 min = 0, max;
	uint64_t len = 0;

	if (plist_get_node_type(node) == PLIST_STRING) {
		const char *s = plist_get_string_ptr(node, &len);
		uint64_t    i;

		max = lim != NULL ? lim->max : MSG_STR_MAX;
		min = lim != NULL ? lim->min : 0;
		if (s == NULL || strlen(s) != len) {
			*reason = reason_path(p, "contains a NUL byte");
			return -1;
		}
		if (lim != NULL && lim->ident)
			for (i = 0; i < len; i++)
				if ((unsigned char)s[i] < 0x20 ||
				    s[i] == 0x7f) {
					*reason = reason_path(
					    p, "contains a control character");
					return -1;
				}
	} else if (plist_get_node_type(node) == PLIST_DATA) {
		(void)plist_get_data_ptr(node, &len);
		max = lim != NULL ? lim->max : MSG_DATA_MAX;
		min = lim != NULL ? lim->min : 0;
	} else
		return 0;
	if (len < min) {
		*reason = reason_path(p, "empty");
		return -1;
	}
	if (len > max) {
		*reason = reason_path(p, "too long");
		return -1;
	}
	return 0;
}

static int check_dict(
    plist_t, const struct schema_key *, size_t, const char *, const char **);

/*
 * Check one value against its schema key: type, length, and (for a dict
 * or array whose keys Apple describes) its contents. Recursion is bounded
 * by the schema and by the depth scan that preceded parsing. Returns 0 or
 * -1 with *reason set.
 */
static int
check_node(plist_t node, const struct schema_key *k, const struct msg_path *p,
    const char **reason)
{
	const char *top = p->top != NULL ? p->top : p->leaf;

	if (!plist_is_schema_type(node, k->type)) {
		char what[64];
		int n = snprintf(what, sizeof(what), "wrong type (%s, want %s)",
		    node_type_name(node), schema_type_name(k->type));

		if (n < 0 || (size_t)n >= sizeof(what))
			*reason = reason_path(p, "wrong type");
		else
			*reason = reason_path(p, what);
		return -1;
	}
	if (check_length(node, p, p->top == NULL ? limit_find(p->leaf) : NULL,
		reason) == -1)
		return -1;
	if (k->type == SCHEMA_DICT && k->subkeys != NULL)
		return check_dict(node, k->subkeys, k->nsubkeys, top, reason);
	if (k->type == SCHEMA_ARRAY && k->subkeys != NULL && k->nsubkeys >= 1) {
		plist_array_iter it = NULL;
		plist_t		 item = NULL;
		struct msg_path	 ip = {top, "item"};
		int		 rc = 0;

		if (plist_array_get_size(node) == 0)
			return 0;
		plist_array_new_iter(node, &it);
		if (it == NULL) {
			*reason = "out of memory";
			return -1;
		}
		for (;;) {
			item = NULL;
			plist_array_next_item(node, it, &item);
			if (item == NULL)
				break;
			if (check_node(item, &k->subkeys[0], &ip, reason) ==
			    -1) {
				rc = -1;
				break;
			}
		}
		free(it);
		return rc;
	}
	return 0;
}

/*
 * The items of a dict far smaller than the schema it is checked against,
 * for check_dict(): a response's QueryResponses holds the 2 answers asked
 * for, DeviceInformation's schema 87 keys, and libplist finds each by
 * strcmp() down its list (about 15,000 instructions a report, BENCHMARKS.md,
 * Round 2, "2026-12-05, 02:05"). The keys are libplist's copies.
 */
#define DICT_FEW_MAX 16
struct dict_few {
	size_t	n;
	char   *key[DICT_FEW_MAX];
	plist_t val[DICT_FEW_MAX];
};

/* Free the keys of f. */
static void
dict_few_free(struct dict_few *f)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		free(f->key[i]);
	f->n = 0;
}

/*
 * Take the items of dict into f when it has at most DICT_FEW_MAX and fewer
 * than a quarter of nkeys. Returns 1 when taken, 0 when the caller should
 * look every key up in dict instead (also when memory runs out).
 */
static int
dict_few_take(plist_t dict, size_t nkeys, struct dict_few *f)
{
	plist_dict_iter it = NULL;
	uint32_t	size;

	f->n = 0;
	size = plist_dict_get_size(dict);
	if (size > DICT_FEW_MAX || (size_t)size * 4 >= nkeys)
		return 0;
	plist_dict_new_iter(dict, &it);
	if (it == NULL)
		return 0;
	for (;;) {
		char   *key = NULL;
		plist_t val = NULL;

		plist_dict_next_item(dict, it, &key, &val);
		if (val == NULL && key == NULL)
			break;
		if (key == NULL || val == NULL || f->n == DICT_FEW_MAX) {
			free(key);
			dict_few_free(f);
			free(it);
			return 0;
		}
		f->key[f->n] = key;
		f->val[f->n++] = val;
	}
	free(it);
	return 1;
}

/* The value of key among f's items, as plist_dict_get_item() gives it. */
static plist_t
dict_few_get(const struct dict_few *f, const char *key)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (f->key[i][0] == key[0] && strcmp(f->key[i], key) == 0)
			return f->val[i];
	return NULL;
}

/*
 * Check the keys of dict that keys[] describes: each present one must
 * match, each required one must be present. Other keys are not looked at.
 * top is the enclosing top-level key (NULL for the message itself).
 */
static int
check_dict(plist_t dict, const struct schema_key *keys, size_t n,
    const char *top, const char **reason)
{
	struct dict_few few;
	size_t		i;
	int		fewer, rc = 0;

	fewer = dict_few_take(dict, n, &few);
	for (i = 0; i < n; i++) {
		struct msg_path p = {top, keys[i].key};
		plist_t		v;

		if (keys[i].key == NULL)
			continue;
		v = fewer ? dict_few_get(&few, keys[i].key) :
		    plist_dict_get_item(dict, keys[i].key);
		if (v == NULL) {
			if (keys[i].required) {
				*reason = reason_path(&p, "missing");
				rc = -1;
				break;
			}
			continue;
		}
		if (check_node(v, &keys[i], &p, reason) == -1) {
			rc = -1;
			break;
		}
	}
	if (fewer)
		dict_few_free(&few);
	return rc;
}

/* A NULL-terminated list of keys that must all be present. */
static int
check_needs(plist_t dict, const char *const *need, const char **reason)
{
	for (; need != NULL && *need != NULL; need++)
		if (plist_dict_get_item(dict, *need) == NULL) {
			struct msg_path p = {NULL, *need};

			*reason = reason_path(&p, "missing");
			return -1;
		}
	return 0;
}

/*
 * An identity key of dict: 1 with *out set when present and valid, 0 when
 * absent, -1 with *reason when of the wrong type, empty, too long or
 * holding NUL or control characters.
 */
static int
ident_get(plist_t dict, const char *key, const char **out, const char **reason)
{
	struct msg_path p = {NULL, key};
	plist_t		v;
	size_t		i;

	*out = NULL;
	if ((v = plist_dict_get_item(dict, key)) == NULL)
		return 0;
	for (i = 0; i < MSG_NIDENT; i++)
		if (strcmp(msg_ident_keys[i].key, key) == 0)
			break;
	if (i == MSG_NIDENT) /* not an identity key: a programming error */
		return -1;
	if (check_node(v, &msg_ident_keys[i], &p, reason) == -1)
		return -1;
	*out = plist_get_string_ptr(v, NULL);
	return 1;
}

/* Append "a" or "a:b" to dst (MSG_ID_MAX + 1 bytes). Returns 0 or -1. */
static int
id_join(char *dst, const char *a, const char *b)
{
	size_t al = strlen(a), bl = b != NULL ? strlen(b) : 0;

	if (al > MSG_ID_MAX ||
	    (b != NULL && (bl > MSG_ID_MAX - al || 1 > MSG_ID_MAX - al - bl)))
		return -1;
	memcpy(dst, a, al);
	if (b != NULL) {
		dst[al] = ':';
		memcpy(dst + al + 1, b, bl);
		dst[al + 1 + bl] = '\0';
	} else
		dst[al] = '\0';
	return 0;
}

/*
 * Derive the enrollment IDs (ARCHITECTURE.md section 3, as NanoMDM's
 * Resolved() does):
 *   UDID                            Device       UDID
 *   UDID + UserID                   User         UDID:UserID
 *   UDID + all-F UserID             SharediPad   UDID:UserShortName
 *   EnrollmentID                    UE device    EnrollmentID
 *   EnrollmentID + EnrollmentUserID UE user      EnrollmentID:EnrollmentUserID
 * UDID wins over EnrollmentID. A user-channel key that does not belong to
 * the kind of device ID (EnrollmentUserID beside UDID without UserID,
 * UserID without UDID or EnrollmentUserID) is refused rather than
 * silently treated as the device channel. Fills type, id, device_id and
 * user_channel. Returns 0, or -1 with *reason set.
 */
int
msg_resolve_ids(plist_t dict, struct mdm_msg *m, const char **reason)
{
	const char *udid = NULL, *eid = NULL, *uid = NULL, *shortname = NULL;
	const char *euid = NULL, *user = NULL;
	const char *r = "invalid identity keys";
	int	    rc = -1;

	if (m == NULL)
		goto out;
	m->type = ENROLL_NONE;
	m->user_channel = 0;
	m->id[0] = m->device_id[0] = '\0';
	if (dict == NULL || plist_get_node_type(dict) != PLIST_DICT)
		goto out;
	if (ident_get(dict, "UDID", &udid, &r) == -1 ||
	    ident_get(dict, "EnrollmentID", &eid, &r) == -1 ||
	    ident_get(dict, "UserID", &uid, &r) == -1 ||
	    ident_get(dict, "UserShortName", &shortname, &r) == -1 ||
	    ident_get(dict, "EnrollmentUserID", &euid, &r) == -1)
		goto out;

	if (udid != NULL) {
		if (uid != NULL &&
		    strcasecmp(uid, MSG_SHARED_IPAD_USERID) == 0) {
			if (shortname == NULL) {
				r = "UserShortName: missing (Shared iPad "
				    "user channel)";
				goto out;
			}
			m->type = ENROLL_SHARED_IPAD;
			user = shortname;
		} else if (uid != NULL) {
			m->type = ENROLL_USER;
			user = uid;
		} else if (euid != NULL) {
			r = "EnrollmentUserID: not valid with UDID";
			goto out;
		} else
			m->type = ENROLL_DEVICE;
		if (id_join(m->device_id, udid, NULL) == -1)
			goto toolong;
	} else if (eid != NULL) {
		if (euid != NULL) {
			m->type = ENROLL_UE_USER;
			user = euid;
		} else if (uid != NULL) {
			r = "EnrollmentUserID: missing (User Enrollment "
			    "user channel)";
			goto out;
		} else
			m->type = ENROLL_UE_DEVICE;
		if (id_join(m->device_id, eid, NULL) == -1)
			goto toolong;
	} else {
		r = "missing UDID or EnrollmentID";
		goto out;
	}
	if (id_join(m->id, m->device_id, user) == -1)
		goto toolong;
	m->user_channel = user != NULL;
	rc = 0;
	goto out;
toolong:
	r = "enrollment ID too long";
out:
	if (rc == -1 && m != NULL) {
		m->type = ENROLL_NONE;
		m->user_channel = 0;
		m->id[0] = m->device_id[0] = '\0';
	}
	if (reason != NULL)
		*reason = rc == 0 ? NULL : r;
	return rc;
}

/*
 * Allocate a message with room after it for a copy of its reason, so the
 * reason outlives the per-thread buffer. NULL on allocation failure.
 */
static struct mdm_msg *
msg_new(void)
{
	return calloc(1, sizeof(struct mdm_msg) + MSG_REASON_MAX);
}

/* Set m->reason to a private copy of r (truncated to fit). */
static void
msg_set_reason(struct mdm_msg *m, const char *r)
{
	char  *dst = (char *)(m + 1);
	size_t n = strlen(r);

	if (n >= MSG_REASON_MAX)
		n = MSG_REASON_MAX - 1;
	memcpy(dst, r, n);
	dst[n] = '\0';
	m->reason = dst;
}

/* The check-in kind named by a MessageType, or -1. */
static int
msg_kind_parse(const char *s)
{
	int k;

	for (k = 0; k < MSG_CONNECT; k++)
		if (strcmp(msg_kind_names[k], s) == 0)
			return k;
	return -1;
}

/*
 * Validate a check-in body (README.md, "The protocol as implemented"; Apple's
 * mdm/checkin YAML files through the generated tables). MessageType must name
 * one of the eight check-ins; every key the schema knows must have its
 * type and length; identity keys are checked on every message; then the
 * per-message keys and the enrollment IDs. Returns 0 with *out (caller
 * frees with msg_free()), 400 with *reason for a bad body, or 500 when
 * memory runs out.
 */
int
msg_parse_checkin(
    const char *buf, size_t len, struct mdm_msg **out, const char **reason)
{
	const struct schema_msg *sm;
	struct mdm_msg		*m = NULL;
	enum plist_safe_err	 pe;
	plist_t			 root = NULL, v;
	const char		*r = NULL, *mt;
	int			 rc = 400, kind;

	if (out == NULL || reason == NULL)
		return 500;
	*out = NULL;
	*reason = NULL;
	if ((pe = plist_safe_parse(buf, len, &root)) != PLIST_SAFE_OK) {
		r = plist_safe_strerror(pe);
		goto fail;
	}
	if ((v = plist_dict_get_item(root, "MessageType")) == NULL) {
		r = "MessageType: missing";
		goto fail;
	}
	if ((mt = plist_dict_str(root, "MessageType")) == NULL) {
		r = reason_fmt("MessageType: wrong type (%.20s, want string)",
		    node_type_name(v));
		goto fail;
	}
	if ((kind = msg_kind_parse(mt)) == -1 ||
	    (sm = schema_checkin_find(mt)) == NULL) {
		r = "unknown MessageType";
		goto fail;
	}
	if (check_dict(root, msg_ident_keys, MSG_NIDENT, NULL, &r) == -1 ||
	    check_dict(root, sm->keys, sm->nkeys, NULL, &r) == -1 ||
	    check_needs(root, msg_needs[kind], &r) == -1)
		goto fail;
	if ((m = msg_new()) == NULL) {
		rc = 500;
		r = "out of memory";
		goto fail;
	}
	if (msg_resolve_ids(root, m, &r) == -1)
		goto fail;
	m->kind = kind;
	m->status = CMD_STATUS_NONE;
	m->well_formed = 1;
	m->root = root;
	*out = m;
	return 0;
fail:
	free(m);
	plist_free(root);
	*reason = r != NULL ? r : "invalid check-in";
	return rc;
}

/*
 * Validate a command report (README.md, "The protocol as implemented").
 * Status must be one of Idle, Acknowledged, Error, CommandFormatError,
 * NotNow; every status but Idle needs a CommandUUID; identity keys as for
 * check-ins.
 * Those failures return 400. An ErrorChain or RequestType of the wrong
 * shape only clears well_formed (the raw report is still stored and the
 * queue moves on); other keys are tolerated. Returns 0 with *out (caller
 * frees with msg_free(); *reason is the not-well-formed reason or NULL),
 * 400 with *reason, or 500 when memory runs out.
 */
int
msg_parse_connect(
    const char *buf, size_t len, struct mdm_msg **out, const char **reason)
{
	struct mdm_msg	   *m = NULL;
	enum plist_safe_err pe;
	plist_t		    root = NULL, v;
	const char	   *r = NULL, *s, *uuid = NULL;
	int		    rc = 400, st;

	if (out == NULL || reason == NULL)
		return 500;
	*out = NULL;
	*reason = NULL;
	if ((pe = plist_safe_parse(buf, len, &root)) != PLIST_SAFE_OK) {
		r = plist_safe_strerror(pe);
		goto fail;
	}
	if (check_dict(root, msg_ident_keys, MSG_NIDENT, NULL, &r) == -1)
		goto fail;
	if ((v = plist_dict_get_item(root, "Status")) == NULL) {
		/* A check-in that reached the report route by its type. */
		r = plist_dict_get_item(root, "MessageType") != NULL ?
		    "Status: missing; this is a check-in (MessageType): send "
		    "it with Content-Type: application/x-apple-aspen-mdm-"
		    "checkin, or to /mdm/checkin" : "Status: missing";
		goto fail;
	}
	if ((s = plist_dict_str(root, "Status")) == NULL) {
		r = reason_fmt("Status: wrong type (%.20s, want string)",
		    node_type_name(v));
		goto fail;
	}
	st = cmd_status_parse(s);
	if (st < CMD_STATUS_IDLE || st > CMD_STATUS_NOT_NOW) {
		r = "Status: unknown value";
		goto fail;
	}
	if (st != CMD_STATUS_IDLE) {
		static const struct schema_key uk = {
		    "CommandUUID", SCHEMA_STRING, 1, NULL, 0};

		if (check_dict(root, &uk, 1, NULL, &r) == -1)
			goto fail;
		uuid = plist_dict_str(root, "CommandUUID");
	}
	if ((m = msg_new()) == NULL) {
		rc = 500;
		r = "out of memory";
		goto fail;
	}
	if (msg_resolve_ids(root, m, &r) == -1)
		goto fail;
	m->kind = MSG_CONNECT;
	m->status = st;
	m->command_uuid = uuid;
	m->well_formed = 1;
	if (check_dict(root, msg_connect_keys, MSG_NCONNECT, NULL, &r) == -1) {
		m->well_formed = 0;
		msg_set_reason(m, r);
		*reason = m->reason;
	}
	m->root = root;
	*out = m;
	return 0;
fail:
	free(m);
	plist_free(root);
	*reason = r != NULL ? r : "invalid command report";
	return rc;
}

/*
 * Check an Acknowledged report against Apple's response keys for its
 * command's RequestType (the rkeys of the generated command table). A
 * mismatch only clears well_formed, with the reason; reports of another
 * status, and RequestTypes without response keys, are left as they are.
 */
void
msg_check_response(struct mdm_msg *m, const char *request_type)
{
	const struct schema_msg *sm;
	const char		*r = NULL;

	if (m == NULL || m->root == NULL || request_type == NULL ||
	    m->status != CMD_STATUS_ACKNOWLEDGED || !m->well_formed)
		return;
	if ((sm = schema_command_find(request_type)) == NULL ||
	    sm->nrkeys == 0)
		return;
	if (check_dict(m->root, sm->rkeys, sm->nrkeys, NULL, &r) == -1) {
		m->well_formed = 0;
		msg_set_reason(m, r != NULL ? r : "response keys");
	}
}

/* Free a message and its plist; NULL is a no-op. */
void
msg_free(struct mdm_msg *m)
{
	if (m == NULL)
		return;
	plist_free(m->root);
	free(m);
}

const char *
msg_kind_name(enum msg_kind k)
{
	if ((unsigned)k >= MSG__MAX)
		return "Unknown";
	return msg_kind_names[k];
}

const char *
enroll_type_name(enum enroll_type t)
{
	if ((unsigned)t >= ENROLL__MAX)
		return "Unknown";
	return enroll_type_names[t];
}

const char *
cmd_status_name(enum cmd_status s)
{
	if ((unsigned)s >= CMD_STATUS__MAX)
		return "Unknown";
	return cmd_status_names[s];
}

/* The status named exactly (case-sensitive) by s, or -1. */
int
cmd_status_parse(const char *s)
{
	int i;

	if (s == NULL)
		return -1;
	for (i = 0; i < CMD_STATUS__MAX; i++)
		if (strcmp(cmd_status_names[i], s) == 0)
			return i;
	return -1;
}

/*
 * Did key pass validation in m? Identity keys always; for a check-in, the
 * keys of its schema; for a report, Status, CommandUUID (not on Idle) and,
 * when well-formed, ErrorChain and RequestType.
 */
/*
 * The schema of each check-in kind, looked up by name once (a binary search
 * of strcmp()s on every msg_str() of the writer otherwise).
 */
static const struct schema_msg *msg_kind_schema[MSG__MAX];
static pthread_once_t            msg_kind_schema_once = PTHREAD_ONCE_INIT;

static void
msg_kind_schema_init(void)
{
	int k;

	for (k = 0; k < MSG_CONNECT; k++)
		msg_kind_schema[k] = schema_checkin_find(msg_kind_names[k]);
}

static int
msg_key_validated(const struct mdm_msg *m, const char *key)
{
	const struct schema_msg *sm;

	if (m == NULL || m->root == NULL || key == NULL)
		return 0;
	if (schema_key_find(msg_ident_keys, MSG_NIDENT, key) != NULL)
		return 1;
	if (m->kind == MSG_CONNECT) {
		if (strcmp(key, "Status") == 0)
			return 1;
		if (strcmp(key, "CommandUUID") == 0)
			return m->command_uuid != NULL;
		return m->well_formed &&
		    schema_key_find(msg_connect_keys, MSG_NCONNECT, key) !=
		    NULL;
	}
	if ((unsigned)m->kind >= MSG_CONNECT ||
	    pthread_once(&msg_kind_schema_once, msg_kind_schema_init) != 0 ||
	    (sm = msg_kind_schema[m->kind]) == NULL)
		return 0;
	return schema_key_find(sm->keys, sm->nkeys, key) != NULL;
}

/* A validated string, borrowed from m->root; NULL if absent/unvalidated. */
const char *
msg_str(const struct mdm_msg *m, const char *key)
{
	if (!msg_key_validated(m, key))
		return NULL;
	return plist_dict_str(m->root, key);
}

/* Validated data, borrowed; empty data is non-NULL with *len 0. */
const unsigned char *
msg_data(const struct mdm_msg *m, const char *key, size_t *len)
{
	if (len != NULL)
		*len = 0;
	if (!msg_key_validated(m, key))
		return NULL;
	return plist_dict_data(m->root, key, len);
}

/* A validated boolean, or dflt when absent. */
int
msg_bool(const struct mdm_msg *m, const char *key, int dflt)
{
	int v;

	if (!msg_key_validated(m, key) ||
	    plist_dict_bool(m->root, key, &v) == -1)
		return dflt;
	return v;
}

/* A validated node of any type, borrowed; NULL if absent/unvalidated. */
plist_t
msg_node(const struct mdm_msg *m, const char *key)
{
	if (!msg_key_validated(m, key))
		return NULL;
	return plist_dict_get_item(m->root, key);
}
