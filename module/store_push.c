/*
 * store_push.c - the push outbox (DBI_PUSHQ) and each enrollment's push
 * state (DBI_PUSHSTATE), both keyed by the enrollment's number; their
 * registry entries are in store_kinds.c. The responder only queues
 * (store_push_queue, in the transaction of the change that needs the
 * push); picomdm-notify takes what is due and writes outcomes
 * (include/picomdm/push.h, README.md "Waking devices").
 */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picomdm/push.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

/* An outbox record (tags of pushq_af in store_kinds.c). */
struct pushq {
	uint64_t queued_at;
	char	*reason;
	uint64_t attempts;
	uint64_t next_try;
	char	*last_result;
	uint64_t last_status;
	char	*last_reason;
};

#define QF(tag, type, m, req) { tag, type, offsetof(struct pushq, m), 0, req }
static const struct fdesc pushq_fields[] = {
	QF(1, F_U64, queued_at, 1),
	QF(2, F_STR, reason, 0),
	QF(3, F_U64, attempts, 0),
	QF(4, F_U64, next_try, 0),
	QF(5, F_STR, last_result, 0),
	QF(6, F_U64, last_status, 0),
	QF(7, F_STR, last_reason, 0),
};

#define SF(tag, type, m) \
	{ tag, type, offsetof(struct store_push_state, m), 0, 0 }
/* The tags of pushstate_af in store_kinds.c. */
static const struct fdesc state_fields[] = {
	SF(1, F_U64, last_push_at),
	SF(2, F_STR, apns_id),
	SF(3, F_STR, last_outcome),
	SF(4, F_U64, last_outcome_at),
	SF(5, F_U64, last_status),
	SF(6, F_STR, last_reason),
	SF(7, F_U64, token_invalid_at),
	SF(8, F_STR, token_invalid_reason),
	SF(9, F_U64, delivered),
};

static const char *const queued_names[PUSHQ__MAX] = {
    [PUSHQ_QUEUED] = "queued",
    [PUSHQ_PENDING] = "pending",
    [PUSHQ_NOPUSH] = "nopush",
    [PUSHQ_NO_TOKEN] = "no token",
    [PUSHQ_TOKEN_INVALID] = "token invalid",
    [PUSHQ_CHECKED_OUT] = "checked out",
    [PUSHQ_UNKNOWN] = "unknown enrollment",
};

static const char *const result_names[PUSH__MAX] = {
    [PUSH_DELIVERED] = "delivered",
    [PUSH_TOKEN_INVALID] = "token-invalid",
    [PUSH_TOPIC_STOPPED] = "topic-stopped",
    [PUSH_RETRY] = "retry",
    [PUSH_REJECTED] = "rejected",
    [PUSH_GAVE_UP] = "gave-up",
    [PUSH_DROPPED] = "dropped",
};

const char *
push_queued_name(enum push_queued q)
{
	return (unsigned)q < PUSHQ__MAX ? queued_names[q] : "unknown";
}

const char *
push_result_name(enum push_result r)
{
	return (unsigned)r < PUSH__MAX ? result_names[r] : "unknown";
}

static void
eid_key(unsigned char k[8], uint64_t eid)
{
	be64(k, eid);
}

static int
pushq_get(struct store_txn *t, uint64_t eid, struct pushq *q)
{
	unsigned char k[8];
	MDB_val	      v;
	int	      rc;

	memset(q, 0, sizeof(*q));
	eid_key(k, eid);
	if ((rc = db_getv(t, DBI_PUSHQ, k, 8, &v)) != 0)
		return rc;
	return rec_decode(
	    &v, REC_PUSHQ, pushq_fields, NF(pushq_fields), q, NULL, NULL);
}

static void
pushq_free(struct pushq *q)
{
	rec_free_fields(pushq_fields, NF(pushq_fields), q);
}

