/*
 * webhook.c - delivery of the webhook outbox (picomdm/webhook.h; README.md,
 * "Webhooks"). In libpicomdm_push.a with libcurl: the responder only
 * writes events (webhook_conf.c) and never links this file.
 *
 * A pass reads the outbox in its order (the store-wide sequence), keeps
 * for each enrollment and URL only what follows a due first event, and
 * POSTs those over kept-alive connections, up to webhook_concurrency at
 * once (one libcurl multi handle), but never two of one enrollment to one
 * URL at a time: the next of a pair starts when the one before it has
 * its answer, so each receiver sees an enrollment's events in order. A
 * failure holds back the later events of that enrollment to that URL
 * (order per enrollment) and the whole URL until its backoff is over. A
 * URL gets one POST at a time until it answers one (at start, and after
 * a POST that got no answer), so a dead receiver costs one timeout per
 * backoff, not one per event or per slot.
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
	uint64_t fails;	     /* consecutive failed POSTs */
	int64_t	 hold_until; /* µs: no POST to it before */
	int	 up;	     /* it answered the last POST that ended */
	unsigned inflight;   /* POSTs to it in flight */
};

/* A POST in flight: its handle (kept across passes), what it sends, and
 * the event it is for. */
struct slot {
	CURL		   *easy;
	struct curl_slist  *h;
	char		   *body;
	struct store_event *ev;
	size_t		    di; /* the pass's d[di] */
	int		    busy;
	char		    ebuf[CURL_ERROR_SIZE];
};

struct webhook {
	const struct webhook_conf *c;
	struct wh_url		  *u;
	size_t			   nu;
	CURLM			  *multi;
	struct slot		   slot[WEBHOOK_CONCURRENCY_MAX];
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
	for (i = 0; i < WEBHOOK_CONCURRENCY_MAX; i++)
		if (w->slot[i].easy != NULL)
			curl_easy_cleanup(w->slot[i].easy);
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	for (i = 0; i < w->nu; i++)
		free(w->u[i].url);
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

/* A set of (URL, enrollment) pairs and their state in this pass. Each
 * pair is allocated on its own: the pass keeps pointers to them (in its
 * due list) while the table grows, so a pair never moves. */
enum pair_state { PAIR_TAKE = 1, PAIR_HELD };
struct pair {
	char *k;
	int   st;
	int   busy; /* one of its events is in flight */
};
struct pairset {
	struct pair **v;
	size_t	      cap, n;
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
	struct pair **old, *p;
	size_t	      i, j, oc, len = strlen(url) + strlen(id) + 2;
	char	     *k;

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
			if (old[i] == NULL)
				continue;
			for (j = fnv(old[i]->k) & (ps->cap - 1);
			     ps->v[j] != NULL; j = (j + 1) & (ps->cap - 1))
				continue;
			ps->v[j] = old[i];
		}
		free(old);
	}
	if ((k = malloc(len)) == NULL)
		return NULL;
	snprintf(k, len, "%s\n%s", url, id);
	for (j = fnv(k) & (ps->cap - 1); ps->v[j] != NULL;
	     j = (j + 1) & (ps->cap - 1))
		if (strcmp(ps->v[j]->k, k) == 0) {
			free(k);
			return ps->v[j];
		}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		free(k);
		return NULL;
	}
	p->k = k;
	ps->v[j] = p;
	ps->n++;
	return p;
}

static void
pairs_free(struct pairset *ps)
{
	size_t i;

	for (i = 0; i < ps->cap; i++)
		if (ps->v[i] != NULL) {
			free(ps->v[i]->k);
			free(ps->v[i]);
		}
	free(ps->v);
	memset(ps, 0, sizeof(*ps));
}

