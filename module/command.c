/*
 * command.c - operator commands: the JSON form converted to a command
 * plist and the raw form checked, both against Apple's command schema
 * (apple/device-management mdm/commands YAML files, compiled into
 * schema_tables.c); enqueueing to many enrollments; JSON views of stored
 * results (plist to JSON, ErrorChain decoding).
 *
 * Command plist format (Apple's MDM protocol; README.md, "Operator
 * API"): a top-level dict with CommandUUID (string) and Command (dict),
 * RequestType inside Command. What is stored is sent byte for byte.
 */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <plist/plist.h>

#include "picomdm/command.h"
#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/push.h"
#include "picomdm/schema.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

/* Containers inside Command: the root and Command dicts take two levels
 * of the depth plist_safe_parse allows. */
#define CONV_DEPTH_MAX (PLIST_DEPTH_MAX - 2)

/* Seconds from the Unix epoch to Apple's (2001-01-01T00:00:00Z). */
#define APPLE_EPOCH 978307200LL

/* A conversion or check in progress: where we are, what went wrong. */
struct conv {
	char	   *err;
	size_t	    errsz;
	char	    path[200];
	size_t	    plen;
	int	    depth;
	int	    oom;
	const char *rtype; /* RequestType, for messages */
};

static void conv_fail(struct conv *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Record an error at the current path: "path: message". The message is
 * for an operator; truncation to errsz is acceptable (it stays
 * NUL-terminated).
 */
static void
conv_fail(struct conv *c, const char *fmt, ...)
{
	char	msg[160];
	va_list ap;
	int	n;

	if (c->err == NULL || c->errsz == 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		msg[0] = '\0';
	if (c->plen > 0)
		n = snprintf(c->err, c->errsz, "%s: %s", c->path, msg);
	else
		n = snprintf(c->err, c->errsz, "%s", msg);
	if (n < 0)
		c->err[0] = '\0';
}

/* Append ".key" (or "key" at the top) to the path; returns the length
 * to restore. A path too long to hold ends in "...". */
static size_t
path_key(struct conv *c, const char *key)
{
	size_t saved = c->plen;
	int    n;

	n = snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "%s%s",
	    c->plen > 0 ? "." : "", key);
	if (n < 0 || (size_t)n >= sizeof(c->path) - c->plen) {
		c->plen = sizeof(c->path) - 1;
		memcpy(c->path + c->plen - 3, "...", 3);
	} else
		c->plen += (size_t)n;
	return saved;
}

/* Append "[i]" to the path; returns the length to restore. */
static size_t
path_index(struct conv *c, size_t i)
{
	size_t saved = c->plen;
	int    n;

	n = snprintf(c->path + c->plen, sizeof(c->path) - c->plen, "[%zu]", i);
	if (n < 0 || (size_t)n >= sizeof(c->path) - c->plen) {
		c->plen = sizeof(c->path) - 1;
		memcpy(c->path + c->plen - 3, "...", 3);
	} else
		c->plen += (size_t)n;
	return saved;
}

static void
path_pop(struct conv *c, size_t saved)
{
	c->plen = saved;
	c->path[saved] = '\0';
}

static void
conv_init(struct conv *c, char *err, size_t errsz)
{
	memset(c, 0, sizeof(*c));
	c->err = err;
	c->errsz = errsz;
	if (err != NULL && errsz > 0)
		err[0] = '\0';
}

/* ---- JSON to plist ---- */

static const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "real";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

/* What JSON a schema type takes, for messages. */
static const char *
json_want_name(enum schema_type t)
{
	switch (t) {
	case SCHEMA_STRING:
		return "string";
	case SCHEMA_DATA:
		return "base64 string";
	case SCHEMA_BOOL:
		return "boolean";
	case SCHEMA_INTEGER:
		return "integer";
	case SCHEMA_REAL:
		return "number";
	case SCHEMA_DATE:
		return "RFC 3339 date string";
	case SCHEMA_DICT:
		return "object";
	case SCHEMA_ARRAY:
		return "array";
	default:
		return "value";
	}
}

/* Control characters other than tab and line ends make invalid XML. */
static int
has_control(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 && s[i] != '\t' &&
		    s[i] != '\n' && s[i] != '\r')
			return 1;
	return 0;
}

/* The schema type a JSON value has when the schema says nothing. */
static int
json_natural_type(const json_t *v, enum schema_type *t)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		*t = SCHEMA_DICT;
		return 0;
	case JSON_ARRAY:
		*t = SCHEMA_ARRAY;
		return 0;
	case JSON_STRING:
		*t = SCHEMA_STRING;
		return 0;
	case JSON_INTEGER:
		*t = SCHEMA_INTEGER;
		return 0;
	case JSON_REAL:
		*t = SCHEMA_REAL;
		return 0;
	case JSON_TRUE:
	case JSON_FALSE:
		*t = SCHEMA_BOOL;
		return 0;
	default:
		return -1;
	}
}

static plist_t conv_value(struct conv *, json_t *, const struct schema_key *);

