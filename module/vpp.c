/*
 * vpp.c - the Apps and Books v2 client: service configuration first,
 * its URLs for everything else, errorNumber on every answer, bounded
 * Retry-After, and a requests-per-second spacing. See
 * include/picomdm/vpp.h and man/picomdm-vpp.8.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "picomdm/util.h"
#include "picomdm/vpp.h"

#define VPP_BODY_MAX (64L * 1024 * 1024)

struct vpp {
	CURL          *curl;
	char          *auth;    /* "Authorization: Bearer ..." */
	char          *config_url;
	char          *ca_file;
	json_t        *config;  /* the service configuration */
	char          *v1_url;  /* v1's service configuration */
	json_t        *v1_config;
	double         rps;
	int            max_retries;
	long           max_wait_s;
	long           timeout_ms;
	struct timespec last;   /* when the last request left */
	unsigned long  requests;
	char          *cookie;  /* "itvt=<sToken>" while vpp_lookup runs */
};

struct vpp_buf {
	char  *p;
	size_t n;
	long   retry_after; /* seconds, -1 when absent */
	int    toobig;
};

static size_t
vpp_write_cb(char *d, size_t sz, size_t nm, void *arg)
{
	struct vpp_buf *b = arg;
	size_t          n = sz * nm;
	char           *q;

	if (b->n + n > (size_t)VPP_BODY_MAX) {
		b->toobig = 1;
		return 0;
	}
	q = realloc(b->p, b->n + n + 1);
	if (q == NULL)
		return 0;
	memcpy(q + b->n, d, n);
	b->p = q;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* See vpp.h. */
void
vpp_answer_header(const char *d, size_t n, long *retry_after)
{
	size_t i = 12;
	long   v = 0;

	if (n > 12 && strncasecmp(d, "Retry-After:", 12) == 0) {
		while (i < n && d[i] == ' ')
			i++;
		if (i < n && d[i] >= '0' && d[i] <= '9') {
			for (; i < n && d[i] >= '0' && d[i] <= '9' &&
			    v < 1000000; i++)
				v = v * 10 + (d[i] - '0');
			*retry_after = v;
		} else {
			/* An HTTP-date: wait the longest we accept. */
			char date[64];
			size_t k = 0;

			while (i < n && k + 1 < sizeof date && d[i] != '\r' &&
			    d[i] != '\n')
				date[k++] = d[i++];
			date[k] = '\0';
			time_t t = curl_getdate(date, NULL);
			*retry_after = t > time(NULL) ?
			    (long)(t - time(NULL)) : 1;
		}
	}
}

static size_t
vpp_header_cb(char *d, size_t sz, size_t nm, void *arg)
{
	struct vpp_buf *b = arg;

	vpp_answer_header(d, sz * nm, &b->retry_after);
	return sz * nm;
}

struct vpp *
vpp_new(const struct vpp_token *t, const struct vpp_opts *o)
{
	struct vpp *v = calloc(1, sizeof *v);
	size_t      n;

	if (v == NULL)
		return NULL;
	v->curl = curl_easy_init();
	n = strlen(t->stoken) + sizeof "Authorization: Bearer ";
	v->auth = malloc(n);
	v->config_url = strdup(o && o->config_url ? o->config_url :
	    VPP_SERVICE_CONFIG_URL);
	v->ca_file = o && o->ca_file ? strdup(o->ca_file) : NULL;
	v->v1_url = strdup(o && o->v1_url ? o->v1_url :
	    VPP_V1_SERVICE_CONFIG_URL);
	if (v->curl == NULL || v->auth == NULL || v->config_url == NULL ||
	    v->v1_url == NULL ||
	    (o && o->ca_file && v->ca_file == NULL)) {
		vpp_free(v);
		return NULL;
	}
	snprintf(v->auth, n, "Authorization: Bearer %s", t->stoken);
	clock_gettime(CLOCK_MONOTONIC, &v->last);
	v->rps = o && o->max_rps > 0 ? o->max_rps : VPP_RPS_DEFAULT;
	v->max_retries = o && o->max_retries > 0 ? o->max_retries : 3;
	v->max_wait_s = o && o->max_wait_s > 0 ? o->max_wait_s : 60;
	v->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : 30000;
	return v;
}

void
vpp_free(struct vpp *v)
{
	if (v == NULL)
		return;
	if (v->curl != NULL)
		curl_easy_cleanup(v->curl);
	if (v->auth != NULL)
		explicit_bzero(v->auth, strlen(v->auth));
	free(v->auth);
	free(v->config_url);
	free(v->ca_file);
	free(v->v1_url);
	json_decref(v->v1_config);
	json_decref(v->config);
	free(v);
}

unsigned long
vpp_requests(const struct vpp *v)
{
	return v->requests;
}

const char *
vpp_token_error(int n)
{
	switch (n) {
	case 9621:
		return "the content token has expired (9621): download a new "
		    "one from Apple Business or School Manager";
	case 9622:
		return "the content token is not valid (9622): check that the "
		    "whole .vpptoken file was given";
	case 9625:
		return "the content token was revoked (9625): a new token was "
		    "downloaded or the location removed; use the new token";
	case 9722:
		return "the Authorization header was refused (9722)";
	default:
		return NULL;
	}
}

/* Space requests 1.1/rps seconds apart: at most rps in any second as
 * the service measures it, with room for jitter on the way. The first
 * waits one gap after the client was made, so that runs started back
 * to back (a write after a sync) keep the spacing too. */
static void
pace(struct vpp *v)
{
	struct timespec now;
	double          gap, since;

	clock_gettime(CLOCK_MONOTONIC, &now);
	gap = 1.1 / v->rps;
	since = (double)(now.tv_sec - v->last.tv_sec) +
	    (double)(now.tv_nsec - v->last.tv_nsec) / 1e9;
	if (since < gap) {
		time_sleep(gap - since);
		clock_gettime(CLOCK_MONOTONIC, &now);
	}
	v->last = now;
	v->requests++;
}

static void
seterr(struct vpp_error *e, long http, int number, const char *a,
    const char *b)
{
	if (e == NULL)
		return;
	e->http = http;
	e->number = number;
	snprintf(e->message, sizeof e->message, "%s%s", a, b);
}

/* GET url (POST body when not NULL); the parsed object, or NULL with e
 * set. auth: send the bearer. */
static json_t *
vpp_fetch(struct vpp *v, const char *url, int auth, const char *body,
    struct vpp_error *e)
{
	struct curl_slist *h = NULL;
	struct vpp_buf     b;
	char               cerr[CURL_ERROR_SIZE];
	json_t            *o = NULL;
	long               http = 0;
	CURLcode           rc;

	for (int attempt = 0;; attempt++) {
		memset(&b, 0, sizeof b);
		b.retry_after = -1;
		cerr[0] = '\0';
		h = curl_slist_append(NULL, "Accept: application/json");
		if (auth && v->cookie == NULL && h != NULL)
			h = curl_slist_append(h, v->auth);
		if (body != NULL && h != NULL)
			h = curl_slist_append(h,
			    "Content-Type: application/json");
		if (h == NULL) {
			seterr(e, 0, 0, "", "out of memory");
			return NULL;
		}
		curl_easy_reset(v->curl);
		curl_easy_setopt(v->curl, CURLOPT_URL, url);
		curl_easy_setopt(v->curl, CURLOPT_PROTOCOLS_STR, "https");
		curl_easy_setopt(v->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(v->curl, CURLOPT_HTTPHEADER, h);
		if (body != NULL)
			curl_easy_setopt(v->curl, CURLOPT_POSTFIELDS, body);
		if (v->ca_file != NULL)
			curl_easy_setopt(v->curl, CURLOPT_CAINFO, v->ca_file);
		if (auth && v->cookie != NULL)
			curl_easy_setopt(v->curl, CURLOPT_COOKIE, v->cookie);
		curl_easy_setopt(v->curl, CURLOPT_TIMEOUT_MS, v->timeout_ms);
		curl_easy_setopt(v->curl, CURLOPT_WRITEFUNCTION, vpp_write_cb);
		curl_easy_setopt(v->curl, CURLOPT_WRITEDATA, &b);
		curl_easy_setopt(v->curl, CURLOPT_HEADERFUNCTION,
		    vpp_header_cb);
		curl_easy_setopt(v->curl, CURLOPT_HEADERDATA, &b);
		curl_easy_setopt(v->curl, CURLOPT_ERRORBUFFER, cerr);
		pace(v);
		rc = curl_easy_perform(v->curl);
		curl_slist_free_all(h);
		if (rc != CURLE_OK) {
			free(b.p);
			seterr(e, 0, 0, "", b.toobig ?
			    "the answer is too large" : cerr[0] ? cerr :
			    curl_easy_strerror(rc));
			return NULL;
		}
		curl_easy_getinfo(v->curl, CURLINFO_RESPONSE_CODE, &http);
		int number;

		o = vpp_answer(http, b.p, b.n, e, &number);
		free(b.p);
		int retry = (http == 429 || number == 9646 || http >= 500) &&
		    attempt < v->max_retries &&
		    (b.retry_after >= 0 || http == 429 || number == 9646);
		if (retry) {
			long w = b.retry_after >= 0 ? b.retry_after :
			    1L << attempt;
			if (w > v->max_wait_s)
				w = v->max_wait_s;
			json_decref(o);
			time_sleep((double)w);
			continue;
		}
		return o;
	}
}

/* See vpp.h. */
json_t *
vpp_answer(long http, const char *body, size_t n, struct vpp_error *e,
    int *number)
{
	json_t	  *o, *num;
	json_int_t x;

	o = body != NULL ? json_loadb(body, n, 0, NULL) : NULL;
	num = json_object_get(o, "errorNumber");
	x = json_is_integer(num) ? json_integer_value(num) : 0;
	/* Out of int's range it is an error still, but none of Apple's
	 * numbers: -1, never a wrapped 9621 read as a token error. */
	*number = x >= 1 && x <= INT_MAX ? (int)x : x != 0 ? -1 : 0;
	if (*number != 0) {
		const char *tm = vpp_token_error(*number);
		const char *msg = json_string_value(
		    json_object_get(o, "errorMessage"));

		if (tm != NULL)
			seterr(e, http, *number, "", tm);
		else if (e != NULL) {
			e->http = http;
			e->number = *number;
			snprintf(e->message, sizeof e->message,
			    "Apple error %d (HTTP %ld): %.400s", *number,
			    http, msg ? msg : "no errorMessage");
		}
		json_decref(o);
		return NULL;
	}
	if (http != 200 || !json_is_object(o)) {
		char m[64];

		snprintf(m, sizeof m, "HTTP %ld%s", http,
		    json_is_object(o) ? "" : ", not a JSON object");
		seterr(e, http, 0, "unexpected answer: ", m);
		json_decref(o);
		return NULL;
	}
	if (e != NULL)
		memset(e, 0, sizeof *e);
	return o;
}

json_t *
vpp_service_config(struct vpp *v, struct vpp_error *e)
{
	json_t *c;

	if (v->config != NULL)
		return v->config;
	c = vpp_fetch(v, v->config_url, 0, NULL, e);
	if (c == NULL)
		return NULL;
	if (vpp_config_check(c, &v->rps, e) != 0) {
		json_decref(c);
		return NULL;
	}
	v->config = c;
	return c;
}

/* See vpp.h. */
int
vpp_config_check(const json_t *c, double *rps, struct vpp_error *e)
{
	const json_t *r;

	if (!json_is_object(json_object_get(c, "urls"))) {
		seterr(e, 200, 0, "", "the service configuration has no "
		    "\"urls\" object");
		return -1;
	}
	r = json_object_get(json_object_get(c, "limits"),
	    "maxRequestPerSecond");
	if (json_is_integer(r) && json_integer_value(r) > 0 &&
	    (double)json_integer_value(r) < *rps)
		*rps = (double)json_integer_value(r);
	return 0;
}

static json_t *vpp_call(struct vpp *, const char *, const char *,
    const char *, struct vpp_error *);

json_t *
vpp_get(struct vpp *v, const char *key, const char *query,
    struct vpp_error *e)
{
	return vpp_call(v, key, query, NULL, e);
}

json_t *
vpp_post(struct vpp *v, const char *key, const json_t *body,
    struct vpp_error *e)
{
	char   *b = json_dumps(body, JSON_COMPACT);
	json_t *o;

	if (b == NULL) {
		seterr(e, 0, 0, "", "out of memory");
		return NULL;
	}
	o = vpp_call(v, key, NULL, b, e);
	free(b);
	return o;
}

static json_t *
vpp_call(struct vpp *v, const char *key, const char *query, const char *body,
    struct vpp_error *e)
{
	json_t     *c = vpp_service_config(v, e);
	const char *base;
	char       *url;
	size_t      n;
	json_t     *o;

	if (c == NULL)
		return NULL;
	base = json_string_value(json_object_get(json_object_get(c, "urls"),
	    key));
	if (base == NULL || strncmp(base, "https://", 8) != 0) {
		seterr(e, 0, 0, "the service configuration names no https "
		    "URL for ", key);
		return NULL;
	}
	n = strlen(base) + (query ? strlen(query) : 0) + 2;
	url = malloc(n);
	if (url == NULL) {
		seterr(e, 0, 0, "", "out of memory");
		return NULL;
	}
	snprintf(url, n, "%s%s%s", base,
	    query && *query ? (strchr(base, '?') ? "&" : "?") : "",
	    query ? query : "");
	o = vpp_fetch(v, url, 1, body, e);
	free(url);
	return o;
}

static int
query_safe(const char *s)
{
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' ||
		    *s == '.'))
			return 0;
	return 1;
}

