/*
 * apns.c - the APNs push client (apns.h): MDM pushes as HTTP/2 streams
 * over one libcurl multi handle per topic.
 *
 * Every transfer of a struct apns shares the multi handle's connection
 * cache with CURLMOPT_PIPELINING = CURLPIPE_MULTIPLEX, CURLOPT_PIPEWAIT and
 * at most one connection per host, so a batch of thousands of pushes rides
 * one TLS connection (a new one only after APNs closes it: GOAWAY, idle
 * timeout, a reset). TLS client authentication uses the topic's push
 * certificate and key from memory (CURLOPT_SSLCERT_BLOB/SSLKEY_BLOB), so
 * the key is never written to a file. Results follow Apple's "Handling
 * notification responses from APNs" (status, JSON "reason" and, for 410,
 * "timestamp"); apns_classify() says what each means for picomdm.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "picomdm/apns.h"
#include "picomdm/log.h"
#include "picomdm/util.h"

#define APNS_RESP_MAX     4096 /* error bodies are tiny JSON objects */
#define APNS_URL_MAX      512

struct apns {
	CURLM        *multi;
	char          topic[256];
	char         *url;     /* base, without a final slash */
	char         *ca_file; /* NULL: system store */
	char         *cert;
	size_t        cert_len;
	char         *key; /* wiped on free */
	size_t        key_len;
	long long     expiration_s;
	long          timeout_ms;
	long          connect_timeout_ms;
	unsigned      max_inflight;
	unsigned long conns;
};

/* One push in flight. */
struct apns_xfer {
	CURL             *easy;
	struct apns_push *push;
	char              url[APNS_URL_MAX];
	char              body[APNS_BODY_MAX];
	char              resp[APNS_RESP_MAX];
	size_t            resp_len;
	char              errbuf[CURL_ERROR_SIZE];
};

static void
seterr(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errsz == 0)
		return;
	va_start(ap, fmt);
	if (vsnprintf(err, errsz, fmt, ap) < 0)
		err[0] = '\0';
	va_end(ap);
}

enum apns_result
apns_classify(int status, const char *reason)
{
	if (reason == NULL)
		reason = "";
	switch (status) {
	case 200:
		return APNS_DELIVERED;
	case 410: /* Unregistered, ExpiredToken */
		return APNS_TOKEN_INVALID;
	case 400:
		if (!strcmp(reason, "BadDeviceToken") ||
		    !strcmp(reason, "DeviceTokenNotForTopic"))
			return APNS_TOKEN_INVALID;
		if (!strcmp(reason, "BadTopic") ||
		    !strcmp(reason, "TopicDisallowed") ||
		    !strcmp(reason, "MissingTopic"))
			return APNS_TOPIC_STOPPED;
		return APNS_REJECTED;
	case 403: /* BadCertificate, BadCertificateEnvironment, Forbidden */
		return APNS_TOPIC_STOPPED;
	case 429: /* TooManyRequests */
		return APNS_RETRY;
	default:
		if (status == 0 || (status >= 500 && status <= 599))
			return APNS_RETRY;
		return APNS_REJECTED;
	}
}

const char *
apns_result_name(enum apns_result r)
{
	static const char *names[APNS__MAX] = {
		[APNS_DELIVERED] = "delivered",
		[APNS_TOKEN_INVALID] = "token-invalid",
		[APNS_TOPIC_STOPPED] = "topic-stopped",
		[APNS_RETRY] = "retry",
		[APNS_REJECTED] = "rejected",
	};

	return (unsigned)r < APNS__MAX ? names[r] : "unknown";
}