/*
 * Convert a JSON object to a plist dict. When strict, every member must
 * be one of keys[0..nkeys) and is converted by its type, and the required
 * ones must be present; otherwise members convert by their JSON type.
 * Returns the dict or NULL (error recorded).
 */
static plist_t
conv_dict(struct conv *c, json_t *obj, const struct schema_key *keys,
    size_t nkeys, int strict)
{
	const struct schema_key *k;
	const char		*name;
	json_t			*v;
	void			*it;
	plist_t			 d, child;
	size_t			 i, saved;

	if ((d = plist_new_dict()) == NULL) {
		c->oom = 1;
		return NULL;
	}
	for (it = json_object_iter(obj); it != NULL;
	     it = json_object_iter_next(obj, it)) {
		name = json_object_iter_key(it);
		v = json_object_iter_value(it);
		k = NULL;
		saved = path_key(c, name);
		if (has_control(name, strlen(name))) {
			conv_fail(c, "key contains a control character");
			goto fail;
		}
		if (strict &&
		    (k = schema_key_find(keys, nkeys, name)) == NULL) {
			conv_fail(c,
			    "unknown key for %s (Apple's schema does "
			    "not list it; the raw plist form, PUT, takes any "
			    "key)",
			    c->rtype);
			goto fail;
		}
		if ((child = conv_value(c, v, k)) == NULL)
			goto fail;
		plist_dict_set_item(d, name, child);
		path_pop(c, saved);
	}
	for (i = 0; i < nkeys; i++)
		if (keys[i].key != NULL && keys[i].required &&
		    json_object_get(obj, keys[i].key) == NULL) {
			saved = path_key(c, keys[i].key);
			conv_fail(c, "required key missing");
			path_pop(c, saved);
			plist_free(d);
			return NULL;
		}
	return d;
fail:
	plist_free(d);
	return NULL;
}

/* Convert a JSON array; items by item (NULL: by their JSON type). */
static plist_t
conv_array(struct conv *c, json_t *arr, const struct schema_key *item)
{
	plist_t a, child;
	json_t *v;
	size_t	i, saved;

	if ((a = plist_new_array()) == NULL) {
		c->oom = 1;
		return NULL;
	}
	for (i = 0; i < json_array_size(arr); i++) {
		v = json_array_get(arr, i);
		saved = path_index(c, i);
		if ((child = conv_value(c, v, item)) == NULL) {
			plist_free(a);
			return NULL;
		}
		plist_array_append_item(a, child);
		path_pop(c, saved);
	}
	return a;
}

/* A JSON string (already checked) to a plist date; NULL on error. */
static plist_t
conv_date(struct conv *c, const char *s)
{
	uint64_t  us;
	long long sec;
	plist_t	  p;

	if (time_parse_rfc3339(s, &us) == -1) {
		conv_fail(c,
		    "want an RFC 3339 date (2026-01-31T12:00:00Z), "
		    "got \"%.40s\"",
		    s);
		return NULL;
	}
	sec = (long long)(us / 1000000u) - APPLE_EPOCH;
	if (sec < INT32_MIN || sec > INT32_MAX) {
		conv_fail(c, "date out of range");
		return NULL;
	}
	if ((p = plist_new_date((int32_t)sec, (int32_t)(us % 1000000u))) ==
	    NULL)
		c->oom = 1;
	return p;
}

/* A JSON string (already checked) to plist data; NULL on error. */
static plist_t
conv_data(struct conv *c, const char *s, size_t n)
{
	unsigned char *bin;
	size_t	       blen = 0;
	plist_t	       p;

	if ((bin = base64_decode(s, n, &blen)) == NULL) {
		conv_fail(c,
		    "want base64 data, got a string that is not "
		    "base64");
		return NULL;
	}
	if ((p = plist_new_data((const char *)bin, blen)) == NULL)
		c->oom = 1;
	free(bin);
	return p;
}

/*
 * Convert one JSON value as the schema key k says (k NULL or "any": by
 * its JSON type). Returns a new plist node, or NULL with the error
 * recorded (or c->oom set).
 */