int
vpp_list(struct vpp *v, const char *key, const char *array,
    const char *since, int (*cb)(json_t *, void *), void *arg,
    char **version, struct vpp_error *e)
{
	long long page = 0, total = 1;
	char      q[160];

	if (version != NULL)
		*version = NULL;
	if (since != NULL && !query_safe(since)) {
		seterr(e, 0, 0, "sinceVersionId has characters a version "
		    "id does not: ", since);
		return -1;
	}
	while (page < total) {
		json_t	 *o, *a, *x, *np;
		long long tp;
		size_t	  i;

		q[0] = '\0';
		if (page > 0 && since != NULL)
			snprintf(q, sizeof q, "pageIndex=%lld&sinceVersionId=%s",
			    page, since);
		else if (page > 0)
			snprintf(q, sizeof q, "pageIndex=%lld", page);
		else if (since != NULL)
			snprintf(q, sizeof q, "sinceVersionId=%s", since);
		o = vpp_get(v, key, q, e);
		if (o == NULL)
			goto fail;
		a = json_object_get(o, array);
		np = json_object_get(o, "nextPageIndex");
		if (vpp_page_check(o, array, page, &tp, e) != 0) {
			json_decref(o);
			goto fail;
		}
		if (page == 0) {
			total = tp;
			x = json_object_get(o, "versionId");
			if (version != NULL && json_is_string(x)) {
				*version = strdup(json_string_value(x));
				if (*version == NULL) {
					json_decref(o);
					seterr(e, 0, 0, "", "out of memory");
					goto fail;
				}
			}
		}
		json_array_foreach(a, i, x) {
			if (cb(x, arg) != 0) {
				json_decref(o);
				seterr(e, 0, 0, "", "stopped by the caller");
				goto fail;
			}
		}
		if (json_is_integer(np) && json_integer_value(np) != page + 1) {
			seterr(e, 200, 0, "", "nextPageIndex skips a page");
			json_decref(o);
			goto fail;
		}
		if (np == NULL && page + 1 < total) {
			seterr(e, 200, 0, "",
			    "no nextPageIndex before totalPages");
			json_decref(o);
			goto fail;
		}
		json_decref(o);
		page++;
	}
	return 0;
fail:
	if (version != NULL) {
		free(*version);
		*version = NULL;
	}
	return -1;
}