int
apns_body(const char *magic, char *buf, size_t bufsz)
{
	size_t i, o = 0, len, esc;

	if (magic == NULL || (len = strlen(magic)) == 0 ||
	    len > APNS_MAGIC_MAX || bufsz < sizeof("{\"mdm\":\"\"}"))
		return -1;
	memcpy(buf, "{\"mdm\":\"", 8);
	o = 8;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)magic[i];

		if (c < 0x20 || c > 0x7e)
			return -1;
		esc = c == '"' || c == '\\';
		/* This character, then the closing "} and the NUL. */
		if (o + esc + 1 + sizeof("\"}") > bufsz)
			return -1;
		if (esc)
			buf[o++] = '\\';
		buf[o++] = (char)c;
	}
	memcpy(buf + o, "\"}", 3);
	return 0;
}

int
apns_token_check(const char *token, char *out)
{
	size_t i, len;

	if (token == NULL)
		return -1;
	len = strlen(token);
	if (len < 32 || len > APNS_TOKEN_HEX_MAX || len % 2)
		return -1;
	for (i = 0; i < len; i++) {
		char c = token[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -1;
		out[i] = c;
	}
	out[len] = '\0';
	return 0;
}

/* splitmix64: a small, well-mixed step for backoff jitter. */
static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

long long
apns_backoff_ms(unsigned attempt, unsigned max_attempts, long long base_ms,
    long long cap_ms, uint64_t *seed)
{
	long long d;
	unsigned  i;

	if (attempt == 0 || attempt > max_attempts || base_ms <= 0 ||
	    cap_ms < base_ms)
		return -1;
	d = base_ms;
	for (i = 1; i < attempt && d < cap_ms; i++)
		d = d > cap_ms / 2 ? cap_ms : d * 2;
	if (d > cap_ms)
		d = cap_ms;
	return d / 2 + (long long)(splitmix64(seed) %
	    (uint64_t)(d - d / 2 + 1));
}

static char *
memdup(const void *p, size_t len)
{
	char *s;

	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

struct apns *
apns_new(const struct apns_config *cfg, const char *topic,
    const char *cert_pem, size_t cert_len, const char *key_pem,
    size_t key_len, char *err, size_t errsz)
{
	const curl_version_info_data *vi;
	struct apns                  *a = NULL;
	const char                   *url;
	size_t                        ulen;

	if (topic == NULL || topic[0] == '\0' || strlen(topic) >= 256 ||
	    cert_pem == NULL || cert_len == 0 || key_pem == NULL ||
	    key_len == 0) {
		seterr(err, errsz, "a topic, certificate and key are needed");
		return NULL;
	}
	url = cfg != NULL && cfg->url != NULL ? cfg->url : APNS_URL_PRODUCTION;
	ulen = strlen(url);
	while (ulen > 0 && url[ulen - 1] == '/')
		ulen--;
	if (ulen < 9 || strncasecmp(url, "https://", 8) != 0 ||
	    ulen + sizeof("/3/device/") + APNS_TOKEN_HEX_MAX >= APNS_URL_MAX) {
		seterr(err, errsz, "the APNs URL must be https://HOST[:PORT]");
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		seterr(err, errsz, "libcurl did not initialise");
		return NULL;
	}
	vi = curl_version_info(CURLVERSION_NOW);
	if (vi == NULL || !(vi->features & CURL_VERSION_HTTP2)) {
		seterr(err, errsz, "libcurl has no HTTP/2 (nghttp2)");
		curl_global_cleanup();
		return NULL;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL)
		goto nomem;
	memcpy(a->topic, topic, strlen(topic) + 1);
	a->expiration_s = APNS_EXPIRATION_DEFAULT;
	a->timeout_ms = 30000;
	a->connect_timeout_ms = 10000;
	a->max_inflight = 500;
	if (cfg != NULL) {
		if (cfg->expiration_s >= 0)
			a->expiration_s = cfg->expiration_s;
		if (cfg->timeout_ms > 0)
			a->timeout_ms = cfg->timeout_ms;
		if (cfg->connect_timeout_ms > 0)
			a->connect_timeout_ms = cfg->connect_timeout_ms;
		if (cfg->max_inflight > 0)
			a->max_inflight = cfg->max_inflight;
	}
	if ((a->url = memdup(url, ulen)) == NULL ||
	    (cfg != NULL && cfg->ca_file != NULL &&
	    (a->ca_file = memdup(cfg->ca_file, strlen(cfg->ca_file))) ==
	    NULL) ||
	    (a->cert = memdup(cert_pem, cert_len)) == NULL ||
	    (a->key = memdup(key_pem, key_len)) == NULL)
		goto nomem;
	a->cert_len = cert_len;
	a->key_len = key_len;
	if ((a->multi = curl_multi_init()) == NULL)
		goto nomem;
	if (curl_multi_setopt(a->multi, CURLMOPT_PIPELINING,
	    CURLPIPE_MULTIPLEX) != CURLM_OK ||
	    curl_multi_setopt(a->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L) !=
	    CURLM_OK ||
	    curl_multi_setopt(a->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
	    (long)a->max_inflight) != CURLM_OK) {
		seterr(err, errsz, "libcurl refuses HTTP/2 multiplexing");
		apns_free(a);
		return NULL;
	}
	return a;
nomem:
	seterr(err, errsz, "out of memory");
	apns_free(a);
	if (a == NULL)
		curl_global_cleanup();
	return NULL;
}

void
apns_free(struct apns *a)
{
	if (a == NULL)
		return;
	if (a->multi != NULL)
		curl_multi_cleanup(a->multi);
	free(a->url);
	free(a->ca_file);
	free(a->cert);
	freezero(a->key, a->key_len);
	free(a);
	curl_global_cleanup();
}

unsigned long
apns_connections(const struct apns *a)
{
	return a->conns;
}

static size_t
apns_write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct apns_xfer *x = arg;
	size_t            n = size * nmemb, room;

	room = sizeof(x->resp) - 1 - x->resp_len;
	/* Past the cap the rest is dropped: APNs' bodies are small. */
	memcpy(x->resp + x->resp_len, p, n < room ? n : room);
	x->resp_len += n < room ? n : room;
	x->resp[x->resp_len] = '\0';
	return n;
}

static size_t
apns_header_cb(char *p, size_t size, size_t nmemb, void *arg)
{
	struct apns_xfer *x = arg;
	size_t            n = size * nmemb, i, len;
	const char        name[] = "apns-id:";

	if (n > sizeof(name) - 1 && !strncasecmp(p, name, sizeof(name) - 1)) {
		i = sizeof(name) - 1;
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		len = n - i;
		while (len > 0 && (p[i + len - 1] == '\r' ||
		    p[i + len - 1] == '\n' || p[i + len - 1] == ' '))
			len--;
		if (len >= sizeof(x->push->apns_id))
			len = sizeof(x->push->apns_id) - 1;
		memcpy(x->push->apns_id, p + i, len);
		x->push->apns_id[len] = '\0';
	}
	return n;
}

/* Set up one transfer; -1 when libcurl refuses an option. */
static int
apns_xfer_setup(struct apns *a, struct apns_xfer *x, const char *token,
    struct curl_slist *hdrs)
{
	struct curl_blob cert = {a->cert, a->cert_len, CURL_BLOB_NOCOPY};
	struct curl_blob key = {a->key, a->key_len, CURL_BLOB_NOCOPY};
	CURL            *e = x->easy;
	int              n;

	n = snprintf(x->url, sizeof(x->url), "%s/3/device/%s", a->url, token);
	if (n < 0 || (size_t)n >= sizeof(x->url))
		return -1;
	if (curl_easy_setopt(e, CURLOPT_URL, x->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_2TLS) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
	    (long)strlen(x->body)) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key) != CURLE_OK ||
	    (a->ca_file != NULL &&
	    curl_easy_setopt(e, CURLOPT_CAINFO, a->ca_file) != CURLE_OK) ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, a->timeout_ms) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    a->connect_timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, apns_write_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, apns_header_cb) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK)
		return -1;
	return 0;
}

