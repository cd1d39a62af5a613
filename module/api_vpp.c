/*
 * api_vpp.c - the operator API's Apps and Books views (picomdm-api(7)):
 * GET /api/v1/vpp/assets, /vpp/assignments, /vpp/users and /vpp/metadata
 * (the App Store metadata of the assets), what picomdm-vpp sync stored
 * (include/picomdm/store_vpp.h), of every token or the one named by
 * ?token=, paged by limit and after (api_page in api.c): "next" is an
 * opaque cursor, a place in the store's order, so a page neither repeats
 * nor skips a record when others are added or removed between requests.
 */
#include "config.h"

#include <string.h>

#include <jansson.h>

#include "api_int.h"
#include "picomdm/store.h"
#include "picomdm/store_vpp.h"

struct vpp_op {
	enum store_vpp_list list;
	const char	   *token, *after;
	struct api_page	    pg;
};

static int
vpp_cb(const char *token, const char *cursor, json_t *rec, void *arg)
{
	struct vpp_op *op = arg;
	int	       rc;

	if ((rc = api_page_step(&op->pg, cursor)) != 0)
		return rc;
	if (json_object_set_new(rec, "token", json_string(token)) != 0 ||
	    json_array_append(op->pg.arr, rec) != 0)
		return STORE_ENOMEM;
	return 0;
}

static int
vpp_run(struct store_txn *t, void *arg)
{
	struct vpp_op *op = arg;
	int	       rc;

	if ((rc = api_page_start(&op->pg, op->pg.limit)) != 0)
		return rc;
	return store_vpp_page(t, op->list, op->token, op->after, vpp_cb, op);
}

/* GET /api/v1/vpp/{assets|assignments|users}?token=&limit=&after= */
void
api_vpp(struct api *a)
{
	static const struct api_param qn[] = {
	    {"token", STORE_VPP_NAME_MAX, "any token's name"},
	    {"limit", 0, NULL}, {"after", STORE_VPP_CURSOR_MAX, "any cursor"}};
	static const char *const lists[STORE_VPP__MAX] = {
	    [STORE_VPP_ASSETS] = "assets",
	    [STORE_VPP_ASSIGNMENTS] = "assignments",
	    [STORE_VPP_USERS] = "users",
	    [STORE_VPP_META] = "metadata"};
	struct vpp_op op;
	char	     *qv[3];
	long long     limit;
	int	      i, rc;

	memset(&op, 0, sizeof(op));
	for (i = 0; i < STORE_VPP__MAX && strcmp(lists[i], a->seg[1]); i++)
		continue;
	if (i == STORE_VPP__MAX) {
		api_fail(a, 404, "not found",
		    "vpp: want assets, assignments, users or metadata");
		return;
	}
	op.list = (enum store_vpp_list)i;
	if (api_query(a, qn, 3, qv) == -1)
		return;
	if (api_num(a, "limit", qv[1], 1, API_LIMIT_MAX, API_LIMIT_DEF,
		&limit) == -1)
		goto out;
	op.token = qv[0];
	op.after = qv[2];
	op.pg.limit = (size_t)limit;
	rc = store_read(a->srv->store, vpp_run, &op);
	/* The token's length was checked (api_query): the cursor's fault. */
	if (rc == STORE_EINVAL) {
		api_fail(a, 400, "bad request",
		    "after: not a cursor of this list%s (give the \"next\" "
		    "of the page before)", op.token != NULL ? " and token" : "");
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	api_page_reply(a, &op.pg, lists[op.list]);
out:
	api_page_free(&op.pg);
	api_query_free(qv, 3);
}
