/*
 * fuzz-dep-token.c - fuzz dep_token_content_parse: the decrypted content
 * of an ADE server token (a MIME text part whose body is the JSON with
 * the OAuth credentials, optionally between BEGIN/END MESSAGE lines and
 * line-wrapped; see include/picomdm/dep.h). The bytes come from Apple
 * through a file an administrator downloads; whatever they are, the
 * parse gives all four credentials or none, and no crash or leak.
 *
 * Built with -DPICOMDM_LIBFUZZER this is a libFuzzer target. Otherwise
 * main() replays the files and directories given, or
 * tests/fuzz/corpus/dep-token (through PICOMDM_TEST_DATA), as make check
 * does. A corpus file named "expect-000-..." must parse, one named
 * "expect-001-..." must be refused.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "picomdm/dep.h"

#define FUZZ_INPUT_MAX (300 * 1024)

static int
fuzz_one(const uint8_t *data, size_t size)
{
	struct dep_oauth o;
	enum dep_status	 s;

	s = dep_token_content_parse((const char *)data, size, &o);
	if (s == DEP_OK) {
		if (o.consumer_key == NULL || o.consumer_secret == NULL ||
		    o.access_token == NULL || o.access_secret == NULL)
			abort();
	} else {
		if (s != DEP_ERR_TOKEN_FORMAT || o.consumer_key != NULL ||
		    o.consumer_secret != NULL || o.access_token != NULL ||
		    o.access_secret != NULL)
			abort();
	}
	dep_oauth_clear(&o);
	return s == DEP_OK ? 0 : 1;
}

#include "replay.h"

REPLAY_TARGET("dep-token", .max = FUZZ_INPUT_MAX, .exact = 1, .statuses = 1);
