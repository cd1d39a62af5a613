/*
 * test-fcgi.c - module/fcgi.c over a socketpair, as nginx (or a peer
 * nginx never is) would write to it: parameters in and out of records,
 * the reply's records, which connections are kept, and what is answered
 * without a request (FCGI_GET_VALUES, another role, a second request on
 * the connection). FastCGI specification section numbers as in fcgi.c.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picomdm/util.h"
#include "fcgi.h"
#include "request.h"
#include "regress.h"

static void
rec(struct buf *b, int type, int id, const void *p, size_t n, int pad)
{
	static const unsigned char zeros[255];
	unsigned char h[8] = { 1, (unsigned char)type, (unsigned char)(id >> 8),
	    (unsigned char)id, (unsigned char)(n >> 8), (unsigned char)n,
	    (unsigned char)pad, 0 };

	CHECK(buf_append(b, h, 8) == 0);
	if (n > 0)
		CHECK(buf_append(b, p, n) == 0);
	if (pad > 0)
		CHECK(buf_append(b, zeros, (size_t)pad) == 0);
}

static void
pair(struct buf *b, const char *name, const void *value, size_t vlen)
{
	size_t        nl = strlen(name);
	unsigned char l[4] = { (unsigned char)(vlen >> 24 | 0x80),
	    (unsigned char)(vlen >> 16), (unsigned char)(vlen >> 8),
	    (unsigned char)vlen };

	CHECK(nl < 128);
	CHECK(buf_append(b, &(unsigned char){ (unsigned char)nl }, 1) == 0);
	if (vlen < 128)
		CHECK(buf_append(b, &(unsigned char){ (unsigned char)vlen },
		    1) == 0);
	else
		CHECK(buf_append(b, l, 4) == 0);
	CHECK(buf_append(b, name, nl) == 0);
	CHECK(buf_append(b, value, vlen) == 0);
}

static void
begin(struct buf *b, int id, int role, int keep)
{
	unsigned char c[8] = { (unsigned char)(role >> 8),
	    (unsigned char)role, (unsigned char)keep, 0, 0, 0, 0, 0 };

	rec(b, 1, id, c, sizeof(c), 0);
}

/*
 * A whole request for id: a PUT of body with CONTENT_LENGTH, its
 * parameters split in records of chunk bytes, every record padded.
 */
static void
request(struct buf *b, int id, int keep, const char *body, size_t chunk)
{
	struct buf p;
	char       cl[24];
	size_t     off, k, n = strlen(body);

	memset(&p, 0, sizeof(p));
	(void)snprintf(cl, sizeof(cl), "%zu", n);
	pair(&p, "REQUEST_METHOD", "PUT", 3);
	pair(&p, "DOCUMENT_URI", "/mdm/checkin", 12);
	pair(&p, "CONTENT_LENGTH", cl, strlen(cl));
	begin(b, id, 1, keep);
	for (off = 0; off < p.len; off += k) {
		k = p.len - off < chunk ? p.len - off : chunk;
		rec(b, 4, id, p.p + off, k, (int)(k % 8 ? 8 - k % 8 : 0));
	}
	rec(b, 4, id, NULL, 0, 0);
	if (n > 0)
		rec(b, 5, id, body, n, 3);
	rec(b, 5, id, NULL, 0, 0);
	buf_free(&p);
}

static void
send_buf(int fd, const struct buf *b)
{
	size_t  off = 0;
	ssize_t w;

	while (off < b->len) {
		CHECK((w = write(fd, b->p + off, b->len - off)) > 0);
		off += (size_t)w;
	}
}

/* Everything fd has to read now (it must not block: nonblocking). */
static size_t
drain_now(int fd, unsigned char *out, size_t max)
{
	size_t  n = 0;
	ssize_t r;

	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	while (n < max && (r = read(fd, out + n, max - n)) > 0)
		n += (size_t)r;
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return n;
}

struct got {
	unsigned char type;
	unsigned      id;
	size_t        clen;
	unsigned char *c;
};

