/*
 * metrics.h - what picomdm-fcgi counts while it serves, in the Prometheus
 * text exposition format (GET /api/v1/metrics), its health (GET /healthz),
 * and the store's figures (also printed by picomdmctl stats --prometheus).
 *
 * Counting is lock-free: every counter is a process-wide atomic updated
 * with relaxed ordering, and the labelled ones live in fixed tables whose
 * slots are claimed once with a compare-and-swap. Nothing here takes a
 * lock that a device request, the writer or the completion thread waits
 * on. Rendering reads the counters without stopping anyone, so a scrape
 * may see one request counted in a family and not yet in another.
 *
 * Adding a family (picomdm-notify's pushes, webhooks, outbox depth when it
 * exists): a counter or table here, a one-line metrics_*() call at the
 * point that knows the outcome, and its lines in metrics_render().
 */
#ifndef PICOMDM_METRICS_H
#define PICOMDM_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct store;

/*
 * One request answered: path as routed (the endpoint label is derived
 * from it), message type (NULL: none), HTTP status, and microseconds from
 * accept to the reply being written. It is no longer in flight.
 */
void metrics_request(const char *uri, const char *type, int status,
    uint64_t us);
/* A request accepted (+1; metrics_request() is its -1). */
void metrics_inflight(int delta);
/* One group commit of n operations (store.c's writer). */
void metrics_commit(size_t n);
/* One write transaction's mdb_txn_commit took us microseconds: writing
 * its pages and fdatasync (also counted in processes without a writer,
 * such as picomdmctl, where nothing reads it). */
void metrics_commit_time(uint64_t us);
/* The writer held a commit back us microseconds for requests still being
 * read (store_opts.commit_delay). */
void metrics_commit_delay(uint64_t us);
/* The final result of one queued write: a full map or a store that cannot
 * be written makes the process unhealthy until a write succeeds. */
void metrics_store_rc(int rc);
/* The writer (which 0) or completion thread (which 1) starts (busy 1) or
 * ends (busy 0) a round of work; a round longer than the health limit is
 * reported as stuck. */
enum metrics_thread { METRICS_WRITER, METRICS_COMPLETION, METRICS__THREADS };
void metrics_busy(enum metrics_thread, int busy);
/* A device request refused by identity checks, with the reason logged
 * (copied; at most 79 bytes are kept). */
void metrics_identity_refusal(const char *reason);

/*
 * Append the whole exposition to b: the counters above, max_inflight, and
 * the store's figures read from s in one read-only snapshot (never waits
 * for the writer). 0, or -1 when out of memory. A store that cannot be
 * read leaves its figures out and sets picomdm_store_up to 0.
 */
int metrics_render(struct buf *b, struct store *s, int max_inflight,
    uint64_t map_max);
/* Only the store's figures (picomdmctl stats --prometheus). 0 / store_err. */
int metrics_render_store(struct buf *b, struct store *s);

/*
 * Health: 0 when the store took its last write (or none yet) and neither
 * thread has been busy for longer than stall_us; else -1 with a one-line
 * reason in why.
 */
int metrics_health(uint64_t stall_us, char *why, size_t whylen);

/* Tests: forget every count. */
void metrics_reset(void);

#endif
