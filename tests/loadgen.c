/*
 * loadgen.c - an HTTP/1.1 keep-alive load generator for scripts/bench and
 * the crash test: what wrk cannot do, a TLS client certificate per
 * connection (so 64 connections can be 64 devices), an Mdm-Signature per
 * body, session resumption on reconnect, and device-like request chains.
 *
 * Each thread runs an epoll loop over its share of the connections
 * (non-blocking sockets, non-blocking OpenSSL). A connection sends one
 * request at a time (no pipelining) and sends the next as soon as the
 * response is complete, so the offered load is closed-loop: C
 * connections, C requests in flight.
 *
 * Devices: --body FILE (with --cert/--key) is one device; --devices FILE
 * lists one per line, "BODY CERT KEY [IDLE]" ("-" for none). Connection i
 * is device (i + --device-offset) mod D. A body may hold placeholders
 * that are filled in per request:
 *
 *	@TOKEN@        base64 of 32 fresh random bytes (a push token)
 *	@CommandUUID@  the CommandUUID of the command in the previous
 *	               response on this connection (--chain)
 *
 * With --chain, a connection sends IDLE first and whenever the previous
 * response held no command, and BODY (the report acknowledging the
 * command just received) otherwise: a device working through its queue.
 * With --sign, each body is signed (detached CMS, signer certificate
 * included, RFC 5652) with the device's key and sent as Mdm-Signature, as
 * a device without a TLS client certificate does; fixed bodies are signed
 * once at start-up.
 *
 * Latency runs from the request's first byte to its response's last, and
 * includes connecting and the TLS handshake for a request that opens a
 * connection. The result is one JSON line on stdout. With --record FILE,
 * every finished or failed request appends "DEVICE STATUS TOKEN" (status
 * 0 for a transport error, token "-" when the body had none): per
 * connection in the order sent, for the crash test.
 *
 * usage: see usage() below.
 */
#include "config.h"

#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "picomdm/util.h"

#define LG_CONN_MAX   4096
#define LG_DEV_MAX    65536
#define LG_THREAD_MAX 64
#define LG_FILE_MAX   (8 * 1024 * 1024)
#define LG_RESP_MAX   (16 * 1024 * 1024)
#define LG_HEAD_MAX   (64 * 1024)
#define LG_UUID_MAX   255
#define LG_TOKEN_LEN  32
#define LG_TOKEN_B64  44
#define LG_RETRY_US   10000
#define LG_STATUS_MAX 600

enum lg_err {
	LG_ECONNECT = 0, /* connect() failed */
	LG_ETLS,	 /* handshake or TLS record error */
	LG_ERESET,	 /* reset, or closed before a whole response */
	LG_ETIMEOUT,	 /* no whole response within --timeout */
	LG_EPARSE,	 /* not an HTTP/1.1 response we understand */
	LG_E__MAX
};
static const char *const lg_err_names[LG_E__MAX] = {
    "connect", "tls", "reset", "timeout", "parse"};

enum lg_state { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_SEND, ST_RECV };

struct lg_dev {
	char	      *body; /* body or template */
	size_t	       body_len;
	int	       templ; /* holds a placeholder */
	char	      *idle;  /* --chain: the Idle report */
	size_t	       idle_len;
	X509	      *cert;
	EVP_PKEY      *key;
	SSL_CTX	      *ctx; /* TLS with this device's certificate */
	unsigned char *req; /* whole request, when nothing varies */
	size_t	       req_len;
	unsigned char *ireq; /* the same for the Idle report */
	size_t	       ireq_len;
};

struct lg_thread;

struct lg_conn {
	struct lg_thread    *th;
	int		     idx;
	int		     fd;
	SSL		    *ssl;
	SSL_SESSION	    *sess; /* for resumption (--resume) */
	struct lg_dev	    *dev;
	int		     devno;
	enum lg_state	     st;
	uint32_t	     ev;       /* epoll interest */
	uint64_t	     t_start;  /* µs, request start */
	uint64_t	     retry_at; /* µs, ST_IDLE: reconnect then */
	unsigned	     nreq;     /* requests on this connection */
	int		     has_req;  /* a request is being timed */
	struct buf	     out;
	const unsigned char *wp; /* what is being written */
	size_t		     wlen, woff;
	struct buf	     in;
	char		     uuid[LG_UUID_MAX + 1]; /* --chain */
	char		     token[LG_TOKEN_B64 + 1];
};

struct lg_stats {
	uint64_t  all;	/* whole responses, warm-up included */
	uint64_t  done; /* whole responses in the measured window */
	uint64_t  status[LG_STATUS_MAX];
	uint64_t  err[LG_E__MAX];
	uint64_t  handshakes;
	uint64_t  resumed;
	uint64_t  chain_empty;
	uint32_t *lat; /* µs */
	size_t	  nlat, caplat;
};

struct lg_thread {
	pthread_t	 tid;
	int		 ep;
	struct lg_conn **conns;
	int		 nconns;
	struct lg_stats	 st;
};

/* Configuration and shared state. */
static struct {
	const char	  *host;
	int		   port;
	int		   tls;
	const char	  *cacert;
	const char	  *servername;
	const char	  *method;
	const char	  *path;
	const char	  *ctype;
	struct buf	   headers; /* extra header lines, CRLF each */
	int		   conns;
	int		   threads;
	double		   duration, warmup;
	long long	   requests;
	unsigned	   reconnect;
	int		   resume;
	int		   chain;
	int		   sign;
	int		   dev_offset;
	uint64_t	   timeout_us;
	struct lg_dev	  *devs;
	int		   ndevs;
	FILE		  *record;
	pthread_mutex_t	   record_mu;
	X509_STORE	  *castore;
	struct sockaddr_in addr;
	/* run control */
	uint64_t     t0, t_measure, t_end; /* µs, monotonic */
	volatile int stop;
	long long    issued; /* --requests: claimed so far */
} g;

