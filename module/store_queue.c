/*
 * store_queue.c - commands, per-enrollment queues and results.
 *
 * A queue is the range of DBI_QUEUE keys that start with the enrollment's
 * eid, ordered by (255 - priority) then the store-wide sequence: LMDB key
 * order is the delivery order, so finding the next command reads only the
 * head of the range, however long the queue or the history. Answered
 * commands leave the queue (only queued and NotNow'd ones stay); results
 * live apart, keyed by the store-wide sequence and then eid, so that every
 * report appends at the end of DBI_RESULT (one leaf page dirtied by a
 * whole group commit, leaves filled, not split in halves), with an index
 * DBI_RESULTIX (eid . sequence -> "") for an enrollment's results, newest
 * last. Stores of format 1 and 2 keyed them eid . sequence and are
 * rekeyed at their first writable open (results_upgrade).
 *
 * Where a queued command stands in its enrollment's queue (priority and
 * sequence: its DBI_QUEUE key) is in its DBI_CMDQ record, which every
 * report rewrites anyway; a store made before that kept it in DBI_QPOS
 * and is moved over at its first writable open (queue_pos_upgrade).
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

static const struct fdesc cmd_fields[] = {
	{ 1, F_STR, offsetof(struct store_command, uuid), 0, 1 },
	{ 2, F_STR, offsetof(struct store_command, request_type), 0, 1 },
	{ 3, F_BYTES, offsetof(struct store_command, raw),
	    offsetof(struct store_command, raw_len), 1 },
	{ 4, F_U64, offsetof(struct store_command, created_at), 0, 0 },
};

#define QF(tag, type, m) \
	{ tag, type, offsetof(struct store_queue_item, m), 0, 0 }
static const struct fdesc queue_fields[] = {
	{ 1, F_STR, offsetof(struct store_queue_item, uuid), 0, 1 },
	QF(2, F_INT, status),
	QF(3, F_U64, expires_at),
	QF(4, F_U64, enqueued_at),
	QF(5, F_U64, not_now_count),
	QF(6, F_U64, sent_count),
	QF(7, F_U64, updated_at),
	QF(8, F_INT, priority),
};

#define RF(tag, type, m) \
	{ tag, type, offsetof(struct store_result, m), 0, 0 }
static const struct fdesc result_fields[] = {
	{ 1, F_STR, offsetof(struct store_result, uuid), 0, 1 },
	RF(2, F_INT, status),
	RF(3, F_U64, received_at),
	{ 4, F_BYTES, offsetof(struct store_result, raw),
	    offsetof(struct store_result, raw_len), 1 },
	RF(5, F_INT, known),
	RF(6, F_INT, well_formed),
};

/*
 * Per (command, enrollment): where the command stands for it and, while
 * it is queued (status none or NotNow), its queue position: queue_seq
 * (never 0 for a queued command) and priority, the DBI_QUEUE key's
 * last nine bytes.
 */
struct cmdq {
	int      status;
	uint64_t updated_at;
	uint64_t result_seq;
	uint64_t queue_seq;
	int      priority;
};
static const struct fdesc cmdq_fields[] = {
	{ 1, F_INT, offsetof(struct cmdq, status), 0, 0 },
	{ 2, F_U64, offsetof(struct cmdq, updated_at), 0, 0 },
	{ 3, F_U64, offsetof(struct cmdq, result_seq), 0, 0 },
	{ 4, F_U64, offsetof(struct cmdq, queue_seq), 0, 0 },
	{ 5, F_INT, offsetof(struct cmdq, priority), 0, 0 },
};

/* See store_int.h. */
const struct fdesc *
store_queue_fdesc(enum rec_kind k, size_t *n)
{
	switch (k) {
	case REC_CMD:
		*n = NF(cmd_fields);
		return cmd_fields;
	case REC_QUEUE:
		*n = NF(queue_fields);
		return queue_fields;
	case REC_RESULT:
		*n = NF(result_fields);
		return result_fields;
	case REC_CMDQ:
		*n = NF(cmdq_fields);
		return cmdq_fields;
	default:
		return NULL;
	}
}

static int
uuid_ok(const char *uuid)
{
	size_t n;

	return uuid != NULL && (n = strlen(uuid)) > 0 && n <= 255;
}

/* Encode obj with fields as kind and put it under k. */
static int
put_rec(struct store_txn *t, enum store_dbi d, const struct key *k,
    enum rec_kind kind, const struct fdesc *f, size_t n, const void *obj)
{
	struct rec_w w;
	int          rc;

	rec_begin(&w, kind);
	rec_encode(&w, f, n, obj);
	rc = w.err ? STORE_ENOMEM : db_put(t, d, k, w.b.p, w.b.len, 0);
	buf_free(&w.b);
	return rc;
}

/* ---- commands ---- */

void
store_command_free(struct store_command *c)
{
	if (c == NULL)
		return;
	rec_free_fields(cmd_fields, NF(cmd_fields), c);
	free(c);
}

