/*
 * ctl_queue.c - picomdmctl enqueue, queue, results and cancel: the
 * command queue on the same store as the responder, without it. The
 * output is the JSON the operator API gives (module/api.c), and the
 * checks on a command are the API's (command.h): a raw command plist or
 * its JSON form, told apart by the first character.
 *
 *	enqueue ID[,ID...] FILE|- [--priority N] [--expires T]
 *	queue ID
 *	results ID [--limit N] [--before SEQ]
 *	cancel ID [UUID]
 *
 * Enrollment IDs are given as they are (no percent-encoding here).
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl.h"
#include "picomdm/command.h"
#include "picomdm/message.h"
#include "picomdm/push.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

/* A command file is at most this big (the API's default cap). */
#define CTL_COMMAND_MAX (8u * 1024 * 1024)
#define CTL_LIMIT_MAX	1000

/* Print o (reference taken) indented, as picomdmctl show does. */
static void
print_json(json_t *o)
{
	if (o == NULL) {
		fprintf(stderr, "picomdmctl: out of memory\n");
		return;
	}
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(o);
}

/*
 * Split argv[1..argc) into positional arguments (at most npos) and the
 * options named in opts, each taking a value ("--name V" or
 * "--name=V"); "--" ends the options. vals[i] borrows from argv.
 * Returns the number of positional arguments, -1 on a usage error, or -2
 * for --help (-h).
 */
static int
ctl_args(struct ctl *c, const char **pos, int npos, const char *const *opts,
    const char **vals, int nopts)
{
	int    i, j, n = 0, dashdash = 0;
	size_t l;

	for (j = 0; j < nopts; j++)
		vals[j] = NULL;
	for (i = 1; i < c->argc; i++) {
		const char *a = c->argv[i];

		if (!dashdash && strcmp(a, "--") == 0) {
			dashdash = 1;
			continue;
		}
		if (!dashdash &&
		    (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0))
			return -2;
		if (dashdash || strncmp(a, "--", 2) != 0) {
			if (n == npos)
				return -1;
			pos[n++] = a;
			continue;
		}
		for (j = 0; j < nopts; j++) {
			l = strlen(opts[j]);
			if (strncmp(a + 2, opts[j], l) != 0)
				continue;
			if (a[2 + l] == '=') {
				vals[j] = a + 3 + l;
				break;
			}
			if (a[2 + l] == '\0' && i + 1 < c->argc) {
				vals[j] = c->argv[++i];
				break;
			}
		}
		if (j == nopts)
			return -1;
	}
	return n;
}

/*
 * Open the store: read-only, or read-write for the commands that change
 * it, which must find an existing store (queueing into a store that was
 * just created, with no enrollments, is always a mistake). 0 or an exit
 * status (message printed).
 */
static int
queue_open(struct ctl *c, int readonly)
{
	/* ctl_open finds the store missing, for reads and writes alike. */
	return ctl_open(c, readonly, 0);
}

/* Read FILE (or stdin for "-") up to CTL_COMMAND_MAX. 0 or -1. */
static int
read_file(const char *path, struct buf *b)
{
	unsigned char chunk[65536];
	FILE	     *f;
	size_t	      n;
	int	      rc = 0;

	memset(b, 0, sizeof(*b));
	b->max = CTL_COMMAND_MAX;
	if (strcmp(path, "-") == 0)
		f = stdin;
	else if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "picomdmctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buf_append(b, chunk, n) == -1) {
			fprintf(stderr, "picomdmctl: %s: over %u bytes\n", path,
			    CTL_COMMAND_MAX);
			rc = -1;
			break;
		}
	if (rc == 0 && ferror(f)) {
		fprintf(stderr, "picomdmctl: %s: read error\n", path);
		rc = -1;
	}
	if (f != stdin)
		fclose(f);
	return rc;
}