static plist_t
conv_value(struct conv *c, json_t *v, const struct schema_key *k)
{
	enum schema_type t;
	plist_t		 p = NULL;
	const char	*s;
	size_t		 n;

	if (k != NULL && k->type != SCHEMA_ANY)
		t = k->type;
	else if (json_natural_type(v, &t) == -1) {
		conv_fail(c, "null is not a plist value");
		return NULL;
	}
	switch (t) {
	case SCHEMA_STRING:
	case SCHEMA_DATA:
	case SCHEMA_DATE:
		if (!json_is_string(v))
			break;
		s = json_string_value(v);
		n = json_string_length(v);
		if (t == SCHEMA_DATA)
			return conv_data(c, s, n);
		if (t == SCHEMA_DATE)
			return conv_date(c, s);
		if (has_control(s, n)) {
			conv_fail(c, "string contains a control character");
			return NULL;
		}
		if ((p = plist_new_string(s)) == NULL)
			c->oom = 1;
		return p;
	case SCHEMA_INTEGER:
		if (!json_is_integer(v))
			break;
		if ((p = plist_new_uint((uint64_t)json_integer_value(v))) ==
		    NULL)
			c->oom = 1;
		return p;
	case SCHEMA_REAL:
		if (!json_is_number(v))
			break;
		if ((p = plist_new_real(json_number_value(v))) == NULL)
			c->oom = 1;
		return p;
	case SCHEMA_BOOL:
		if (!json_is_boolean(v))
			break;
		if ((p = plist_new_bool(json_is_true(v))) == NULL)
			c->oom = 1;
		return p;
	case SCHEMA_DICT:
	case SCHEMA_ARRAY:
		if (t == SCHEMA_DICT ? !json_is_object(v) : !json_is_array(v))
			break;
		if (c->depth >= CONV_DEPTH_MAX) {
			conv_fail(
			    c, "nested more than %d deep", CONV_DEPTH_MAX);
			return NULL;
		}
		c->depth++;
		if (t == SCHEMA_DICT)
			p = k != NULL && k->nsubkeys > 0
			    ? conv_dict(c, v, k->subkeys, k->nsubkeys, 1)
			    : conv_dict(c, v, NULL, 0, 0);
		else
			p = conv_array(c, v,
			    k != NULL && k->nsubkeys > 0 ? &k->subkeys[0]
							 : NULL);
		c->depth--;
		return p;
	default:
		break;
	}
	conv_fail(c, "want %s, got %s", json_want_name(t), json_type_name(v));
	return NULL;
}

int
command_convert(json_t *obj, const struct schema_key *keys, size_t nkeys,
    const char *rtype, plist_t *out, char *err, size_t errsz)
{
	struct conv c;

	conv_init(&c, err, errsz);
	c.rtype = rtype != NULL ? rtype : "this command";
	*out = NULL;
	if (!json_is_object(obj)) {
		conv_fail(&c, "want an object, got %s", json_type_name(obj));
		return 400;
	}
	c.depth = 1;
	if ((*out = conv_dict(&c, obj, keys, nkeys, 1)) != NULL)
		return 0;
	if (c.oom) {
		conv_fail(&c, "out of memory");
		return 500;
	}
	return 400;
}

/* Is s a usable CommandUUID (1..255 bytes, printable ASCII, no space)? */
static int
uuid_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > COMMAND_UUID_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return 0;
	return 1;
}

/*
 * A version 7 UUID (RFC 9562): the time in milliseconds in its first 48
 * bits, then 74 random ones. Time-ordered, so that the store's records
 * keyed by CommandUUID (the per-command status, store_queue.c) of
 * commands queued about the same time sit in the same B-tree leaves, and
 * the reports that answer them dirty fewer pages (BENCHMARKS.md,
 * "time-ordered CommandUUIDs").
 */
int
command_uuid_new(char out[37])
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char	  b[16];
	uint64_t	  ms = time_now_us() / 1000;
	size_t		  i, o = 0;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return -1;
	for (i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (8 * (5 - i)));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x70); /* version 7 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	for (i = 0; i < sizeof(b); i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 15];
	}
	out[o] = '\0';
	return 0;
}

void
command_free(struct command *cmd)
{
	if (cmd == NULL)
		return;
	free(cmd->uuid);
	free(cmd->request_type);
	free(cmd->raw);
	free(cmd);
}

/* A command owning copies of uuid and rtype and taking raw; NULL (and
 * raw freed) when out of memory. */
static struct command *
command_new(
    const char *uuid, const char *rtype, unsigned char *raw, size_t raw_len)
{
	struct command *cmd;

	if ((cmd = calloc(1, sizeof(*cmd))) == NULL) {
		free(raw);
		return NULL;
	}
	cmd->raw = raw;
	cmd->raw_len = raw_len;
	if ((cmd->uuid = strdup(uuid)) == NULL ||
	    (cmd->request_type = strdup(rtype)) == NULL) {
		command_free(cmd);
		return NULL;
	}
	return cmd;
}

/*
 * The JSON form (see command.h). Conversion follows the schema key by key;
 * the serialised plist then goes through plist_safe_parse like any raw
 * command, so what is stored always passes the same door.
 */
