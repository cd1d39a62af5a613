/*
 * fuzz-vpp-response.c - fuzz what picomdm-vpp reads from Apple's Apps
 * and Books service (module/vpp.c: vpp_answer, vpp_answer_header,
 * vpp_config_check, vpp_page_check; tools/vpp_meta.c: vpp_meta_record):
 * the service and client configurations, the assets, assignments and
 * users pages, the metadata lookup's results, errorNumber bodies of any
 * status, and header lines. The bytes come over the network (a
 * misbehaving or spoofed server, a proxy); whatever they are, an answer
 * is an object or an error with a message, and what a page or a lookup
 * gives is written to a scratch store (store_vpp_put,
 * store_vpp_meta_put) and reads back.
 *
 * Input: a selector byte (bits 0-2: 0 any answer, 1 service
 * configuration, 2 client configuration, 3 assets, 4 assignments,
 * 5 users, 6 metadata lookup; bit 7: the rest is a header line), a
 * status byte (< 128: 200, else one of the statuses below), the body.
 *
 * Built with -DPICOMDM_LIBFUZZER this is a libFuzzer target. Otherwise
 * main() replays the files and directories given, or
 * tests/fuzz/corpus/vpp-response (through PICOMDM_TEST_DATA), as make
 * check does. "expect-000-..." must be accepted, "expect-001-..."
 * refused.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/store_vpp.h"
#include "picomdm/vpp.h"
#include "../../tools/vpp_meta.h"
#include "scratch.h"

#define FUZZ_INPUT_MAX (300 * 1024)
#define FZ_ABORT       1000 /* the op's "roll back", never a store_err */

static struct store *fz_store; /* scratch.h */

static const long fz_statuses[] = {400, 401, 403, 404, 429, 500, 503, 302};

static void
fuzz_init(void)
{
	if (fz_store != NULL)
		return;
	log_set_level(LOG_ERROR);
	fz_store = scratch_open("fuzz-vpp-response");
}

static const char *const fz_arrays[] = {"assets", "assignments", "users"};

struct fz_op {
	int	kind; /* 3..5 a page, 6 a lookup */
	json_t *o;
};

static int
count_cb(const char *token, json_t *rec, void *arg)
{
	(void)token;
	if (!json_is_object(rec))
		abort();
	(*(size_t *)arg)++;
	return 0;
}

/* Write what the answer gives, read it back, roll back. */
static int
fz_write_op(struct store_txn *t, void *arg)
{
	struct fz_op *op = arg;
	const char   *k, *f;
	json_t	     *x, *y, *r, *back;
	size_t	      i, put = 0, seen = 0;
	int	      rc;

	if (op->kind >= 3 && op->kind <= 5) {
		enum store_vpp_list l = (enum store_vpp_list)(op->kind - 3);

		json_array_foreach(json_object_get(op->o, fz_arrays[l]), i, x) {
			rc = store_vpp_put(t, l, "fz", x);
			if (rc == STORE_EINVAL)
				continue;
			if (rc != 0)
				return rc;
			put++;
		}
		if ((rc = store_vpp_each(t, l, "fz", count_cb, &seen)) != 0)
			return rc;
		/* Records of one key replace each other. */
		if (seen > put || (put > 0 && seen == 0))
			abort();
		return FZ_ABORT;
	}
	json_object_foreach(json_object_get(op->o, "results"), k, x) {
		if ((r = vpp_meta_record(k, x)) == NULL)
			return STORE_ENOMEM;
		rc = store_vpp_meta_put(t, "fz", r);
		if (rc == STORE_EINVAL) {
			json_decref(r);
			continue;
		}
		if (rc != 0) {
			json_decref(r);
			return rc;
		}
		if (store_vpp_meta_get(t, "fz", k, &back) != 0)
			abort(); /* written, but does not read back */
		/* Every field written reads back equal (synced_at added). */
		json_object_foreach(r, f, y)
			if (!json_equal(y, json_object_get(back, f)))
				abort();
		json_decref(back);
		json_decref(r);
	}
	return FZ_ABORT;
}

static int
fuzz_one(const uint8_t *data, size_t size)
{
	struct vpp_error e;
	struct fz_op	 op;
	json_t		*o;
	long		 status, ra = -1;
	long long	 total;
	double		 rps = VPP_RPS_DEFAULT;
	int		 kind, number, rc;

	if (size < 2)
		return 1;
	if (data[0] & 0x80) {
		vpp_answer_header((const char *)data + 2, size - 2, &ra);
		if (ra < -1)
			abort();
		return ra >= 0 ? 0 : 1;
	}
	kind = data[0] & 7;
	status = data[1] < 128 ? 200 :
	    fz_statuses[data[1] % (sizeof(fz_statuses) /
				      sizeof(fz_statuses[0]))];
	memset(&e, 'x', sizeof(e));
	o = vpp_answer(status, size > 2 ? (const char *)data + 2 : NULL,
	    size - 2, &e, &number);
	if (o == NULL) {
		if (memchr(e.message, '\0', sizeof(e.message)) == NULL ||
		    e.message[0] == '\0' || e.number != number)
			abort();
		return 1;
	}
	if (status != 200 || number != 0 || !json_is_object(o) ||
	    e.http != 0 || e.message[0] != '\0')
		abort();
	rc = 0;
	switch (kind) {
	case 1:
		rc = vpp_config_check(o, &rps, &e);
		if (rc == 0 && (rps <= 0 || rps > VPP_RPS_DEFAULT))
			abort();
		break;
	case 2: /* the client configuration: its strings are copied */
		break;
	case 3:
	case 4:
	case 5:
		total = -1;
		rc = vpp_page_check(o, fz_arrays[kind - 3],
		    json_integer_value(json_object_get(o,
			"currentPageIndex")),
		    &total, &e);
		if (rc == 0 && total < 1)
			abort();
		if (rc != 0 &&
		    memchr(e.message, '\0', sizeof(e.message)) == NULL)
			abort();
		break;
	case 6:
		if (!json_is_object(json_object_get(o, "results")))
			rc = -1;
		break;
	default:
		break;
	}
	if (rc == 0 && kind >= 3 && kind <= 6) {
		fuzz_init();
		op.kind = kind;
		op.o = o;
		rc = store_write(fz_store, fz_write_op, &op);
		if (rc != FZ_ABORT && rc != 0) {
			fprintf(stderr, "fuzz-vpp-response: store: %s\n",
			    store_strerror(rc));
			abort();
		}
		rc = 0;
	}
	json_decref(o);
	return rc == 0 ? 0 : 1;
}

#include "replay.h"

REPLAY_TARGET("vpp-response", .max = FUZZ_INPUT_MAX, .exact = 1, .statuses = 1);