static int
pushq_put(struct store_txn *t, uint64_t eid, const struct pushq *q)
{
	unsigned char k[8];

	eid_key(k, eid);
	return rec_putv(t, DBI_PUSHQ, k, 8, REC_PUSHQ, pushq_fields,
	    NF(pushq_fields), q);
}

static int
state_get_eid(struct store_txn *t, uint64_t eid, struct store_push_state *s)
{
	unsigned char k[8];
	MDB_val	      v;
	int	      rc;

	memset(s, 0, sizeof(*s));
	eid_key(k, eid);
	if ((rc = db_getv(t, DBI_PUSHSTATE, k, 8, &v)) != 0)
		return rc;
	return rec_decode(&v, REC_PUSHSTATE, state_fields, NF(state_fields),
	    s, NULL, NULL);
}

static int
state_put(struct store_txn *t, uint64_t eid, const struct store_push_state *s)
{
	unsigned char k[8];

	eid_key(k, eid);
	return rec_putv(t, DBI_PUSHSTATE, k, 8, REC_PUSHSTATE, state_fields,
	    NF(state_fields), s);
}

void
store_push_state_free(struct store_push_state *s)
{
	rec_free_fields(state_fields, NF(state_fields), s);
	memset(s, 0, sizeof(*s));
}

int
store_push_state_get(
    struct store_txn *t, const char *id, struct store_push_state *out)
{
	uint64_t eid;
	int	 rc;

	memset(out, 0, sizeof(*out));
	if ((rc = enroll_eid(t, id, &eid)) != 0)
		return rc;
	return state_get_eid(t, eid, out);
}

int
push_token_invalid(
    const struct store_push_state *s, const struct store_enrollment *e)
{
	return s->token_invalid_at != 0 &&
	    s->token_invalid_at >= e->token_updated_at;
}

/* store_push_invalid_count's visit: a state marked invalid counts while
 * its enrollment has had no TokenUpdate since. */
static int
invalid_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v,
    void *arg)
{
	struct store_push_state	 s;
	struct store_enrollment *e = NULL;
	uint64_t		*n = arg;
	char			*id = NULL;

	memset(&s, 0, sizeof(s));
	/* A record that does not decode counts for nothing (check reports
	 * it); one of an enrollment gone neither. */
	if (k->mv_size == 8 && rec_decode(v, REC_PUSHSTATE, state_fields,
	    NF(state_fields), &s, NULL, NULL) == 0 &&
	    s.token_invalid_at != 0 &&
	    enroll_id_of(t, key_get_u64(k->mv_data), &id) == 0 &&
	    store_enrollment_get(t, id, &e) == 0 && push_token_invalid(&s, e))
		(*n)++;
	store_enrollment_free(e);
	free(id);
	store_push_state_free(&s);
	return 0;
}

int
store_push_invalid_count(struct store_txn *t, uint64_t *n)
{
	*n = 0;
	return db_visit(t, DBI_PUSHSTATE, invalid_visit, n, NULL);
}

/* Can this enrollment be pushed? PUSHQ_QUEUED when it can. */
static enum push_queued
pushable(const struct store_enrollment *e, const struct store_push_state *s)
{
	if (!e->enabled || e->checked_out_at != 0)
		return PUSHQ_CHECKED_OUT;
	if (e->token == NULL || e->token_len == 0 || e->push_magic == NULL ||
	    *e->push_magic == '\0' || e->topic == NULL || *e->topic == '\0')
		return PUSHQ_NO_TOKEN;
	if (push_token_invalid(s, e))
		return PUSHQ_TOKEN_INVALID;
	return PUSHQ_QUEUED;
}

int
store_push_queue(struct store_txn *t, const char *id, const char *why,
    enum push_queued *out)
{
	struct store_enrollment *e = NULL;
	struct store_push_state	 st;
	struct pushq		 q;
	uint64_t		 eid;
	int			 rc;