int
command_from_json(
    const char *buf, size_t len, struct command **out, char *err, size_t errsz)
{
	const struct schema_msg *msg;
	struct conv		 c;
	json_error_t		 jerr;
	json_t			*root = NULL, *v;
	plist_t			 top = NULL, cmdd = NULL, child, check = NULL;
	const char		*rtype, *uuid, *name;
	char			 gen[37], *xml = NULL;
	void			*it;
	size_t			 xlen = 0, saved;
	enum plist_safe_err	 pe;
	int			 rc = 400;

	*out = NULL;
	conv_init(&c, err, errsz);
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		conv_fail(&c, "invalid JSON at line %d column %d: %s",
		    jerr.line, jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		conv_fail(&c, "the body must be a JSON object, not %s",
		    json_type_name(root));
		goto out;
	}
	v = json_object_get(root, "request_type");
	if (v == NULL || !json_is_string(v) || json_string_length(v) == 0) {
		conv_fail(&c, "request_type: %s",
		    v == NULL ? "missing" : "want a non-empty string");
		goto out;
	}
	rtype = json_string_value(v);
	if ((msg = schema_command_find(rtype)) == NULL) {
		conv_fail(
		    &c, "request_type: unknown RequestType \"%.64s\"", rtype);
		goto out;
	}
	c.rtype = msg->name;
	if ((v = json_object_get(root, "command_uuid")) != NULL) {
		if (!json_is_string(v) ||
		    !uuid_ok(json_string_value(v), json_string_length(v))) {
			conv_fail(&c,
			    "command_uuid: want a string of 1 to %d "
			    "printable ASCII characters without spaces",
			    COMMAND_UUID_MAX);
			goto out;
		}
		uuid = json_string_value(v);
	} else {
		if (command_uuid_new(gen) == -1) {
			conv_fail(&c, "cannot make a CommandUUID");
			rc = 500;
			goto out;
		}
		uuid = gen;
	}

	if ((top = plist_new_dict()) == NULL ||
	    (cmdd = plist_new_dict()) == NULL ||
	    (child = plist_new_string(msg->name)) == NULL) {
		c.oom = 1;
		goto out;
	}
	plist_dict_set_item(cmdd, "RequestType", child);
	for (it = json_object_iter(root); it != NULL;
	     it = json_object_iter_next(root, it)) {
		const struct schema_key *k;

		name = json_object_iter_key(it);
		v = json_object_iter_value(it);

		if (strcmp(name, "request_type") == 0 ||
		    strcmp(name, "command_uuid") == 0)
			continue;
		saved = path_key(&c, name);
		if (strcmp(name, "RequestType") == 0 ||
		    strcmp(name, "CommandUUID") == 0) {
			conv_fail(&c, "give it as %s",
			    name[1] == 'e' ? "request_type" : "command_uuid");
			goto out;
		}
		if ((k = schema_key_find(msg->keys, msg->nkeys, name)) ==
		    NULL) {
			conv_fail(&c,
			    "unknown key for %s (Apple's schema does "
			    "not list it; the raw plist form, PUT, takes any "
			    "key)",
			    msg->name);
			goto out;
		}
		if ((child = conv_value(&c, v, k)) == NULL)
			goto out;
		plist_dict_set_item(cmdd, name, child);
		path_pop(&c, saved);
	}
	for (saved = 0; saved < msg->nkeys; saved++)
		if (msg->keys[saved].key != NULL && msg->keys[saved].required &&
		    json_object_get(root, msg->keys[saved].key) == NULL) {
			conv_fail(&c, "%s: required key missing",
			    msg->keys[saved].key);
			goto out;
		}
	plist_dict_set_item(top, "Command", cmdd);
	cmdd = NULL;
	if ((child = plist_new_string(uuid)) == NULL) {
		c.oom = 1;
		goto out;
	}
	plist_dict_set_item(top, "CommandUUID", child);
	if (plist_to_xml_buf(top, &xml, &xlen) == -1) {
		c.oom = 1;
		goto out;
	}
	if ((pe = plist_safe_parse(xml, xlen, &check)) != PLIST_SAFE_OK) {
		conv_fail(&c, "the converted plist does not parse back: %s",
		    plist_safe_strerror(pe));
		goto out;
	}
	if ((*out = command_new(uuid, msg->name, (unsigned char *)xml, xlen)) ==
	    NULL) {
		xml = NULL; /* freed by command_new */
		c.oom = 1;
		goto out;
	}
	xml = NULL;
	rc = 0;
out:
	if (c.oom) {
		conv_fail(&c, "out of memory");
		rc = 500;
	}
	free(xml);
	plist_free(check);
	plist_free(cmdd);
	plist_free(top);
	json_decref(root);
	return rc;
}

/* ---- raw plist checks ---- */

static const char *
plist_type_name(plist_t node)
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
	default:
		return "other";
	}
}

static int check_dict(
    struct conv *, plist_t, const struct schema_key *, size_t);

/*
 * Check one plist node against schema key k: its type (an <integer> is
 * also a real), strings without NUL bytes, and dicts and arrays
 * recursively. Returns 0, or -1 with the error recorded.
 */
