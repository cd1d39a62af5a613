/*
 * store_event.c - the webhook outbox (picomdm/store_event.h): one record
 * per event and URL, keyed by the store-wide sequence (big-endian, so
 * key order is the order events were stored in). Its registry entry is
 * in store_kinds.c: owned by the enrollment its field 1 names (purge),
 * checked by store_check.c. Counters live in meta: webhook_queued,
 * webhook_delivered, webhook_failed, webhook_dropped.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/store_event.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

#define EF(tag, type, m) { tag, type, offsetof(struct store_event, m), 0, 0 }
static const struct fdesc event_fields[] = {
	{ TAG_EVENT_ENROLL, F_STR, offsetof(struct store_event,
	    enrollment_id), 0, 1 },
	{ 2, F_STR, offsetof(struct store_event, topic), 0, 1 },
	EF(3, F_U64, created_at),
	{ 4, F_BYTES, offsetof(struct store_event, raw),
	    offsetof(struct store_event, raw_len), 0 },
	EF(5, F_STR, command_uuid),
	EF(6, F_STR, status),
	EF(7, F_STR, udid),
	EF(8, F_STR, msg_enrollment_id),
	EF(9, F_STR, url_params),
	EF(10, F_U64, token_update_tally),
	EF(11, F_U64, attempts),
	EF(12, F_U64, next_try),
	EF(13, F_STR, last_error),
	{ 14, F_STR, offsetof(struct store_event, url), 0, 1 },
	EF(15, F_STR, event_id),
};

/* What a scan decodes: the order, owner and retry state, not the body. */
static const struct fdesc scan_fields[] = {
	{ TAG_EVENT_ENROLL, F_STR, offsetof(struct store_event,
	    enrollment_id), 0, 1 },
	EF(11, F_U64, attempts),
	EF(12, F_U64, next_try),
	{ 14, F_STR, offsetof(struct store_event, url), 0, 1 },
};

/* See store_int.h. */
const struct fdesc *
store_event_fdesc(enum rec_kind k, size_t *n)
{
	if (k != REC_EVENT)
		return NULL;
	*n = NF(event_fields);
	return event_fields;
}

/* Add delta to the meta counter name. */
static int
meta_add(struct store_txn *t, const char *name, uint64_t delta)
{
	MDB_val	      v;
	unsigned char b[8];
	uint64_t      n = 0;
	int	      rc;

	rc = db_getv(t, DBI_META, name, strlen(name), &v);
	if (rc == 0 && v.mv_size == 8)
		n = key_get_u64(v.mv_data);
	else if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	be64(b, n + delta);
	return db_putv(t, DBI_META, name, strlen(name), b, 8);
}

static uint64_t
meta_val(struct store_txn *t, const char *name)
{
	MDB_val v;

	if (db_getv(t, DBI_META, name, strlen(name), &v) == 0 &&
	    v.mv_size == 8)
		return key_get_u64(v.mv_data);
	return 0;
}

static int
event_write(struct store_txn *t, uint64_t seq, const struct store_event *ev)
{
	unsigned char k[8];

	be64(k, seq);
	return rec_putv(t, DBI_EVENT, k, 8, REC_EVENT, event_fields,
	    NF(event_fields), ev);
}

/* See store_event.h. */
int
store_event_count(struct store_txn *t, uint64_t *n)
{
	MDB_stat st;
	int	 rc;

	if ((rc = mdb_stat(t->txn, t->s->dbi[DBI_EVENT], &st)) != 0)
		return store_rc(rc);
	*n = st.ms_entries;
	return 0;
}

