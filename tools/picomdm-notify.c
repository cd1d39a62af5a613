/*
 * picomdm-notify - delivers what the store says must be sent: the push
 * outbox (include/picomdm/push.h) to APNs with the topic's certificate
 * from the store (module/apns.c), and the webhook outbox
 * (include/picomdm/webhook.h) to each webhook_url. It opens the store beside a running
 * picomdm-fcgi, as picomdmctl does; the responder never makes an outbound
 * call (ARCHITECTURE.md, "The outbound principle"). See
 * man/picomdm-notify.8 and README.md "Waking devices".
 *
 * The main loop is a sequence of passes, each ending in the store:
 *	push_pass	due outbox records, grouped by topic, one batch per
 *			topic over one multiplexed connection, outcomes in
 *			one write transaction per batch
 *	repush_pass	re-queue pushes for enrollments not seen since
 *			their last push (repush_interval)
 * then a sleep until the next record is due or the poll interval ends.
 * The webhook outbox has a thread of its own (webhook_loop): a pass POSTs
 * one event at a time and may wait webhook_timeout for a receiver, which
 * must never hold a push back. With --once both are drained in turn.
 * A record is removed only in the transaction that records its outcome,
 * so a crash at any point sends it again (at least once), never loses it.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "extern.h"
#include "picomdm/apns.h"
#include "picomdm/log.h"
#include "picomdm/push.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "picomdm/webhook.h"

#define BATCH_MAX 2000 /* records taken per pass */
#define TOPICS_MAX 64

/* One topic's client; stopped_until > now: the topic is stopped. */
struct topic {
	char	    *name;
	struct apns *apns;
	uint64_t     stopped_until;
};

struct notify {
	struct store	   *store;
	struct notify_conf *nc;
	struct apns_config  ac;
	struct topic	    topics[TOPICS_MAX];
	size_t		    ntopics;
	uint64_t	    seed;
	uint64_t	    next_due;	/* earliest record not yet due */
	uint64_t	    last_repush;
	unsigned long	    sent;	/* pushes handed to APNs, this run */
};

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: picomdm-notify --db DIR [--config FILE] [--apns-url URL]\n"
	    "           [--apns-ca FILE] [--once] [--verbose]\n");
	exit(2);
}

/* ---- taking due records ---- */

struct take_op {
	uint64_t	  now;
	struct push_item *v;
	size_t		  n;
	uint64_t	  next_due;
};

static int
take_run(struct store_txn *t, void *arg)
{
	struct take_op *op = arg;

	push_items_free(op->v, op->n);
	op->v = NULL;
	op->n = 0;
	return store_push_take(t, op->now, BATCH_MAX, &op->v, &op->n,
	    &op->next_due);
}

/* ---- writing outcomes: one transaction per batch ---- */

struct done_op {
	struct push_item    **items;
	struct push_outcome  *oc;
	size_t		      n;
	uint64_t	      now;
};

static int
done_run(struct store_txn *t, void *arg)
{
	struct done_op *op = arg;
	size_t		i;
	int		rc;

	for (i = 0; i < op->n; i++)
		if ((rc = store_push_done(t, op->items[i], &op->oc[i],
			 op->now)) != 0)
			return rc;
	return 0;
}

static int
write_outcomes(struct notify *nf, struct push_item **items,
    struct push_outcome *oc, size_t n)
{
	struct done_op op = {items, oc, n, time_now_us()};
	int	       rc;

	if (n == 0)
		return 0;
	if ((rc = store_write(nf->store, done_run, &op)) != 0)
		log_error("notify: writing %zu push outcomes: %s", n,
		    store_strerror(rc));
	return rc;
}

/* ---- topics ---- */

struct cert_op {
	const char	      *topic;
	struct store_pushcert *c;
};

static int
cert_run(struct store_txn *t, void *arg)
{
	struct cert_op *op = arg;

	store_pushcert_free(op->c);
	op->c = NULL;
	return store_pushcert_get(t, op->topic, &op->c);
}

