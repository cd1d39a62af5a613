/*
 * test-push.c - the push outbox and push state (module/store_push.c,
 * include/picomdm/push.h) on a real store: queueing says why a push is
 * not queued (unknown, no token, checked out, token invalid) and
 * coalesces; take hands out due records with token hex and PushMagic
 * and leaves the others with their next_try; each outcome does what
 * push.h says (delivered, token-invalid, a token-invalid answer for a
 * token replaced since, topic-stopped, retry, gave-up, dropped, rejected)
 * and counts; a TokenUpdate clears an invalid token; the re-push pass
 * picks enrollments with commands and no contact since their last push;
 * check is clean and purge removes both records.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "picomdm/push.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "regress.h"

static const unsigned char tok_a[32] = {0xab, 0xcd, 1, 2, 3};

struct en {
	const char *id;
	int	    token;   /* with a token and PushMagic */
	int	    enabled;
	uint64_t    updated; /* token_updated_at */
};

static int
op_enroll(struct store_txn *t, void *arg)
{
	const struct en	       *x = arg;
	struct store_enrollment e;
	char			topic[] = "com.apple.mgmt.test",
		     magic[] = "MAGIC-1";

	memset(&e, 0, sizeof(e));
	e.id = (char *)(uintptr_t)x->id;
	e.device_id = e.id;
	e.type = ENROLL_DEVICE;
	e.enabled = x->enabled;
	e.topic = topic;
	e.token_updated_at = x->updated;
	e.last_seen = 1;
	if (x->token) {
		e.token = (unsigned char *)(uintptr_t)tok_a;
		e.token_len = sizeof(tok_a);
		e.push_magic = magic;
	}
	return store_enrollment_put(t, &e);
}

struct q_op {
	const char	*id;
	enum push_queued out;
};

static int
op_queue(struct store_txn *t, void *arg)
{
	struct q_op *q = arg;

	return store_push_queue(t, q->id, "test", &q->out);
}

static enum push_queued
queue(struct store *s, const char *id)
{
	struct q_op q = {id, PUSHQ__MAX};

	CHECK_EQ(store_write(s, op_queue, &q), 0);
	return q.out;
}

struct take {
	uint64_t	  now;
	struct push_item *v;
	size_t		  n;
	uint64_t	  next;
};

static int
op_take(struct store_txn *t, void *arg)
{
	struct take *tk = arg;

	return store_push_take(t, tk->now, 100, &tk->v, &tk->n, &tk->next);
}

static void
take(struct store *s, uint64_t now, struct take *tk)
{
	memset(tk, 0, sizeof(*tk));
	tk->now = now;
	CHECK_EQ(store_read(s, op_take, tk), 0);
}

struct done {
	struct push_item   *it;
	struct push_outcome o;
};

static int
op_done(struct store_txn *t, void *arg)
{
	struct done *d = arg;

	return store_push_done(t, d->it, &d->o, time_now_us());
}

static void
done(struct store *s, struct push_item *it, enum push_result r,
    const char *reason, uint64_t next_try)
{
	struct done d;

	memset(&d, 0, sizeof(d));
	d.it = it;
	d.o.result = r;
	d.o.reason = reason;
	d.o.apns_id = r == PUSH_DELIVERED ? "APNS-ID-1" : NULL;
	d.o.status = r == PUSH_DELIVERED ? 200 : 400;
	d.o.next_try = next_try;
	CHECK_EQ(store_write(s, op_done, &d), 0);
}

struct state {
	const char		*id;
	struct store_push_state	 st;
	int			 rc;
	uint64_t		 counters[PUSH__MAX];
	json_t			*view;
};

static int
op_state(struct store_txn *t, void *arg)
{
	struct state		*x = arg;
	struct store_enrollment *e = NULL;

	x->rc = store_push_state_get(t, x->id, &x->st);
	CHECK_EQ(store_push_counters(t, x->counters), 0);
	CHECK_EQ(store_enrollment_get(t, x->id, &e), 0);
	x->view = store_push_json(t, e);
	store_enrollment_free(e);
	return 0;
}

static void
state(struct store *s, const char *id, struct state *x)
{
	memset(x, 0, sizeof(*x));
	x->id = id;
	CHECK_EQ(store_read(s, op_state, x), 0);
	CHECK(x->view != NULL);
}

static void
state_free(struct state *x)
{
	store_push_state_free(&x->st);
	json_decref(x->view);
}

