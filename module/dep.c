/*
 * dep.c - the HTTPS client of Apple's Automated Device Enrollment
 * service (mdmenrollment.apple.com), for picomdm-dep(8): OAuth 1.0a
 * (RFC 5849, HMAC-SHA1) on GET /session, the X-ADM-Auth-Session header
 * on every call, re-authentication once when the session has expired,
 * Retry-After on 429/503, and Apple's error codes mapped to enum
 * dep_status (include picomdm/dep.h). libcurl, one handle per client,
 * not thread-safe.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "picomdm/dep.h"
#include "picomdm/log.h"
#include "picomdm/util.h"

/* Responses larger than this are refused (a page of 1,000 devices is
 * well under 1 MiB). */
#define DEP_BODY_MAX	 (32u * 1024 * 1024)
#define DEP_SESSION_MAX	 4096
#define DEP_ERRCODE_MAX	 64
#define DEP_CONTENT_TYPE "application/json;charset=UTF8"

struct dep_client {
	CURL		*curl;
	char		*url;	      /* base, no trailing slash */
	char		*session_uri; /* OAuth base string URI */
	char		*ca_file;
	char		*user_agent;
	char		*protocol;
	unsigned	 max_wait;
	unsigned	 max_retries;
	long		 timeout;
	struct dep_oauth oauth;
	char		*session; /* current X-ADM-Auth-Session, or NULL */
	unsigned	 sessions;
	/* Per response. */
	struct buf body;
	char	   new_session[DEP_SESSION_MAX];
	long	   retry_after; /* seconds, -1 when absent */
	char	   errcode[DEP_ERRCODE_MAX];
	long	   errstatus;
};

static const char *const dep_errors[DEP_ERR__MAX] = {
    [DEP_OK] = "success",
    [DEP_ERR_SYSTEM] = "out of memory or library failure",
    [DEP_ERR_TRANSPORT] = "cannot reach the ADE service",
    [DEP_ERR_PROTOCOL] = "unexpected response from the ADE service",
    [DEP_ERR_AUTH] = "authentication refused (token revoked, replaced "
		     "or wrong)",
    [DEP_ERR_TERMS] = "T_C_NOT_SIGNED: the organisation must accept "
		      "Apple's new terms and conditions in Apple Business "
		      "Manager",
    [DEP_ERR_DENIED] = "ACCESS_DENIED: this token has no access",
    [DEP_ERR_RETRY_LATER] = "the ADE service asked to retry later",
    [DEP_ERR_CURSOR_EXHAUSTED] = "EXHAUSTED_CURSOR: fetch is complete, "
				 "sync instead",
    [DEP_ERR_CURSOR_EXPIRED] = "EXPIRED_CURSOR: the cursor is too old, "
			       "fetch again",
    [DEP_ERR_CURSOR_INVALID] = "INVALID_CURSOR: fetch again",
    [DEP_ERR_REQUEST] = "request refused by the ADE service",
    [DEP_ERR_TOKEN_FORMAT] = "not an ADE server token",
    [DEP_ERR_TOKEN_WRONG_KEY] = "the server token is encrypted to "
				"another certificate",
    [DEP_ERR_TOKEN_EXPIRED] = "the server token has expired",
    [DEP_ERR_KEY] = "unusable key or certificate",
};

const char *
dep_strerror(enum dep_status s)
{
	if ((unsigned)s >= DEP_ERR__MAX)
		return "unknown error";
	return dep_errors[s];
}

char *
dep_pct_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		  n = strlen(s), i, k = 0;
	unsigned char	  c;
	char		 *o;

	if (n > SIZE_MAX / 3 - 1 || (o = malloc(3 * n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '.' || c == '_' ||
		    c == '~') {
			o[k++] = (char)c;
		} else {
			o[k++] = '%';
			o[k++] = hex[c >> 4];
			o[k++] = hex[c & 15];
		}
	}
	o[k] = '\0';
	return o;
}

