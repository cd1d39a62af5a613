/*
 * main.c - picomdm-fcgi: configuration, start-up, the worker threads and
 * routing.
 *
 * Process model: one process; N worker threads each reading requests
 * from the shared listen socket and kept connections (fcgi.c); one
 * group-commit writer thread in the store (store.c); one completion
 * thread that sends the replies of committed writes. A worker never
 * waits for the disk: it hands a check-in or report to the writer with
 * store_submit() and accepts the next request, so a batch holds every
 * request in flight, bounded by max_inflight. The LMDB environment is
 * opened after any fork (none here) and shared by all threads; several
 * such processes may serve one environment.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "extern.h"
#include "picomdm/identity.h"
#include "picomdm/log.h"
#include "picomdm/metrics.h"
#include "picomdm/pushcert.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "fcgi.h"
#include "listen.h"
#include "request.h"

#define CHECKIN_TYPE "application/x-apple-aspen-mdm-checkin"

static struct server srv;
static int           listen_fd = 0;
static volatile int  stopping;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: picomdm-fcgi --db DIR --device-ca PEM [--socket PATH] "
	    "[--config FILE]\n"
	    "                    [--workers N] [--worker-nice N] "
	    "[--max-inflight N]\n"
	    "                    [--commit-delay USEC] "
	    "[--api-key-file FILE] [--log-level LEVEL]\n"
	    "                    [--map-size SIZE] [--map-max SIZE] "
	    "[--checkin-max SIZE] [--connect-max SIZE]\n"
	    "                    [--allow-retro] "
	    "[--socket-owner USER] [--socket-group GROUP]\n"
	    "                    [--nosync]\n");
	exit(2);
}

/* Is the content type the check-in one (parameters after ';' ignored)? */
static int
is_checkin_type(const char *ct)
{
	size_t n = strlen(CHECKIN_TYPE);

	return strncasecmp(ct, CHECKIN_TYPE, n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

enum route { ROUTE_NONE, ROUTE_CHECKIN, ROUTE_CONNECT, ROUTE_API,
	ROUTE_ENROLL,
	ROUTE_HEALTH };

static enum route
route_of(const struct request *r)
{
	if (strcmp(r->uri, "/mdm/checkin") == 0)
		return ROUTE_CHECKIN;
	if (strcmp(r->uri, "/mdm/connect") == 0)
		return ROUTE_CONNECT;
	if (strcmp(r->uri, "/mdm/enroll") == 0)
		return ROUTE_ENROLL;
	if (strcmp(r->uri, "/mdm") == 0 || strcmp(r->uri, "/mdm/") == 0)
		return is_checkin_type(r->content_type) ? ROUTE_CHECKIN
		                                        : ROUTE_CONNECT;
	if (strncmp(r->uri, "/api/", 5) == 0)
		return ROUTE_API;
	if (strcmp(r->uri, "/healthz") == 0)
		return ROUTE_HEALTH;
	return ROUTE_NONE;
}

/*
 * Write status, headers and body: one sendmsg() (fcgi_reply). A HEAD
 * answer has the headers GET's would have, Content-Length included, and
 * no body (RFC 9110, 9.3.2): nginx drops a body sent to a HEAD, so none
 * is sent.
 */
static void
respond(struct fcgi *fr, const struct request *req,
    const struct response *resp)
{
	char hdr[512], extra[80] = ""; /* Retry-After or Allow */
	int  n, head = req->method != NULL && strcmp(req->method, "HEAD") == 0;

	if (resp->retry_after > 0)
		(void)snprintf(extra, sizeof(extra), "Retry-After: %d\r\n",
		    resp->retry_after);
	else if (resp->status == 405 && resp->allow[0] != '\0')
		(void)snprintf(extra, sizeof(extra), "Allow: %s\r\n",
		    resp->allow);
	if (resp->body_len > 0 && resp->content_type != NULL)
		n = snprintf(hdr, sizeof(hdr), "Status: %d %s\r\n%s"
		    "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n",
		    resp->status, response_status_text(resp->status), extra,
		    resp->content_type, resp->body_len);
	else
		n = snprintf(hdr, sizeof(hdr), "Status: %d %s\r\n%s"
		    "Content-Length: %zu\r\n\r\n", resp->status,
		    response_status_text(resp->status), extra, resp->body_len);
	if (n < 0 || (size_t)n >= sizeof(hdr)) {
		log_error("fcgi: the response header does not fit");
		fr->failed = 1;
		return;
	}
	if (fcgi_reply(fr, hdr, (size_t)n, resp->body,
	    head ? 0 : resp->body_len) == -1)
		log_warn("fcgi: the reply could not be written");
}

/* Copy s into a log-safe form: printable ASCII only, bounded. */
static void
log_safe(const char *s, char *out, size_t n)
{
	size_t i;

	for (i = 0; s[i] != '\0' && i + 1 < n; i++)
		out[i] = s[i] > ' ' && s[i] < 127 ? s[i] : '?';
	out[i] = '\0';
}

/*
 * One request from accept to reply. A fixed pool of max_inflight of them
 * bounds the requests accepted and not yet answered: a worker takes one
 * to accept into and goes on to the next as soon as its request is
 * handled or handed to the store's writer; the reply is sent by the
 * worker (HANDLED) or by the completion thread once the write it waited
 * for is durable (PENDING), and the exchange goes back to the pool.
 */
struct exchange {
	struct fcgi         fr;
	struct request      req;
	struct response     resp;
	struct exchange    *next;
	exchange_release_fn release; /* what the last request left to free */
	void               *release_arg;
};

static struct {
	struct exchange *all;
	int              n;
	pthread_mutex_t  mu;       /* free list */
	pthread_cond_t   cv_free;
	struct exchange *free;
	pthread_mutex_t  rmu;      /* replies ready to send */
	pthread_cond_t   cv_ready;
	struct exchange *ready, *ready_tail;
	int              rstop;
	pthread_t        thread;
} ex;

static struct exchange *
pool_take(void)
{
	struct exchange *x;

	pthread_mutex_lock(&ex.mu);
	while (ex.free == NULL && !stopping)
		pthread_cond_wait(&ex.cv_free, &ex.mu);
	if ((x = ex.free) != NULL && !stopping)
		ex.free = x->next;
	else
		x = NULL;
	pthread_mutex_unlock(&ex.mu);
	return x;
}

/*
 * Free what the slot's last request's handler left (exchange_done).
 * Called by the worker that takes the slot next, before it accepts into
 * it: freed by the thread that will allocate their successors.
 */
static void
exchange_release(struct exchange *x)
{
	if (x->release == NULL)
		return;
	x->release(x->release_arg);
	x->release = NULL;
	x->release_arg = NULL;
}

static void
pool_put(struct exchange *x)
{
	pthread_mutex_lock(&ex.mu);
	x->next = ex.free;
	ex.free = x;
	pthread_cond_signal(&ex.cv_free);
	pthread_mutex_unlock(&ex.mu);
}

/*
 * Connections. nginx may keep a FastCGI connection open for its next
 * request (FCGI_KEEP_CONN, "fastcgi_keep_conn on" with an upstream
 * "keepalive"). A request slot here is handed to the writer and answered
 * by another thread, so a kept connection cannot stay in its slot: it
 * would go unread until some worker happened to take that slot again,
 * and the next request on it would wait for nginx's fastcgi_read_timeout
 * while every worker sat in accept().
 *
 * So the connection is kept apart from the request slot. Workers wait in
 * one epoll set holding the listen socket and every kept connection that
 * is idle. A worker woken by the listen socket accepts one connection; one
 * woken by a kept connection takes it out of the set. Either way the
 * connection is lent to a free slot, and fcgi_accept() reads the request
 * from it. After the reply, a connection nginx asked to keep goes back
 * into the set (fcgi_finish says which), and the slot back to the pool.
 * Both entries are one-shot, so one event wakes one worker.
 * FCGI_WEB_SERVER_ADDRS is not consulted (the listen socket is for nginx
 * only, see nginx/README.md).
 */
static struct {
	int epfd;
	int stopfd;     /* eventfd, readable once stopping: wakes every worker */
	int unix_sock;  /* listen socket is AF_UNIX */
	int idle;       /* atomic: kept connections in the set (or going in) */
} conn = { -1, -1, 0, 0 };

static int
conn_arm(int op, int fd)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLONESHOT;
	ev.data.fd = fd;
	return epoll_ctl(conn.epfd, op, fd, &ev);
}

static int
conn_init(void)
{
	struct sockaddr_storage ss;
	socklen_t               sl = sizeof(ss);
	struct epoll_event      ev;
	int                     fl;

	conn.unix_sock = getsockname(listen_fd, (struct sockaddr *)&ss,
	    &sl) == 0 && ss.ss_family == AF_UNIX;
	if ((conn.epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
	    (conn.stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
		log_error("fcgi: epoll: %s", strerror(errno));
		return -1;
	}
	/* Another process may accept first: never block in accept(). */
	if ((fl = fcntl(listen_fd, F_GETFL)) == -1 ||
	    fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) == -1 ||
	    conn_arm(EPOLL_CTL_ADD, listen_fd) == -1) {
		log_error("fcgi: listen socket (fd %d): %s", listen_fd,
		    strerror(errno));
		return -1;
	}
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN; /* level-triggered: wakes them all */
	ev.data.fd = conn.stopfd;
	if (epoll_ctl(conn.epfd, EPOLL_CTL_ADD, conn.stopfd, &ev) == -1) {
		log_error("fcgi: epoll: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Wake every worker waiting for a connection; they see stopping. */
static void
conn_stop(void)
{
	uint64_t one = 1;

	if (conn.stopfd != -1 &&
	    write(conn.stopfd, &one, sizeof(one)) != sizeof(one))
		log_warn("fcgi: cannot wake the workers: %s", strerror(errno));
}

/* A connection just accepted: ready to be read. */
static int
conn_accepted(int fd)
{
	int one = 1;

	if (!conn.unix_sock)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
	return fd;
}

/* After accept4 failed with err: 0 to wait again, -1 to give up. */
static int
conn_accept_failed(int err)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	switch (err) {
	case EAGAIN:
	case EINTR:
	case ECONNABORTED:
	case EPROTO:
		return 0;
	case EMFILE:
	case ENFILE:
	case ENOBUFS:
	case ENOMEM:
		log_warn("fcgi: accept: %s", strerror(err));
		nanosleep(&ts, NULL);
		return 0;
	default:
		if (!stopping)
			log_error("fcgi: accept: %s", strerror(err));
		return -1;
	}
}

/*
 * Wait for a connection with a request to read: a new one from the listen
 * socket or a kept one nginx has written to (or closed). Returns its fd,
 * or -1 when stopping or the listen socket fails.
 *
 * While no kept connection waits in the set (nginx without upstream
 * keepalive, the template's default), a worker takes a new connection
 * with accept4 first and waits in epoll only when there is none: under
 * load the listen queue is seldom empty, and a request then costs one
 * system call here instead of three (epoll_wait, accept4, the listen
 * socket's re-arm) and no sleep. With a kept connection waiting, epoll
 * decides, so that new connections cannot pass it over.
 */
static int
conn_wait(void)
{
	struct epoll_event ev;
	int                n, fd, err;

	while (!stopping) {
		if (__atomic_load_n(&conn.idle, __ATOMIC_RELAXED) <= 0) {
			if ((fd = accept4(listen_fd, NULL, NULL,
			    SOCK_CLOEXEC)) != -1)
				return conn_accepted(fd);
			if (conn_accept_failed(errno) == -1)
				return -1;
		}
		if ((n = epoll_wait(conn.epfd, &ev, 1, -1)) == -1) {
			if (errno == EINTR)
				continue;
			log_error("fcgi: epoll_wait: %s", strerror(errno));
			return -1;
		}
		if (n == 0 || ev.data.fd == conn.stopfd)
			continue;
		if (ev.data.fd != listen_fd) {
			/* A kept connection: out of the set while in use. */
			fd = ev.data.fd;
			(void)epoll_ctl(conn.epfd, EPOLL_CTL_DEL, fd, NULL);
			__atomic_sub_fetch(&conn.idle, 1, __ATOMIC_RELAXED);
			return fd;
		}
		fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		err = errno;
		if (conn_arm(EPOLL_CTL_MOD, listen_fd) == -1) {
			log_error("fcgi: epoll: %s", strerror(errno));
			if (fd != -1)
				close(fd);
			return -1;
		}
		if (fd != -1)
			return conn_accepted(fd);
		if (conn_accept_failed(err) == -1)
			return -1;
	}
	return -1;
}

/*
 * After the reply: a connection nginx asked to keep (fcgi_finish) goes
 * back into the set for its next request.
 */
static void
conn_release(int fd)
{
	if (fd < 0)
		return;
	/* Counted before it can be taken, so the count never goes below
	 * the connections in the set. */
	__atomic_add_fetch(&conn.idle, 1, __ATOMIC_RELAXED);
	if (stopping || conn_arm(EPOLL_CTL_ADD, fd) == -1) {
		__atomic_sub_fetch(&conn.idle, 1, __ATOMIC_RELAXED);
		close(fd);
	}
}

/* Send the reply, log the request, release it. */
static void
exchange_finish(struct exchange *x)
{
	struct request  *req = &x->req;
	struct response *resp = &x->resp;
	char             id[128], path[128];

	respond(&x->fr, req, resp);
	/* Formatted only when the log level keeps the line. */
	if (log_enabled(resp->status >= 400 ? LOG_WARN : LOG_INFO)) {
		log_safe(resp->id[0] ? resp->id : "-", id, sizeof(id));
		log_safe(req->path ? req->path : "-", path, sizeof(path));
		if (resp->status >= 400)
			log_warn("request %s %s id=%s type=%s status=%d "
			    "us=%llu reason=\"%s\"",
			    req->method ? req->method : "-", path, id,
			    resp->msgtype ? resp->msgtype : "-", resp->status,
			    (unsigned long long)(time_mono_us() -
			    req->start_us), resp->reason ? resp->reason : "-");
		else
			log_info("request %s %s id=%s type=%s status=%d us=%llu",
			    req->method ? req->method : "-", path, id,
			    resp->msgtype ? resp->msgtype : "-", resp->status,
			    (unsigned long long)(time_mono_us() -
			    req->start_us));
	}
	metrics_request(req->uri, resp->msgtype, resp->status,
	    time_mono_us() - req->start_us);
	if (stopping)
		x->fr.keep = 0;
	request_free(req);
	free(resp->body);
	resp->body = NULL;
	conn_release(fcgi_finish(&x->fr));
	pool_put(x);
}

/*
 * The replies of one group commit, gathered in the thread that runs its
 * completions (the store's writer) and handed to the completion thread
 * together by exchanges_flush(), which the store calls after the last
 * completion of each commit (store_set_batch_done). One lock and one
 * wake-up a commit, not one a request: the completion thread no longer
 * wakes for the first reply only to wait for the writer's lock for the
 * next.
 */
static __thread struct exchange *pend, *pend_tail;

/* Called from the store's writer thread (exchange_done, exchange.c):
 * the reply joins its commit's batch. */
static void
exchange_ready(struct exchange *x, exchange_release_fn release, void *arg)
{
	x->release = release;
	x->release_arg = arg;
	x->next = NULL;
	if (pend_tail != NULL)
		pend_tail->next = x;
	else
		pend = x;
	pend_tail = x;
}

/* After a commit's completions: queue its replies to be sent. */
static void
exchanges_flush(void)
{
	if (pend == NULL)
		return;
	pthread_mutex_lock(&ex.rmu);
	if (ex.ready_tail != NULL)
		ex.ready_tail->next = pend;
	else
		ex.ready = pend;
	ex.ready_tail = pend_tail;
	pthread_cond_signal(&ex.cv_ready);
	pthread_mutex_unlock(&ex.rmu);
	pend = pend_tail = NULL;
}

/*
 * The completion thread sends the replies of committed writes, so the
 * writer never waits on a socket and no worker waits on the disk.
 */
static void *
completion_main(void *arg)
{
	struct exchange *x, *next;

	(void)arg;
	pthread_mutex_lock(&ex.rmu);
	for (;;) {
		while (ex.ready == NULL && !ex.rstop)
			pthread_cond_wait(&ex.cv_ready, &ex.rmu);
		if (ex.ready == NULL)
			break;
		x = ex.ready;
		ex.ready = ex.ready_tail = NULL;
		pthread_mutex_unlock(&ex.rmu);
		metrics_busy(METRICS_COMPLETION, 1);
		for (; x != NULL; x = next) {
			next = x->next;
			exchange_finish(x);
		}
		metrics_busy(METRICS_COMPLETION, 0);
		pthread_mutex_lock(&ex.rmu);
	}
	pthread_mutex_unlock(&ex.rmu);
	return NULL;
}

static int
exchanges_init(int n)
{
	int i;

	if ((ex.all = calloc((size_t)n, sizeof(*ex.all))) == NULL)
		return -1;
	ex.n = n;
	pthread_mutex_init(&ex.mu, NULL);
	pthread_cond_init(&ex.cv_free, NULL);
	pthread_mutex_init(&ex.rmu, NULL);
	pthread_cond_init(&ex.cv_ready, NULL);
	fcgi_setup(n);
	for (i = n - 1; i >= 0; i--) {
		fcgi_init(&ex.all[i].fr);
		ex.all[i].next = ex.free;
		ex.free = &ex.all[i];
	}
	exchange_set_done(exchange_ready);
	if (pthread_create(&ex.thread, NULL, completion_main, NULL) != 0)
		return -1;
	return 0;
}

/* After the workers and the writer have stopped: send what is left. */
static void
exchanges_stop(void)
{
	int i;

	pthread_mutex_lock(&ex.rmu);
	ex.rstop = 1;
	pthread_cond_signal(&ex.cv_ready);
	pthread_mutex_unlock(&ex.rmu);
	pthread_join(ex.thread, NULL);
	for (i = 0; i < ex.n; i++) {
		exchange_release(&ex.all[i]);
		fcgi_free(&ex.all[i].fr);
	}
	free(ex.all);
}

/* Route and handle one accepted request; HANDLED or PENDING. */
static int
serve(struct exchange *x)
{
	struct request  *req = &x->req;
	struct response *resp = &x->resp;
	enum route       rt;
	size_t           cap = 0;
	int              rc;

	memset(resp, 0, sizeof(*resp));
	resp->status = 200;
	if (request_init(&x->fr, req) == -1) {
		response_set(resp, 500, "out of memory");
		return HANDLED;
	}
	rt = route_of(req);
	switch (rt) {
	case ROUTE_CHECKIN:
		cap = srv.cfg->checkin_max;
		resp->msgtype = "checkin";
		break;
	case ROUTE_CONNECT:
		cap = srv.cfg->connect_max;
		resp->msgtype = "connect";
		break;
	case ROUTE_API:
		cap = srv.cfg->api_max;
		resp->msgtype = "api";
		break;
	case ROUTE_ENROLL: /* GET, or POST of a MachineInfo */
		cap = ENROLL_MACHINEINFO_MAX;
		resp->msgtype = "enroll";
		break;
	case ROUTE_NONE:
		response_set(resp, 404, "no such endpoint");
		return HANDLED;
	case ROUTE_HEALTH:
		return api_health(&srv, req, resp);
	}
	if (rt == ROUTE_API || rt == ROUTE_ENROLL) {
		/* The writer waits for device requests only
		 * (store_request_begin): an API call may read for long and
		 * mostly writes nothing. */
		store_request_end(srv.store);
	} else if (strcmp(req->method, "PUT") != 0) {
		response_set(resp, 405, "device endpoints take PUT");
		strlcpy(resp->allow, "PUT", sizeof(resp->allow));
		return HANDLED;
	}
	/* Without the API key the body is left unread (fcgi_finish). */
	if (rt == ROUTE_API && api_authorize(&srv, req, resp) == -1)
		return HANDLED;
	if ((rc = request_read_body(&x->fr, req, cap)) != 0) {
		if (rt == ROUTE_API)
			response_json_error(resp, rc,
			    rc == 413 ? "request too large" : "bad request",
			    rc == 413 ? "body over the configured cap" :
			    "bad Content-Length or short body");
		else
			response_set(resp, rc, rc == 413 ?
			    "body over the cap" :
			    "bad Content-Length or short body");
		return HANDLED;
	}
	if (rt == ROUTE_CHECKIN)
		return checkin_handle(&srv, req, resp, x);
	if (rt == ROUTE_CONNECT)
		return connect_handle(&srv, req, resp, x);
	if (rt == ROUTE_ENROLL) {
		enroll_handle(&srv, req, resp);
		return HANDLED;
	}
	api_handle(&srv, req, resp);
	return HANDLED;
}

/*
 * A worker runs worker_nice steps below the process's priority (Linux
 * gives each thread its own nice value). The writer and the completion
 * thread keep the process's: they are the serial stages every request
 * waits for, so when nginx and the workers keep both cores busy they get
 * the CPU first. Measured in BENCHMARKS.md ("Workers below the writer").
 */
static void
worker_lower_priority(void)
{
	id_t tid = (id_t)gettid();
	int  base, want;

	if (srv.cfg->worker_nice == 0)
		return;
	errno = 0;
	base = getpriority(PRIO_PROCESS, tid);
	if (base == -1 && errno != 0) {
		log_warn("worker: cannot read its priority: %s",
		    strerror(errno));
		return;
	}
	want = base + srv.cfg->worker_nice;
	if (want > 19)
		want = 19;
	if (setpriority(PRIO_PROCESS, tid, want) == -1)
		log_warn("worker: cannot lower its priority to nice %d: %s",
		    want, strerror(errno));
}

static void *
worker_main(void *arg)
{
	struct exchange *x;
	int              fd, rc;

	(void)arg;
	worker_lower_priority();
	while (!stopping) {
		if ((x = pool_take()) == NULL)
			break;
		exchange_release(x);
		if ((fd = conn_wait()) == -1) {
			pool_put(x);
			break;
		}
		/* A request is coming that may bring a write (store.c). */
		store_request_begin(srv.store);
		/* See "Connections" above. */
		if (fcgi_accept(&x->fr, fd) == -1) {
			/* Closed with no request (fcgi_accept closed it). */
			store_request_end(srv.store);
			pool_put(x);
			continue;
		}
		metrics_inflight(1);
		rc = serve(x);
		store_request_end(srv.store);
		if (rc == HANDLED)
			exchange_finish(x);
	}
	return NULL;
}

/*
 * The listening socket handed over by the process that started us:
 * systemd socket activation (LISTEN_PID is ours and LISTEN_FDS >= 1: the
 * first passed descriptor, fd 3; the variables are removed so that
 * nothing started later takes them for its own), else fd 0 (spawn-fcgi,
 * or systemd's StandardInput=socket).
 */
static int
inherited_listen_fd(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	long long   p, n;
	int         fd = 3;

	if (pid == NULL || fds == NULL || num_parse(pid, 1, INT32_MAX, &p) ==
	    -1 || (pid_t)p != getpid() || num_parse(fds, 1, 4096, &n) == -1)
		return 0;
	if (n > 1)
		log_warn("socket activation: %lld sockets passed, serving "
		    "the first (fd 3)", n);
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

/*
 * Read the API key file: one key, surrounding whitespace ignored. White
 * space, a control character or a NUL inside is refused: no
 * Authorization header could ever match such a key (two keys on two
 * lines, say, for a rotation), so the API would answer 403 to everyone.
 */
static int
load_api_key(const char *path)
{
	FILE  *f;
	char   buf[512];
	size_t n;
	char  *s, *e, *p;
	int    nul;

	if ((f = fopen(path, "r")) == NULL) {
		log_error("api key: %s: %s", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	nul = strlen(buf) != n;
	for (s = buf; *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r';)
		s++;
	for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t' ||
	     e[-1] == '\n' || e[-1] == '\r');)
		*--e = '\0';
	if (e - s < 16 || n == sizeof(buf) - 1) {
		log_error("api key: %s: want one key of 16 to 510 characters",
		    path);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	for (p = s; p < e && (unsigned char)*p > ' ' && *p != 0x7f; p++)
		;
	if (p < e || nul) {
		log_error("api key: %s: white space or a control character "
		    "inside the key: want one key on one line", path);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	if ((srv.api_key = malloc((size_t)(e - s))) == NULL)
		return -1;
	memcpy(srv.api_key, s, (size_t)(e - s));
	srv.api_key_len = (size_t)(e - s);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/*
 * Start-up: a warning for each push certificate within PUSHCERT_WARN_DAYS
 * of its end (or past it): topic and date, never the key; and one when
 * the enrollment profile names a topic the store has no push certificate
 * for (devices enrolled with it could never be woken).
 */
struct pushcert_check {
	time_t	    now;
	const char *topic; /* the enrollment profile's, or NULL */
	int	    found;
};

static int
pushcert_warn_cb(const struct store_pushcert *sc, void *arg)
{
	struct pushcert_check *w = arg;
	struct pushcert	       pc;
	long long	       days;

	memset(&pc, 0, sizeof(pc));
	pc.not_after = (time_t)(sc->not_after / 1000000u);
	days = pushcert_days_left(&pc, w->now);
	if (w->topic != NULL && strcmp(sc->topic, w->topic) == 0)
		w->found = 1;
	if (days < 0)
		log_warn("push certificate for %s has expired (%lld days ago): "
		    "pushes to its devices will fail",
		    sc->topic, -days);
	else if (days <= PUSHCERT_WARN_DAYS)
		log_warn("push certificate for %s expires in %lld days: renew "
		    "it (picomdmctl pushcert import)",
		    sc->topic, days);
	return 0;
}

static int
pushcert_warn_read(struct store_txn *t, void *arg)
{
	return store_pushcert_each(t, pushcert_warn_cb, arg);
}

static void
pushcert_warn(struct store *s, const char *topic)
{
	struct pushcert_check w = {time(NULL), topic, 0};
	int		      rc;

	if ((rc = store_read(s, pushcert_warn_read, &w)) != 0)
		log_warn("push certificates: cannot read: %s",
		    store_strerror(rc));
	else if (topic != NULL && !w.found)
		log_warn("enrollment: the profile's topic %s has no push "
		    "certificate in the store: import it (picomdmctl pushcert "
		    "import), or enrolled devices cannot be woken", topic);
}

/*
 * Fix glibc malloc's thresholds before any thread starts (pure
 * performance; no behaviour depends on it). By default a thread's arena
 * gives its free top back to the kernel (madvise) once it exceeds the trim
 * threshold and the pages fault in again on the next burst: 0.1 to 0.5
 * page faults per request in the TLS cells. A 16 MiB trim threshold keeps
 * what an arena has grown to (0.01 to 0.1 faults); the 1 MiB top pad
 * grows the main arena and each new heap in larger steps; the mmap
 * threshold is fixed at 4 MiB so that blocks below it come from an arena
 * instead of a fresh mmap each time, and fixing it stops glibc moving the
 * thresholds itself. CPU per request did not move beyond the noise; the
 * cost is about 8 MB more peak RSS (BENCHMARKS.md, Round 2,
 * "2026-12-05, 02:05").
 */
static void
malloc_tune(void)
{
	(void)mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
	(void)mallopt(M_TOP_PAD, 1024 * 1024);
	(void)mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "socket", required_argument, NULL, 's' },
		{ "device-ca", required_argument, NULL, 'c' },
		{ "config", required_argument, NULL, 'f' },
		{ "workers", required_argument, NULL, 'w' },
		{ "worker-nice", required_argument, NULL, 'W' },
		{ "max-inflight", required_argument, NULL, 'i' },
		{ "commit-delay", required_argument, NULL, 'D' },
		{ "api-key-file", required_argument, NULL, 'k' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "map-size", required_argument, NULL, 'm' },
		{ "map-max", required_argument, NULL, 'M' },
		{ "checkin-max", required_argument, NULL, 'C' },
		{ "connect-max", required_argument, NULL, 'N' },
		{ "allow-retro", no_argument, NULL, 'r' },
		{ "nosync", no_argument, NULL, 'S' },
		{ "socket-owner", required_argument, NULL, 'O' },
		{ "socket-group", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static struct config cfg; /* static: reachable on every early exit */
	struct store_opts so;
	const char       *cfgfile = NULL;
	pthread_t        *th = NULL;
	sigset_t          sigs;
	char            **ov_key, **ov_val;
	int               nov = 0, ch, i, sig, rc = 1;

	malloc_tune();
	config_defaults(&cfg);
	/* First pass finds --config; overrides are applied after the file. */
	ov_key = calloc((size_t)argc, sizeof(*ov_key));
	ov_val = calloc((size_t)argc, sizeof(*ov_val));
	if (ov_key == NULL || ov_val == NULL)
		return 1;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		const char *name = NULL;

		for (i = 0; longopts[i].name != NULL; i++)
			if (longopts[i].val == ch)
				name = longopts[i].name;
		switch (ch) {
		case 'f':
			cfgfile = optarg;
			break;
		case 'r':
		case 'S':
			ov_key[nov] = (char *)(uintptr_t)name;
			ov_val[nov++] = (char *)(uintptr_t)"yes";
			break;
		case 'h':
		case '?':
			usage();
			break;
		default:
			ov_key[nov] = (char *)(uintptr_t)name;
			ov_val[nov++] = optarg;
			break;
		}
	}
	if (optind != argc)
		usage();
	if (cfgfile != NULL && config_load(&cfg, cfgfile) == -1)
		rc = 2;
	for (i = 0; rc != 2 && i < nov; i++)
		if (config_set(&cfg, ov_key[i], ov_val[i]) == -1)
			rc = 2;
	free(ov_key);
	free(ov_val);
	if (rc == 2) {
		/* Freed, so that a sanitizer run sees no leak at exit. */
		config_free(&cfg);
		return 2;
	}
	if (cfg.log_level != NULL)
		log_set_level((enum log_level)log_level_parse(cfg.log_level));
	if (cfg.db == NULL || cfg.device_ca == NULL) {
		log_error("--db and --device-ca are required");
		usage();
	}
	srv.cfg = &cfg;
	if (identity_ca_load(cfg.device_ca, &srv.ca) == -1) {
		log_error("device ca: cannot load %s", cfg.device_ca);
		config_free(&cfg);
		return 1;
	}
	if (cfg.api_key_file != NULL && load_api_key(cfg.api_key_file) == -1) {
		config_free(&cfg);
		return 1;
	}
	{
		char eerr[256]; /* the enrollment profile (enroll.c) */

		if (enroll_load(&cfg.enroll, &srv.enroll, eerr,
		    sizeof(eerr)) == -1) {
			log_error("enroll: %s", eerr);
			config_free(&cfg);
			return 1;
		}
	}

	/* Removes the socket file again on every exit from here on. */
	atexit(listen_cleanup);
	/* systemd socket activation passes the socket as fd 3. */
	listen_fd = cfg.socket == NULL ? inherited_listen_fd() : 0;
	if (listen_fd == 0 && (listen_fd = listen_open(&cfg)) < 0)
		return 1;

	memset(&so, 0, sizeof(so));
	so.map_size = cfg.map_size;
	so.map_max = cfg.map_max;
	so.nosync = cfg.nosync;
	so.commit_delay = cfg.commit_delay;
	so.max_readers = (unsigned)cfg.workers + 126;
	if ((rc = store_open(cfg.db, &so, &srv.store)) != 0) {
		log_error("store: cannot open %s: %s", cfg.db,
		    store_strerror(rc));
		config_free(&cfg);
		return 1;
	}
	if (cfg.nosync)
		log_warn("nosync: commits are not durable (tests and bench "
		    "only)");
	/*
	 * Signals go to the main thread only, through sigwait: blocked
	 * before the first thread starts (the writer), which inherits the
	 * mask. Were it started first, a SIGTERM arriving before the main
	 * thread waits for it could go to the writer and end the process
	 * there and then, not as a stop.
	 */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	store_set_batch_done(srv.store, exchanges_flush);
	if (store_writer_start(srv.store) != 0)
		return 1;
	pushcert_warn(srv.store, enroll_access(srv.enroll) != ENROLL_ACCESS_OFF ?
	    enroll_topic(srv.enroll) : NULL);

	if (conn_init() == -1)
		return 1;
	if (exchanges_init(cfg.max_inflight) == -1) {
		log_error("cannot set up %d request slots", cfg.max_inflight);
		return 1;
	}
	if ((th = calloc((size_t)cfg.workers, sizeof(*th))) == NULL)
		return 1;
	for (i = 0; i < cfg.workers; i++)
		if (pthread_create(&th[i], NULL, worker_main, NULL) != 0) {
			log_error("cannot start worker %d", i);
			return 1;
		}
	log_info("picomdm-fcgi serving %s with %d workers, %d requests in "
	    "flight at most, store %s", cfg.socket ? cfg.socket :
	    listen_fd == 0 ? "fd 0" : "fd 3 (socket activation)",
	    cfg.workers, cfg.max_inflight, cfg.db);
	for (;;) {
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
	}
	log_info("signal %d: finishing requests in progress", sig);
	stopping = 1;
	/*
	 * Wake the workers waiting for a connection (conn_stop); those busy
	 * finish first. The listen socket is left open as it is, never
	 * shut down: under socket activation systemd keeps it for the next
	 * start, which serves what waits in its backlog meanwhile, and a
	 * shutdown() would fail the socket unit (POLLHUP), leaving nginx
	 * nothing to connect to (tests/package/test-boot.sh).
	 */
	conn_stop();
	pthread_mutex_lock(&ex.mu);
	pthread_cond_broadcast(&ex.cv_free);
	pthread_mutex_unlock(&ex.mu);
	for (i = 0; i < cfg.workers; i++)
		pthread_join(th[i], NULL);
	free(th);
	/* The writer commits what is queued; then its replies are sent. */
	store_writer_stop(srv.store);
	exchanges_stop();
	store_close(srv.store);
	identity_ca_free(srv.ca);
	enroll_free(srv.enroll);
	freezero(srv.api_key, srv.api_key_len);
	listen_cleanup();
	config_free(&cfg);
	log_info("stopped");
	return 0;
}