static struct topic *
topic_find(struct notify *nf, const char *name)
{
	size_t i;

	for (i = 0; i < nf->ntopics; i++)
		if (strcmp(nf->topics[i].name, name) == 0)
			return &nf->topics[i];
	if (nf->ntopics == TOPICS_MAX)
		return NULL;
	if ((nf->topics[i].name = strdup(name)) == NULL)
		return NULL;
	nf->ntopics++;
	return &nf->topics[i];
}

/* The topic's client, made from its certificate in the store; NULL with
 * why when there is none (the topic is then stopped). */
static struct apns *
topic_client(struct notify *nf, struct topic *tp, char *why, size_t whysz)
{
	struct cert_op op = {tp->name, NULL};
	int	       rc;

	if (tp->apns != NULL)
		return tp->apns;
	rc = store_read(nf->store, cert_run, &op);
	if (rc == STORE_ENOTFOUND) {
		snprintf(why, whysz, "no push certificate for this topic "
		    "(picomdmctl pushcert import)");
		return NULL;
	}
	if (rc != 0) {
		snprintf(why, whysz, "reading its certificate: %s",
		    store_strerror(rc));
		return NULL;
	}
	tp->apns = apns_new(&nf->ac, tp->name, op.c->cert_pem,
	    strlen(op.c->cert_pem), op.c->key_pem, strlen(op.c->key_pem), why,
	    whysz);
	store_pushcert_free(op.c);
	return tp->apns;
}

static void
topic_stop(struct notify *nf, struct topic *tp, const char *why,
    uint64_t now)
{
	/* Loud: every device of the topic stays asleep until fixed. */
	log_error("notify: topic %s STOPPED for %llds: %s; no push is sent "
	    "to its devices until then (its pushes wait in the outbox)",
	    tp->name, nf->nc->topic_retry, why);
	apns_free(tp->apns);
	tp->apns = NULL;
	tp->stopped_until = now + (uint64_t)nf->nc->topic_retry * 1000000u;
}

/* ---- the push pass ---- */

/* The outcome of one APNs result. */
static void
outcome_of(struct notify *nf, const struct push_item *it,
    const struct apns_push *p, struct push_outcome *o, uint64_t now)
{
	long long ms;

	memset(o, 0, sizeof(*o));
	o->result = (enum push_result)p->result;
	o->status = p->status;
	o->reason = p->reason[0] != '\0' ? p->reason : NULL;
	o->apns_id = p->apns_id[0] != '\0' ? p->apns_id : NULL;
	if (p->result == APNS_RETRY) {
		ms = apns_backoff_ms((unsigned)it->attempts + 1,
		    (unsigned)nf->nc->max_attempts, nf->nc->backoff_ms,
		    nf->nc->backoff_max_ms, &nf->seed);
		if (ms < 0)
			o->result = PUSH_GAVE_UP;
		else
			o->next_try = now + (uint64_t)ms * 1000u;
	}
}

/* Send one topic's due pushes (items[0..n), all of that topic) and write
 * their outcomes in one transaction. */
