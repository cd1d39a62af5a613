/*
 * ctl_data.c - picomdmctl stats, dump, restore (load), backup and check:
 * the store as a whole. Each opens the store itself, after its options
 * are read (so that --help needs no store), read-only unless it writes;
 * reads are snapshots that never wait for the responder, writes
 * serialise with it through LMDB's writer lock.
 *
 * Machine-readable output goes to stdout; progress goes to stderr, and
 * only when stderr is a terminal.
 */
#include "config.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "picomdm/metrics.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

/* ---- shared helpers ---- */

static int progress_last_len;

/* Progress on a terminal: one line rewritten in place. */
static void
progress_tty(void *arg, const char *what, uint64_t done, uint64_t total)
{
	int n;

	(void)arg;
	if (total > 0)
		n = fprintf(stderr, "\r%s: %llu of %llu (%llu%%)", what,
		    (unsigned long long)done, (unsigned long long)total,
		    (unsigned long long)(done * 100 / total));
	else
		n = fprintf(
		    stderr, "\r%s: %llu", what, (unsigned long long)done);
	if (n > 0 && n < progress_last_len)
		fprintf(stderr, "%*s", progress_last_len - n, "");
	progress_last_len = n > 0 ? n : 0;
	if (total > 0 && done >= total) {
		fputc('\n', stderr);
		progress_last_len = 0;
	}
	fflush(stderr);
}

const struct store_progress *
ctl_progress(void)
{
	static const struct store_progress p = {progress_tty, NULL};

	return isatty(STDERR_FILENO) ? &p : NULL;
}

int
ctl_usage(const char *name, const char *synopsis, const char *help, int ok)
{
	FILE *f = ok ? stdout : stderr;

	fprintf(f, "usage: picomdmctl --db DIR %s%s%s\n", name,
	    *synopsis ? " " : "", synopsis);
	if (ok && help != NULL)
		fputs(help, f);
	return ok ? 0 : EXIT_USAGE;
}