static int
check_node(struct conv *c, plist_t node, const struct schema_key *k)
{
	static const plist_type want[SCHEMA__MAX] = {
	    [SCHEMA_STRING] = PLIST_STRING,
	    [SCHEMA_DATA] = PLIST_DATA,
	    [SCHEMA_BOOL] = PLIST_BOOLEAN,
	    [SCHEMA_INTEGER] = PLIST_UINT,
	    [SCHEMA_REAL] = PLIST_REAL,
	    [SCHEMA_DATE] = PLIST_DATE,
	    [SCHEMA_DICT] = PLIST_DICT,
	    [SCHEMA_ARRAY] = PLIST_ARRAY,
	};
	plist_type  t = plist_get_node_type(node);
	const char *s;
	uint64_t    len = 0;
	uint32_t    i, n;
	size_t	    saved;

	if (k->type == SCHEMA_ANY || (unsigned)k->type >= SCHEMA__MAX)
		return 0;
	if (t != want[k->type] &&
	    !(k->type == SCHEMA_REAL && t == PLIST_UINT)) {
		conv_fail(c, "want %s, got %s", schema_type_name(k->type),
		    plist_type_name(node));
		return -1;
	}
	if (t == PLIST_STRING) {
		s = plist_get_string_ptr(node, &len);
		if (s == NULL || strlen(s) != len) {
			conv_fail(c, "string contains a NUL byte");
			return -1;
		}
	}
	if (k->nsubkeys == 0)
		return 0;
	if (t == PLIST_DICT)
		return check_dict(c, node, k->subkeys, k->nsubkeys);
	n = plist_array_get_size(node);
	for (i = 0; i < n; i++) {
		saved = path_index(c, i);
		if (check_node(
			c, plist_array_get_item(node, i), &k->subkeys[0]) == -1)
			return -1;
		path_pop(c, saved);
	}
	return 0;
}

/* Check the keys[0..n) a dict holds, and that the required ones are
 * there; keys the schema does not list are let through. 0 or -1. */
static int
check_dict(
    struct conv *c, plist_t dict, const struct schema_key *keys, size_t n)
{
	plist_t node;
	size_t	i, saved;

	for (i = 0; i < n; i++) {
		if (keys[i].key == NULL)
			continue;
		saved = path_key(c, keys[i].key);
		node = plist_dict_get_item(dict, keys[i].key);
		if (node == NULL && keys[i].required) {
			conv_fail(c, "required key missing");
			return -1;
		}
		if (node != NULL && check_node(c, node, &keys[i]) == -1)
			return -1;
		path_pop(c, saved);
	}
	return 0;
}

int
command_from_plist(
    const char *buf, size_t len, struct command **out, char *err, size_t errsz)
{
	const struct schema_msg *msg;
	struct conv		 c;
	enum plist_safe_err	 pe;
	unsigned char		*raw;
	plist_t			 root = NULL, cmdd;
	const char		*uuid, *rtype;
	int			 rc = 400;

	*out = NULL;
	conv_init(&c, err, errsz);
	if ((pe = plist_safe_parse(buf, len, &root)) != PLIST_SAFE_OK) {
		conv_fail(&c, "%s", plist_safe_strerror(pe));
		goto out;
	}
	if (!command_utf8_valid(buf, len)) {
		conv_fail(&c, "the plist is not valid UTF-8");
		goto out;
	}
	uuid = plist_dict_str(root, "CommandUUID");
	if (uuid == NULL || !uuid_ok(uuid, strlen(uuid))) {
		conv_fail(&c,
		    "CommandUUID: want a string of 1 to %d "
		    "printable ASCII characters without spaces",
		    COMMAND_UUID_MAX);
		goto out;
	}
	cmdd = plist_dict_get_item(root, "Command");
	if (cmdd == NULL || plist_get_node_type(cmdd) != PLIST_DICT) {
		conv_fail(&c, "Command: %s",
		    cmdd == NULL ? "missing" : "want a dictionary");
		goto out;
	}
	if ((rtype = plist_dict_str(cmdd, "RequestType")) == NULL) {
		conv_fail(&c, "Command.RequestType: missing or not a string");
		goto out;
	}
	if ((msg = schema_command_find(rtype)) == NULL) {
		conv_fail(&c,
		    "Command.RequestType: unknown RequestType "
		    "\"%.64s\"",
		    rtype);
		goto out;
	}
	c.rtype = msg->name;
	path_key(&c, "Command");
	if (check_dict(&c, cmdd, msg->keys, msg->nkeys) == -1)
		goto out;
	if ((raw = malloc(len > 0 ? len : 1)) == NULL) {
		rc = 500;
		goto out;
	}
	memcpy(raw, buf, len);
	if ((*out = command_new(uuid, msg->name, raw, len)) == NULL) {
		rc = 500;
		goto out;
	}
	rc = 0;
out:
	if (rc == 500)
		conv_fail(&c, "out of memory");
	plist_free(root);
	return rc;
}

/* ---- expiry ---- */

int
command_expires_parse(const char *s, uint64_t now, uint64_t *out)
{
	long long secs;
	uint64_t  us;

	if (s == NULL || *s == '\0')
		return -1;
	if (*s >= '0' && *s <= '9' && strchr(s, '-') == NULL) {
		if (num_parse(s, 1, COMMAND_EXPIRES_MAX, &secs) == -1)
			return -1;
		*out = now + (uint64_t)secs * 1000000u;
		return 0;
	}
	/* A time, as far ahead at most as a number of seconds may go. */
	if (time_parse_rfc3339(s, &us) == -1 || us <= now ||
	    us - now > (uint64_t)COMMAND_EXPIRES_MAX * 1000000u)
		return -1;
	*out = us;
	return 0;
}

/* ---- enqueue ---- */