	*out = PUSHQ_UNKNOWN;
	rc = store_enrollment_get(t, id, &e);
	if (rc == STORE_ENOTFOUND || rc == STORE_EINVAL)
		return 0;
	if (rc != 0)
		return rc;
	if ((rc = enroll_eid(t, id, &eid)) != 0)
		goto out;
	rc = state_get_eid(t, eid, &st);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		goto out;
	*out = pushable(e, &st);
	store_push_state_free(&st);
	rc = 0;
	if (*out != PUSHQ_QUEUED)
		goto out;
	rc = pushq_get(t, eid, &q);
	if (rc == 0) {
		/* Coalesced: one push wakes the device for all. */
		*out = PUSHQ_PENDING;
		pushq_free(&q);
		goto out;
	}
	if (rc != STORE_ENOTFOUND)
		goto out;
	memset(&q, 0, sizeof(q));
	q.queued_at = t->now;
	q.reason = (char *)(uintptr_t)why;
	q.next_try = t->now;
	rc = pushq_put(t, eid, &q);
out:
	store_enrollment_free(e);
	return rc;
}

struct request_op {
	char *const	 *ids;
	size_t		  n;
	const char	 *why;
	enum push_queued *out;
};

static int
request_run(struct store_txn *t, void *arg)
{
	struct request_op *op = arg;
	size_t		   i;
	int		   rc;

	for (i = 0; i < op->n; i++)
		if ((rc = store_push_queue(t, op->ids[i], op->why,
			 &op->out[i])) != 0)
			return rc;
	return 0;
}

int
store_push_request(struct store *s, char *const *ids, size_t n,
    const char *why, enum push_queued *out)
{
	struct request_op op = {ids, n, why, out};

	return store_write(s, request_run, &op);
}

/* ---- picomdm-notify's side ---- */

struct take_ctx {
	uint64_t	  now;
	size_t		  max;
	struct push_item *v;
	size_t		  n;
	uint64_t	  next_due;
	int		  rc;
};

void
push_items_free(struct push_item *v, size_t n)
{
	size_t i;

	for (i = 0; v != NULL && i < n; i++) {
		free(v[i].enrollment_id);
		free(v[i].topic);
		if (v[i].magic != NULL)
			explicit_bzero(v[i].magic, strlen(v[i].magic));
		free(v[i].magic);
		explicit_bzero(v[i].token_hex, sizeof(v[i].token_hex));
	}
	free(v);
}

static int
take_one(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct take_ctx		*c = arg;
	struct store_enrollment *e = NULL;
	struct store_push_state	 st;
	struct push_item	*it;
	struct pushq		 q;
	enum push_queued	 p;
	int			 rc;

	if (k->mv_size != 8)
		return 0;
	memset(&q, 0, sizeof(q));
	if (rec_decode(v, REC_PUSHQ, pushq_fields, NF(pushq_fields), &q, NULL,
		NULL) != 0)
		return 0; /* check reports it */
	if (q.next_try > c->now) {
		if (c->next_due == 0 || q.next_try < c->next_due)
			c->next_due = q.next_try;
		pushq_free(&q);
		return 0;
	}
	if (c->n == c->max) {
		pushq_free(&q);
		c->next_due = c->now;
		return 1;
	}
	it = &c->v[c->n];
	memset(it, 0, sizeof(*it));
	it->eid = key_get_u64(k->mv_data);
	it->attempts = q.attempts;
	it->queued_at = q.queued_at;
	pushq_free(&q);
	c->n++;
	if ((rc = enroll_id_of(t, it->eid, &it->enrollment_id)) != 0) {
		if (rc != STORE_ENOTFOUND)
			return rc;
		it->drop = "no such enrollment";
		return 0;
	}
	if ((rc = store_enrollment_get(t, it->enrollment_id, &e)) != 0) {
		if (rc != STORE_ENOTFOUND)
			return rc;
		it->drop = "no such enrollment";
		return 0;
	}
	rc = state_get_eid(t, it->eid, &st);
	if (rc != 0 && rc != STORE_ENOTFOUND) {
		store_enrollment_free(e);
		return rc;
	}
	p = pushable(e, &st);
	store_push_state_free(&st);
	it->token_updated_at = e->token_updated_at;
	if (p != PUSHQ_QUEUED)
		it->drop = push_queued_name(p);
	else if (e->token_len * 2 > PUSH_TOKEN_HEX_MAX)
		it->drop = "token too long";
	else {
		hex_encode(e->token, e->token_len, it->token_hex);
		if ((it->topic = strdup(e->topic)) == NULL ||
		    (it->magic = strdup(e->push_magic)) == NULL) {
			store_enrollment_free(e);
			return STORE_ENOMEM;
		}
	}
	store_enrollment_free(e);
	return 0;
}