/* See ctl.h. */
int
ctl_store_exists(const char *db, int writable)
{
	struct stat st;
	char	    path[PATH_MAX];
	int	    n;

	if (stat(db, &st) == -1) {
		if (errno == ENOENT)
			fprintf(stderr, "picomdmctl: %s: no store here (create "
			    "one with picomdm-fcgi or restore)\n", db);
		else
			fprintf(stderr, "picomdmctl: %s: %s\n", db,
			    strerror(errno));
		return EXIT_USAGE;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "picomdmctl: %s: not a directory (--db names "
		    "the store's directory)\n", db);
		return EXIT_USAGE;
	}
	n = snprintf(path, sizeof(path), "%s/data.mdb", db);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		fprintf(stderr, "picomdmctl: %s: path too long\n", db);
		return EXIT_USAGE;
	}
	if (stat(path, &st) == -1) {
		if (errno == ENOENT)
			fprintf(stderr, "picomdmctl: %s: no store here (no "
			    "data.mdb; create one with picomdm-fcgi or "
			    "restore)\n", db);
		else
			fprintf(stderr, "picomdmctl: %s: %s\n", path,
			    strerror(errno));
		return EXIT_USAGE;
	}
	if (access(path, writable ? R_OK | W_OK : R_OK) == -1) {
		fprintf(stderr, "picomdmctl: %s: %s (run as the store's "
		    "owner)\n", path, strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

/* See ctl.h. */
int
ctl_open(struct ctl *c, int readonly, size_t map_size)
{
	struct store_opts so;
	int		  rc;

	if (c->db == NULL) {
		fprintf(stderr, "picomdmctl: %s: --db DIR is required\n",
		    c->argv[0]);
		return EXIT_USAGE;
	}
	/* restore (load) makes a store; every other command needs one. */
	if (strcmp(c->argv[0], "restore") != 0 &&
	    strcmp(c->argv[0], "load") != 0 &&
	    (rc = ctl_store_exists(c->db, !readonly)) != 0)
		return rc;
	memset(&so, 0, sizeof(so));
	so.readonly = readonly;
	so.map_size = map_size;
	if ((rc = store_open(c->db, &so, &c->store)) != 0)
		return ctl_exit(rc, c->db);
	return 0;
}

/*
 * getopt_long over a sub-command's arguments. Returns the option, -1 at
 * the end; 'h' for --help. Positional arguments are permuted to the end
 * (from optind).
 */
static int
sub_getopt(struct ctl *c, const char *shortopts, const struct option *longopts)
{
	return getopt_long(c->argc, c->argv, shortopts, longopts, NULL);
}

/* ---- stats ---- */

struct stats_ctx {
	struct store_dbi_stat db[32];
	int		      ndb;
	struct store_env_stat env;
};

static int
stats_op(struct store_txn *t, void *arg)
{
	struct stats_ctx *s = arg;

	if ((s->ndb = store_stat(t, s->db, 32)) < 0)
		return s->ndb;
	return store_env_stat(t, &s->env);
}

static const char stats_help[] =
    "Records, pages and tree depth of each sub-database, then the\n"
    "environment: map size, bytes in use, pages in use and free, readers.\n"
    "  --json         one JSON object\n"
    "  --prometheus   the store's figures in the Prometheus text format\n"
    "                 (for node_exporter's textfile collector)\n";

#define STATS_SYNOPSIS "[--json | --prometheus]"

/* stats --prometheus: what GET /api/v1/metrics shows of the store. */
static int
stats_prometheus(struct ctl *c)
{
	struct buf b;
	int	   rc;

	memset(&b, 0, sizeof(b));
	if ((rc = metrics_render_store(&b, c->store)) != 0) {
		buf_free(&b);
		return ctl_exit(rc, "stats");
	}
	if (fwrite(b.p, 1, b.len, stdout) != b.len || fflush(stdout) != 0) {
		buf_free(&b);
		fprintf(stderr, "picomdmctl: stats: cannot write\n");
		return 2;
	}
	buf_free(&b);
	return 0;
}

/* stats [--json]: entries per sub-database and the environment. */
int
ctl_data_stats(struct ctl *c)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
	    {"prometheus", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct stats_ctx	   s;
	struct stat		   st;
	char			   path[PATH_MAX];
	uint64_t		   used;
	json_t			  *o, *dbs;
	int			   ch, json = 0, prom = 0, i, rc;

	optind = 0;
	while ((ch = sub_getopt(c, "", lo)) != -1) {
		if (ch == 'j')
			json = 1;
		else if (ch == 'p')
			prom = 1;
		else
			return ctl_usage(
			    "stats", STATS_SYNOPSIS, stats_help, ch == 'h');
	}
	if (optind != c->argc || (json && prom))
		return ctl_usage("stats", STATS_SYNOPSIS, NULL, 0);
	if ((rc = ctl_open(c, 1, 0)) != 0)
		return rc;
	if (prom)
		return stats_prometheus(c);
	memset(&s, 0, sizeof(s));
	if ((rc = store_read(c->store, stats_op, &s)) != 0)
		return ctl_exit(rc, "stats");
	used = s.env.pages_used * s.env.page_size;
	if (snprintf(path, sizeof(path), "%s/data.mdb", c->db) >=
		(int)sizeof(path) ||
	    stat(path, &st) == -1)
		st.st_size = 0;
	if (json) {
		dbs = json_object();
		for (i = 0; i < s.ndb; i++)
			json_object_set_new(dbs, s.db[i].name,
			    json_pack("{s:I, s:I, s:i}", "entries",
				(json_int_t)s.db[i].entries, "pages",
				(json_int_t)s.db[i].pages, "depth",
				(int)s.db[i].depth));
		o = json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:i, "
			      "s:i}",
		    "databases", dbs, "map_size", (json_int_t)s.env.map_size,
		    "map_used", (json_int_t)used, "file_size",
		    (json_int_t)st.st_size, "page_size",
		    (json_int_t)s.env.page_size, "pages_used",
		    (json_int_t)s.env.pages_used, "pages_free",
		    (json_int_t)s.env.pages_free, "last_txn",
		    (json_int_t)s.env.last_txn, "readers", (int)s.env.readers,
		    "max_readers", (int)s.env.max_readers);
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(o);
		return 0;
	}
	for (i = 0; i < s.ndb; i++)
		printf("%-8s entries=%llu pages=%llu depth=%u\n", s.db[i].name,
		    (unsigned long long)s.db[i].entries,
		    (unsigned long long)s.db[i].pages, s.db[i].depth);
	printf("map_size=%llu map_used=%llu (%.1f%%) file_size=%llu\n",
	    (unsigned long long)s.env.map_size, (unsigned long long)used,
	    s.env.map_size ? 100.0 * (double)used / (double)s.env.map_size
			   : 0.0,
	    (unsigned long long)st.st_size);
	printf("page_size=%llu pages_used=%llu pages_free=%llu "
	       "last_txn=%llu\n",
	    (unsigned long long)s.env.page_size,
	    (unsigned long long)s.env.pages_used,
	    (unsigned long long)s.env.pages_free,
	    (unsigned long long)s.env.last_txn);
	printf("readers=%u max_readers=%u\n", s.env.readers, s.env.max_readers);
	return 0;
}

/* ---- dump ---- */

static const char dump_help[] =
    "Every record of every sub-database as JSON Lines, in key order, from\n"
    "one consistent snapshot: a header line, one line per record, an end\n"
    "line with the count. Raw Apple messages and commands appear as their\n"
    "XML text; push tokens, PushMagic, UnlockToken and BootstrapToken as\n"
    "length and SHA-256, and secret keys inside raw messages redacted.\n"
    "  --secrets        include the secrets (needed for restore)\n"
    "  --raw            the mdb_dump format, readable by mdb_load (every\n"
    "                   byte: requires --secrets)\n"
    "  -o, --output F   write to F (created mode 0600) instead of stdout\n";

#define DUMP_SYNOPSIS "[--secrets] [--raw] [-o FILE]"

/* dump [--secrets] [--raw] [-o FILE]. */
int
ctl_dump(struct ctl *c)
{
	static const struct option lo[] = {{"secrets", no_argument, NULL, 's'},
	    {"raw", no_argument, NULL, 'r'},
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const char		  *file = NULL;
	unsigned		   flags = 0;
	uint64_t		   n = 0;
	FILE			  *out = stdout;
	int			   ch, fd, rc;

	optind = 0;
	while ((ch = sub_getopt(c, "o:", lo)) != -1) {
		switch (ch) {
		case 's':
			flags |= STORE_DUMP_SECRETS;
			break;
		case 'r':
			flags |= STORE_DUMP_RAW;
			break;
		case 'o':
			file = optarg;
			break;
		default:
			return ctl_usage(
			    "dump", DUMP_SYNOPSIS, dump_help, ch == 'h');
		}
	}
	if (optind != c->argc)
		return ctl_usage("dump", DUMP_SYNOPSIS, NULL, 0);
	if ((flags & STORE_DUMP_RAW) && !(flags & STORE_DUMP_SECRETS)) {
		fprintf(stderr,
		    "picomdmctl: dump: --raw copies every byte, "
		    "secrets included: add --secrets\n");
		return EXIT_USAGE;
	}
	if ((rc = ctl_open(c, 1, 0)) != 0)
		return rc;
	if (file != NULL) {
		if ((fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600)) ==
			-1 ||
		    (out = fdopen(fd, "w")) == NULL) {
			fprintf(stderr, "picomdmctl: dump: %s: %s\n", file,
			    strerror(errno));
			return EXIT_USAGE;
		}
	}
	setvbuf(out, NULL, _IOFBF, 1 << 20);
	rc = store_dump(c->store, out, flags, ctl_progress(), &n);
	if (file != NULL && fclose(out) != 0 && rc == 0)
		rc = STORE_EIO;
	if (rc != 0)
		return ctl_exit(rc, "dump");
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "dump: %llu records\n", (unsigned long long)n);
	return 0;
}

