/*
 * device.c - what the check-in and command endpoints share: who is calling
 * (identity.c) and what it sent (validate.c), then the hand-over to the
 * group-commit writer and, once the write is durable, to the thread that
 * sends the reply. The decision itself is the caller's operation
 * (checkin.c, connect.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "extern.h"
#include "picomdm/identity.h"
#include "picomdm/message.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

int
device_begin(struct device_op *d, const struct server *srv,
    const struct request *req, struct response *resp, struct exchange *x,
    device_parse_fn parse)
{
	const char *reason = NULL;
	int         rc;

	d->srv = srv;
	d->req = req;
	d->resp = resp;
	d->x = x;
	d->msg = NULL;
	rc = identity_verify(srv->ca, req->client_cert, req->client_verify,
	    req->mdm_signature, req->body, req->body_len, d->hash, &reason);
	if (rc == 0)
		rc = parse((const char *)req->body, req->body_len, &d->msg,
		    &reason);
	if (rc != 0) {
		response_set(resp, rc, reason);
		return -1;
	}
	strlcpy(resp->id, d->msg->id, sizeof(resp->id));
	return 0;
}

int
device_submit(struct device_op *d, void *op, store_op_fn run,
    store_done_fn done)
{
	int rc;

	if ((rc = store_submit(d->srv->store, run, op, done, op)) == 0)
		return PENDING;
	response_store_result(d->resp, rc, NULL);
	msg_free(d->msg);
	free(op);
	return HANDLED;
}

void
device_finish(struct device_op *d, void *op, int rc, const char *reason)
{
	struct exchange *x = d->x;

	response_store_result(d->resp, rc, reason);
	msg_free(d->msg);
	free(op);
	exchange_done(x);
}
