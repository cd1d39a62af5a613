/*
 * fcgi.h - the responder's side of a FastCGI connection (fcgi.c): read
 * one request's parameters and input, write its reply. main.c and
 * request.c only; no other stage sees a FastCGI type.
 *
 * A struct fcgi is one request slot. Its buffers are kept from one
 * request to the next, so a request in the steady state allocates
 * nothing here. The connection (fd) is lent to the slot for one request
 * and handed back, kept or closed, by fcgi_finish().
 */
#ifndef PICOMDM_FCGI_H
#define PICOMDM_FCGI_H

#include <stddef.h>
#include <sys/types.h>

/* The parameters of one request may take this much (nginx's are a few
 * KiB: its header buffers bound them far below). */
#define FCGI_PARAMS_MAX ((size_t)256 << 10)

struct fcgi_param {
	const char *name;
	const char *value;
	size_t      nlen;
};

struct fcgi {
	int                fd;       /* the connection; -1: none */
	unsigned           id;       /* the request's ID */
	int                keep;     /* FCGI_KEEP_CONN */
	int                in_eof;   /* FCGI_STDIN read to its end */
	int                failed;   /* a read or write failed: close */
	int                replied;  /* fcgi_reply() was called */
	/* What has been read from the connection and not yet used. */
	unsigned char     *in;
	size_t             in_pos, in_len; /* in holds FCGI_IN_SIZE (fcgi.c) */
	size_t             stdin_left, pad_left; /* of the FCGI_STDIN
						  * record being read */
	/* The FCGI_PARAMS stream, and the pairs decoded from it. */
	unsigned char     *raw;
	size_t             raw_len, raw_cap;
	char              *env;      /* NAME NUL VALUE NUL, pair by pair */
	size_t             env_cap;
	struct fcgi_param *params;
	size_t             nparams, params_cap;
};

/* How many requests one process takes at once (FCGI_GET_VALUES). */
void        fcgi_setup(int max_reqs);
void        fcgi_init(struct fcgi *);
/* Close the connection if the slot holds one; free the buffers. */
void        fcgi_free(struct fcgi *);
/*
 * Read a request from the connection fd, up to the end of its
 * parameters. 0: the slot holds the request and the connection; -1: the
 * connection ended or broke before a request was complete, and is
 * closed.
 */
int         fcgi_accept(struct fcgi *, int fd);
/* A parameter's value, or NULL when the request has none of that name. */
const char *fcgi_param(const struct fcgi *, const char *name);
/*
 * Read up to n bytes of the request's input. Returns n, or fewer only at
 * the input's end (0 once it is reached), or -1 when the connection
 * fails.
 */
ssize_t     fcgi_read(struct fcgi *, void *buf, size_t n);
/* Write the reply: head and body as FCGI_STDOUT, then the request's
 * end. 0, or -1 when the connection fails. */
int         fcgi_reply(struct fcgi *, const void *head, size_t head_len,
                const void *body, size_t body_len);
/*
 * After the reply: the connection, to be kept for its next request, or
 * -1 when it has been closed (the peer did not ask to keep it, it
 * failed, or more than 16 MiB of its input was left unread). What the
 * handler left unread of a kept connection's input is read here first.
 */
int         fcgi_finish(struct fcgi *);

#endif