/* fn on every entry of the outbox, in key order (0 go on, 1 stop, < 0
 * an error, returned). */
static int
outbox_each(struct store_txn *t, db_each_fn fn, void *arg)
{
	MDB_cursor *cur;
	MDB_val	    k, v;
	int	    rc, frc = 0;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_PUSHQ], &cur)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if ((frc = fn(t, &k, &v, arg)) != 0)
			break;
	mdb_cursor_close(cur);
	if (frc != 0)
		return frc == 1 ? 0 : frc;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

int
store_push_take(struct store_txn *t, uint64_t now, size_t max,
    struct push_item **out, size_t *n, uint64_t *next_due)
{
	struct take_ctx c;
	int		rc;

	*out = NULL;
	*n = 0;
	*next_due = 0;
	memset(&c, 0, sizeof(c));
	c.now = now;
	c.max = max;
	if (max == 0 || (c.v = calloc(max, sizeof(*c.v))) == NULL)
		return max == 0 ? STORE_EINVAL : STORE_ENOMEM;
	rc = outbox_each(t, take_one, &c);
	if (rc != 0) {
		push_items_free(c.v, c.n);
		return rc;
	}
	if (c.n == 0) {
		free(c.v); /* nothing due: nothing for the caller to free */
		c.v = NULL;
	}
	*out = c.v;
	*n = c.n;
	*next_due = c.next_due;
	return 0;
}

/* meta "push.<result>" += 1 */
static int
counter_add(struct store_txn *t, enum push_result r)
{
	char	      name[40];
	unsigned char be[8];
	MDB_val	      v;
	uint64_t      n = 0;
	int	      rc;

	snprintf(name, sizeof(name), "push.%s", push_result_name(r));
	rc = db_getv(t, DBI_META, name, strlen(name), &v);
	if (rc == 0 && v.mv_size == 8)
		n = key_get_u64(v.mv_data);
	else if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	be64(be, n + 1);
	return db_putv(t, DBI_META, name, strlen(name), be, 8);
}

int
store_push_counters(struct store_txn *t, uint64_t *out)
{
	char	name[40];
	MDB_val v;
	int	r, rc;

	for (r = 0; r < PUSH__MAX; r++) {
		out[r] = 0;
		snprintf(name, sizeof(name), "push.%s",
		    push_result_name((enum push_result)r));
		rc = db_getv(t, DBI_META, name, strlen(name), &v);
		if (rc == 0 && v.mv_size == 8)
			out[r] = key_get_u64(v.mv_data);
		else if (rc != 0 && rc != STORE_ENOTFOUND)
			return rc;
	}
	return 0;
}