char *
dep_oauth_base_uri(const char *base, const char *path)
{
	const char *p, *host, *hend, *port = NULL, *rest;
	struct buf  b = {.max = 8192};
	size_t	    i, sl;
	int	    https;

	if (strncasecmp(base, "https://", 8) == 0) {
		https = 1;
		sl = 8;
	} else if (strncasecmp(base, "http://", 7) == 0) {
		https = 0;
		sl = 7;
	} else
		return NULL;
	host = base + sl;
	rest = host + strcspn(host, "/?#");
	if (*rest == '?' || *rest == '#')
		return NULL;
	hend = rest;
	/* Port: after the last ':' unless inside an IPv6 literal. */
	for (p = rest; p > host; p--)
		if (p[-1] == ':' || p[-1] == ']')
			break;
	if (p > host && p[-1] == ':') {
		port = p;
		hend = p - 1;
	}
	if (hend == host)
		return NULL;
	if (buf_printf(&b, "%s://", https ? "https" : "http") != 0)
		goto fail;
	for (i = 0; i < (size_t)(hend - host); i++) {
		char c = (char)tolower((unsigned char)host[i]);

		if (buf_append(&b, &c, 1) != 0)
			goto fail;
	}
	if (port != NULL && port < rest) {
		size_t pl = (size_t)(rest - port);

		if (!((https && pl == 3 && strncmp(port, "443", 3) == 0) ||
			(!https && pl == 2 && strncmp(port, "80", 2) == 0)))
			if (buf_append(&b, port - 1, pl + 1) != 0)
				goto fail;
	}
	/* A prefix path is kept; a trailing slash is not doubled. */
	sl = strlen(rest);
	while (sl > 0 && rest[sl - 1] == '/')
		sl--;
	if (buf_append(&b, rest, sl) != 0 ||
	    buf_append(&b, path, strlen(path) + 1) != 0)
		goto fail;
	return (char *)b.p;
fail:
	buf_free(&b);
	return NULL;
}

char *
dep_oauth_header(const struct dep_oauth *o, const char *base_uri,
    const char *ts, const char *nonce, char **base_string)
{
	/* Sorted by name, as the base string needs them (§3.4.1.3.2). */
	const char   *names[6] = {"oauth_consumer_key", "oauth_nonce",
	      "oauth_signature_method", "oauth_timestamp", "oauth_token",
	      "oauth_version"};
	const char   *vals[6];
	char	     *enc[6] = {NULL}, *pkey = NULL, *psec = NULL;
	char	     *puri = NULL, *pparams = NULL, *sig64 = NULL;
	char	     *psig = NULL, *ret = NULL;
	struct buf    params = {.max = 16384}, base = {.max = 32768};
	struct buf    key = {.max = 16384}, hdr = {.max = 32768};
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int  maclen = 0;
	size_t	      i;

	vals[0] = o->consumer_key;
	vals[1] = nonce;
	vals[2] = "HMAC-SHA1";
	vals[3] = ts;
	vals[4] = o->access_token;
	vals[5] = "1.0";
	if (base_string != NULL)
		*base_string = NULL;
	for (i = 0; i < 6; i++) {
		if ((enc[i] = dep_pct_encode(vals[i])) == NULL)
			goto out;
		if (buf_printf(&params, "%s%s=%s", i ? "&" : "", names[i],
			enc[i]) != 0)
			goto out;
	}
	if (buf_append(&params, "", 1) != 0)
		goto out;
	if ((puri = dep_pct_encode(base_uri)) == NULL ||
	    (pparams = dep_pct_encode((char *)params.p)) == NULL ||
	    buf_printf(&base, "GET&%s&%s", puri, pparams) != 0 ||
	    buf_append(&base, "", 1) != 0)
		goto out;
	if ((pkey = dep_pct_encode(o->consumer_secret)) == NULL ||
	    (psec = dep_pct_encode(o->access_secret)) == NULL ||
	    buf_printf(&key, "%s&%s", pkey, psec) != 0)
		goto out;
	if (HMAC(EVP_sha1(), key.p, (int)key.len, base.p, base.len - 1, mac,
		&maclen) == NULL)
		goto out;
	if ((sig64 = base64_encode(mac, maclen)) == NULL ||
	    (psig = dep_pct_encode(sig64)) == NULL)
		goto out;
	if (buf_printf(&hdr,
		"OAuth realm=\"ADM\", oauth_consumer_key=\"%s\", "
		"oauth_token=\"%s\", oauth_signature_method=\"HMAC-SHA1\", "
		"oauth_signature=\"%s\", oauth_timestamp=\"%s\", "
		"oauth_nonce=\"%s\", oauth_version=\"1.0\"",
		enc[0], enc[4], psig, enc[3], enc[1]) != 0 ||
	    buf_append(&hdr, "", 1) != 0)
		goto out;
	ret = (char *)hdr.p;
	hdr.p = NULL;
	if (base_string != NULL) {
		*base_string = (char *)base.p;
		base.p = NULL;
	}
out:
	for (i = 0; i < 6; i++)
		free(enc[i]);
	if (key.p != NULL)
		OPENSSL_cleanse(key.p, key.len);
	if (pkey != NULL)
		freezero(pkey, strlen(pkey));
	if (psec != NULL)
		freezero(psec, strlen(psec));
	free(puri);
	free(pparams);
	free(sig64);
	free(psig);
	buf_free(&params);
	buf_free(&base);
	buf_free(&key);
	buf_free(&hdr);
	return ret;
}