/* ---- restore ---- */

/* The whole of a file (or stdin for "-"): mapped when it can be. */
struct input {
	unsigned char *p;
	size_t	       len;
	int	       mapped;
};

/* Read a whole file (mapped) or standard input; 0 or -1 (reported). */
static int
input_read(const char *path, struct input *in)
{
	struct stat st;
	struct buf  b;
	char	    chunk[65536];
	ssize_t	    r;
	int	    fd;

	memset(in, 0, sizeof(*in));
	fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY);
	if (fd == -1 || fstat(fd, &st) == -1)
		goto fail;
	if (S_ISREG(st.st_mode) && st.st_size > 0) {
		in->len = (size_t)st.st_size;
		in->p = mmap(NULL, in->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (in->p == MAP_FAILED)
			goto fail;
		in->mapped = 1;
	} else {
		memset(&b, 0, sizeof(b));
		while ((r = read(fd, chunk, sizeof(chunk))) != 0) {
			if (r == -1 && errno == EINTR)
				continue;
			if (r == -1 || buf_append(&b, chunk, (size_t)r) == -1) {
				buf_free(&b);
				goto fail;
			}
		}
		in->p = b.p;
		in->len = b.len;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	return 0;
fail:
	fprintf(stderr, "picomdmctl: restore: %s: %s\n", path, strerror(errno));
	if (fd != -1 && fd != STDIN_FILENO)
		close(fd);
	in->p = NULL;
	return -1;
}

static void
input_free(struct input *in)
{
	if (in->mapped)
		munmap(in->p, in->len);
	else
		free(in->p);
	memset(in, 0, sizeof(*in));
}

static const char restore_help[] =
    "Load a dump (JSON Lines made with dump --secrets, or the mdb_dump\n"
    "format of dump --raw or mdb_dump -a) into the store, in one\n"
    "transaction. The store must be empty (it is created when absent,\n"
    "and removed again when the restore is refused).\n"
    "  --force   replace whatever the store holds\n"
    "FILE may be - for standard input.\n";

#define RESTORE_SYNOPSIS "[--force] FILE"

/* dir/name into out; -1 when it does not fit. */
static int
join_path(char *out, size_t n, const char *dir, const char *name)
{
	int r = snprintf(out, n, "%s/%s", dir, name);

	return r < 0 || (size_t)r >= n ? -1 : 0;
}

/* Remove the store a refused restore created (and its directory, when it
 * made that too). */
static void
restore_unmake(struct ctl *c, int dir_made)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	char			 path[PATH_MAX];
	size_t			 i;

	store_close(c->store);
	c->store = NULL;
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (join_path(path, sizeof(path), c->db, files[i]) == 0 &&
		    unlink(path) == -1 && errno != ENOENT)
			fprintf(stderr, "picomdmctl: restore: %s: %s\n", path,
			    strerror(errno));
	if (dir_made && rmdir(c->db) == -1)
		fprintf(stderr, "picomdmctl: restore: %s: %s\n", c->db,
		    strerror(errno));
}