int
store_command_put(struct store_txn *t, const struct store_command *c)
{
	struct store_command tmp;
	struct key           k;
	MDB_val              v;
	int                  rc;

	if (!uuid_ok(c->uuid))
		return STORE_EINVAL;
	key_init(&k);
	key_raw(&k, c->uuid, strlen(c->uuid));
	if ((rc = db_get(t, DBI_CMD, &k, &v)) == 0)
		return STORE_EEXIST;
	if (rc != STORE_ENOTFOUND)
		return rc;
	tmp = *c;
	if (tmp.created_at == 0)
		tmp.created_at = t->now;
	return put_rec(t, DBI_CMD, &k, REC_CMD, cmd_fields, NF(cmd_fields),
	    &tmp);
}

int
store_command_get(struct store_txn *t, const char *uuid,
    struct store_command **out)
{
	struct store_command *c;
	struct key            k;
	MDB_val               v;
	int                   rc;

	*out = NULL;
	if (!uuid_ok(uuid))
		return STORE_EINVAL;
	key_init(&k);
	key_raw(&k, uuid, strlen(uuid));
	if ((rc = db_get(t, DBI_CMD, &k, &v)) != 0)
		return rc;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(&v, REC_CMD, cmd_fields, NF(cmd_fields), c,
	    NULL, NULL)) != 0 || c->uuid == NULL || c->raw == NULL) {
		store_command_free(c);
		return rc ? rc : STORE_ECORRUPT;
	}
	*out = c;
	return 0;
}

/* ---- per-command status ---- */

static void
cmdq_key(struct key *k, const char *uuid, uint64_t eid)
{
	key_init(k);
	key_str(k, uuid);
	key_u64(k, eid);
}

/* Write the record (with the position it holds). */
static int
cmdq_write(struct store_txn *t, const char *uuid, uint64_t eid,
    const struct cmdq *q)
{
	struct key k;

	cmdq_key(&k, uuid, eid);
	return put_rec(t, DBI_CMDQ, &k, REC_CMDQ, cmdq_fields,
	    NF(cmdq_fields), q);
}

/* The command is no longer queued for eid: status, no position. */
static int
cmdq_set(struct store_txn *t, const char *uuid, uint64_t eid, int status,
    uint64_t result_seq)
{
	struct cmdq q = { status, t->now, result_seq, 0, 0 };

	return cmdq_write(t, uuid, eid, &q);
}

/* The record of uuid for eid; STORE_ENOTFOUND when there is none. */
static int
cmdq_get(struct store_txn *t, const char *uuid, uint64_t eid, struct cmdq *q)
{
	struct key k;
	MDB_val    v;
	int        rc;

	memset(q, 0, sizeof(*q));
	cmdq_key(&k, uuid, eid);
	if ((rc = db_get(t, DBI_CMDQ, &k, &v)) != 0)
		return rc;
	return rec_decode(&v, REC_CMDQ, cmdq_fields, NF(cmdq_fields), q, NULL,
	    NULL);
}

/* ---- queues ---- */

void
store_queue_item_free(struct store_queue_item *q)
{
	if (q == NULL)
		return;
	rec_free_fields(queue_fields, NF(queue_fields), q);
	free(q->enrollment_id);
	free(q);
}

static void
queue_key(struct key *k, uint64_t eid, int priority, uint64_t seq)
{
	key_init(k);
	key_u64(k, eid);
	key_u8(k, 255u - (unsigned)priority);
	key_u64(k, seq);
}

static int
queue_decode(const MDB_val *v, struct store_queue_item **out)
{
	struct store_queue_item *q;
	int                      rc;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(v, REC_QUEUE, queue_fields, NF(queue_fields), q,
	    NULL, NULL)) != 0 || q->uuid == NULL || q->status < 0 ||
	    q->status >= CMD_STATUS__MAX) {
		store_queue_item_free(q);
		return rc ? rc : STORE_ECORRUPT;
	}
	*out = q;
	return 0;
}

int
store_queue_push(struct store_txn *t, const char *enrollment_id,
    const char *uuid, int priority, uint64_t expires_at)
{
	struct store_queue_item q;
	struct cmdq             cq;
	struct key              k;
	MDB_val                 v;
	uint64_t                eid, seq;
	int                     rc;

	if (!uuid_ok(uuid) || priority < 0 || priority > 255)
		return STORE_EINVAL;
	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc;
	key_init(&k);
	key_raw(&k, uuid, strlen(uuid));
	if ((rc = db_get(t, DBI_CMD, &k, &v)) != 0)
		return rc;
	if ((rc = cmdq_get(t, uuid, eid, &cq)) == 0 && cq.queue_seq != 0)
		return STORE_EEXIST;
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	if ((rc = store_seq_next(t, &seq)) != 0)
		return rc;
	memset(&q, 0, sizeof(q));
	q.uuid = (char *)(uintptr_t)uuid;
	q.priority = priority;
	q.expires_at = expires_at;
	q.enqueued_at = t->now;
	q.updated_at = t->now;
	queue_key(&k, eid, priority, seq);
	if ((rc = put_rec(t, DBI_QUEUE, &k, REC_QUEUE, queue_fields,
	    NF(queue_fields), &q)) != 0)
		return rc;
	memset(&cq, 0, sizeof(cq));
	cq.status = CMD_STATUS_NONE;
	cq.updated_at = t->now;
	cq.queue_seq = seq;
	cq.priority = priority;
	return cmdq_write(t, uuid, eid, &cq);
}

/* Remove the queue entry *cur stands on and close the cursor (the
 * position goes with the caller's next write of the command's DBI_CMDQ
 * record). */
