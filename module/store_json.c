/*
 * store_json.c - an entry of the store and its JSON form, both ways: the
 * codec of dump and restore. Keys and values are coded by the layout the
 * registry (store_kinds.c) gives their sub-database, records field by
 * field from their kind's field table; secrets (their catalogue row says
 * so) are shown as length and SHA-256 unless asked for, and the secret
 * keys inside raw plists are redacted.
 *
 * Exact by construction: an entry's JSON form is only used when coding it
 * back gives the same bytes (store_dump.c), so a restore rebuilds every
 * byte. A new kind needs nothing here unless it brings a new key or
 * value layout (enum kind_key, enum kind_val in store_kinds.h); its
 * fields are a table in store_kinds.c. See ARCHITECTURE.md, "The store
 * and its registry".
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <lmdb.h>

#include "picomdm/catalogue.h"
#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

/* ---- JSON forms of keys and values ---- */

static json_t *
j_u64(uint64_t x)
{
	return x > (uint64_t)INT64_MAX ? NULL : json_integer((json_int_t)x);
}

int
j_get_u64(const json_t *j, uint64_t *out)
{
	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return -1;
	*out = (uint64_t)json_integer_value(j);
	return 0;
}

/* RFC 3339 UTC with microseconds: exact, and read by time_parse_rfc3339. */
static json_t *
j_time(uint64_t us)
{
	char	  buf[64];
	time_t	  t = (time_t)(us / 1000000u);
	struct tm tm;
	size_t	  n;
	int	  m;

	if (gmtime_r(&t, &tm) == NULL ||
	    (n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
		return NULL;
	m = snprintf(
	    buf + n, sizeof(buf) - n, ".%06uZ", (unsigned)(us % 1000000u));
	if (m < 0 || (size_t)m >= sizeof(buf) - n)
		return NULL;
	return json_string(buf);
}

/* Base64 as a JSON string. */
json_t *
j_b64str(const void *p, size_t n)
{
	char   *s;
	json_t *j;

	if ((s = base64_encode(p, n)) == NULL)
		return NULL;
	j = json_string(s);
	free(s);
	return j;
}

static json_t *
j_b64(const void *p, size_t n)
{
	char   *s;
	json_t *j;

	if ((s = base64_encode(p, n)) == NULL)
		return NULL;
	j = json_pack("{s:s}", "b64", s);
	free(s);
	return j;
}

static json_t *
j_hex(const void *p, size_t n)
{
	char   *s;
	json_t *j;

	if ((s = malloc(n * 2 + 1)) == NULL)
		return NULL;
	hex_encode(p, n, s);
	j = json_string(s);
	free(s);
	return j;
}

/* A secret as it may be shown: length and SHA-256, never the value. */
json_t *
j_secret(const void *p, size_t n)
{
	unsigned char h[32];
	char	      hex[65];

	sha256(p, n, h);
	hex_encode(h, sizeof(h), hex);
	return json_pack("{s:I, s:s}", "length", (json_int_t)n, "sha256", hex);
}

/* A JSON array of the given items; NULL (and every item released) when
 * any item is NULL. */
static json_t *
j_arr(size_t n, json_t *a, json_t *b, json_t *c)
{
	json_t *items[3] = {a, b, c}, *arr;
	size_t	i;
	int	bad = 0;

	for (i = 0; i < n; i++)
		bad |= items[i] == NULL;
	if (bad || (arr = json_array()) == NULL) {
		for (i = 0; i < n; i++)
			json_decref(items[i]);
		return NULL;
	}
	for (i = 0; i < n; i++)
		json_array_append_new(arr, items[i]);
	return arr;
}

/* {"b64": "..."} into an owned buffer; 0 or -1. */
static int
j_get_b64(const json_t *j, unsigned char **out, size_t *n)
{
	const json_t *s;

	if (!json_is_object(j) || json_object_size(j) != 1 ||
	    (s = json_object_get(j, "b64")) == NULL || !json_is_string(s))
		return -1;
	*out = base64_decode(json_string_value(s), json_string_length(s), n);
	return *out == NULL ? -1 : 0;
}

static int
name_index(const char *(*namefn)(int), int max, const char *s)
{
	int i;

	for (i = 0; i < max; i++)
		if (strcmp(namefn(i), s) == 0)
			return i;
	return -1;
}

static const char *
kind_name(int i)
{
	return msg_kind_name((enum msg_kind)i);
}

static const char *
etype_name(int i)
{
	return enroll_type_name((enum enroll_type)i);
}

static const char *
status_name(int i)
{
	return cmd_status_name((enum cmd_status)i);
}

/* A key of length-prefixed strings (KK_STRS) as an array of them; NULL
 * unless the strings cover the key exactly, none empty. */
static json_t *
strs_json(const unsigned char *k, size_t n)
{
	json_t *a = json_array();
	size_t	l, off = 0;

	while (a != NULL && off < n) {
		if (n - off < 3 || (l = (size_t)k[off] << 8 | k[off + 1]) == 0 ||
		    l > n - off - 2 ||
		    json_array_append_new(a,
			json_stringn((const char *)k + off + 2, l)) != 0) {
			json_decref(a);
			return NULL;
		}
		off += 2 + l;
	}
	if (a != NULL && json_array_size(a) == 0) {
		json_decref(a);
		return NULL;
	}
	return a;
}

/* The key of an entry of sub-database d in its JSON form, or NULL when
 * the bytes do not have that sub-database's layout. */
json_t *
key_json(enum store_dbi d, const unsigned char *k, size_t n)
{
	size_t l;

	switch (store_kinds[d].key) {
	case KK_TEXT:
		return json_stringn((const char *)k, n);
	case KK_U64:
		return n == 8 ? j_u64(key_get_u64(k)) : NULL;
	case KK_U64_U64:
		if (n != 16)
			return NULL;
		return j_arr(
		    2, j_u64(key_get_u64(k)), j_u64(key_get_u64(k + 8)), NULL);
	case KK_HASH:
		return n == 32 ? j_hex(k, n) : NULL;
	case KK_U64_MSGKIND:
		if (n != 9 || k[8] >= MSG__MAX)
			return NULL;
		return j_arr(2, j_u64(key_get_u64(k)),
		    json_string(msg_kind_name((enum msg_kind)k[8])), NULL);
	case KK_U64_PRIO_U64:
		if (n != 17)
			return NULL;
		return j_arr(3, j_u64(key_get_u64(k)), json_integer(255 - k[8]),
		    j_u64(key_get_u64(k + 9)));
	case KK_U64_TEXT:
		if (n <= 8)
			return NULL;
		return j_arr(2, j_u64(key_get_u64(k)),
		    json_stringn((const char *)k + 8, n - 8), NULL);
	case KK_TEXT_U64:
		if (n < 11 || (l = (size_t)k[0] << 8 | k[1]) != n - 10 ||
		    l == 0)
			return NULL;
		return j_arr(2, json_stringn((const char *)k + 2, l),
		    j_u64(key_get_u64(k + 2 + l)), NULL);
	case KK_STRS:
		return strs_json(k, n);
	default:
		return NULL;
	}
}

/* The inverse of key_json; 0 or -1. */
int
key_from_json(enum store_dbi d, const json_t *j, struct key *out)
{
	const json_t *a, *b, *c;
	uint64_t      x, y;
	json_int_t    prio;
	size_t	      i;
	int	      kind;

	key_init(out);
	switch (store_kinds[d].key) {
	case KK_TEXT:
		if (!json_is_string(j))
			return -1;
		key_raw(out, json_string_value(j), json_string_length(j));
		break;
	case KK_U64:
		if (j_get_u64(j, &x) == -1)
			return -1;
		key_u64(out, x);
		break;
	case KK_U64_U64:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    j_get_u64(json_array_get(j, 0), &x) == -1 ||
		    j_get_u64(json_array_get(j, 1), &y) == -1)
			return -1;
		key_u64(out, x);
		key_u64(out, y);
		break;
	case KK_HASH:
		if (!json_is_string(j) || json_string_length(j) != 64 ||
		    hex_decode(json_string_value(j), 32, out->b) == -1)
			return -1;
		out->len = 32;
		break;
	case KK_U64_MSGKIND:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    j_get_u64(json_array_get(j, 0), &x) == -1 ||
		    !json_is_string(b = json_array_get(j, 1)) ||
		    (kind = name_index(
			 kind_name, MSG__MAX, json_string_value(b))) < 0)
			return -1;
		key_u64(out, x);
		key_u8(out, (unsigned)kind);
		break;
	case KK_U64_PRIO_U64:
		if (!json_is_array(j) || json_array_size(j) != 3 ||
		    j_get_u64(json_array_get(j, 0), &x) == -1 ||
		    !json_is_integer(a = json_array_get(j, 1)) ||
		    (prio = json_integer_value(a)) < 0 || prio > 255 ||
		    j_get_u64(json_array_get(j, 2), &y) == -1)
			return -1;
		key_u64(out, x);
		key_u8(out, 255u - (unsigned)prio);
		key_u64(out, y);
		break;
	case KK_U64_TEXT:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    j_get_u64(json_array_get(j, 0), &x) == -1 ||
		    !json_is_string(c = json_array_get(j, 1)))
			return -1;
		key_u64(out, x);
		key_raw(out, json_string_value(c), json_string_length(c));
		break;
	case KK_TEXT_U64:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    !json_is_string(c = json_array_get(j, 0)) ||
		    json_string_length(c) > 0xffff ||
		    j_get_u64(json_array_get(j, 1), &x) == -1)
			return -1;
		key_u8(out, (unsigned)(json_string_length(c) >> 8));
		key_u8(out, (unsigned)(json_string_length(c) & 0xff));
		key_raw(out, json_string_value(c), json_string_length(c));
		key_u64(out, x);
		break;
	case KK_STRS:
		if (!json_is_array(j) || json_array_size(j) == 0)
			return -1;
		json_array_foreach((json_t *)(uintptr_t)j, i, c)
		{
			if (!json_is_string(c) || json_string_length(c) == 0 ||
			    strlen(json_string_value(c)) !=
				json_string_length(c))
				return -1;
			key_str(out, json_string_value(c));
		}
		break;
	default:
		return -1;
	}
	return out->overflow || out->len == 0 ? -1 : 0;
}