struct due {
	uint64_t     seq;
	struct pair *pair;
	size_t	     ui;   /* its URL: w->u[ui] */
	int	     done; /* posted, or passed over, this pass */
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

/* Start the POST of sl->body to u on sl's handle in the multi handle; 0,
 * or -1 with why when the request cannot be built. */
static int
post_start(struct webhook *w, struct slot *sl, struct wh_url *u,
    const char *id, char *why, size_t whysz)
{
	struct curl_slist *h2;
	char		   sig[96], line[160];
	long		   tmo = (long)w->c->timeout * 1000;
	size_t		   i;
	const char	  *hdrs[] = {"Content-Type: application/json",
	    "User-Agent: picomdm-webhook", "Expect:"};

	if (sl->easy == NULL && (sl->easy = curl_easy_init()) == NULL)
		goto oom;
	sl->h = NULL;
	for (i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		if ((h2 = curl_slist_append(sl->h, hdrs[i])) == NULL)
			goto oom;
		sl->h = h2;
	}
	if (id != NULL) {
		snprintf(line, sizeof(line), "X-Picomdm-Event-Id: %s", id);
		if ((h2 = curl_slist_append(sl->h, line)) == NULL)
			goto oom;
		sl->h = h2;
	}
	if (w->c->secret != NULL) {
		if (webhook_sign(w->c->secret, w->c->secret_len, sl->body,
		    strlen(sl->body), sig, sizeof(sig)) == -1)
			goto oom;
		snprintf(line, sizeof(line), "%s: %s", WEBHOOK_SIG_HEADER, sig);
		if ((h2 = curl_slist_append(sl->h, line)) == NULL)
			goto oom;
		sl->h = h2;
	}
	sl->ebuf[0] = '\0';
	if (curl_easy_setopt(sl->easy, CURLOPT_URL, u->url) != CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_PROTOCOLS_STR, "http,https") !=
		CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_POST, 1L) != CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDS, sl->body) !=
		CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_POSTFIELDSIZE,
		(long)strlen(sl->body)) != CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_HTTPHEADER, sl->h) != CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_TIMEOUT_MS, tmo) != CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_CONNECTTIMEOUT_MS,
		tmo < 5000 ? tmo : 5000L) != CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_WRITEFUNCTION, discard_cb) !=
		CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_ERRORBUFFER, sl->ebuf) !=
		CURLE_OK ||
	    curl_easy_setopt(sl->easy, CURLOPT_PRIVATE, sl) != CURLE_OK ||
	    curl_multi_add_handle(w->multi, sl->easy) != CURLM_OK)
		goto oom;
	return 0;
oom:
	curl_slist_free_all(sl->h);
	sl->h = NULL;
	snprintf(why, whysz, "cannot build the request");
	return -1;
}

/* Take sl's finished POST out of the multi handle: 0 on a 2xx answer, -1
 * with why on another answer, -2 when none came (no connection, a
 * timeout: the receiver is down). */