/* The records in out[0..n), into g (at most max); how many. */
static int
records(unsigned char *out, size_t n, struct got *g, int max)
{
	size_t off = 0;
	int    i = 0;

	while (off < n) {
		CHECK(i < max);
		CHECK(n - off >= 8);
		CHECK_EQ(out[off], 1);
		g[i].type = out[off + 1];
		g[i].id = (unsigned)out[off + 2] << 8 | out[off + 3];
		g[i].clen = (size_t)out[off + 4] << 8 | out[off + 5];
		g[i].c = out + off + 8;
		CHECK(g[i].clen + out[off + 6] <= n - off - 8);
		off += 8 + g[i].clen + out[off + 6];
		i++;
	}
	return i;
}

static void
pipe_pair(int sv[2])
{
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
}

/* Parameters across records, one byte a record; a body; the reply. */
static void
test_request(void)
{
	static unsigned char out[1 << 20];
	struct fcgi          f;
	struct request       r;
	struct buf           b;
	struct got           g[64];
	char                 big[200000];
	size_t               n, body = 0;
	int                  sv[2], i, nr, fd;

	fcgi_init(&f);
	memset(&b, 0, sizeof(b));
	pipe_pair(sv);
	request(&b, 7, 1, "<plist/>", 1);
	send_buf(sv[1], &b);
	CHECK_EQ(fcgi_accept(&f, sv[0]), 0);
	CHECK_EQ(f.id, 7);
	CHECK_EQ(f.keep, 1);
	CHECK_STR(fcgi_param(&f, "REQUEST_METHOD"), "PUT");
	CHECK_STR(fcgi_param(&f, "DOCUMENT_URI"), "/mdm/checkin");
	CHECK(fcgi_param(&f, "REQUEST") == NULL);
	CHECK(fcgi_param(&f, "REQUEST_METHODS") == NULL);
	CHECK_EQ(request_init(&f, &r), 0);
	CHECK_EQ(request_read_body(&f, &r, 100), 0);
	CHECK_EQ(r.body_len, 8);
	CHECK_STR((char *)r.body, "<plist/>");
	CHECK_EQ(f.in_eof, 1);
	/* A reply over one record's worth: split, content intact. */
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = 'y';
	CHECK_EQ(fcgi_reply(&f, "Status: 200\r\n\r\n", 15, big, sizeof(big)),
	    0);
	request_free(&r);
	CHECK((fd = fcgi_finish(&f)) == sv[0]);
	CHECK_EQ(f.fd, -1);
	n = drain_now(sv[1], out, sizeof(out));
	nr = records(out, n, g, 64);
	CHECK(nr >= 5);
	for (i = 0; i < nr - 2; i++) {
		CHECK_EQ(g[i].type, 6);
		CHECK_EQ(g[i].id, 7);
		CHECK(g[i].clen > 0);
		if (i == 0)
			CHECK(memcmp(g[i].c, "Status: 200\r\n\r\nxxx", 18) == 0);
		body += g[i].clen;
	}
	CHECK_EQ(body, 15 + sizeof(big));
	CHECK_EQ(g[i - 1].c[g[i - 1].clen - 1], 'y');
	CHECK_EQ(g[nr - 2].type, 6);
	CHECK_EQ(g[nr - 2].clen, 0);
	CHECK_EQ(g[nr - 1].type, 3);
	CHECK_EQ(g[nr - 1].id, 7);
	CHECK_EQ(g[nr - 1].clen, 8);
	CHECK_EQ(g[nr - 1].c[4], 0); /* FCGI_REQUEST_COMPLETE */

	/* The kept connection's next request, not kept: closed after it. */
	b.len = 0;
	request(&b, 8, 0, "", 65535);
	send_buf(sv[1], &b);
	CHECK_EQ(fcgi_accept(&f, fd), 0);
	CHECK_EQ(f.id, 8);
	CHECK_EQ(f.keep, 0);
	CHECK_EQ(request_init(&f, &r), 0);
	CHECK_EQ(request_read_body(&f, &r, 100), 0);
	CHECK_EQ(r.body_len, 0);
	CHECK_EQ(fcgi_reply(&f, "Status: 204\r\n\r\n", 15, NULL, 0), 0);
	request_free(&r);
	CHECK_EQ(fcgi_finish(&f), -1);
	n = drain_now(sv[1], out, sizeof(out));
	CHECK_EQ(records(out, n, g, 64), 3);
	CHECK_EQ(read(sv[1], out, 1), 0); /* closed */
	close(sv[1]);
	buf_free(&b);
	fcgi_free(&f);
}