static int
queue_remove(MDB_cursor **cur)
{
	int rc = mdb_cursor_del(*cur, 0);

	mdb_cursor_close(*cur);
	*cur = NULL;
	return rc == 0 ? 0 : store_rc(rc);
}

/*
 * Look up a queued command's entry: fills cq with its DBI_CMDQ record, qk
 * with its queue key, *out with the decoded item and *cur with a cursor
 * standing on the entry (the caller closes it, or queue_remove deletes
 * there without a second descent). STORE_ENOTFOUND if it is not queued;
 * on any error nothing is left to free.
 */
static int
queue_find(struct store_txn *t, uint64_t eid, const char *uuid,
    struct cmdq *cq, struct key *qk, struct store_queue_item **out,
    MDB_cursor **cur)
{
	MDB_val k, v;
	int     rc;

	*out = NULL;
	*cur = NULL;
	if ((rc = cmdq_get(t, uuid, eid, cq)) != 0)
		return rc;
	if (cq->queue_seq == 0)
		return STORE_ENOTFOUND;
	if (cq->priority < 0 || cq->priority > 255)
		return STORE_ECORRUPT;
	queue_key(qk, eid, cq->priority, cq->queue_seq);
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_QUEUE], cur)) != 0) {
		*cur = NULL;
		return store_rc(rc);
	}
	k.mv_data = qk->b;
	k.mv_size = qk->len;
	if ((rc = mdb_cursor_get(*cur, &k, &v, MDB_SET_KEY)) != 0)
		rc = rc == MDB_NOTFOUND ? STORE_ECORRUPT : store_rc(rc);
	else
		rc = queue_decode(&v, out);
	if (rc != 0) {
		mdb_cursor_close(*cur);
		*cur = NULL;
	}
	return rc;
}

int
store_queue_next(struct store_txn *t, const char *enrollment_id,
    int skip_not_now, struct store_command **out)
{
	uint64_t eid;
	int      rc;

	*out = NULL;
	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc;
	return store_queue_next_eid(t, eid, skip_not_now, out);
}

int
store_queue_next_eid(struct store_txn *t, uint64_t eid, int skip_not_now,
    struct store_command **out)
{
	struct store_queue_item *q = NULL;
	MDB_cursor              *c = NULL;
	MDB_val                  k, v;
	struct key               pk, qk;
	struct rec_w             w;
	int                      rc;

	*out = NULL;
	key_init(&pk);
	key_u64(&pk, eid);
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_QUEUE], &c)) != 0)
		return store_rc(rc);
	k.mv_data = pk.b;
	k.mv_size = pk.len;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 17 || memcmp(k.mv_data, pk.b, 8) != 0) {
			rc = MDB_NOTFOUND;
			break;
		}
		if ((rc = queue_decode(&v, &q)) != 0)
			goto out;
		if (q->expires_at != 0 && q->expires_at <= t->now) {
			/*
			 * Never sent once expired; recorded as expired. Only
			 * other sub-databases change before mdb_cursor_del,
			 * after which MDB_NEXT yields the following entry.
			 */
			if ((rc = cmdq_set(t, q->uuid, eid, CMD_STATUS_EXPIRED,
			    0)) != 0)
				goto out;
			store_queue_item_free(q);
			q = NULL;
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			continue;
		}
		if (skip_not_now && q->status == CMD_STATUS_NOT_NOW) {
			store_queue_item_free(q);
			q = NULL;
			continue;
		}
		break;
	}
	if (rc != 0) {
		rc = rc == MDB_NOTFOUND ? STORE_ENOTFOUND : store_rc(rc);
		goto out;
	}
	/* The entry rewritten where the cursor stands (MDB_CURRENT: no
	 * second descent), under a copy of its key: the key in the page
	 * moves when the record's size does. */
	key_init(&qk);
	key_raw(&qk, k.mv_data, k.mv_size);
	q->sent_count++;
	q->updated_at = t->now;
	rec_begin(&w, REC_QUEUE);
	rec_encode(&w, queue_fields, NF(queue_fields), q);
	k.mv_data = qk.b;
	k.mv_size = qk.len;
	v.mv_data = w.b.p;
	v.mv_size = w.b.len;
	rc = w.err ? STORE_ENOMEM : store_rc(mdb_cursor_put(c, &k, &v,
	    MDB_CURRENT));
	buf_free(&w.b);
	mdb_cursor_close(c);
	c = NULL;
	if (rc != 0)
		goto out;
	rc = store_command_get(t, q->uuid, out);
	if (rc == STORE_ENOTFOUND)
		rc = STORE_ECORRUPT; /* a queue entry without its command */
out:
	if (c != NULL)
		mdb_cursor_close(c);
	store_queue_item_free(q);
	return rc;
}

int
store_command_type(struct store_txn *t, const char *uuid, char **out)
{
	struct key           k;
	MDB_val              v;
	const unsigned char *p;
	size_t               n;
	int                  rc;

	*out = NULL;
	if (!uuid_ok(uuid))
		return STORE_EINVAL;
	key_init(&k);
	key_raw(&k, uuid, strlen(uuid));
	if ((rc = db_get(t, DBI_CMD, &k, &v)) != 0)
		return rc;
	/* cmd_fields: request_type */
	if ((rc = rec_field(&v, REC_CMD, 2, &p, &n)) == 1)
		return rec_dup_str(p, n, out);
	return rc == 0 ? STORE_ECORRUPT : rc;
}

