/*
 * inventory.c - the inventory of one device: every key of its stored raw
 * check-in messages and command reports, and the fields its records
 * keep (of every kind the registry of record kinds links to the
 * catalogue, read by store_fields.c), each labelled with its row of the
 * catalogue (catalogue.c), with when it was received and what it came
 * through; secrets as length and SHA-256 only. See ARCHITECTURE.md,
 * "The data catalogue, the inventory and deletion".
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "picomdm/inventory.h"
#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/store.h"
#include "picomdm/store_ade.h"
#include "picomdm/store_enroll.h"
#include "picomdm/store_vpp.h"
#include "picomdm/util.h"

/* ---- the inventory of one device ---- */

/*
 * The raw messages as Apple sent them (every key, known or not) and the
 * command reports are walked key by key, and each key is labelled with
 * its row of the catalogue: service, message, purpose, secret or not.
 * Fields kept in decoded records are listed too, with the time they were
 * set, since a record may keep what the latest message no longer carries
 * (an UnlockToken from an earlier TokenUpdate).
 */

static json_t *
j_time(uint64_t us)
{
	char buf[40];

	if (us == 0)
		return json_null();
	time_format(us, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
j_str(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* Seconds from the Unix epoch to Apple's (2001-01-01). */
#define APPLE_EPOCH 978307200LL

#define P_UNKNOWN "not used; kept in the raw message as received"

/* ---- inventory ---- */

struct inv_ctx {
	const char *arg;
	char	   *device_id;
	char	   *serial;
	json_t	   *enrollments;
	json_t	   *rows[INV__MAX];
	int	    found;
	const char *rec_topic; /* topic of the record being listed */
	struct store_txn *t;   /* for the VPP app metadata */
	json_t	   *vpp_tokens; /* VPP tokens whose fields are listed */
};

/* Where a walked plist came from. */
struct inv_src {
	enum inv_service svc;
	const char	*enrollment;
	const char	*message;     /* shown */
	const char	*cat_message; /* catalogue message */
	const char	*source;      /* "message", "report", "record" */
	uint64_t	 at;
	const char	*topic;
	json_t		*extra; /* more members for each row (borrowed) */
};

static json_t *
j_digest(const void *p, size_t n, int secret)
{
	unsigned char h[32];
	char	      hex[65];

	sha256(p, n, h);
	hex_encode(h, sizeof(h), hex);
	if (secret)
		return json_pack("{s:b, s:I, s:s}", "secret", 1, "length",
		    (json_int_t)n, "sha256", hex);
	return json_pack("{s:I, s:s}", "length", (json_int_t)n, "sha256", hex);
}

/* Append one row: what is held, where from, and what it is for. */
static void
inv_row(struct inv_ctx *c, const struct inv_src *s, const char *field,
    json_t *value)
{
	const struct inv_row *r;
	json_t		     *row;
	const char	     *k;
	json_t		     *v;

	r = inventory_find(s->svc, s->cat_message, field);
	row = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:s, s:s}",
	    "enrollment", s->enrollment, "source", s->source, "message",
	    s->message, "field", field, "value",
	    value != NULL ? value : json_null(), "received_at", j_time(s->at),
	    "topic", j_str(s->topic), "purpose",
	    r != NULL ? r->purpose : P_UNKNOWN, "kept",
	    r != NULL ? inventory_kept_name(r->kept) : "raw");
	if (row == NULL)
		return;
	if (s->extra != NULL)
		json_object_foreach(s->extra, k, v) json_object_set(row, k, v);
	json_array_append_new(c->rows[s->svc], row);
}

/* A plist date as RFC 3339. */
static json_t *
plist_date_json(plist_t node)
{
	int32_t sec = 0, usec = 0;
	char	buf[40];

	plist_get_date_val(node, &sec, &usec);
	time_format((uint64_t)(APPLE_EPOCH + sec) * 1000000u +
		(uint64_t)(usec > 0 ? usec : 0),
	    buf, sizeof(buf));
	return json_string(buf);
}

/*
 * List every key of a plist node, depth first: one row per key (dicts
 * and arrays as a count, their items after them). The values of keys
 * the catalogue calls secret are replaced by length and SHA-256, and
 * what is under them is not walked.
 */
static void
inv_walk(struct inv_ctx *c, const struct inv_src *s, plist_t node,
    const char *path, const char *key, int depth)
{
	plist_dict_iter it = NULL;
	plist_t		val;
	char	       *k, *str = NULL, sub[1024];
	uint64_t	len = 0, u = 0;
	uint32_t	i, n;
	uint8_t		b = 0;
	double		d = 0;
	int		secret;
	json_t	       *v;

	secret = key != NULL && inventory_secret_key(s->svc, key);
	switch (plist_get_node_type(node)) {
	case PLIST_DICT:
		if (secret) {
			inv_row(c, s, path, json_pack("{s:b}", "secret", 1));
			return;
		}
		if (*path != '\0')
			inv_row(c, s, path,
			    json_pack("{s:i}", "keys",
				(int)plist_dict_get_size(node)));
		if (depth >= PLIST_DEPTH_MAX)
			return;
		plist_dict_new_iter(node, &it);
		for (;;) {
			k = NULL;
			val = NULL;
			plist_dict_next_item(node, it, &k, &val);
			if (k == NULL || val == NULL) {
				free(k);
				break;
			}
			snprintf(sub, sizeof(sub), "%s%s%s", path,
			    *path ? "." : "", k);
			inv_walk(c, s, val, sub, k, depth + 1);
			free(k);
		}
		free(it);
		return;
	case PLIST_ARRAY:
		n = plist_array_get_size(node);
		inv_row(c, s, path,
		    secret ? json_pack("{s:b}", "secret", 1)
			   : json_pack("{s:i}", "items", (int)n));
		if (secret || depth >= PLIST_DEPTH_MAX)
			return;
		for (i = 0; i < n; i++) {
			snprintf(sub, sizeof(sub), "%s[%u]", path, i);
			inv_walk(c, s, plist_array_get_item(node, i), sub, key,
			    depth + 1);
		}
		return;
	case PLIST_STRING:
		plist_get_string_val(node, &str);
		len = str != NULL ? strlen(str) : 0;
		if (secret)
			v = j_digest(str ? str : "", (size_t)len, 1);
		else if ((v = json_string(str ? str : "")) == NULL)
			v = j_digest(str ? str : "", (size_t)len, 0);
		freezero(str, (size_t)len);
		break;
	case PLIST_DATA:
		plist_get_data_val(node, &str, &len);
		v = j_digest(str ? str : "", (size_t)len, secret);
		freezero(str, (size_t)len);
		break;
	case PLIST_BOOLEAN:
		plist_get_bool_val(node, &b);
		v = secret ? json_pack("{s:b}", "secret", 1) : json_boolean(b);
		break;
	case PLIST_UINT:
		plist_get_uint_val(node, &u);
		v = secret ? json_pack("{s:b}", "secret", 1)
			   : json_integer((json_int_t)u);
		break;
	case PLIST_REAL:
		plist_get_real_val(node, &d);
		v = secret ? json_pack("{s:b}", "secret", 1) : json_real(d);
		break;
	case PLIST_DATE:
		v = secret ? json_pack("{s:b}", "secret", 1)
			   : plist_date_json(node);
		break;
	default:
		v = json_null();
		break;
	}
	inv_row(c, s, path, v);
}

/* Parse a raw plist and walk it; one row for raw bytes that do not parse
 * (their content is not shown: it may hold anything). */
static void
inv_raw(struct inv_ctx *c, const struct inv_src *s, const unsigned char *raw,
    size_t len)
{
	plist_t root = NULL;

	if (plist_safe_parse((const char *)raw, len, &root) != PLIST_SAFE_OK) {
		inv_row(c, s, "(unparsed raw bytes)", j_digest(raw, len, 0));
		return;
	}
	inv_walk(c, s, root, "", NULL, 0);
	plist_free(root);
}

/* A stored raw message: every key it holds. */
static int
inv_msg_cb(const struct store_msg *m, void *arg)
{
	struct inv_ctx *c = arg;
	struct inv_src	s;

	memset(&s, 0, sizeof(s));
	s.svc = m->kind == MSG_CONNECT ? INV_COMMAND : INV_CHECKIN;
	s.enrollment = m->enrollment_id;
	s.message = msg_kind_name(m->kind);
	s.cat_message = m->kind == MSG_CONNECT ? "report" : s.message;
	s.source = "message";
	s.at = m->received_at;
	s.topic = m->topic;
	inv_raw(c, &s, m->raw, m->raw_len);
	return 0;
}

struct inv_res {
	struct inv_ctx	 *c;
	struct store_txn *t;
};

/* A stored command report: every key, with its command. */
static int
inv_result_cb(const struct store_result *r, void *arg)
{
	struct inv_res	     *ir = arg;
	struct store_command *cmd = NULL;
	struct inv_src	      s;

	memset(&s, 0, sizeof(s));
	(void)store_command_get(ir->t, r->uuid, &cmd);
	s.svc = INV_COMMAND;
	s.enrollment = r->enrollment_id;
	s.message = "report";
	s.cat_message = "report";
	s.source = "report";
	s.at = r->received_at;
	s.extra = json_pack("{s:s, s:o, s:s, s:I}", "command_uuid", r->uuid,
	    "request_type", j_str(cmd ? cmd->request_type : NULL), "status",
	    cmd_status_name(r->status), "seq", (json_int_t)r->seq);
	store_command_free(cmd);
	inv_raw(ir->c, &s, r->raw, r->raw_len);
	json_decref(s.extra);
	return 0;
}

/* A field kept in a record (source "record"). */
static void
inv_kept(struct inv_ctx *c, enum inv_service svc, const char *enrollment,
    const char *message, const char *field, json_t *value, uint64_t at)
{
	struct inv_src s;

	if (value == NULL)
		return;
	memset(&s, 0, sizeof(s));
	s.svc = svc;
	s.enrollment = enrollment;
	s.message = message;
	s.cat_message = message;
	s.source = "record";
	s.at = at;
	s.topic = c->rec_topic;
	/* An ADE record came through a token, not a topic. */
	if (svc == INV_ADE && s.topic != NULL) {
		s.extra = json_pack("{s:s}", "token", s.topic);
		s.topic = NULL;
	}
	inv_row(c, &s, field, value);
	json_decref(s.extra);
}

struct inv_rec {
	struct inv_ctx *c;
	const char     *id; /* the record's key: device or enrollment ID */
};

/* A big-endian number. */
static uint64_t
be64(const unsigned char *p)
{
	uint64_t v = 0;
	int	 i;

	for (i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/*
 * A field of a record, from the registry of record kinds (store_fields.c):
 * text as itself, a hash in hex, other bytes and every secret as length
 * and SHA-256.
 */
static int
inv_field_cb(const struct store_field *f, void *arg)
{
	struct inv_rec *ir = arg;
	struct inv_ctx *c = ir->c;
	const char     *id = ir->id;
	char	        hex[65];
	json_t	       *v;

	if (f->secret)
		v = j_digest(f->p, f->n, 1);
	else
		switch (f->form) {
		case SF_TEXT:
			v = json_stringn((const char *)f->p, f->n);
			break;
		case SF_HASH:
			if (f->n != 32)
				return STORE_ECORRUPT;
			hex_encode(f->p, f->n, hex);
			v = json_string(hex);
			break;
		case SF_BOOL:
			v = json_boolean(f->n != 0);
			break;
		case SF_NUMBER:
		case SF_TIME:
			if (f->n != 8)
				return STORE_ECORRUPT;
			v = f->form == SF_TIME ? j_time(be64(f->p))
					       : json_integer(
						     (json_int_t)be64(f->p));
			break;
		default:
			v = j_digest(f->p, f->n, 0);
			break;
		}
	c->rec_topic = f->topic;
	inv_kept(c, f->svc, id, f->message, f->field, v, f->at);
	c->rec_topic = NULL;
	return 0;
}

/* The catalogued fields of the records of a device (enrollment 0) or an
 * enrollment (1), each with when it was received. */
static int
inv_records(struct inv_ctx *c, struct store_txn *t, int enrollment,
    const char *id)
{
	struct inv_rec ir = {c, id};

	return store_owner_fields(t, enrollment, id, inv_field_cb, &ir);
}

/*
 * A device known only by the MachineInfo Setup Assistant sent (ADE) is
 * found too, and its serial taken from there; the MachineInfo's fields
 * themselves are listed with the device's records (store_kinds.c).
 */
static int
inv_machineinfo(struct inv_ctx *c, struct store_txn *t)
{
	struct store_machineinfo *mi = NULL;
	int			  rc;

	if ((rc = store_machineinfo_get(t, c->device_id, &mi)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	c->found = 1;
	if (c->serial == NULL && mi->serial != NULL &&
	    (c->serial = strdup(mi->serial)) == NULL)
		rc = STORE_ENOMEM;
	store_machineinfo_free(mi);
	return rc;
}

/* A serial known only by its ADE record (store_ade.c) is a device too;
 * the record's fields are listed with the device's (store_fields.c). */
static int
inv_ade(struct inv_ctx *c, struct store_txn *t)
{
	struct store_ade_device *d = NULL;
	int			 rc;

	if (c->found)
		return 0;
	if ((rc = store_ade_device_get(t, c->device_id, &d)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	c->found = 1;
	if (c->serial == NULL && (c->serial = strdup(c->device_id)) == NULL)
		rc = STORE_ENOMEM;
	store_ade_device_free(d);
	return rc;
}

/* A serial known only by the Apps and Books licences assigned to it is a
 * device too (listed below, as a device's licences are). */
static int
inv_vpp_only(struct inv_ctx *c, struct store_txn *t)
{
	int rc;

	if (c->found || (rc = store_vpp_serial_known(t, c->device_id)) == 0)
		return 0;
	if (rc < 0)
		return rc;
	c->found = 1;
	if (c->serial == NULL && (c->serial = strdup(c->device_id)) == NULL)
		return STORE_ENOMEM;
	return 0;
}

/* Everything about one enrollment. */
static int
inv_enrollment(struct inv_ctx *c, struct store_txn *t, const char *id)
{
	struct store_enrollment *e = NULL;
	struct inv_res		 ir = {c, t};
	int			 rc;

	if ((rc = store_enrollment_get(t, id, &e)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	c->found = 1;
	json_array_append_new(c->enrollments,
	    json_pack("{s:s, s:s, s:b}", "id", e->id, "type",
		enroll_type_name(e->type), "enabled", e->enabled));
	store_enrollment_free(e);
	if ((rc = inv_records(c, t, 1, id)) != 0)
		return rc;
	if ((rc = store_msg_iter(t, id, inv_msg_cb, c)) != 0)
		return rc;
	return store_result_iter(t, id, 0, inv_result_cb, &ir);
}

/* The App Store metadata of a licensed app (store_vpp.h, picomdm-vpp
 * sync or meta) under the VPP service's "app metadata", received when
 * it was fetched; none for an app the lookup did not know. */
static int
inv_vpp_meta(struct inv_ctx *c, const char *token, const char *adam_id)
{
	static const char *const f[][2] = {{"adam_id", "id"},
	    {"name", "name"}, {"description", "description.standard"},
	    {"icon_url", "artwork.url"}, {"bundle_id", "bundleId"},
	    {"copyright", "copyright"}, {"genres", "genreNames"},
	    {"store_url", "url"}};
	const char *at;
	uint64_t    us = 0;
	json_t	   *m, *v;
	size_t	    i;
	int	    rc;

	if (adam_id == NULL ||
	    (rc = store_vpp_meta_get(c->t, token, adam_id, &m)) ==
		STORE_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	/* An app the lookup did not know has no metadata to show. */
	if ((at = json_string_value(json_object_get(m, "status"))) == NULL ||
	    strcmp(at, "found") != 0) {
		json_decref(m);
		return 0;
	}
	at = json_string_value(json_object_get(m, "synced_at"));
	if (at != NULL && time_parse_rfc3339(at, &us) == -1)
		us = 0;
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if ((v = json_object_get(m, f[i][0])) != NULL)
			inv_kept(c, INV_VPP, c->device_id, "app metadata",
			    f[i][1], json_incref(v), us);
	json_decref(m);
	return 0;
}

/* What only v1 gives about the token of a licence (picomdm-vpp sync
 * --v1), under the VPP service's "client config". */
static int
inv_vpp_token(struct inv_ctx *c, struct store_txn *t, const char *token)
{
	static const char *const f[][2] = {
	    {"org_id", "organizationId"},
	    {"org_id_hash", "organizationIdHash"},
	    {"facilitator_member_id", "facilitatorMemberId"},
	    {"location_id", "location.locationId"}};
	const char *at;
	uint64_t    us = 0;
	json_t	   *tok, *v;
	size_t	    i;
	int	    rc;

	if ((rc = store_vpp_token_get(t, token, 0, &tok)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	at = json_string_value(json_object_get(tok, "synced_at"));
	if (at != NULL && time_parse_rfc3339(at, &us) == -1)
		us = 0;
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if ((v = json_object_get(tok, f[i][0])) != NULL)
			inv_kept(c, INV_VPP, c->device_id, "client config",
			    f[i][1], json_incref(v), us);
	json_decref(tok);
	return 0;
}

/* An Apps and Books licence assigned to the device's serial number
 * (store_vpp.h), its fields under the VPP service's "assignments" (and
 * the v1 fields of its token, once per token), and its app's metadata. */
static int
inv_vpp_cb(const char *token, json_t *rec, void *arg)
{
	static const char *const f[][3] = {
	    {"adam_id", "assignments", "adamId"},
	    {"pricing_param", "assignments", "pricingParam"},
	    {"serial_number", "assignments", "serialNumber"},
	    {"license_id", "licences", "licenseId"}}; /* v1's, sync --v1 */
	struct inv_res *ir = arg;
	struct inv_ctx *c = ir->c;
	const char     *at = json_string_value(json_object_get(rec, "synced_at"));
	uint64_t	us = 0;
	json_t	       *v, *seen;
	size_t		i;
	int		rc;

	/* A token's licences come together: a new name is a new token. */
	seen = json_object_get(c->vpp_tokens, token);
	if (seen == NULL) {
		if (json_object_set_new(c->vpp_tokens, token, json_true()) != 0)
			return STORE_ENOMEM;
		if ((rc = inv_vpp_token(c, ir->t, token)) != 0)
			return rc;
	}
	if (at != NULL && time_parse_rfc3339(at, &us) == -1)
		us = 0;
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if ((v = json_object_get(rec, f[i][0])) != NULL)
			inv_kept(c, INV_VPP, c->device_id, f[i][1],
			    f[i][2], json_incref(v), us);
	return inv_vpp_meta(c, token,
	    json_string_value(json_object_get(rec, "adam_id")));
}

static int
inv_uchan_cb(const char *id, void *arg)
{
	void **a = arg;

	return inv_enrollment(a[0], a[1], id);
}

/* The device (by any of its IDs or its serial), then its device
 * channel and user channels. */
static int
inv_collect(struct store_txn *t, struct inv_ctx *c)
{
	struct store_device *d = NULL;
	void		    *a[2] = {c, t};
	int		     rc, i;

	c->enrollments = json_array();
	c->t = t;
	for (i = 0; i < INV__MAX; i++)
		c->rows[i] = json_array();
	if ((rc = store_device_resolve(t, c->arg, &c->device_id)) != 0)
		return rc;
	rc = store_device_get(t, c->device_id, &d);
	if (rc == 0) {
		c->found = 1;
		if (d->serial != NULL &&
		    (c->serial = strdup(d->serial)) == NULL)
			rc = STORE_ENOMEM;
		store_device_free(d);
	} else if (rc == STORE_ENOTFOUND)
		rc = 0;
	if (rc == 0)
		rc = inv_machineinfo(c, t);
	if (rc == 0)
		rc = inv_ade(c, t);
	if (rc == 0)
		rc = inv_vpp_only(c, t);
	if (rc == 0 && c->found)
		rc = inv_records(c, t, 0, c->device_id);
	if (rc == 0)
		rc = inv_enrollment(c, t, c->device_id);
	if (rc == 0)
		rc = store_user_channels(t, c->device_id, inv_uchan_cb, a);
	if (rc == 0 && c->found && c->serial != NULL) {
		struct inv_res ir = {c, t};

		json_decref(c->vpp_tokens);
		if ((c->vpp_tokens = json_object()) == NULL)
			rc = STORE_ENOMEM;
		else
			rc = store_vpp_of_serial(t, c->serial, inv_vpp_cb,
			    &ir);
	}
	if (rc == 0 && !c->found)
		rc = STORE_ENOTFOUND;
	return rc;
}

/* See inventory.h. */
int
inventory_device(struct store_txn *t, const char *id_or_serial, json_t **out)
{
	struct inv_ctx c;
	json_t	      *svcs;
	int	       rc, s;

	*out = NULL;
	memset(&c, 0, sizeof(c));
	c.arg = id_or_serial;
	if ((rc = inv_collect(t, &c)) == 0) {
		svcs = json_array();
		for (s = 0; s < INV__MAX; s++)
			json_array_append_new(svcs,
			    json_pack("{s:s, s:s, s:O}", "service",
				inventory_service_name((enum inv_service)s),
				"title",
				inventory_service_title((enum inv_service)s),
				"fields", c.rows[s]));
		*out = json_pack("{s:s, s:o, s:O, s:o}", "device_id",
		    c.device_id, "serial_number", j_str(c.serial),
		    "enrollments", c.enrollments, "services", svcs);
		if (*out == NULL)
			rc = STORE_ENOMEM;
	}
	free(c.device_id);
	free(c.serial);
	json_decref(c.enrollments);
	json_decref(c.vpp_tokens);
	for (s = 0; s < INV__MAX; s++)
		json_decref(c.rows[s]);
	return rc;
}