/*
 * Replace, in a parsed plist, the values of keys the catalogue calls
 * secret (at any depth) by "redacted: N bytes, sha256 HEX". Returns the
 * number replaced, or -1.
 */
static int
plist_redact(plist_t node, enum inv_service svc, int depth)
{
	plist_dict_iter it = NULL;
	plist_t		val, rep;
	char	       *key = NULL, *sval = NULL, txt[128];
	unsigned char	h[32];
	char		hex[65];
	uint64_t	len = 0;
	uint32_t	i, n;
	int		count = 0, r;

	if (depth > PLIST_DEPTH_MAX)
		return 0;
	if (plist_get_node_type(node) == PLIST_ARRAY) {
		n = plist_array_get_size(node);
		for (i = 0; i < n; i++) {
			if ((r = plist_redact(plist_array_get_item(node, i),
				 svc, depth + 1)) < 0)
				return -1;
			count += r;
		}
		return count;
	}
	if (plist_get_node_type(node) != PLIST_DICT)
		return 0;
	plist_dict_new_iter(node, &it);
	for (;;) {
		key = NULL;
		val = NULL;
		plist_dict_next_item(node, it, &key, &val);
		if (key == NULL || val == NULL) {
			free(key);
			break;
		}
		if (!inventory_secret_key(svc, key)) {
			r = plist_redact(val, svc, depth + 1);
			free(key);
			if (r < 0) {
				count = -1;
				break;
			}
			count += r;
			continue;
		}
		sval = NULL;
		len = 0;
		if (plist_get_node_type(val) == PLIST_DATA)
			plist_get_data_val(val, &sval, &len);
		else if (plist_get_node_type(val) == PLIST_STRING) {
			plist_get_string_val(val, &sval);
			len = sval != NULL ? strlen(sval) : 0;
		}
		sha256(sval != NULL ? sval : "", (size_t)len, h);
		hex_encode(h, sizeof(h), hex);
		freezero(sval, (size_t)len);
		snprintf(txt, sizeof(txt), "redacted: %llu bytes, sha256 %s",
		    (unsigned long long)len, hex);
		/* Replacing a value keeps the dict's layout: safe while
		 * iterating. */
		if ((rep = plist_new_string(txt)) == NULL) {
			free(key);
			count = -1;
			break;
		}
		plist_dict_set_item(node, key, rep);
		free(key);
		count++;
	}
	free(it);
	return count;
}