static char *
dup_or(const char *s, const char *dflt)
{
	return strdup(s != NULL ? s : dflt);
}

struct dep_client *
dep_client_new(const struct dep_client_config *cfg, const struct dep_oauth *o)
{
	struct dep_client *c;
	size_t		   n;

	if (o->consumer_key == NULL || o->consumer_secret == NULL ||
	    o->access_token == NULL || o->access_secret == NULL)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->body.max = DEP_BODY_MAX;
	c->url = dup_or(cfg->url, DEP_DEFAULT_URL);
	c->user_agent = dup_or(cfg->user_agent, "picomdm-dep/" PACKAGE_VERSION);
	c->protocol = dup_or(cfg->protocol_version, DEP_DEFAULT_PROTOCOL);
	c->ca_file = cfg->ca_file != NULL ? strdup(cfg->ca_file) : NULL;
	c->max_wait = cfg->max_wait ? cfg->max_wait : DEP_DEFAULT_MAX_WAIT;
	c->max_retries = cfg->max_retries ? cfg->max_retries : 3;
	c->timeout = cfg->timeout > 0 ? cfg->timeout : 60;
	c->oauth.consumer_key = strdup(o->consumer_key);
	c->oauth.consumer_secret = strdup(o->consumer_secret);
	c->oauth.access_token = strdup(o->access_token);
	c->oauth.access_secret = strdup(o->access_secret);
	c->oauth.expiry_us = o->expiry_us;
	if (c->url == NULL || c->user_agent == NULL || c->protocol == NULL ||
	    (cfg->ca_file != NULL && c->ca_file == NULL) ||
	    c->oauth.consumer_key == NULL || c->oauth.consumer_secret == NULL ||
	    c->oauth.access_token == NULL || c->oauth.access_secret == NULL)
		goto fail;
	n = strlen(c->url);
	while (n > 0 && c->url[n - 1] == '/')
		c->url[--n] = '\0';
	if ((c->session_uri = dep_oauth_base_uri(c->url, "/session")) == NULL)
		goto fail;
	if ((c->curl = curl_easy_init()) == NULL)
		goto fail;
	return c;
fail:
	dep_client_free(c);
	return NULL;
}