/* Split a comma-separated ID list, dropping repeats; caller frees. */
static int
split_ids(const char *list, char ***out, size_t *nout)
{
	char	  **v;
	const char *p = list, *e;
	size_t	    n = 0, i;

	if ((v = calloc(COMMAND_IDS_MAX, sizeof(*v))) == NULL)
		return -1;
	for (;;) {
		e = strchr(p, ',');
		if (e == NULL)
			e = p + strlen(p);
		if (e == p || (size_t)(e - p) > MSG_ID_MAX ||
		    n == COMMAND_IDS_MAX)
			goto fail;
		for (i = 0; i < n; i++)
			if (strlen(v[i]) == (size_t)(e - p) &&
			    memcmp(v[i], p, (size_t)(e - p)) == 0)
				break;
		if (i == n && (v[n++] = strndup(p, (size_t)(e - p))) == NULL)
			goto fail;
		if (*e == '\0')
			break;
		p = e + 1;
	}
	*out = v;
	*nout = n;
	return 0;
fail:
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -1;
}

#define ENQUEUE_SYNOPSIS "ID[,ID...] FILE|- [--priority N] [--expires T]"
#define RESULTS_SYNOPSIS "ID [--limit N] [--before SEQ]"

static const char enqueue_help[] =
    "Queue a command to one or more enrollments, as the operator API's\n"
    "enqueue does: FILE (or - for stdin) is a raw command plist, sent byte\n"
    "for byte, or its JSON form when it starts with '{' (see\n"
    "picomdm-api(7)); both are checked against Apple's command schema.\n"
    "  --priority N   0 to 255 (default 0), higher first\n"
    "  --expires T    RFC 3339 time or seconds from now; never sent after\n"
    "Prints the CommandUUID and each ID's outcome as JSON. Exit 0 when\n"
    "every ID got it, 1 when some did not (unknown enrollment), 2 for a\n"
    "bad command or a CommandUUID already known.\n";
static const char queue_help[] =
    "The enrollment's pending commands in the order they will be sent.\n";
static const char results_help[] =
    "The enrollment's command results, newest first, with ErrorChains\n"
    "decoded.\n"
    "  --limit N      at most N (1 to 1000, default 100)\n"
    "  --before SEQ   older than this result (the \"next\" of a page)\n";
static const char cancel_help[] =
    "Cancel one pending command of the enrollment, or all of them; they\n"
    "are reported as Cancelled.\n";

/*
 * enqueue: like PUT/POST /api/v1/enqueue. Exit 0 when every ID got the
 * command, 1 when some or all did not (unknown enrollment), 2 for a bad
 * command, a CommandUUID already known or a store error.
 */
