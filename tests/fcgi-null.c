/*
 * fcgi-null.c - a FastCGI responder that does nothing, the floor that
 * scripts/bench measures picomdm against.
 *
 * One process, N worker threads (as picomdm-fcgi's workers), each in its
 * own FCGX_Accept_r() loop on one shared listen socket: a unix socket
 * given with --socket, else the socket inherited on fd 0 as spawn-fcgi
 * and systemd pass it. Each request's body is read and thrown away and
 * the answer is an empty "Status: 200 OK", so what is left is the cost of
 * nginx, the FastCGI protocol and libfcgi. (picomdm-fcgi reads the
 * records itself, module/fcgi.c, and has a writer and a completion
 * thread besides its workers.)
 *
 * SIGTERM, SIGINT and SIGHUP end it at once (libfcgi's own SIGTERM
 * handler would only stop the thread that happens to receive it).
 *
 * usage: fcgi-null [--socket PATH] [--workers N]
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#define NULL_WORKERS_MAX 256
#define NULL_BACKLOG	 1024

static int null_sock;

static void usage(void) __attribute__((noreturn));

static void
usage(void)
{
	fprintf(stderr, "usage: fcgi-null [--socket PATH] [--workers N]\n");
	exit(2);
}

/*
 * Parse a worker count: decimal, whole string, 1..NULL_WORKERS_MAX.
 * Returns the count, or -1 when the string is not one.
 */
static int
null_workers_parse(const char *s)
{
	char *end;
	long  v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 ||
	    v > NULL_WORKERS_MAX)
		return -1;
	return (int)v;
}

/*
 * One worker: accept a request, drain its body, answer 200 with no body,
 * repeat. FCGX_Accept_r() finishes the previous request itself. Returns
 * when accepting fails (listen socket closed or shutdown).
 */
static void *
null_worker(void *arg)
{
	static const char reply[] =
	    "Status: 200 OK\r\nContent-Length: 0\r\n\r\n";
	FCGX_Request req;
	char         buf[16384];

	(void)arg;
	if (FCGX_InitRequest(&req, null_sock, 0) != 0) {
		fprintf(stderr, "fcgi-null: FCGX_InitRequest failed\n");
		return NULL;
	}
	while (FCGX_Accept_r(&req) >= 0) {
		while (FCGX_GetStr(buf, sizeof(buf), req.in) > 0)
			continue;
		if (FCGX_PutStr(reply, (int)sizeof(reply) - 1, req.out) < 0)
			continue;
	}
	FCGX_Free(&req, 1);
	return NULL;
}

int
main(int argc, char *argv[])
{
	pthread_t  *tids = NULL;
	const char *path = NULL;
	struct stat st;
	sigset_t    stop;
	int         workers = 4, i, sig, rc = 1;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
			if ((workers = null_workers_parse(argv[++i])) < 0)
				usage();
		} else
			usage();
	}

	if (FCGX_Init() != 0) {
		fprintf(stderr, "fcgi-null: FCGX_Init failed\n");
		return 1;
	}
	/*
	 * After FCGX_Init, which installs handlers: a client that goes away
	 * must not kill the responder, and the stop signals are taken by
	 * the main thread alone (workers inherit the blocked mask).
	 */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
		fprintf(stderr, "fcgi-null: cannot block signals\n");
		return 1;
	}
	if (path != NULL) {
		/* Replace a stale socket from an earlier run, nothing else. */
		if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    unlink(path) == -1) {
			fprintf(stderr, "fcgi-null: unlink %s: %s\n", path,
			    strerror(errno));
			return 1;
		}
		if ((null_sock = FCGX_OpenSocket(path, NULL_BACKLOG)) < 0) {
			fprintf(stderr, "fcgi-null: cannot listen on %s\n",
			    path);
			return 1;
		}
	} else
		null_sock = 0;

	if ((tids = calloc((size_t)workers, sizeof(*tids))) == NULL) {
		fprintf(stderr, "fcgi-null: out of memory\n");
		goto out;
	}
	for (i = 0; i < workers; i++)
		if (pthread_create(&tids[i], NULL, null_worker, NULL) != 0) {
			fprintf(stderr, "fcgi-null: cannot start worker\n");
			goto out;
		}
	fprintf(stderr, "fcgi-null: serving %s with %d workers\n",
	    path != NULL ? path : "fd 0", workers);
	if (sigwait(&stop, &sig) != 0)
		goto out;
	if (path != NULL)
		(void)unlink(path);
	rc = 0;
out:
	free(tids);
	return rc;
}