void
dep_client_free(struct dep_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	dep_oauth_clear(&c->oauth);
	if (c->session != NULL)
		freezero(c->session, strlen(c->session));
	OPENSSL_cleanse(c->new_session, sizeof(c->new_session));
	buf_free(&c->body);
	free(c->url);
	free(c->session_uri);
	free(c->ca_file);
	free(c->user_agent);
	free(c->protocol);
	free(c);
}

const char *
dep_client_error(const struct dep_client *c, long *status)
{
	if (status != NULL)
		*status = c->errstatus;
	return c->errcode;
}

unsigned
dep_client_sessions(const struct dep_client *c)
{
	return c->sessions;
}

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct dep_client *c = arg;

	if (buf_append(&c->body, p, sz * n) != 0)
		return 0; /* over DEP_BODY_MAX: curl aborts the transfer */
	return sz * n;
}

/* Header value of line p[0..n) if its name is name, trimmed; else NULL. */
static const char *
header_value(const char *p, size_t n, const char *name, size_t *vlen)
{
	size_t nl = strlen(name), i;

	if (n <= nl || p[nl] != ':' || strncasecmp(p, name, nl) != 0)
		return NULL;
	for (i = nl + 1; i < n && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	while (n > i &&
	    (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' ||
		p[n - 1] == '\t'))
		n--;
	*vlen = n - i;
	return p + i;
}

/* See dep.h. */
void
dep_answer_header(const char *p, size_t len, char *session, size_t sn,
    long *retry_after)
{
	const char *v;
	size_t	    vl;
	char	    tmp[32];
	long long   secs;

	if ((v = header_value(p, len, "X-ADM-Auth-Session", &vl)) != NULL) {
		if (vl > 0 && vl < sn) {
			memcpy(session, v, vl);
			session[vl] = '\0';
		}
	} else if ((v = header_value(p, len, "Retry-After", &vl)) != NULL) {
		/* Seconds; an HTTP-date counts as absent (waits 1 s). */
		if (vl > 0 && vl < sizeof(tmp)) {
			memcpy(tmp, v, vl);
			tmp[vl] = '\0';
			if (num_parse(tmp, 0, 86400 * 7, &secs) == 0)
				*retry_after = (long)secs;
		}
	}
}

static size_t
on_header(char *p, size_t sz, size_t n, void *arg)
{
	struct dep_client *c = arg;

	dep_answer_header(p, sz * n, c->new_session, sizeof(c->new_session),
	    &c->retry_after);
	return sz * n;
}

/*
 * Reduce an error body (len bytes) to its code: "CODE", "\"CODE\"" or
 * {"code":"CODE"}, into code (n bytes); anything else becomes "" (the
 * status alone speaks).
 */
static void
errcode_parse(const char *p, size_t len, char *code, size_t cn)
{
	json_t	   *j, *v;
	const char *s = NULL;
	size_t	    i, n;

	code[0] = '\0';
	if (len == 0 || p == NULL)
		return;
	j = json_loadb(p, len, JSON_DECODE_ANY, NULL);
	if (json_is_string(j))
		s = json_string_value(j);
	else if (json_is_object(j) &&
	    json_is_string(v = json_object_get(j, "code")))
		s = json_string_value(v);
	if (s != NULL) {
		n = strlen(s);
	} else {
		s = p;
		n = len;
		while (n > 0 && isspace((unsigned char)s[n - 1]))
			n--;
	}
	if (n == 0 || n >= cn)
		goto out;
	for (i = 0; i < n; i++)
		if (!(isupper((unsigned char)s[i]) ||
			isdigit((unsigned char)s[i]) || s[i] == '_'))
			goto out;
	memcpy(code, s, n);
	code[n] = '\0';
out:
	json_decref(j);
}

static void
errcode_of(struct dep_client *c)
{
	errcode_parse(
	    (const char *)c->body.p, c->body.len, c->errcode, sizeof(c->errcode));
}

/*
 * One HTTP exchange. headers are added to the standard ones. Fills
 * c->body, *status, c->retry_after and c->new_session. Returns DEP_OK or
 * DEP_ERR_TRANSPORT / DEP_ERR_SYSTEM.
 */
static enum dep_status
exchange(struct dep_client *c, const char *method, const char *path,
    const char *auth, const char *body, long *status)
{
	struct curl_slist *h = NULL, *t;
	char		   line[DEP_SESSION_MAX + 64];
	char		   errbuf[CURL_ERROR_SIZE] = "";
	struct buf	   url = {.max = 16384};
	enum dep_status	   rc = DEP_ERR_SYSTEM;
	CURLcode	   cc;
	CURL		  *cu = c->curl;

	buf_free(&c->body);
	c->body.max = DEP_BODY_MAX;
	c->new_session[0] = '\0';
	c->retry_after = -1;
	*status = 0;
	if (buf_printf(&url, "%s%s", c->url, path) != 0 ||
	    buf_append(&url, "", 1) != 0)
		goto out;
#define ADDH(s)                                              \
	do {                                                 \
		if ((t = curl_slist_append(h, (s))) == NULL) \
			goto out;                            \
		h = t;                                       \
	} while (0)
	if (snprintf(line, sizeof(line), "User-Agent: %s", c->user_agent) >=
	    (int)sizeof(line))
		goto out;
	ADDH(line);
	if (snprintf(line, sizeof(line), "X-Server-Protocol-Version: %s",
		c->protocol) >= (int)sizeof(line))
		goto out;
	ADDH(line);
	ADDH("Accept: " DEP_CONTENT_TYPE);
	/* Apple's simulator wants the content type even on GET /session. */
	if (body != NULL || auth != NULL)
		ADDH("Content-Type: " DEP_CONTENT_TYPE);
	if (auth != NULL) {
		struct buf a = {.max = 32768};

		if (buf_printf(&a, "Authorization: %s", auth) != 0 ||
		    buf_append(&a, "", 1) != 0) {
			buf_free(&a);
			goto out;
		}
		t = curl_slist_append(h, (char *)a.p);
		OPENSSL_cleanse(a.p, a.len);
		buf_free(&a);
		if (t == NULL)
			goto out;
		h = t;
	} else if (c->session != NULL) {
		if (snprintf(line, sizeof(line), "X-ADM-Auth-Session: %s",
			c->session) >= (int)sizeof(line))
			goto out;
		ADDH(line);
	}
	ADDH("Expect:");
#undef ADDH
	curl_easy_reset(cu);
	if (curl_easy_setopt(cu, CURLOPT_URL, (char *)url.p) != CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, h) != CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "https,http") !=
		CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_TIMEOUT, c->timeout) != CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_WRITEDATA, c) != CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, on_header) !=
		CURLE_OK ||
	    curl_easy_setopt(cu, CURLOPT_HEADERDATA, c) != CURLE_OK)
		goto out;
	if (strcmp(method, "GET") == 0) {
		if (curl_easy_setopt(cu, CURLOPT_HTTPGET, 1L) != CURLE_OK)
			goto out;
	} else if (body != NULL) {
		if (curl_easy_setopt(cu, CURLOPT_POSTFIELDS, body) !=
			CURLE_OK ||
		    curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE,
			(long)strlen(body)) != CURLE_OK)
			goto out;
	}
	if (c->ca_file != NULL &&
	    curl_easy_setopt(cu, CURLOPT_CAINFO, c->ca_file) != CURLE_OK)
		goto out;
	if ((cc = curl_easy_perform(cu)) != CURLE_OK) {
		log_error("ade request %s %s failed: %s", method, path,
		    errbuf[0] ? errbuf : curl_easy_strerror(cc));
		rc = DEP_ERR_TRANSPORT;
		goto out;
	}
	if (curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status) != CURLE_OK)
		goto out;
	if (buf_append(&c->body, "", 1) != 0)
		goto out;
	c->body.len--;
	rc = DEP_OK;
