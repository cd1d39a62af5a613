/*
 * api.c - the operator API under /api/v1/: JSON in and out, authenticated
 * by the API key (Authorization: Bearer KEY, compared in constant time).
 *
 *	PUT    /api/v1/enqueue/{id[,id...]}     raw command plist
 *	POST   /api/v1/enqueue/{id[,id...]}     JSON form (command.h)
 *	GET    /api/v1/enrollments              filters and paging
 *	GET    /api/v1/enrollments/{id}
 *	GET    /api/v1/queue/{id}
 *	DELETE /api/v1/queue/{id}               cancel every queued command
 *	DELETE /api/v1/queue/{id}/{uuid}        cancel one
 *	GET    /api/v1/commands/{uuid}          the command and its targets
 *	GET    /api/v1/results/{id}             history, newest first
 *	GET    /api/v1/results/{id}/{seq}       one result, raw and decoded
 *	GET    /api/v1/pushcert                 push certificates, no keys
 *	PUT    /api/v1/pushcert[?force=1]       import one (JSON or PEM)
 *	GET    /api/v1/metrics                  Prometheus text format
 *	POST   /api/v1/enrollment-tokens        issue a one-time token
 *	GET    /api/v1/enrollment-tokens        list them (never the token)
 *	DELETE /api/v1/enrollment-tokens/{id}   revoke one
 *	GET    /healthz                         (no key) 200 ok, or 503 why
 *
 * Path segments are percent-decoded one by one (enrollment IDs contain
 * ':' and '@'; an enqueue's list is split on ',' before decoding). Every
 * error is {"error": ..., "detail": ...} with a 4xx or 5xx status; 401
 * is fine here, unlike on the device endpoints. Secrets (push token,
 * PushMagic, UnlockToken, BootstrapToken) are shown as length and
 * SHA-256 only. The API never prunes (retention is picomdmctl's job).
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "extern.h"
#include "picomdm/command.h"
#include "picomdm/enroll.h"
#include "picomdm/message.h"
#include "picomdm/metrics.h"
#include "picomdm/plist.h"
#include "picomdm/pushcert.h"
#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "picomdm/util.h"

#define API_PREFIX    "/api/v1/"
#define API_SEGS_MAX  4
#define API_LIMIT_DEF 100
#define API_LIMIT_MAX 1000
/* Enrollments looked at per list request, matching or not. */
#define API_SCAN_MAX 100000

struct api {
	const struct server  *srv;
	const struct request *req;
	struct response	     *resp;
	const char	     *raw[API_SEGS_MAX]; /* segments, as sent */
	size_t		      rawlen[API_SEGS_MAX];
	char		     *seg[API_SEGS_MAX]; /* decoded; seg[0] the name */
	size_t		      nseg;
};

/*
 * The detail of the last error on this thread: response_json_error()
 * keeps a pointer to it as the reason main.c logs after we return, so it
 * must outlive the handler (one request at a time per worker thread).
 */
static _Thread_local char api_detail[COMMAND_ERR_SIZE + 64];

static void api_fail(struct api *, int, const char *, const char *, ...)
    __attribute__((format(printf, 4, 5)));

/* Answer with the error shape {"error", "detail"}. */
static void
api_fail(struct api *a, int status, const char *error, const char *fmt, ...)
{
	va_list ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(api_detail, sizeof(api_detail), fmt, ap);
	va_end(ap);
	if (n < 0)
		api_detail[0] = '\0';
	/* Details echo paths and parameters, possibly cut mid-character. */
	command_utf8_fix(api_detail);
	if (response_json_error(a->resp, status, error, api_detail) == -1)
		response_set(a->resp, 500, "out of memory");
}

/* A store error that is not the caller's fault: 503 or 500. */
static void
api_store_fail(struct api *a, int rc)
{
	response_store_result(a->resp, rc, NULL);
	api_fail(a, a->resp->status,
	    a->resp->status == 503 ? "unavailable" : "internal error",
	    "store: %s", rc > 0 ? "refused" : store_strerror(rc));
}

