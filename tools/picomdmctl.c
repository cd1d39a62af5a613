/*
 * picomdmctl - inspect and manage a picomdm store, with or without the
 * responder running (reads use read-only transactions; writes serialise
 * with the responder's through LMDB's writer lock).
 *
 * Exit status: 0 success, 1 not found, 2 usage or store error.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "picomdm/log.h"
#include "picomdm/store.h"

static const struct ctl_cmd cmds[] = {
	{ "devices", ctl_devices, CTL_OPEN_READ, "" },
	{ "show", ctl_show, CTL_OPEN_READ, "ID|SERIAL" },
	{ "stats", ctl_data_stats, CTL_OPEN_NONE, "[--json | --prometheus]" },
	{ "enqueue", ctl_enqueue, CTL_OPEN_NONE,
	    "ID[,ID...] FILE|- [--priority N] [--expires T]" },
	{ "queue", ctl_queue, CTL_OPEN_NONE, "ID" },
	{ "results", ctl_results, CTL_OPEN_NONE,
	    "ID [--limit N] [--before SEQ]" },
	{ "cancel", ctl_cancel, CTL_OPEN_NONE, "ID [UUID]" },
	{ "dump", ctl_dump, CTL_OPEN_NONE, "[--secrets] [--raw] [-o FILE]" },
	{ "restore", ctl_restore, CTL_OPEN_NONE, "[--force] FILE" },
	{ "load", ctl_restore, CTL_OPEN_NONE, "[--force] FILE" },
	{ "backup", ctl_backup, CTL_OPEN_NONE, "DIR" },
	{ "check", ctl_check, CTL_OPEN_NONE, "[--repair]" },
	{ "inventory", ctl_inventory, CTL_OPEN_NONE,
	    "ID|SERIAL [--json] | --catalogue [--json]" },
	{ "purge", ctl_purge, CTL_OPEN_NONE, CTL_PURGE_SYNOPSIS },
	{ "prune", ctl_prune, CTL_OPEN_NONE,
	    "[--results-days N] [--checked-out-days N]" },
	{ "pushcert", ctl_pushcert, CTL_OPEN_NONE,
	    "import CERT.pem KEY.pem [--force] | import FILE.p12 "
	    "[--password-file F] [--force] | list [--json] | remove TOPIC" },
	{ "enrollment-profile", ctl_enroll_profile, CTL_OPEN_NONE,
	    "[-o FILE]" },
	{ "scep-verify", ctl_scep_verify, CTL_OPEN_NONE, "< CSR" },
	{ "push", ctl_push, CTL_OPEN_WRITE, "ID..." },
};

static void
usage(void)
{
	size_t i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(stderr, "%s picomdmctl [--verbose] %s %s%s%s\n",
		    i == 0 ? "usage:" : "      ",
		    cmds[i].fn == ctl_enroll_profile ? "--config FILE" :
		    "--db DIR", cmds[i].name,
		    *cmds[i].usage ? " " : "", cmds[i].usage);
	exit(EXIT_USAGE);
}

int
ctl_exit(int rc, const char *what)
{
	if (rc == 0)
		return 0;
	if (rc == STORE_ENOTFOUND) {
		fprintf(stderr, "picomdmctl: %s: not found\n", what);
		return EXIT_NOTFOUND;
	}
	if (rc > 0) /* already reported by the command */
		return rc;
	/* The store's own error line, when it logged one, names the cause. */
	if (log_error_count() == 0)
		fprintf(stderr, "picomdmctl: %s: %s\n", what,
		    store_strerror(rc));
	return EXIT_USAGE;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "verbose", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 }
	};
	const struct ctl_cmd *cmd = NULL;
	struct store_opts     so;
	struct ctl            c;
	size_t                i;
	int                   ch, rc, verbose = 0;

	memset(&c, 0, sizeof(c));
	while ((ch = getopt_long(argc, argv, "+d:hv", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			c.db = optarg;
			break;
		case 'f':
			c.config = optarg;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[0], cmds[i].name) == 0)
			cmd = &cmds[i];
	if (cmd == NULL) {
		fprintf(stderr, "picomdmctl: %s: no such command\n", argv[0]);
		usage();
	}
	/* --help needs no store: the commands opened here answer it here. */
	if (cmd->open != CTL_OPEN_NONE)
		for (i = 1; i < (size_t)argc; i++)
			if (strcmp(argv[i], "--help") == 0 ||
			    strcmp(argv[i], "-h") == 0) {
				printf("usage: picomdmctl --db DIR %s%s%s\n",
				    cmd->name, *cmd->usage ? " " : "",
				    cmd->usage);
				return 0;
			}
	if (c.db == NULL && cmd->open != CTL_OPEN_NONE) {
		fprintf(stderr, "picomdmctl: %s: --db DIR is required\n",
		    cmd->name);
		return EXIT_USAGE;
	}
	c.argc = argc;
	c.argv = argv;
	/*
	 * Messages read like a command line ("picomdmctl: ..."); --verbose
	 * gives the library's log lines, timestamped, with info too.
	 */
	if (verbose)
		log_set_level(LOG_INFO);
	else {
		log_set_level(LOG_WARN);
		log_set_plain("picomdmctl");
	}
	if (cmd->open != CTL_OPEN_NONE) {
		if ((rc = ctl_store_exists(c.db, cmd->open != CTL_OPEN_READ)))
			return rc;
		memset(&so, 0, sizeof(so));
		so.readonly = cmd->open == CTL_OPEN_READ;
		if ((rc = store_open(c.db, &so, &c.store)) != 0)
			return ctl_exit(rc, c.db);
	}
	rc = cmd->fn(&c);
	store_close(c.store);
	if (rc == -1) {
		fprintf(stderr, "usage: picomdmctl --db DIR %s %s\n",
		    cmd->name, cmd->usage);
		return EXIT_USAGE;
	}
	return rc;
}