int
ctl_enqueue(struct ctl *c)
{
	static const char *const opts[] = {"priority", "expires"};
	enum command_outcome	*oc = NULL;
	int			*push = NULL;
	struct command		*cmd = NULL;
	struct buf		 b;
	const char		*pos[2], *vals[2];
	char		       **ids = NULL, err[COMMAND_ERR_SIZE];
	json_t			*o = NULL, *st = NULL;
	long long		 prio = 0;
	uint64_t		 expires = 0;
	size_t			 nids = 0, nq = 0, i, off = 0;
	int			 rc, ex = EXIT_USAGE;

	memset(&b, 0, sizeof(b));
	if ((rc = ctl_args(c, pos, 2, opts, vals, 2)) != 2)
		return ctl_usage(
		    "enqueue", ENQUEUE_SYNOPSIS, enqueue_help, rc == -2);
	if (vals[0] != NULL && num_parse(vals[0], 0, 255, &prio) == -1) {
		fprintf(stderr, "picomdmctl: --priority: want 0 to 255\n");
		return EXIT_USAGE;
	}
	if (vals[1] != NULL &&
	    command_expires_parse(vals[1], time_now_us(), &expires) == -1) {
		fprintf(stderr,
		    "picomdmctl: --expires: want an RFC 3339 time or a "
		    "number of seconds from now, after now and at most ten "
		    "years ahead\n");
		return EXIT_USAGE;
	}
	if (split_ids(pos[0], &ids, &nids) == -1) {
		fprintf(stderr,
		    "picomdmctl: bad enrollment ID list (empty "
		    "IDs, over %d bytes, or over %d IDs)\n",
		    MSG_ID_MAX, COMMAND_IDS_MAX);
		return EXIT_USAGE;
	}
	if (read_file(pos[1], &b) == -1)
		goto out;
	if ((ex = queue_open(c, 0)) != 0)
		goto out;
	ex = EXIT_USAGE;
	if (b.len >= 3 && memcmp(b.p, "\xef\xbb\xbf", 3) == 0)
		off = 3;
	while (off < b.len &&
	    (b.p[off] == ' ' || b.p[off] == '\t' || b.p[off] == '\n' ||
		b.p[off] == '\r'))
		off++;
	if (off < b.len && b.p[off] == '{')
		rc = command_from_json(
		    (const char *)b.p, b.len, &cmd, err, sizeof(err));
	else
		rc = command_from_plist(
		    (const char *)b.p, b.len, &cmd, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "picomdmctl: %s: %s\n", pos[1], err);
		goto out;
	}
	if ((oc = calloc(nids, sizeof(*oc))) == NULL ||
	    (push = calloc(nids, sizeof(*push))) == NULL)
		goto out;
	rc = command_enqueue_push(c->store, cmd, ids, nids, (int)prio, expires,
	    0, NULL, NULL, oc, push, &nq);
	if (rc == STORE_EEXIST) {
		fprintf(stderr,
		    "picomdmctl: CommandUUID %s is already "
		    "known\n",
		    cmd->uuid);
		goto out;
	}
	if (rc != 0 && rc != STORE_ENOTFOUND) {
		ex = ctl_exit(rc, "enqueue");
		goto out;
	}
	if ((o = json_object()) == NULL || (st = json_object()) == NULL)
		goto out;
	json_object_set_new(o, "command_uuid", json_string(cmd->uuid));
	json_object_set_new(o, "request_type", json_string(cmd->request_type));
	for (i = 0; i < nids; i++)
		json_object_set_new(st, ids[i], rc == 0 && push[i] >= 0 ?
		    json_pack("{s:s,s:s}", "status",
			command_outcome_name(oc[i]), "push",
			push_queued_name((enum push_queued)push[i])) :
		    json_pack("{s:s}", "status", command_outcome_name(oc[i])));
	json_object_set_new(o, "status", st);
	st = NULL;
	print_json(o);
	o = NULL;
	ex = nq == nids ? 0 : EXIT_NOTFOUND;
out:
	json_decref(st);
	json_decref(o);
	free(oc);
	free(push);
	command_free(cmd);
	buf_free(&b);
	for (i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	return ex;
}

struct queue_ctx {
	const char	 *id;
	const char	 *uuid;
	struct store_txn *t;
	json_t		 *arr;
	size_t		  count;
	uint64_t	  before;
	size_t		  limit;
	uint64_t	  last;
	int		  more;
};

static int
queue_cb(const struct store_queue_item *q, void *arg)
{
	struct queue_ctx     *qc = arg;
	struct store_command *cmd = NULL;
	json_t		     *j;

	(void)store_command_get(qc->t, q->uuid, &cmd);
	j = command_queue_item_json(
	    q, cmd ? cmd->request_type : NULL, store_txn_now(qc->t));
	store_command_free(cmd);
	return json_array_append_new(qc->arr, j) == -1 ? STORE_ENOMEM : 0;
}

static int
queue_op(struct store_txn *t, void *arg)
{
	struct queue_ctx	*qc = arg;
	struct store_enrollment *e = NULL;
	int			 rc;

	qc->t = t;
	if ((rc = store_enrollment_get(t, qc->id, &e)) != 0)
		return rc;
	store_enrollment_free(e);
	return store_queue_iter(t, qc->id, queue_cb, qc);
}

/* queue ID: the pending commands in delivery order. */
int
ctl_queue(struct ctl *c)
{
	struct queue_ctx qc;
	const char	*pos[1];
	int		 rc;

	if ((rc = ctl_args(c, pos, 1, NULL, NULL, 0)) != 1)
		return ctl_usage("queue", "ID", queue_help, rc == -2);
	if ((rc = queue_open(c, 1)) != 0)
		return rc;
	memset(&qc, 0, sizeof(qc));
	qc.id = pos[0];
	if ((qc.arr = json_array()) == NULL)
		return EXIT_USAGE;
	rc = store_read(c->store, queue_op, &qc);
	if (rc == 0)
		print_json(json_pack(
		    "{s:s, s:O}", "enrollment_id", qc.id, "queue", qc.arr));
	json_decref(qc.arr);
	return ctl_exit(rc, qc.id);
}