static int
send_topic(struct notify *nf, struct push_item **items, size_t n)
{
	struct push_outcome *oc = NULL;
	struct apns_push    *ps = NULL;
	struct topic	    *tp;
	struct apns	    *a;
	char		     why[256];
	uint64_t	     now = time_now_us();
	size_t		     i;
	int		     rc = STORE_ENOMEM, stopped = 0;

	if ((oc = calloc(n, sizeof(*oc))) == NULL ||
	    (ps = calloc(n, sizeof(*ps))) == NULL)
		goto out;
	why[0] = '\0';
	tp = topic_find(nf, items[0]->topic);
	if (tp == NULL)
		snprintf(why, sizeof(why), "too many topics (%d)", TOPICS_MAX);
	else if (tp->stopped_until > now)
		snprintf(why, sizeof(why), "topic stopped");
	a = tp != NULL && why[0] == '\0' ? topic_client(nf, tp, why,
	    sizeof(why)) : NULL;
	if (a == NULL) {
		if (tp != NULL && tp->stopped_until <= now)
			topic_stop(nf, tp, why, now);
		for (i = 0; i < n; i++) {
			oc[i].result = PUSH_TOPIC_STOPPED;
			oc[i].reason = why;
			oc[i].next_try = tp != NULL ? tp->stopped_until :
			    now + (uint64_t)nf->nc->topic_retry * 1000000u;
		}
		rc = write_outcomes(nf, items, oc, n);
		goto out;
	}
	for (i = 0; i < n; i++) {
		ps[i].token_hex = items[i]->token_hex;
		ps[i].magic = items[i]->magic;
	}
	log_debug("notify: %s: sending %zu pushes", tp->name, n);
	(void)apns_send(a, ps, n); /* -1: every unanswered push is retry */
	nf->sent += n;
	now = time_now_us();
	for (i = 0; i < n; i++) {
		outcome_of(nf, items[i], &ps[i], &oc[i], now);
		if (ps[i].result == APNS_TOPIC_STOPPED && !stopped) {
			stopped = 1;
			snprintf(why, sizeof(why), "APNs answered %d %s",
			    ps[i].status, ps[i].reason);
			topic_stop(nf, tp, why, now);
		}
		if (ps[i].result == APNS_TOPIC_STOPPED)
			oc[i].next_try = tp->stopped_until;
		if (ps[i].result == APNS_REJECTED)
			log_warn("notify: push to %s rejected: %d %s",
			    items[i]->enrollment_id, ps[i].status,
			    ps[i].reason);
		else if (oc[i].result == PUSH_GAVE_UP)
			log_warn("notify: push to %s given up after %llu "
			    "attempts: %s", items[i]->enrollment_id,
			    (unsigned long long)items[i]->attempts + 1,
			    ps[i].reason);
		else if (ps[i].result == APNS_TOKEN_INVALID)
			log_info("notify: %s: token invalid (%d %s): no "
			    "pushes until its next TokenUpdate",
			    items[i]->enrollment_id, ps[i].status,
			    ps[i].reason);
	}
	rc = write_outcomes(nf, items, oc, n);
out:
	free(oc);
	free(ps);
	return rc;
}

static int
by_topic(const void *a, const void *b)
{
	const struct push_item *x = *(struct push_item *const *)a;
	const struct push_item *y = *(struct push_item *const *)b;

	return strcmp(x->topic, y->topic);
}

/*
 * Take what is due, drop what can no longer be sent, send the rest one
 * topic at a time. Returns the number of records taken, or -1 when the
 * store failed.
 */
static long
push_pass(struct notify *nf)
{
	struct take_op	     op;
	struct push_item   **send = NULL, **drop = NULL;
	struct push_outcome *doc = NULL;
	size_t		     i, j, ns = 0, nd = 0;
	long		     ret = -1;
	int		     rc;

	memset(&op, 0, sizeof(op));
	op.now = time_now_us();
	if ((rc = store_read(nf->store, take_run, &op)) != 0) {
		log_error("notify: reading the outbox: %s", store_strerror(rc));
		return -1;
	}
	nf->next_due = op.next_due;
	if (op.n == 0) {
		ret = 0;
		goto out;
	}
	if ((send = calloc(op.n, sizeof(*send))) == NULL ||
	    (drop = calloc(op.n, sizeof(*drop))) == NULL ||
	    (doc = calloc(op.n, sizeof(*doc))) == NULL)
		goto out;
	for (i = 0; i < op.n; i++) {
		if (op.v[i].drop != NULL) {
			doc[nd].result = PUSH_DROPPED;
			doc[nd].reason = op.v[i].drop;
			drop[nd++] = &op.v[i];
		} else
			send[ns++] = &op.v[i];
	}
	if (write_outcomes(nf, drop, doc, nd) != 0)
		goto out;
	qsort(send, ns, sizeof(*send), by_topic);
	for (i = 0; i < ns && !stop; i = j) {
		for (j = i + 1;
		     j < ns && strcmp(send[j]->topic, send[i]->topic) == 0; j++)
			;
		if (send_topic(nf, send + i, j - i) != 0)
			goto out;
	}
	ret = (long)op.n;
out:
	free(send);
	free(drop);
	free(doc);
	push_items_free(op.v, op.n);
	return ret;
}