static int
op_repush(struct store_txn *t, void *arg)
{
	size_t *n = arg;

	return store_push_repush(t, time_now_us(), 1, 100, n);
}

static int
op_cmd(struct store_txn *t, void *arg)
{
	struct store_command c;
	char		     uuid[] = "CMD-1", rt[] = "ProfileList";

	memset(&c, 0, sizeof(c));
	c.uuid = uuid;
	c.request_type = rt;
	c.raw = (unsigned char *)(uintptr_t)"x";
	c.raw_len = 1;
	CHECK_EQ(store_command_put(t, &c), 0);
	return store_queue_push(t, arg, uuid, 0, 0);
}

/* Problems of check that are not about the push kinds are the
 * hand-made enrollments' (they have no device record). */
static int
problem_cb(const struct store_problem *p, void *arg)
{
	(void)arg;
	if (strncmp(p->db, "push", 4) == 0)
		fprintf(stderr, "check: %s %s: %s\n", p->db, p->key, p->what);
	CHECK(strncmp(p->db, "push", 4) != 0);
	return 0;
}

static int
op_purge(struct store_txn *t, void *arg)
{
	const char *const	  ids[1] = {"dev-a"};
	struct store_purge_report r;
	int			  rc;

	(void)arg;
	memset(&r, 0, sizeof(r));
	rc = store_purge_enrollments(t, ids, 1, &r);
	store_purge_report_free(&r);
	return rc;
}

