/*
 * fuzz-checkin.c - fuzz the device-message parsers: each input is a
 * request body given to msg_parse_checkin() and to msg_parse_connect(),
 * which run the depth scanner, the XML parse (libplist) and validation,
 * and an accepted report to msg_check_response() against one command's
 * response keys.
 * The buffer is passed as is, not NUL-terminated, so that a read past the
 * body is caught.
 *
 * Every body's verdict and tree from plist_safe_parse(), which builds
 * most trees itself, must be those of plist_safe_parse_libplist(), which
 * has libplist's parser make every tree; a difference aborts.
 *
 * Beyond "no crash", accepted messages must keep the invariants handlers
 * rely on (IDs within MSG_ID_MAX and consistent with the channel, a
 * CommandUUID on every report but Idle, a reason whenever a report is not
 * well-formed); a violation aborts.
 *
 * Built with -DPICOMDM_LIBFUZZER (clang -fsanitize=fuzzer,...) this is a
 * libFuzzer target. Otherwise main() replays the files and directories
 * given as arguments, or tests/fuzz/corpus/checkin (found through
 * PICOMDM_TEST_DATA) when there are none, which is how make check runs it.
 * A corpus file named "expect-NNN-MMM-..." must also give check-in status
 * NNN and connect status MMM (0 for success); other files (crashes kept
 * as regressions) only must not crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/schema.h"
#include "builder.h"

#define FUZZ_INPUT_MAX (4 * 1024 * 1024)

/* Abort unless an accepted message keeps the documented invariants. */
static void
fuzz_check_msg(const struct mdm_msg *m)
{
	size_t idlen = strnlen(m->id, sizeof(m->id));
	size_t devlen = strnlen(m->device_id, sizeof(m->device_id));

	if (idlen == 0 || idlen > MSG_ID_MAX || devlen == 0 ||
	    devlen > MSG_IDENT_MAX || strncmp(m->id, m->device_id, devlen) != 0)
		abort();
	if (m->user_channel != (idlen != devlen))
		abort();
	if (m->user_channel && m->id[devlen] != ':')
		abort();
	if (m->type <= ENROLL_NONE || m->type >= ENROLL__MAX)
		abort();
	if (m->root == NULL || plist_get_node_type(m->root) != PLIST_DICT)
		abort();
	if (!m->well_formed && m->reason == NULL)
		abort();
	if (msg_str(m, "Nope") != NULL)
		abort();
	/* Touch what handlers read, so ASan sees every byte. */
	(void)msg_kind_name(m->kind);
	(void)enroll_type_name(m->type);
}

/*
 * Nesting depth of dicts and arrays in a parsed tree (the root dict is 1).
 * Called only on trees plist_safe_parse() accepted, so the recursion is
 * shallow unless the depth scanner undercounted, which is what it checks.
 */
static int
fuzz_tree_depth(plist_t node)
{
	plist_type t = plist_get_node_type(node);
	int	   max = 0, d;

	if (t == PLIST_DICT) {
		plist_dict_iter it = NULL;
		plist_t		v = NULL;
		char	       *key = NULL;

		plist_dict_new_iter(node, &it);
		if (it == NULL)
			abort();
		for (;;) {
			v = NULL;
			plist_dict_next_item(node, it, &key, &v);
			free(key);
			key = NULL;
			if (v == NULL)
				break;
			if ((d = fuzz_tree_depth(v)) > max)
				max = d;
		}
		free(it);
		return max + 1;
	}
	if (t == PLIST_ARRAY) {
		uint32_t i, n = plist_array_get_size(node);

		for (i = 0; i < n; i++)
			if ((d = fuzz_tree_depth(
				 plist_array_get_item(node, i))) > max)
				max = d;
		return max + 1;
	}
	return 0;
}

/*
 * Run one body through both parsers; returns the two statuses packed as
 * checkin * 1000 + connect. First, the depth scanner must never report
 * less nesting than libplist then builds (self-closing empty containers
 * aside, which it does not count and which add at most one leaf level).
 */
static int
fuzz_one(const uint8_t *data, size_t size)
{
	struct mdm_msg	    *m = NULL;
	const char	    *r = NULL;
	const unsigned char *d;
	size_t		     n;
	int		     rc1, rc2, depth;
	plist_t		     p = NULL;
	enum plist_safe_err  e;

	e = plist_safe_parse((const char *)data, size, &p);
	/* The tree plist_safe_parse built itself is libplist's. */
	if (builder_differs((const char *)data, size, e, p) != NULL)
		abort();
	if (e == PLIST_SAFE_OK) {
		depth = plist_xml_depth((const char *)data, size, 1000000);
		/* + 1: a self-closing <dict/> or <array/> leaf is a node. */
		if (depth > PLIST_DEPTH_MAX || fuzz_tree_depth(p) > depth + 1)
			abort();
		plist_free(p);
	}

	rc1 = msg_parse_checkin((const char *)data, size, &m, &r);
	if (rc1 == 0) {
		if (m == NULL || m->kind >= MSG_CONNECT)
			abort();
		fuzz_check_msg(m);
		(void)msg_str(m, "Topic");
		(void)msg_str(m, "PushMagic");
		(void)msg_bool(m, "AwaitingConfiguration", 0);
		if ((d = msg_data(m, "Token", &n)) != NULL &&
		    (n == 0 || n > 256))
			abort();
		msg_free(m);
	} else if (m != NULL || r == NULL)
		abort();

	m = NULL;
	r = NULL;
	rc2 = msg_parse_connect((const char *)data, size, &m, &r);
	if (rc2 == 0) {
		if (m == NULL || m->kind != MSG_CONNECT)
			abort();
		fuzz_check_msg(m);
		if (m->status < CMD_STATUS_IDLE ||
		    m->status > CMD_STATUS_NOT_NOW)
			abort();
		if ((m->status == CMD_STATUS_IDLE) != (m->command_uuid == NULL))
			abort();
		if (m->command_uuid != NULL &&
		    (m->command_uuid[0] == '\0' ||
			strlen(m->command_uuid) > 255))
			abort();
		if ((r != NULL) != !m->well_formed)
			abort();
		(void)msg_node(m, "ErrorChain");
		{
			/* Against one RequestType's response keys, picked
			 * by the input's length so each table is reached. */
			const struct schema_msg *sm =
			    &schema_commands[size % schema_commands_len];
			int was = m->well_formed;

			msg_check_response(m, sm->name);
			if ((m->well_formed && !was) ||
			    (!m->well_formed && m->reason == NULL))
				abort();
		}
		msg_free(m);
	} else if (m != NULL || r == NULL)
		abort();
	return rc1 * 1000 + rc2;
}

#include "replay.h"

REPLAY_TARGET("checkin", .max = FUZZ_INPUT_MAX, .exact = 1, .statuses = 2);