/* Answer status with the JSON o (reference taken). */
static void
api_reply(struct api *a, int status, json_t *o)
{
	char *s;

	if (o == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	if (response_set_body(a->resp, "application/json", s, strlen(s)) ==
	    -1) {
		free(s);
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	free(s);
	response_set(a->resp, status, NULL);
}

/* Add v (a new reference, may be NULL) to o; -1 when NULL or failed. */
static int
set(json_t *o, const char *key, json_t *v)
{
	if (v == NULL)
		return -1;
	return json_object_set_new(o, key, v);
}

/* ---- authentication ---- */

/*
 * Authorization: Bearer KEY. The given and the configured keys are
 * compared as SHA-256 digests with CRYPTO_memcmp, so neither the bytes
 * nor the length of the key leak through timing. 0 when authorised.
 */
static int
api_auth(struct api *a)
{
	const char   *h = a->req->authorization, *k;
	unsigned char want[32], got[32];
	size_t	      n;

	if (a->srv->api_key == NULL || a->srv->api_key_len == 0) {
		api_fail(a, 503, "api disabled",
		    "no API key is configured "
		    "(api_key_file): the operator API is disabled");
		return -1;
	}
	if (h == NULL || *h == '\0') {
		api_fail(a, 401, "unauthorized",
		    "send the API key as Authorization: Bearer KEY");
		return -1;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		api_fail(a, 401, "unauthorized",
		    "the Authorization scheme must be Bearer");
		return -1;
	}
	for (k = h + 7; *k == ' ' || *k == '\t'; k++)
		continue;
	for (n = strlen(k); n > 0 && (k[n - 1] == ' ' || k[n - 1] == '\t');)
		n--;
	sha256(k, n, got);
	sha256(a->srv->api_key, a->srv->api_key_len, want);
	if (CRYPTO_memcmp(got, want, sizeof(want)) != 0) {
		api_fail(a, 403, "forbidden", "wrong API key");
		return -1;
	}
	return 0;
}

/* ---- query strings ---- */

/*
 * Parse the query string into vals[i] for each names[i] (NULL when not
 * given; caller frees). Names and values are percent-decoded ('+' stays
 * '+', so an RFC 3339 offset may be sent as is). An unknown or repeated
 * name or a bad escape is a 400. Returns 0, or -1 with the reply set.
 */
static int
api_query(struct api *a, const char *const *names, size_t n, char **vals)
{
	const char *q = a->req->query, *amp, *eq;
	char	   *name = NULL, *val = NULL;
	size_t	    i, len;

	for (i = 0; i < n; i++)
		vals[i] = NULL;
	while (q != NULL && *q != '\0') {
		amp = strchr(q, '&');
		len = amp != NULL ? (size_t)(amp - q) : strlen(q);
		if (len == 0) {
			q++;
			continue;
		}
		eq = memchr(q, '=', len);
		name = pct_decode(q, eq != NULL ? (size_t)(eq - q) : len);
		val = eq != NULL
		    ? pct_decode(eq + 1, len - (size_t)(eq + 1 - q))
		    : strdup("");
		if (name == NULL || val == NULL) {
			api_fail(a, 400, "bad request",
			    "query string: bad percent-encoding");
			goto fail;
		}
		for (i = 0; i < n; i++)
			if (strcmp(name, names[i]) == 0)
				break;
		if (i == n) {
			api_fail(a, 400, "bad request",
			    "unknown query parameter \"%.64s\"", name);
			goto fail;
		}
		if (vals[i] != NULL) {
			api_fail(a, 400, "bad request",
			    "query parameter \"%s\" given twice", names[i]);
			goto fail;
		}
		vals[i] = val;
		val = NULL;
		free(name);
		name = NULL;
		q += len;
	}
	return 0;
fail:
	free(name);
	free(val);
	for (i = 0; i < n; i++) {
		free(vals[i]);
		vals[i] = NULL;
	}
	return -1;
}

static void
api_query_free(char **vals, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(vals[i]);
}

/* A number parameter in [min, max]; absent gives dflt. 0 or -1 (400). */
static int
api_num(struct api *a, const char *name, const char *v, long long min,
    long long max, long long dflt, long long *out)
{
	if (v == NULL) {
		*out = dflt;
		return 0;
	}
	if (num_parse(v, min, max, out) == -1) {
		api_fail(a, 400, "bad request",
		    "%s: want a whole number from "
		    "%lld to %lld",
		    name, min, max);
		return -1;
	}
	return 0;
}

/* ---- enqueue ---- */

/*
 * Split the raw list segment on ',' and percent-decode each ID; refuse
 * empty or over-long IDs and more than COMMAND_IDS_MAX; drop repeats
 * (the first stays). *ids is owned by the caller (free each, then it).
 */
static int
api_ids(struct api *a, char ***ids, size_t *nids)
{
	const char *p = a->raw[1], *end = a->raw[1] + a->rawlen[1], *c;
	char	  **v = NULL, *id = NULL;
	size_t	    n = 0, i;

	*ids = NULL;
	*nids = 0;
	if ((v = calloc(COMMAND_IDS_MAX, sizeof(*v))) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return -1;
	}
	for (;;) {
		if ((c = memchr(p, ',', (size_t)(end - p))) == NULL)
			c = end;
		if ((id = pct_decode(p, (size_t)(c - p))) == NULL) {
			api_fail(a, 400, "bad request",
			    "enrollment ID list: bad percent-encoding");
			goto fail;
		}
		if (*id == '\0' || strlen(id) > MSG_ID_MAX ||
		    !command_utf8_valid(id, strlen(id))) {
			api_fail(a, 400, "bad request",
			    "enrollment ID list: "
			    "an ID is empty, not UTF-8 or longer than %d bytes",
			    MSG_ID_MAX);
			goto fail;
		}
		for (i = 0; i < n; i++)
			if (strcmp(v[i], id) == 0)
				break;
		if (i < n)
			free(id);
		else if (n == COMMAND_IDS_MAX) {
			api_fail(a, 400, "bad request",
			    "more than %d "
			    "enrollment IDs in one request",
			    COMMAND_IDS_MAX);
			goto fail;
		} else
			v[n++] = id;
		id = NULL;
		if (c == end)
			break;
		p = c + 1;
	}
	*ids = v;
	*nids = n;
	return 0;
fail:
	free(id);
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -1;
}

/*
 * PUT (raw plist) or POST (JSON form) /api/v1/enqueue/{ids}. Query:
 * priority (0..255), expires (RFC 3339 or seconds from now), nopush
 * (accepted; pushing comes later). 200 when every ID got the command,
 * 207 when some did, 404 when none (nothing is kept), 409 for a
 * CommandUUID already known.
 */
static void
api_enqueue(struct api *a)
{
	static const char *const qn[] = {"priority", "expires", "nopush"};
	enum command_outcome	*oc = NULL;
	struct command		*cmd = NULL;
	char			*qv[3], **ids = NULL, err[COMMAND_ERR_SIZE];
	json_t			*o = NULL, *st;
	long long		 prio;
	uint64_t		 expires = 0;
	size_t			 nids = 0, nq = 0, i, nalready = 0;
	int			 rc, status;

	if (api_query(a, qn, 3, qv) == -1)
		return;
	if (api_num(a, "priority", qv[0], 0, 255, 0, &prio) == -1)
		goto out;
	if (qv[1] != NULL &&
	    command_expires_parse(qv[1], time_now_us(), &expires) == -1) {
		api_fail(a, 400, "bad request",
		    "expires: want a future RFC "
		    "3339 time or seconds from now (1 to ten years)");
		goto out;
	}
	if (api_ids(a, &ids, &nids) == -1)
		goto out;
	if (a->req->body_len == 0) {
		api_fail(a, 400, "bad request",
		    "empty body: send a command "
		    "plist (PUT) or its JSON form (POST)");
		goto out;
	}
	/* The body of the other method: say which method takes which. */
	for (i = 0; i < a->req->body_len && (a->req->body[i] == ' ' ||
	    a->req->body[i] == '\t' || a->req->body[i] == '\r' ||
	    a->req->body[i] == '\n'); i++)
		;
	if (i < a->req->body_len && a->req->body[i] == '{' &&
	    strcmp(a->req->method, "PUT") == 0) {
		api_fail(a, 400, "invalid command", "the body is JSON: POST "
		    "takes the JSON form, PUT a command plist");
		goto out;
	}
	if (i < a->req->body_len && (a->req->body[i] == '<' ||
	    (a->req->body_len - i >= 6 &&
	    memcmp(a->req->body + i, "bplist", 6) == 0)) &&
	    strcmp(a->req->method, "POST") == 0) {
		api_fail(a, 400, "invalid command", "the body is a plist: PUT "
		    "takes a command plist, POST its JSON form");
		goto out;
	}
	if (strcmp(a->req->method, "PUT") == 0)
		rc = command_from_plist((const char *)a->req->body,
		    a->req->body_len, &cmd, err, sizeof(err));
	else
		rc = command_from_json((const char *)a->req->body,
		    a->req->body_len, &cmd, err, sizeof(err));
	if (rc != 0) {
		api_fail(a, rc,
		    rc == 400 ? "invalid command" : "internal error", "%s",
		    err);
		goto out;
	}
	strlcpy(a->resp->id, ids[0], sizeof(a->resp->id));
	if ((oc = calloc(nids, sizeof(*oc))) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	rc = command_enqueue(
	    a->srv->store, cmd, ids, nids, (int)prio, expires, oc, &nq);
	if (rc == STORE_EEXIST) {
		api_fail(a, 409, "duplicate command",
		    "CommandUUID %.255s is already known", cmd->uuid);
		goto out;
	}
	if (rc != 0 && rc != STORE_ENOTFOUND) {
		api_store_fail(a, rc);
		goto out;
	}
	if ((o = json_object()) == NULL ||
	    set(o, "command_uuid", json_string(cmd->uuid)) == -1 ||
	    set(o, "request_type", json_string(cmd->request_type)) == -1 ||
	    (st = json_object()) == NULL || set(o, "status", st) == -1)
		goto oom;
	for (i = 0; i < nids; i++) {
		if (oc[i] == COMMAND_ALREADY_QUEUED)
			nalready++;
		if (set(st, ids[i],
			json_pack("{s:s}", "status",
			    command_outcome_name(oc[i]))) == -1)
			goto oom;
	}
	if (rc == 0)
		status = nq == nids ? 200 : 207;
	else {
		status = nalready > 0 ? 409 : 404;
		if (set(o, "error",
			json_string(status == 409 ? "already queued"
						  : "unknown enrollment")) ==
			-1 ||
		    set(o, "detail",
			json_string("the command was queued to "
				    "no enrollment and was not kept")) == -1)
			goto oom;
	}
	api_reply(a, status, o);
	o = NULL;
	if (status >= 400)
		a->resp->reason = "queued to no enrollment";
	goto out;
oom:
	api_fail(a, 500, "internal error", "out of memory");
out:
	json_decref(o);
	free(oc);
	command_free(cmd);
	for (i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	api_query_free(qv, 3);
}

/* ---- enrollments ---- */

static json_t *
secret_json(const void *p, size_t n)
{
	unsigned char h[32];
	char	      hex[65];

	if (p == NULL)
		return json_null();
	sha256(p, n, h);
	hex_encode(h, sizeof(h), hex);
	return json_pack("{s:I, s:s}", "length", (json_int_t)n, "sha256", hex);
}

/* The device channel's ID of an enrollment. */
static const char *
device_id_of(const struct store_enrollment *e)
{
	return e->device_id != NULL ? e->device_id : e->id;
}

/* An enrollment, with a few device facts (d may be NULL); with full,
 * its push credentials as length and SHA-256. */
static json_t *
enrollment_json(
    const struct store_enrollment *e, const struct store_device *d, int full)
{
	json_t *o;

	o = json_object();
	if (o == NULL || set(o, "id", command_json_str(e->id)) == -1 ||
	    set(o, "device_id", command_json_str(device_id_of(e))) == -1 ||
	    set(o, "type", json_string(enroll_type_name(e->type))) == -1 ||
	    set(o, "enabled", json_boolean(e->enabled)) == -1 ||
	    set(o, "topic", command_json_str(e->topic)) == -1 ||
	    set(o, "serial_number", command_json_str(d ? d->serial : NULL)) ==
		-1 ||
	    set(o, "model", command_json_str(d ? d->model : NULL)) == -1 ||
	    set(o, "os_version", command_json_str(d ? d->os_version : NULL)) ==
		-1 ||
	    set(o, "user_id", command_json_str(e->user_id)) == -1 ||
	    set(o, "user_short_name", command_json_str(e->user_short_name)) ==
		-1 ||
	    set(o, "user_long_name", command_json_str(e->user_long_name)) ==
		-1 ||
	    set(o, "awaiting_configuration",
		json_boolean(e->awaiting_configuration)) == -1 ||
	    set(o, "token_update_tally",
		json_integer((json_int_t)e->token_update_tally)) == -1 ||
	    set(o, "created_at", command_json_time(e->created_at)) == -1 ||
	    set(o, "last_seen", command_json_time(e->last_seen)) == -1 ||
	    set(o, "token_updated_at",
		command_json_time(e->token_updated_at)) == -1 ||
	    set(o, "checked_out_at", command_json_time(e->checked_out_at)) ==
		-1)
		goto fail;
	if (full &&
	    (set(o, "push_magic",
		 secret_json(e->push_magic,
		     e->push_magic ? strlen(e->push_magic) : 0)) == -1 ||
		set(o, "token", secret_json(e->token, e->token_len)) == -1))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* Every stored device fact; secrets as length and SHA-256. */
static json_t *
device_json(const struct store_device *d)
{
	char	hex[65];
	json_t *o;

	if (d->has_cert)
		hex_encode(d->cert_hash, 32, hex);
	o = json_object();
	if (o == NULL || set(o, "id", command_json_str(d->id)) == -1 ||
	    set(o, "serial_number", command_json_str(d->serial)) == -1 ||
	    set(o, "udid", command_json_str(d->udid)) == -1 ||
	    set(o, "enrollment_id", command_json_str(d->enrollment_id)) == -1 ||
	    set(o, "model", command_json_str(d->model)) == -1 ||
	    set(o, "model_name", command_json_str(d->model_name)) == -1 ||
	    set(o, "device_name", command_json_str(d->device_name)) == -1 ||
	    set(o, "product_name", command_json_str(d->product_name)) == -1 ||
	    set(o, "os_version", command_json_str(d->os_version)) == -1 ||
	    set(o, "build_version", command_json_str(d->build_version)) == -1 ||
	    set(o, "imei", command_json_str(d->imei)) == -1 ||
	    set(o, "meid", command_json_str(d->meid)) == -1 ||
	    set(o, "topic", command_json_str(d->topic)) == -1 ||
	    set(o, "identity_cert_sha256",
		d->has_cert ? json_string(hex) : json_null()) == -1 ||
	    set(o, "unlock_token",
		secret_json(d->unlock_token, d->unlock_token_len)) == -1 ||
	    set(o, "unlock_token_at", command_json_time(d->unlock_token_at)) ==
		-1 ||
	    set(o, "bootstrap_token",
		secret_json(d->bootstrap_token, d->bootstrap_token_len)) ==
		-1 ||
	    set(o, "bootstrap_token_at",
		command_json_time(d->bootstrap_token_at)) == -1 ||
	    set(o, "created_at", command_json_time(d->created_at)) == -1 ||
	    set(o, "authenticated_at",
		command_json_time(d->authenticated_at)) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

struct list_op {
	/* filters */
	int	    enabled; /* -1 any */
	int	    type;    /* -1 any */
	const char *topic;
	const char *serial;
	uint64_t    seen_since;
	const char *after;
	size_t	    limit;
	/* outputs */
	struct store_txn *t;
	json_t		 *arr;
	size_t		  n, scanned;
	char		 *next;
	int		  more;
};

static int
list_cb(const struct store_enrollment *e, void *arg)
{
	struct list_op	    *op = arg;
	struct store_device *d = NULL;
	json_t		    *j;
	int		     rc;

	if (op->n == op->limit) {
		op->more = 1;
		return 1;
	}
	if (++op->scanned > API_SCAN_MAX) {
		op->more = 1;
		return 1;
	}
	free(op->next);
	op->next = NULL;
	if ((op->enabled >= 0 && (e->enabled != 0) != op->enabled) ||
	    (op->type >= 0 && (int)e->type != op->type) ||
	    (op->topic != NULL &&
		(e->topic == NULL || strcmp(op->topic, e->topic) != 0)) ||
	    (op->seen_since != 0 && e->last_seen < op->seen_since))
		goto skip;
	rc = store_device_get(op->t, device_id_of(e), &d);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	if (op->serial != NULL &&
	    (d == NULL || d->serial == NULL || strcmp(d->serial, op->serial)))
		goto skip;
	j = enrollment_json(e, d, 0);
	store_device_free(d);
	if (j == NULL || json_array_append_new(op->arr, j) == -1)
		return STORE_ENOMEM;
	op->n++;
	d = NULL;
skip:
	store_device_free(d);
	/* The last enrollment looked at is where the next page starts. */
	if ((op->next = strdup(e->id)) == NULL)
		return STORE_ENOMEM;
	return 0;
}

static int
list_op_run(struct store_txn *t, void *arg)
{
	struct list_op *op = arg;

	op->t = t;
	return store_enrollment_iter(t, op->after, list_cb, op);
}

/* The enrollment type named s (enroll_type_name, any case), or -1. */
static int
type_parse(const char *s)
{
	int i;

	for (i = ENROLL_DEVICE; i < ENROLL__MAX; i++)
		if (strcasecmp(s, enroll_type_name((enum enroll_type)i)) == 0)
			return i;
	return -1;
}

/*
 * GET /api/v1/enrollments: filters enabled, type, topic, seen_since,
 * serial; paging limit and after. "next" is the ID to pass as after for
 * the next page, or null at the end. A page may hold fewer than limit
 * enrollments when a filter is selective (the scan per request is
 * bounded); only a null next means the end.
 */
static void
api_enrollments(struct api *a)
{
	static const char *const qn[] = {"enabled", "type", "topic",
	    "seen_since", "serial", "limit", "after"};
	struct list_op		 op;
	char			*qv[7];
	json_t			*o;
	long long		 limit;
	int			 rc;

	if (api_query(a, qn, 7, qv) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.enabled = -1;
	op.type = -1;
	if (qv[0] != NULL) {
		if (strcmp(qv[0], "true") == 0 || strcmp(qv[0], "1") == 0)
			op.enabled = 1;
		else if (strcmp(qv[0], "false") == 0 || strcmp(qv[0], "0") == 0)
			op.enabled = 0;
		else {
			api_fail(a, 400, "bad request",
			    "enabled: want true or false");
			goto out;
		}
	}
	if (qv[1] != NULL && (op.type = type_parse(qv[1])) == -1) {
		api_fail(a, 400, "bad request",
		    "type: want Device, User, "
		    "UserEnrollmentDevice, UserEnrollment or SharediPad");
		goto out;
	}
	op.topic = qv[2];
	if (qv[3] != NULL && time_parse_rfc3339(qv[3], &op.seen_since) == -1) {
		api_fail(
		    a, 400, "bad request", "seen_since: want an RFC 3339 time");
		goto out;
	}
	op.serial = qv[4];
	if (api_num(a, "limit", qv[5], 1, API_LIMIT_MAX, API_LIMIT_DEF,
		&limit) == -1)
		goto out;
	op.limit = (size_t)limit;
	op.after = qv[6];
	if ((op.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	rc = store_read(a->srv->store, list_op_run, &op);
	if (rc != 0) {
		json_decref(op.arr);
		api_store_fail(a, rc);
		goto out;
	}
	o = json_object();
	if (o == NULL || set(o, "enrollments", op.arr) == -1) {
		json_decref(o);
		json_decref(op.arr);
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	if (set(o, "next",
		op.more && op.next != NULL ? command_json_str(op.next)
					   : json_null()) == -1) {
		json_decref(o);
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	api_reply(a, 200, o);
out:
	free(op.next);
	api_query_free(qv, 7);
}

struct one_op {
	const char *id;
	json_t	   *out;
	size_t	    count;
};

static int
uchan_cb(const char *id, void *arg)
{
	return json_array_append_new(arg, json_string(id)) == -1 ? STORE_ENOMEM
								 : 0;
}

static int
count_cb(const struct store_queue_item *q, void *arg)
{
	(void)q;
	(*(size_t *)arg)++;
	return 0;
}

static int
enrollment_op_run(struct store_txn *t, void *arg)
{
	struct one_op		*op = arg;
	struct store_enrollment *e = NULL;
	struct store_device	*d = NULL;
	json_t			*uc = NULL;
	int			 rc;

	op->count = 0;
	if ((rc = store_enrollment_get(t, op->id, &e)) != 0)
		return rc == STORE_ENOTFOUND ? 404 : rc;
	if ((rc = store_device_get(t, device_id_of(e), &d)) != 0 &&
	    rc != STORE_ENOTFOUND)
		goto out;
	if ((rc = store_queue_iter(t, op->id, count_cb, &op->count)) != 0)
		goto out;
	rc = STORE_ENOMEM;
	if ((op->out = json_object()) == NULL ||
	    set(op->out, "enrollment", enrollment_json(e, d, 1)) == -1 ||
	    set(op->out, "device", d != NULL ? device_json(d) : json_null()) ==
		-1 ||
	    set(op->out, "queued", json_integer((json_int_t)op->count)) == -1 ||
	    (uc = json_array()) == NULL)
		goto out;
	if (e->device_id == NULL || strcmp(e->device_id, e->id) == 0) {
		if ((rc = store_user_channels(t, e->id, uchan_cb, uc)) != 0)
			goto out;
	}
	rc = set(op->out, "user_channels", uc) == -1 ? STORE_ENOMEM : 0;
	uc = NULL;
out:
	json_decref(uc);
	store_device_free(d);
	store_enrollment_free(e);
	return rc;
}

/* GET /api/v1/enrollments/{id}: the enrollment, its device's facts, the
 * user channels of a device channel and the number of queued commands. */
static void
api_enrollment(struct api *a)
{
	struct one_op op;
	int	      rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.id = a->seg[1];
	rc = store_read(a->srv->store, enrollment_op_run, &op);
	if (rc == 404)
		api_fail(a, 404, "not found", "no enrollment %.200s", op.id);
	else if (rc != 0)
		api_store_fail(a, rc);
	else {
		api_reply(a, 200, op.out);
		op.out = NULL;
	}
	json_decref(op.out);
}

/* ---- queues ---- */

struct queue_op {
	const char	 *id;
	const char	 *uuid;
	struct store_txn *t;
	json_t		 *arr;
	size_t		  count;
};

static json_t *
queue_item_json(struct store_txn *t, const struct store_queue_item *q)
{
	struct store_command *c = NULL;
	json_t		     *o;

	(void)store_command_get(t, q->uuid, &c);
	o = command_queue_item_json(
	    q, c != NULL ? c->request_type : NULL, store_txn_now(t));
	store_command_free(c);
	return o;
}

static int
queue_cb(const struct store_queue_item *q, void *arg)
{
	struct queue_op *op = arg;

	if (json_array_append_new(op->arr, queue_item_json(op->t, q)) == -1)
		return STORE_ENOMEM;
	op->count++;
	return 0;
}

static int
uuid_cb(const struct store_queue_item *q, void *arg)
{
	struct queue_op *op = arg;

	if (json_array_append_new(op->arr, json_string(q->uuid)) == -1)
		return STORE_ENOMEM;
	return 0;
}

/* Does the enrollment exist? 0, 404 or a store error. */
static int
enrollment_known(struct store_txn *t, const char *id)
{
	struct store_enrollment *e = NULL;
	int			 rc;

	rc = store_enrollment_get(t, id, &e);
	store_enrollment_free(e);
	return rc == STORE_ENOTFOUND ? 404 : rc;
}

static int
queue_op_run(struct store_txn *t, void *arg)
{
	struct queue_op *op = arg;
	int		 rc;

	op->t = t;
	op->count = 0;
	json_array_clear(op->arr);
	if ((rc = enrollment_known(t, op->id)) != 0)
		return rc;
	return store_queue_iter(t, op->id, queue_cb, op);
}

/* Cancel all (uuid NULL) or one; a write op, so outputs reset first. */
static int
cancel_op_run(struct store_txn *t, void *arg)
{
	struct queue_op *op = arg;
	int		 rc;

	op->t = t;
	op->count = 0;
	json_array_clear(op->arr);
	if ((rc = enrollment_known(t, op->id)) != 0)
		return rc;
	if (op->uuid != NULL) {
		rc = store_queue_cancel(t, op->id, op->uuid);
		if (rc == STORE_ENOTFOUND || rc == STORE_EINVAL)
			return 410;
		if (rc == 0 &&
		    json_array_append_new(op->arr, json_string(op->uuid)) == -1)
			rc = STORE_ENOMEM;
		op->count = rc == 0 ? 1 : 0;
		return rc;
	}
	if ((rc = store_queue_iter(t, op->id, uuid_cb, op)) != 0)
		return rc;
	return store_queue_clear(t, op->id, CMD_STATUS_CANCELLED, &op->count);
}

/*
 * GET /api/v1/queue/{id}: pending commands in delivery order.
 * DELETE /api/v1/queue/{id}[/{uuid}]: cancel all, or one; each cancelled
 * command is recorded as Cancelled for the enrollment.
 */
static void
api_queue(struct api *a)
{
	struct queue_op op;
	json_t	       *o;
	int		rc, del = strcmp(a->req->method, "DELETE") == 0;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.id = a->seg[1];
	op.uuid = a->nseg > 2 ? a->seg[2] : NULL;
	strlcpy(a->resp->id, op.id, sizeof(a->resp->id));
	if ((op.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	if (del)
		rc = store_write(a->srv->store, cancel_op_run, &op);
	else
		rc = store_read(a->srv->store, queue_op_run, &op);
	if (rc == 404) {
		api_fail(a, 404, "not found", "no enrollment %.200s", op.id);
		goto out;
	}
	if (rc == 410) {
		api_fail(a, 404, "not found",
		    "command %.255s is not queued "
		    "for %.200s",
		    op.uuid, op.id);
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	o = del
	    ? json_pack("{s:s, s:I, s:O}", "enrollment_id", op.id, "cancelled",
		  (json_int_t)op.count, "command_uuids", op.arr)
	    : json_pack("{s:s, s:O}", "enrollment_id", op.id, "queue", op.arr);
	api_reply(a, 200, o);
out:
	json_decref(op.arr);
}

/* ---- commands ---- */

struct cmd_op {
	const char	     *uuid;
	const char	     *after;   /* list targets after this ID */
	size_t		      limit;
	struct store_command *cmd;
	json_t		     *targets;
	json_t		     *counts;
	size_t		      n;
	int		      started; /* past after */
	const char	     *last;    /* in targets: the last listed ID */
	int		      more;
};

/* Count every target; list a page of them (after, limit). */
static int
target_cb(const struct store_target *tg, void *arg)
{
	struct cmd_op *op = arg;
	const char    *st = cmd_status_name(tg->status);
	json_t	      *n, *t;

	n = json_object_get(op->counts, st);
	if (set(op->counts, st,
		json_integer(n ? json_integer_value(n) + 1 : 1)) == -1)
		return STORE_ENOMEM;
	if (!op->started) {
		op->started = strcmp(tg->enrollment_id, op->after) == 0;
		return 0;
	}
	if (op->n == op->limit) {
		op->more = 1;
		return 0;
	}
	if (json_array_append_new(op->targets,
		json_pack("{s:s, s:s, s:o, "
			  "s:o}",
		    "enrollment_id", tg->enrollment_id, "status", st,
		    "updated_at", command_json_time(tg->updated_at),
		    "result_seq",
		    tg->result_seq ? json_integer((json_int_t)tg->result_seq)
				   : json_null())) == -1)
		return STORE_ENOMEM;
	t = json_array_get(op->targets, op->n++);
	op->last = json_string_value(json_object_get(t, "enrollment_id"));
	return 0;
}

static int
cmd_op_run(struct store_txn *t, void *arg)
{
	struct cmd_op *op = arg;
	int	       rc;

	if ((rc = store_command_get(t, op->uuid, &op->cmd)) != 0)
		return rc == STORE_ENOTFOUND || rc == STORE_EINVAL ? 404 : rc;
	return store_command_targets(t, op->uuid, target_cb, op);
}

/* The command's bytes as "raw" text, or "raw_base64" when not UTF-8. */
static int
raw_json(json_t *o, const unsigned char *p, size_t n)
{
	json_t *s;
	char   *b64;

	if ((s = json_stringn(n > 0 ? (const char *)p : "", n)) != NULL)
		return set(o, "raw", s);
	if ((b64 = base64_encode(p, n)) == NULL)
		return -1;
	s = json_string(b64);
	free(b64);
	return set(o, "raw_base64", s);
}

/*
 * GET /api/v1/commands/{uuid}: the command as stored (text and decoded),
 * with counts per status over every enrollment it was queued to, and a
 * page of those enrollments with where it stands for each, in the order
 * they were first queued: limit (default 100, at most 1000) and after (an
 * enrollment ID of the previous page); "next" is the after of the next
 * page, or null at the end.
 */
static void
api_command(struct api *a)
{
	static const char *const qn[] = {"limit", "after"};
	struct cmd_op op;
	plist_t	      root = NULL;
	json_t	     *o = NULL;
	char	     *qv[2];
	long long     limit;
	int	      rc;

	if (api_query(a, qn, 2, qv) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.uuid = a->seg[1];
	if (api_num(a, "limit", qv[0], 1, API_LIMIT_MAX, API_LIMIT_DEF,
		&limit) == -1)
		goto out;
	op.limit = (size_t)limit;
	op.after = qv[1];
	op.started = op.after == NULL;
	if ((op.targets = json_array()) == NULL ||
	    (op.counts = json_object()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	rc = store_read(a->srv->store, cmd_op_run, &op);
	if (rc == 404) {
		api_fail(a, 404, "not found", "no command %.255s", op.uuid);
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	if (!op.started) {
		api_fail(a, 400, "bad request",
		    "after: %.255s is not a target of this command", op.after);
		goto out;
	}
	(void)plist_safe_parse(
	    (const char *)op.cmd->raw, op.cmd->raw_len, &root);
	o = json_object();
	if (o == NULL ||
	    set(o, "command_uuid", command_json_str(op.cmd->uuid)) == -1 ||
	    set(o, "request_type", command_json_str(op.cmd->request_type)) ==
		-1 ||
	    set(o, "created_at", command_json_time(op.cmd->created_at)) == -1 ||
	    set(o, "length", json_integer((json_int_t)op.cmd->raw_len)) == -1 ||
	    raw_json(o, op.cmd->raw, op.cmd->raw_len) == -1 ||
	    set(o, "command",
		root != NULL ? command_plist_json(root) : json_null()) == -1 ||
	    set(o, "counts", json_incref(op.counts)) == -1 ||
	    set(o, "targets", json_incref(op.targets)) == -1 ||
	    set(o, "next", op.more && op.last != NULL ? json_string(op.last)
						      : json_null()) == -1) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	api_reply(a, 200, o);
	o = NULL;
out:
	json_decref(o);
	plist_free(root);
	json_decref(op.targets);
	json_decref(op.counts);
	store_command_free(op.cmd);
	api_query_free(qv, 2);
}

/* ---- results ---- */

struct results_op {
	const char	    *id;
	uint64_t	     before;
	size_t		     limit;
	uint64_t	     seq;
	json_t		    *arr;
	size_t		     n;
	uint64_t	     last;
	int		     more;
	struct store_result *one;
	char		    *rtype;
};

static int
results_cb(const struct store_result *r, void *arg)
{
	struct results_op *op = arg;

	if (op->n == op->limit) {
		op->more = 1;
		return 1;
	}
	if (json_array_append_new(op->arr, command_result_json(r, 0)) == -1)
		return STORE_ENOMEM;
	op->n++;
	op->last = r->seq;
	return 0;
}

static int
results_op_run(struct store_txn *t, void *arg)
{
	struct results_op *op = arg;
	int		   rc;

	if ((rc = enrollment_known(t, op->id)) != 0)
		return rc;
	return store_result_iter(t, op->id, op->before, results_cb, op);
}

static int
result_op_run(struct store_txn *t, void *arg)
{
	struct results_op    *op = arg;
	struct store_command *c = NULL;
	int		      rc;

	if ((rc = enrollment_known(t, op->id)) != 0)
		return rc;
	if ((rc = store_result_get(t, op->id, op->seq, &op->one)) != 0)
		return rc == STORE_ENOTFOUND ? 410 : rc;
	if (store_command_get(t, op->one->uuid, &c) == 0 &&
	    (op->rtype = strdup(c->request_type)) == NULL)
		rc = STORE_ENOMEM;
	store_command_free(c);
	return rc;
}

/*
 * GET /api/v1/results/{id}: the enrollment's reports, newest first;
 * limit (default 100, at most 1000) and before (a seq): "next" is the
 * before of the next page, null at the end.
 * GET /api/v1/results/{id}/{seq}: one report with its raw plist and the
 * plist decoded (data as base64, dates RFC 3339).
 */
static void
api_results(struct api *a)
{
	static const char *const qn[] = {"limit", "before"};
	struct results_op	 op;
	char			*qv[2] = {NULL, NULL};
	json_t			*o;
	long long		 v;
	int			 rc;

	memset(&op, 0, sizeof(op));
	op.id = a->seg[1];
	if (a->nseg > 2) {
		if (api_query(a, NULL, 0, NULL) == -1)
			return;
		if (num_parse(a->seg[2], 1, INT64_MAX, &v) == -1) {
			api_fail(a, 404, "not found",
			    "a result is named by its seq, a number");
			return;
		}
		op.seq = (uint64_t)v;
		rc = store_read(a->srv->store, result_op_run, &op);
	} else {
		if (api_query(a, qn, 2, qv) == -1)
			return;
		if (api_num(a, "limit", qv[0], 1, API_LIMIT_MAX, API_LIMIT_DEF,
			&v) == -1)
			goto out;
		op.limit = (size_t)v;
		if (api_num(a, "before", qv[1], 1, INT64_MAX, 0, &v) == -1)
			goto out;
		op.before = (uint64_t)v;
		if ((op.arr = json_array()) == NULL) {
			api_fail(a, 500, "internal error", "out of memory");
			goto out;
		}
		rc = store_read(a->srv->store, results_op_run, &op);
	}
	if (rc == 404) {
		api_fail(a, 404, "not found", "no enrollment %.200s", op.id);
		goto out;
	}
	if (rc == 410) {
		api_fail(a, 404, "not found", "no result %llu for %.200s",
		    (unsigned long long)op.seq, op.id);
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	if (op.one != NULL) {
		o = command_result_json(op.one, 1);
		if (o != NULL &&
		    set(o, "request_type", command_json_str(op.rtype)) == -1) {
			json_decref(o);
			o = NULL;
		}
	} else
		o = json_pack("{s:s, s:O, s:o}", "enrollment_id", op.id,
		    "results", op.arr, "next",
		    op.more ? json_integer((json_int_t)op.last) : json_null());
	api_reply(a, 200, o);
out:
	json_decref(op.arr);
	store_result_free(op.one);
	free(op.rtype);
	api_query_free(qv, 2);
}

/* ---- metrics and health ---- */

/*
 * GET /api/v1/metrics: every counter and the store's figures in the
 * Prometheus text format (metrics.c). Behind the key unless
 * metrics_public = yes.
 */
static void
api_metrics(struct api *a)
{
	struct buf b;

	memset(&b, 0, sizeof(b));
	if (metrics_render(&b, a->srv->store, a->srv->cfg->max_inflight,
	    a->srv->cfg->map_max) == -1 || response_set_body(a->resp,
	    "text/plain; version=0.0.4; charset=utf-8", b.p, b.len) == -1)
		api_fail(a, 500, "internal error", "out of memory");
	buf_free(&b);
}

/* ---- push certificates (picomdm-api(7), "Push certificates") ---- */

/* A push certificate without its key. */
static json_t *
pushcert_json(const struct store_pushcert *sc, time_t now)
{
	struct pushcert pc;

	memset(&pc, 0, sizeof(pc));
	pc.not_after = (time_t)(sc->not_after / 1000000u);
	return json_pack("{s:s, s:s?, s:o?, s:I, s:s, s:s?, s:o?}", "topic",
	    sc->topic, "subject", sc->subject, "not_after",
	    command_json_time(sc->not_after), "days_left",
	    (json_int_t)pushcert_days_left(&pc, now), "state",
	    pushcert_state_name(pushcert_state(&pc, now)), "sha256",
	    sc->sha256, "imported_at", command_json_time(sc->imported_at));
}

struct pushcert_list_op {
	json_t *arr;
	time_t	now;
};

static int
pushcert_list_cb(const struct store_pushcert *sc, void *arg)
{
	struct pushcert_list_op *op = arg;

	return json_array_append_new(op->arr, pushcert_json(sc, op->now)) == 0
	    ? 0
	    : STORE_ENOMEM;
}

static int
pushcert_list_run(struct store_txn *t, void *arg)
{
	return store_pushcert_each(t, pushcert_list_cb, arg);
}

/* GET /api/v1/pushcert: {"pushcerts": [...]}, never a key. */
static void
api_pushcert_list(struct api *a)
{
	struct pushcert_list_op op;
	int			rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	op.now = time(NULL);
	if ((op.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	if ((rc = store_read(a->srv->store, pushcert_list_run, &op)) != 0) {
		json_decref(op.arr);
		api_store_fail(a, rc);
		return;
	}
	api_reply(a, 200, json_pack("{s:o}", "pushcerts", op.arr));
}

struct pushcert_put_op {
	struct store_pushcert c;
	int		      force, replaced;
	char		     *conflict;
	json_t		     *out;
};

static int
pushcert_put_run(struct store_txn *t, void *arg)
{
	struct pushcert_put_op *op = arg;
	struct store_pushcert  *old = NULL;
	int			rc;

	rc = store_pushcert_get(t, op->c.topic, &old);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	op->replaced = old != NULL;
	store_pushcert_free(old);
	return store_pushcert_import(t, &op->c, op->force, &op->conflict);
}

/*
 * PUT /api/v1/pushcert[?force=1]: a JSON body {"cert": PEM, "key": PEM},
 * or the PEM certificate followed by its key (as NanoMDM's
 * PUT /v1/pushcert takes it). 200 with the certificate (no key), 400 for
 * a certificate that does not parse or has expired, 409 for another
 * topic refused by the rule of picomdmctl(8), "pushcert import".
 */
static void
api_pushcert_put(struct api *a)
{
	static const char *const qn[] = {"force"};
	struct pushcert_put_op	 op;
	struct pushcert		*pc = NULL;
	json_t			*j = NULL, *o;
	json_error_t		 je;
	const char		*cert, *key = NULL;
	char			*qv[1], err[256];
	long long		 force;
	int			 rc;

	memset(&op, 0, sizeof(op));
	if (api_query(a, qn, 1, qv) == -1)
		return;
	if (api_num(a, "force", qv[0], 0, 1, 0, &force) == -1)
		goto out;
	op.force = (int)force;
	if (a->req->body_len == 0) {
		api_fail(a, 400, "bad request",
		    "empty body: send {\"cert\": PEM, \"key\": PEM} or the PEM "
		    "certificate followed by its key");
		goto out;
	}
	if (a->req->body[0] == '{') {
		j = json_loadb((const char *)a->req->body, a->req->body_len, 0,
		    &je);
		if (j == NULL || !json_is_object(j) ||
		    (cert = json_string_value(json_object_get(j, "cert"))) ==
			NULL ||
		    (key = json_string_value(json_object_get(j, "key"))) ==
			NULL) {
			api_fail(a, 400, "bad request",
			    "want {\"cert\": PEM, \"key\": PEM}");
			goto out;
		}
		pc = pushcert_from_pem(
		    cert, strlen(cert), key, strlen(key), err, sizeof(err));
	} else
		pc = pushcert_from_pem(a->req->body, a->req->body_len, NULL, 0,
		    err, sizeof(err));
	if (pc == NULL) {
		api_fail(a, 400, "invalid push certificate", "%s", err);
		goto out;
	}
	if (pushcert_state(pc, time(NULL)) == PUSHCERT_EXPIRED) {
		api_fail(a, 400, "invalid push certificate",
		    "the certificate for %.255s has expired", pc->topic);
		goto out;
	}
	store_pushcert_from(&op.c, pc, time_now_us());
	rc = store_write(a->srv->store, pushcert_put_run, &op);
	if (rc == STORE_EEXIST) {
		api_fail(a, 409, "topic conflict",
		    "the only push certificate is for %.255s and enrollments "
		    "use it; this one is for %.255s (force=1 adds it anyway)",
		    op.conflict, pc->topic);
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	if ((o = pushcert_json(&op.c, time(NULL))) == NULL ||
	    set(o, "replaced", json_boolean(op.replaced)) == -1) {
		json_decref(o);
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	api_reply(a, 200, o);
out:
	/* The parsed body's copy of the key (the body itself is wiped with
	 * the request). */
	if (key != NULL)
		explicit_bzero((char *)(uintptr_t)key, strlen(key));
	json_decref(j);
	free(op.conflict);
	pushcert_free(pc);
	api_query_free(qv, 1);
}

static int
health_read(struct store_txn *t, void *arg)
{
	(void)t;
	(void)arg;
	return 0;
}

int
api_health(const struct server *srv, const struct request *req,
    struct response *resp)
{
	char why[160];
	int  rc, n;

	resp->msgtype = "health";
	if (strcmp(req->method, "GET") != 0 &&
	    strcmp(req->method, "HEAD") != 0) {
		response_set(resp, 405, "healthz takes GET");
		return HANDLED;
	}
	if (metrics_health((uint64_t)srv->cfg->health_stall * 1000000,
	    why, sizeof(why)) == 0 &&
	    (rc = store_read(srv->store, health_read, NULL)) != 0)
		snprintf(why, sizeof(why), "store unreadable: %s",
		    store_strerror(rc));
	resp->status = strcmp(why, "ok") == 0 ? 200 : 503;
	if (resp->status != 200) {
		strlcpy(resp->reason_buf, why, sizeof(resp->reason_buf));
		resp->reason = resp->reason_buf;
	}
	n = (int)strlen(why);
	why[n] = '\n';
	if (response_set_body(resp, "text/plain; charset=utf-8", why,
	    (size_t)n + 1) == -1)
		response_set(resp, 500, "out of memory");
	return HANDLED;
}

/* ---- enrollment tokens ---- */

/* The JSON form of a stored token: its ID is the SHA-256 of the token
 * (the token itself is shown once, when issued, and never stored). */
static json_t *
token_json(const struct store_enroll_token *tk, uint64_t now)
{
	char	    hex[65], c[40], e[40], u[40];
	const char *state;

	hex_encode(tk->hash, 32, hex);
	time_format(tk->created_at, c, sizeof(c));
	time_format(tk->expires_at, e, sizeof(e));
	if (tk->used_at != 0)
		time_format(tk->used_at, u, sizeof(u));
	state = tk->used_at != 0 ? "used"
	    : tk->expires_at <= now ? "expired"
				    : "unused";
	return json_pack("{s:s, s:s*, s:s, s:s, s:s*, s:s}", "id", hex, "note",
	    tk->note, "created_at", c, "expires_at", e, "used_at",
	    tk->used_at != 0 ? u : NULL, "state", state);
}

struct token_list {
	json_t	*arr;
	uint64_t now;
};

static int
token_list_cb(const struct store_enroll_token *tk, void *arg)
{
	struct token_list *l = arg;

	/* Issued SCEP challenges are picomdm's own, not the operator's. */
	if (tk->purpose != NULL && strcmp(tk->purpose, "enroll") != 0)
		return 0;
	return json_array_append_new(l->arr, token_json(tk, l->now)) == 0
	    ? 0
	    : STORE_ENOMEM;
}

static int
token_list_op(struct store_txn *t, void *arg)
{
	struct token_list *l = arg;

	l->now = store_txn_now(t);
	return store_enroll_token_each(t, token_list_cb, l);
}

static int
token_put_op(struct store_txn *t, void *arg)
{
	return store_enroll_token_put(t, arg);
}

static int
token_del_op(struct store_txn *t, void *arg)
{
	int rc = store_enroll_token_del(t, arg);

	return rc == STORE_ENOTFOUND ? 404 : rc;
}

#define TOKEN_NOTE_MAX 256

/*
 * POST /api/v1/enrollment-tokens: {"expires_in": seconds, "note": text},
 * both optional (an empty body takes the defaults). Answers 201 with the
 * token, once: only its SHA-256 is stored, committed before the answer.
 */
static void
api_token_new(struct api *a)
{
	struct store_enroll_token tk;
	char			  tok[ENROLL_TOKEN_LEN + 1], hex[65], e[40];
	json_t			 *body = NULL, *v;
	json_error_t		  je;
	const char		 *k, *note = NULL;
	json_int_t		  ttl = ENROLL_TOKEN_TTL_DEFAULT;
	int			  rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	if (a->req->body_len > 0) {
		body = json_loadb((const char *)a->req->body,
		    a->req->body_len, JSON_REJECT_DUPLICATES, &je);
		if (body == NULL || !json_is_object(body)) {
			api_fail(a, 400, "bad request",
			    "body: want a JSON object");
			goto out;
		}
		json_object_foreach(body, k, v)
		{
			if (strcmp(k, "expires_in") == 0) {
				if (!json_is_integer(v) ||
				    (ttl = json_integer_value(v)) < 1 ||
				    ttl > ENROLL_TOKEN_TTL_MAX) {
					api_fail(a, 400, "bad request",
					    "expires_in: want seconds, 1 to "
					    "%d",
					    ENROLL_TOKEN_TTL_MAX);
					goto out;
				}
			} else if (strcmp(k, "note") == 0) {
				if (!json_is_string(v) ||
				    json_string_length(v) > TOKEN_NOTE_MAX) {
					api_fail(a, 400, "bad request",
					    "note: want a string of at most "
					    "%d bytes",
					    TOKEN_NOTE_MAX);
					goto out;
				}
				note = json_string_value(v);
			} else {
				api_fail(a, 400, "bad request",
				    "unknown key \"%.64s\"", k);
				goto out;
			}
		}
	}
	if (enroll_token_new(tok) == -1) {
		api_fail(a, 500, "internal error", "no random bytes");
		goto out;
	}
	memset(&tk, 0, sizeof(tk));
	sha256(tok, ENROLL_TOKEN_LEN, tk.hash);
	tk.has_hash = 1;
	tk.note = (char *)(uintptr_t)note;
	tk.expires_at = time_now_us() + (uint64_t)ttl * 1000000u;
	if ((rc = store_write(a->srv->store, token_put_op, &tk)) != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	hex_encode(tk.hash, 32, hex);
	time_format(tk.expires_at, e, sizeof(e));
	api_reply(a, 201,
	    json_pack("{s:s, s:s, s:s, s:s*}", "token", tok, "id", hex,
		"expires_at", e, "note", note));
out:
	explicit_bzero(tok, sizeof(tok));
	json_decref(body);
}

/* GET /api/v1/enrollment-tokens: every token, with its state. */
static void
api_token_list(struct api *a)
{
	struct token_list l;
	int		  rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	if ((l.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	if ((rc = store_read(a->srv->store, token_list_op, &l)) != 0)
		api_store_fail(a, rc);
	else
		api_reply(a, 200, json_pack("{s:O}", "tokens", l.arr));
	json_decref(l.arr);
}

/* The value of a lowercase hex digit (checked by enroll_token_valid). */
static unsigned
hexdig(char c)
{
	return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

/* DELETE /api/v1/enrollment-tokens/{id}: revoke (the ID from the list). */
static void
api_token_del(struct api *a)
{
	unsigned char h[32];
	const char   *id = a->seg[1];
	size_t	      i;
	int	      rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	if (!enroll_token_valid(id)) {
		api_fail(a, 400, "bad request",
		    "token ID: want 64 lowercase hex digits");
		return;
	}
	for (i = 0; i < 32; i++)
		h[i] = (unsigned char)(hexdig(id[2 * i]) << 4 |
		    hexdig(id[2 * i + 1]));
	rc = store_write(a->srv->store, token_del_op, h);
	if (rc == 404)
		api_fail(a, 404, "not found", "no enrollment token %.64s", id);
	else if (rc != 0)
		api_store_fail(a, rc);
	else
		api_reply(a, 200, json_pack("{s:s, s:b}", "id", id, "revoked",
		    1));
}

/* ---- routing ---- */

static const struct api_route {
	const char *name;
	size_t	    nargs;
	const char *method;
	void (*fn)(struct api *);
} api_routes[] = {
    {"enqueue", 1, "PUT", api_enqueue},
    {"enqueue", 1, "POST", api_enqueue},
    {"enrollments", 0, "GET", api_enrollments},
    {"enrollments", 1, "GET", api_enrollment},
    {"queue", 1, "GET", api_queue},
    {"queue", 1, "DELETE", api_queue},
    {"queue", 2, "DELETE", api_queue},
    {"commands", 1, "GET", api_command},
    {"results", 1, "GET", api_results},
    {"results", 2, "GET", api_results},
    {"pushcert", 0, "GET", api_pushcert_list},
    {"pushcert", 0, "PUT", api_pushcert_put},
    {"metrics", 0, "GET", api_metrics},
    {"enrollment-tokens", 0, "POST", api_token_new},
    {"enrollment-tokens", 0, "GET", api_token_list},
    {"enrollment-tokens", 1, "DELETE", api_token_del},
};

/*
 * Split the path after /api/v1/ into at most API_SEGS_MAX segments (one
 * trailing '/' is ignored) and percent-decode each. 0, 404 for a path
 * that names nothing, 400 for a bad escape.
 */
static int
api_split(struct api *a)
{
	const char *p = a->req->raw_path ? a->req->raw_path : a->req->uri, *e;
	size_t	    n;

	if (strncmp(p, API_PREFIX, strlen(API_PREFIX)) != 0)
		return 404;
	p += strlen(API_PREFIX);
	n = strlen(p);
	if (n > 0 && p[n - 1] == '/')
		n--;
	if (n == 0)
		return 404;
	while (n > 0 || a->nseg == 0) {
		if (a->nseg == API_SEGS_MAX)
			return 404;
		e = memchr(p, '/', n);
		a->raw[a->nseg] = p;
		a->rawlen[a->nseg] = e != NULL ? (size_t)(e - p) : n;
		if (a->rawlen[a->nseg] == 0)
			return 404;
		if ((a->seg[a->nseg] = pct_decode(p, a->rawlen[a->nseg])) ==
		    NULL)
			return 400;
		a->nseg++;
		if (e == NULL)
			break;
		n -= (size_t)(e - p) + 1;
		p = e + 1;
		if (n == 0)
			return 404;
	}
	return 0;
}

void
api_handle(
    const struct server *srv, const struct request *req, struct response *resp)
{
	const struct api_route *r;
	struct api		a;
	size_t			i;
	int			rc, found = 0;

	memset(&a, 0, sizeof(a));
	a.srv = srv;
	a.req = req;
	a.resp = resp;
	resp->msgtype = "api";
	if (srv->cfg->metrics_public && strcmp(req->method, "GET") == 0 &&
	    strcmp(req->uri, API_PREFIX "metrics") == 0) {
		api_metrics(&a);
		return;
	}
	if (api_auth(&a) == -1)
		return;
	if ((rc = api_split(&a)) != 0) {
		if (rc == 400)
			api_fail(&a, 400, "bad request",
			    "path: bad percent-encoding");
		else
			api_fail(&a, 404, "not found", "no such endpoint");
		goto out;
	}
	for (i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
		r = &api_routes[i];
		if (strcmp(r->name, a.seg[0]) != 0 || r->nargs != a.nseg - 1)
			continue;
		found = 1;
		if (strcmp(r->method, req->method) == 0) {
			r->fn(&a);
			goto out;
		}
	}
	if (found)
		api_fail(&a, 405, "method not allowed",
		    "%.16s is not allowed on this endpoint", req->method);
	else
		api_fail(&a, 404, "not found", "no such endpoint");
out:
	for (i = 0; i < a.nseg; i++)
		free(a.seg[i]);
}