out:
	curl_slist_free_all(h);
	buf_free(&url);
	return rc;
}

static int
set_session(struct dep_client *c, const char *s)
{
	char *n = strdup(s);

	if (n == NULL)
		return -1;
	if (c->session != NULL)
		freezero(c->session, strlen(c->session));
	c->session = n;
	return 0;
}

/* Wait for a 429/503: Retry-After seconds (1 when absent), bounded. */
static enum dep_status
backoff(struct dep_client *c, unsigned *tries, long status)
{
	long		wait = c->retry_after >= 0 ? c->retry_after : 1;
	struct timespec ts;

	if (*tries >= c->max_retries || wait > (long)c->max_wait) {
		log_error("ade service answered %ld, retry after %ld s: giving "
			  "up",
		    status, wait);
		return DEP_ERR_RETRY_LATER;
	}
	(*tries)++;
	log_info("ade service answered %ld: retrying in %ld s", status, wait);
	ts.tv_sec = wait;
	ts.tv_nsec = 0;
	while (nanosleep(&ts, &ts) != 0)
		;
	return DEP_OK;
}

/* What an error status and Apple's code for it mean. */
static enum dep_status
status_map(long status, const char *code)
{
	if (status == 403 && strcmp(code, "T_C_NOT_SIGNED") == 0)
		return DEP_ERR_TERMS;
	if (status == 403 && strcmp(code, "ACCESS_DENIED") == 0)
		return DEP_ERR_DENIED;
	if (status == 401 || status == 403)
		return DEP_ERR_AUTH;
	if (status == 400 && strcmp(code, "EXHAUSTED_CURSOR") == 0)
		return DEP_ERR_CURSOR_EXHAUSTED;
	if (status == 400 && strcmp(code, "EXPIRED_CURSOR") == 0)
		return DEP_ERR_CURSOR_EXPIRED;
	if (status == 400 && strcmp(code, "INVALID_CURSOR") == 0)
		return DEP_ERR_CURSOR_INVALID;
	if (status >= 400 && status < 500)
		return DEP_ERR_REQUEST;
	return DEP_ERR_PROTOCOL;
}

