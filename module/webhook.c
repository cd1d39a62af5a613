/*
 * webhook.c - delivery of the webhook outbox (picomdm/webhook.h; README.md,
 * "Webhooks"). In libpicomdm_push.a with libcurl: the responder only
 * writes events (webhook_conf.c) and never links this file.
 *
 * A pass reads the outbox in its order (the store-wide sequence), keeps
 * for each enrollment and URL only what follows a due first event, and
 * POSTs those one by one over one kept-alive connection per URL. A
 * failure holds back the later events of that enrollment to that URL
 * (order per enrollment) and the whole URL until its backoff is over (a
 * dead receiver costs one timeout per backoff, not one per event).
 * Outcomes are written to the store in small groups (FLUSH_MAX events or
 * FLUSH_US, whichever comes first): a crash between a POST and its
 * record sends those events again (at least once), never loses one.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "picomdm/command.h"
#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/store_event.h"
#include "picomdm/util.h"
#include "picomdm/webhook.h"

#define PASS_MAX  256 /* events collected by one pass, at most */
#define FLUSH_MAX 32  /* outcomes written in one transaction, at most */
#define FLUSH_US  50000 /* nor kept unwritten longer than this: a crash
			 * sends again only what was posted in that time */

struct wh_url {
	char	*url;
	CURL	*easy;
	uint64_t fails;	     /* consecutive failed POSTs */
	int64_t	 hold_until; /* µs: no POST to it before */
};

struct webhook {
	const struct webhook_conf *c;
	struct wh_url		  *u;
	size_t			   nu;
};

/* ---- JSON ---- */

/* RFC 3339 with microseconds, UTC. */
static void
rfc3339(uint64_t us, char *out, size_t n)
{
	time_t	  s = (time_t)(us / 1000000);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (unsigned)(us % 1000000));
}

/* Percent-decode s[0..n) ('+' is a space) into a new string. */
static char *
query_decode(const char *s, size_t n)
{
	char  *o;
	size_t i, j = 0;

	if ((o = malloc(n + 1)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    hex_val(s[i + 1]) >= 0 && hex_val(s[i + 2]) >= 0) {
			o[j++] = (char)(hex_val(s[i + 1]) << 4 |
			    hex_val(s[i + 2]));
			i += 2;
		} else
			o[j++] = s[i] == '+' ? ' ' : s[i];
	}
	o[j] = '\0';
	return o;
}

/* The query string as {"key": "value"}, the first value of a key kept
 * (as NanoMDM's url_params); NULL when empty. */
