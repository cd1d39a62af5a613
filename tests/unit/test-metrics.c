/*
 * test-metrics.c - module/metrics.c: exact counts in the exposition,
 * label escaping, one slot per key under concurrent claims, histograms
 * cumulative, and the health verdict (map full, store errors, a thread
 * busy past the limit, and back to ok).
 */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picomdm/metrics.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "regress.h"

static char dir[1024];

/* The body as a NUL-terminated string, rendered afresh. */
static char *
render(struct store *s)
{
	struct buf b;
	char      *out;

	memset(&b, 0, sizeof(b));
	CHECK_EQ(metrics_render(&b, s, 64, (uint64_t)1 << 30), 0);
	CHECK((out = malloc(b.len + 1)) != NULL);
	memcpy(out, b.p, b.len);
	out[b.len] = '\0';
	buf_free(&b);
	return out;
}

/* The line starting with prefix, its value; -1 when absent. */
static long long
value(const char *text, const char *prefix)
{
	const char *p = text;
	size_t      n = strlen(prefix);

	while ((p = strstr(p, prefix)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
		p += n;
	}
	return -1;
}

static void *
hammer(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 10000; i++) {
		metrics_inflight(1);
		metrics_request("/mdm/checkin", "TokenUpdate", 200, 700);
		metrics_identity_refusal("certificate expired");
	}
	return NULL;
}

