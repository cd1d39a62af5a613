/*
 * connect.c - command reports and next-command delivery (Apple's MDM
 * command protocol; README.md, "The protocol as implemented").
 *
 * The report is stored byte-for-byte with its status, even when it does
 * not match Apple's response schema (checked against the response keys
 * of its command's RequestType), so one odd result never blocks a
 * queue. The reply is the next command's plist exactly as enqueued, or an
 * empty 200. Selection is priority, then enqueue order, among commands
 * with no result; NotNow'd ones are skipped only when the report itself is
 * NotNow. A command sent and not answered is sent again (at-least-once).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "picomdm/identity.h"
#include "picomdm/log.h"
#include "picomdm/message.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

struct connect_op {
	struct device_op      d;
	/* outputs, reset on every run */
	const char           *reason;
	struct store_command *next;
	int                   known;
};

static int
connect_op_run(struct store_txn *t, void *arg)
{
	struct connect_op    *op = arg;
	const struct mdm_msg *m = op->d.msg;
	uint64_t              eid;
	int                   rc;

	store_command_free(op->next);
	op->next = NULL;
	op->reason = NULL;
	op->known = 0;
	if ((rc = identity_authorize(t, m->device_id, op->d.hash, 0,
	    op->d.srv->cfg->allow_retro, &op->reason)) != 0)
		return rc;
	if ((rc = store_enrollment_touch_eid(t, m->id, &eid)) ==
	    STORE_ENOTFOUND)
		return op->reason = "enrollment not found", 403;
	if (rc != 0)
		return rc;
	if (m->status != CMD_STATUS_IDLE &&
	    (rc = store_result_put_eid(t, eid, m->command_uuid, m->status,
	    op->d.req->body, op->d.req->body_len, m->well_formed,
	    &op->known)) != 0)
		return rc;
	/* The webhook event, in this transaction (none configured: none). */
	if ((rc = webhook_event_put(t, &op->d.srv->cfg->webhook, m,
	    op->d.req->body, op->d.req->body_len, op->d.req->query)) != 0)
		return rc;
	rc = store_queue_next_eid(t, eid, m->status == CMD_STATUS_NOT_NOW,
	    &op->next);
	return rc == STORE_ENOTFOUND ? 0 : rc;
}

struct type_op {
	const char *uuid;
	char       *rtype;
};

static int
type_op_run(struct store_txn *t, void *arg)
{
	struct type_op *op = arg;

	return store_command_type(t, op->uuid, &op->rtype);
}

/*
 * An Acknowledged report's keys against Apple's response schema for its
 * command's RequestType, read before the write (in the worker, not the
 * writer). A CommandUUID we never stored, or a failed read, leaves the
 * report as parsed: it is stored either way.
 */
static void
check_response(const struct server *srv, struct mdm_msg *m)
{
	struct type_op op = { m->command_uuid, NULL };

	if (m->status != CMD_STATUS_ACKNOWLEDGED)
		return;
	if (store_read(srv->store, type_op_run, &op) == 0)
		msg_check_response(m, op.rtype);
	free(op.rtype);
}

/*
 * After the commit, in the writer thread: the next command (if any) is the
 * reply; then it is sent.
 */
static void
connect_done(int rc, void *arg)
{
	struct connect_op    *op = arg;
	const struct mdm_msg *m = op->d.msg;

	if (rc == 0 && !m->well_formed)
		log_warn("connect %s: result %s kept raw: %s", m->command_uuid,
		    "not well-formed", m->reason ? m->reason : "-");
	if (rc == 0 && m->status != CMD_STATUS_IDLE && !op->known)
		log_warn("connect: report for %s that was not queued "
		    "(duplicate or unknown), recorded", m->command_uuid);
	if (rc == 0 && op->next != NULL &&
	    response_set_body(op->d.resp, "application/xml; charset=utf-8",
	    op->next->raw, op->next->raw_len) == -1)
		rc = STORE_ENOMEM;
	store_command_free(op->next);
	device_finish(&op->d, rc, op->reason);
}

int
connect_handle(const struct server *srv, const struct request *req,
    struct response *resp, struct exchange *x)
{
	struct connect_op *op;

	resp->msgtype = "connect";
	if ((op = (void *)device_begin(sizeof(*op), srv, req, resp, x,
	    msg_parse_connect)) == NULL)
		return HANDLED;
	resp->msgtype = cmd_status_name(op->d.msg->status);
	check_response(srv, op->d.msg);
	return device_submit(&op->d, connect_op_run, connect_done);
}