/* A raw plist as text, or base64 when it is not UTF-8. */
static json_t *
plist_json(const unsigned char *p, size_t n)
{
	json_t *j;

	if ((j = json_stringn((const char *)p, n)) != NULL)
		return j;
	return j_b64(p, n);
}

/* A raw plist with its secrets redacted (dumps without --secrets). One
 * that does not parse cannot be vouched for: length and hash only. */
static json_t *
plist_json_redacted(const unsigned char *p, size_t n, enum inv_service svc)
{
	plist_t root = NULL;
	char   *xml = NULL;
	size_t	xlen = 0;
	json_t *j = NULL, *s;
	int	r;

	if (plist_safe_parse((const char *)p, n, &root) != PLIST_SAFE_OK)
		return json_pack("{s:o}", "unparsed", j_secret(p, n));
	if ((r = plist_redact(root, svc, 0)) == 0)
		j = plist_json(p, n);
	else if (r > 0 && plist_to_xml_buf(root, &xml, &xlen) == 0 &&
	    (s = json_stringn(xml, xlen)) != NULL)
		j = json_pack("{s:o}", "redacted_xml", s);
	free(xml);
	plist_free(root);
	return j;
}

/* One field's JSON form; NULL when the bytes do not fit its type. */
static json_t *
field_json(const struct afield *f, const unsigned char *p, size_t n,
    int secrets, enum inv_service svc)
{
	uint64_t x = 0;
	json_t	*j;

	if (n == 8)
		x = key_get_u64(p);
	switch (f->type) {
	case A_STR:
		if ((j = json_stringn((const char *)p, n)) == NULL || secrets ||
		    !afield_secret(f))
			return j;
		/* Text, so it decodes; but shown as length and hash. */
		json_decref(j);
		return j_secret(p, n);
	case A_BYTES:
		if (!secrets && afield_secret(f))
			return j_secret(p, n);
		return j_b64(p, n);
	case A_PLIST:
		return secrets ? plist_json(p, n)
			       : plist_json_redacted(p, n, svc);
	case A_U64:
		return n == 8 ? j_u64(x) : NULL;
	case A_TIME:
		return n == 8 ? j_time(x) : NULL;
	case A_BOOL:
		return n == 8 && x <= 1 ? json_boolean(x) : NULL;
	case A_ETYPE:
		return n == 8 && x < ENROLL__MAX
		    ? json_string(enroll_type_name((enum enroll_type)x))
		    : NULL;
	case A_KIND:
		return n == 8 && x < MSG__MAX
		    ? json_string(msg_kind_name((enum msg_kind)x))
		    : NULL;
	case A_STATUS:
		return n == 8 && x < CMD_STATUS__MAX
		    ? json_string(cmd_status_name((enum cmd_status)x))
		    : NULL;
	case A_HASH:
		return n == 32 ? j_hex(p, n) : NULL;
	}
	return NULL;
}