static const char *const outcome_names[COMMAND__MAX] = {
    [COMMAND_QUEUED] = "queued",
    [COMMAND_UNKNOWN_ENROLLMENT] = "unknown enrollment",
    [COMMAND_ALREADY_QUEUED] = "already queued",
    [COMMAND_INVALID_ID] = "invalid enrollment ID",
};

const char *
command_outcome_name(enum command_outcome o)
{
	if ((unsigned)o >= COMMAND__MAX)
		return "unknown";
	return outcome_names[o];
}

struct enqueue_op {
	const struct command *cmd;
	char *const	     *ids;
	size_t		      nids;
	int		      priority;
	uint64_t	      expires_at;
	int		      nopush;
	store_op_fn	      check; /* may be NULL */
	void		     *check_arg;
	/* outputs, reset on every run */
	enum command_outcome *outcome;
	int		     *push; /* enum push_queued, or NULL */
	size_t		      nqueued;
};

/*
 * Run the caller's check, store the command, then queue it per ID. Run
 * by store_write (perhaps more than once). An unknown enrollment or an
 * ID queued twice in one request is an outcome, not an error; returning
 * non-zero discards the command too, so nothing is kept when no ID could
 * take it.
 */
static int
enqueue_op_run(struct store_txn *t, void *arg)
{
	struct enqueue_op   *op = arg;
	struct store_command sc;
	enum push_queued     pq;
	size_t		     i, n;
	int		     rc;

	op->nqueued = 0;
	for (i = 0; i < op->nids; i++) {
		op->outcome[i] = COMMAND_INVALID_ID;
		if (op->push != NULL)
			op->push[i] = -1;
	}
	if (op->check != NULL && (rc = op->check(t, op->check_arg)) != 0)
		return rc;
	memset(&sc, 0, sizeof(sc));
	sc.uuid = op->cmd->uuid;
	sc.request_type = op->cmd->request_type;
	sc.raw = op->cmd->raw;
	sc.raw_len = op->cmd->raw_len;
	if ((rc = store_command_put(t, &sc)) != 0)
		return rc;
	for (i = 0; i < op->nids; i++) {
		n = strlen(op->ids[i]);
		if (n == 0 || n > MSG_ID_MAX)
			continue;
		rc = store_queue_push(
		    t, op->ids[i], op->cmd->uuid, op->priority, op->expires_at);
		if (rc == 0) {
			op->outcome[i] = COMMAND_QUEUED;
			op->nqueued++;
			pq = PUSHQ_NOPUSH;
			/* The push that wakes the device, in this
			 * transaction: picomdm-notify sends it. */
			if (!op->nopush && (rc = store_push_queue(t,
			    op->ids[i], "enqueue", &pq)) != 0)
				return rc;
			if (op->push != NULL)
				op->push[i] = (int)pq;
		} else if (rc == STORE_ENOTFOUND)
			op->outcome[i] = COMMAND_UNKNOWN_ENROLLMENT;
		else if (rc == STORE_EEXIST)
			op->outcome[i] = COMMAND_ALREADY_QUEUED;
		else if (rc != STORE_EINVAL)
			return rc;
	}
	return op->nqueued > 0 ? 0 : STORE_ENOTFOUND;
}

int
command_enqueue(struct store *s, const struct command *cmd, char *const *ids,
    size_t nids, int priority, uint64_t expires_at,
    enum command_outcome *outcome, size_t *nqueued)
{
	return command_enqueue_push(s, cmd, ids, nids, priority, expires_at, 0,
	    NULL, NULL, outcome, NULL, nqueued);
}

int
command_enqueue_push(struct store *s, const struct command *cmd,
    char *const *ids, size_t nids, int priority, uint64_t expires_at,
    int nopush, store_op_fn check, void *check_arg,
    enum command_outcome *outcome, int *push, size_t *nqueued)
{
	struct enqueue_op op;
	int		  rc;

	*nqueued = 0;
	if (priority < 0 || priority > 255)
		return STORE_EINVAL;
	memset(&op, 0, sizeof(op));
	op.cmd = cmd;
	op.ids = ids;
	op.nids = nids;
	op.priority = priority;
	op.expires_at = expires_at;
	op.outcome = outcome;
	op.nopush = nopush;
	op.push = push;
	op.check = check;
	op.check_arg = check_arg;
	rc = store_write(s, enqueue_op_run, &op);
	*nqueued = rc == 0 ? op.nqueued : 0;
	return rc;
}

/* ---- plist and results as JSON ---- */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t	 len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1fu;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0fu;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07u;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int
command_utf8_valid(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t		     i, l;

	for (i = 0; i < n; i += l)
		if ((l = utf8_seq(s + i, n - i)) == 0)
			return 0;
	return 1;
}

void
command_utf8_fix(char *s)
{
	size_t i, l, n = strlen(s);

	for (i = 0; i < n; i += l) {
		l = utf8_seq((const unsigned char *)s + i, n - i);
		if (l == 0 || (l == 1 && (unsigned char)s[i] < 0x20)) {
			s[i] = '?';
			l = 1;
		}
	}
}