/* The reason and timestamp of an APNs error body, when it has them. */
static void
apns_parse_error(struct apns_xfer *x)
{
	json_t      *o, *r, *t;
	const char  *s;
	json_error_t je;

	if (x->resp_len == 0 ||
	    (o = json_loadb(x->resp, x->resp_len, 0, &je)) == NULL)
		return;
	if ((r = json_object_get(o, "reason")) != NULL &&
	    (s = json_string_value(r)) != NULL)
		strlcpy(x->push->reason, s, sizeof(x->push->reason));
	if ((t = json_object_get(o, "timestamp")) != NULL &&
	    json_is_integer(t) && json_integer_value(t) > 0)
		x->push->timestamp_ms = (uint64_t)json_integer_value(t);
	json_decref(o);
}

/*
 * A transfer that got no HTTP answer. Our certificate or key unusable by
 * TLS, or a TLS alert from the server about our certificate (RFC 8446
 * 6.2: bad_certificate, certificate_revoked, certificate_expired,
 * certificate_unknown, unknown_ca, certificate_required; OpenSSL names
 * them in the error text): no push of this topic can work, the same as
 * APNs' 403. Anything else (refused, reset, GOAWAY, timeout, the server's
 * certificate not trusted) may pass: retry.
 */
static enum apns_result
apns_classify_transport(CURLcode res, const char *errbuf, const char **why)
{
	static const char *alerts[] = {"bad certificate",
		"certificate revoked", "certificate expired",
		"certificate unknown", "unknown ca", "certificate required",
		"unsupported certificate"};
	const char        *a;
	size_t             i;

	*why = NULL;
	if (res == CURLE_SSL_CERTPROBLEM)
		return APNS_TOPIC_STOPPED;
	if ((res == CURLE_SSL_CONNECT_ERROR || res == CURLE_RECV_ERROR ||
	    res == CURLE_SEND_ERROR) && (a = strstr(errbuf, " alert ")) !=
	    NULL)
		for (i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++)
			if (strncmp(a + 7, alerts[i], strlen(alerts[i])) ==
			    0) {
				*why = alerts[i];
				return APNS_TOPIC_STOPPED;
			}
	return APNS_RETRY;
}

