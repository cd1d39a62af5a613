/*
 * webhook.h - webhooks (README.md, "Webhooks"; ARCHITECTURE.md, section 7).
 *
 * The responder never posts a webhook itself: every check-in and command
 * report is written, in the transaction that stores it, as an event of
 * the store's outbox (picomdm/store_event.h), one per configured
 * webhook_url, and a separate daemon delivers the events with
 * webhook_pass(). Two halves:
 *
 * - the configuration and the writing of events (webhook_conf_*,
 *   webhook_event_put; module/webhook_conf.c, in libpicomdm.a, no
 *   network);
 * - the delivery (webhook_new, webhook_pass, webhook_free and the JSON
 *   and signature helpers; module/webhook.c, in libpicomdm_push.a with
 *   libcurl, which the responder never links).
 */
#ifndef PICOMDM_WEBHOOK_H
#define PICOMDM_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct store_txn;
struct store_event;
struct mdm_msg;

/* picomdm.conf's webhook keys (picomdm.conf(5)). */
struct webhook_conf {
	char   **urls;	      /* webhook_url, in the order given */
	size_t	 nurls;
	char	*secret;      /* webhook_secret, or webhook_secret_file's */
	size_t	 secret_len;
	uint64_t max_events;  /* webhook_max_events: outbox bound */
	unsigned timeout;     /* webhook_timeout: seconds per POST */
	unsigned retry_max;   /* webhook_retry_max: longest backoff, s */
	unsigned concurrency; /* webhook_concurrency: POSTs in flight */
};

#define WEBHOOK_MAX_EVENTS_DEFAULT 100000
#define WEBHOOK_TIMEOUT_DEFAULT	   10
#define WEBHOOK_RETRY_MAX_DEFAULT  600
#define WEBHOOK_CONCURRENCY_DEFAULT 8
#define WEBHOOK_CONCURRENCY_MAX	    64
#define WEBHOOK_SIG_HEADER	   "X-Hub-Signature-256"

void webhook_conf_defaults(struct webhook_conf *);
void webhook_conf_free(struct webhook_conf *);
/* One key: 0 set, 1 not a webhook key, -1 bad value, -2 out of memory
 * (the caller says which). webhook_url may be given several times. */
int webhook_conf_set(struct webhook_conf *, const char *key, const char *val);

/*
 * Write the events of one stored message (a check-in, or a command report
 * when m->kind is MSG_CONNECT): one per configured URL, in the caller's
 * transaction, so that they exist exactly when the message does. raw is
 * the body as received; query the request's query string (url_params).
 * Nothing is written, at no cost, when no webhook_url is configured.
 * 0 or a store_err.
 */
int webhook_event_put(struct store_txn *, const struct webhook_conf *,
    const struct mdm_msg *m, const void *raw, size_t rawlen,
    const char *query);

/* ---- delivery (libpicomdm_push.a) ---- */

/*
 * How a daemon runs it (tests/webhook-drain.c does exactly this):
 *
 *	struct webhook *wh = webhook_new(&cfg.webhook); // once, before
 *	                          // other threads: it calls curl_global_init
 *	for (;;) {
 *		int64_t now = time_now_us(), due;
 *		int n = webhook_pass(wh, store, now, &due);
 *		if (n < 0) log_error(... store_strerror(n));
 *		if (due != 0 && due <= now) continue;   // more due at once
 *		sleep until min(due ? due : now + 1 s, now + 1 s);
 *	}
 *	webhook_free(wh);
 *
 * A pass blocks for its POSTs (up to webhook_concurrency at once, never
 * two of one enrollment to one URL, each at most webhook_timeout), so a daemon with other work runs the loop in a thread of its
 * own, with the same struct store (its writes are transactions of their
 * own). Run it even with no webhook_url: events queued before the URL was
 * removed are still owed.
 */
struct webhook;

/* A deliverer for conf (borrowed: it must outlive the deliverer); NULL
 * when out of memory or libcurl cannot start. */
struct webhook *webhook_new(const struct webhook_conf *conf);
void		webhook_free(struct webhook *);

/*
 * Deliver what is due at now_us (µs since the epoch): events in order
 * per enrollment and URL (a failed one holds back only the later events
 * of its enrollment to that URL), each POSTed once, outcomes recorded in
 * the store (a delivered event removed, a failed one retried later with
 * jittered exponential backoff), counted in the store's meta. Returns
 * how many were delivered (>= 0) or a store_err; *next_due_us is when the
 * next event seen and not delivered falls due (0: none was left; now_us:
 * call again at once, the pass took its most and more is due). Events
 * stored after the pass began are not announced: the caller polls (the
 * daemon's loop wakes every second or so anyway).
 */
int webhook_pass(struct webhook *, struct store *, int64_t now_us,
    int64_t *next_due_us);

/* The JSON body of an event, as NanoMDM and MicroMDM webhook consumers
 * read it; NUL-terminated, caller frees; NULL when out of memory. */
char *webhook_event_json(const struct store_event *);
/* "sha256=" and the hex HMAC-SHA256 of body under key, into out (72
 * bytes at least); -1 on failure. */
int webhook_sign(const void *key, size_t keylen, const void *body,
    size_t len, char *out, size_t outsz);
/* The delay before attempt n + 1 after n failed ones: exponential from
 * one second, capped at max_s, with up to half of it as random jitter
 * (r in [0, 1)), in µs. */
int64_t webhook_backoff_us(uint64_t attempts, unsigned max_s, double r);

#endif
