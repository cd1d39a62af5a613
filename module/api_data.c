/*
 * api_data.c - the operator API's views of what the store keeps about
 * devices, and the way commands go in:
 *
 *	PUT/POST /api/v1/enqueue/{id[,id...]}   raw plist or JSON (command.h)
 *	GET    /api/v1/enrollments[/{id}]
 *	GET    /api/v1/queue/{id}, DELETE /api/v1/queue/{id}[/{uuid}]
 *	GET    /api/v1/commands/{uuid}
 *	GET    /api/v1/results/{id}[/{seq}]
 *
 * Routed by api.c; the shared helpers are in api_int.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "extern.h"
#include "picomdm/command.h"
#include "picomdm/enroll.h"
#include "picomdm/message.h"
#include "picomdm/metrics.h"
#include "picomdm/plist.h"
#include "picomdm/push.h"
#include "picomdm/pushcert.h"
#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "picomdm/store_vpp.h"
#include "picomdm/util.h"

#include "api_int.h"

#define PUSH_WAIT_MAX_MS 10000

struct wait_op {
	char *const *ids;
	const int   *push;
	size_t	     n;
	uint64_t     since;
	char	   **outcome, **apns_id;
	size_t	     left;
};

static int
wait_op_run(struct store_txn *t, void *arg)
{
	struct wait_op *w = arg;
	size_t		i;
	int		rc;

	w->left = 0;
	for (i = 0; i < w->n; i++) {
		if (w->outcome[i] != NULL || (w->push[i] != PUSHQ_QUEUED &&
		    w->push[i] != PUSHQ_PENDING))
			continue;
		rc = store_push_answered(t, w->ids[i], w->since, &w->outcome[i],
		    &w->apns_id[i]);
		if (rc < 0)
			return rc;
		w->left += rc == 0;
	}
	return 0;
}

/*
 * push_wait=MS: wait up to MS for picomdm-notify's outcome of the pushes
 * just queued (polling the store; the worker thread is held meanwhile)
 * and add it per ID as "push_result" (and "apns_id"). Best effort: a
 * push not answered in time has no "push_result".
 */
static void
push_wait(struct api *a, json_t *st, char *const *ids, const int *push,
    size_t n, uint64_t since, long long ms)
{
	struct wait_op	w = {ids, push, n, since, NULL, NULL, 0};
	struct timespec ts = {0, 20 * 1000000L};
	uint64_t	end = time_now_us() + (uint64_t)ms * 1000u;
	size_t		i;

	if ((w.outcome = calloc(n, sizeof(char *))) == NULL ||
	    (w.apns_id = calloc(n, sizeof(char *))) == NULL)
		goto out;
	for (;;) {
		if (store_read(a->srv->store, wait_op_run, &w) != 0 ||
		    w.left == 0 || time_now_us() >= end)
			break;
		(void)nanosleep(&ts, NULL);
	}
	for (i = 0; i < n; i++) {
		if (w.outcome[i] == NULL)
			continue;
		json_object_set_new(json_object_get(st, ids[i]), "push_result",
		    json_string(w.outcome[i]));
		if (w.apns_id[i] != NULL)
			json_object_set_new(json_object_get(st, ids[i]),
			    "apns_id", json_string(w.apns_id[i]));
	}
out:
	for (i = 0; w.outcome != NULL && i < n; i++) {
		free(w.outcome[i]);
		free(w.apns_id[i]);
	}
	free(w.outcome);
	free(w.apns_id);
}

