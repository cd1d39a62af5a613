/*
 * fuzz-api.c - fuzz the operator API's command builders: each input is
 * an enqueue body given to command_from_json() (the POST form: jansson,
 * then conversion against Apple's command schema) and to
 * command_from_plist() (the PUT form: the depth scanner, libplist, the
 * schema checks). The buffer is passed as is, not NUL-terminated, so that
 * a read past the body is caught.
 *
 * Beyond "no crash", an accepted command must keep the invariants the
 * store and devices rely on: a CommandUUID of 1 to COMMAND_UUID_MAX
 * printable bytes, a RequestType the schema knows, and stored bytes that
 * parse back (plist_safe_parse) to a dict whose CommandUUID and
 * Command.RequestType are those; for the PUT form, the stored bytes are
 * the body. A refusal must be 400 (or 500) with a message. The accepted
 * plist is also turned back into JSON (command_plist_json), as the API
 * shows it. A violation aborts.
 *
 * Built with -DPICOMDM_LIBFUZZER (clang -fsanitize=fuzzer,...) this is a
 * libFuzzer target. Otherwise main() replays the files and directories
 * given as arguments, or tests/fuzz/corpus/api (found through
 * PICOMDM_TEST_DATA) when there are none, which is how make check runs it.
 * A corpus file named "expect-NNN-MMM-..." must also give JSON status NNN
 * and plist status MMM (0 for success); other files (crashes kept as
 * regressions) only must not crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <plist/plist.h>

#include "picomdm/command.h"
#include "picomdm/plist.h"
#include "picomdm/schema.h"

#define FUZZ_INPUT_MAX (1024 * 1024)

/* Abort unless an accepted command keeps the documented invariants. */
static void
fuzz_check_cmd(const struct command *c)
{
	plist_t	    root = NULL, cmd;
	const char *s;
	json_t	   *j;
	size_t	    i, n;

	if (c == NULL || c->uuid == NULL || c->request_type == NULL ||
	    c->raw == NULL || c->raw_len == 0)
		abort();
	n = strlen(c->uuid);
	if (n == 0 || n > COMMAND_UUID_MAX)
		abort();
	for (i = 0; i < n; i++)
		if (c->uuid[i] <= ' ' || c->uuid[i] > '~')
			abort();
	if (schema_command_find(c->request_type) == NULL)
		abort();
	if (plist_safe_parse((const char *)c->raw, c->raw_len, &root) !=
	    PLIST_SAFE_OK)
		abort();
	if ((s = plist_dict_str(root, "CommandUUID")) == NULL ||
	    strcmp(s, c->uuid) != 0)
		abort();
	cmd = plist_dict_get_item(root, "Command");
	if ((s = plist_dict_str(cmd, "RequestType")) == NULL ||
	    strcmp(s, c->request_type) != 0)
		abort();
	if ((j = command_plist_json(root)) == NULL)
		abort();
	json_decref(j);
	plist_free(root);
}

/* A refusal: a known status with a NUL-terminated, non-empty message. */
static void
fuzz_check_refusal(
    int rc, const struct command *c, const char *err, size_t errsz)
{
	if ((rc != 400 && rc != 500) || c != NULL)
		abort();
	if (memchr(err, '\0', errsz) == NULL || err[0] == '\0')
		abort();
}

/*
 * Run one body through both builders; returns the two statuses packed as
 * json * 1000 + plist.
 */
static int
fuzz_one(const uint8_t *data, size_t size)
{
	struct command *c = NULL;
	char		err[COMMAND_ERR_SIZE];
	int		rc1, rc2;

	memset(err, 'x', sizeof(err));
	rc1 = command_from_json((const char *)data, size, &c, err, sizeof(err));
	if (rc1 == 0)
		fuzz_check_cmd(c);
	else
		fuzz_check_refusal(rc1, c, err, sizeof(err));
	command_free(c);
	c = NULL;

	memset(err, 'x', sizeof(err));
	rc2 =
	    command_from_plist((const char *)data, size, &c, err, sizeof(err));
	if (rc2 == 0) {
		fuzz_check_cmd(c);
		if (c->raw_len != size || memcmp(c->raw, data, size) != 0)
			abort();
	} else
		fuzz_check_refusal(rc2, c, err, sizeof(err));
	command_free(c);
	return rc1 * 1000 + rc2;
}

#include "replay.h"

REPLAY_TARGET("api", .max = FUZZ_INPUT_MAX, .exact = 1, .statuses = 2);