/* restore|load [--force] FILE: the map is sized from the dump so the
 * load runs once. */
int
ctl_restore(struct ctl *c)
{
	static const struct option lo[] = {{"force", no_argument, NULL, 'f'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct input		   in;
	struct stat		   st;
	unsigned		   flags = 0;
	uint64_t		   n = 0;
	size_t			   map;
	char			   err[256], path[PATH_MAX];
	int			   ch, rc, dir_made, store_made;

	optind = 0;
	while ((ch = sub_getopt(c, "", lo)) != -1) {
		if (ch == 'f')
			flags |= STORE_RESTORE_FORCE;
		else
			return ctl_usage(c->argv[0], RESTORE_SYNOPSIS,
			    restore_help, ch == 'h');
	}
	if (optind != c->argc - 1)
		return ctl_usage(c->argv[0], RESTORE_SYNOPSIS, NULL, 0);
	if (c->db == NULL) {
		fprintf(stderr, "picomdmctl: %s: --db DIR is required\n",
		    c->argv[0]);
		return EXIT_USAGE;
	}
	if (input_read(c->argv[optind], &in) == -1)
		return EXIT_USAGE;
	/* Room for the data at once, so the load runs only once: a dump is
	 * larger than what it holds, except for B-tree overhead. */
	map = (size_t)64 << 20;
	if (in.len < ((size_t)8 << 30))
		map += in.len * 2;
	/* A store this restore creates is removed again when it is
	 * refused: a refused restore leaves nothing behind. */
	dir_made = stat(c->db, &st) == -1;
	store_made = dir_made ||
	    (join_path(path, sizeof(path), c->db, "data.mdb") == 0 &&
		stat(path, &st) == -1);
	if ((rc = ctl_open(c, 0, map)) != 0) {
		input_free(&in);
		return rc;
	}
	err[0] = '\0';
	rc = store_restore(c->store, in.p, in.len, flags, ctl_progress(), &n,
	    err, sizeof(err));
	input_free(&in);
	if (rc != 0) {
		fprintf(stderr, "picomdmctl: %s: %s: %s\n", c->argv[0],
		    c->argv[optind], err);
		if (store_made)
			restore_unmake(c, dir_made);
		return rc == STORE_EEXIST ? EXIT_NOTFOUND : EXIT_USAGE;
	}
	printf("restored %llu records\n", (unsigned long long)n);
	return 0;
}

/* ---- backup ---- */

static int
backup_count(struct store_txn *t, void *arg)
{
	struct store_dbi_stat st[32];
	uint64_t	     *n = arg;
	int		      i, nd;

	if ((nd = store_stat(t, st, 32)) < 0)
		return nd;
	for (*n = 0, i = 0; i < nd; i++)
		*n += st[i].entries;
	return 0;
}

static const char backup_help[] =
    "A consistent, compacting copy of the store into DIR (created when\n"
    "absent; it must not hold a store), taken while the responder serves.\n"
    "The copy is a store: serve it, or point picomdmctl --db at it. It\n"
    "holds only live pages, so purged data is not in it.\n";

/* backup DIR, then open the copy to show it is a store. */
int
ctl_backup(struct ctl *c)
{
	static const struct option lo[] = {
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct store_opts so;
	struct store	 *copy = NULL;
	struct stat	  st;
	const char	 *dir;
	char		  path[PATH_MAX];
	uint64_t	  n = 0;
	int		  ch, rc;

	optind = 0;
	while ((ch = sub_getopt(c, "", lo)) != -1)
		return ctl_usage("backup", "DIR", backup_help, ch == 'h');
	if (optind != c->argc - 1)
		return ctl_usage("backup", "DIR", NULL, 0);
	dir = c->argv[optind];
	if ((rc = ctl_open(c, 1, 0)) != 0)
		return rc;
	if (isatty(STDERR_FILENO))
		fprintf(stderr, "backup: copying to %s\n", dir);
	if ((rc = store_backup(c->store, dir)) != 0) {
		if (rc == STORE_EEXIST)
			fprintf(stderr,
			    "picomdmctl: backup: %s already holds "
			    "a store\n",
			    dir);
		return rc == STORE_EEXIST ? EXIT_USAGE : ctl_exit(rc, dir);
	}
	/* The copy must open as a store of its own. */
	memset(&so, 0, sizeof(so));
	so.readonly = 1;
	if ((rc = store_open(dir, &so, &copy)) != 0 ||
	    (rc = store_read(copy, backup_count, &n)) != 0) {
		store_close(copy);
		return ctl_exit(rc, dir);
	}
	store_close(copy);
	if (snprintf(path, sizeof(path), "%s/data.mdb", dir) >=
		(int)sizeof(path) ||
	    stat(path, &st) == -1)
		st.st_size = 0;
	printf("backup %s: %llu records, %llu bytes\n", dir,
	    (unsigned long long)n, (unsigned long long)st.st_size);
	return 0;
}

/* ---- check ---- */

static int
check_print(const struct store_problem *p, void *arg)
{
	(void)arg;
	printf("%s\t%s\t%s\t%s\n", p->repaired ? "repaired" : "problem", p->db,
	    p->key, p->what);
	return 0;
}

static const char check_help[] =
    "Check that every index points at an existing record and every record\n"
    "decodes. One line per problem on stdout: problem|repaired, the\n"
    "sub-database, the key (as in dump), what is wrong. Exit status 1 when\n"
    "problems remain.\n"
    "  --repair   fix what is safe, in one transaction: drop dangling\n"
    "             index entries and orphans, add missing index entries,\n"
    "             raise counters; undecodable records are only reported\n";

/* check [--repair]: exit 1 when problems remain. */
int
ctl_check(struct ctl *c)
{
	static const struct option lo[] = {{"repair", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct store_check_count   n;
	int			   ch, repair = 0, rc;

	optind = 0;
	while ((ch = sub_getopt(c, "", lo)) != -1) {
		if (ch == 'r')
			repair = 1;
		else
			return ctl_usage(
			    "check", "[--repair]", check_help, ch == 'h');
	}
	if (optind != c->argc)
		return ctl_usage("check", "[--repair]", NULL, 0);
	if ((rc = ctl_open(c, !repair, 0)) != 0)
		return rc;
	if ((rc = store_check(
		 c->store, repair, ctl_progress(), check_print, NULL, &n)) != 0)
		return ctl_exit(rc, "check");
	fflush(stdout);
	if (isatty(STDERR_FILENO))
		fprintf(stderr,
		    "check: %llu entries, %llu problems, %llu "
		    "repaired\n",
		    (unsigned long long)n.records,
		    (unsigned long long)n.problems,
		    (unsigned long long)n.repaired);
	return n.problems > n.repaired ? 1 : 0;
}
