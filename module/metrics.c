/*
 * metrics.c - counters, the Prometheus text exposition and the health
 * verdict (include/picomdm/metrics.h).
 *
 * Every counter is a relaxed atomic; a labelled family is a fixed table of
 * slots, each claimed once (0 -> 1 by compare-and-swap, key written, then
 * 2 with release order) and counted with atomic adds from then on. A
 * thread that finds a slot being claimed spins until its key is visible,
 * so one key never gets two slots. No lock is taken on any path a request
 * runs; a full table counts into its "other" key.
 *
 * The format is Prometheus' text exposition format 0.0.4: "# HELP" and
 * "# TYPE" before each family, label values escaped (\\, \", \n),
 * histograms as cumulative _bucket{le=...} lines, _sum and _count.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "picomdm/metrics.h"
#include "picomdm/push.h"
#include "picomdm/store.h"
#include "picomdm/store_event.h"
#include "picomdm/util.h"

#define LOAD(p)    __atomic_load_n((p), __ATOMIC_RELAXED)
#define ADD(p, n)  __atomic_add_fetch((p), (n), __ATOMIC_RELAXED)
#define STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* Endpoints, as derived from the request path. */
enum ep { EP_CHECKIN, EP_CONNECT, EP_MDM, EP_API, EP_METRICS, EP_HEALTHZ,
	EP_OTHER, EP__MAX };
static const char *const ep_names[EP__MAX] = {
	"checkin", "connect", "mdm", "api", "metrics", "healthz", "other"
};

/* Request latency buckets, µs (upper bounds; +Inf follows). */
static const uint64_t lat_le[] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
	1000000, 2500000, 5000000, 10000000
};
#define LAT_N (sizeof(lat_le) / sizeof(lat_le[0]))

/* Operations per group commit (the writer's batch holds 256 at most). */
static const uint64_t batch_le[] = { 1, 2, 4, 8, 16, 32, 64, 128, 256 };
#define BATCH_N (sizeof(batch_le) / sizeof(batch_le[0]))

/* Commit (page writes + fdatasync) duration buckets, µs. */
static const uint64_t sync_le[] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000,
	250000, 1000000
};
#define SYNC_N (sizeof(sync_le) / sizeof(sync_le[0]))

struct hist {
	uint64_t bucket[16]; /* non-cumulative; [n] is +Inf */
	uint64_t sum;        /* µs, or the observed values themselves */
};
_Static_assert(LAT_N < 16 && BATCH_N < 16 && SYNC_N < 16,
    "struct hist holds 15 bounds and +Inf");

/* A labelled counter: endpoint x type x status, or a reason. */
#define SLOT_KEY 80
struct slot {
	int      state; /* 0 free, 1 being claimed, 2 ready */
	int      ep;
	int      status;
	char     key[SLOT_KEY];
	uint64_t n;
};
#define REQ_SLOTS    512
#define REASON_SLOTS 64

static struct {
	struct slot req[REQ_SLOTS];
	struct slot reason[REASON_SLOTS];
	struct hist lat[EP__MAX];
	struct hist batch;
	struct hist sync;
	uint64_t    commits;
	uint64_t    delays;   /* commits held back (commit_delay) */
	uint64_t    delay_us; /* and for how long in all */
	int64_t     inflight;
	int         full;     /* the last write found the map full */
	int         bad_rc;   /* the last write's store error, 0 when fine */
	uint64_t    busy_since[METRICS__THREADS]; /* mono µs, 0 idle */
} m;

static enum ep
ep_of(const char *uri)
{
	if (uri == NULL)
		return EP_OTHER;
	if (strcmp(uri, "/mdm/checkin") == 0)
		return EP_CHECKIN;
	if (strcmp(uri, "/mdm/connect") == 0)
		return EP_CONNECT;
	if (strcmp(uri, "/mdm") == 0 || strcmp(uri, "/mdm/") == 0)
		return EP_MDM;
	if (strcmp(uri, "/api/v1/metrics") == 0)
		return EP_METRICS;
	if (strncmp(uri, "/api/", 5) == 0)
		return EP_API;
	if (strcmp(uri, "/healthz") == 0)
		return EP_HEALTHZ;
	return EP_OTHER;
}

