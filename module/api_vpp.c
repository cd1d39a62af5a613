/*
 * api_vpp.c - the operator API's Apps and Books views (picomdm-api(7)):
 * GET /api/v1/vpp/assets, /vpp/assignments, /vpp/users and /vpp/metadata
 * (the App Store metadata of the assets), what picomdm-vpp sync stored
 * (include/picomdm/store_vpp.h), of every token or the one named by
 * ?token=, paged by offset and limit.
 */
#include "config.h"

#include <string.h>

#include <jansson.h>

#include "api_int.h"
#include "picomdm/store.h"
#include "picomdm/store_vpp.h"

struct vpp_op {
	enum store_vpp_list list;
	const char	   *token;
	size_t		    offset, limit;
	size_t		    seen;
	int		    more;
	json_t		   *arr;
};

static int
vpp_cb(const char *token, json_t *rec, void *arg)
{
	struct vpp_op *op = arg;

	if (op->seen++ < op->offset)
		return 0;
	if (json_array_size(op->arr) == op->limit) {
		op->more = 1;
		return 1;
	}
	if (json_object_set_new(rec, "token", json_string(token)) != 0 ||
	    json_array_append(op->arr, rec) != 0)
		return STORE_ENOMEM;
	return 0;
}

static int
vpp_run(struct store_txn *t, void *arg)
{
	struct vpp_op *op = arg;

	json_array_clear(op->arr);
	op->seen = 0;
	op->more = 0;
	return store_vpp_each(t, op->list, op->token, vpp_cb, op);
}

/* GET /api/v1/vpp/{assets|assignments|users}?token=&offset=&limit= */
void
api_vpp(struct api *a)
{
	static const char *const qn[] = {"token", "offset", "limit"};
	static const char *const lists[STORE_VPP__MAX] = {
	    [STORE_VPP_ASSETS] = "assets",
	    [STORE_VPP_ASSIGNMENTS] = "assignments",
	    [STORE_VPP_USERS] = "users",
	    [STORE_VPP_META] = "metadata"};
	struct vpp_op op;
	char	     *qv[3];
	long long     offset, limit;
	json_t	     *o;
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
	if (api_num(a, "offset", qv[1], 0, 1LL << 40, 0, &offset) == -1 ||
	    api_num(a, "limit", qv[2], 1, API_LIMIT_MAX, API_LIMIT_DEF,
		&limit) == -1)
		goto out;
	if (qv[0] != NULL && *qv[0] == '\0') {
		api_fail(a, 400, "bad request", "token: empty");
		goto out;
	}
	op.token = qv[0];
	op.offset = (size_t)offset;
	op.limit = (size_t)limit;
	if ((op.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	if ((rc = store_read(a->srv->store, vpp_run, &op)) != 0) {
		json_decref(op.arr);
		api_store_fail(a, rc);
		goto out;
	}
	o = json_object();
	if (o == NULL || api_set(o, lists[op.list], op.arr) == -1 ||
	    api_set(o, "next",
		op.more ? json_integer((json_int_t)(op.offset + op.limit))
			: json_null()) == -1) {
		json_decref(o);
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	api_reply(a, 200, o);
out:
	api_query_free(qv, 3);
}
