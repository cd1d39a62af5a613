/*
 * fuzz-dep-response.c - fuzz what picomdm-dep reads from Apple's ADE
 * service (module/dep.c: dep_answer_parse, dep_answer_header): a session
 * answer, /account, a fetch or sync page of devices (cursor,
 * more_to_follow), the profile and details answers, error bodies of any
 * status, and header lines. The bytes come over the network (a
 * misbehaving or spoofed server, a proxy); whatever they are, the parse
 * gives what its kind promises or an error, and the devices of a page
 * and the account written to a scratch store (as tools/dep_store.c's
 * op_page does) read back as written.
 *
 * Input: a selector byte (bits 0-1: the kind, enum dep_answer; bit 7: the
 * rest is a header line instead), a status byte (< 128: 200, else one of
 * the statuses below), then the body.
 *
 * Built with -DPICOMDM_LIBFUZZER this is a libFuzzer target. Otherwise
 * main() replays the files and directories given, or
 * tests/fuzz/corpus/dep-response (through PICOMDM_TEST_DATA), as make
 * check does. "expect-000-..." must parse (DEP_OK), "expect-001-..." must
 * be refused.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picomdm/dep.h"
#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/store_ade.h"
#include "scratch.h"

#define FUZZ_INPUT_MAX (300 * 1024)
#define FZ_ABORT       1000 /* the op's "roll back", never a store_err */

static struct store *fz_store; /* scratch.h */

static const long fz_statuses[] = {400, 401, 403, 404, 405, 429, 500, 503,
    302, 204};

static void
fuzz_init(void)
{
	if (fz_store != NULL)
		return;
	log_set_level(LOG_ERROR);
	fz_store = scratch_open("fuzz-dep-response");
}

static int
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* The page's devices and the account, written as op_page writes them and
 * read back in the same transaction, which is then rolled back. */
static int
fz_write_op(struct store_txn *t, void *arg)
{
	const json_t		*o = arg, *e, *v;
	const json_t		*devs = json_object_get(o, "devices");
	struct store_ade_device	 d, *back;
	struct store_ade_token	 tk, *tb;
	size_t			 i, j;
	int			 rc, changed, added;

	for (i = 0; i < json_array_size(devs); i++) {
		e = json_array_get(devs, i);
		memset(&d, 0, sizeof(d));
		for (j = 0; json_is_object(e) && j < ADE_DEV__MAX; j++) {
			v = json_object_get(e, store_ade_field_names[j]);
			if (json_is_string(v))
				d.f[j] = (char *)(uintptr_t)json_string_value(v);
		}
		if (d.f[ADE_SERIAL] == NULL || *d.f[ADE_SERIAL] == '\0' ||
		    strlen(d.f[ADE_SERIAL]) > 255)
			continue;
		rc = store_ade_device_apply(t, "fz", &d, &changed, &added);
		if (rc == STORE_EINVAL)
			continue; /* a field the store does not take */
		if (rc != 0)
			return rc;
		if (!changed)
			continue;
		if (store_ade_device_get(t, d.f[ADE_SERIAL], &back) != 0)
			abort(); /* written, but does not read back */
		for (j = 0; j < ADE_DEV__MAX; j++)
			if (!same(d.f[j], back->f[j]))
				abort();
		if (!same(back->token, "fz"))
			abort();
		store_ade_device_free(back);
	}
	if (json_is_object(o) && json_object_get(o, "devices") == NULL) {
		/* An account answer: its fields on the token. */
		memset(&tk, 0, sizeof(tk));
		tk.name = (char *)(uintptr_t) "fz";
		for (j = 0; j < ADE_ACCT__MAX; j++)
			tk.acct[j] = (char *)(uintptr_t)json_string_value(
			    json_object_get(o, store_ade_account_names[j]));
		if ((rc = store_ade_token_put(t, &tk)) == STORE_EINVAL)
			return FZ_ABORT;
		if (rc != 0)
			return rc;
		if (store_ade_token_get(t, "fz", &tb) != 0)
			abort();
		for (j = 0; j < ADE_ACCT__MAX; j++)
			if (!same(tk.acct[j], tb->acct[j]))
				abort();
		store_ade_token_free(tb);
	}
	return FZ_ABORT;
}

static int
fuzz_one(const uint8_t *data, size_t size)
{
	enum dep_answer kind;
	enum dep_status s;
	json_t	       *out = NULL;
	char		code[64], session[4096];
	long		status, ra = -1;
	size_t		i;
	int		rc;

	if (size < 2)
		return 1;
	if (data[0] & 0x80) {
		memset(session, 'x', sizeof(session));
		session[0] = '\0';
		dep_answer_header((const char *)data + 2, size - 2, session,
		    sizeof(session), &ra);
		if (memchr(session, '\0', sizeof(session)) == NULL ||
		    ra < -1 || ra > 86400 * 7)
			abort();
		return session[0] != '\0' || ra >= 0 ? 0 : 1;
	}
	kind = (enum dep_answer)(data[0] % DEP_ANSWER__MAX);
	status = data[1] < 128 ? 200 :
	    fz_statuses[data[1] % (sizeof(fz_statuses) /
				      sizeof(fz_statuses[0]))];
	memset(code, 'x', sizeof(code));
	s = dep_answer_parse(kind, status, (const char *)data + 2, size - 2,
	    &out, code, sizeof(code));
	if (status != 200) {
		if (s == DEP_OK || out != NULL)
			abort();
		for (i = 0; code[i] != '\0'; i++)
			if (i + 1 >= sizeof(code) ||
			    !((code[i] >= 'A' && code[i] <= 'Z') ||
				(code[i] >= '0' && code[i] <= '9') ||
				code[i] == '_'))
				abort();
		return 1;
	}
	if (s != DEP_OK) {
		if (s != DEP_ERR_PROTOCOL || out != NULL)
			abort();
		return 1;
	}
	if (out == NULL)
		abort();
	if ((kind == DEP_ANSWER_DEVICES &&
		!json_is_string(json_object_get(out, "cursor"))) ||
	    (kind == DEP_ANSWER_ACCOUNT && !json_is_object(out)))
		abort();
	if (kind == DEP_ANSWER_DEVICES || kind == DEP_ANSWER_ACCOUNT) {
		fuzz_init();
		rc = store_write(fz_store, fz_write_op, out);
		if (rc != FZ_ABORT && rc != 0) {
			fprintf(stderr, "fuzz-dep-response: store: %s\n",
			    store_strerror(rc));
			abort();
		}
	}
	json_decref(out);
	return 0;
}

#include "replay.h"

REPLAY_TARGET("dep-response", .max = FUZZ_INPUT_MAX, .exact = 1, .statuses = 1);