static void
hist_add(struct hist *h, const uint64_t *le, size_t n, uint64_t v)
{
	size_t i;

	for (i = 0; i < n && v > le[i]; i++)
		continue;
	ADD(&h->bucket[i], 1);
	ADD(&h->sum, v);
}

/*
 * The slot of (ep, status, key) in t[0..n), claimed when new; the last
 * slot is the overflow ("other") once the others are taken. Never NULL.
 */
static struct slot *
slot_get(struct slot *t, size_t n, int ep, int status, const char *key)
{
	struct slot *s;
	uint32_t     h = 2166136261u;
	size_t       j;
	int          want;
	const char  *p;

	for (p = key; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	h = (h ^ (uint32_t)ep) * 16777619u;
	h = (h ^ (uint32_t)status) * 16777619u;
	for (j = 0; j < n - 1; j++) {
		s = &t[(h + j) % (n - 1)];
		want = 0;
		if (__atomic_compare_exchange_n(&s->state, &want, 1, 0,
		    __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
			s->ep = ep;
			s->status = status;
			strlcpy(s->key, key, sizeof(s->key));
			__atomic_store_n(&s->state, 2, __ATOMIC_RELEASE);
			return s;
		}
		while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != 2)
			continue; /* another thread is writing its key */
		if (s->ep == ep && s->status == status &&
		    strncmp(s->key, key, sizeof(s->key) - 1) == 0)
			return s;
	}
	s = &t[n - 1];
	want = 0;
	if (__atomic_compare_exchange_n(&s->state, &want, 1, 0,
	    __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
		s->ep = EP_OTHER;
		s->status = 0;
		strlcpy(s->key, "other", sizeof(s->key));
		__atomic_store_n(&s->state, 2, __ATOMIC_RELEASE);
	}
	while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != 2)
		continue;
	return s;
}

void
metrics_request(const char *uri, const char *type, int status, uint64_t us)
{
	enum ep ep = ep_of(uri);

	ADD(&slot_get(m.req, REQ_SLOTS, (int)ep, status,
	    type != NULL && *type != '\0' ? type : "none")->n, 1);
	hist_add(&m.lat[ep], lat_le, LAT_N, us);
	ADD(&m.inflight, -1);
}

void
metrics_inflight(int delta)
{
	ADD(&m.inflight, delta);
}

void
metrics_commit(size_t n)
{
	ADD(&m.commits, 1);
	hist_add(&m.batch, batch_le, BATCH_N, n);
}

void
metrics_commit_time(uint64_t us)
{
	hist_add(&m.sync, sync_le, SYNC_N, us);
}

void
metrics_commit_delay(uint64_t us)
{
	ADD(&m.delays, 1);
	ADD(&m.delay_us, us);
}

void
metrics_store_rc(int rc)
{
	if (rc == STORE_OK) {
		if (LOAD(&m.full))
			STORE(&m.full, 0);
		if (LOAD(&m.bad_rc))
			STORE(&m.bad_rc, 0);
	} else if (rc == STORE_EFULL)
		STORE(&m.full, 1);
	else if (rc == STORE_EREADONLY || rc == STORE_EIO ||
	    rc == STORE_ENOSPC || rc == STORE_EDISK)
		STORE(&m.bad_rc, rc);
}

void
metrics_busy(enum metrics_thread which, int busy)
{
	STORE(&m.busy_since[which], busy ? time_mono_us() : 0);
}

void
metrics_identity_refusal(const char *reason)
{
	ADD(&slot_get(m.reason, REASON_SLOTS, 0, 0,
	    reason != NULL ? reason : "unknown")->n, 1);
}

void
metrics_reset(void)
{
	memset(&m, 0, sizeof(m));
}

int
metrics_health(uint64_t stall_us, char *why, size_t whylen)
{
	static const char *const names[METRICS__THREADS] = {
		"writer", "completion"
	};
	uint64_t now = time_mono_us(), since;
	int      i, rc;

	if (LOAD(&m.full)) {
		snprintf(why, whylen, "store full: the map cannot grow "
		    "(map_max)");
		return -1;
	}
	if ((rc = LOAD(&m.bad_rc)) != 0) {
		snprintf(why, whylen, "store not writable: %s",
		    store_strerror(rc));
		return -1;
	}
	for (i = 0; i < METRICS__THREADS; i++) {
		since = LOAD(&m.busy_since[i]);
		if (since != 0 && now > since && now - since > stall_us) {
			snprintf(why, whylen, "%s thread stuck for %llu ms",
			    names[i], (unsigned long long)(now - since) / 1000);
			return -1;
		}
	}
	snprintf(why, whylen, "ok");
	return 0;
}

/* ---- rendering ---- */

/* A label value, escaped as the text format wants. */
static int
put_label(struct buf *b, const char *s)
{
	int rc = 0;

	for (; *s != '\0' && rc == 0; s++)
		if (*s == '\\' || *s == '"')
			rc = buf_printf(b, "\\%c", *s);
		else if (*s == '\n')
			rc = buf_append(b, "\\n", 2);
		else
			rc = buf_append(b, s, 1);
	return rc;
}

static int
family(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

/* A bound in seconds (µs / 1e6) or as a plain count. */
static int
put_le(struct buf *b, uint64_t v, int seconds)
{
	if (seconds)
		return buf_printf(b, "%g", (double)v / 1e6);
	return buf_printf(b, "%llu", (unsigned long long)v);
}

/* One histogram: name, extra labels ("" or 'endpoint="x",'). */
static int
hist_render(struct buf *b, const char *name, const char *labels,
    const struct hist *h, const uint64_t *le, size_t n, int seconds)
{
	uint64_t cum = 0, sum;
	size_t   i;
	char     lb[64];
	size_t   ll;

	strlcpy(lb, labels, sizeof(lb));
	ll = strlen(lb);
	if (ll > 0 && lb[ll - 1] == ',')
		lb[ll - 1] = '\0';
	for (i = 0; i < n; i++) {
		cum += LOAD(&h->bucket[i]);
		if (buf_printf(b, "%s_bucket{%sle=\"", name, labels) == -1 ||
		    put_le(b, le[i], seconds) == -1 ||
		    buf_printf(b, "\"} %llu\n", (unsigned long long)cum) == -1)
			return -1;
	}
	cum += LOAD(&h->bucket[n]);
	sum = LOAD(&h->sum);
	if (buf_printf(b, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, labels,
	    (unsigned long long)cum) == -1)
		return -1;
	if (seconds)
		return buf_printf(b, "%s_sum%s%s%s %.6f\n%s_count%s%s%s %llu\n",
		    name, *lb ? "{" : "", lb, *lb ? "}" : "", (double)sum / 1e6,
		    name, *lb ? "{" : "", lb, *lb ? "}" : "",
		    (unsigned long long)cum);
	return buf_printf(b, "%s_sum%s%s%s %llu\n%s_count%s%s%s %llu\n", name,
	    *lb ? "{" : "", lb, *lb ? "}" : "", (unsigned long long)sum, name,
	    *lb ? "{" : "", lb, *lb ? "}" : "", (unsigned long long)cum);
}

static int
counters_render(struct buf *b, int max_inflight)
{
	const struct slot *s;
	char               lb[64];
	size_t             i;
	int                e;

	if (family(b, "picomdm_requests_total", "counter",
	    "Requests answered, by endpoint, message type and HTTP status.") ==
	    -1)
		return -1;
	for (i = 0; i < REQ_SLOTS; i++) {
		s = &m.req[i];
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != 2)
			continue;
		if (buf_printf(b, "picomdm_requests_total{endpoint=\"%s\","
		    "type=\"", ep_names[s->ep]) == -1 ||
		    put_label(b, s->key) == -1 ||
		    buf_printf(b, "\",status=\"%d\"} %llu\n", s->status,
		    (unsigned long long)LOAD(&s->n)) == -1)
			return -1;
	}
	if (family(b, "picomdm_request_duration_seconds", "histogram",
	    "Time from accepting a request to writing its reply, by "
	    "endpoint.") == -1)
		return -1;
	for (e = 0; e < EP__MAX; e++) {
		snprintf(lb, sizeof(lb), "endpoint=\"%s\",", ep_names[e]);
		if (hist_render(b, "picomdm_request_duration_seconds", lb,
		    &m.lat[e], lat_le, LAT_N, 1) == -1)
			return -1;
	}
	if (family(b, "picomdm_commits_total", "counter",
	    "Group commits of the writer (one LMDB transaction and one "
	    "sync each).") == -1 ||
	    buf_printf(b, "picomdm_commits_total %llu\n",
	    (unsigned long long)LOAD(&m.commits)) == -1 ||
	    family(b, "picomdm_commit_operations", "histogram",
	    "Write operations (requests) per group commit.") == -1 ||
	    hist_render(b, "picomdm_commit_operations", "", &m.batch,
	    batch_le, BATCH_N, 0) == -1 ||
	    family(b, "picomdm_commit_duration_seconds", "histogram",
	    "Time of each group commit's mdb_txn_commit: page writes and "
	    "fdatasync.") == -1 ||
	    hist_render(b, "picomdm_commit_duration_seconds", "", &m.sync,
	    sync_le, SYNC_N, 1) == -1 ||
	    family(b, "picomdm_commit_delays_total", "counter",
	    "Group commits the writer held back for device requests still "
	    "being read (commit_delay).") == -1 ||
	    buf_printf(b, "picomdm_commit_delays_total %llu\n",
	    (unsigned long long)LOAD(&m.delays)) == -1 ||
	    family(b, "picomdm_commit_delay_seconds_total", "counter",
	    "Time the writer held commits back, in all.") == -1 ||
	    buf_printf(b, "picomdm_commit_delay_seconds_total %.6f\n",
	    (double)LOAD(&m.delay_us) / 1e6) == -1)
		return -1;
	if (family(b, "picomdm_requests_inflight", "gauge",
	    "Requests accepted and not yet answered (this scrape included).") ==
	    -1 ||
	    buf_printf(b, "picomdm_requests_inflight %lld\n",
	    (long long)LOAD(&m.inflight)) == -1 ||
	    family(b, "picomdm_requests_inflight_max", "gauge",
	    "max_inflight: requests in flight at most.") == -1 ||
	    buf_printf(b, "picomdm_requests_inflight_max %d\n",
	    max_inflight) == -1)
		return -1;
	if (family(b, "picomdm_identity_refusals_total", "counter",
	    "Device requests refused by the identity checks, by reason.") ==
	    -1)
		return -1;
	for (i = 0; i < REASON_SLOTS; i++) {
		s = &m.reason[i];
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != 2)
			continue;
		if (buf_printf(b, "picomdm_identity_refusals_total{reason=\"") ==
		    -1 || put_label(b, s->key) == -1 ||
		    buf_printf(b, "\"} %llu\n",
		    (unsigned long long)LOAD(&s->n)) == -1)
			return -1;
	}
	return 0;
}

