/*
 * checkin.c - the eight check-in messages of Apple's check-in protocol
 * (schema: the mdm/checkin YAML of apple/device-management), their effects
 * on the store (README.md, "The protocol as implemented") and their replies.
 *
 * Stage order: identity_verify (who is calling) and msg_parse_checkin
 * (is it well-formed) run first, outside any transaction; the decision and
 * all writes then run as one operation of the group-commit writer, where
 * identity_authorize checks the certificate binding before anything is
 * written. A refusal returns its status and the store discards every
 * change of that operation.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "extern.h"
#include "picomdm/identity.h"
#include "picomdm/log.h"
#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

#define CT_PLIST "application/xml; charset=utf-8"
#define CT_JSON  "application/json"

struct checkin_op {
	struct device_op      d;
	/* outputs, reset on every run */
	int                   status;
	const char           *reason;
	char                 *body;
	size_t                body_len;
	const char           *ctype;
};

/* Replace *dst with a copy of the message's string for key, if present. */
static int
take_str(char **dst, const struct mdm_msg *m, const char *key)
{
	const char *v = msg_str(m, key);
	char       *s;

	if (v == NULL)
		return 0;
	if ((s = strdup(v)) == NULL)
		return STORE_ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

static int
take_bytes(unsigned char **dst, size_t *dlen, const unsigned char *p,
    size_t n)
{
	unsigned char *b;

	if ((b = malloc(n ? n : 1)) == NULL)
		return STORE_ENOMEM;
	memcpy(b, p, n);
	freezero(*dst, *dlen);
	*dst = b;
	*dlen = n;
	return 0;
}

/* The enrollment of this message, created (disabled) when new. */
static int
enrollment_load(struct store_txn *t, const struct mdm_msg *m,
    struct store_enrollment **out)
{
	struct store_enrollment *e;
	int                      rc;

	rc = store_enrollment_get(t, m->id, &e);
	if (rc == STORE_ENOTFOUND) {
		if ((e = calloc(1, sizeof(*e))) == NULL)
			return STORE_ENOMEM;
		if ((e->id = strdup(m->id)) == NULL ||
		    (e->device_id = strdup(m->device_id)) == NULL) {
			store_enrollment_free(e);
			return STORE_ENOMEM;
		}
		e->created_at = store_txn_now(t);
		rc = 0;
	}
	if (rc != 0)
		return rc;
	e->type = m->type;
	e->last_seen = store_txn_now(t);
	if ((rc = take_str(&e->user_id, m, "UserID")) != 0 ||
	    (rc = take_str(&e->user_short_name, m, "UserShortName")) != 0 ||
	    (rc = take_str(&e->user_long_name, m, "UserLongName")) != 0) {
		store_enrollment_free(e);
		return rc;
	}
	if (m->type == ENROLL_UE_USER &&
	    (rc = take_str(&e->user_id, m, "EnrollmentUserID")) != 0) {
		store_enrollment_free(e);
		return rc;
	}
	*out = e;
	return 0;
}

/*
 * Keep the raw message byte-for-byte with the APNs topic it came through:
 * its own Topic key, else the enrollment's, else its device's (messages
 * such as SetBootstrapToken carry none), so that every stored message
 * knows the service token it belongs to (picomdmctl purge --topic).
 */
static int
keep_raw(struct store_txn *t, const struct checkin_op *op,
    const struct store_enrollment *e)
{
	const struct mdm_msg *m = op->d.msg;
	const char           *topic = msg_str(m, "Topic");
	struct store_device  *d = NULL;
	int                   rc;

	if (topic == NULL && e != NULL)
		topic = e->topic;
	if (topic == NULL) {
		rc = store_device_get(t, m->device_id, &d);
		if (rc != 0 && rc != STORE_ENOTFOUND)
			return rc;
		if (d != NULL)
			topic = d->topic;
	}
	rc = store_msg_put(t, m->id, m->kind, topic, op->d.req->body,
	    op->d.req->body_len);
	store_device_free(d);
	return rc;
}

struct disable_ctx {
	struct store_txn *t;
	int               clear_queue;
};

/* Disable one user channel (and clear its queue on Authenticate). */
static int
disable_channel(const char *id, void *arg)
{
	struct disable_ctx      *d = arg;
	struct store_enrollment *e;
	size_t                   n;
	int                      rc;

	if ((rc = store_enrollment_get(d->t, id, &e)) != 0)
		return rc == STORE_ENOTFOUND ? 0 : rc;
	e->enabled = 0;
	e->token_update_tally = 0;
	rc = store_enrollment_put(d->t, e);
	store_enrollment_free(e);
	if (rc == 0 && d->clear_queue)
		rc = store_queue_clear(d->t, id, CMD_STATUS_CANCELLED, &n);
	return rc;
}

/*
 * Authenticate: record the device facts, disable the device channel and
 * its user channels until the next TokenUpdate, clear their queues. The
 * BootstrapToken is kept (a renewal re-authenticates; the device sends a
 * new token with SetBootstrapToken when it has one).
 */
static int
do_authenticate(struct store_txn *t, struct checkin_op *op)
{
	const struct mdm_msg    *m = op->d.msg;
	struct store_device     *d = NULL;
	struct store_enrollment *e = NULL;
	struct disable_ctx       dc = { t, 1 };
	size_t                   n;
	int                      rc;

	if (m->user_channel)
		return op->reason = "Authenticate on a user channel", 400;
	rc = store_device_get(t, m->device_id, &d);
	if (rc != 0)
		return rc == STORE_ENOTFOUND ? STORE_ECORRUPT : rc;
	if ((rc = take_str(&d->serial, m, "SerialNumber")) != 0 ||
	    (rc = take_str(&d->udid, m, "UDID")) != 0 ||
	    (rc = take_str(&d->enrollment_id, m, "EnrollmentID")) != 0 ||
	    (rc = take_str(&d->model, m, "Model")) != 0 ||
	    (rc = take_str(&d->model_name, m, "ModelName")) != 0 ||
	    (rc = take_str(&d->device_name, m, "DeviceName")) != 0 ||
	    (rc = take_str(&d->product_name, m, "ProductName")) != 0 ||
	    (rc = take_str(&d->os_version, m, "OSVersion")) != 0 ||
	    (rc = take_str(&d->build_version, m, "BuildVersion")) != 0 ||
	    (rc = take_str(&d->imei, m, "IMEI")) != 0 ||
	    (rc = take_str(&d->meid, m, "MEID")) != 0 ||
	    (rc = take_str(&d->topic, m, "Topic")) != 0)
		goto out;
	d->authenticated_at = store_txn_now(t);
	if ((rc = store_device_put(t, d)) != 0 ||
	    (rc = enrollment_load(t, m, &e)) != 0)
		goto out;
	e->enabled = 0;
	e->token_update_tally = 0;
	e->checked_out_at = 0;
	if ((rc = take_str(&e->topic, m, "Topic")) != 0 ||
	    (rc = store_enrollment_put(t, e)) != 0 ||
	    (rc = store_queue_clear(t, m->id, CMD_STATUS_CANCELLED, &n)) != 0 ||
	    (rc = store_user_channels(t, m->device_id, disable_channel,
	    &dc)) != 0)
		goto out;
	rc = keep_raw(t, op, e);
out:
	store_device_free(d);
	store_enrollment_free(e);
	return rc;
}

/*
 * TokenUpdate: push token, topic and PushMagic; enable; count updates (the
 * first after Authenticate means newly enrolled). UnlockToken is kept when
 * a later message omits it.
 */
static int
do_token_update(struct store_txn *t, struct checkin_op *op)
{
	const struct mdm_msg    *m = op->d.msg;
	struct store_enrollment *e = NULL;
	struct store_device     *d = NULL;
	const unsigned char     *tok;
	size_t                   len;
	int                      rc;

	if (m->user_channel) {
		struct store_enrollment *parent;

		/* A user channel needs its device channel first. */
		if ((rc = store_enrollment_get(t, m->device_id, &parent)) != 0)
			return rc == STORE_ENOTFOUND ? (op->reason =
			    "user channel before its device channel", 403) : rc;
		store_enrollment_free(parent);
	}
	if ((rc = enrollment_load(t, m, &e)) != 0)
		return rc;
	tok = msg_data(m, "Token", &len);
	if ((rc = take_bytes(&e->token, &e->token_len, tok, len)) != 0 ||
	    (rc = take_str(&e->topic, m, "Topic")) != 0 ||
	    (rc = take_str(&e->push_magic, m, "PushMagic")) != 0)
		goto out;
	e->enabled = 1;
	e->token_update_tally++;
	e->token_updated_at = store_txn_now(t);
	e->checked_out_at = 0;
	e->awaiting_configuration = msg_bool(m, "AwaitingConfiguration", 0);
	if ((rc = store_enrollment_put(t, e)) != 0)
		goto out;
	if (!m->user_channel &&
	    (tok = msg_data(m, "UnlockToken", &len)) != NULL) {
		if ((rc = store_device_get(t, m->device_id, &d)) != 0)
			goto out;
		if ((rc = take_bytes(&d->unlock_token, &d->unlock_token_len,
		    tok, len)) != 0)
			goto out;
		d->unlock_token_at = store_txn_now(t);
		if ((rc = store_device_put(t, d)) != 0)
			goto out;
	}
	rc = keep_raw(t, op, e);
out:
	store_enrollment_free(e);
	store_device_free(d);
	return rc;
}

/* An existing enrollment of this message, with last_seen updated. */
static int
enrollment_existing(struct store_txn *t, struct checkin_op *op,
    struct store_enrollment **e)
{
	int rc;

	if ((rc = store_enrollment_get(t, op->d.msg->id, e)) == STORE_ENOTFOUND)
		return op->reason = "enrollment not found", 403;
	if (rc == 0)
		(*e)->last_seen = store_txn_now(t);
	return rc;
}

static int
do_check_out(struct store_txn *t, struct checkin_op *op)
{
	const struct mdm_msg    *m = op->d.msg;
	struct store_enrollment *e = NULL;
	struct disable_ctx       dc = { t, 0 };
	int                      rc;

	if ((rc = enrollment_existing(t, op, &e)) != 0)
		return rc;
	e->enabled = 0;
	e->checked_out_at = store_txn_now(t);
	if ((rc = store_enrollment_put(t, e)) == 0 && !m->user_channel)
		rc = store_user_channels(t, m->device_id, disable_channel, &dc);
	if (rc == 0)
		rc = keep_raw(t, op, e);
	store_enrollment_free(e);
	return rc;
}

/* Reply with a one-key plist dict {key: data or string}. */
static int
reply_plist(struct checkin_op *op, const char *key, plist_t value)
{
	plist_t dict = plist_new_dict();
	int     rc;

	plist_dict_set_item(dict, key, value);
	rc = plist_to_xml_buf(dict, &op->body, &op->body_len);
	plist_free(dict);
	if (rc == -1)
		return STORE_ENOMEM;
	op->ctype = CT_PLIST;
	return 0;
}

/*
 * UserAuthenticate: declined with 410 (nothing stored) unless configured
 * to challenge; then the first request gets DigestChallenge and the second
 * (with DigestResponse) an empty 200. The user channel is recorded
 * disabled until its TokenUpdate.
 */
static int
do_user_authenticate(struct store_txn *t, struct checkin_op *op)
{
	const struct mdm_msg    *m = op->d.msg;
	const struct config     *cfg = op->d.srv->cfg;
	struct store_enrollment *e = NULL;
	int                      rc;

	if (cfg->user_auth == NULL || strcmp(cfg->user_auth, "challenge") != 0)
		return op->reason = "UserAuthenticate declined", 410;
	if (!m->user_channel)
		return op->reason = "UserAuthenticate without UserID", 400;
	if ((rc = enrollment_load(t, m, &e)) != 0)
		return rc;
	if (e->token_update_tally == 0)
		e->enabled = 0;
	if ((rc = store_enrollment_put(t, e)) == 0)
		rc = keep_raw(t, op, e);
	store_enrollment_free(e);
	if (rc == 0 && msg_str(m, "DigestResponse") == NULL)
		rc = reply_plist(op, "DigestChallenge", plist_new_string(
		    cfg->digest_challenge ? cfg->digest_challenge : ""));
	return rc;
}

/* SetBootstrapToken: store it; missing or empty means delete. */
static int
do_set_bootstrap(struct store_txn *t, struct checkin_op *op)
{
	const struct mdm_msg    *m = op->d.msg;
	struct store_device     *d = NULL;
	struct store_enrollment *e = NULL;
	const unsigned char     *tok;
	size_t                   len = 0;
	int                      rc;

	if (m->user_channel)
		return op->reason = "bootstrap token on a user channel", 400;
	if ((rc = enrollment_existing(t, op, &e)) != 0)
		return rc;
	if ((rc = store_enrollment_put(t, e)) != 0 ||
	    (rc = store_device_get(t, m->device_id, &d)) != 0)
		goto out;
	tok = msg_data(m, "BootstrapToken", &len);
	if (tok != NULL && len > 0) {
		if ((rc = take_bytes(&d->bootstrap_token,
		    &d->bootstrap_token_len, tok, len)) != 0)
			goto out;
	} else {
		freezero(d->bootstrap_token, d->bootstrap_token_len);
		d->bootstrap_token = NULL;
		d->bootstrap_token_len = 0;
	}
	d->bootstrap_token_at = store_txn_now(t);
	if ((rc = store_device_put(t, d)) == 0)
		rc = keep_raw(t, op, e);
out:
	store_device_free(d);
	store_enrollment_free(e);
	return rc;
}

/* GetBootstrapToken: {BootstrapToken: data}, or an empty body if none. */
static int
do_get_bootstrap(struct store_txn *t, struct checkin_op *op)
{
	const struct mdm_msg    *m = op->d.msg;
	struct store_device     *d = NULL;
	struct store_enrollment *e = NULL;
	int                      rc;

	if (m->user_channel)
		return op->reason = "bootstrap token on a user channel", 400;
	if ((rc = enrollment_existing(t, op, &e)) != 0)
		return rc;
	if ((rc = store_enrollment_put(t, e)) != 0 ||
	    (rc = store_device_get(t, m->device_id, &d)) != 0 ||
	    (rc = keep_raw(t, op, e)) != 0)
		goto out;
	if (d->bootstrap_token != NULL && d->bootstrap_token_len > 0)
		rc = reply_plist(op, "BootstrapToken", plist_new_data(
		    (const char *)d->bootstrap_token, d->bootstrap_token_len));
out:
	store_device_free(d);
	store_enrollment_free(e);
	return rc;
}

/* Serialise a JSON value as the reply body. */
static int
reply_json(struct checkin_op *op, json_t *v)
{
	char *s;

	if (v == NULL)
		return STORE_ENOMEM;
	s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (s == NULL)
		return STORE_ENOMEM;
	op->body = s;
	op->body_len = strlen(s);
	op->ctype = CT_JSON;
	return 0;
}

/*
 * DeclarativeManagement (declarative/protocol of Apple's schema). picomdm
 * serves an empty declaration set for now: "tokens" answers a
 * TokensResponse, "declaration-items" a DeclarationItemsResponse with
 * empty lists, "status" stores the report (latest kept), and a request for
 * one declaration is 404 since none exists.
 */
static int
do_declarative(struct store_txn *t, struct checkin_op *op)
{
	static const char        token[] = "picomdm-empty-v1";
	const struct mdm_msg    *m = op->d.msg;
	struct store_enrollment *e = NULL;
	const char              *ep = msg_str(m, "Endpoint");
	int                      rc;

	if ((rc = enrollment_existing(t, op, &e)) != 0)
		return rc;
	rc = store_enrollment_put(t, e);
	if (rc != 0)
		goto out;
	if (strcmp(ep, "tokens") == 0)
		rc = reply_json(op, json_pack("{s:{s:s, s:s}}", "SyncTokens",
		    "DeclarationsToken", token, "Timestamp",
		    "2026-01-01T00:00:00Z"));
	else if (strcmp(ep, "declaration-items") == 0)
		rc = reply_json(op, json_pack("{s:{s:[], s:[], s:[], s:[]}, "
		    "s:s}", "Declarations", "Activations", "Configurations",
		    "Assets", "Management", "DeclarationsToken", token));
	else if (strcmp(ep, "status") == 0) {
		if (msg_data(m, "Data", NULL) == NULL) {
			op->reason = "status report without Data";
			rc = 400;
		}
	} else if (strncmp(ep, "declaration/", 12) == 0) {
		op->reason = "no such declaration";
		rc = 404;
	} else {
		op->reason = "unknown declarative Endpoint";
		rc = 400;
	}
	if (rc == 0)
		rc = keep_raw(t, op, e);
out:
	store_enrollment_free(e);
	return rc;
}

/* GetToken: no token service is configured in this release. */
static int
do_get_token(struct store_txn *t, struct checkin_op *op)
{
	(void)t;
	return op->reason = "no token service configured for GetToken", 501;
}

/* The whole check-in inside the writer's transaction. */
static int
checkin_op_run(struct store_txn *t, void *arg)
{
	struct checkin_op *op = arg;
	int                rc;

	free(op->body);
	op->body = NULL;
	op->body_len = 0;
	op->ctype = NULL;
	op->reason = NULL;
	rc = identity_authorize(t, op->d.msg->device_id, op->d.hash,
	    op->d.msg->kind == MSG_AUTHENTICATE, op->d.srv->cfg->allow_retro,
	    &op->reason);
	if (rc != 0)
		return rc;
	switch (op->d.msg->kind) {
	case MSG_AUTHENTICATE:
		rc = do_authenticate(t, op);
		break;
	case MSG_TOKEN_UPDATE:
		rc = do_token_update(t, op);
		break;
	case MSG_CHECK_OUT:
		rc = do_check_out(t, op);
		break;
	case MSG_USER_AUTHENTICATE:
		rc = do_user_authenticate(t, op);
		break;
	case MSG_SET_BOOTSTRAP_TOKEN:
		rc = do_set_bootstrap(t, op);
		break;
	case MSG_GET_BOOTSTRAP_TOKEN:
		rc = do_get_bootstrap(t, op);
		break;
	case MSG_DECLARATIVE_MANAGEMENT:
		rc = do_declarative(t, op);
		break;
	case MSG_GET_TOKEN:
		rc = do_get_token(t, op);
		break;
	default:
		return op->reason = "not a check-in", 400;
	}
	/* The webhook event, in this transaction (none configured: none). */
	if (rc == 0)
		rc = webhook_event_put(t, &op->d.srv->cfg->webhook, op->d.msg,
		    op->d.req->body, op->d.req->body_len, op->d.req->query);
	return rc;
}

/* After the commit, in the writer thread: the reply, then it is sent. */
static void
checkin_done(int rc, void *arg)
{
	struct checkin_op *op = arg;

	if (rc == 0 && op->body != NULL &&
	    response_set_body(op->d.resp, op->ctype, op->body,
	    op->body_len) == -1)
		rc = STORE_ENOMEM;
	free(op->body);
	device_finish(&op->d, rc, op->reason);
}

int
checkin_handle(const struct server *srv, const struct request *req,
    struct response *resp, struct exchange *x)
{
	struct checkin_op *op;

	resp->msgtype = "checkin";
	if (strncasecmp(req->content_type,
	    "application/x-apple-aspen-mdm-checkin", 37) != 0) {
		response_set(resp, 415, "check-in needs Content-Type "
		    "application/x-apple-aspen-mdm-checkin");
		return HANDLED;
	}
	if ((op = (void *)device_begin(sizeof(*op), srv, req, resp, x,
	    msg_parse_checkin)) == NULL)
		return HANDLED;
	resp->msgtype = msg_kind_name(op->d.msg->kind);
	return device_submit(&op->d, checkin_op_run, checkin_done);
}