static void usage(void) __attribute__((noreturn));
static int  lg_new_session(SSL *, SSL_SESSION *);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: loadgen --port N [--host ADDR] [--tls --cacert PEM "
	    "[--servername NAME]]\n"
	    "               (--body FILE [--cert PEM --key PEM] | "
	    "--devices FILE)\n"
	    "               [--path PATH] [--method M] [--content-type T] "
	    "[--header H]...\n"
	    "               [--connections N] [--threads N] "
	    "[--duration S [--warmup S] | --requests N]\n"
	    "               [--reconnect N [--resume]] [--chain] [--sign] "
	    "[--device-offset N]\n"
	    "               [--timeout MS] [--record FILE]\n");
	exit(2);
}

static void lg_die(const char *, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

static void
lg_die(const char *fmt, ...)
{
	va_list ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static long long
lg_num(const char *s, long long min, long long max, const char *what)
{
	long long v;

	if (num_parse(s, min, max, &v) == -1)
		lg_die("%s: want a number from %lld to %lld, got \"%s\"", what,
		    min, max, s);
	return v;
}

/* Seconds, possibly fractional ("2", "0.5"): strict, 0 to one day. */
static double
lg_seconds(const char *s, const char *what)
{
	char  *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > 86400)
		lg_die("%s: want seconds, got \"%s\"", what, s);
	return v;
}

/* Read a whole file (at most LG_FILE_MAX bytes); NUL-terminated. */
static char *
lg_slurp(const char *path, size_t *len)
{
	struct stat st;
	FILE	   *f;
	char	   *p;
	size_t	    n;

	if ((f = fopen(path, "rb")) == NULL || fstat(fileno(f), &st) == -1)
		lg_die("%s: %s", path, strerror(errno));
	if (st.st_size < 0 || st.st_size > LG_FILE_MAX)
		lg_die("%s: larger than %d bytes", path, LG_FILE_MAX);
	if ((p = malloc((size_t)st.st_size + 1)) == NULL)
		lg_die("out of memory");
	n = fread(p, 1, (size_t)st.st_size, f);
	if (ferror(f) || n != (size_t)st.st_size)
		lg_die("%s: cannot read", path);
	fclose(f);
	p[n] = '\0';
	*len = n;
	return p;
}

static X509 *
lg_load_cert(const char *path)
{
	BIO  *b = BIO_new_file(path, "r");
	X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	if (x == NULL)
		lg_die("%s: no certificate", path);
	return x;
}

static EVP_PKEY *
lg_load_key(const char *path)
{
	BIO	 *b = BIO_new_file(path, "r");
	EVP_PKEY *k =
	    b != NULL ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;

	BIO_free(b);
	if (k == NULL)
		lg_die("%s: no private key", path);
	return k;
}

static uint64_t
lg_now(void)
{
	return time_mono_us();
}

/* ---- request bodies ---- */

/*
 * Base64 of a detached CMS SignedData over body (signer certificate
 * included), as "openssl cms -sign -binary -outform DER" makes it. The
 * caller frees.
 */
static char *
lg_sign(const struct lg_dev *d, const void *body, size_t len)
{
	BIO		*in = NULL, *out = NULL;
	CMS_ContentInfo *cms = NULL;
	BUF_MEM		*bm;
	char		*s = NULL;

	if ((in = BIO_new_mem_buf(body, (int)len)) == NULL ||
	    (out = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	cms = CMS_sign(d->cert, d->key, NULL, in, CMS_DETACHED | CMS_BINARY);
	if (cms == NULL || i2d_CMS_bio(out, cms) <= 0)
		goto out;
	BIO_get_mem_ptr(out, &bm);
	s = base64_encode(bm->data, bm->length);
out:
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(out);
	if (s == NULL)
		lg_die("cannot sign a body");
	return s;
}

/* The request line and headers for a body of len bytes, into b. */
static void
lg_head(struct buf *b, size_t len, const char *sig)
{
	int rc;

	b->len = 0;
	rc = buf_printf(b,
	    "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: MDM/1.0\r\n"
	    "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s%s",
	    g.method, g.path, g.servername, g.ctype, len,
	    sig != NULL ? "Mdm-Signature: " : "", sig != NULL ? sig : "",
	    sig != NULL ? "\r\n" : "");
	if (rc == -1 ||
	    (g.headers.len > 0 &&
		buf_append(b, g.headers.p, g.headers.len) == -1) ||
	    buf_append(b, "\r\n", 2) == -1)
		lg_die("out of memory");
}

/* A whole request for a fixed body. */
static unsigned char *
lg_fixed(const struct lg_dev *d, const char *body, size_t len, size_t *outlen)
{
	struct buf b;
	char	  *sig = NULL;

	memset(&b, 0, sizeof(b));
	if (g.sign)
		sig = lg_sign(d, body, len);
	lg_head(&b, len, sig);
	free(sig);
	if (buf_append(&b, body, len) == -1)
		lg_die("out of memory");
	*outlen = b.len;
	return b.p;
}

/*
 * Fill in the placeholders of the body template for connection c into
 * c->out after the head. Returns the request's bytes in c->out.
 */
static void
lg_build(struct lg_conn *c)
{
	struct lg_dev *d = c->dev;
	struct buf     body;
	const char    *p, *e, *at;
	unsigned char  tok[LG_TOKEN_LEN];
	char	      *t64, *sig = NULL;

	c->token[0] = '\0';
	if (g.chain && c->uuid[0] == '\0') {
		if (d->ireq != NULL) {
			c->wp = d->ireq;
			c->wlen = d->ireq_len;
			return;
		}
		p = d->idle;
		e = d->idle + d->idle_len;
	} else if (!d->templ) {
		c->wp = d->req;
		c->wlen = d->req_len;
		return;
	} else {
		p = d->body;
		e = d->body + d->body_len;
	}
	memset(&body, 0, sizeof(body));
	while (p < e) {
		at = memchr(p, '@', (size_t)(e - p));
		if (at == NULL) {
			if (buf_append(&body, p, (size_t)(e - p)) == -1)
				lg_die("out of memory");
			break;
		}
		if (buf_append(&body, p, (size_t)(at - p)) == -1)
			lg_die("out of memory");
		if ((size_t)(e - at) >= 7 && memcmp(at, "@TOKEN@", 7) == 0) {
			if (RAND_bytes(tok, sizeof(tok)) != 1 ||
			    (t64 = base64_encode(tok, sizeof(tok))) == NULL)
				lg_die("no random token");
			strlcpy(c->token, t64, sizeof(c->token));
			free(t64);
			if (buf_append(&body, c->token, strlen(c->token)) == -1)
				lg_die("out of memory");
			p = at + 7;
		} else if ((size_t)(e - at) >= 13 &&
		    memcmp(at, "@CommandUUID@", 13) == 0) {
			if (buf_append(&body, c->uuid, strlen(c->uuid)) == -1)
				lg_die("out of memory");
			p = at + 13;
		} else {
			if (buf_append(&body, "@", 1) == -1)
				lg_die("out of memory");
			p = at + 1;
		}
	}
	if (g.sign)
		sig = lg_sign(
		    d, body.len > 0 ? (const void *)body.p : "", body.len);
	lg_head(&c->out, body.len, sig);
	free(sig);
	if (body.len > 0 && buf_append(&c->out, body.p, body.len) == -1)
		lg_die("out of memory");
	buf_free(&body);
	c->wp = c->out.p;
	c->wlen = c->out.len;
}

/* ---- devices ---- */

static void
lg_dev_init(struct lg_dev *d, const char *body, const char *cert,
    const char *key, const char *idle)
{
	memset(d, 0, sizeof(*d));
	d->body = lg_slurp(body, &d->body_len);
	d->templ = strstr(d->body, "@TOKEN@") != NULL ||
	    strstr(d->body, "@CommandUUID@") != NULL;
	if (idle != NULL)
		d->idle = lg_slurp(idle, &d->idle_len);
	else if (g.chain)
		lg_die("%s: --chain needs an IDLE body", body);
	if (cert != NULL) {
		d->cert = lg_load_cert(cert);
		d->key = lg_load_key(key);
	} else if (g.tls || g.sign)
		lg_die("%s: --tls and --sign need a certificate", body);
	if (g.tls) {
		if ((d->ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			lg_die("SSL_CTX_new");
		SSL_CTX_set_min_proto_version(d->ctx, TLS1_2_VERSION);
		X509_STORE_up_ref(g.castore);
		SSL_CTX_set_cert_store(d->ctx, g.castore);
		SSL_CTX_set_verify(d->ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_session_cache_mode(d->ctx,
		    SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
		SSL_CTX_sess_set_new_cb(d->ctx, lg_new_session);
		if (SSL_CTX_use_certificate(d->ctx, d->cert) != 1 ||
		    SSL_CTX_use_PrivateKey(d->ctx, d->key) != 1 ||
		    SSL_CTX_check_private_key(d->ctx) != 1)
			lg_die("%s: certificate and key do not match", cert);
	}
	if (!d->templ)
		d->req = lg_fixed(d, d->body, d->body_len, &d->req_len);
	if (d->idle != NULL && strchr(d->idle, '@') == NULL)
		d->ireq = lg_fixed(d, d->idle, d->idle_len, &d->ireq_len);
}

/* --devices FILE: "BODY CERT KEY [IDLE]" per line; '#' comments. */
static void
lg_devices(const char *path)
{
	FILE   *f;
	char   *line = NULL, *tok[4], *s, *save;
	size_t	cap = 0;
	ssize_t n;
	int	k;

	if ((f = fopen(path, "r")) == NULL)
		lg_die("%s: %s", path, strerror(errno));
	if ((g.devs = calloc(LG_DEV_MAX, sizeof(*g.devs))) == NULL)
		lg_die("out of memory");
	while ((n = getline(&line, &cap, f)) != -1) {
		for (k = 0, s = line; k < 4; k++, s = NULL) {
			tok[k] = strtok_r(s, " \t\r\n", &save);
			if (tok[k] != NULL && strcmp(tok[k], "-") == 0)
				tok[k] = NULL;
			if (tok[k] == NULL && k == 0)
				break;
		}
		if (tok[0] == NULL || tok[0][0] == '#')
			continue;
		if (g.ndevs == LG_DEV_MAX)
			lg_die("%s: more than %d devices", path, LG_DEV_MAX);
		if ((tok[1] == NULL) != (tok[2] == NULL))
			lg_die("%s: a certificate needs its key", path);
		lg_dev_init(&g.devs[g.ndevs++], tok[0], tok[1], tok[2], tok[3]);
	}
	free(line);
	fclose(f);
	if (g.ndevs == 0)
		lg_die("%s: no devices", path);
}

/* ---- statistics ---- */

static void
lg_lat_add(struct lg_stats *s, uint64_t us)
{
	uint32_t *p;

	if (s->nlat == s->caplat) {
		s->caplat = s->caplat ? s->caplat * 2 : 65536;
		if ((p = realloc(s->lat, s->caplat * sizeof(*p))) == NULL)
			lg_die("out of memory");
		s->lat = p;
	}
	s->lat[s->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int
lg_in_window(uint64_t now)
{
	if (g.requests > 0)
		return 1;
	return now >= g.t_measure && now < g.t_end;
}

static void
lg_record(const struct lg_conn *c, int status)
{
	if (g.record == NULL)
		return;
	pthread_mutex_lock(&g.record_mu);
	fprintf(g.record, "%d %d %s\n", c->devno, status,
	    c->token[0] ? c->token : "-");
	pthread_mutex_unlock(&g.record_mu);
}

/* ---- connections ---- */

static void lg_conn_open(struct lg_conn *);
static void lg_send(struct lg_conn *);

static void
lg_want(struct lg_conn *c, uint32_t ev)
{
	struct epoll_event e;

	if (c->ev == ev)
		return;
	memset(&e, 0, sizeof(e));
	e.events = ev;
	e.data.ptr = c;
	if (epoll_ctl(c->th->ep, EPOLL_CTL_MOD, c->fd, &e) == -1)
		lg_die("epoll_ctl: %s", strerror(errno));
	c->ev = ev;
}

/* The connection an SSL object belongs to (ex_data index). */
static int lg_exidx = -1;

/*
 * A new session to resume with (--resume): with TLS 1.3 it comes with a
 * NewSessionTicket after the handshake, not with the handshake itself, so
 * it is taken from this callback rather than from SSL_get1_session().
 * Keeps the reference (returns 1).
 */
static int
lg_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct lg_conn *c = SSL_get_ex_data(ssl, lg_exidx);

	if (c == NULL || !g.resume)
		return 0;
	SSL_SESSION_free(c->sess);
	c->sess = sess;
	return 1;
}

/*
 * Close c. With keep_session (an orderly close between requests) a TLS
 * close_notify is sent first: OpenSSL marks the session of a connection
 * freed without one as not resumable, which would defeat --resume.
 */
static void
lg_conn_close(struct lg_conn *c, int keep_session)
{
	if (c->ssl != NULL) {
		if (keep_session)
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd != -1) {
		close(c->fd); /* also leaves the epoll set */
		c->fd = -1;
	}
	c->ev = 0;
	c->nreq = 0;
	c->in.len = 0;
	c->st = ST_IDLE;
}

/* Is another request to be started now? */
static int
lg_more(void)
{
	if (g.stop)
		return 0;
	if (g.requests > 0)
		return __atomic_add_fetch(&g.issued, 1, __ATOMIC_RELAXED) <=
		    g.requests;
	return lg_now() < g.t_end;
}

/* A transport failure: count it, record it, reconnect a bit later. */
static void
lg_fail(struct lg_conn *c, enum lg_err e)
{
	uint64_t now = lg_now();

	if (c->has_req) {
		if (lg_in_window(now))
			c->th->st.err[e]++;
		lg_record(c, 0);
		c->has_req = 0;
		c->uuid[0] = '\0';
	}
	ERR_clear_error();
	lg_conn_close(c, 0);
	c->retry_at = now + LG_RETRY_US;
}

/* Start the next request on c (opening a connection when needed). */
static void
lg_next(struct lg_conn *c)
{
	if (!lg_more()) {
		lg_conn_close(c, 0);
		c->retry_at = UINT64_MAX;
		return;
	}
	c->has_req = 1;
	c->t_start = lg_now();
	lg_build(c);
	c->woff = 0;
	if (c->st == ST_IDLE) {
		lg_conn_open(c);
		return;
	}
	c->st = ST_SEND;
	lg_send(c);
}

static void
lg_conn_open(struct lg_conn *c)
{
	struct epoll_event e;
	int		   one = 1;

	c->in.len = 0;
	c->nreq = 0;
	if ((c->fd = socket(
		 AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) == -1)
		lg_die("socket: %s", strerror(errno));
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&e, 0, sizeof(e));
	e.events = EPOLLOUT;
	e.data.ptr = c;
	if (epoll_ctl(c->th->ep, EPOLL_CTL_ADD, c->fd, &e) == -1)
		lg_die("epoll_ctl: %s", strerror(errno));
	c->ev = EPOLLOUT;
	c->st = ST_CONNECTING;
	if (connect(c->fd, (struct sockaddr *)&g.addr, sizeof(g.addr)) == -1 &&
	    errno != EINPROGRESS) {
		lg_fail(c, LG_ECONNECT);
		return;
	}
}

/* The TLS handshake, resumed when a session was kept. */
static void
lg_handshake(struct lg_conn *c)
{
	int r;

	if (c->ssl == NULL) {
		if ((c->ssl = SSL_new(c->dev->ctx)) == NULL ||
		    SSL_set_fd(c->ssl, c->fd) != 1 ||
		    /* A function, not the macro: it casts away const. */
		    SSL_ctrl(c->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME,
			TLSEXT_NAMETYPE_host_name,
			(void *)(uintptr_t)g.servername) != 1 ||
		    SSL_set1_host(c->ssl, g.servername) != 1)
			lg_die("SSL_new");
		if (SSL_set_ex_data(c->ssl, lg_exidx, c) != 1)
			lg_die("SSL_set_ex_data");
		if (g.resume && c->sess != NULL)
			SSL_set_session(c->ssl, c->sess);
	}
	r = SSL_connect(c->ssl);
	if (r == 1) {
		if (lg_in_window(lg_now())) {
			c->th->st.handshakes++;
			if (SSL_session_reused(c->ssl))
				c->th->st.resumed++;
		}
		c->st = ST_SEND;
		lg_send(c);
		return;
	}
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		lg_want(c, EPOLLIN);
		break;
	case SSL_ERROR_WANT_WRITE:
		lg_want(c, EPOLLOUT);
		break;
	default:
		lg_fail(c, LG_ETLS);
	}
}

/*
 * Parse the response in c->in. Returns 1 when whole (status, body
 * offset and length, close set), 0 when more is needed, -1 when it is
 * not a response.
 */
static int
lg_parse(struct lg_conn *c, int *status, size_t *boff, size_t *blen,
    int *close_after)
{
	const char *p = (const char *)c->in.p, *he, *l, *le, *v;
	size_t	    n = c->in.len, hlen, cl = 0, off, sz;
	int	    have_cl = 0, chunked = 0, i;

	if (n < 12)
		return 0;
	if (memcmp(p, "HTTP/1.", 7) != 0)
		return -1;
	he = memmem(p, n, "\r\n\r\n", 4);
	if (he == NULL)
		return n > LG_HEAD_MAX ? -1 : 0;
	hlen = (size_t)(he - p) + 4;
	if (p[8] != ' ')
		return -1;
	for (i = 9, *status = 0; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*status = *status * 10 + (p[i] - '0');
	}
	*close_after = p[7] == '0';
	for (l = (const char *)memchr(p, '\n', hlen) + 1; l < he; l = le + 1) {
		le = memchr(l, '\n', (size_t)(he + 2 - l));
		if (le == NULL)
			break;
		if ((v = memchr(l, ':', (size_t)(le - l))) == NULL)
			continue;
		sz = (size_t)(v - l);
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		if (sz == 14 && strncasecmp(l, "Content-Length", 14) == 0) {
			cl = strtoull(v, NULL, 10);
			have_cl = 1;
		} else if (sz == 17 &&
		    strncasecmp(l, "Transfer-Encoding", 17) == 0 &&
		    strncasecmp(v, "chunked", 7) == 0)
			chunked = 1;
		else if (sz == 10 && strncasecmp(l, "Connection", 10) == 0)
			*close_after = strncasecmp(v, "close", 5) == 0;
	}
	*boff = hlen;
	if (chunked) {
		/* Whole when the last chunk and the trailer's end are in. */
		for (off = hlen;;) {
			const char *cs = p + off;

			le = memmem(cs, n - off, "\r\n", 2);
			if (le == NULL)
				return 0;
			sz = strtoull(cs, NULL, 16);
			if (sz > LG_RESP_MAX)
				return -1;
			off = (size_t)(le - p) + 2;
			if (sz == 0) {
				if (memmem(p + off - 2, n - off + 2, "\r\n\r\n",
					4) == NULL)
					return 0;
				*blen =
				    0; /* not decoded; only chains read it */
				return 1;
			}
			if (n - off < sz + 2)
				return 0;
			off += sz + 2;
		}
	}
	if (!have_cl) {
		if (*status == 204 || *status == 304 || *status < 200) {
			*blen = 0;
			return 1;
		}
		return -1; /* read-to-close bodies are not used here */
	}
	if (cl > LG_RESP_MAX)
		return -1;
	if (n - hlen < cl)
		return 0;
	*blen = cl;
	return 1;
}

/* The CommandUUID of the command plist in body, into c->uuid. */
static void
lg_chain_uuid(struct lg_conn *c, const char *body, size_t len)
{
	static const char key[] = "<key>CommandUUID</key>";
	const char	 *k, *s, *e;

	c->uuid[0] = '\0';
	if ((k = memmem(body, len, key, sizeof(key) - 1)) == NULL)
		return;
	s = k + sizeof(key) - 1;
	while (s < body + len &&
	    (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
		s++;
	if ((size_t)(body + len - s) < 8 || memcmp(s, "<string>", 8) != 0)
		return;
	s += 8;
	if ((e = memmem(s, (size_t)(body + len - s), "</string>", 9)) == NULL ||
	    (size_t)(e - s) > LG_UUID_MAX)
		return;
	memcpy(c->uuid, s, (size_t)(e - s));
	c->uuid[e - s] = '\0';
}

/* A whole response arrived. */
static void
lg_done(
    struct lg_conn *c, int status, size_t boff, size_t blen, int close_after)
{
	struct lg_stats *s = &c->th->st;
	uint64_t	 now = lg_now();

	s->all++;
	if (lg_in_window(now)) {
		s->done++;
		s->status[status < LG_STATUS_MAX ? status : 0]++;
		lg_lat_add(s, now - c->t_start);
	}
	lg_record(c, status);
	c->has_req = 0;
	if (g.chain) {
		if (status == 200)
			lg_chain_uuid(c, (const char *)c->in.p + boff, blen);
		else
			c->uuid[0] = '\0';
		if (c->uuid[0] == '\0' && lg_in_window(now))
			s->chain_empty++;
	}
	c->in.len = 0;
	c->nreq++;
	if (close_after || (g.reconnect > 0 && c->nreq >= g.reconnect))
		lg_conn_close(c, 1);
	else
		lg_want(c, EPOLLIN);
	lg_next(c);
}

static void
lg_send(struct lg_conn *c)
{
	ssize_t w;
	int	r;

	while (c->woff < c->wlen) {
		if (c->ssl != NULL) {
			r = SSL_write(
			    c->ssl, c->wp + c->woff, (int)(c->wlen - c->woff));
			if (r <= 0) {
				switch (SSL_get_error(c->ssl, r)) {
				case SSL_ERROR_WANT_READ:
					lg_want(c, EPOLLIN);
					return;
				case SSL_ERROR_WANT_WRITE:
					lg_want(c, EPOLLOUT);
					return;
				default:
					lg_fail(c, LG_ERESET);
					return;
				}
			}
			c->woff += (size_t)r;
			continue;
		}
		w = write(c->fd, c->wp + c->woff, c->wlen - c->woff);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1 && errno == EAGAIN) {
			lg_want(c, EPOLLOUT);
			return;
		}
		if (w <= 0) {
			lg_fail(c, LG_ERESET);
			return;
		}
		c->woff += (size_t)w;
	}
	c->st = ST_RECV;
	lg_want(c, EPOLLIN);
}

static void
lg_recv(struct lg_conn *c)
{
	unsigned char tmp[16384];
	size_t	      boff = 0, blen = 0;
	ssize_t	      n;
	int	      r, status = 0, close_after = 0, pr;

	for (;;) {
		if (c->ssl != NULL) {
			r = SSL_read(c->ssl, tmp, sizeof(tmp));
			if (r <= 0) {
				switch (SSL_get_error(c->ssl, r)) {
				case SSL_ERROR_WANT_READ:
					lg_want(c, EPOLLIN);
					return;
				case SSL_ERROR_WANT_WRITE:
					lg_want(c, EPOLLOUT);
					return;
				default:
					lg_fail(c, LG_ERESET);
					return;
				}
			}
			n = r;
		} else {
			n = read(c->fd, tmp, sizeof(tmp));
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && errno == EAGAIN)
				return;
			if (n <= 0) {
				lg_fail(c, LG_ERESET);
				return;
			}
		}
		if (c->in.len + (size_t)n > LG_RESP_MAX + LG_HEAD_MAX ||
		    buf_append(&c->in, tmp, (size_t)n) == -1) {
			lg_fail(c, LG_EPARSE);
			return;
		}
		pr = lg_parse(c, &status, &boff, &blen, &close_after);
		if (pr == -1) {
			lg_fail(c, LG_EPARSE);
			return;
		}
		if (pr == 1) {
			lg_done(c, status, boff, blen, close_after);
			return;
		}
	}
}

static void
lg_event(struct lg_conn *c, uint32_t ev)
{
	int	  err = 0;
	socklen_t el = sizeof(err);

	switch (c->st) {
	case ST_CONNECTING:
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) == -1 ||
		    err != 0) {
			lg_fail(c, LG_ECONNECT);
			return;
		}
		if (g.tls) {
			c->st = ST_HANDSHAKE;
			lg_handshake(c);
		} else {
			c->st = ST_SEND;
			lg_send(c);
		}
		break;
	case ST_HANDSHAKE:
		lg_handshake(c);
		break;
	case ST_SEND:
		lg_send(c);
		break;
	case ST_RECV:
		if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
			lg_recv(c);
		else if (c->ssl != NULL)
			lg_recv(c); /* SSL_read wanted to write */
		break;
	case ST_IDLE:
		break;
	}
}

static void *
lg_thread_main(void *arg)
{
	struct lg_thread  *th = arg;
	struct epoll_event evs[256];
	uint64_t	   now, last_scan = 0;
	int		   n, i, live;

	for (i = 0; i < th->nconns; i++)
		lg_next(th->conns[i]);
	for (;;) {
		n = epoll_wait(th->ep, evs, 256, 10);
		if (n == -1 && errno != EINTR)
			lg_die("epoll_wait: %s", strerror(errno));
		for (i = 0; i < n; i++)
			lg_event(evs[i].data.ptr, evs[i].events);
		now = lg_now();
		if (now - last_scan < 5000 && n > 0)
			continue;
		last_scan = now;
		for (i = live = 0; i < th->nconns; i++) {
			struct lg_conn *c = th->conns[i];

			if (c->st == ST_IDLE && c->retry_at != UINT64_MAX) {
				if (now >= c->retry_at) {
					c->has_req = 0;
					lg_next(c);
				}
			} else if (c->st != ST_IDLE && c->has_req &&
			    now - c->t_start > g.timeout_us)
				lg_fail(c, LG_ETIMEOUT);
			if (c->st != ST_IDLE || c->retry_at != UINT64_MAX)
				live++;
		}
		if (live == 0)
			break;
		if (g.requests == 0 && now >= g.t_end)
			break;
	}
	/* Requests cut off by the end: their outcome is unknown. */
	for (i = 0; i < th->nconns; i++)
		if (th->conns[i]->has_req)
			lg_record(th->conns[i], -1);
	return NULL;
}

/*
 * Free everything at the end (the connections cut off by the end of the
 * run included), so that a sanitizer build reports only real leaks.
 */
static void
lg_free(struct lg_thread *ths, struct lg_conn *conns)
{
	int i;

	for (i = 0; i < g.conns; i++) {
		lg_conn_close(&conns[i], 0);
		SSL_SESSION_free(conns[i].sess);
		buf_free(&conns[i].out);
		buf_free(&conns[i].in);
	}
	for (i = 0; i < g.threads; i++) {
		close(ths[i].ep);
		free(ths[i].conns);
		free(ths[i].st.lat);
	}
	for (i = 0; i < g.ndevs; i++) {
		struct lg_dev *d = &g.devs[i];

		free(d->body);
		free(d->idle);
		free(d->req);
		free(d->ireq);
		X509_free(d->cert);
		EVP_PKEY_free(d->key);
		SSL_CTX_free(d->ctx);
	}
	free(g.devs);
	X509_STORE_free(g.castore);
	buf_free(&g.headers);
	free(conns);
	free(ths);
}

static int
lg_cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The value at quantile q (nearest rank) of sorted v[0..n), in ms. */
static double
lg_quantile(const uint32_t *v, size_t n, double q)
{
	size_t k;

	if (n == 0)
		return 0;
	k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1] / 1000.0;
}

static double
lg_tv(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
	    {"host", required_argument, NULL, 'H'},
	    {"port", required_argument, NULL, 'p'},
	    {"tls", no_argument, NULL, 'T'},
	    {"cacert", required_argument, NULL, 'A'},
	    {"servername", required_argument, NULL, 'n'},
	    {"body", required_argument, NULL, 'b'},
	    {"cert", required_argument, NULL, 'c'},
	    {"key", required_argument, NULL, 'k'},
	    {"idle", required_argument, NULL, 'I'},
	    {"devices", required_argument, NULL, 'D'},
	    {"path", required_argument, NULL, 'P'},
	    {"method", required_argument, NULL, 'm'},
	    {"content-type", required_argument, NULL, 'y'},
	    {"header", required_argument, NULL, 'h'},
	    {"connections", required_argument, NULL, 'C'},
	    {"threads", required_argument, NULL, 't'},
	    {"duration", required_argument, NULL, 'd'},
	    {"warmup", required_argument, NULL, 'w'},
	    {"requests", required_argument, NULL, 'r'},
	    {"reconnect", required_argument, NULL, 'R'},
	    {"resume", no_argument, NULL, 'S'},
	    {"chain", no_argument, NULL, 'x'}, {"sign", no_argument, NULL, 's'},
	    {"device-offset", required_argument, NULL, 'o'},
	    {"timeout", required_argument, NULL, 'O'},
	    {"record", required_argument, NULL, 'F'},
	    {"help", no_argument, NULL, '?'}, {NULL, 0, NULL, 0}};
	struct lg_thread *ths;
	struct lg_conn	 *conns;
	struct lg_stats	  tot;
	struct rusage	  ru0, ru1;
	const char	 *body = NULL, *cert = NULL, *key = NULL, *idle = NULL;
	const char	 *devfile = NULL, *record = NULL;
	uint32_t	 *all;
	uint64_t	  t_first, t_last;
	double		  secs, cpu;
	size_t		  nall;
	int		  ch, i, j, first;

	memset(&g, 0, sizeof(g));
	g.host = "127.0.0.1";
	g.servername = "localhost";
	g.method = "PUT";
	g.path = "/mdm/checkin";
	g.ctype = "application/x-apple-aspen-mdm-checkin";
	g.conns = 1;
	g.threads = 1;
	g.duration = 5;
	g.timeout_us = 30000000;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'H':
			g.host = optarg;
			break;
		case 'p':
			g.port = (int)lg_num(optarg, 1, 65535, "--port");
			break;
		case 'T':
			g.tls = 1;
			break;
		case 'A':
			g.cacert = optarg;
			break;
		case 'n':
			g.servername = optarg;
			break;
		case 'b':
			body = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'I':
			idle = optarg;
			break;
		case 'D':
			devfile = optarg;
			break;
		case 'P':
			g.path = optarg;
			break;
		case 'm':
			g.method = optarg;
			break;
		case 'y':
			g.ctype = optarg;
			break;
		case 'h':
			if (strpbrk(optarg, "\r\n") != NULL ||
			    strchr(optarg, ':') == NULL ||
			    buf_printf(&g.headers, "%s\r\n", optarg) == -1)
				lg_die("--header: want \"Name: value\"");
			break;
		case 'C':
			g.conns = (int)lg_num(
			    optarg, 1, LG_CONN_MAX, "--connections");
			break;
		case 't':
			g.threads =
			    (int)lg_num(optarg, 1, LG_THREAD_MAX, "--threads");
			break;
		case 'd':
			g.duration = lg_seconds(optarg, "--duration");
			break;
		case 'w':
			g.warmup = lg_seconds(optarg, "--warmup");
			break;
		case 'r':
			g.requests = lg_num(optarg, 1, 1LL << 40, "--requests");
			break;
		case 'R':
			g.reconnect =
			    (unsigned)lg_num(optarg, 0, 1 << 30, "--reconnect");
			break;
		case 'S':
			g.resume = 1;
			break;
		case 'x':
			g.chain = 1;
			break;
		case 's':
			g.sign = 1;
			break;
		case 'o':
			g.dev_offset = (int)lg_num(
			    optarg, 0, LG_DEV_MAX, "--device-offset");
			break;
		case 'O':
			g.timeout_us =
			    (uint64_t)lg_num(optarg, 1, 3600000, "--timeout") *
			    1000;
			break;
		case 'F':
			record = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || g.port == 0 ||
	    (body == NULL) == (devfile == NULL) ||
	    (g.tls && g.cacert == NULL) || (cert == NULL) != (key == NULL) ||
	    (g.duration <= 0 && g.requests == 0))
		usage();
	if (g.threads > g.conns)
		g.threads = g.conns;

	signal(SIGPIPE, SIG_IGN);
	memset(&g.addr, 0, sizeof(g.addr));
	g.addr.sin_family = AF_INET;
	g.addr.sin_port = htons((uint16_t)g.port);
	if (inet_pton(AF_INET, g.host, &g.addr.sin_addr) != 1)
		lg_die("--host: want an IPv4 address, got \"%s\"", g.host);
	if (g.tls) {
		lg_exidx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
		if (lg_exidx < 0)
			lg_die("SSL_get_ex_new_index");
		if ((g.castore = X509_STORE_new()) == NULL ||
		    X509_STORE_load_file(g.castore, g.cacert) != 1)
			lg_die("%s: cannot load", g.cacert);
	}
	if (devfile != NULL)
		lg_devices(devfile);
	else {
		if ((g.devs = calloc(1, sizeof(*g.devs))) == NULL)
			lg_die("out of memory");
		lg_dev_init(&g.devs[0], body, cert, key, idle);
		g.ndevs = 1;
	}
	if (record != NULL) {
		if ((g.record = fopen(record, "w")) == NULL)
			lg_die("%s: %s", record, strerror(errno));
		pthread_mutex_init(&g.record_mu, NULL);
	}

	ths = calloc((size_t)g.threads, sizeof(*ths));
	conns = calloc((size_t)g.conns, sizeof(*conns));
	if (ths == NULL || conns == NULL)
		lg_die("out of memory");
	for (i = 0; i < g.threads; i++) {
		if ((ths[i].ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
			lg_die("epoll_create1: %s", strerror(errno));
		ths[i].conns = calloc((size_t)g.conns, sizeof(*ths[i].conns));
		if (ths[i].conns == NULL)
			lg_die("out of memory");
	}
	for (i = 0; i < g.conns; i++) {
		struct lg_conn *c = &conns[i];

		c->idx = i;
		c->fd = -1;
		c->devno = (i + g.dev_offset) % g.ndevs;
		c->dev = &g.devs[c->devno];
		c->th = &ths[i % g.threads];
		c->out.max = LG_FILE_MAX * 2;
		c->th->conns[c->th->nconns++] = c;
	}

	g.t0 = lg_now();
	g.t_measure = g.t0 + (uint64_t)(g.warmup * 1e6);
	g.t_end = g.requests > 0 ? UINT64_MAX
				 : g.t_measure + (uint64_t)(g.duration * 1e6);
	getrusage(RUSAGE_SELF, &ru0);
	for (i = 0; i < g.threads; i++)
		if (pthread_create(
			&ths[i].tid, NULL, lg_thread_main, &ths[i]) != 0)
			lg_die("pthread_create");
	if (g.requests == 0 && g.warmup > 0) {
		/* CPU time is counted over the measured window only. */
		uint64_t now;

		while ((now = lg_now()) < g.t_measure)
			usleep((useconds_t)(g.t_measure - now < 100000
				? g.t_measure - now
				: 100000));
		getrusage(RUSAGE_SELF, &ru0);
	}
	t_first = lg_now();
	for (i = 0; i < g.threads; i++)
		pthread_join(ths[i].tid, NULL);
	t_last = lg_now();
	getrusage(RUSAGE_SELF, &ru1);

	memset(&tot, 0, sizeof(tot));
	for (i = 0; i < g.threads; i++) {
		struct lg_stats *s = &ths[i].st;

		tot.all += s->all;
		tot.done += s->done;
		tot.handshakes += s->handshakes;
		tot.resumed += s->resumed;
		tot.chain_empty += s->chain_empty;
		tot.nlat += s->nlat;
		for (j = 0; j < LG_STATUS_MAX; j++)
			tot.status[j] += s->status[j];
		for (j = 0; j < LG_E__MAX; j++)
			tot.err[j] += s->err[j];
	}
	if ((all = malloc((tot.nlat ? tot.nlat : 1) * sizeof(*all))) == NULL)
		lg_die("out of memory");
	for (i = 0, nall = 0; i < g.threads; i++) {
		if (ths[i].st.nlat > 0)
			memcpy(all + nall, ths[i].st.lat,
			    ths[i].st.nlat * sizeof(*all));
		nall += ths[i].st.nlat;
	}
	qsort(all, nall, sizeof(*all), lg_cmp_u32);
	secs = g.requests > 0 ? (double)(t_last - g.t0) / 1e6 : g.duration;
	if (g.requests == 0 && t_last - t_first < (uint64_t)(g.duration * 1e6))
		secs = (double)(t_last - t_first) / 1e6;
	cpu = lg_tv(&ru1.ru_utime) - lg_tv(&ru0.ru_utime) +
	    lg_tv(&ru1.ru_stime) - lg_tv(&ru0.ru_stime);

	printf("{\"requests\":%llu,\"seconds\":%.3f,\"rps\":%.1f,"
	       "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
	       "\"max_ms\":%.3f,\"connections\":%d,\"threads\":%d,"
	       "\"tls\":%s,\"reconnect\":%u,\"resume\":%s,"
	       "\"handshakes\":%llu,\"resumed\":%llu,",
	    (unsigned long long)tot.done, secs,
	    secs > 0 ? (double)tot.done / secs : 0.0,
	    lg_quantile(all, nall, 0.50), lg_quantile(all, nall, 0.90),
	    lg_quantile(all, nall, 0.99), nall ? all[nall - 1] / 1000.0 : 0.0,
	    g.conns, g.threads, g.tls ? "true" : "false", g.reconnect,
	    g.resume ? "true" : "false", (unsigned long long)tot.handshakes,
	    (unsigned long long)tot.resumed);
	if (g.chain)
		printf("\"chain_empty\":%llu,",
		    (unsigned long long)tot.chain_empty);
	printf("\"all\":%llu,\"cpu_s\":%.3f,\"cores\":%.2f,\"status\":{",
	    (unsigned long long)tot.all, cpu, secs > 0 ? cpu / secs : 0.0);
	for (j = 0, first = 1; j < LG_STATUS_MAX; j++)
		if (tot.status[j] > 0) {
			printf("%s\"%d\":%llu", first ? "" : ",", j,
			    (unsigned long long)tot.status[j]);
			first = 0;
		}
	printf("},\"errors\":{");
	for (j = 0; j < LG_E__MAX; j++)
		printf("%s\"%s\":%llu", j ? "," : "", lg_err_names[j],
		    (unsigned long long)tot.err[j]);
	printf("}}\n");
	fflush(stdout);

	if (g.record != NULL && fclose(g.record) != 0)
		lg_die("%s: %s", record, strerror(errno));
	lg_free(ths, conns);
	free(all);
	return 0;
}