/* The store's figures, gathered in one read transaction. */
struct store_fig {
	struct store_dbi_stat db[32];
	int                   ndb;
	struct store_env_stat env;
	uint64_t              enabled, disabled;
	struct store_event_counts wh; /* the webhook outbox's counters */
	uint64_t              push[PUSH__MAX]; /* picomdm-notify's counters */
	uint64_t              push_invalid; /* enrollments, token refused */
};

static int
store_fig_op(struct store_txn *t, void *arg)
{
	struct store_fig *f = arg;
	int               rc;

	if ((f->ndb = store_stat(t, f->db, 32)) < 0)
		return f->ndb;
	if ((rc = store_env_stat(t, &f->env)) != 0 ||
	    (rc = store_event_counts(t, &f->wh)) != 0 ||
	    (rc = store_push_counters(t, f->push)) != 0 ||
	    (rc = store_push_invalid_count(t, &f->push_invalid)) != 0)
		return rc;
	return store_enrollment_counts(t, &f->enabled, &f->disabled);
}

static uint64_t
fig_entries(const struct store_fig *f, const char *name)
{
	int i;

	for (i = 0; i < f->ndb; i++)
		if (strcmp(f->db[i].name, name) == 0)
			return f->db[i].entries;
	return 0;
}

int
metrics_render_store(struct buf *b, struct store *s)
{
	struct store_fig f;
	int              i, rc;

	memset(&f, 0, sizeof(f));
	if ((rc = store_read(s, store_fig_op, &f)) != 0)
		return rc;
	if (family(b, "picomdm_store_map_size_bytes", "gauge",
	    "Size of the LMDB map (it grows up to map_max).") == -1 ||
	    buf_printf(b, "picomdm_store_map_size_bytes %llu\n",
	    (unsigned long long)f.env.map_size) == -1 ||
	    family(b, "picomdm_store_page_size_bytes", "gauge",
	    "LMDB page size.") == -1 ||
	    buf_printf(b, "picomdm_store_page_size_bytes %llu\n",
	    (unsigned long long)f.env.page_size) == -1 ||
	    family(b, "picomdm_store_pages_used", "gauge",
	    "Pages up to the high-water mark (last page + 1), free-list "
	    "pages included.") == -1 ||
	    buf_printf(b, "picomdm_store_pages_used %llu\n",
	    (unsigned long long)f.env.pages_used) == -1 ||
	    family(b, "picomdm_store_pages_free", "gauge",
	    "Pages on LMDB's free list, reusable.") == -1 ||
	    buf_printf(b, "picomdm_store_pages_free %llu\n",
	    (unsigned long long)f.env.pages_free) == -1 ||
	    family(b, "picomdm_store_readers", "gauge",
	    "LMDB reader slots in use.") == -1 ||
	    buf_printf(b, "picomdm_store_readers %u\n", f.env.readers) == -1 ||
	    family(b, "picomdm_store_entries", "gauge",
	    "Records per sub-database.") == -1)
		return STORE_ENOMEM;
	for (i = 0; i < f.ndb; i++)
		if (buf_printf(b, "picomdm_store_entries{db=\"%s\"} %llu\n",
		    f.db[i].name, (unsigned long long)f.db[i].entries) == -1)
			return STORE_ENOMEM;
	if (family(b, "picomdm_enrollments", "gauge",
	    "Enrollments (device and user channels), by state.") == -1 ||
	    buf_printf(b, "picomdm_enrollments{state=\"enabled\"} %llu\n"
	    "picomdm_enrollments{state=\"disabled\"} %llu\n",
	    (unsigned long long)f.enabled,
	    (unsigned long long)f.disabled) == -1 ||
	    family(b, "picomdm_commands_queued", "gauge",
	    "Commands queued for enrollments (one per enrollment and "
	    "command, NotNow'd ones included).") == -1 ||
	    buf_printf(b, "picomdm_commands_queued %llu\n",
	    (unsigned long long)fig_entries(&f, "queue")) == -1 ||
	    family(b, "picomdm_results_stored", "gauge",
	    "Command results kept (retention: picomdmctl prune).") == -1 ||
	    buf_printf(b, "picomdm_results_stored %llu\n",
	    (unsigned long long)fig_entries(&f, "result")) == -1)
		return STORE_ENOMEM;
	if (family(b, "picomdm_webhook_events_total", "counter",
	    "Webhook events (README.md, \"Webhooks\"): queued by check-ins "
	    "and reports, delivered, POSTs failed (retried), dropped "
	    "undelivered when the outbox was full.") == -1 ||
	    buf_printf(b, "picomdm_webhook_events_total{outcome=\"queued\"} "
	    "%llu\npicomdm_webhook_events_total{outcome=\"delivered\"} %llu\n"
	    "picomdm_webhook_events_total{outcome=\"failed\"} %llu\n"
	    "picomdm_webhook_events_total{outcome=\"dropped\"} %llu\n",
	    (unsigned long long)f.wh.queued,
	    (unsigned long long)f.wh.delivered,
	    (unsigned long long)f.wh.failed,
	    (unsigned long long)f.wh.dropped) == -1 ||
	    family(b, "picomdm_webhook_outbox", "gauge",
	    "Webhook events waiting in the outbox.") == -1 ||
	    buf_printf(b, "picomdm_webhook_outbox %llu\n",
	    (unsigned long long)fig_entries(&f, "event")) == -1)
		return STORE_ENOMEM;
	/* picomdm-notify writes these with each outcome (push.h). */
	if (family(b, "picomdm_push_outbox_depth", "gauge",
	    "Pushes waiting in the outbox (one per enrollment at most).") ==
	    -1 || buf_printf(b, "picomdm_push_outbox_depth %llu\n",
	    (unsigned long long)fig_entries(&f, "push_outbox")) == -1 ||
	    family(b, "picomdm_push_tokens_invalid", "gauge",
	    "Enrollments whose push token APNs refused, with no TokenUpdate "
	    "since: no push wakes them.") == -1 ||
	    buf_printf(b, "picomdm_push_tokens_invalid %llu\n",
	    (unsigned long long)f.push_invalid) == -1 ||
	    family(b, "picomdm_pushes_total", "counter",
	    "Push outcomes written by picomdm-notify, by result.") == -1)
		return STORE_ENOMEM;
	for (i = 0; i < PUSH__MAX; i++)
		if (buf_printf(b, "picomdm_pushes_total{result=\"%s\"} %llu\n",
		    push_result_name((enum push_result)i),
		    (unsigned long long)f.push[i]) == -1)
			return STORE_ENOMEM;
	return 0;
}