static enum dep_status
status_error(struct dep_client *c, long status)
{
	errcode_of(c);
	c->errstatus = status;
	return status_map(status, c->errcode);
}

/* A FetchDeviceResponse must be an object with a string cursor. */
static int
devices_ok(const json_t *o)
{
	const json_t *dev = json_object_get(o, "devices");

	return json_is_object(o) &&
	    json_is_string(json_object_get(o, "cursor")) &&
	    (dev == NULL || json_is_array(dev));
}

/* See dep.h. */
enum dep_status
dep_answer_parse(enum dep_answer kind, long status, const char *body,
    size_t len, json_t **out, char *code, size_t code_len)
{
	json_t *v;

	*out = NULL;
	if (code_len > 0)
		code[0] = '\0';
	if (status != 200) {
		if (code_len > 0)
			errcode_parse(body, len, code, code_len);
		return status_map(status, code_len > 0 ? code : "");
	}
	if ((*out = json_loadb(body, len, 0, NULL)) == NULL)
		return DEP_ERR_PROTOCOL;
	switch (kind) {
	case DEP_ANSWER_SESSION:
		v = json_object_get(*out, "auth_session_token");
		if (json_is_string(v) && json_string_length(v) > 0 &&
		    json_string_length(v) < DEP_SESSION_MAX &&
		    strlen(json_string_value(v)) == json_string_length(v))
			return DEP_OK;
		break;
	case DEP_ANSWER_ACCOUNT:
		if (json_is_object(*out))
			return DEP_OK;
		break;
	case DEP_ANSWER_DEVICES:
		if (devices_ok(*out))
			return DEP_OK;
		break;
	default:
		return DEP_OK;
	}
	json_decref(*out);
	*out = NULL;
	return DEP_ERR_PROTOCOL;
}