/*
 * A record as a JSON object, fields in stored order. Fields that do not
 * decode, and unknown tags, appear as "tag_N": {"b64": ...}. NULL when
 * the record itself does not decode (or repeats a field).
 */
static json_t *
rec_json(enum rec_kind kind, const MDB_val *v, int secrets)
{
	const struct store_kind *ak = store_kind_of_rec(kind);
	const struct afield	*f;
	struct rec_r		 r;
	const unsigned char	*p;
	enum inv_service	 svc;
	json_t			*obj, *j;
	size_t			 n, i;
	const char		*fname;
	unsigned		 tag;
	char			 name[16];
	int			 rc;

	if (ak == NULL || rec_open(&r, v, kind) != 0 || v->mv_size < 3 ||
	    ((const unsigned char *)v->mv_data)[2] != REC_VERSION)
		return NULL;
	svc = ak->plist_svc;
	if (kind == REC_MSG && rec_field(v, kind, TAG_MSG_KIND, &p, &n) == 1 &&
	    n == 8 && key_get_u64(p) == MSG_CONNECT)
		svc = INV_COMMAND;
	if ((obj = json_object()) == NULL)
		return NULL;
	while ((rc = rec_next(&r, &tag, &p, &n)) == 1) {
		for (i = 0, f = NULL; i < ak->nf && f == NULL; i++)
			if (ak->f[i].tag == tag)
				f = &ak->f[i];
		j = f != NULL ? field_json(f, p, n, secrets, svc) : NULL;
		if (j != NULL)
			fname = f->name;
		else {
			snprintf(name, sizeof(name), "tag_%u", tag);
			fname = name;
			if ((j = j_b64(p, n)) == NULL)
				break;
		}
		if (json_object_get(obj, fname) != NULL) {
			json_decref(j);
			break;
		}
		json_object_set_new(obj, fname, j);
	}
	if (rc != 0) {
		json_decref(obj);
		return NULL;
	}
	return obj;
}