int
store_result_put(struct store_txn *t, const char *enrollment_id,
    const char *uuid, enum cmd_status status, const void *raw, size_t len,
    int well_formed, int *known)
{
	uint64_t eid;
	int      rc;

	*known = 0;
	if (!uuid_ok(uuid))
		return STORE_EINVAL;
	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc;
	return store_result_put_eid(t, eid, uuid, status, raw, len,
	    well_formed, known);
}

/* The DBI_RESULT key of eid's result seq in the store's layout. */
static void
result_key(const struct store_txn *t, uint64_t eid, uint64_t seq,
    struct key *k)
{
	key_init(k);
	if (t->s->format >= STORE_FORMAT_RESULT_SEQ) {
		key_u64(k, seq);
		key_u64(k, eid);
	} else {
		key_u64(k, eid);
		key_u64(k, seq);
	}
}

/* Key seq . eid, and its index entry. The sequence is the store's
 * highest, so LMDB is told it appends (no search, and a full leaf is
 * left full); a key that is not the last (a store whose counter was set
 * back by hand) is put the usual way, never over another. (A store
 * restored from an older dump in this process, until it is opened for
 * writing again, keeps its own layout.) */
static int
result_write(struct store_txn *t, uint64_t eid, uint64_t seq,
    const struct store_result *r)
{
	int	     by_seq = t->s->format >= STORE_FORMAT_RESULT_SEQ;
	struct rec_w w;
	struct key   k;
	int          rc;

	result_key(t, eid, seq, &k);
	rec_begin(&w, REC_RESULT);
	rec_encode(&w, result_fields, NF(result_fields), r);
	if (w.err)
		rc = STORE_ENOMEM;
	else if (!by_seq || (rc = db_put(t, DBI_RESULT, &k, w.b.p, w.b.len,
	    MDB_APPEND)) == STORE_EEXIST)
		rc = db_put(t, DBI_RESULT, &k, w.b.p, w.b.len,
		    by_seq ? MDB_NOOVERWRITE : 0);
	buf_free(&w.b);
	if (rc != 0 || !by_seq)
		return rc;
	key_init(&k);
	key_u64(&k, eid);
	key_u64(&k, seq);
	return db_put(t, DBI_RESULTIX, &k, "", 0, 0);
}

int
store_result_put_eid(struct store_txn *t, uint64_t eid, const char *uuid,
    enum cmd_status status, const void *raw, size_t len, int well_formed,
    int *known)
{
	struct store_queue_item *q = NULL;
	struct store_result      r;
	struct cmdq              cq;
	struct key               qk;
	MDB_cursor              *cur;
	uint64_t                 seq;
	int                      rc;

	*known = 0;
	if (!uuid_ok(uuid))
		return STORE_EINVAL;
	if ((rc = store_seq_next(t, &seq)) != 0)
		return rc;
	rc = queue_find(t, eid, uuid, &cq, &qk, &q, &cur);
	if (rc == 0) {
		*known = 1;
		if (status == CMD_STATUS_NOT_NOW) {
			mdb_cursor_close(cur);
			q->status = CMD_STATUS_NOT_NOW;
			q->not_now_count++;
			q->updated_at = t->now;
			rc = put_rec(t, DBI_QUEUE, &qk, REC_QUEUE,
			    queue_fields, NF(queue_fields), q);
		} else {
			rc = queue_remove(&cur);
			cq.queue_seq = 0; /* answered: no longer queued */
			cq.priority = 0;
		}
		cq.status = (int)status;
		cq.updated_at = t->now;
		cq.result_seq = seq;
		if (rc == 0)
			rc = cmdq_write(t, uuid, eid, &cq);
		store_queue_item_free(q);
		if (rc != 0)
			return rc;
	} else if (rc != STORE_ENOTFOUND)
		return rc;
	memset(&r, 0, sizeof(r));
	r.uuid = (char *)(uintptr_t)uuid;
	r.status = status;
	r.received_at = t->now;
	r.raw = (unsigned char *)(uintptr_t)raw;
	r.raw_len = len;
	r.known = *known;
	r.well_formed = well_formed;
	return result_write(t, eid, seq, &r);
}

int
store_queue_clear(struct store_txn *t, const char *enrollment_id,
    enum cmd_status why, size_t *count)
{
	struct store_queue_item *q;
	MDB_cursor              *c;
	MDB_val                  k, v;
	struct key               pk;
	uint64_t                 eid;
	int                      rc;

	*count = 0;
	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	key_init(&pk);
	key_u64(&pk, eid);
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_QUEUE], &c)) != 0)
		return store_rc(rc);
	for (;;) {
		k.mv_data = pk.b;
		k.mv_size = pk.len;
		if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)) != 0)
			break;
		if (k.mv_size != 17 || memcmp(k.mv_data, pk.b, 8) != 0) {
			rc = MDB_NOTFOUND;
			break;
		}
		if ((rc = queue_decode(&v, &q)) != 0)
			goto out;
		rc = cmdq_set(t, q->uuid, eid, (int)why, 0);
		store_queue_item_free(q);
		if (rc != 0)
			goto out;
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		(*count)++;
	}
	rc = rc == MDB_NOTFOUND ? 0 : store_rc(rc);