int
main(void)
{
	const char	 *tmp = getenv("PICOMDM_TEST_TMP");
	char		  dir[512];
	struct store_opts o;
	struct store	 *s = NULL;
	struct take	  tk;
	struct state	  st;
	struct en	  a = {"dev-a", 1, 1, 1}, b = {"dev-b", 0, 1, 1},
		 c = {"dev-c", 1, 0, 1};
	struct store_check_count cc;
	size_t			 n;

	CHECK((size_t)snprintf(dir, sizeof(dir), "%s/push-XXXXXX",
		  tmp ? tmp : "/tmp") < sizeof(dir));
	if (tmp != NULL)
		(void)mkdir(tmp, 0700);
	CHECK(mkdtemp(dir) != NULL);
	memset(&o, 0, sizeof(o));
	o.nosync = 1;
	CHECK_EQ(store_open(dir, &o, &s), 0);
	CHECK_EQ(store_write(s, op_enroll, &a), 0);
	CHECK_EQ(store_write(s, op_enroll, &b), 0);
	CHECK_EQ(store_write(s, op_enroll, &c), 0);

	/* Why not queued; coalescing. */
	CHECK_EQ(queue(s, "nobody"), PUSHQ_UNKNOWN);
	CHECK_EQ(queue(s, "dev-b"), PUSHQ_NO_TOKEN);
	CHECK_EQ(queue(s, "dev-c"), PUSHQ_CHECKED_OUT);
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_QUEUED);
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_PENDING);
	CHECK_STR(push_queued_name(PUSHQ_TOKEN_INVALID), "token invalid");

	/* Take: one due record, its token in hex and its PushMagic. */
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 1);
	CHECK(tk.v[0].drop == NULL);
	CHECK_STR(tk.v[0].enrollment_id, "dev-a");
	CHECK_STR(tk.v[0].topic, "com.apple.mgmt.test");
	CHECK_STR(tk.v[0].magic, "MAGIC-1");
	CHECK(strncmp(tk.v[0].token_hex, "abcd010203000000", 16) == 0);
	CHECK_EQ(strlen(tk.v[0].token_hex), 64);

	/* Retry: kept, an attempt counted, not due before next_try. */
	done(s, &tk.v[0], PUSH_RETRY, "TooManyRequests",
	    time_now_us() + 60000000u);
	push_items_free(tk.v, tk.n);
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 0);
	CHECK(tk.next > time_now_us());
	take(s, time_now_us() + 61000000u, &tk);
	CHECK_EQ(tk.n, 1);
	CHECK_EQ(tk.v[0].attempts, 1);

	/* Topic stopped: kept, no attempt counted. */
	done(s, &tk.v[0], PUSH_TOPIC_STOPPED, "BadCertificate", 5);
	push_items_free(tk.v, tk.n);
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 1);
	CHECK_EQ(tk.v[0].attempts, 1);

	/* Delivered: removed, state has the apns-id. */
	done(s, &tk.v[0], PUSH_DELIVERED, NULL, 0);
	push_items_free(tk.v, tk.n);
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 0);
	state(s, "dev-a", &st);
	CHECK_EQ(st.rc, 0);
	CHECK_STR(st.st.apns_id, "APNS-ID-1");
	CHECK_STR(st.st.last_outcome, "delivered");
	CHECK(st.st.last_push_at > 0);
	CHECK_EQ(st.st.delivered, 1);
	CHECK(json_is_null(json_object_get(st.view, "pending")));
	CHECK(json_is_false(json_object_get(st.view, "token_invalid")));
	CHECK_EQ(st.counters[PUSH_DELIVERED], 1);
	CHECK_EQ(st.counters[PUSH_RETRY], 1);
	CHECK_EQ(st.counters[PUSH_TOPIC_STOPPED], 1);
	state_free(&st);

	/* Token invalid for a token replaced since it was taken: nothing
	 * marked, the push stays queued for the new token. */
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_QUEUED);
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 1);
	a.updated = 2;
	CHECK_EQ(store_write(s, op_enroll, &a), 0);
	done(s, &tk.v[0], PUSH_TOKEN_INVALID, "Unregistered", 0);
	push_items_free(tk.v, tk.n);
	state(s, "dev-a", &st);
	CHECK_EQ(st.st.token_invalid_at, 0);
	CHECK(json_is_object(json_object_get(st.view, "pending")));
	state_free(&st);

	/* Token invalid: removed, marked; no push until a TokenUpdate. */
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 1);
	done(s, &tk.v[0], PUSH_TOKEN_INVALID, "Unregistered", 0);
	push_items_free(tk.v, tk.n);
	state(s, "dev-a", &st);
	CHECK(st.st.token_invalid_at > 0);
	CHECK_STR(st.st.token_invalid_reason, "Unregistered");
	CHECK(json_is_true(json_object_get(st.view, "token_invalid")));
	CHECK(json_is_null(json_object_get(st.view, "pending")));
	state_free(&st);
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_TOKEN_INVALID);
	a.updated = time_now_us() + 1;
	CHECK_EQ(store_write(s, op_enroll, &a), 0);
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_QUEUED);

	/* Gave up and rejected: removed and counted. */
	take(s, time_now_us(), &tk);
	done(s, &tk.v[0], PUSH_GAVE_UP, "InternalServerError", 0);
	push_items_free(tk.v, tk.n);
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_QUEUED);
	take(s, time_now_us(), &tk);
	done(s, &tk.v[0], PUSH_REJECTED, "BadPriority", 0);
	push_items_free(tk.v, tk.n);
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 0);

	/* A record whose enrollment checked out since is dropped. */
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_QUEUED);
	a.enabled = 0;
	CHECK_EQ(store_write(s, op_enroll, &a), 0);
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 1);
	CHECK(tk.v[0].drop != NULL);
	done(s, &tk.v[0], PUSH_DROPPED, tk.v[0].drop, 0);
	push_items_free(tk.v, tk.n);
	state(s, "dev-a", &st);
	CHECK_EQ(st.counters[PUSH_GAVE_UP], 1);
	CHECK_EQ(st.counters[PUSH_REJECTED], 1);
	CHECK_EQ(st.counters[PUSH_DROPPED], 1);
	CHECK_EQ(st.counters[PUSH_TOKEN_INVALID], 2);
	state_free(&st);
	a.enabled = 1;
	CHECK_EQ(store_write(s, op_enroll, &a), 0);

	/* Re-push: a command pending and no contact since the last push
	 * (last_seen 1 < last_push_at); an enrollment without commands is
	 * not pushed. */
	n = 99;
	CHECK_EQ(store_write(s, op_repush, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_write(s, op_cmd, (void *)(uintptr_t)"dev-a"), 0);
	CHECK_EQ(store_write(s, op_repush, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_PENDING);

	/* check is clean with both kinds; purge removes them. */
	CHECK_EQ(store_check(s, 0, NULL, problem_cb, NULL, &cc), 0);
	CHECK_EQ(store_write(s, op_purge, NULL), 0);
	CHECK_EQ(queue(s, "dev-a"), PUSHQ_UNKNOWN);
	take(s, time_now_us(), &tk);
	CHECK_EQ(tk.n, 0);
	CHECK_EQ(store_check(s, 0, NULL, problem_cb, NULL, &cc), 0);

	store_close(s);
	/* make distcheck wants the build tree clean. */
	{
		char cmd[sizeof(dir) + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		CHECK(system(cmd) == 0);
	}
	REGRESS_DONE();
}