/* A JSON string of s[0..n), invalid UTF-8 replaced by U+FFFD. */
static json_t *
json_str_lossy(const char *s, size_t n)
{
	struct buf b;
	json_t	  *j = NULL;
	size_t	   i, l;

	if (command_utf8_valid(s, n))
		return json_stringn(s, n);
	memset(&b, 0, sizeof(b));
	for (i = 0; i < n; i += l) {
		if ((l = utf8_seq((const unsigned char *)s + i, n - i)) == 0) {
			l = 1;
			if (buf_append(&b, "\xef\xbf\xbd", 3) == -1)
				goto out;
		} else if (buf_append(&b, s + i, l) == -1)
			goto out;
	}
	j = json_stringn(b.len > 0 ? (const char *)b.p : "", b.len);
out:
	buf_free(&b);
	return j;
}

/* An Apple date (seconds since 2001) as RFC 3339. */
static json_t *
json_apple_date(int32_t sec)
{
	struct tm tm;
	time_t	  t = (time_t)((long long)sec + APPLE_EPOCH);
	char	  buf[40];

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		return json_null();
	return json_string(buf);
}

/* Add v (a new reference, may be NULL) to obj; -1 when NULL or failed. */
static int
obj_set(json_t *obj, const char *key, json_t *v)
{
	if (v == NULL)
		return -1;
	return json_object_set_new(obj, key, v);
}

/*
 * The plist to JSON conversion of command.h. Recursion is bounded by the
 * depth plist_safe_parse allowed for the tree.
 */
json_t *
command_plist_json(plist_t node)
{
	json_t	       *j = NULL, *child;
	plist_dict_iter it = NULL;
	plist_t		v;
	char	       *key = NULL, *b64;
	const char     *p;
	uint64_t	u = 0, len = 0;
	double		d = 0;
	uint8_t		b = 0;
	int32_t		sec = 0, usec = 0;
	uint32_t	i, n;

	switch (plist_get_node_type(node)) {
	case PLIST_DICT:
		if ((j = json_object()) == NULL)
			return NULL;
		plist_dict_new_iter(node, &it);
		if (it == NULL)
			goto fail;
		for (;;) {
			v = NULL;
			plist_dict_next_item(node, it, &key, &v);
			if (v == NULL || key == NULL)
				break;
			/* JSON keys must be UTF-8; a device's may not be. */
			command_utf8_fix(key);
			child = command_plist_json(v);
			if (obj_set(j, key, child) == -1)
				goto fail;
			free(key);
			key = NULL;
		}
		free(key);
		free(it);
		return j;
	case PLIST_ARRAY:
		if ((j = json_array()) == NULL)
			return NULL;
		n = plist_array_get_size(node);
		for (i = 0; i < n; i++)
			if (json_array_append_new(j,
				command_plist_json(
				    plist_array_get_item(node, i))) == -1)
				goto fail;
		return j;
	case PLIST_STRING:
		p = plist_get_string_ptr(node, &len);
		return json_str_lossy(
		    p != NULL ? p : "", p != NULL ? (size_t)len : 0);
	case PLIST_BOOLEAN:
		plist_get_bool_val(node, &b);
		return json_boolean(b);
	case PLIST_UINT:
		plist_get_uint_val(node, &u);
		return json_integer((json_int_t)u);
	case PLIST_UID:
		plist_get_uid_val(node, &u);
		return json_integer((json_int_t)u);
	case PLIST_REAL:
		plist_get_real_val(node, &d);
		return isfinite(d) ? json_real(d) : json_null();
	case PLIST_DATA:
		p = plist_get_data_ptr(node, &len);
		if ((b64 = base64_encode(p != NULL ? p : "",
			 p != NULL ? (size_t)len : 0)) == NULL)
			return NULL;
		j = json_string(b64);
		free(b64);
		return j;
	case PLIST_DATE:
		plist_get_date_val(node, &sec, &usec);
		return json_apple_date(sec);
	default:
		return json_null();
	}
fail:
	free(key);
	free(it);
	json_decref(j);
	return NULL;
}

/* A string key of an ErrorChain item as JSON, or null. */
static json_t *
chain_str(plist_t item, const char *key)
{
	plist_t	    v = plist_dict_get_item(item, key);
	const char *p;
	uint64_t    len = 0;

	if (v == NULL || plist_get_node_type(v) != PLIST_STRING)
		return json_null();
	p = plist_get_string_ptr(v, &len);
	return p != NULL ? json_str_lossy(p, (size_t)len) : json_null();
}

/*
 * ErrorChain items are "any" in Apple's schema (the mdm/commands YAML):
 * ErrorCode is an integer in practice but taken as it comes.
 */