out:
	mdb_cursor_close(c);
	return rc;
}

int
store_queue_cancel(struct store_txn *t, const char *enrollment_id,
    const char *uuid)
{
	struct store_queue_item *q;
	struct cmdq              cq;
	struct key               qk;
	MDB_cursor              *cur;
	uint64_t                 eid;
	int                      rc;

	if (!uuid_ok(uuid))
		return STORE_EINVAL;
	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0 ||
	    (rc = queue_find(t, eid, uuid, &cq, &qk, &q, &cur)) != 0)
		return rc;
	store_queue_item_free(q);
	if ((rc = queue_remove(&cur)) != 0)
		return rc;
	return cmdq_set(t, uuid, eid, CMD_STATUS_CANCELLED, 0);
}

struct queue_ctx {
	const char    *enrollment_id;
	store_queue_cb fn;
	void          *arg;
};

static int
queue_each(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct queue_ctx        *c = arg;
	struct store_queue_item *q;
	int                      rc;

	(void)t;
	if ((rc = queue_decode(v, &q)) != 0)
		return rc;
	q->seq = key_get_u64((unsigned char *)k->mv_data + 9);
	if ((q->enrollment_id = strdup(c->enrollment_id)) == NULL)
		rc = STORE_ENOMEM;
	else
		rc = c->fn(q, c->arg);
	store_queue_item_free(q);
	return rc;
}

int
store_queue_iter(struct store_txn *t, const char *enrollment_id,
    store_queue_cb fn, void *arg)
{
	struct queue_ctx c = { enrollment_id, fn, arg };
	struct key       pk;
	uint64_t         eid;
	int              rc;

	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc;
	key_init(&pk);
	key_u64(&pk, eid);
	return db_prefix_each(t, DBI_QUEUE, pk.b, pk.len, 17, queue_each, &c);
}

/* ---- results ---- */

void
store_result_free(struct store_result *r)
{
	if (r == NULL)
		return;
	rec_free_fields(result_fields, NF(result_fields), r);
	free(r->enrollment_id);
	free(r);
}

/* The result of entry (k, v) (its sequence from the key, the layout's
 * position) handed to fn; 1 from fn stops the walk. */
static int
result_hand(const MDB_val *k, const MDB_val *v, size_t seq_off,
    const char *enrollment_id, store_result_cb fn, void *arg)
{
	struct store_result *r;
	int                  rc;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return STORE_ENOMEM;
	r->seq = key_get_u64((const unsigned char *)k->mv_data + seq_off);
	if ((rc = rec_decode(v, REC_RESULT, result_fields,
	    NF(result_fields), r, NULL, NULL)) == 0 &&
	    (r->enrollment_id = strdup(enrollment_id)) == NULL)
		rc = STORE_ENOMEM;
	if (rc == 0)
		rc = fn(r, arg);
	store_result_free(r);
	return rc;
}

/*
 * The result an index entry (eid, seq) names: its key in *rk and *rk_v,
 * its value in *rv. STORE_ENOTFOUND when it has none, which is check's
 * to report: the walks skip it.
 */
static int
result_by_ix(struct store_txn *t, uint64_t eid, uint64_t seq,
    struct key *rk, MDB_val *rk_v, MDB_val *rv)
{
	result_key(t, eid, seq, rk);
	rk_v->mv_size = rk->len;
	rk_v->mv_data = rk->b;
	return db_get(t, DBI_RESULT, rk, rv);
}

/*
 * Newest first, from the entry before before_seq (0: the newest), in a
 * range of eid . seq keys: DBI_RESULTIX's (whose entries name the
 * DBI_RESULT key) or, in a store of format 1 or 2 opened read-only,
 * DBI_RESULT's own.
 */
int
store_result_iter(struct store_txn *t, const char *enrollment_id,
    uint64_t before_seq, store_result_cb fn, void *arg)
{
	enum store_dbi d = t->s->format >= STORE_FORMAT_RESULT_SEQ ?
	    DBI_RESULTIX : DBI_RESULT;
	MDB_cursor    *c;
	MDB_val        k, v, rk_v, rv;
	struct key     pk, rk;
	uint64_t       eid, seq;
	int            rc;

	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc;
	key_init(&pk);
	key_u64(&pk, eid);
	key_u64(&pk, before_seq ? before_seq : UINT64_MAX);
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[d], &c)) != 0)
		return store_rc(rc);
	k.mv_data = pk.b;
	k.mv_size = pk.len;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	else if (rc == 0)
		rc = mdb_cursor_get(c, &k, &v, MDB_PREV);
	for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_PREV)) {
		if (k.mv_size != 16 || memcmp(k.mv_data, pk.b, 8) != 0)
			break;
		seq = key_get_u64((unsigned char *)k.mv_data + 8);
		if (seq >= (before_seq ? before_seq : UINT64_MAX))
			continue;
		if (d == DBI_RESULT) {
			rc = result_hand(&k, &v, 8, enrollment_id, fn, arg);
		} else if ((rc = result_by_ix(t, eid, seq, &rk, &rk_v,
		    &rv)) == 0) {
			rc = result_hand(&rk_v, &rv, 0, enrollment_id, fn,
			    arg);
		} else if (rc == STORE_ENOTFOUND) {
			rc = 0;
		}
		if (rc != 0)
			break;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND || rc == 1)
		return 0;
	return rc < 0 ? rc : store_rc(rc);
}

