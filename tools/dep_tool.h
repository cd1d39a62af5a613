/*
 * dep_tool.h - what picomdm-dep.c (options, files, the interim
 * file-based commands) and dep_store.c (the commands on the store,
 * --db DIR) share. See picomdm-dep(8).
 */
#ifndef PICOMDM_DEP_TOOL_H
#define PICOMDM_DEP_TOOL_H

#include <stddef.h>
#include <sys/types.h>

#include "picomdm/dep.h"

/* Exit statuses (picomdm-dep(8) EXIT STATUS). */
#define EX_FAIL	 1
#define EX_USAGE 2
#define EX_APPLE 3 /* the organisation must act at Apple */

struct dep_tool {
	struct dep_client_config cfg;
	const char		*db;	  /* --db */
	const char		*out;	  /* -o */
	const char		*key_out; /* --key-out */
	const char		*key;	  /* --key */
	const char		*cert;	  /* --cert */
	const char		*token;	  /* --token */
	const char		*cursor_file;
	unsigned		 limit;
	int			 days;
	int			 purge;	       /* token remove --purge */
	int			 daemon;       /* sync --daemon */
	unsigned		 interval;     /* sync --interval, seconds */
	int			 auto_assign;  /* sync --auto-assign */
	int			 quiet;	       /* no progress line */
	const char		*enroll_url;   /* profile define --enroll-url */
	int			 make_default; /* profile define --default */
	int			 prune_days;   /* prune --days; 0 is allowed */
};

/* Files (picomdm-dep.c): read at most 1 MiB, NUL-terminated, caller
 * frees; write with mode, excl refusing an existing file. */
char *dep_file_read(const char *path, size_t *len);
int   dep_file_write(
      const char *path, const void *, size_t, mode_t mode, int excl);
/* Exit status of a failed call, after a message naming it. */
int  dep_call_failed(struct dep_client *, const char *what, enum dep_status);
void dep_store_swap(char **, char **);

/* The commands on the store (dep_store.c): 0, an exit status, or -1 for
 * a usage error. */
int dep_db_token_new(const struct dep_tool *, int argc, char *argv[]);
int dep_db_token_import(const struct dep_tool *, int argc, char *argv[]);
int dep_db_token_list(const struct dep_tool *, int argc, char *argv[]);
int dep_db_token_remove(const struct dep_tool *, int argc, char *argv[]);
int dep_db_token_default(const struct dep_tool *, int argc, char *argv[]);
int dep_db_sync(const struct dep_tool *, int argc, char *argv[]);
int dep_db_profile(const struct dep_tool *, int argc, char *argv[]);
int dep_db_details(const struct dep_tool *, int argc, char *argv[]);
int dep_db_prune(const struct dep_tool *, int argc, char *argv[]);

#endif