static int
results_cb(const struct store_result *r, void *arg)
{
	struct queue_ctx *qc = arg;

	if (qc->count == qc->limit) {
		qc->more = 1;
		return 1;
	}
	if (json_array_append_new(qc->arr, command_result_json(r, 0)) == -1)
		return STORE_ENOMEM;
	qc->count++;
	qc->last = r->seq;
	return 0;
}

static int
results_op(struct store_txn *t, void *arg)
{
	struct queue_ctx	*qc = arg;
	struct store_enrollment *e = NULL;
	int			 rc;

	if ((rc = store_enrollment_get(t, qc->id, &e)) != 0)
		return rc;
	store_enrollment_free(e);
	return store_result_iter(t, qc->id, qc->before, results_cb, qc);
}

/* results ID [--limit N] [--before SEQ]: the history, newest first. */
int
ctl_results(struct ctl *c)
{
	static const char *const opts[] = {"limit", "before"};
	struct queue_ctx	 qc;
	const char		*pos[1], *vals[2];
	long long		 v;
	int			 rc;

	if ((rc = ctl_args(c, pos, 1, opts, vals, 2)) != 1)
		return ctl_usage(
		    "results", RESULTS_SYNOPSIS, results_help, rc == -2);
	memset(&qc, 0, sizeof(qc));
	qc.id = pos[0];
	qc.limit = 100;
	if (vals[0] != NULL) {
		if (num_parse(vals[0], 1, CTL_LIMIT_MAX, &v) == -1) {
			fprintf(stderr, "picomdmctl: --limit: want 1 to %d\n",
			    CTL_LIMIT_MAX);
			return EXIT_USAGE;
		}
		qc.limit = (size_t)v;
	}
	if (vals[1] != NULL) {
		if (num_parse(vals[1], 1, INT64_MAX, &v) == -1) {
			fprintf(stderr, "picomdmctl: --before: want a seq\n");
			return EXIT_USAGE;
		}
		qc.before = (uint64_t)v;
	}
	if ((rc = queue_open(c, 1)) != 0)
		return rc;
	if ((qc.arr = json_array()) == NULL)
		return EXIT_USAGE;
	rc = store_read(c->store, results_op, &qc);
	if (rc == 0)
		print_json(json_pack("{s:s, s:O, s:o}", "enrollment_id", qc.id,
		    "results", qc.arr, "next",
		    qc.more ? json_integer((json_int_t)qc.last) : json_null()));
	json_decref(qc.arr);
	return ctl_exit(rc, qc.id);
}

static int
cancel_op(struct store_txn *t, void *arg)
{
	struct queue_ctx	*qc = arg;
	struct store_enrollment *e = NULL;
	int			 rc;

	qc->count = 0;
	if ((rc = store_enrollment_get(t, qc->id, &e)) != 0)
		return rc;
	store_enrollment_free(e);
	if (qc->uuid == NULL)
		return store_queue_clear(
		    t, qc->id, CMD_STATUS_CANCELLED, &qc->count);
	if ((rc = store_queue_cancel(t, qc->id, qc->uuid)) == 0)
		qc->count = 1;
	return rc;
}

/* cancel ID [UUID]: cancel one queued command, or all of them. */
int
ctl_cancel(struct ctl *c)
{
	struct queue_ctx qc;
	const char	*pos[2];
	int		 rc, n;

	if ((n = ctl_args(c, pos, 2, NULL, NULL, 0)) != 1 && n != 2)
		return ctl_usage("cancel", "ID [UUID]", cancel_help, n == -2);
	if ((rc = queue_open(c, 0)) != 0)
		return rc;
	memset(&qc, 0, sizeof(qc));
	qc.id = pos[0];
	qc.uuid = n == 2 ? pos[1] : NULL;
	rc = store_write(c->store, cancel_op, &qc);
	if (rc == 0)
		print_json(json_pack("{s:s, s:I}", "enrollment_id", qc.id,
		    "cancelled", (json_int_t)qc.count));
	return ctl_exit(rc, qc.uuid != NULL ? qc.uuid : qc.id);
}