/* Is j a value shown in place of a secret (the dump lacks it)? */
static int
j_is_redacted(const json_t *j)
{
	return json_is_object(j) &&
	    (json_object_get(j, "sha256") != NULL ||
		json_object_get(j, "redacted_xml") != NULL ||
		json_object_get(j, "unparsed") != NULL);
}

/* Append one field from its JSON form; 0, or -1 with *why set. */
static int
field_from_json(
    const struct afield *f, const json_t *j, struct rec_w *w, const char **why)
{
	unsigned char *b = NULL, h[32];
	size_t	       n;
	uint64_t       x;
	int	       i;

	if (j_is_redacted(j)) {
		*why = "a secret is missing (dump made without --secrets)";
		return -1;
	}
	*why = "field value of the wrong type";
	switch (f->type) {
	case A_STR:
		if (!json_is_string(j))
			return -1;
		rec_bytes(
		    w, f->tag, json_string_value(j), json_string_length(j));
		return 0;
	case A_PLIST:
	case A_BYTES:
		/* A plist is its text, or base64 when it is not text. */
		if (f->type == A_PLIST && json_is_string(j)) {
			rec_bytes(w, f->tag, json_string_value(j),
			    json_string_length(j));
			return 0;
		}
		if (j_get_b64(j, &b, &n) == -1)
			return -1;
		rec_bytes(w, f->tag, b, n);
		freezero(b, n);
		return 0;
	case A_U64:
		if (j_get_u64(j, &x) == -1)
			return -1;
		break;
	case A_TIME:
		if (!json_is_string(j) ||
		    time_parse_rfc3339(json_string_value(j), &x) == -1)
			return -1;
		break;
	case A_BOOL:
		if (!json_is_boolean(j))
			return -1;
		x = json_is_true(j);
		break;
	case A_ETYPE:
	case A_KIND:
	case A_STATUS:
		if (!json_is_string(j))
			return -1;
		i = name_index(f->type == A_ETYPE ? etype_name
			: f->type == A_KIND	  ? kind_name
						  : status_name,
		    f->type == A_ETYPE	    ? ENROLL__MAX
			: f->type == A_KIND ? MSG__MAX
					    : CMD_STATUS__MAX,
		    json_string_value(j));
		if (i < 0)
			return -1;
		x = (uint64_t)i;
		break;
	case A_HASH:
		if (!json_is_string(j) || json_string_length(j) != 64 ||
		    hex_decode(json_string_value(j), 32, h) == -1)
			return -1;
		rec_bytes(w, f->tag, h, 32);
		return 0;
	default:
		return -1;
	}
	rec_u64(w, f->tag, x);
	return 0;
}