static int
post_end(struct webhook *w, struct slot *sl, CURLcode res, char *why,
    size_t whysz)
{
	long code = 0;

	(void)curl_multi_remove_handle(w->multi, sl->easy);
	(void)curl_easy_getinfo(sl->easy, CURLINFO_RESPONSE_CODE, &code);
	(void)curl_easy_setopt(sl->easy, CURLOPT_HTTPHEADER, NULL);
	(void)curl_easy_setopt(sl->easy, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(sl->h);
	sl->h = NULL;
	if (res != CURLE_OK) {
		snprintf(why, whysz, "%.150s", sl->ebuf[0] != '\0' ? sl->ebuf
		    : curl_easy_strerror(res));
		return -2;
	}
	if (code < 200 || code > 299) {
		snprintf(why, whysz, "HTTP %ld", code);
		return -1;
	}
	return 0;
}

/* Let go of what a slot held for its POST. */
static void
slot_clear(struct slot *sl)
{
	free(sl->body);
	store_event_free(sl->ev);
	sl->body = NULL;
	sl->ev = NULL;
	sl->busy = 0;
}

/* Stop every POST in flight (a pass that fails on its store): what was
 * sent has no outcome recorded, so it is sent again (at least once). */
static void
slots_abort(struct webhook *w)
{
	size_t i;

	for (i = 0; i < WEBHOOK_CONCURRENCY_MAX; i++) {
		if (!w->slot[i].busy)
			continue;
		(void)curl_multi_remove_handle(w->multi, w->slot[i].easy);
		curl_slist_free_all(w->slot[i].h);
		w->slot[i].h = NULL;
		slot_clear(&w->slot[i]);
	}
	for (i = 0; i < w->nu; i++)
		w->u[i].inflight = 0;
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

/*
 * Start d's POST in a free slot: 0 started, 1 nothing to send (the event
 * was dropped or purged meanwhile, or does not decode: then the rest of
 * its pair waits), -1 the request could not be built (recorded as a
 * failure in *o), or a store_err.
 */
static int finish_one(struct webhook *, struct scan *, const struct slot *,
    int, struct outcome *, int64_t);

static int
start_one(struct webhook *w, struct store *st, struct scan *s, size_t di,
    struct outcome *o)
{
	struct due  *d = &s->d[di];
	struct slot *sl = NULL;
	struct get_op g;
	size_t	     i;
	int	     rc;

	for (i = 0; i < w->c->concurrency && i < WEBHOOK_CONCURRENCY_MAX; i++)
		if (!w->slot[i].busy) {
			sl = &w->slot[i];
			break;
		}
	if (sl == NULL)
		return STORE_EINVAL; /* the caller counts: never */
	g.seq = d->seq;
	g.ev = NULL;
	if ((rc = store_read(st, get_op, &g)) == STORE_ENOTFOUND)
		return 1;
	if (rc == STORE_ECORRUPT) {
		/* Left for picomdmctl check to report; it holds back the
		 * rest of its enrollment, nothing else. */
		log_error("webhook: event %llu does not decode",
		    (unsigned long long)d->seq);
		d->pair->st = PAIR_HELD;
		return 1;
	}
	if (rc != 0)
		return rc;
	if ((sl->body = webhook_event_json(g.ev)) == NULL) {
		store_event_free(g.ev);
		return STORE_ENOMEM;
	}
	sl->ev = g.ev;
	sl->di = di;
	sl->busy = 1;
	o->seq = d->seq;
	if (post_start(w, sl, &w->u[d->ui], g.ev->event_id, o->err,
	    sizeof(o->err)) != 0) {
		/* Not sent: a failure like a refused POST. */
		(void)finish_one(w, s, sl, -1, o, s->now);
		slot_clear(sl);
		return -1;
	}
	return 0;
}

/* An outcome was written to o[*no]: count it, and write the outcomes to
 * the store when FLUSH_MAX are waiting or the first has waited FLUSH_US. */
static int
outcome_added(struct store *st, struct outcome *o, size_t *no, int64_t *first)
{
	if ((*no)++ == 0)
		*first = (int64_t)time_now_us();
	if (*no == FLUSH_MAX || (int64_t)time_now_us() - *first >= FLUSH_US)
		return flush(st, o, no);
	return 0;
}

/* Record the outcome of a POST (prc as post_end says) in *o, and what it
 * means for its pair and URL. 1 when it was delivered. */
static int
finish_one(struct webhook *w, struct scan *s, const struct slot *sl,
    int prc, struct outcome *o, int64_t now)
{
	struct due	   *d = &s->d[sl->di];
	struct wh_url	   *u = &w->u[d->ui];
	struct store_event *ev = sl->ev;
	int64_t		    retry;

	o->seq = d->seq;
	o->ok = prc == 0;
	d->done = 1;
	d->pair->busy = 0;
	u->up = prc != -2;
	if (o->ok) {
		u->fails = 0;
		return 1;
	}
	retry = webhook_backoff_us(ev->attempts + 1, w->c->retry_max,
	    rand01());
	o->next_try = (uint64_t)(now + retry);
	d->pair->st = PAIR_HELD;
	next_at(s, (int64_t)o->next_try);
	/* No answer at all: the receiver is down, so the whole URL waits
	 * (one timeout per backoff, not one per enrollment). */
	if (prc == -2) {
		u->fails++;
		u->hold_until = now + webhook_backoff_us(u->fails,
		    w->c->retry_max, rand01());
		next_at(s, u->hold_until);
	}
	log_warn("webhook: %s: event %llu (%s of %s): %s; attempt %llu, next "
	    "in %llds", u->url, (unsigned long long)d->seq, ev->topic,
	    ev->enrollment_id, o->err, (unsigned long long)ev->attempts + 1,
	    (long long)(retry / 1000000));
	return 0;
}

/* See webhook.h. */
int
webhook_pass(struct webhook *w, struct store *st, int64_t now,
    int64_t *next_due)
{
	struct scan    *s;
	struct outcome	o[FLUSH_MAX];
	struct due     *d;
	struct slot    *sl;
	CURLMsg	       *msg;
	size_t		i, no = 0, active = 0, conc;
	int64_t		first = 0;
	int		rc = 0, prc, running, left, delivered = 0;

	*next_due = 0;
	conc = w->c->concurrency == 0 ? 1 : w->c->concurrency;
	if (conc > WEBHOOK_CONCURRENCY_MAX)
		conc = WEBHOOK_CONCURRENCY_MAX;
	if (w->multi == NULL && (w->multi = curl_multi_init()) == NULL)
		return STORE_ENOMEM;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return STORE_ENOMEM;
	s->w = w;
	s->now = now;
	if ((rc = store_read(st, scan_op, s)) != 0 || (rc = s->err) != 0)
		goto out;
	for (;;) {
		/* Start what may start, in the outbox's order: the first
		 * event of each pair not in flight. A failure this pass
		 * holds back the rest of its pair, and its URL until the
		 * backoff is over. */
		for (i = 0; i < s->n && active < conc; i++) {
			d = &s->d[i];
			if (d->done || d->pair->busy ||
			    (!w->u[d->ui].up && w->u[d->ui].inflight > 0))
				continue;
			if (d->pair->st != PAIR_TAKE ||
			    w->u[d->ui].hold_until > now) {
				d->done = 1;
				continue;
			}
			rc = start_one(w, st, s, i, &o[no]);
			if (rc == 1) {
				d->done = 1;
				continue;
			}
			if (rc == -1) {
				if ((rc = outcome_added(st, o, &no, &first)) !=
				    0)
					goto out;
				continue;
			}
			if (rc != 0)
				goto out;
			d->pair->busy = 1;
			w->u[d->ui].inflight++;
			active++;
		}
		if (active == 0)
			break;
		if (curl_multi_perform(w->multi, &running) != CURLM_OK) {
			rc = STORE_ENOMEM;
			goto out;
		}
		while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			sl = NULL;
			(void)curl_easy_getinfo(msg->easy_handle,
			    CURLINFO_PRIVATE, (char **)&sl);
			if (sl == NULL || !sl->busy)
				continue;
			prc = post_end(w, sl, msg->data.result, o[no].err,
			    sizeof(o[no].err));
			w->u[s->d[sl->di].ui].inflight--;
			delivered += finish_one(w, s, sl, prc, &o[no], now);
			slot_clear(sl);
			active--;
			if ((rc = outcome_added(st, o, &no, &first)) != 0)
				goto out;
		}
		if (active > 0 && running > 0 &&
		    curl_multi_poll(w->multi, NULL, 0, 100, NULL) != CURLM_OK) {
			rc = STORE_ENOMEM;
			goto out;
		}
	}
	rc = flush(st, o, &no);
out:
	slots_abort(w);
	if (rc == 0 && s->full)
		*next_due = now; /* more is due at once */
	else if (rc == 0)
		*next_due = s->next;
	pairs_free(&s->ps);
	free(s);
	return rc != 0 ? rc : delivered;
}