/* GET /session: a new session token into c->session. */
static enum dep_status
authenticate(struct dep_client *c)
{
	char		ts[24], nonce[33];
	unsigned char	rnd[16];
	char	       *auth;
	enum dep_status rc;
	unsigned	tries = 0;
	long		status;
	json_t	       *j = NULL;

	for (;;) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return DEP_ERR_SYSTEM;
		hex_encode(rnd, sizeof(rnd), nonce);
		snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
		auth = dep_oauth_header(
		    &c->oauth, c->session_uri, ts, nonce, NULL);
		if (auth == NULL)
			return DEP_ERR_SYSTEM;
		c->sessions++;
		rc = exchange(c, "GET", "/session", auth, NULL, &status);
		freezero(auth, strlen(auth));
		if (rc != DEP_OK)
			return rc;
		if ((status == 429 || status == 503) &&
		    (rc = backoff(c, &tries, status)) == DEP_OK)
			continue;
		break;
	}
	if (rc != DEP_OK)
		return rc;
	if (status != 200) {
		rc = status_error(c, status);
		log_error("ade authentication failed: http %ld %s", status,
		    c->errcode);
		return rc;
	}
	if (dep_answer_parse(DEP_ANSWER_SESSION, status, (char *)c->body.p,
		c->body.len, &j, NULL, 0) != DEP_OK) {
		log_error("ade session response has no auth_session_token");
		rc = DEP_ERR_PROTOCOL;
	} else if (set_session(c, json_string_value(json_object_get(
		       j, "auth_session_token"))) != 0)
		rc = DEP_ERR_SYSTEM;
	json_decref(j);
	return rc;
}

/* dep_call, the answer read as kind. */
static enum dep_status
call_as(struct dep_client *c, const char *method, const char *path,
    json_t *body, enum dep_answer kind, json_t **out)
{
	char	       *text = NULL;
	enum dep_status rc;
	unsigned	tries = 0;
	int		reauth = 0;
	long		status;

	if (out != NULL)
		*out = NULL;
	c->errcode[0] = '\0';
	c->errstatus = 0;
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)
		return DEP_ERR_SYSTEM;
	if (c->session == NULL && (rc = authenticate(c)) != DEP_OK)
		goto out;
	for (;;) {
		if ((rc = exchange(c, method, path, NULL, text, &status)) !=
		    DEP_OK)
			goto out;
		/* Apple may hand over a new session on any response. */
		if (c->new_session[0] != '\0' &&
		    set_session(c, c->new_session) != 0) {
			rc = DEP_ERR_SYSTEM;
			goto out;
		}
		if (status == 200)
			break;
		if (status == 429 || status == 503) {
			if ((rc = backoff(c, &tries, status)) != DEP_OK)
				goto out;
			continue;
		}
		errcode_of(c);
		if (!reauth &&
		    (status == 401 ||
			(status == 403 &&
			    strcmp(c->errcode, "FORBIDDEN") == 0))) {
			/* The session expired: once more with a new one. */
			log_info("ade session expired (http %ld): "
				 "authenticating again",
			    status);
			reauth = 1;
			if ((rc = authenticate(c)) != DEP_OK)
				goto out;
			continue;
		}
		rc = status_error(c, status);
		log_error(
		    "ade %s %s: http %ld %s", method, path, status, c->errcode);
		goto out;
	}
	if (out != NULL && dep_answer_parse(kind, status, (char *)c->body.p,
			       c->body.len, out, NULL, 0) != DEP_OK) {
		log_error("ade %s %s: %s", method, path,
		    kind == DEP_ANSWER_DEVICES ? "malformed json or no cursor" :
		    kind == DEP_ANSWER_ANY     ? "malformed json" :
						 "malformed json or not an object");
		rc = DEP_ERR_PROTOCOL;
		goto out;
	}
	rc = DEP_OK;
