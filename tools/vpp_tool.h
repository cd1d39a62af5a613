/*
 * vpp_tool.h - what picomdm-vpp's files share (tools/picomdm-vpp.c,
 * tools/vpp_write.c): the location claim (mdmInfo) and the write
 * commands' entry points. See man/picomdm-vpp.8.
 */
#ifndef PICOMDM_VPP_TOOL_H
#define PICOMDM_VPP_TOOL_H

#include <jansson.h>

#include "picomdm/vpp.h"

/* What names this picomdm to Apple as the location's MDM (--mdm-id),
 * and --force (take over a location another MDM holds). */
extern char mdm_id[101];
extern int  force;

/* Claim the location of token name for this picomdm (picomdm-vpp.c):
 * 0; 4 when another MDM holds it (no --force); else fail()'s code. *cc
 * (the client configuration) is replaced by the claim's answer. */
int claim(struct vpp *, const char *name, json_t **cc);

/* A store_read operation: to->rec becomes the stored token name, secret
 * included (picomdm-vpp.c). */
struct store_txn;
struct tok_op {
	const char *name;
	json_t	   *rec;
};
int tok_op(struct store_txn *, void *to);

/*
 * One conversation with Apple per token and store at a time
 * (STORE_ROLE_VPP_TOKEN, store.h): a second run on the token waits, saying
 * so once, until the first is done. The descriptor holding the lock, to
 * close when the client is freed; -1 after a message.
 */
int token_lock(const char *dir, const char *name);

/* Take the write commands' options out of argv (before getopt): 0, or
 * 2 after a message on a bad value. */
int vppw_options(int *argc, char **argv);
/* Is cmd a write command (assign, unassign, revoke, user, poll,
 * events)? */
int vppw_is_command(const char *cmd);
/* Was one of the write commands' options given? */
int vppw_used(void);
/* Run a write command on the store in dir; argv[0] is the command. */
int vppw_main(const char *dir, int argc, char **argv,
    const struct vpp_opts *);

#endif