/* A finished transfer: status, reason, classification. */
static void
apns_xfer_done(struct apns *a, struct apns_xfer *x, CURLcode res)
{
	struct apns_push *p = x->push;
	long              code = 0, ver = 0, nconn = 0;
	const char       *why;

	if (curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nconn) ==
	    CURLE_OK && nconn > 0)
		a->conns += (unsigned long)nconn;
	if (res != CURLE_OK) {
		p->status = 0;
		p->apns_id[0] = '\0';
		p->result = apns_classify_transport(res, x->errbuf, &why);
		if (why != NULL)
			(void)snprintf(p->reason, sizeof(p->reason),
			    "TLS alert: %s", why);
		else
			strlcpy(p->reason, x->errbuf[0] != '\0' ? x->errbuf :
			    curl_easy_strerror(res), sizeof(p->reason));
		return;
	}
	(void)curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
	(void)curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &ver);
	p->status = (int)code;
	if (ver != CURL_HTTP_VERSION_2_0) {
		/* Not APNs: it speaks only HTTP/2. */
		strlcpy(p->reason, "not HTTP/2", sizeof(p->reason));
		p->result = APNS_REJECTED;
		return;
	}
	if (code != 200)
		apns_parse_error(x);
	p->result = apns_classify((int)code, p->reason);
}