static json_t *
url_params(const char *q)
{
	json_t	   *o;
	const char *p, *e, *eq;
	char	   *k, *v;

	if (q == NULL || *q == '\0' || (o = json_object()) == NULL)
		return NULL;
	for (p = q; *p != '\0'; p = *e == '\0' ? e : e + 1) {
		e = p + strcspn(p, "&");
		if (e == p)
			continue;
		eq = memchr(p, '=', (size_t)(e - p));
		k = query_decode(p, (size_t)((eq != NULL ? eq : e) - p));
		v = eq != NULL ? query_decode(eq + 1, (size_t)(e - eq - 1))
			       : strdup("");
		if (k != NULL && v != NULL && json_object_get(o, k) == NULL &&
		    command_utf8_valid(k, strlen(k)) &&
		    command_utf8_valid(v, strlen(v)))
			json_object_set_new(o, k, json_string(v));
		free(k);
		free(v);
	}
	if (json_object_size(o) == 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* See webhook.h. */
char *
webhook_event_json(const struct store_event *ev)
{
	static const unsigned char empty[1];
	json_t			  *root, *sub, *p;
	char			   at[96], *b64, *out;

	rfc3339(ev->created_at, at, sizeof(at));
	if ((b64 = base64_encode(ev->raw != NULL ? ev->raw : empty,
	    ev->raw_len)) == NULL)
		return NULL;
	root = json_object();
	sub = json_object();
	if (root == NULL || sub == NULL) {
		json_decref(root);
		json_decref(sub);
		free(b64);
		return NULL;
	}
	json_object_set_new(root, "topic", json_string(ev->topic));
	if (ev->event_id != NULL)
		json_object_set_new(root, "event_id",
		    json_string(ev->event_id));
	json_object_set_new(root, "created_at", json_string(at));
	if (ev->udid != NULL)
		json_object_set_new(sub, "udid", json_string(ev->udid));
	if (ev->msg_enrollment_id != NULL)
		json_object_set_new(sub, "enrollment_id",
		    json_string(ev->msg_enrollment_id));
	json_object_set_new(sub, "raw_payload", json_string(b64));
	if ((p = url_params(ev->url_params)) != NULL)
		json_object_set_new(sub, "url_params", p);
	if (strcmp(ev->topic, "mdm.Connect") == 0) {
		json_object_set_new(sub, "status",
		    json_string(ev->status != NULL ? ev->status : ""));
		json_object_set_new(sub, "command_uuid",
		    json_string(ev->command_uuid != NULL ? ev->command_uuid
							 : ""));
		json_object_set_new(root, "acknowledge_event", sub);
	} else {
		if (strcmp(ev->topic, "mdm.TokenUpdate") == 0 &&
		    ev->token_update_tally > 0)
			json_object_set_new(sub, "token_update_tally",
			    json_integer((json_int_t)ev->token_update_tally));
		json_object_set_new(root, "checkin_event", sub);
	}
	free(b64);
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return out;
}

/* See webhook.h. */
int
webhook_sign(const void *key, size_t keylen, const void *body, size_t len,
    char *out, size_t outsz)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char	  mac[EVP_MAX_MD_SIZE];
	unsigned int	  maclen = 0;
	size_t		  i;

	if (outsz < 7 + 64 + 1 || keylen > 0x7fffffff ||
	    HMAC(EVP_sha256(), key, (int)keylen, body, len, mac, &maclen) ==
		NULL ||
	    maclen != 32)
		return -1;
	memcpy(out, "sha256=", 7);
	for (i = 0; i < 32; i++) {
		out[7 + 2 * i] = hex[mac[i] >> 4];
		out[8 + 2 * i] = hex[mac[i] & 15];
	}
	out[7 + 64] = '\0';
	return 0;
}

/* See webhook.h. */
int64_t
webhook_backoff_us(uint64_t attempts, unsigned max_s, double r)
{
	int64_t d = 1000000, max = (int64_t)max_s * 1000000;

	while (attempts > 1 && d < max) {
		d *= 2;
		attempts--;
	}
	if (d > max)
		d = max;
	return d + (int64_t)((double)d * 0.5 * r);
}

static double
rand01(void)
{
	unsigned int x = 0;

	if (RAND_bytes((unsigned char *)&x, sizeof(x)) != 1)
		return 0.5;
	return (double)x / 4294967296.0;
}

/* ---- the deliverer ---- */

/* See webhook.h. */
struct webhook *
webhook_new(const struct webhook_conf *c)
{
	struct webhook *w;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("webhook: libcurl does not start");
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		curl_global_cleanup();
		return NULL;
	}
	w->c = c;
	return w;
}

void
webhook_free(struct webhook *w)
{
	size_t i;

	if (w == NULL)
		return;
	for (i = 0; i < w->nu; i++) {
		if (w->u[i].easy != NULL)
			curl_easy_cleanup(w->u[i].easy);
		free(w->u[i].url);
	}
	free(w->u);
	free(w);
	curl_global_cleanup();
}

/* The index of a URL's state in w->u (an event queued for a URL since
 * removed from the configuration is still delivered to it: it was
 * promised); -1 out of memory. An index, not a pointer: w->u moves. */