/*
 * A reply before the body is read (405, 413): the rest of the body is
 * read after it, and the peer may send its next request meanwhile. That
 * request stays in the connection for the next worker; the connection
 * is kept.
 */
static void
test_next_request_after_early_reply(void)
{
	static unsigned char out[1 << 16];
	struct fcgi          f;
	struct buf           b, rest;
	char                 body[40000];
	unsigned char        c;
	size_t               n, cut;
	int                  sv[2], fd;

	memset(body, 'b', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	fcgi_init(&f);
	memset(&b, 0, sizeof(b));
	memset(&rest, 0, sizeof(rest));
	pipe_pair(sv);
	request(&b, 1, 1, body, 65535);
	/* The parameters and a little of the body come first. */
	cut = b.len - sizeof(body) + 100;
	CHECK(buf_append(&rest, b.p + cut, b.len - cut) == 0);
	b.len = cut;
	send_buf(sv[1], &b);
	CHECK_EQ(fcgi_accept(&f, sv[0]), 0);
	CHECK_EQ(fcgi_reply(&f, "Status: 405\r\n\r\n", 15, NULL, 0), 0);
	/* The rest of this request, then the next one, at once. */
	b.len = 0;
	request(&b, 1, 1, "next", 65535);
	CHECK(buf_append(&rest, b.p, b.len) == 0);
	send_buf(sv[1], &rest);
	CHECK_EQ(f.in_eof, 0);
	CHECK((fd = fcgi_finish(&f)) == sv[0]);
	CHECK_EQ(f.in_eof, 1);
	/* The next request is still in the connection, whole. */
	n = drain_now(fd, out, sizeof(out));
	CHECK_EQ(n, b.len);
	CHECK(memcmp(out, b.p, n) == 0);
	/* Sent again, it is read as a request of its own. */
	send_buf(sv[1], &b);
	CHECK_EQ(fcgi_accept(&f, fd), 0);
	CHECK_EQ(fcgi_read(&f, out, 4), 4);
	CHECK(memcmp(out, "next", 4) == 0);
	CHECK_EQ(fcgi_read(&f, &c, 1), 0);
	CHECK_EQ(fcgi_reply(&f, "Status: 200\r\n\r\n", 15, NULL, 0), 0);
	CHECK((fd = fcgi_finish(&f)) == sv[0]);
	close(fd);

	/* Sent before the reply (not allowed: one request at a time), the
	 * next request would be read with this one: the connection is
	 * closed rather than the request lost unseen. */
	pipe_pair(sv);
	b.len = 0;
	request(&b, 1, 1, "", 65535);
	request(&b, 2, 1, "", 65535);
	send_buf(sv[1], &b);
	CHECK_EQ(fcgi_accept(&f, sv[0]), 0);
	CHECK_EQ(fcgi_read(&f, &c, 1), 0);
	CHECK_EQ(fcgi_reply(&f, "Status: 200\r\n\r\n", 15, NULL, 0), 0);
	CHECK_EQ(fcgi_finish(&f), -1);
	close(sv[1]);
	buf_free(&b);
	buf_free(&rest);
	fcgi_free(&f);
}

/* Answered without a request: management records, another role,
 * another request ID while one is read. */
static void
test_answers(void)
{
	static unsigned char out[1 << 16];
	struct fcgi          f;
	struct buf           b, q;
	struct got           g[16];
	size_t               n;
	int                  sv[2], nr;

	fcgi_setup(48);
	fcgi_init(&f);
	memset(&b, 0, sizeof(b));
	memset(&q, 0, sizeof(q));
	pipe_pair(sv);
	pair(&q, "FCGI_MPXS_CONNS", "", 0);
	pair(&q, "FCGI_MAX_REQS", "", 0);
	pair(&q, "SOMETHING_ELSE", "", 0);
	rec(&b, 9, 0, q.p, q.len, 5);          /* FCGI_GET_VALUES */
	rec(&b, 42, 0, "abc", 3, 0);           /* an unknown type */
	begin(&b, 3, 2, 1);                    /* FCGI_AUTHORIZER, kept */
	rec(&b, 4, 3, "\x01\x01xy", 4, 0);     /* its params: skipped */
	begin(&b, 5, 1, 1);
	begin(&b, 6, 1, 0);                    /* a second request */
	rec(&b, 4, 5, NULL, 0, 0);
	send_buf(sv[1], &b);
	CHECK_EQ(fcgi_accept(&f, sv[0]), 0);
	CHECK_EQ(f.id, 5);
	CHECK_EQ(f.nparams, 0);
	n = drain_now(sv[1], out, sizeof(out));
	nr = records(out, n, g, 16);
	CHECK_EQ(nr, 4);
	CHECK_EQ(g[0].type, 10);               /* FCGI_GET_VALUES_RESULT */
	CHECK_EQ(g[0].id, 0);
	CHECK_EQ(g[0].clen, 2 + 15 + 1 + 2 + 13 + 2);
	CHECK(memcmp(g[0].c, "\x0f\x01" "FCGI_MPXS_CONNS0"
	    "\x0d\x02" "FCGI_MAX_REQS48", g[0].clen) == 0);
	CHECK_EQ(g[1].type, 11);               /* FCGI_UNKNOWN_TYPE */
	CHECK_EQ(g[1].c[0], 42);
	CHECK_EQ(g[2].type, 3);
	CHECK_EQ(g[2].id, 3);
	CHECK_EQ(g[2].c[4], 3);                /* FCGI_UNKNOWN_ROLE */
	CHECK_EQ(g[3].type, 3);
	CHECK_EQ(g[3].id, 6);
	CHECK_EQ(g[3].c[4], 1);                /* FCGI_CANT_MPX_CONN */
	fcgi_free(&f);
	close(sv[1]);
	buf_free(&b);
	buf_free(&q);
}

/* Streams no conforming peer sends: the connection closed, no request. */
static void
test_refused(void)
{
	struct fcgi f;
	struct buf  b, p;
	ssize_t     w;
	pid_t       pid;
	int         sv[2], i;

	fcgi_init(&f);
	memset(&b, 0, sizeof(b));
	memset(&p, 0, sizeof(p));
	for (i = 0; i < 6; i++) {
		b.len = p.len = 0;
		switch (i) {
		case 0: /* a NUL inside a value */
			begin(&b, 1, 1, 1);
			pair(&p, "DOCUMENT_URI", "/mdm\0/x", 7);
			rec(&b, 4, 1, p.p, p.len, 0);
			rec(&b, 4, 1, NULL, 0, 0);
			break;
		case 1: /* a pair running past the stream */
			begin(&b, 1, 1, 1);
			rec(&b, 4, 1, "\x05\x05" "abc", 5, 0);
			rec(&b, 4, 1, NULL, 0, 0);
			break;
		case 2: /* over FCGI_PARAMS_MAX */
			begin(&b, 1, 1, 1);
			while (b.len < FCGI_PARAMS_MAX + 70000) {
				static const char junk[60000];

				rec(&b, 4, 1, junk, sizeof(junk), 0);
			}
			break;
		case 3: /* FCGI_STDIN before the parameters' end */
			begin(&b, 1, 1, 1);
			rec(&b, 5, 1, "x", 1, 0);
			break;
		case 4: /* another version */
			begin(&b, 1, 1, 1);
			b.p[0] = 2;
			break;
		case 5: /* aborted */
			begin(&b, 1, 1, 1);
			rec(&b, 2, 1, NULL, 0, 0);
			break;
		}
		pipe_pair(sv);
		/* Larger than the socket buffer: written by a child, which
		 * stops at the first failed write (the close). */
		if ((pid = fork()) == 0) {
			size_t off = 0;

			close(sv[0]);
			while (off < b.len && (w = write(sv[1], b.p + off,
			    b.len - off)) > 0)
				off += (size_t)w;
			_exit(0);
		}
		CHECK(pid > 0);
		close(sv[1]);
		CHECK_EQ(fcgi_accept(&f, sv[0]), -1);
		CHECK_EQ(f.fd, -1);
		/* sv[0] was closed by fcgi_accept: it is free again. */
		CHECK(fcntl(sv[0], F_GETFD) == -1 && errno == EBADF);
		CHECK(waitpid(pid, NULL, 0) == pid);
	}
	buf_free(&b);
	buf_free(&p);
	fcgi_free(&f);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_request();
	test_next_request_after_early_reply();
	test_answers();
	test_refused();
	REGRESS_DONE();
}