int
main(void)
{
	const char       *tmp = getenv("PICOMDM_TEST_TMP");
	struct store_opts o;
	struct store     *s = NULL;
	pthread_t         th[4];
	char              why[128], path[1100], *t;
	int               i;

	snprintf(dir, sizeof(dir), "%s/metrics-%d", tmp ? tmp : "/tmp",
	    (int)getpid());
	memset(&o, 0, sizeof(o));
	CHECK_EQ(store_open(dir, &o, &s), 0);

	/* Four threads claim the same keys at once: one slot each. */
	metrics_reset();
	for (i = 0; i < 4; i++)
		CHECK(pthread_create(&th[i], NULL, hammer, NULL) == 0);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	t = render(s);
	CHECK_EQ(value(t, "picomdm_requests_total{endpoint=\"checkin\","
	    "type=\"TokenUpdate\",status=\"200\"}"), 40000);
	CHECK(strstr(strstr(t, "TokenUpdate\",status=\"200\"}") + 1,
	    "TokenUpdate\",status=\"200\"}") == NULL);
	CHECK_EQ(value(t, "picomdm_identity_refusals_total{reason="
	    "\"certificate expired\"}"), 40000);
	CHECK_EQ(value(t, "picomdm_requests_inflight"), 0);
	/* 700 µs: not in le=0.0005, in le=0.001, and cumulative after. */
	CHECK_EQ(value(t, "picomdm_request_duration_seconds_bucket{endpoint="
	    "\"checkin\",le=\"0.0005\"}"), 0);
	CHECK_EQ(value(t, "picomdm_request_duration_seconds_bucket{endpoint="
	    "\"checkin\",le=\"0.001\"}"), 40000);
	CHECK_EQ(value(t, "picomdm_request_duration_seconds_bucket{endpoint="
	    "\"checkin\",le=\"+Inf\"}"), 40000);
	CHECK_EQ(value(t, "picomdm_request_duration_seconds_count{endpoint="
	    "\"checkin\"}"), 40000);
	CHECK_EQ(value(t, "picomdm_requests_inflight_max"), 64);
	CHECK_EQ(value(t, "picomdm_store_map_max_bytes"), 1 << 30);
	CHECK_EQ(value(t, "picomdm_store_up"), 1);
	CHECK_EQ(value(t, "picomdm_enrollments{state=\"enabled\"}"), 0);
	free(t);

	/* Endpoints and the overflow; escaping of label values. */
	metrics_reset();
	metrics_request("/mdm", "Idle", 200, 1);
	metrics_request("/healthz", "health", 503, 1);
	metrics_request("/nowhere", NULL, 404, 1);
	metrics_identity_refusal("a \"quoted\\\" reason\nsecond line");
	metrics_commit(3);
	metrics_commit(300);
	metrics_commit_time(2000);
	t = render(s);
	CHECK_EQ(value(t, "picomdm_requests_total{endpoint=\"mdm\","
	    "type=\"Idle\",status=\"200\"}"), 1);
	CHECK_EQ(value(t, "picomdm_requests_total{endpoint=\"healthz\","
	    "type=\"health\",status=\"503\"}"), 1);
	CHECK_EQ(value(t, "picomdm_requests_total{endpoint=\"other\","
	    "type=\"none\",status=\"404\"}"), 1);
	CHECK_EQ(value(t, "picomdm_identity_refusals_total{reason=\"a "
	    "\\\"quoted\\\\\\\" reason\\nsecond line\"}"), 1);
	CHECK_EQ(value(t, "picomdm_commits_total"), 2);
	CHECK_EQ(value(t, "picomdm_commit_operations_bucket{le=\"2\"}"), 0);
	CHECK_EQ(value(t, "picomdm_commit_operations_bucket{le=\"4\"}"), 1);
	CHECK_EQ(value(t, "picomdm_commit_operations_bucket{le=\"256\"}"), 1);
	CHECK_EQ(value(t, "picomdm_commit_operations_bucket{le=\"+Inf\"}"), 2);
	CHECK_EQ(value(t, "picomdm_commit_operations_sum"), 303);
	CHECK_EQ(value(t, "picomdm_commit_duration_seconds_bucket{le="
	    "\"0.001\"}"), 0);
	CHECK_EQ(value(t, "picomdm_commit_duration_seconds_bucket{le="
	    "\"0.0025\"}"), 1);
	free(t);

	/* A full table counts into "other", never more slots. */
	metrics_reset();
	for (i = 0; i < 100; i++) {
		snprintf(why, sizeof(why), "reason %d", i);
		metrics_identity_refusal(why);
	}
	t = render(s);
	CHECK_EQ(value(t, "picomdm_identity_refusals_total{reason="
	    "\"other\"}"), 100 - 63);
	free(t);

	/* Health. */
	metrics_reset();
	CHECK_EQ(metrics_health(1000000, why, sizeof(why)), 0);
	CHECK_STR(why, "ok");
	metrics_store_rc(STORE_EFULL);
	CHECK_EQ(metrics_health(1000000, why, sizeof(why)), -1);
	CHECK_STR(why, "store full: the map cannot grow (map_max)");
	metrics_store_rc(409); /* a refusal says nothing about the store */
	CHECK_EQ(metrics_health(1000000, why, sizeof(why)), -1);
	metrics_store_rc(STORE_OK);
	CHECK_EQ(metrics_health(1000000, why, sizeof(why)), 0);
	metrics_store_rc(STORE_EIO);
	CHECK_EQ(metrics_health(1000000, why, sizeof(why)), -1);
	CHECK_STR(why, "store not writable: store i/o error");
	metrics_store_rc(STORE_OK);
	metrics_busy(METRICS_WRITER, 1);
	usleep(3000);
	CHECK_EQ(metrics_health(1000000, why, sizeof(why)), 0);
	CHECK_EQ(metrics_health(1000, why, sizeof(why)), -1);
	CHECK(strncmp(why, "writer thread stuck for ", 24) == 0);
	metrics_busy(METRICS_WRITER, 0);
	metrics_busy(METRICS_COMPLETION, 1);
	usleep(3000);
	CHECK_EQ(metrics_health(1000, why, sizeof(why)), -1);
	CHECK(strncmp(why, "completion thread stuck for ", 28) == 0);
	metrics_busy(METRICS_COMPLETION, 0);
	CHECK_EQ(metrics_health(1000, why, sizeof(why)), 0);
	t = render(s);
	CHECK_EQ(value(t, "picomdm_store_writable"), 1);
	free(t);
	metrics_store_rc(STORE_EFULL);
	t = render(s);
	CHECK_EQ(value(t, "picomdm_store_writable"), 0);
	free(t);

	store_close(s);
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", dir);
	unlink(path);
	rmdir(dir);
	REGRESS_DONE();
}