json_t *
vpp_page(struct vpp *v, const char *key, const char *array, const char *since,
    long long page, long long *total, struct vpp_error *e)
{
	json_t *o;
	char	q[160];

	if (since != NULL && !query_safe(since)) {
		seterr(e, 0, 0, "sinceVersionId has characters a version "
		    "id does not: ", since);
		return NULL;
	}
	q[0] = '\0';
	if (page > 0 && since != NULL)
		snprintf(q, sizeof q, "pageIndex=%lld&sinceVersionId=%s", page,
		    since);
	else if (page > 0)
		snprintf(q, sizeof q, "pageIndex=%lld", page);
	else if (since != NULL)
		snprintf(q, sizeof q, "sinceVersionId=%s", since);
	if ((o = vpp_get(v, key, q, e)) == NULL)
		return NULL;
	if (vpp_page_check(o, array, page, total, e) != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* See vpp.h. */
int
vpp_page_check(const json_t *o, const char *array, long long page,
    long long *total, struct vpp_error *e)
{
	const json_t *tp, *cp;

	tp = json_object_get(o, "totalPages");
	cp = json_object_get(o, "currentPageIndex");
	if (!json_is_array(json_object_get(o, array)) ||
	    !json_is_integer(tp) || json_integer_value(tp) < 1 ||
	    !json_is_integer(cp) || json_integer_value(cp) != page) {
		seterr(e, 200, 0, "page answer without totalPages, the page "
		    "asked for or the array ", array);
		return -1;
	}
	*total = json_integer_value(tp);
	return 0;
}

/*
 * The content-metadata lookup (urls.<key> of the service configuration,
 * contentMetadataLookup): the sToken goes as the itvt cookie, not as a
 * bearer, so that the organisation's custom apps are found too. See
 * include/picomdm/vpp.h.
 */
json_t *
vpp_lookup(struct vpp *v, const char *key, const char *query,
    struct vpp_error *e)
{
	const char *bearer = "Authorization: Bearer ";
	size_t      n;
	json_t     *o;

	if (strncmp(v->auth, bearer, strlen(bearer)) != 0) {
		seterr(e, 0, 0, "", "no sToken");
		return NULL;
	}
	n = strlen(v->auth) - strlen(bearer) + sizeof "itvt=";
	if ((v->cookie = malloc(n)) == NULL) {
		seterr(e, 0, 0, "", "out of memory");
		return NULL;
	}
	snprintf(v->cookie, n, "itvt=%s", v->auth + strlen(bearer));
	o = vpp_call(v, key, query, NULL, e);
	explicit_bzero(v->cookie, n);
	free(v->cookie);
	v->cookie = NULL;
	return o;
}

/* See vpp.h. */
json_t *
vpp_v1_post(struct vpp *v, const char *key, const json_t *body,
    struct vpp_error *e)
{
	static const char bearer[] = "Authorization: Bearer ";
	const char	 *url;
	json_t		 *b, *o, *st;
	char		 *s;

	if (v->v1_config == NULL) {
		o = vpp_fetch(v, v->v1_url, 0, NULL, e);
		if (o == NULL)
			return NULL;
		v->v1_config = o;
	}
	url = json_string_value(json_object_get(v->v1_config, key));
	if (url == NULL || strncmp(url, "https://", 8) != 0) {
		seterr(e, 0, 0, "the v1 service configuration names no https "
		    "URL for ", key);
		return NULL;
	}
	b = body != NULL ? json_deep_copy(body) : json_object();
	if (b == NULL || json_object_set_new(b, "sToken",
	    json_string(v->auth + sizeof bearer - 1)) != 0 ||
	    (s = json_dumps(b, JSON_COMPACT)) == NULL) {
		json_decref(b);
		seterr(e, 0, 0, "", "out of memory");
		return NULL;
	}
	json_decref(b);
	o = vpp_fetch(v, url, 0, s, e);
	explicit_bzero(s, strlen(s));
	free(s);
	if (o == NULL)
		return NULL;
	st = json_object_get(o, "status");
	if (!json_is_integer(st) || json_integer_value(st) != 0) {
		seterr(e, 200, 0, "", "v1 answer without status 0");
		json_decref(o);
		return NULL;
	}
	return o;
}