void
api_enqueue(struct api *a)
{
	static const struct api_param qn[] = {{"priority", 0, NULL},
	    {"expires", 0, NULL}, {"nopush", 0, NULL}, {"push_wait", 0, NULL},
	    {"vpp_token", STORE_VPP_NAME_MAX, "any token's name"}};
	enum command_outcome	*oc = NULL;
	struct command		*cmd = NULL;
	struct api_licence	*lic = NULL;
	char			*qv[5], **ids = NULL, err[COMMAND_ERR_SIZE];
	json_t			*o = NULL, *st;
	long long		 prio, nopush, wait_ms;
	uint64_t		 since;
	int			*push = NULL;
	uint64_t		 expires = 0;
	size_t			 nids = 0, nq = 0, i, nalready = 0;
	int			 rc, status;

	if (api_query(a, qn, 5, qv) == -1)
		return;
	if (api_num(a, "priority", qv[0], 0, 255, 0, &prio) == -1 ||
	    api_num(a, "nopush", qv[2], 0, 1, 0, &nopush) == -1 ||
	    api_num(a, "push_wait", qv[3], 0, PUSH_WAIT_MAX_MS, 0, &wait_ms) ==
		-1)
		goto out;
	if (nopush && wait_ms > 0) {
		api_fail(a, 400, "bad request", "push_wait: nopush=1 queues "
		    "no push to wait for");
		goto out;
	}
	since = time_now_us();
	if (qv[1] != NULL &&
	    command_expires_parse(qv[1], time_now_us(), &expires) == -1) {
		api_fail(a, 400, "bad request",
		    "expires: want an RFC 3339 time or a number of seconds "
		    "from now, after now and at most ten years (%lld s) ahead",
		    COMMAND_EXPIRES_MAX);
		goto out;
	}
	if (api_ids(a, &ids, &nids) == -1)
		goto out;
	if (a->req->body_len == 0) {
		api_fail(a, 400, "bad request",
		    "empty body: send a command "
		    "plist (PUT) or its JSON form (POST)");
		goto out;
	}
	/* The body of the other method: say which method takes which. */
	i = api_body_start(a);
	if (i < a->req->body_len && a->req->body[i] == '{' &&
	    strcmp(a->req->method, "PUT") == 0) {
		api_fail(a, 400, "invalid command", "the body is JSON: POST "
		    "takes the JSON form, PUT a command plist");
		goto out;
	}
	if (i < a->req->body_len && (a->req->body[i] == '<' ||
	    (a->req->body_len - i >= 6 &&
	    memcmp(a->req->body + i, "bplist", 6) == 0)) &&
	    strcmp(a->req->method, "POST") == 0) {
		api_fail(a, 400, "invalid command", "the body is a plist: PUT "
		    "takes a command plist, POST its JSON form");
		goto out;
	}
	if (strcmp(a->req->method, "PUT") == 0)
		rc = command_from_plist((const char *)a->req->body,
		    a->req->body_len, &cmd, err, sizeof(err));
	else
		rc = command_from_json((const char *)a->req->body,
		    a->req->body_len, &cmd, err, sizeof(err));
	if (rc != 0) {
		api_fail(a, rc,
		    rc == 400 ? "invalid command" : "internal error", "%s",
		    err);
		goto out;
	}
	strlcpy(a->resp->id, ids[0], sizeof(a->resp->id));
	/* An App Store install: the devices' licences, checked in the
	 * enqueue's transaction (a sync in between could remove one). */
	if (api_vpp_licence_new(a, cmd, ids, nids, qv[4], &lic) == -1)
		goto out;
	if ((oc = calloc(nids, sizeof(*oc))) == NULL ||
	    (push = calloc(nids, sizeof(*push))) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	rc = command_enqueue_push(a->srv->store, cmd, ids, nids, (int)prio,
	    expires, (int)nopush, lic != NULL ? api_vpp_licence_run : NULL,
	    lic, oc, push, &nq);
	if (rc > 0 && lic != NULL) {
		api_vpp_licence_fail(a, lic);
		goto out;
	}
	if (rc == STORE_EEXIST) {
		api_fail(a, 409, "duplicate command",
		    "CommandUUID %.255s is already known", cmd->uuid);
		goto out;
	}
	if (rc != 0 && rc != STORE_ENOTFOUND) {
		api_store_fail(a, rc);
		goto out;
	}
	if ((o = json_object()) == NULL ||
	    api_set(o, "command_uuid", json_string(cmd->uuid)) == -1 ||
	    api_set(o, "request_type", json_string(cmd->request_type)) == -1 ||
	    (st = json_object()) == NULL || api_set(o, "status", st) == -1)
		goto oom;
	for (i = 0; i < nids; i++) {
		if (oc[i] == COMMAND_ALREADY_QUEUED)
			nalready++;
		/* "push": whether a push was queued, or why not. */
		if (api_set(st, ids[i],
			rc == 0 && push[i] >= 0
			    ? json_pack("{s:s,s:s}", "status",
				  command_outcome_name(oc[i]), "push",
				  push_queued_name((enum push_queued)push[i]))
			    : json_pack("{s:s}", "status",
				  command_outcome_name(oc[i]))) == -1)
			goto oom;
	}
	if (rc == 0 && wait_ms > 0)
		push_wait(a, st, ids, push, nids, since, wait_ms);
	if (rc == 0)
		status = nq == nids ? 200 : 207;
	else {
		status = nalready > 0 ? 409 : 404;
		if (api_set(o, "error",
			json_string(status == 409 ? "already queued"
						  : "unknown enrollment")) ==
			-1 ||
		    api_set(o, "detail",
			json_string("the command was queued to "
				    "no enrollment and was not kept")) == -1)
			goto oom;
	}
	api_reply(a, status, o);
	o = NULL;
	if (status >= 400)
		a->resp->reason = "queued to no enrollment";
	goto out;
oom:
	api_fail(a, 500, "internal error", "out of memory");
out:
	json_decref(o);
	free(oc);
	free(push);
	api_vpp_licence_free(lic);
	command_free(cmd);
	for (i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	api_query_free(qv, 5);
}

/* ---- enrollments ---- */

static json_t *
secret_json(const void *p, size_t n)
{
	unsigned char h[32];
	char	      hex[65];

	if (p == NULL)
		return json_null();
	sha256(p, n, h);
	hex_encode(h, sizeof(h), hex);
	return json_pack("{s:I, s:s}", "length", (json_int_t)n, "sha256", hex);
}

/* The device channel's ID of an enrollment. */
static const char *
device_id_of(const struct store_enrollment *e)
{
	return e->device_id != NULL ? e->device_id : e->id;
}

/* An enrollment, with a few device facts (d may be NULL); with full,
 * its push credentials as length and SHA-256. */
static json_t *
enrollment_json(
    const struct store_enrollment *e, const struct store_device *d, int full)
{
	json_t *o;

	o = json_object();
	if (o == NULL || api_set(o, "id", command_json_str(e->id)) == -1 ||
	    api_set(o, "device_id", command_json_str(device_id_of(e))) == -1 ||
	    api_set(o, "type", json_string(enroll_type_name(e->type))) == -1 ||
	    api_set(o, "enabled", json_boolean(e->enabled)) == -1 ||
	    api_set(o, "topic", command_json_str(e->topic)) == -1 ||
	    api_set(o, "serial_number", command_json_str(d ? d->serial : NULL)) ==
		-1 ||
	    api_set(o, "model", command_json_str(d ? d->model : NULL)) == -1 ||
	    api_set(o, "os_version", command_json_str(d ? d->os_version : NULL)) ==
		-1 ||
	    api_set(o, "user_id", command_json_str(e->user_id)) == -1 ||
	    api_set(o, "user_short_name", command_json_str(e->user_short_name)) ==
		-1 ||
	    api_set(o, "user_long_name", command_json_str(e->user_long_name)) ==
		-1 ||
	    api_set(o, "awaiting_configuration",
		json_boolean(e->awaiting_configuration)) == -1 ||
	    api_set(o, "token_update_tally",
		json_integer((json_int_t)e->token_update_tally)) == -1 ||
	    api_set(o, "created_at", command_json_time(e->created_at)) == -1 ||
	    api_set(o, "last_seen", command_json_time(e->last_seen)) == -1 ||
	    api_set(o, "token_updated_at",
		command_json_time(e->token_updated_at)) == -1 ||
	    api_set(o, "checked_out_at", command_json_time(e->checked_out_at)) ==
		-1)
		goto fail;
	if (full &&
	    (api_set(o, "push_magic",
		 secret_json(e->push_magic,
		     e->push_magic ? strlen(e->push_magic) : 0)) == -1 ||
		api_set(o, "token", secret_json(e->token, e->token_len)) == -1))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

/* Every stored device fact; secrets as length and SHA-256. */
static json_t *
device_json(const struct store_device *d)
{
	char	hex[65];
	json_t *o;

	if (d->has_cert)
		hex_encode(d->cert_hash, 32, hex);
	o = json_object();
	if (o == NULL || api_set(o, "id", command_json_str(d->id)) == -1 ||
	    api_set(o, "serial_number", command_json_str(d->serial)) == -1 ||
	    api_set(o, "udid", command_json_str(d->udid)) == -1 ||
	    api_set(o, "enrollment_id", command_json_str(d->enrollment_id)) == -1 ||
	    api_set(o, "model", command_json_str(d->model)) == -1 ||
	    api_set(o, "model_name", command_json_str(d->model_name)) == -1 ||
	    api_set(o, "device_name", command_json_str(d->device_name)) == -1 ||
	    api_set(o, "product_name", command_json_str(d->product_name)) == -1 ||
	    api_set(o, "os_version", command_json_str(d->os_version)) == -1 ||
	    api_set(o, "build_version", command_json_str(d->build_version)) == -1 ||
	    api_set(o, "imei", command_json_str(d->imei)) == -1 ||
	    api_set(o, "meid", command_json_str(d->meid)) == -1 ||
	    api_set(o, "topic", command_json_str(d->topic)) == -1 ||
	    api_set(o, "identity_cert_sha256",
		d->has_cert ? json_string(hex) : json_null()) == -1 ||
	    api_set(o, "unlock_token",
		secret_json(d->unlock_token, d->unlock_token_len)) == -1 ||
	    api_set(o, "unlock_token_at", command_json_time(d->unlock_token_at)) ==
		-1 ||
	    api_set(o, "bootstrap_token",
		secret_json(d->bootstrap_token, d->bootstrap_token_len)) ==
		-1 ||
	    api_set(o, "bootstrap_token_at",
		command_json_time(d->bootstrap_token_at)) == -1 ||
	    api_set(o, "created_at", command_json_time(d->created_at)) == -1 ||
	    api_set(o, "authenticated_at",
		command_json_time(d->authenticated_at)) == -1) {
		json_decref(o);
		return NULL;
	}
	return o;
}

struct list_op {
	/* filters */
	int	    enabled; /* -1 any */
	int	    type;    /* -1 any */
	const char *topic;
	const char *serial;
	uint64_t    seen_since;
	const char *after;
	size_t	    limit;
	/* outputs */
	struct store_txn *t;
	json_t		 *arr;
	size_t		  n, scanned;
	char		 *next;
	int		  more;
};

static int
list_cb(const struct store_enrollment *e, void *arg)
{
	struct list_op	    *op = arg;
	struct store_device *d = NULL;
	json_t		    *j;
	int		     rc;

	if (op->n == op->limit) {
		op->more = 1;
		return 1;
	}
	if (++op->scanned > API_SCAN_MAX) {
		op->more = 1;
		return 1;
	}
	free(op->next);
	op->next = NULL;
	if ((op->enabled >= 0 && (e->enabled != 0) != op->enabled) ||
	    (op->type >= 0 && (int)e->type != op->type) ||
	    (op->topic != NULL &&
		(e->topic == NULL || strcmp(op->topic, e->topic) != 0)) ||
	    (op->seen_since != 0 && e->last_seen < op->seen_since))
		goto skip;
	rc = store_device_get(op->t, device_id_of(e), &d);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	if (op->serial != NULL &&
	    (d == NULL || d->serial == NULL || strcmp(d->serial, op->serial)))
		goto skip;
	j = enrollment_json(e, d, 0);
	store_device_free(d);
	if (j == NULL || json_array_append_new(op->arr, j) == -1)
		return STORE_ENOMEM;
	op->n++;
	d = NULL;
skip:
	store_device_free(d);
	/* The last enrollment looked at is where the next page starts. */
	if ((op->next = strdup(e->id)) == NULL)
		return STORE_ENOMEM;
	return 0;
}

static int
list_op_run(struct store_txn *t, void *arg)
{
	struct list_op *op = arg;

	op->t = t;
	return store_enrollment_iter(t, op->after, list_cb, op);
}

/* The enrollment type named s (enroll_type_name, any case), or -1. */
static int
type_parse(const char *s)
{
	int i;

	for (i = ENROLL_DEVICE; i < ENROLL__MAX; i++)
		if (strcasecmp(s, enroll_type_name((enum enroll_type)i)) == 0)
			return i;
	return -1;
}

/*
 * GET /api/v1/enrollments: filters enabled, type, topic, seen_since,
 * serial; paging limit and after. "next" is the ID to pass as after for
 * the next page, or null at the end. A page may hold fewer than limit
 * enrollments when a filter is selective (the scan per request is
 * bounded); only a null next means the end.
 */
void
api_enrollments(struct api *a)
{
	static const struct api_param qn[] = {{"enabled", 0, NULL},
	    {"type", 0, NULL}, {"topic", MSG_TOPIC_MAX, "any APNs topic"},
	    {"seen_since", 0, NULL},
	    {"serial", STORE_KEY_MAX, "any serial number"}, {"limit", 0, NULL},
	    {"after", MSG_ID_MAX, "any enrollment ID"}};
	struct list_op		 op;
	char			*qv[7];
	json_t			*o;
	long long		 limit;
	int			 rc;

	if (api_query(a, qn, 7, qv) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.enabled = -1;
	op.type = -1;
	if (qv[0] != NULL) {
		if (strcmp(qv[0], "true") == 0 || strcmp(qv[0], "1") == 0)
			op.enabled = 1;
		else if (strcmp(qv[0], "false") == 0 || strcmp(qv[0], "0") == 0)
			op.enabled = 0;
		else {
			api_fail(a, 400, "bad request",
			    "enabled: want true or false");
			goto out;
		}
	}
	if (qv[1] != NULL && (op.type = type_parse(qv[1])) == -1) {
		api_fail(a, 400, "bad request",
		    "type: want Device, User, "
		    "UserEnrollmentDevice, UserEnrollment or SharediPad");
		goto out;
	}
	op.topic = qv[2];
	if (qv[3] != NULL && time_parse_rfc3339(qv[3], &op.seen_since) == -1) {
		api_fail(
		    a, 400, "bad request", "seen_since: want an RFC 3339 time");
		goto out;
	}
	op.serial = qv[4];
	if (api_num(a, "limit", qv[5], 1, API_LIMIT_MAX, API_LIMIT_DEF,
		&limit) == -1)
		goto out;
	op.limit = (size_t)limit;
	op.after = qv[6];
	if ((op.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	rc = store_read(a->srv->store, list_op_run, &op);
	if (rc != 0) {
		json_decref(op.arr);
		api_store_fail(a, rc);
		goto out;
	}
	o = json_object();
	if (o == NULL || api_set(o, "enrollments", op.arr) == -1) {
		json_decref(o);
		json_decref(op.arr);
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	if (api_set(o, "next",
		op.more && op.next != NULL ? command_json_str(op.next)
					   : json_null()) == -1) {
		json_decref(o);
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	api_reply(a, 200, o);
out:
	free(op.next);
	api_query_free(qv, 7);
}

struct one_op {
	const char *id;
	json_t	   *out;
	size_t	    count;
};

static int
uchan_cb(const char *id, void *arg)
{
	return json_array_append_new(arg, json_string(id)) == -1 ? STORE_ENOMEM
								 : 0;
}

static int
count_cb(const struct store_queue_item *q, void *arg)
{
	(void)q;
	(*(size_t *)arg)++;
	return 0;
}

static int
enrollment_op_run(struct store_txn *t, void *arg)
{
	struct one_op		*op = arg;
	struct store_enrollment *e = NULL;
	struct store_device	*d = NULL;
	json_t			*uc = NULL;
	int			 rc;

	op->count = 0;
	if (strlen(op->id) > MSG_ID_MAX) /* no enrollment has such an ID */
		return 404;
	if ((rc = store_enrollment_get(t, op->id, &e)) != 0)
		return rc == STORE_ENOTFOUND ? 404 : rc;
	if ((rc = store_device_get(t, device_id_of(e), &d)) != 0 &&
	    rc != STORE_ENOTFOUND)
		goto out;
	if ((rc = store_queue_iter(t, op->id, count_cb, &op->count)) != 0)
		goto out;
	rc = STORE_ENOMEM;
	if ((op->out = json_object()) == NULL ||
	    api_set(op->out, "enrollment", enrollment_json(e, d, 1)) == -1 ||
	    api_set(op->out, "device", d != NULL ? device_json(d) : json_null()) ==
		-1 ||
	    api_set(op->out, "queued", json_integer((json_int_t)op->count)) == -1 ||
	    api_set(op->out, "push", store_push_json(t, e)) == -1 ||
	    (uc = json_array()) == NULL)
		goto out;
	if (e->device_id == NULL || strcmp(e->device_id, e->id) == 0) {
		if ((rc = store_user_channels(t, e->id, uchan_cb, uc)) != 0)
			goto out;
	}
	rc = api_set(op->out, "user_channels", uc) == -1 ? STORE_ENOMEM : 0;
	uc = NULL;
out:
	json_decref(uc);
	store_device_free(d);
	store_enrollment_free(e);
	return rc;
}

/* GET /api/v1/enrollments/{id}: the enrollment, its device's facts, the
 * user channels of a device channel and the number of queued commands. */
void
api_enrollment(struct api *a)
{
	struct one_op op;
	int	      rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.id = a->seg[1];
	rc = store_read(a->srv->store, enrollment_op_run, &op);
	if (rc == 404)
		api_fail(a, 404, "not found", "no enrollment %.200s", op.id);
	else if (rc != 0)
		api_store_fail(a, rc);
	else {
		api_reply(a, 200, op.out);
		op.out = NULL;
	}
	json_decref(op.out);
}

/* ---- queues ---- */

struct queue_op {
	const char	 *id;
	const char	 *uuid;
	struct store_txn *t;
	json_t		 *arr;
	size_t		  count;
};

static json_t *
queue_item_json(struct store_txn *t, const struct store_queue_item *q)
{
	struct store_command *c = NULL;
	json_t		     *o;

	(void)store_command_get(t, q->uuid, &c);
	o = command_queue_item_json(
	    q, c != NULL ? c->request_type : NULL, store_txn_now(t));
	store_command_free(c);
	return o;
}

static int
queue_cb(const struct store_queue_item *q, void *arg)
{
	struct queue_op *op = arg;

	if (json_array_append_new(op->arr, queue_item_json(op->t, q)) == -1)
		return STORE_ENOMEM;
	op->count++;
	return 0;
}

static int
uuid_cb(const struct store_queue_item *q, void *arg)
{
	struct queue_op *op = arg;

	if (json_array_append_new(op->arr, json_string(q->uuid)) == -1)
		return STORE_ENOMEM;
	return 0;
}

/*
 * Does the enrollment exist? 0, 404 or a store error. An ID longer than
 * any enrollment's is unknown too (the store would call it invalid).
 */
static int
enrollment_known(struct store_txn *t, const char *id)
{
	struct store_enrollment *e = NULL;
	int			 rc;

	if (strlen(id) > MSG_ID_MAX)
		return 404;
	rc = store_enrollment_get(t, id, &e);
	store_enrollment_free(e);
	return rc == STORE_ENOTFOUND ? 404 : rc;
}

static int
queue_op_run(struct store_txn *t, void *arg)
{
	struct queue_op *op = arg;
	int		 rc;

	op->t = t;
	op->count = 0;
	json_array_clear(op->arr);
	if ((rc = enrollment_known(t, op->id)) != 0)
		return rc;
	return store_queue_iter(t, op->id, queue_cb, op);
}

/* Cancel all (uuid NULL) or one; a write op, so outputs reset first. */
static int
cancel_op_run(struct store_txn *t, void *arg)
{
	struct queue_op *op = arg;
	int		 rc;

	op->t = t;
	op->count = 0;
	json_array_clear(op->arr);
	if ((rc = enrollment_known(t, op->id)) != 0)
		return rc;
	if (op->uuid != NULL) {
		rc = store_queue_cancel(t, op->id, op->uuid);
		if (rc == STORE_ENOTFOUND || rc == STORE_EINVAL)
			return 410;
		if (rc == 0 &&
		    json_array_append_new(op->arr, json_string(op->uuid)) == -1)
			rc = STORE_ENOMEM;
		op->count = rc == 0 ? 1 : 0;
		return rc;
	}
	if ((rc = store_queue_iter(t, op->id, uuid_cb, op)) != 0)
		return rc;
	return store_queue_clear(t, op->id, CMD_STATUS_CANCELLED, &op->count);
}

/*
 * GET /api/v1/queue/{id}: pending commands in delivery order.
 * DELETE /api/v1/queue/{id}[/{uuid}]: cancel all, or one; each cancelled
 * command is recorded as Cancelled for the enrollment.
 */
void
api_queue(struct api *a)
{
	struct queue_op op;
	json_t	       *o;
	int		rc, del = strcmp(a->req->method, "DELETE") == 0;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.id = a->seg[1];
	op.uuid = a->nseg > 2 ? a->seg[2] : NULL;
	strlcpy(a->resp->id, op.id, sizeof(a->resp->id));
	if ((op.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	if (del)
		rc = store_write(a->srv->store, cancel_op_run, &op);
	else
		rc = store_read(a->srv->store, queue_op_run, &op);
	if (rc == 404) {
		api_fail(a, 404, "not found", "no enrollment %.200s", op.id);
		goto out;
	}
	if (rc == 410) {
		api_fail(a, 404, "not found",
		    "command %.255s is not queued "
		    "for %.200s",
		    op.uuid, op.id);
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	o = del
	    ? json_pack("{s:s, s:I, s:O}", "enrollment_id", op.id, "cancelled",
		  (json_int_t)op.count, "command_uuids", op.arr)
	    : json_pack("{s:s, s:O}", "enrollment_id", op.id, "queue", op.arr);
	api_reply(a, 200, o);
out:
	json_decref(op.arr);
}

/* ---- commands ---- */

struct cmd_op {
	const char	     *uuid;
	const char	     *after;   /* list targets after this ID */
	size_t		      limit;
	struct store_command *cmd;
	json_t		     *targets;
	json_t		     *counts;
	size_t		      n;
	int		      started; /* past after */
	const char	     *last;    /* in targets: the last listed ID */
	int		      more;
};

/* Count every target; list a page of them (after, limit). */
static int
target_cb(const struct store_target *tg, void *arg)
{
	struct cmd_op *op = arg;
	const char    *st = cmd_status_name(tg->status);
	json_t	      *n, *t;

	n = json_object_get(op->counts, st);
	if (api_set(op->counts, st,
		json_integer(n ? json_integer_value(n) + 1 : 1)) == -1)
		return STORE_ENOMEM;
	if (!op->started) {
		op->started = strcmp(tg->enrollment_id, op->after) == 0;
		return 0;
	}
	if (op->n == op->limit) {
		op->more = 1;
		return 0;
	}
	if (json_array_append_new(op->targets,
		json_pack("{s:s, s:s, s:o, "
			  "s:o}",
		    "enrollment_id", tg->enrollment_id, "status", st,
		    "updated_at", command_json_time(tg->updated_at),
		    "result_seq",
		    tg->result_seq ? json_integer((json_int_t)tg->result_seq)
				   : json_null())) == -1)
		return STORE_ENOMEM;
	t = json_array_get(op->targets, op->n++);
	op->last = json_string_value(json_object_get(t, "enrollment_id"));
	return 0;
}

static int
cmd_op_run(struct store_txn *t, void *arg)
{
	struct cmd_op *op = arg;
	int	       rc;

	if ((rc = store_command_get(t, op->uuid, &op->cmd)) != 0)
		return rc == STORE_ENOTFOUND || rc == STORE_EINVAL ? 404 : rc;
	return store_command_targets(t, op->uuid, target_cb, op);
}

/* The command's bytes as "raw" text, or "raw_base64" when not UTF-8. */
static int
raw_json(json_t *o, const unsigned char *p, size_t n)
{
	json_t *s;
	char   *b64;

	if ((s = json_stringn(n > 0 ? (const char *)p : "", n)) != NULL)
		return api_set(o, "raw", s);
	if ((b64 = base64_encode(p, n)) == NULL)
		return -1;
	s = json_string(b64);
	free(b64);
	return api_set(o, "raw_base64", s);
}

/*
 * GET /api/v1/commands/{uuid}: the command as stored (text and decoded),
 * with counts per status over every enrollment it was queued to, and a
 * page of those enrollments with where it stands for each, in the order
 * they were first queued: limit (default 100, at most 1000) and after (an
 * enrollment ID of the previous page); "next" is the after of the next
 * page, or null at the end.
 */
void
api_command(struct api *a)
{
	static const struct api_param qn[] = {
	    {"limit", 0, NULL}, {"after", MSG_ID_MAX, "any enrollment ID"}};
	struct cmd_op op;
	plist_t	      root = NULL;
	json_t	     *o = NULL;
	char	     *qv[2];
	long long     limit;
	int	      rc;

	if (api_query(a, qn, 2, qv) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.uuid = a->seg[1];
	if (api_num(a, "limit", qv[0], 1, API_LIMIT_MAX, API_LIMIT_DEF,
		&limit) == -1)
		goto out;
	op.limit = (size_t)limit;
	op.after = qv[1];
	op.started = op.after == NULL;
	if ((op.targets = json_array()) == NULL ||
	    (op.counts = json_object()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	rc = store_read(a->srv->store, cmd_op_run, &op);
	if (rc == 404) {
		api_fail(a, 404, "not found", "no command %.255s", op.uuid);
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	if (!op.started) {
		api_fail(a, 400, "bad request",
		    "after: %.255s is not a target of this command", op.after);
		goto out;
	}
	(void)plist_safe_parse(
	    (const char *)op.cmd->raw, op.cmd->raw_len, &root);
	o = json_object();
	if (o == NULL ||
	    api_set(o, "command_uuid", command_json_str(op.cmd->uuid)) == -1 ||
	    api_set(o, "request_type", command_json_str(op.cmd->request_type)) ==
		-1 ||
	    api_set(o, "created_at", command_json_time(op.cmd->created_at)) == -1 ||
	    api_set(o, "length", json_integer((json_int_t)op.cmd->raw_len)) == -1 ||
	    raw_json(o, op.cmd->raw, op.cmd->raw_len) == -1 ||
	    api_set(o, "command",
		root != NULL ? command_plist_json(root) : json_null()) == -1 ||
	    api_set(o, "counts", json_incref(op.counts)) == -1 ||
	    api_set(o, "targets", json_incref(op.targets)) == -1 ||
	    api_set(o, "next", op.more && op.last != NULL ? json_string(op.last)
						      : json_null()) == -1) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	api_reply(a, 200, o);
	o = NULL;
out:
	json_decref(o);
	plist_free(root);
	json_decref(op.targets);
	json_decref(op.counts);
	store_command_free(op.cmd);
	api_query_free(qv, 2);
}

/* ---- results ---- */

struct results_op {
	const char	    *id;
	uint64_t	     before;
	size_t		     limit;
	uint64_t	     seq;
	json_t		    *arr;
	size_t		     n;
	uint64_t	     last;
	int		     more;
	struct store_result *one;
	char		    *rtype;
};

static int
results_cb(const struct store_result *r, void *arg)
{
	struct results_op *op = arg;

	if (op->n == op->limit) {
		op->more = 1;
		return 1;
	}
	if (json_array_append_new(op->arr, command_result_json(r, 0)) == -1)
		return STORE_ENOMEM;
	op->n++;
	op->last = r->seq;
	return 0;
}

static int
results_op_run(struct store_txn *t, void *arg)
{
	struct results_op *op = arg;
	int		   rc;

	if ((rc = enrollment_known(t, op->id)) != 0)
		return rc;
	return store_result_iter(t, op->id, op->before, results_cb, op);
}

static int
result_op_run(struct store_txn *t, void *arg)
{
	struct results_op    *op = arg;
	struct store_command *c = NULL;
	int		      rc;

	if ((rc = enrollment_known(t, op->id)) != 0)
		return rc;
	if ((rc = store_result_get(t, op->id, op->seq, &op->one)) != 0)
		return rc == STORE_ENOTFOUND ? 410 : rc;
	if (store_command_get(t, op->one->uuid, &c) == 0 &&
	    (op->rtype = strdup(c->request_type)) == NULL)
		rc = STORE_ENOMEM;
	store_command_free(c);
	return rc;
}

/*
 * GET /api/v1/results/{id}: the enrollment's reports, newest first;
 * limit (default 100, at most 1000) and before (a seq): "next" is the
 * before of the next page, null at the end.
 * GET /api/v1/results/{id}/{seq}: one report with its raw plist and the
 * plist decoded (data as base64, dates RFC 3339).
 */
void
api_results(struct api *a)
{
	static const struct api_param qn[] = {
	    {"limit", 0, NULL}, {"before", 0, NULL}};
	struct results_op	 op;
	char			*qv[2] = {NULL, NULL};
	json_t			*o;
	long long		 v;
	int			 rc;

	memset(&op, 0, sizeof(op));
	op.id = a->seg[1];
	if (a->nseg > 2) {
		if (api_query(a, NULL, 0, NULL) == -1)
			return;
		/* A malformed path is 400 (picomdm-api(7), Errors). */
		if (num_parse(a->seg[2], 1, INT64_MAX, &v) == -1) {
			api_fail(a, 400, "bad request", "path: a result is "
			    "named by its seq, a whole number from 1 to %lld",
			    (long long)INT64_MAX);
			return;
		}
		op.seq = (uint64_t)v;
		rc = store_read(a->srv->store, result_op_run, &op);
	} else {
		if (api_query(a, qn, 2, qv) == -1)
			return;
		if (api_num(a, "limit", qv[0], 1, API_LIMIT_MAX, API_LIMIT_DEF,
			&v) == -1)
			goto out;
		op.limit = (size_t)v;
		if (api_num(a, "before", qv[1], 1, INT64_MAX, 0, &v) == -1)
			goto out;
		op.before = (uint64_t)v;
		if ((op.arr = json_array()) == NULL) {
			api_fail(a, 500, "internal error", "out of memory");
			goto out;
		}
		rc = store_read(a->srv->store, results_op_run, &op);
	}
	if (rc == 404) {
		api_fail(a, 404, "not found", "no enrollment %.200s", op.id);
		goto out;
	}
	if (rc == 410) {
		api_fail(a, 404, "not found", "no result %llu for %.200s",
		    (unsigned long long)op.seq, op.id);
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	if (op.one != NULL) {
		o = command_result_json(op.one, 1);
		if (o != NULL &&
		    api_set(o, "request_type", command_json_str(op.rtype)) == -1) {
			json_decref(o);
			o = NULL;
		}
	} else
		o = json_pack("{s:s, s:O, s:o}", "enrollment_id", op.id,
		    "results", op.arr, "next",
		    op.more ? json_integer((json_int_t)op.last) : json_null());
	api_reply(a, 200, o);
out:
	json_decref(op.arr);
	store_result_free(op.one);
	free(op.rtype);
	api_query_free(qv, 2);
}

/* ---- pushes ---- */

/*
 * POST /api/v1/push/{id[,id...]}: queue a push for each (picomdm-notify
 * sends it). 200 with {"status": {ID: {"push": "queued" | "pending" |
 * "no token" | "token invalid" | "checked out" | "unknown
 * enrollment"}}}; 404 when no ID is an enrollment. No query parameter
 * and no body are taken (400).
 */
void
api_push(struct api *a)
{
	enum push_queued *pq = NULL;
	char		**ids = NULL;
	json_t		 *o = NULL, *st;
	size_t		  nids = 0, i, nknown = 0;
	int		  rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	if (a->req->body_len > 0) {
		api_fail(a, 400, "bad request",
		    "a push takes no body (POST /api/v1/enqueue sends a "
		    "command)");
		return;
	}
	if (api_ids(a, &ids, &nids) == -1)
		return;
	strlcpy(a->resp->id, ids[0], sizeof(a->resp->id));
	if ((pq = calloc(nids, sizeof(*pq))) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	if ((rc = store_push_request(a->srv->store, ids, nids, "api", pq)) !=
	    0) {
		api_store_fail(a, rc);
		goto out;
	}
	if ((o = json_object()) == NULL || (st = json_object()) == NULL ||
	    api_set(o, "status", st) == -1) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	for (i = 0; i < nids; i++) {
		nknown += pq[i] != PUSHQ_UNKNOWN;
		if (api_set(st, ids[i], json_pack("{s:s}", "push",
			push_queued_name(pq[i]))) == -1) {
			api_fail(a, 500, "internal error", "out of memory");
			goto out;
		}
	}
	if (nknown == 0 && (api_set(o, "error",
	    json_string("unknown enrollment")) == -1 || api_set(o, "detail",
	    json_string("no ID is an enrollment: nothing was queued")) ==
	    -1)) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	api_reply(a, nknown > 0 ? 200 : 404, o);
	o = NULL;
	if (nknown == 0)
		a->resp->reason = "unknown enrollment";
out:
	json_decref(o);
	free(pq);
	for (i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
}