/* ---- the re-push pass ---- */

struct repush_op {
	uint64_t now, interval;
	size_t	 queued;
};

static int
repush_run(struct store_txn *t, void *arg)
{
	struct repush_op *op = arg;

	return store_push_repush(t, op->now, op->interval, BATCH_MAX,
	    &op->queued);
}

static void
repush_pass(struct notify *nf)
{
	struct repush_op op;
	uint64_t	 now = time_now_us(), iv;
	int		 rc;

	if (nf->nc->repush_interval == 0)
		return;
	iv = (uint64_t)nf->nc->repush_interval * 1000000u;
	/* Look at most every tenth of the interval. */
	if (nf->last_repush != 0 && now - nf->last_repush < iv / 10)
		return;
	nf->last_repush = now;
	memset(&op, 0, sizeof(op));
	op.now = now;
	op.interval = iv;
	if ((rc = store_write(nf->store, repush_run, &op)) != 0)
		log_error("notify: re-push pass: %s", store_strerror(rc));
	else if (op.queued > 0)
		log_info("notify: re-push: %zu enrollments not seen since "
		    "their last push", op.queued);
}

/* ---- main ---- */

/* Sleep until the next record is due or poll_ms, whichever is first. */
static void
nap(struct notify *nf)
{
	struct timespec ts;
	uint64_t	now = time_now_us(), ms = (uint64_t)nf->nc->poll_ms;

	if (nf->next_due != 0 && nf->next_due > now &&
	    (nf->next_due - now) / 1000 < ms)
		ms = (nf->next_due - now) / 1000 + 1;
	else if (nf->next_due != 0 && nf->next_due <= now)
		ms = 1;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	(void)nanosleep(&ts, NULL); /* a signal ends it early */
}

/*
 * One webhook pass after the other until nothing is due: with until_idle
 * (--once) then return, else sleep until the next event is due (a
 * second at most: new events are not announced) and go on until stop.
 */
struct webhook_run {
	struct webhook *wh;
	struct store   *store;
	int		until_idle;
	int		failed;
};