static ssize_t
url_of(struct webhook *w, const char *url)
{
	struct wh_url *n;
	size_t	       i;

	for (i = 0; i < w->nu; i++)
		if (strcmp(w->u[i].url, url) == 0)
			return (ssize_t)i;
	if ((n = realloc(w->u, (w->nu + 1) * sizeof(*n))) == NULL)
		return -1;
	w->u = n;
	memset(&n[w->nu], 0, sizeof(*n));
	if ((n[w->nu].url = strdup(url)) == NULL)
		return -1;
	return (ssize_t)w->nu++;
}

/* A set of (URL, enrollment) pairs and their state in this pass. */
enum pair_state { PAIR_TAKE = 1, PAIR_HELD };
struct pair {
	char *k;
	int   st;
};
struct pairset {
	struct pair *v;
	size_t	     cap, n;
};

static uint64_t
fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The pair's slot: found, or added with state 0; NULL out of memory. */
static struct pair *
pair_get(struct pairset *ps, const char *url, const char *id)
{
	struct pair *old;
	size_t	     i, j, oc, len = strlen(url) + strlen(id) + 2;
	char	    *k;

	if (ps->n * 2 >= ps->cap) {
		old = ps->v;
		oc = ps->cap;
		ps->cap = oc == 0 ? 64 : oc * 2;
		if ((ps->v = calloc(ps->cap, sizeof(*ps->v))) == NULL) {
			ps->v = old;
			ps->cap = oc;
			return NULL;
		}
		for (i = 0; i < oc; i++) {
			if (old[i].k == NULL)
				continue;
			for (j = fnv(old[i].k) & (ps->cap - 1);
			     ps->v[j].k != NULL; j = (j + 1) & (ps->cap - 1))
				continue;
			ps->v[j] = old[i];
		}
		free(old);
	}
	if ((k = malloc(len)) == NULL)
		return NULL;
	snprintf(k, len, "%s\n%s", url, id);
	for (j = fnv(k) & (ps->cap - 1); ps->v[j].k != NULL;
	     j = (j + 1) & (ps->cap - 1))
		if (strcmp(ps->v[j].k, k) == 0) {
			free(k);
			return &ps->v[j];
		}
	ps->v[j].k = k;
	ps->v[j].st = 0;
	ps->n++;
	return &ps->v[j];
}

static void
pairs_free(struct pairset *ps)
{
	size_t i;

	for (i = 0; i < ps->cap; i++)
		free(ps->v[i].k);
	free(ps->v);
	memset(ps, 0, sizeof(*ps));
}

struct due {
	uint64_t     seq;
	struct pair *pair;
	size_t	     ui; /* its URL: w->u[ui] */
};

struct scan {
	struct webhook *w;
	struct pairset	ps;
	struct due	d[PASS_MAX];
	size_t		n;
	int64_t		now, next;
	int		full, err;
};

static void
next_at(struct scan *s, int64_t at)
{
	if (s->next == 0 || at < s->next)
		s->next = at;
}

static int
scan_one(const struct store_event *ev, void *arg)
{
	struct scan   *s = arg;
	struct pair   *p;
	struct wh_url *u;
	ssize_t	       ui;
	int64_t	       at;

	if ((p = pair_get(&s->ps, ev->url, ev->enrollment_id)) == NULL ||
	    (ui = url_of(s->w, ev->url)) < 0)
		return s->err = STORE_ENOMEM;
	u = &s->w->u[ui];
	if (p->st == 0) {
		at = (int64_t)ev->next_try;
		if (u->hold_until > at)
			at = u->hold_until;
		p->st = at > s->now ? PAIR_HELD : PAIR_TAKE;
		if (p->st == PAIR_HELD)
			next_at(s, at);
	}
	if (p->st != PAIR_TAKE)
		return 0;
	if (s->n == PASS_MAX) {
		s->full = 1;
		return 1;
	}
	s->d[s->n].seq = ev->seq;
	s->d[s->n].pair = p;
	s->d[s->n].ui = (size_t)ui;
	s->n++;
	return 0;
}