int
store_push_done(struct store_txn *t, const struct push_item *it,
    const struct push_outcome *o, uint64_t now)
{
	struct store_enrollment *e = NULL;
	struct store_push_state	 st;
	struct pushq		 q;
	unsigned char		 k[8];
	enum push_result	 r = o->result;
	int			 rc, keep = 0, stale = 0;

	if ((unsigned)r >= PUSH__MAX)
		return STORE_EINVAL;
	rc = pushq_get(t, it->eid, &q);
	if (rc == STORE_ENOTFOUND)
		memset(&q, 0, sizeof(q)); /* purged meanwhile */
	else if (rc != 0)
		return rc;
	/* A token replaced since it was taken: APNs's word on the old one
	 * says nothing of the new; push the new one. */
	if (r == PUSH_TOKEN_INVALID && it->enrollment_id != NULL &&
	    store_enrollment_get(t, it->enrollment_id, &e) == 0 &&
	    e->token_updated_at != it->token_updated_at)
		stale = 1;
	store_enrollment_free(e);
	rc = state_get_eid(t, it->eid, &st);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		goto out;
	if (r != PUSH_DROPPED || st.last_outcome != NULL) {
		free(st.last_outcome);
		free(st.last_reason);
		st.last_outcome = NULL;
		st.last_reason = NULL;
		if ((st.last_outcome = strdup(push_result_name(r))) == NULL ||
		    (o->reason != NULL &&
			(st.last_reason = strdup(o->reason)) == NULL)) {
			rc = STORE_ENOMEM;
			goto out;
		}
		st.last_outcome_at = now;
		st.last_status = (uint64_t)(o->status > 0 ? o->status : 0);
	}
	switch (r) {
	case PUSH_DELIVERED:
		st.last_push_at = now;
		st.delivered++;
		free(st.apns_id);
		st.apns_id = NULL;
		if (o->apns_id != NULL && *o->apns_id != '\0' &&
		    (st.apns_id = strdup(o->apns_id)) == NULL) {
			rc = STORE_ENOMEM;
			goto out;
		}
		break;
	case PUSH_TOKEN_INVALID:
		if (stale) {
			keep = 1;
			q.next_try = now;
			break;
		}
		st.token_invalid_at = now;
		free(st.token_invalid_reason);
		st.token_invalid_reason = NULL;
		if ((st.token_invalid_reason = strdup(
			 o->reason != NULL ? o->reason : "token-invalid")) ==
		    NULL) {
			rc = STORE_ENOMEM;
			goto out;
		}
		break;
	case PUSH_RETRY:
		q.attempts++;
		keep = 1;
		q.next_try = o->next_try;
		break;
	case PUSH_TOPIC_STOPPED:
		keep = 1;
		q.next_try = o->next_try;
		break;
	default:
		break;
	}
	if (q.queued_at == 0)
		keep = 0; /* the record went (purge): write no new one */
	else if (keep) {
		free(q.last_result);
		free(q.last_reason);
		q.last_result = q.last_reason = NULL;
		q.last_status = (uint64_t)(o->status > 0 ? o->status : 0);
		if ((q.last_result = strdup(push_result_name(r))) == NULL ||
		    (o->reason != NULL &&
			(q.last_reason = strdup(o->reason)) == NULL)) {
			rc = STORE_ENOMEM;
			goto out;
		}
		if ((rc = pushq_put(t, it->eid, &q)) != 0)
			goto out;
	} else {
		eid_key(k, it->eid);
		rc = db_delv(t, DBI_PUSHQ, k, 8);
		if (rc != 0 && rc != STORE_ENOTFOUND)
			goto out;
	}
	/* The state of an enrollment that still exists. */
	if (q.queued_at != 0 && (rc = state_put(t, it->eid, &st)) != 0)
		goto out;
	rc = counter_add(t, r);
out:
	pushq_free(&q);
	store_push_state_free(&st);
	return rc;
}