int
apns_send(struct apns *a, struct apns_push *pushes, size_t n)
{
	struct apns_xfer  *slots = NULL, *x;
	struct apns_xfer **free_slots = NULL;
	struct curl_slist *hdrs = NULL, *h;
	char               line[320], token[APNS_TOKEN_HEX_MAX + 1];
	const char        *bad;
	size_t             next = 0, nfree, i;
	unsigned           inflight = 0, cap;
	long long          exp;
	CURLMsg           *msg;
	CURLMcode          mc;
	int                running, left, rc = -1;

	for (i = 0; i < n; i++) {
		pushes[i].result = APNS_RETRY;
		pushes[i].status = 0;
		pushes[i].reason[0] = '\0';
		pushes[i].apns_id[0] = '\0';
		pushes[i].timestamp_ms = 0;
	}
	if (n == 0)
		return 0;
	exp = a->expiration_s == 0 ? 0 :
	    (long long)time(NULL) + a->expiration_s;
	cap = a->max_inflight < n ? a->max_inflight : (unsigned)n;
	if ((slots = calloc(cap, sizeof(*slots))) == NULL ||
	    (free_slots = calloc(cap, sizeof(*free_slots))) == NULL)
		goto out;
	for (i = 0; i < cap; i++)
		free_slots[i] = &slots[cap - 1 - i];
	nfree = cap;

#define HDR(...)                                                            \
	do {                                                                \
		int hn = snprintf(line, sizeof(line), __VA_ARGS__);         \
		if (hn < 0 || (size_t)hn >= sizeof(line) ||                 \
		    (h = curl_slist_append(hdrs, line)) == NULL)            \
			goto out;                                           \
		hdrs = h;                                                   \
	} while (0)
	HDR("apns-push-type: mdm");
	HDR("apns-topic: %s", a->topic);
	HDR("apns-priority: 10");
	HDR("apns-expiration: %lld", exp);
	HDR("content-type: application/json");
	HDR("Accept:");
#undef HDR

	for (;;) {
		/* Fill free slots with the next well-formed pushes. */
		while (next < n && nfree > 0) {
			struct apns_push *p = &pushes[next++];

			x = free_slots[nfree - 1];
			bad = NULL;
			if (apns_token_check(p->token_hex, token) == -1)
				bad = "malformed token";
			else if (apns_body(p->magic, x->body,
			    sizeof(x->body)) == -1)
				bad = "malformed PushMagic";
			if (bad != NULL) {
				p->result = APNS_REJECTED;
				strlcpy(p->reason, bad, sizeof(p->reason));
				continue;
			}
			nfree--;
			x->push = p;
			x->resp_len = 0;
			x->resp[0] = '\0';
			x->errbuf[0] = '\0';
			if ((x->easy = curl_easy_init()) == NULL ||
			    apns_xfer_setup(a, x, token, hdrs) == -1 ||
			    curl_multi_add_handle(a->multi, x->easy) !=
			    CURLM_OK) {
				curl_easy_cleanup(x->easy);
				x->easy = NULL;
				free_slots[nfree++] = x;
				goto out;
			}
			inflight++;
		}
		if (inflight == 0)
			break;
		mc = curl_multi_perform(a->multi, &running);
		if (mc != CURLM_OK)
			goto out;
		while ((msg = curl_multi_info_read(a->multi, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			x = NULL;
			(void)curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_PRIVATE, (char **)&x);
			if (x == NULL)
				continue;
			apns_xfer_done(a, x, msg->data.result);
			curl_multi_remove_handle(a->multi, x->easy);
			curl_easy_cleanup(x->easy);
			x->easy = NULL;
			free_slots[nfree++] = x;
			inflight--;
		}
		if (inflight > 0 && (next >= n || nfree == 0) &&
		    curl_multi_poll(a->multi, NULL, 0, 1000, NULL) != CURLM_OK)
			goto out;
	}
	rc = 0;
out:
	if (rc == -1)
		log_error("apns: libcurl failed for topic %s", a->topic);
	/* After a failure: what is still in flight stays APNS_RETRY. */
	for (i = 0; slots != NULL && i < cap; i++)
		if (slots[i].easy != NULL) {
			curl_multi_remove_handle(a->multi, slots[i].easy);
			curl_easy_cleanup(slots[i].easy);
			slots[i].push->result = APNS_RETRY;
			strlcpy(slots[i].push->reason, "client failure",
			    sizeof(slots[i].push->reason));
		}
	curl_slist_free_all(hdrs);
	free(slots);
	free(free_slots);
	return rc;
}
