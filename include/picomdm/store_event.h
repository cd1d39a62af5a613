/*
 * store_event.h - the webhook outbox (module/store_event.c): one record
 * per event and webhook URL, keyed by the store-wide sequence, so that
 * the order events were stored in is the order of the keys. Written in
 * the transaction of the check-in or report that causes it; removed once
 * delivered, or dropped, oldest first, when the outbox is full
 * (webhook_max_events). Owned by the enrollment named in it: purging the
 * enrollment removes its events. See ARCHITECTURE.md, section 7.
 */
#ifndef PICOMDM_STORE_EVENT_H
#define PICOMDM_STORE_EVENT_H

#include <stddef.h>
#include <stdint.h>

struct store_txn;

struct store_event {
	uint64_t       seq;	      /* the key */
	char	      *enrollment_id; /* picomdm's ID of the enrollment */
	char	      *topic;	      /* "mdm.Authenticate", "mdm.Connect" */
	uint64_t       created_at;    /* µs since the epoch */
	unsigned char *raw;	      /* the body as received */
	size_t	       raw_len;
	char	      *command_uuid;  /* reports: the CommandUUID, or NULL */
	char	      *status;	      /* reports: Status as sent */
	char	      *udid;	      /* the message's UDID, or NULL */
	char	      *msg_enrollment_id; /* its EnrollmentID, or NULL */
	char	      *url_params;    /* the request's query string */
	uint64_t       token_update_tally; /* TokenUpdate: the tally */
	uint64_t       attempts;      /* POSTs that failed */
	uint64_t       next_try;      /* µs; 0: at once */
	char	      *last_error;
	char	      *url;	      /* the webhook URL it goes to */
	char	      *event_id;      /* one per event, same for each URL */
};

/* Meta counters of the outbox (shown by /api/v1/metrics and picomdmctl
 * stats --prometheus as picomdm_webhook_events_total{outcome}). */
struct store_event_counts {
	uint64_t queued, delivered, failed, dropped;
};

/*
 * Add ev (seq, attempts, next_try, last_error ignored) under the next
 * store-wide sequence number. When the outbox holds max entries (0: no
 * bound) the oldest are removed first, counted as dropped, and *dropped
 * (when not NULL) says how many. 0 or a store_err.
 */
int store_event_put(struct store_txn *, const struct store_event *ev,
    uint64_t max, uint64_t *dropped);
/*
 * Call fn for each event in order (seq ascending), from the first whose
 * seq is after `after`: with its seq, enrollment, url, attempts and
 * next_try only (no raw bytes; the other members NULL). fn returns 0 to
 * go on, 1 to stop, or a store_err.
 */
typedef int (*store_event_fn)(const struct store_event *, void *);
int store_event_scan(struct store_txn *, uint64_t after, store_event_fn,
    void *arg);
/* The whole event of seq; STORE_ENOTFOUND when gone. Free with
 * store_event_free. */
int store_event_get(struct store_txn *, uint64_t seq,
    struct store_event **out);
void store_event_free(struct store_event *);
/* The outcome of one POST: delivered removes it (1 counted delivered);
 * otherwise attempts + 1, next_try and error kept (1 counted failed).
 * An event gone meanwhile (dropped, purged) is not an error. */
int store_event_done(struct store_txn *, uint64_t seq, int delivered,
    uint64_t next_try, const char *error);
/* Events waiting, and the counters. */
int store_event_count(struct store_txn *, uint64_t *n);
int store_event_counts(struct store_txn *, struct store_event_counts *);

#endif