struct result_each {
	db_each_fn fn;
	void	  *arg;
};

/* One DBI_RESULTIX entry: its result, when there is one. */
static int
result_each_ix(struct store_txn *t, const MDB_val *k, const MDB_val *v,
    void *arg)
{
	struct result_each *re = arg;
	struct key	    rk;
	MDB_val		    rk_v, rv;
	int		    rc;

	(void)v;
	if ((rc = result_by_ix(t, key_get_u64(k->mv_data),
	    key_get_u64((const unsigned char *)k->mv_data + 8), &rk, &rk_v,
	    &rv)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	return re->fn(t, &rk_v, &rv, re->arg);
}

/* See store_int.h. */
int
result_each_of(struct store_txn *t, uint64_t eid, db_each_fn fn, void *arg)
{
	struct result_each re = {fn, arg};
	struct key	   pk;

	key_init(&pk);
	key_u64(&pk, eid);
	if (t->s->format < STORE_FORMAT_RESULT_SEQ)
		return db_prefix_each(t, DBI_RESULT, pk.b, pk.len, 16, fn, arg);
	return db_prefix_each(t, DBI_RESULTIX, pk.b, pk.len, 16,
	    result_each_ix, &re);
}

/* ---- per-command views and retention ---- */

struct target_ctx {
	size_t          plen;
	store_target_cb fn;
	void           *arg;
};

static int
target_each(struct store_txn *t, const MDB_val *k, const MDB_val *v,
    void *arg)
{
	struct target_ctx  *c = arg;
	struct store_target tg;
	struct cmdq         q;
	int                 rc;

	memset(&q, 0, sizeof(q));
	memset(&tg, 0, sizeof(tg));
	if ((rc = rec_decode(v, REC_CMDQ, cmdq_fields, NF(cmdq_fields), &q,
	    NULL, NULL)) != 0)
		return rc;
	rc = enroll_id_of(t, key_get_u64((unsigned char *)k->mv_data +
	    c->plen), &tg.enrollment_id);
	if (rc == STORE_ENOTFOUND)
		return 0; /* enrollment purged */
	if (rc != 0)
		return rc;
	tg.status = (enum cmd_status)q.status;
	tg.updated_at = q.updated_at;
	tg.result_seq = q.result_seq;
	rc = c->fn(&tg, c->arg);
	free(tg.enrollment_id);
	return rc;
}

int
store_command_targets(struct store_txn *t, const char *uuid,
    store_target_cb fn, void *arg)
{
	struct target_ctx c;
	struct key        pk;

	if (!uuid_ok(uuid))
		return STORE_EINVAL;
	key_init(&pk);
	key_str(&pk, uuid);
	c.plen = pk.len;
	c.fn = fn;
	c.arg = arg;
	return db_prefix_each(t, DBI_CMDQ, pk.b, pk.len, pk.len + 8,
	    target_each, &c);
}

int
store_result_get(struct store_txn *t, const char *enrollment_id,
    uint64_t seq, struct store_result **out)
{
	struct store_result *r;
	struct key           k;
	MDB_val              v;
	uint64_t             eid;
	int                  rc;

	*out = NULL;
	if ((rc = enroll_eid(t, enrollment_id, &eid)) != 0)
		return rc;
	result_key(t, eid, seq, &k);
	if ((rc = db_get(t, DBI_RESULT, &k, &v)) != 0)
		return rc;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return STORE_ENOMEM;
	r->seq = seq;
	if ((rc = rec_decode(&v, REC_RESULT, result_fields, NF(result_fields),
	    r, NULL, NULL)) == 0 &&
	    (r->enrollment_id = strdup(enrollment_id)) == NULL)
		rc = STORE_ENOMEM;
	if (rc != 0) {
		store_result_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

/* Is the command still queued (or NotNow'd) for any enrollment? */
static int
in_use_each(struct store_txn *t, const MDB_val *k, const MDB_val *v,
    void *arg)
{
	struct cmdq q;
	int         rc;

	(void)t;
	(void)k;
	memset(&q, 0, sizeof(q));
	if ((rc = rec_decode(v, REC_CMDQ, cmdq_fields, NF(cmdq_fields), &q,
	    NULL, NULL)) != 0)
		return rc;
	if (q.status == CMD_STATUS_NONE || q.status == CMD_STATUS_NOT_NOW) {
		*(int *)arg = 1;
		return 1;
	}
	return 0;
}

static int
command_in_use(struct store_txn *t, const char *uuid, int *in_use)
{
	struct key pk;

	*in_use = 0;
	key_init(&pk);
	key_str(&pk, uuid);
	return db_prefix_each(t, DBI_CMDQ, pk.b, pk.len, pk.len + 8,
	    in_use_each, in_use);
}

/* Delete every cmdq entry of a command. */
static int
command_targets_delete(struct store_txn *t, const char *uuid, uint64_t *n)
{
	MDB_cursor *c;
	MDB_val     k, v;
	struct key  pk;
	int         rc;

	key_init(&pk);
	key_str(&pk, uuid);
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_CMDQ], &c)) != 0)
		return store_rc(rc);
	for (;;) {
		k.mv_data = pk.b;
		k.mv_size = pk.len;
		if ((rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)) != 0)
			break;
		if (k.mv_size != pk.len + 8 ||
		    memcmp(k.mv_data, pk.b, pk.len) != 0) {
			rc = MDB_NOTFOUND;
			break;
		}
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
		(*n)++;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* See store_int.h. */
void
result_key_swap(const void *k, unsigned char out[16])
{
	memcpy(out, (const unsigned char *)k + 8, 8);
	memcpy(out + 8, k, 8);
}

/* See store_int.h. */
int
result_key_eid(const struct store_txn *t, const MDB_val *k, uint64_t *eid)
{
	if (k->mv_size != 16)
		return -1;
	*eid = key_get_u64((const unsigned char *)k->mv_data +
	    (t->s->format >= STORE_FORMAT_RESULT_SEQ ? 8 : 0));
	return 0;
}

/* Drop the DBI_RESULTIX entry of DBI_RESULT key k (seq . eid; none in
 * an older layout). */
static int
result_unindex(struct store_txn *t, const MDB_val *k)
{
	unsigned char ik[16];
	int           rc;

	if (k->mv_size != 16 || t->s->format < STORE_FORMAT_RESULT_SEQ)
		return 0;
	result_key_swap(k->mv_data, ik);
	rc = db_delv(t, DBI_RESULTIX, ik, 16);
	return rc == STORE_ENOTFOUND ? 0 : rc;
}

int
store_prune(struct store_txn *t, uint64_t before, uint64_t limit,
    struct store_prune_count *removed)
{
	MDB_cursor *c;
	MDB_val     k, v;
	uint64_t    done = 0;
	int         rc, in_use;

	memset(removed, 0, sizeof(*removed));
	/* Results: a full scan (retention runs rarely, in batches). */
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_RESULT], &c)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;) {
		struct store_result r;

		memset(&r, 0, sizeof(r));
		if (rec_decode(&v, REC_RESULT, result_fields,
		    NF(result_fields), &r, NULL, NULL) == 0 &&
		    r.received_at < before) {
			rec_free_fields(result_fields, NF(result_fields), &r);
			if ((rc = result_unindex(t, &k)) != 0 ||
			    (rc = mdb_cursor_del(c, 0)) != 0)
				break;
			removed->results++;
			if (limit && ++done >= limit)
				break;
			/* After a delete, MDB_NEXT yields the next entry. */
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		rec_free_fields(result_fields, NF(result_fields), &r);
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return store_rc(rc);
	/* Commands no queue holds any more. */
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_CMD], &c)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;) {
		struct store_command cmd;
		char                *uuid = NULL;

		memset(&cmd, 0, sizeof(cmd));
		if (limit && done >= limit)
			break;
		if (rec_decode(&v, REC_CMD, cmd_fields, NF(cmd_fields), &cmd,
		    NULL, NULL) != 0 || cmd.uuid == NULL ||
		    cmd.created_at >= before) {
			rec_free_fields(cmd_fields, NF(cmd_fields), &cmd);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		uuid = cmd.uuid;
		cmd.uuid = NULL;
		rec_free_fields(cmd_fields, NF(cmd_fields), &cmd);
		rc = command_in_use(t, uuid, &in_use);
		if (rc == 0 && !in_use) {
			rc = command_targets_delete(t, uuid, &removed->targets);
			if (rc == 0 && (rc = mdb_cursor_del(c, 0)) == 0) {
				removed->commands++;
				done++;
				rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
				free(uuid);
				continue;
			}
		}
		free(uuid);
		if (rc != 0)
			break;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : rc < 0 ? rc : store_rc(rc);
}

/* ---- the results of an older store ---- */

/*
 * Rekey every result eid . seq -> seq . eid and index it, in t. Old and
 * new keys have the same shape, so they never share the sub-database:
 * every entry is copied to DBI_RESULTIX under its old key and
 * DBI_RESULT emptied; each is written back under its new key (a key of
 * another length, check's to report, as it was), DBI_RESULTIX emptied;
 * then the index is made from the rekeyed results. *n: the results
 * rekeyed.
 */
static int
results_upgrade_txn(struct store_txn *t, uint64_t *n)
{
	MDB_dbi       res = t->s->dbi[DBI_RESULT];
	MDB_dbi       ix = t->s->dbi[DBI_RESULTIX];
	MDB_cursor   *c;
	MDB_val       k, v, nk, nv;
	unsigned char sw[16];
	int           rc, pass;

	*n = 0;
	for (pass = 0; pass < 3; pass++) {
		if ((rc = mdb_cursor_open(t->txn, pass == 1 ? ix : res,
		    &c)) != 0)
			return store_rc(rc);
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			nv = v;
			if (pass == 0) {
				if ((rc = mdb_put(t->txn, ix, &k, &v, 0)) != 0)
					break;
				continue;
			}
			if (pass == 2 && k.mv_size != 16)
				continue;
			nk = k;
			if (k.mv_size == 16) {
				result_key_swap(k.mv_data, sw);
				nk.mv_data = sw;
			}
			if (pass == 2)
				nv.mv_size = 0;
			else if (k.mv_size == 16)
				(*n)++;
			if ((rc = mdb_put(t->txn, pass == 1 ? res : ix, &nk,
			    &nv, 0)) != 0)
				break;
		}
		mdb_cursor_close(c);
		if (rc != MDB_NOTFOUND)
			return store_rc(rc);
		if (pass < 2 && (rc = mdb_drop(t->txn, pass == 0 ? res : ix,
		    0)) != 0)
			return store_rc(rc);
	}
	return 0;
}

