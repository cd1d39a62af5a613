/*
 * ctl.h - picomdmctl's sub-commands. picomdmctl.c parses the global
 * options, opens the store as the command's table entry asks, and calls
 * it; each family of sub-commands lives in its own tools/ctl_*.c file.
 */
#ifndef PICOMDM_CTL_H
#define PICOMDM_CTL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct store;
struct store_progress;

#define EXIT_NOTFOUND 1
#define EXIT_USAGE    2

struct ctl {
	const char   *db;    /* --db */
	const char   *config; /* --config (enrollment-profile) */
	struct store *store; /* opened per the entry's mode; NULL for OPEN_NONE */
	int           argc;  /* the sub-command's arguments, argv[0] = name */
	char        **argv;
};

enum ctl_open {
	CTL_OPEN_READ = 0, /* read-only; the store must exist */
	CTL_OPEN_WRITE,    /* read-write; created when absent */
	CTL_OPEN_NONE      /* the command opens (or creates) it itself */
};

struct ctl_cmd {
	const char   *name;
	int         (*fn)(struct ctl *);
	enum ctl_open open;
	const char   *usage; /* arguments after the name, for usage() */
};

/* Exit status for a store result, with a message on stderr. */
int ctl_exit(int rc, const char *what);

/* JSON helpers shared by the sub-commands. */
json_t *ctl_json_time(uint64_t us);
json_t *ctl_json_str(const char *);
json_t *ctl_json_secret(const void *, size_t);

/* ctl_show.c */
int ctl_devices(struct ctl *);
int ctl_show(struct ctl *);

/* ctl_queue.c */
int ctl_enqueue(struct ctl *);
int ctl_queue(struct ctl *);
int ctl_results(struct ctl *);
int ctl_cancel(struct ctl *);

/* ctl_data.c: stats, dump, restore (load), backup, check */
int ctl_data_stats(struct ctl *);
int ctl_dump(struct ctl *);
int ctl_restore(struct ctl *);
int ctl_backup(struct ctl *);
int ctl_check(struct ctl *);

/* Open c->store for a command that opens it itself (CTL_OPEN_NONE):
 * read-only, or read-write with an initial map size (0: default).
 * Returns 0 or an exit status (message printed). */
int ctl_open(struct ctl *, int readonly, size_t map_size);
/* Is there a store at db that this user may read (and write)? 0, or
 * EXIT_USAGE after one line on stderr naming what is missing. */
int ctl_store_exists(const char *db, int writable);
/* Progress reporting on stderr when it is a terminal; NULL otherwise. */
const struct store_progress *ctl_progress(void);
/* Print a sub-command's usage: on stdout with status 0 for --help, else
 * on stderr with EXIT_USAGE. Returns the status. */
int ctl_usage(const char *name, const char *synopsis, const char *help,
    int ok);

/* ctl_enroll.c: enrollment-profile (needs --config, not --db) */
int ctl_enroll_profile(struct ctl *);
/* ctl_enroll.c: scep-verify (scepserver -csrverifierexec; needs --db) */
int ctl_scep_verify(struct ctl *);

/* ctl_pushcert.c: pushcert import|list|remove */
int ctl_pushcert(struct ctl *);
/* ctl_push.c */
int ctl_push(struct ctl *);

/* ctl_privacy.c: inventory, purge, prune */
int ctl_inventory(struct ctl *);
int ctl_purge(struct ctl *);
/* purge's arguments, for its --help and for picomdmctl's usage. */
#define CTL_PURGE_SYNOPSIS                                                 \
	"ID|SERIAL | --topic TOPIC | --token NAME | --ade-token NAME | "     \
	"--vpp-token NAME [--yes] [--verify]"
int ctl_prune(struct ctl *);

#endif