static int
scan_op(struct store_txn *t, void *arg)
{
	struct scan *s = arg;

	return store_event_scan(t, 0, scan_one, s);
}

struct get_op {
	uint64_t	    seq;
	struct store_event *ev;
};

static int
get_op(struct store_txn *t, void *arg)
{
	struct get_op *g = arg;

	return store_event_get(t, g->seq, &g->ev);
}

struct outcome {
	uint64_t seq;
	int	 ok;
	uint64_t next_try;
	char	 err[160];
};

struct flush_op {
	struct outcome *o;
	size_t		n;
};

static int
flush_op(struct store_txn *t, void *arg)
{
	struct flush_op *f = arg;
	size_t		 i;
	int		 rc;

	for (i = 0; i < f->n; i++)
		if ((rc = store_event_done(t, f->o[i].seq, f->o[i].ok,
		    f->o[i].next_try, f->o[i].ok ? NULL : f->o[i].err)) != 0)
			return rc;
	return 0;
}

static size_t
discard_cb(char *p, size_t sz, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return sz * n;
}

/* POST body to u: 0 on a 2xx answer, -1 with why on another answer, -2
 * when none came (no connection, a timeout: the receiver is down). */
static int
post(struct webhook *w, struct wh_url *u, const char *body, const char *id,
    char *why, size_t whysz)
{
	struct curl_slist *h = NULL, *h2;
	char		   sig[96], line[160], ebuf[CURL_ERROR_SIZE];
	long		   code = 0, tmo = (long)w->c->timeout * 1000;
	CURLcode	   res;
	size_t		   i;
	const char	  *hdrs[] = {"Content-Type: application/json",
	    "User-Agent: picomdm-webhook", "Expect:"};

	if (u->easy == NULL && (u->easy = curl_easy_init()) == NULL) {
		snprintf(why, whysz, "out of memory");
		return -1;
	}
	for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		if ((h2 = curl_slist_append(h, hdrs[i])) == NULL)
			goto oom;
		h = h2;
	}
	if (id != NULL) {
		snprintf(line, sizeof(line), "X-Picomdm-Event-Id: %s", id);
		if ((h2 = curl_slist_append(h, line)) == NULL)
			goto oom;
		h = h2;
	}
	if (w->c->secret != NULL) {
		if (webhook_sign(w->c->secret, w->c->secret_len, body,
		    strlen(body), sig, sizeof(sig)) == -1)
			goto oom;
		snprintf(line, sizeof(line), "%s: %s", WEBHOOK_SIG_HEADER, sig);
		if ((h2 = curl_slist_append(h, line)) == NULL)
			goto oom;
		h = h2;
	}
	ebuf[0] = '\0';
	if (curl_easy_setopt(u->easy, CURLOPT_URL, u->url) != CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_PROTOCOLS_STR, "http,https") !=
		CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_POSTFIELDSIZE,
		(long)strlen(body)) != CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_HTTPHEADER, h) != CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_TIMEOUT_MS, tmo) != CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_CONNECTTIMEOUT_MS,
		tmo < 5000 ? tmo : 5000L) != CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_WRITEFUNCTION, discard_cb) !=
		CURLE_OK ||
	    curl_easy_setopt(u->easy, CURLOPT_ERRORBUFFER, ebuf) != CURLE_OK)
		goto oom;
	res = curl_easy_perform(u->easy);
	(void)curl_easy_setopt(u->easy, CURLOPT_HTTPHEADER, NULL);
	(void)curl_easy_setopt(u->easy, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(h);
	if (res != CURLE_OK) {
		snprintf(why, whysz, "%s", ebuf[0] != '\0' ? ebuf
		    : curl_easy_strerror(res));
		return -2;
	}
	(void)curl_easy_getinfo(u->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code > 299) {
		snprintf(why, whysz, "HTTP %ld", code);
		return -1;
	}
	return 0;
oom:
	curl_slist_free_all(h);
	snprintf(why, whysz, "cannot build the request");
	return -2;
}

