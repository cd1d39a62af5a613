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
 *	POST   /api/v1/push/{id[,id...]}        queue a push (picomdm-notify)
 *	GET    /healthz                         (no key) 200 ok, or 503 why
 *
 * Path segments are percent-decoded one by one (enrollment IDs contain
 * ':' and '@'; an enqueue's list is split on ',' before decoding). Every
 * error is {"error": ..., "detail": ...} with a 4xx or 5xx status; 401
 * is fine here, unlike on the device endpoints. Secrets (push token,
 * PushMagic, UnlockToken, BootstrapToken) are shown as length and
 * SHA-256 only. The API never prunes (retention is picomdmctl's job).
 *
 * This file holds what every endpoint shares (errors, replies, the key,
 * query parameters, ID lists) and the routing; the endpoints are in
 * api_data.c (enqueue, enrollments, queues, commands, results) and
 * api_admin.c (metrics, push certificates, enrollment tokens, health).
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

#include "api_int.h"

/*
 * The detail of the last error on this thread: response_json_error()
 * keeps a pointer to it as the reason main.c logs after we return, so it
 * must outlive the handler (one request at a time per worker thread).
 */
static _Thread_local char api_detail[COMMAND_ERR_SIZE + 64];

/* Answer with the error shape {"error", "detail"}. */
void
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
void
api_store_fail(struct api *a, int rc)
{
	response_store_result(a->resp, rc, NULL);
	api_fail(a, a->resp->status,
	    a->resp->status == 503 ? "unavailable" : "internal error",
	    "store: %s", rc > 0 ? "refused" : store_strerror(rc));
}

/* Answer status with the JSON o (reference taken). */
void
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
int
api_set(json_t *o, const char *key, json_t *v)
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
		/* Not "try again shortly": only a reconfiguration helps. */
		a->resp->retry_after = 0;
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
 * Parse the query string into vals[i] for each p[i].name (NULL when not
 * given; caller frees). Names and values are percent-decoded ('+' stays
 * '+', so an RFC 3339 offset may be sent as is). An unknown or repeated
 * name or a bad escape is a 400; so is an empty value (no parameter
 * takes one: a filter matching nothing, or no filter, would answer it)
 * and one longer than p[i].max, that nothing in the store could match
 * (picomdm-api(7), Errors). Returns 0, or -1 with the reply set.
 */
int
api_query(struct api *a, const struct api_param *p, size_t n, char **vals)
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
			if (strcmp(name, p[i].name) == 0)
				break;
		if (i == n) {
			api_fail(a, 400, "bad request",
			    "unknown query parameter \"%.64s\"", name);
			goto fail;
		}
		if (vals[i] != NULL) {
			api_fail(a, 400, "bad request",
			    "query parameter \"%s\" given twice", p[i].name);
			goto fail;
		}
		if (*val == '\0') {
			api_fail(a, 400, "bad request", "%s: empty", p[i].name);
			goto fail;
		}
		if (p[i].max > 0 && strlen(val) > p[i].max) {
			api_fail(a, 400, "bad request",
			    "%s: longer than %s (%zu bytes)", p[i].name,
			    p[i].what, p[i].max);
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

void
api_query_free(char **vals, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(vals[i]);
}

/* A number parameter in [min, max]; absent gives dflt. 0 or -1 (400). */
int
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

/* ---- pages of a list paged by "after" (api_ade.c, api_vpp.c) ---- */

/* See api_int.h. */
int
api_page_start(struct api_page *pg, size_t limit)
{
	if (pg->arr == NULL && (pg->arr = json_array()) == NULL)
		return STORE_ENOMEM;
	json_array_clear(pg->arr);
	free(pg->next);
	pg->next = NULL;
	pg->limit = limit;
	pg->scanned = 0;
	pg->more = 0;
	return 0;
}

/* See api_int.h. */
int
api_page_step(struct api_page *pg, const char *cursor)
{
	if (json_array_size(pg->arr) >= pg->limit ||
	    pg->scanned++ == API_SCAN_MAX) {
		pg->more = 1;
		return 1;
	}
	free(pg->next);
	if ((pg->next = strdup(cursor)) == NULL)
		return STORE_ENOMEM;
	return 0;
}

/* See api_int.h. */
void
api_page_reply(struct api *a, struct api_page *pg, const char *name)
{
	json_t *o = json_object();

	if (o == NULL || api_set(o, name, json_incref(pg->arr)) == -1 ||
	    api_set(o, "next",
		pg->more && pg->next != NULL ? json_string(pg->next)
					     : json_null()) == -1) {
		json_decref(o);
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	api_reply(a, 200, o);
}

/* See api_int.h. */
void
api_page_free(struct api_page *pg)
{
	json_decref(pg->arr);
	free(pg->next);
	memset(pg, 0, sizeof(*pg));
}

/* ---- ID lists (enqueue) ---- */

/*
 * Split the raw list segment on ',' and percent-decode each ID; refuse
 * empty or over-long IDs and more than COMMAND_IDS_MAX; drop repeats
 * (the first stays). *ids is owned by the caller (free each, then it).
 */
/* See api_int.h. */
size_t
api_body_start(const struct api *a)
{
	const unsigned char *b = a->req->body;
	size_t		     i;

	for (i = 0; i < a->req->body_len && (b[i] == ' ' || b[i] == '\t' ||
	    b[i] == '\r' || b[i] == '\n'); i++)
		continue;
	return i;
}

int
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
 * priority (0..255), expires (RFC 3339 or seconds from now), nopush=1
 * (no push is queued; by default one is, include/picomdm/push.h). 200 when every ID got the command,
 * 207 when some did, 404 when none (nothing is kept), 409 for a
 * CommandUUID already known.
 */
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
    {"ade", 1, "GET", api_ade_devices},
    {"ade", 2, "GET", api_ade_device},
    {"vpp", 1, "GET", api_vpp},
    {"push", 1, "POST", api_push},
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

/* GET (or HEAD) /api/v1/metrics with metrics_public = yes: served
 * without a key. */
static int
api_public(const struct server *srv, const struct request *req)
{
	return srv->cfg->metrics_public && (strcmp(req->method, "GET") == 0 ||
	    strcmp(req->method, "HEAD") == 0) &&
	    strcmp(req->uri, API_PREFIX "metrics") == 0;
}

/*
 * Called by main.c before the body is read: 0 when the request carries
 * the key (or is the public metrics scrape), else -1 with the 401, 403
 * or 503 set. So a client without the key never has its body read: it
 * learns nothing of api_max and makes no worker hold up to api_max.
 */
int
api_authorize(
    const struct server *srv, const struct request *req, struct response *resp)
{
	struct api a;

	if (api_public(srv, req))
		return 0;
	memset(&a, 0, sizeof(a));
	a.srv = srv;
	a.req = req;
	a.resp = resp;
	return api_auth(&a);
}

void
api_handle(
    const struct server *srv, const struct request *req, struct response *resp)
{
	const struct api_route *r;
	struct api		a;
	char			allow[sizeof(resp->allow)] = "";
	size_t			i;
	int			rc, found = 0;
	int			head = strcmp(req->method, "HEAD") == 0;

	memset(&a, 0, sizeof(a));
	a.srv = srv;
	a.req = req;
	a.resp = resp;
	resp->msgtype = "api";
	if (api_public(srv, req)) {
		api_metrics(&a);
		return;
	}
	/* The key was checked before the body was read (api_authorize). */
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
		/* HEAD is served wherever GET is (RFC 9110, 9.3.2): the
		 * same answer, whose body respond() (main.c) leaves out. */
		if (strcmp(r->method, req->method) == 0 ||
		    (strcmp(r->method, "GET") == 0 && head)) {
			r->fn(&a);
			goto out;
		}
		/* The methods this path takes, for the 405's Allow. */
		if (allow[0] != '\0')
			strlcat(allow, ", ", sizeof(allow));
		strlcat(allow, r->method, sizeof(allow));
		if (strcmp(r->method, "GET") == 0)
			strlcat(allow, ", HEAD", sizeof(allow));
	}
	if (found) {
		api_fail(&a, 405, "method not allowed",
		    "%.16s is not allowed on this endpoint (%s)", req->method,
		    allow);
		strlcpy(resp->allow, allow, sizeof(resp->allow));
	} else
		api_fail(&a, 404, "not found", "no such endpoint");
out:
	for (i = 0; i < a.nseg; i++)
		free(a.seg[i]);
}