/* See store_int.h. Like queue_pos_upgrade: a transaction of its own at
 * store_open, before any writer; the map grows when it must. */
int
results_upgrade(struct store *s)
{
	struct store_txn t = {.s = s};
	uint64_t         n;
	int              rc;

	for (;;) {
		if ((rc = mdb_txn_begin(s->env, NULL, 0, &t.txn)) != 0)
			return store_rc(rc);
		t.now = time_now_us();
		if ((rc = results_upgrade_txn(&t, &n)) == 0 &&
		    (rc = store_schema_put(&t)) == 0) {
			rc = store_rc(mdb_txn_commit(t.txn));
			if (rc == 0)
				break;
		} else
			mdb_txn_abort(t.txn);
		if (rc != STORE_EFULL || store_grow(s) != 0)
			return rc;
	}
	if (n > 0)
		log_info("store: rekeyed %llu results by sequence (store "
		    "format %d)", (unsigned long long)n,
		    STORE_FORMAT_RESULT_SEQ);
	return 0;
}

/* ---- the queue positions of an older store ---- */

/* Move one DBI_QPOS entry (eid|uuid -> 255 - priority, sequence) into
 * its DBI_CMDQ record; a malformed one is dropped (check then reports
 * the queue entry without a position, and --repair restores it). */