static int
flush(struct store *st, struct outcome *o, size_t *n)
{
	struct flush_op f = {o, *n};
	int		rc;

	if (*n == 0)
		return 0;
	rc = store_write(st, flush_op, &f);
	*n = 0;
	return rc;
}

/* See webhook.h. */
int
webhook_pass(struct webhook *w, struct store *st, int64_t now,
    int64_t *next_due)
{
	struct scan    *s;
	struct outcome	o[FLUSH_MAX];
	struct get_op	g;
	struct due     *d;
	struct wh_url  *u;
	size_t		i, no = 0;
	char	       *body;
	int64_t		retry, first = 0;
	int		rc, prc, delivered = 0;

	*next_due = 0;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return STORE_ENOMEM;
	s->w = w;
	s->now = now;
	if ((rc = store_read(st, scan_op, s)) != 0 || (rc = s->err) != 0)
		goto out;
	for (i = 0; i < s->n; i++) {
		d = &s->d[i];
		u = &w->u[d->ui];
		/* A failure this pass holds back the rest of its pair, and
		 * its URL until the backoff is over. */
		if (d->pair->st != PAIR_TAKE || u->hold_until > now)
			continue;
		g.seq = d->seq;
		g.ev = NULL;
		if ((rc = store_read(st, get_op, &g)) == STORE_ENOTFOUND)
			continue; /* dropped or purged meanwhile */
		if (rc == STORE_ECORRUPT) {
			/* Left for picomdmctl check to report; it holds
			 * back the rest of its enrollment, nothing else. */
			log_error("webhook: event %llu does not decode",
			    (unsigned long long)d->seq);
			d->pair->st = PAIR_HELD;
			continue;
		}
		if (rc != 0)
			goto out;
		if ((body = webhook_event_json(g.ev)) == NULL) {
			store_event_free(g.ev);
			rc = STORE_ENOMEM;
			goto out;
		}
		o[no].seq = d->seq;
		prc = post(w, u, body, g.ev->event_id, o[no].err,
		    sizeof(o[no].err));
		o[no].ok = prc == 0;
		free(body);
		if (o[no].ok) {
			u->fails = 0;
			delivered++;
		} else {
			retry = webhook_backoff_us(g.ev->attempts + 1,
			    w->c->retry_max, rand01());
			o[no].next_try = (uint64_t)(now + retry);
			d->pair->st = PAIR_HELD;
			next_at(s, (int64_t)o[no].next_try);
			/* No answer at all: the receiver is down, so
			 * the whole URL waits (one timeout per backoff,
			 * not one per enrollment). */
			if (prc == -2) {
				u->fails++;
				u->hold_until = now + webhook_backoff_us(
				    u->fails, w->c->retry_max, rand01());
				next_at(s, u->hold_until);
			}
			log_warn("webhook: %s: event %llu (%s of %s): %s; "
			    "attempt %llu, next in %llds", u->url,
			    (unsigned long long)d->seq, g.ev->topic,
			    g.ev->enrollment_id, o[no].err,
			    (unsigned long long)g.ev->attempts + 1,
			    (long long)(retry / 1000000));
		}
		store_event_free(g.ev);
		if (no++ == 0)
			first = (int64_t)time_now_us();
		if ((no == FLUSH_MAX ||
		    (int64_t)time_now_us() - first >= FLUSH_US) &&
		    (rc = flush(st, o, &no)) != 0)
			goto out;
	}
	rc = flush(st, o, &no);
out:
	if (rc == 0 && s->full)
		*next_due = now; /* more is due at once */
	else if (rc == 0)
		*next_due = s->next;
	pairs_free(&s->ps);
	free(s);
	return rc != 0 ? rc : delivered;
}