int
store_push_answered(struct store_txn *t, const char *id, uint64_t since,
    char **outcome, char **apns_id)
{
	struct store_push_state st;
	int			rc;

	*outcome = *apns_id = NULL;
	rc = store_push_state_get(t, id, &st);
	if (rc == STORE_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	rc = st.last_outcome != NULL && st.last_outcome_at >= since;
	if (rc) {
		*outcome = st.last_outcome;
		st.last_outcome = NULL;
		if (strcmp(*outcome, "delivered") == 0) {
			*apns_id = st.apns_id;
			st.apns_id = NULL;
		}
	}
	store_push_state_free(&st);
	return rc;
}

/* ---- views ---- */

static json_t *
jtime(uint64_t us)
{
	char buf[40];

	if (us == 0)
		return json_null();
	time_format(us, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
jstr(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

json_t *
store_push_json(struct store_txn *t, const struct store_enrollment *e)
{
	struct store_push_state st;
	struct pushq		q;
	uint64_t		eid;
	json_t		       *o, *pq = NULL;
	int			rc, inval;

	if (enroll_eid(t, e->id, &eid) != 0)
		return NULL;
	rc = state_get_eid(t, eid, &st);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return NULL;
	rc = pushq_get(t, eid, &q);
	if (rc != 0 && rc != STORE_ENOTFOUND) {
		store_push_state_free(&st);
		return NULL;
	}
	if (rc == 0)
		pq = json_pack("{s:o,s:o,s:I,s:o,s:o,s:o}", "queued_at",
		    jtime(q.queued_at), "reason", jstr(q.reason), "attempts",
		    (json_int_t)q.attempts, "next_try", jtime(q.next_try),
		    "last_result", jstr(q.last_result), "last_reason",
		    jstr(q.last_reason));
	inval = push_token_invalid(&st, e);
	o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:I,s:b,s:o,s:o,s:o}",
	    "last_push_at", jtime(st.last_push_at), "apns_id",
	    jstr(st.apns_id), "last_outcome", jstr(st.last_outcome),
	    "last_outcome_at", jtime(st.last_outcome_at), "last_reason",
	    jstr(st.last_reason), "delivered", (json_int_t)st.delivered,
	    "token_invalid", inval, "token_invalid_at",
	    inval ? jtime(st.token_invalid_at) : json_null(),
	    "token_invalid_reason",
	    inval ? jstr(st.token_invalid_reason) : json_null(), "pending",
	    pq != NULL ? pq : json_null());
	if (rc == 0)
		pushq_free(&q);
	store_push_state_free(&st);
	return o;
}

/* ---- the re-push pass ---- */

struct repush_ctx {
	struct store_txn *t;
	uint64_t	  now, interval;
	size_t		  max, queued;
	struct strset	  ids;
};

static int
has_entry(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	(void)t;
	(void)k;
	(void)v;
	*(int *)arg = 1;
	return 1;
}

static int
repush_one(const struct store_enrollment *e, void *arg)
{
	struct repush_ctx      *c = arg;
	struct store_push_state st;
	unsigned char		k[8];
	uint64_t		eid;
	int			rc, pending = 0;

	if (enroll_eid(c->t, e->id, &eid) != 0)
		return 0;
	be64(k, eid);
	if ((rc = db_prefix_each(c->t, DBI_QUEUE, k, 8, 0, has_entry,
		 &pending)) != 0)
		return rc;
	if (!pending)
		return 0;
	rc = state_get_eid(c->t, eid, &st);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	/* Pushed before, not seen since, and long enough ago. */
	if (st.last_push_at != 0 && e->last_seen < st.last_push_at &&
	    st.last_push_at + c->interval <= c->now &&
	    pushable(e, &st) == PUSHQ_QUEUED &&
	    strset_add(&c->ids, e->id, strlen(e->id)) != 0) {
		store_push_state_free(&st);
		return STORE_ENOMEM;
	}
	store_push_state_free(&st);
	return c->ids.n >= c->max ? 1 : 0;
}

int
store_push_repush(struct store_txn *t, uint64_t now, uint64_t interval_us,
    size_t max, size_t *queued)
{
	struct repush_ctx c;
	enum push_queued  q;
	size_t		  i;
	int		  rc;

	*queued = 0;
	memset(&c, 0, sizeof(c));
	c.t = t;
	c.now = now;
	c.interval = interval_us;
	c.max = max;
	rc = store_enrollment_iter(t, NULL, repush_one, &c);
	for (i = 0; rc == 0 && i < c.ids.n; i++)
		if ((rc = store_push_queue(t, c.ids.v[i], "repush", &q)) == 0 &&
		    q == PUSHQ_QUEUED)
			(*queued)++;
	strset_free(&c.ids);
	return rc;
}