json_t *
command_error_chain(const void *raw, size_t len)
{
	plist_t	 root = NULL, ec, item, code;
	json_t	*arr = NULL, *o;
	uint32_t i, n;

	if (raw == NULL || len == 0 ||
	    memmem(raw, len, "ErrorChain", 10) == NULL)
		return NULL;
	if (plist_safe_parse(raw, len, &root) != PLIST_SAFE_OK)
		return NULL;
	ec = plist_dict_get_item(root, "ErrorChain");
	if (ec == NULL || plist_get_node_type(ec) != PLIST_ARRAY ||
	    (arr = json_array()) == NULL)
		goto out;
	n = plist_array_get_size(ec);
	for (i = 0; i < n; i++) {
		item = plist_array_get_item(ec, i);
		if (plist_get_node_type(item) != PLIST_DICT)
			continue;
		code = plist_dict_get_item(item, "ErrorCode");
		o = json_object();
		if (o == NULL ||
		    obj_set(o, "code",
			code != NULL &&
				(plist_get_node_type(code) == PLIST_UINT ||
				    plist_get_node_type(code) == PLIST_STRING)
			    ? command_plist_json(code)
			    : json_null()) == -1 ||
		    obj_set(o, "domain", chain_str(item, "ErrorDomain")) ==
			-1 ||
		    obj_set(o, "description",
			chain_str(item, "LocalizedDescription")) == -1 ||
		    obj_set(o, "us_english_description",
			chain_str(item, "USEnglishDescription")) == -1 ||
		    json_array_append_new(arr, o) == -1) {
			json_decref(arr);
			arr = NULL;
			goto out;
		}
	}
out:
	plist_free(root);
	return arr;
}

json_t *
command_json_time(uint64_t us)
{
	char buf[40];

	if (us == 0)
		return json_null();
	time_format(us, buf, sizeof(buf));
	return buf[0] != '\0' ? json_string(buf) : json_null();
}

json_t *
command_json_str(const char *s)
{
	return s != NULL ? json_str_lossy(s, strlen(s)) : json_null();
}

json_t *
command_result_json(const struct store_result *r, int full)
{
	json_t		   *o, *ec;
	plist_t		    root = NULL;
	enum plist_safe_err pe;
	char		   *b64;

	if ((o = json_object()) == NULL)
		return NULL;
	if (obj_set(o, "seq", json_integer((json_int_t)r->seq)) == -1 ||
	    obj_set(o, "enrollment_id", command_json_str(r->enrollment_id)) ==
		-1 ||
	    obj_set(o, "command_uuid", command_json_str(r->uuid)) == -1 ||
	    obj_set(o, "status", json_string(cmd_status_name(r->status))) ==
		-1 ||
	    obj_set(o, "received_at", command_json_time(r->received_at)) ==
		-1 ||
	    obj_set(o, "known", json_boolean(r->known)) == -1 ||
	    obj_set(o, "well_formed", json_boolean(r->well_formed)) == -1 ||
	    obj_set(o, "length", json_integer((json_int_t)r->raw_len)) == -1)
		goto fail;
	ec = command_error_chain(r->raw, r->raw_len);
	if (obj_set(o, "error_chain", ec != NULL ? ec : json_null()) == -1)
		goto fail;
	if (!full)
		return o;
	if (command_utf8_valid(r->raw, r->raw_len)) {
		if (obj_set(o, "raw",
			json_stringn(r->raw_len > 0 ? (const char *)r->raw : "",
			    r->raw_len)) == -1)
			goto fail;
	} else {
		if ((b64 = base64_encode(r->raw, r->raw_len)) == NULL)
			goto fail;
		if (obj_set(o, "raw_base64", json_string(b64)) == -1) {
			free(b64);
			goto fail;
		}
		free(b64);
	}
	pe = plist_safe_parse((const char *)r->raw, r->raw_len, &root);
	if (pe == PLIST_SAFE_OK) {
		if (obj_set(o, "plist", command_plist_json(root)) == -1)
			goto fail;
	} else if (obj_set(o, "plist", json_null()) == -1 ||
	    obj_set(o, "plist_error", json_string(plist_safe_strerror(pe))) ==
		-1)
		goto fail;
	plist_free(root);
	return o;
fail:
	plist_free(root);
	json_decref(o);
	return NULL;
}

json_t *
command_queue_item_json(
    const struct store_queue_item *q, const char *request_type, uint64_t now)
{
	json_t *o;

	o = json_object();
	if (o == NULL ||
	    obj_set(o, "command_uuid", command_json_str(q->uuid)) == -1 ||
	    obj_set(o, "request_type", command_json_str(request_type)) == -1 ||
	    obj_set(o, "priority", json_integer(q->priority)) == -1 ||
	    obj_set(o, "status", json_string(cmd_status_name(q->status))) ==
		-1 ||
	    obj_set(o, "seq", json_integer((json_int_t)q->seq)) == -1 ||
	    obj_set(o, "enqueued_at", command_json_time(q->enqueued_at)) ==
		-1 ||
	    obj_set(o, "expires_at", command_json_time(q->expires_at)) == -1 ||
	    obj_set(o, "expired",
		json_boolean(q->expires_at != 0 && q->expires_at <= now)) ==
		-1 ||
	    obj_set(o, "sent_count", json_integer((json_int_t)q->sent_count)) ==
		-1 ||
	    obj_set(o, "not_now_count",
		json_integer((json_int_t)q->not_now_count)) == -1 ||
	    obj_set(o, "updated_at", command_json_time(q->updated_at)) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}