/* A record from its JSON form into w (rec_begin'd here); 0 or -1. */
static int
rec_from_json(
    enum rec_kind kind, const json_t *obj, struct rec_w *w, const char **why)
{
	const struct store_kind *ak = store_kind_of_rec(kind);
	const struct afield	*f;
	const char		*name;
	json_t			*j;
	unsigned char		*b;
	size_t			 i, n;
	long long		 tag;

	rec_begin(w, kind);
	if (ak == NULL || !json_is_object(obj)) {
		*why = "value is not a record";
		return -1;
	}
	json_object_foreach((json_t *)(uintptr_t)obj, name, j)
	{
		if (strncmp(name, "tag_", 4) == 0) {
			if (num_parse(name + 4, 0, 255, &tag) == -1 ||
			    j_get_b64(j, &b, &n) == -1) {
				*why = "bad tag_N field";
				return -1;
			}
			rec_bytes(w, (unsigned)tag, b, n);
			freezero(b, n);
			continue;
		}
		for (i = 0, f = NULL; i < ak->nf && f == NULL; i++)
			if (strcmp(ak->f[i].name, name) == 0)
				f = &ak->f[i];
		if (f == NULL) {
			*why = "unknown field";
			return -1;
		}
		if (field_from_json(f, j, w, why) == -1)
			return -1;
	}
	if (w->err) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* The value of an entry of d in JSON form; NULL when it does not fit. */
json_t *
val_json(enum store_dbi d, const MDB_val *v, int secrets)
{
	const unsigned char *p = v->mv_data;

	switch (store_kinds[d].val) {
	case KV_U64:
		return v->mv_size == 8 ? j_u64(key_get_u64(p)) : NULL;
	case KV_TEXT:
		return json_stringn((const char *)p, v->mv_size);
	case KV_PRIO_SEQ:
		if (v->mv_size != 9)
			return NULL;
		return j_arr(2, json_integer(255 - p[0]),
		    j_u64(key_get_u64(p + 1)), NULL);
	case KV_RECORD:
		return rec_json(store_kinds[d].rec, v, secrets);
	default:
		return NULL;
	}
}

/* The inverse of val_json into out (reset here); 0 or -1 with *why. */
int
val_from_json(
    enum store_dbi d, const json_t *j, struct buf *out, const char **why)
{
	unsigned char b[9];
	struct rec_w  w;
	uint64_t      x;
	json_int_t    prio;
	int	      rc;

	out->len = 0;
	*why = "value of the wrong type";
	switch (store_kinds[d].val) {
	case KV_U64:
		if (j_get_u64(j, &x) == -1)
			return -1;
		be64(b, x);
		return buf_append(out, b, 8);
	case KV_TEXT:
		if (!json_is_string(j))
			return -1;
		return buf_append(
		    out, json_string_value(j), json_string_length(j));
	case KV_PRIO_SEQ:
		if (!json_is_array(j) || json_array_size(j) != 2 ||
		    !json_is_integer(json_array_get(j, 0)) ||
		    (prio = json_integer_value(json_array_get(j, 0))) < 0 ||
		    prio > 255 || j_get_u64(json_array_get(j, 1), &x) == -1)
			return -1;
		b[0] = (unsigned char)(255 - prio);
		be64(b + 1, x);
		return buf_append(out, b, 9);
	case KV_RECORD:
		rc = rec_from_json(store_kinds[d].rec, j, &w, why);
		if (rc == 0 && buf_append(out, w.b.p, w.b.len) == -1) {
			*why = "out of memory";
			rc = -1;
		}
		freezero(w.b.p, w.b.cap);
		return rc;
	default:
		return -1;
	}
}
