/*
 * push.h - the push outbox and each enrollment's push state, kept in the
 * store (module/store_push.c; two kinds of the registry, store_kinds.c).
 *
 * The responder never talks to APNs (ARCHITECTURE.md, "The outbound
 * principle"): a change that must wake a device (an enqueue, POST
 * /api/v1/push, picomdmctl push, the re-push pass) writes one outbox
 * record for the enrollment in its own write transaction, and
 * picomdm-notify(8) takes the due records, sends the pushes and writes
 * their outcomes. At most one push is pending per enrollment: queueing
 * again while one is pending coalesces into it.
 *
 * The push state of an enrollment says when it was last pushed, with
 * which apns-id and outcome, and whether its token is invalid (APNs said
 * BadDeviceToken, DeviceTokenNotForTopic or Unregistered). A token is
 * invalid only until the next TokenUpdate: it counts while it was marked
 * at or after the enrollment's token_updated_at.
 */
#ifndef PICOMDM_PUSH_H
#define PICOMDM_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "picomdm/store.h"

/* What queueing a push for an enrollment did. */
enum push_queued {
	PUSHQ_QUEUED = 0,  /* a new outbox record */
	PUSHQ_PENDING,	   /* one was pending already: coalesced */
	PUSHQ_NOPUSH,	   /* the caller said nopush=1 */
	PUSHQ_NO_TOKEN,	   /* no TokenUpdate yet (no token or PushMagic) */
	PUSHQ_TOKEN_INVALID, /* APNs refused the token; no TokenUpdate since */
	PUSHQ_CHECKED_OUT, /* checked out or disabled */
	PUSHQ_UNKNOWN,	   /* no such enrollment */
	PUSHQ__MAX
};
/* "queued", "pending", "nopush", "no token", "token invalid",
 * "checked out", "unknown enrollment". */
const char *push_queued_name(enum push_queued);

/*
 * Queue a push for enrollment id, giving why ("enqueue", "api", "ctl",
 * "repush"). 0 with *out, or a store_err (an unknown enrollment is
 * *out PUSHQ_UNKNOWN, not an error).
 */
int store_push_queue(struct store_txn *, const char *id, const char *why,
    enum push_queued *out);

/*
 * Queue a push for each of ids[0..n) in one durable write transaction
 * (POST /api/v1/push, picomdmctl push); out[i] says what became of
 * ids[i]. 0 or a store_err.
 */
int store_push_request(struct store *, char *const *ids, size_t n,
    const char *why, enum push_queued *out);

/* How a push ended; the first five are apns.h's enum apns_result, in its
 * order. */
enum push_result {
	PUSH_DELIVERED = 0,
	PUSH_TOKEN_INVALID,
	PUSH_TOPIC_STOPPED,
	PUSH_RETRY,
	PUSH_REJECTED,
	PUSH_GAVE_UP, /* retried up to the limit */
	PUSH_DROPPED, /* not sent: the enrollment has no usable token any
			 more (checked out, purged, token invalid) */
	PUSH__MAX
};
/* "delivered", "token-invalid", "topic-stopped", "retry", "rejected",
 * "gave-up", "dropped". */
const char *push_result_name(enum push_result);

#define PUSH_TOKEN_HEX_MAX 200

/* A due push, as store_push_take hands it out. */
struct push_item {
	uint64_t eid;
	char	*enrollment_id;
	char	*topic;
	char	*magic;
	char	 token_hex[PUSH_TOKEN_HEX_MAX + 1];
	uint64_t attempts; /* sends before this one */
	uint64_t queued_at;
	uint64_t token_updated_at; /* as taken: a TokenUpdate since wins */
	const char *drop; /* non-NULL: not to be sent, why */
};

/*
 * The outbox records due at now (next_try <= now), at most max, in
 * enrollment-number order, with what sending needs (the enrollment's
 * topic, token and PushMagic). A record whose enrollment can no longer
 * be pushed has drop set: give it PUSH_DROPPED. *next_due is the
 * earliest next_try of the records not due (0: none). The caller frees
 * with push_items_free.
 */
int  store_push_take(struct store_txn *, uint64_t now, size_t max,
     struct push_item **out, size_t *n, uint64_t *next_due);
void push_items_free(struct push_item *, size_t n);

/* The outcome of one push (store_push_done). */
struct push_outcome {
	enum push_result result;
	int		 status;   /* HTTP status, 0 when none */
	const char	*reason;   /* APNs reason or transport error */
	const char	*apns_id;  /* delivered: the apns-id */
	uint64_t	 next_try; /* retry / topic-stopped: when again */
};

/*
 * Record an outcome: delivered, rejected, gave-up, dropped and
 * token-invalid remove the outbox record; retry and topic-stopped keep it
 * until next_try (retry counts an attempt). The enrollment's push state
 * and the counter of the result (meta "push.<result>") are updated in the
 * same transaction. A token-invalid answer for a token replaced since it
 * was taken marks nothing and is queued again.
 */
int store_push_done(struct store_txn *, const struct push_item *,
    const struct push_outcome *, uint64_t now);

/* The counters of results (PUSH__MAX of them). */
int store_push_counters(struct store_txn *, uint64_t *out);
/* Enrollments whose push token APNs refused and that have sent no
 * TokenUpdate since (no push goes to them): one pass over the push
 * states, the enrollment read for each one marked. */
int store_push_invalid_count(struct store_txn *, uint64_t *n);

/* An enrollment's push state. */
struct store_push_state {
	uint64_t last_push_at;	 /* last delivered push */
	char	*apns_id;	 /* its apns-id */
	char	*last_outcome;	 /* push_result_name of the last outcome */
	uint64_t last_outcome_at;
	uint64_t last_status;
	char	*last_reason;
	uint64_t token_invalid_at; /* 0: never marked */
	char	*token_invalid_reason;
	uint64_t delivered;	 /* pushes delivered, in all */
};
/* STORE_ENOTFOUND when the enrollment was never pushed. */
int  store_push_state_get(struct store_txn *, const char *id,
     struct store_push_state *out);
void store_push_state_free(struct store_push_state *);
/* Does the state mark this enrollment's token invalid (no TokenUpdate
 * since)? */
int push_token_invalid(const struct store_push_state *,
    const struct store_enrollment *);

/*
 * Has picomdm-notify written an outcome for enrollment id at or after
 * since (µs)? 1 with *outcome and *apns_id (owned; NULL when none), 0 when
 * not yet, or a store_err.
 */
int store_push_answered(struct store_txn *, const char *id, uint64_t since,
    char **outcome, char **apns_id);

/*
 * The "push" object of an enrollment view (API and picomdmctl show):
 * state, pending outbox record, token validity. NULL on out of memory
 * or a store error.
 */
json_t *store_push_json(struct store_txn *, const struct store_enrollment *);

/*
 * Re-push pass: queue a push ("repush") for every enrollment with
 * commands pending whose last push is older than interval_us and that
 * has not been seen since it (or was never pushed), at most max. *queued
 * says how many.
 */
int store_push_repush(struct store_txn *, uint64_t now, uint64_t interval_us,
    size_t max, size_t *queued);

#endif