static int
qpos_move(struct store_txn *t, const MDB_val *k, const MDB_val *v)
{
	const unsigned char *p = v->mv_data;
	char                 uuid[256];
	uint64_t             eid;
	size_t               n;

	if (k->mv_size <= 8 || (n = k->mv_size - 8) > 255 || v->mv_size != 9)
		return 0;
	memcpy(uuid, (const unsigned char *)k->mv_data + 8, n);
	uuid[n] = '\0';
	if (strlen(uuid) != n || key_get_u64(p + 1) == 0)
		return 0;
	eid = key_get_u64(k->mv_data);
	return queue_pos_set(t, uuid, eid, p);
}

/* Move every DBI_QPOS entry in t, then empty it; *moved: how many
 * entries it went through. */
static int
queue_pos_upgrade_txn(struct store_txn *t, uint64_t *moved)
{
	MDB_cursor *c;
	MDB_val     k, v;
	int         rc;

	*moved = 0;
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_QPOS], &c)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		int r;

		if ((r = qpos_move(t, &k, &v)) != 0) {
			mdb_cursor_close(c);
			return r;
		}
		(*moved)++;
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		return store_rc(rc);
	return (rc = mdb_drop(t->txn, t->s->dbi[DBI_QPOS], 0)) != 0 ?
	    store_rc(rc) : 0;
}

/* See store_int.h. Like enroll_count_ensure: a transaction of its own at
 * store_open, before any writer; nothing to do (the usual open) costs a
 * read-only look at an empty sub-database. */
int
queue_pos_upgrade(struct store *s)
{
	struct store_txn t = {.s = s};
	MDB_stat         st;
	uint64_t         moved;
	int              rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t.txn)) != 0)
		return store_rc(rc);
	rc = mdb_stat(t.txn, s->dbi[DBI_QPOS], &st);
	mdb_txn_abort(t.txn);
	if (rc != 0)
		return store_rc(rc);
	if (st.ms_entries == 0)
		return 0;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &t.txn)) != 0)
		return store_rc(rc);
	t.now = time_now_us();
	if ((rc = queue_pos_upgrade_txn(&t, &moved)) != 0) {
		mdb_txn_abort(t.txn);
		return rc;
	}
	if ((rc = mdb_txn_commit(t.txn)) != 0)
		return store_rc(rc);
	log_info("store: moved %llu queue positions into their command "
	    "records (the format of this picomdm)", (unsigned long long)moved);
	return 0;
}

/* See store_int.h. */
int
queue_pos_get(struct store_txn *t, const char *uuid, uint64_t eid,
    unsigned char pos[9])
{
	struct cmdq cq;
	int         rc;

	if ((rc = cmdq_get(t, uuid, eid, &cq)) == STORE_ENOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (cq.queue_seq == 0 || cq.priority < 0 || cq.priority > 255)
		return 0;
	pos[0] = (unsigned char)(255 - cq.priority);
	be64(pos + 1, cq.queue_seq);
	return 1;
}

/* See store_int.h. */
int
queue_pos_set(struct store_txn *t, const char *uuid, uint64_t eid,
    const unsigned char *pos)
{
	struct cmdq cq;
	int         rc;

	if ((rc = cmdq_get(t, uuid, eid, &cq)) == STORE_ENOTFOUND) {
		cq.status = CMD_STATUS_NONE;
		cq.updated_at = t->now;
	} else if (rc != 0)
		return rc;
	if (pos != NULL) {
		cq.queue_seq = key_get_u64(pos + 1);
		cq.priority = 255 - (int)pos[0];
	} else {
		cq.queue_seq = 0;
		cq.priority = 0;
	}
	return cmdq_write(t, uuid, eid, &cq);
}