out:
	free(text);
	return rc;
}

enum dep_status
dep_call(struct dep_client *c, const char *method, const char *path,
    json_t *body, json_t **out)
{
	return call_as(c, method, path, body, DEP_ANSWER_ANY, out);
}

enum dep_status
dep_account(struct dep_client *c, json_t **out)
{
	return call_as(c, "GET", "/account", NULL, DEP_ANSWER_ACCOUNT, out);
}

static enum dep_status
devices_call(struct dep_client *c, const char *path, const char *cursor,
    unsigned limit, json_t **out)
{
	enum dep_status rc;
	json_t	       *req;

	if ((req = json_object()) == NULL)
		return DEP_ERR_SYSTEM;
	if ((cursor != NULL &&
		json_object_set_new(req, "cursor", json_string(cursor)) != 0) ||
	    (limit > 0 &&
		json_object_set_new(req, "limit", json_integer(limit)) != 0)) {
		json_decref(req);
		return DEP_ERR_SYSTEM;
	}
	rc = call_as(c, "POST", path, req, DEP_ANSWER_DEVICES, out);
	json_decref(req);
	return rc;
}

enum dep_status
dep_devices_fetch(
    struct dep_client *c, const char *cursor, unsigned limit, json_t **out)
{
	return devices_call(c, "/server/devices", cursor, limit, out);
}

enum dep_status
dep_devices_sync(
    struct dep_client *c, const char *cursor, unsigned limit, json_t **out)
{
	if (cursor == NULL)
		return DEP_ERR_CURSOR_INVALID;
	return devices_call(c, "/devices/sync", cursor, limit, out);
}

static json_t *
serial_array(const char *const *serials, size_t n)
{
	json_t *a;
	size_t	i;

	if (n == 0 || n > 1000 || (a = json_array()) == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		if (json_array_append_new(a, json_string(serials[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

enum dep_status
dep_devices_details(
    struct dep_client *c, const char *const *serials, size_t n, json_t **out)
{
	enum dep_status rc;
	json_t	       *a, *req;

	if ((a = serial_array(serials, n)) == NULL)
		return DEP_ERR_REQUEST;
	if ((req = json_pack("{s:o}", "devices", a)) == NULL)
		return DEP_ERR_SYSTEM;
	rc = dep_call(c, "POST", "/devices", req, out);
	json_decref(req);
	return rc;
}

enum dep_status
dep_profile_define(struct dep_client *c, json_t *profile, json_t **out)
{
	if (!json_is_object(profile))
		return DEP_ERR_REQUEST;
	return dep_call(c, "POST", "/profile", profile, out);
}

enum dep_status
dep_profile_get(struct dep_client *c, const char *uuid, json_t **out)
{
	char	       *enc, path[256];
	enum dep_status rc;

	if ((enc = dep_pct_encode(uuid)) == NULL)
		return DEP_ERR_SYSTEM;
	if (snprintf(path, sizeof(path), "/profile?profile_uuid=%s", enc) >=
	    (int)sizeof(path)) {
		free(enc);
		return DEP_ERR_REQUEST;
	}
	free(enc);
	rc = dep_call(c, "GET", path, NULL, out);
	return rc;
}

enum dep_status
dep_profile_assign(struct dep_client *c, const char *uuid,
    const char *const *serials, size_t n, json_t **out)
{
	enum dep_status rc;
	json_t	       *a, *req;

	if ((a = serial_array(serials, n)) == NULL)
		return DEP_ERR_REQUEST;
	if ((req = json_pack(
		 "{s:s, s:o}", "profile_uuid", uuid, "devices", a)) == NULL)
		return DEP_ERR_SYSTEM;
	rc = dep_call(c, "POST", "/profile/devices", req, out);
	json_decref(req);
	return rc;
}