int
metrics_render(struct buf *b, struct store *s, int max_inflight,
    uint64_t map_max)
{
	struct store_health h;
	char		    why[128];
	int		    up, rc;

	if (counters_render(b, max_inflight) == -1)
		return -1;
	up = metrics_health(UINT64_MAX, why, sizeof(why)) == 0;
	if (family(b, "picomdm_store_writable", "gauge",
	    "1 when the last write was stored (0: map full or store "
	    "error, see /healthz).") == -1 ||
	    buf_printf(b, "picomdm_store_writable %d\n", up) == -1)
		return -1;
	if (family(b, "picomdm_store_map_max_bytes", "gauge",
	    "map_max: the map grows up to this, then writes are refused.") ==
	    -1 || buf_printf(b, "picomdm_store_map_max_bytes %llu\n",
	    (unsigned long long)map_max) == -1)
		return -1;
	store_health_get(s, &h);
	if (family(b, "picomdm_store_commit_failures_total", "counter",
	    "Group commits that failed (their requests answered 503 or "
	    "500), by cause.") == -1 ||
	    buf_printf(b, "picomdm_store_commit_failures_total{cause=\"nospc\"}"
	    " %llu\npicomdm_store_commit_failures_total{cause=\"disk\"} %llu\n"
	    "picomdm_store_commit_failures_total{cause=\"other\"} %llu\n",
	    (unsigned long long)h.commit_nospc,
	    (unsigned long long)h.commit_disk,
	    (unsigned long long)(h.commit_failures - h.commit_nospc -
		h.commit_disk)) == -1)
		return -1;
	rc = metrics_render_store(b, s);
	if (family(b, "picomdm_store_up", "gauge",
	    "1 when the store's figures above could be read.") == -1 ||
	    buf_printf(b, "picomdm_store_up %d\n", rc == 0) == -1)
		return -1;
	return rc == STORE_ENOMEM ? -1 : 0;
}