/* See store_event.h. */
int
store_event_put(struct store_txn *t, const struct store_event *ev,
    uint64_t max, uint64_t *dropped)
{
	struct store_event e = *ev;
	MDB_cursor	  *c;
	MDB_val		   k, v;
	uint64_t	   n = 0, seq, gone = 0;
	int		   rc;

	if (dropped != NULL)
		*dropped = 0;
	if (ev->enrollment_id == NULL || ev->topic == NULL || ev->url == NULL)
		return STORE_EINVAL;
	if ((rc = store_event_count(t, &n)) != 0)
		return rc;
	if (max > 0 && n >= max) {
		/* Full: the oldest go, counted and said. */
		if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_EVENT], &c)) !=
		    0)
			return store_rc(rc);
		while (n >= max &&
		    (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0) {
			if ((rc = mdb_cursor_del(c, 0)) != 0)
				break;
			n--;
			gone++;
		}
		mdb_cursor_close(c);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return store_rc(rc);
		if ((rc = meta_add(t, "webhook_dropped", gone)) != 0)
			return rc;
		log_warn("webhook: the outbox is full (webhook_max_events "
		    "%llu): dropped the %llu oldest event(s) undelivered",
		    (unsigned long long)max, (unsigned long long)gone);
		if (dropped != NULL)
			*dropped = gone;
	}
	e.attempts = 0;
	e.next_try = 0;
	e.last_error = NULL;
	if (e.created_at == 0)
		e.created_at = store_txn_now(t);
	if ((rc = store_seq_next(t, &seq)) != 0 ||
	    (rc = event_write(t, seq, &e)) != 0)
		return rc;
	return meta_add(t, "webhook_queued", 1);
}

/* See store_event.h. */
int
store_event_scan(
    struct store_txn *t, uint64_t after, store_event_fn fn, void *arg)
{
	struct store_event ev;
	MDB_cursor	  *c;
	MDB_val		   k, v;
	unsigned char	   kb[8];
	int		   rc, r;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_EVENT], &c)) != 0)
		return store_rc(rc);
	be64(kb, after + 1);
	k.mv_data = kb;
	k.mv_size = 8;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8)
			continue; /* check reports it */
		memset(&ev, 0, sizeof(ev));
		if (rec_decode(&v, REC_EVENT, scan_fields, NF(scan_fields),
		    &ev, NULL, NULL) != 0) {
			rec_free_fields(scan_fields, NF(scan_fields), &ev);
			continue; /* undecodable: check reports it */
		}
		ev.seq = key_get_u64(k.mv_data);
		r = fn(&ev, arg);
		rec_free_fields(scan_fields, NF(scan_fields), &ev);
		if (r != 0) {
			mdb_cursor_close(c);
			return r == 1 ? 0 : r;
		}
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* See store_event.h. */
int
store_event_get(struct store_txn *t, uint64_t seq, struct store_event **out)
{
	struct store_event *e;
	unsigned char	    k[8];
	MDB_val		    v;
	int		    rc;

	*out = NULL;
	be64(k, seq);
	if ((rc = db_getv(t, DBI_EVENT, k, 8, &v)) != 0)
		return rc;
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(&v, REC_EVENT, event_fields, NF(event_fields), e,
	    NULL, NULL)) != 0) {
		store_event_free(e);
		return rc;
	}
	e->seq = seq;
	*out = e;
	return 0;
}

void
store_event_free(struct store_event *e)
{
	if (e == NULL)
		return;
	rec_free_fields(event_fields, NF(event_fields), e);
	free(e);
}

/* See store_event.h. */
int
store_event_done(struct store_txn *t, uint64_t seq, int delivered,
    uint64_t next_try, const char *error)
{
	struct store_event *e;
	unsigned char	    k[8];
	char		   *olderr;
	int		    rc;

	if (delivered) {
		be64(k, seq);
		rc = db_delv(t, DBI_EVENT, k, 8);
		if (rc == STORE_ENOTFOUND)
			rc = 0;
		return rc != 0 ? rc : meta_add(t, "webhook_delivered", 1);
	}
	if ((rc = meta_add(t, "webhook_failed", 1)) != 0)
		return rc;
	if ((rc = store_event_get(t, seq, &e)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	e->attempts++;
	e->next_try = next_try;
	olderr = e->last_error;
	e->last_error = (char *)(uintptr_t)error;
	rc = event_write(t, seq, e);
	e->last_error = olderr;
	store_event_free(e);
	return rc;
}

/* See store_event.h. */
int
store_event_counts(struct store_txn *t, struct store_event_counts *out)
{
	out->queued = meta_val(t, "webhook_queued");
	out->delivered = meta_val(t, "webhook_delivered");
	out->failed = meta_val(t, "webhook_failed");
	out->dropped = meta_val(t, "webhook_dropped");
	return 0;
}