static void *
webhook_loop(void *arg)
{
	struct webhook_run *w = arg;
	struct timespec	    ts;
	int64_t		    now, due, ms;
	int		    n;

	while (!stop) {
		now = (int64_t)time_now_us();
		due = 0;
		if ((n = webhook_pass(w->wh, w->store, now, &due)) < 0) {
			log_error("notify: webhook pass: %s", store_strerror(n));
			w->failed = 1;
			due = 0;
		}
		if (due != 0 && due <= now)
			continue; /* more is due at once */
		if (w->until_idle)
			break;
		ms = due != 0 ? (due - now) / 1000 + 1 : 1000;
		if (ms > 1000)
			ms = 1000;
		ts.tv_sec = (time_t)(ms / 1000);
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		(void)nanosleep(&ts, NULL);
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"config", required_argument, NULL, 'c'},
	    {"apns-url", required_argument, NULL, 'u'},
	    {"apns-ca", required_argument, NULL, 'a'},
	    {"once", no_argument, NULL, 'o'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct config	  cfg;
	struct store_opts so;
	struct notify	  nf;
	struct webhook_run wr;
	pthread_t	  wt;
	struct sigaction  sa;
	const char	 *db = NULL, *conf = NULL, *url = NULL, *ca = NULL;
	char		  path[4096];
	size_t		  i;
	long		  n;
	int		  c, once = 0, verbose = 0, rc, ex = 0, lk;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'c': conf = optarg; break;
		case 'u': url = optarg; break;
		case 'a': ca = optarg; break;
		case 'o': once = 1; break;
		case 'v': verbose = 1; break;
		default: usage();
		}
	}
	if (optind != argc)
		usage();
	config_defaults(&cfg);
	if (conf != NULL && config_load(&cfg, conf) != 0)
		return 2;
	if ((url != NULL && config_set(&cfg, "apns_url", url) != 0) ||
	    (ca != NULL && config_set(&cfg, "apns_ca", ca) != 0))
		return 2;
	if (db == NULL)
		db = cfg.db;
	if (db == NULL) {
		fprintf(stderr, "picomdm-notify: --db DIR (or db in the "
		    "config) is required\n");
		usage();
	}
	if (verbose)
		log_set_level(LOG_DEBUG);
	else if (cfg.log_level != NULL)
		log_set_level((enum log_level)log_level_parse(cfg.log_level));
	else
		log_set_level(LOG_INFO);

	memset(&nf, 0, sizeof(nf));
	nf.nc = &cfg.notify;
	nf.ac.url = cfg.notify.apns_url;
	nf.ac.ca_file = cfg.notify.apns_ca;
	nf.ac.expiration_s = cfg.notify.apns_expiration;
	nf.seed = time_now_us() ^ ((uint64_t)getpid() << 32);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: a sleep ends at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	/* Beside a running picomdm-fcgi, as picomdmctl opens it; never a
	 * new empty store at a mistyped path. */
	if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", db) >=
	    sizeof(path) || access(path, F_OK) != 0) {
		log_error("notify: %s: no picomdm store there (picomdm-fcgi "
		    "or picomdmctl makes one)", db);
		config_free(&cfg);
		return 1;
	}
	/* One sender per store, held until exit. */
	if ((lk = lock_slot(path, STORE_ROLE_NOTIFY)) < 0) {
		if (lk == -2)
			log_error("notify: %s: another picomdm-notify is "
			    "sending for this store (one per store; is "
			    "picomdm-notify.service running?)", db);
		else
			log_error("notify: %s: %s", path, strerror(errno));
		config_free(&cfg);
		return 1;
	}
	memset(&so, 0, sizeof(so));
	if ((rc = store_open(db, &so, &nf.store)) != 0) {
		log_error("notify: %s: %s", db, store_strerror(rc));
		config_free(&cfg);
		return 1;
	}
	/* Before any thread: webhook_new starts libcurl. */
	memset(&wr, 0, sizeof(wr));
	wr.store = nf.store;
	wr.until_idle = once;
	if ((wr.wh = webhook_new(&cfg.webhook)) == NULL) {
		log_error("notify: cannot start the webhook deliverer");
		store_close(nf.store);
		config_free(&cfg);
		return 1;
	}
	log_info("notify: started on %s, APNs %s, %zu webhook URL(s)%s", db,
	    nf.ac.url != NULL ? nf.ac.url : APNS_URL_PRODUCTION,
	    cfg.webhook.nurls, once ? " (--once)" : "");
	if (!once && pthread_create(&wt, NULL, webhook_loop, &wr) != 0) {
		log_error("notify: cannot start the webhook thread");
		webhook_free(wr.wh);
		store_close(nf.store);
		config_free(&cfg);
		return 1;
	}
	while (!stop) {
		/* One pass after the other; each ends in the store. */
		n = push_pass(&nf);
		if (n < 0)
			ex = 1;
		repush_pass(&nf);
		if (once) {
			/* Drained when a pass finds nothing due (a retry
			 * waits for its backoff, a stopped topic for
			 * push_topic_retry: neither is due). */
			if (n <= 0)
				break;
			continue;
		}
		if (n == BATCH_MAX)
			continue; /* more is due: no sleep */
		nap(&nf);
	}
	if (once)
		webhook_loop(&wr); /* the webhook outbox in turn */
	else
		pthread_join(wt, NULL); /* stop ends its sleep within 1 s */
	if (wr.failed)
		ex = 1;
	webhook_free(wr.wh);
	log_info("notify: stopping (%lu pushes sent)", nf.sent);
	for (i = 0; i < nf.ntopics; i++) {
		apns_free(nf.topics[i].apns);
		free(nf.topics[i].name);
	}
	store_close(nf.store);
	(void)close(lk);
	config_free(&cfg);
	return ex;
}
