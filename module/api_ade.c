/*
 * api_ade.c - the operator API's view of the ADE device records
 * picomdm-dep(8) keeps in the store (picomdm/store_ade.h; picomdm-api(7)):
 *
 *   GET /api/v1/ade/devices[?token=&profile_status=&enrolled=&limit=&after=]
 *   GET /api/v1/ade/devices/{serial}
 *
 * Each device is Apple's record by Apple's field names, the token it came
 * through and when it was synced, and the MDM device ID of the same
 * serial ("device_id", null when the device has not enrolled).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "extern.h"
#include "picomdm/store.h"
#include "picomdm/store_ade.h"

#include "api_int.h"

/* The record as JSON with the enrolled device's ID; NULL: no memory. */
static json_t *
ade_json(struct store_txn *t, const struct store_ade_device *d, int *enrolled,
    int *rc)
{
	json_t *o;
	char   *id = NULL;

	*rc = store_device_by_serial(t, d->f[ADE_SERIAL], &id);
	if (*rc != 0 && *rc != STORE_ENOTFOUND)
		return NULL;
	*enrolled = *rc == 0;
	*rc = 0;
	if ((o = store_ade_device_json(d)) == NULL ||
	    api_set(o, "device_id",
		id != NULL ? json_string(id) : json_null()) == -1) {
		json_decref(o);
		o = NULL;
		*rc = STORE_ENOMEM;
	}
	free(id);
	return o;
}

struct ade_list_op {
	struct store_txn *t;
	const char	 *token, *status, *after;
	int		  enrolled; /* -1: either */
	struct api_page	  pg;	    /* cursors: serial numbers */
};

static int
list_cb(const struct store_ade_device *d, void *arg)
{
	struct ade_list_op *op = arg;
	json_t		   *o;
	int		    enrolled, rc;

	if ((rc = api_page_step(&op->pg, d->f[ADE_SERIAL])) != 0)
		return rc;
	if (op->token != NULL &&
	    (d->token == NULL || strcmp(d->token, op->token) != 0))
		return 0;
	if (op->status != NULL &&
	    (d->f[ADE_PROFILE_STATUS] == NULL ||
		strcmp(d->f[ADE_PROFILE_STATUS], op->status) != 0))
		return 0;
	if ((o = ade_json(op->t, d, &enrolled, &rc)) == NULL)
		return rc != 0 ? rc : STORE_ENOMEM;
	if (op->enrolled >= 0 && enrolled != op->enrolled) {
		json_decref(o);
		return 0;
	}
	return json_array_append_new(op->pg.arr, o) == 0 ? 0 : STORE_ENOMEM;
}

static int
list_run(struct store_txn *t, void *arg)
{
	struct ade_list_op *op = arg;
	int		    rc;

	op->t = t;
	if ((rc = api_page_start(&op->pg, op->pg.limit)) != 0)
		return rc;
	return store_ade_device_each(t, op->after, list_cb, op);
}

/* Is this the "devices" collection? Answers 404 when not. */
static int
is_devices(struct api *a)
{
	if (strcmp(a->seg[1], "devices") == 0)
		return 1;
	api_fail(a, 404, "not found", "no such endpoint");
	return 0;
}

/*
 * GET /api/v1/ade/devices: token (a token's name), profile_status
 * (Apple's value, e.g. "empty", "assigned", "pushed", "removed"),
 * enrolled (true or false: whether a device of that serial has checked
 * in), limit (default 100, at most 1000) and after (a serial). "next" is
 * the after of the next page, null at the end; a page may hold fewer
 * than limit devices when the filters skip many (the scan per request is
 * bounded), so only a null next means the end.
 */
void
api_ade_devices(struct api *a)
{
	static const struct api_param qn[] = {
	    {"token", STORE_ADE_NAME_MAX, "any token's name"},
	    {"profile_status", 0, NULL}, {"enrolled", 0, NULL},
	    {"limit", 0, NULL}, {"after", STORE_KEY_MAX, "any serial number"}};
	struct ade_list_op op;
	char		  *qv[5];
	long long	   limit;
	int		   rc;

	if (!is_devices(a) || api_query(a, qn, 5, qv) == -1)
		return;
	memset(&op, 0, sizeof(op));
	op.token = qv[0];
	op.status = qv[1];
	op.after = qv[4];
	op.enrolled = -1;
	if (qv[2] != NULL) {
		if (strcmp(qv[2], "true") == 0 || strcmp(qv[2], "1") == 0)
			op.enrolled = 1;
		else if (strcmp(qv[2], "false") == 0 || strcmp(qv[2], "0") == 0)
			op.enrolled = 0;
		else {
			api_fail(a, 400, "bad request",
			    "enrolled: want true or false");
			goto out;
		}
	}
	if (api_num(a, "limit", qv[3], 1, API_LIMIT_MAX, API_LIMIT_DEF,
		&limit) == -1)
		goto out;
	op.pg.limit = (size_t)limit;
	if ((rc = store_read(a->srv->store, list_run, &op)) != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	api_page_reply(a, &op.pg, "devices");
out:
	api_page_free(&op.pg);
	api_query_free(qv, 5);
}

struct ade_one_op {
	const char *serial;
	json_t	   *out;
};

static int
one_run(struct store_txn *t, void *arg)
{
	struct ade_one_op	*op = arg;
	struct store_ade_device *d = NULL;
	int			 rc, enrolled;

	json_decref(op->out);
	op->out = NULL;
	if ((rc = store_ade_device_get(t, op->serial, &d)) != 0)
		return rc;
	op->out = ade_json(t, d, &enrolled, &rc);
	store_ade_device_free(d);
	return op->out == NULL ? (rc != 0 ? rc : STORE_ENOMEM) : 0;
}

/* GET /api/v1/ade/devices/{serial}: 404 when no ADE record has it. */
void
api_ade_device(struct api *a)
{
	struct ade_one_op op = {NULL, NULL};
	int		  rc;

	if (!is_devices(a) || api_query(a, NULL, 0, NULL) == -1)
		return;
	op.serial = a->seg[2];
	rc = store_read(a->srv->store, one_run, &op);
	if (rc == STORE_ENOTFOUND) {
		api_fail(
		    a, 404, "not found", "no ADE device %.255s", op.serial);
		return;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		return;
	}
	api_reply(a, 200, op.out);
}
