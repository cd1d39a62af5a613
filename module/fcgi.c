/*
 * fcgi.c - the responder's side of a FastCGI connection: the records of
 * one request in, its reply out (FastCGI 1.0 specification, the role
 * FCGI_RESPONDER; section numbers below are the specification's).
 *
 * Why not libfcgi: it allocates each parameter and three stream buffers
 * (8 KiB, 8 KiB, 512 bytes) for every request, 31 allocations a request
 * freed by another thread when the reply is sent by the completion
 * thread; it leaks a management record's parameter block; and it can be
 * made to abort. Here a request slot keeps its buffers from one request
 * to the next, reads the connection in large pieces and writes a reply
 * with one sendmsg() (BENCHMARKS.md, "A FastCGI codec of our own").
 *
 * What is read (3.3, 5): records of version 1. Before a request:
 * FCGI_BEGIN_REQUEST; another role than FCGI_RESPONDER is answered
 * FCGI_UNKNOWN_ROLE. Then its FCGI_PARAMS stream up to the empty record
 * (at most FCGI_PARAMS_MAX bytes), decoded into name-value pairs (3.4);
 * then its FCGI_STDIN stream, read as the request asks for it. Between
 * them, a FCGI_BEGIN_REQUEST for another request ID is answered
 * FCGI_CANT_MPX_CONN (one request a connection at a time); records of
 * other request IDs and of types a responder does not take (FCGI_DATA)
 * are skipped; management records (request ID 0) are answered at once:
 * FCGI_GET_VALUES with FCGI_GET_VALUES_RESULT, any other type with
 * FCGI_UNKNOWN_TYPE (4). The connection is closed, with nothing
 * answered, for what cannot be a conforming stream: another version, a
 * FCGI_BEGIN_REQUEST body of the wrong length, a pair running past its
 * stream, a NUL inside a parameter's value (a reader of C strings would
 * see a shorter value than the one sent), FCGI_STDIN before the
 * parameters' end, FCGI_ABORT_REQUEST for the request being read.
 *
 * What is written (5.3, 5.5): the reply as FCGI_STDOUT records, the
 * empty FCGI_STDOUT record, FCGI_END_REQUEST with FCGI_REQUEST_COMPLETE.
 * The connection is kept when the request asked for it (FCGI_KEEP_CONN),
 * its input was read to its end and nothing of a next request was read
 * with it (see fill());
 * otherwise it is closed: at once when its input was read to its end,
 * after a lingering wait for the peer's end otherwise, so that input
 * left unread cannot turn the close into a reset that loses the reply.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "picomdm/log.h"
#include "picomdm/util.h"
#include "fcgi.h"

#define FCGI_VERSION_1          1
#define FCGI_BEGIN_REQUEST      1
#define FCGI_ABORT_REQUEST      2
#define FCGI_END_REQUEST        3
#define FCGI_PARAMS             4
#define FCGI_STDIN              5
#define FCGI_STDOUT             6
#define FCGI_GET_VALUES         9
#define FCGI_GET_VALUES_RESULT  10
#define FCGI_UNKNOWN_TYPE       11
#define FCGI_RESPONDER          1
#define FCGI_KEEP_CONN          1
#define FCGI_REQUEST_COMPLETE   0
#define FCGI_CANT_MPX_CONN      1
#define FCGI_UNKNOWN_ROLE       3

#define FCGI_IN_SIZE     16384  /* the connection is read this much at once */
#define FCGI_RECORD_MAX  65528  /* reply content a record (a multiple of 8) */
#define FCGI_LINGER_MS   2000   /* waiting for the peer's end before a close */
#define FCGI_LINGER_MAX  ((size_t)16 << 20) /* and input skipped, at most */

struct rec {
	unsigned type, id;
	size_t   clen, plen;
};

static int fcgi_max_reqs = 1;

void
fcgi_setup(int max_reqs)
{
	fcgi_max_reqs = max_reqs > 0 ? max_reqs : 1;
}

void
fcgi_init(struct fcgi *f)
{
	memset(f, 0, sizeof(*f));
	f->fd = -1;
}

void
fcgi_free(struct fcgi *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->in);
	free(f->raw);
	free(f->env);
	free(f->params);
	fcgi_init(f);
}

/* A stream that cannot be a conforming one: the connection is closed. */
static int
violation(struct fcgi *f, const char *why)
{
	if (!f->failed)
		log_warn("fcgi: %s; connection closed", why);
	f->failed = 1;
	return -1;
}

/* The connection ended or failed; the peer's doing, logged at debug. */
static int
broken(struct fcgi *f, ssize_t r)
{
	if (!f->failed)
		log_debug("fcgi: connection %s", r == 0 ? "closed by the peer" :
		    strerror(errno));
	f->failed = 1;
	return -1;
}

/*
 * Buffer at least need bytes of the connection (need <= want <=
 * FCGI_IN_SIZE). Until the reply is written the peer sends nothing but
 * this request (it may not send the next before our FCGI_END_REQUEST:
 * FCGI_MPXS_CONNS is 0), so the connection is read in large pieces.
 * Once the reply is out, the peer may send its next request while the
 * rest of this one's input is read, so no more than want bytes are
 * buffered then: the caller's request ends within them, and the next
 * request stays in the connection for whoever takes it next.
 */
static int
fill(struct fcgi *f, size_t need, size_t want)
{
	size_t  room;
	ssize_t r;

	if (f->in_len - f->in_pos >= need)
		return 0;
	if (f->in_pos > 0) {
		memmove(f->in, f->in + f->in_pos, f->in_len - f->in_pos);
		f->in_len -= f->in_pos;
		f->in_pos = 0;
	}
	while (f->in_len < need) {
		room = FCGI_IN_SIZE - f->in_len;
		if (f->replied && want - f->in_len < room)
			room = want - f->in_len;
		r = read(f->fd, f->in + f->in_len, room);
		if (r > 0)
			f->in_len += (size_t)r;
		else if (r == -1 && errno == EINTR)
			continue;
		else
			return broken(f, r);
	}
	return 0;
}

/* Copy n bytes of the connection to dst (NULL: discard them). */
static int
take(struct fcgi *f, unsigned char *dst, size_t n)
{
	size_t  k;
	ssize_t r;

	while (n > 0) {
		if ((k = f->in_len - f->in_pos) > 0) {
			if (k > n)
				k = n;
			if (dst != NULL) {
				memcpy(dst, f->in + f->in_pos, k);
				dst += k;
			}
			f->in_pos += k;
			n -= k;
			continue;
		}
		f->in_pos = f->in_len = 0;
		if (dst == NULL || n < FCGI_IN_SIZE) {
			if (fill(f, 1, n < FCGI_IN_SIZE ? n : FCGI_IN_SIZE) == -1)
				return -1;
			continue;
		}
		/* A large piece goes straight where it is wanted. */
		if ((r = read(f->fd, dst, n)) > 0) {
			dst += r;
			n -= (size_t)r;
		} else if (r == -1 && errno == EINTR)
			continue;
		else
			return broken(f, r);
	}
	return 0;
}

static int
header(struct fcgi *f, struct rec *h)
{
	const unsigned char *p;

	if (fill(f, 8, 8) == -1)
		return -1;
	p = f->in + f->in_pos;
	f->in_pos += 8;
	if (p[0] != FCGI_VERSION_1)
		return violation(f, "a record of another version than 1");
	h->type = p[1];
	h->id = (unsigned)p[2] << 8 | p[3];
	h->clen = (size_t)p[4] << 8 | p[5];
	h->plen = p[6];
	return 0;
}

static void
put_header(unsigned char *p, unsigned type, unsigned id, size_t clen)
{
	p[0] = FCGI_VERSION_1;
	p[1] = (unsigned char)type;
	p[2] = (unsigned char)(id >> 8);
	p[3] = (unsigned char)id;
	p[4] = (unsigned char)(clen >> 8);
	p[5] = (unsigned char)clen;
	p[6] = 0;
	p[7] = 0;
}

/* Write all of iov to the connection. */
static int
send_all(struct fcgi *f, struct iovec *iov, int n)
{
	struct msghdr m;
	ssize_t       w;

	while (n > 0) {
		memset(&m, 0, sizeof(m));
		m.msg_iov = iov;
		m.msg_iovlen = (size_t)n;
		if ((w = sendmsg(f->fd, &m, MSG_NOSIGNAL)) == -1) {
			if (errno == EINTR)
				continue;
			return broken(f, w);
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int
send_record(struct fcgi *f, unsigned type, unsigned id, const void *c,
    size_t clen)
{
	unsigned char h[8];
	struct iovec  iov[2];

	put_header(h, type, id, clen);
	iov[0].iov_base = h;
	iov[0].iov_len = sizeof(h);
	iov[1].iov_base = (void *)(uintptr_t)c;
	iov[1].iov_len = clen;
	return send_all(f, iov, clen > 0 ? 2 : 1);
}

static int
end_request(struct fcgi *f, unsigned id, unsigned status)
{
	unsigned char b[8] = { 0, 0, 0, 0, (unsigned char)status, 0, 0, 0 };

	return send_record(f, FCGI_END_REQUEST, id, b, sizeof(b));
}

/*
 * One name-value pair at *pp (3.4); -1 when it runs past end. The
 * lengths are at most 2^31 - 1, so their sum fits a size_t.
 */
static int
pair_next(const unsigned char **pp, const unsigned char *end,
    const unsigned char **name, size_t *nlen, const unsigned char **value,
    size_t *vlen)
{
	const unsigned char *p = *pp;
	size_t               len[2];
	int                  i;

	for (i = 0; i < 2; i++) {
		if (p >= end)
			return -1;
		if (*p & 0x80) {
			if (end - p < 4)
				return -1;
			len[i] = (size_t)(p[0] & 0x7f) << 24 |
			    (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
			p += 4;
		} else
			len[i] = *p++;
	}
	if (len[0] + len[1] > (size_t)(end - p))
		return -1;
	*name = p;
	*nlen = len[0];
	*value = p + len[0];
	*vlen = len[1];
	*pp = p + len[0] + len[1];
	return 0;
}

static size_t
put_pair(unsigned char *p, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);

	/* Both below 128: one-byte lengths. */
	p[0] = (unsigned char)nl;
	p[1] = (unsigned char)vl;
	memcpy(p + 2, name, nl);
	memcpy(p + 2 + nl, value, vl);
	return 2 + nl + vl;
}

/* A management record (request ID 0, 4): answered at once. */
static int
management(struct fcgi *f, const struct rec *h)
{
	const unsigned char *p, *end, *name, *value;
	unsigned char       *c, out[256];
	size_t               nlen, vlen, o = 0;
	char                 num[16];

	if (h->type != FCGI_GET_VALUES) {
		unsigned char b[8] = { (unsigned char)h->type };

		if (take(f, NULL, h->clen + h->plen) == -1)
			return -1;
		return send_record(f, FCGI_UNKNOWN_TYPE, 0, b, sizeof(b));
	}
	if ((c = malloc(h->clen + 1)) == NULL)
		return violation(f, "out of memory");
	if (take(f, c, h->clen) == -1 || take(f, NULL, h->plen) == -1) {
		free(c);
		return -1;
	}
	(void)snprintf(num, sizeof(num), "%d", fcgi_max_reqs);
	for (p = c, end = c + h->clen; p < end;) {
		if (pair_next(&p, end, &name, &nlen, &value, &vlen) == -1) {
			free(c);
			return violation(f, "a malformed FCGI_GET_VALUES");
		}
		if (o + 2 + 15 + sizeof(num) > sizeof(out))
			continue;
		if (nlen == 14 && memcmp(name, "FCGI_MAX_CONNS", 14) == 0)
			o += put_pair(out + o, "FCGI_MAX_CONNS", num);
		else if (nlen == 13 && memcmp(name, "FCGI_MAX_REQS", 13) == 0)
			o += put_pair(out + o, "FCGI_MAX_REQS", num);
		else if (nlen == 15 && memcmp(name, "FCGI_MPXS_CONNS", 15) == 0)
			o += put_pair(out + o, "FCGI_MPXS_CONNS", "0");
	}
	free(c);
	return send_record(f, FCGI_GET_VALUES_RESULT, 0, out, o);
}

/* Decode the FCGI_PARAMS stream into the slot's pairs. */
static int
params_decode(struct fcgi *f)
{
	const unsigned char *p, *end, *name, *value;
	size_t               nlen, vlen, e = 0, need;
	struct fcgi_param   *np;
	char                *ne;

	f->nparams = 0;
	if (f->raw_len == 0) /* and raw may be NULL */
		return 0;
	p = f->raw;
	end = f->raw + f->raw_len;
	/* A pair's two lengths take at least the two NULs it gets here. */
	if (f->env_cap < f->raw_len) {
		if ((ne = realloc(f->env, f->raw_len)) == NULL)
			return violation(f, "out of memory");
		f->env = ne;
		f->env_cap = f->raw_len;
	}
	while (p < end) {
		if (pair_next(&p, end, &name, &nlen, &value, &vlen) == -1)
			return violation(f, "a parameter runs past its stream");
		if (memchr(value, '\0', vlen) != NULL)
			return violation(f, "a parameter's value holds a NUL");
		if (f->nparams == f->params_cap) {
			need = f->params_cap ? f->params_cap * 2 : 64;
			if ((np = reallocarray(f->params, need,
			    sizeof(*np))) == NULL)
				return violation(f, "out of memory");
			f->params = np;
			f->params_cap = need;
		}
		np = &f->params[f->nparams++];
		memcpy(f->env + e, name, nlen);
		np->name = f->env + e;
		np->nlen = nlen;
		e += nlen;
		f->env[e++] = '\0';
		memcpy(f->env + e, value, vlen);
		np->value = f->env + e;
		e += vlen;
		f->env[e++] = '\0';
	}
	return 0;
}

/* FCGI_BEGIN_REQUEST's body: role and flags; -1 on a bad length. */
static int
begin_body(struct fcgi *f, const struct rec *h, unsigned *role,
    unsigned *flags)
{
	unsigned char b[8];

	if (h->clen != sizeof(b))
		return violation(f, "a FCGI_BEGIN_REQUEST of another length "
		    "than 8");
	if (take(f, b, sizeof(b)) == -1 || take(f, NULL, h->plen) == -1)
		return -1;
	*role = (unsigned)b[0] << 8 | b[1];
	*flags = b[2];
	return 0;
}

/*
 * A record that is not the next one of the request's own streams:
 * management, another request's, or one a responder does not take.
 * begun: a request is being read (its ID is f->id).
 */
static int
other_record(struct fcgi *f, const struct rec *h, int begun)
{
	unsigned role, flags;

	if (h->id == 0)
		return management(f, h);
	if (begun && h->id == f->id) {
		if (h->type == FCGI_ABORT_REQUEST)
			return violation(f, "the request was aborted");
		if (h->type == FCGI_BEGIN_REQUEST)
			return violation(f, "a second FCGI_BEGIN_REQUEST for "
			    "the request being read");
		if (h->type == FCGI_PARAMS)
			return violation(f, "FCGI_PARAMS after their end");
	} else if (h->type == FCGI_BEGIN_REQUEST) {
		if (begin_body(f, h, &role, &flags) == -1)
			return -1;
		return end_request(f, h->id, FCGI_CANT_MPX_CONN);
	}
	return take(f, NULL, h->clen + h->plen);
}

int
fcgi_accept(struct fcgi *f, int fd)
{
	struct rec     h;
	unsigned       role, flags;
	unsigned char *nr;
	int            begun = 0;

	f->fd = fd;
	f->id = 0;
	f->keep = f->in_eof = f->failed = f->replied = 0;
	f->in_pos = f->in_len = 0;
	f->stdin_left = f->pad_left = 0;
	f->raw_len = f->nparams = 0;
	if (f->in == NULL && (f->in = malloc(FCGI_IN_SIZE)) == NULL) {
		violation(f, "out of memory");
		goto fail;
	}
	for (;;) {
		if (header(f, &h) == -1)
			goto fail;
		if (h.id != 0 && !begun && h.type == FCGI_BEGIN_REQUEST) {
			if (begin_body(f, &h, &role, &flags) == -1)
				goto fail;
			if (role != FCGI_RESPONDER) {
				if (end_request(f, h.id, FCGI_UNKNOWN_ROLE) ==
				    -1 || !(flags & FCGI_KEEP_CONN))
					goto fail;
				continue;
			}
			begun = 1;
			f->id = h.id;
			f->keep = (flags & FCGI_KEEP_CONN) != 0;
			continue;
		}
		if (h.id == 0 || !begun || h.id != f->id ||
		    (h.type != FCGI_PARAMS && h.type != FCGI_STDIN)) {
			if (other_record(f, &h, begun) == -1)
				goto fail;
			continue;
		}
		if (h.type == FCGI_STDIN) {
			violation(f, "FCGI_STDIN before the parameters' end");
			goto fail;
		}
		if (h.clen == 0) {
			if (take(f, NULL, h.plen) == -1 ||
			    params_decode(f) == -1)
				goto fail;
			return 0;
		}
		if (h.clen > FCGI_PARAMS_MAX - f->raw_len) {
			violation(f, "the parameters are over 256 KiB");
			goto fail;
		}
		if (f->raw_len + h.clen > f->raw_cap) {
			size_t cap = f->raw_cap ? f->raw_cap : 4096;

			while (cap < f->raw_len + h.clen)
				cap *= 2;
			if ((nr = realloc(f->raw, cap)) == NULL) {
				violation(f, "out of memory");
				goto fail;
			}
			f->raw = nr;
			f->raw_cap = cap;
		}
		if (take(f, f->raw + f->raw_len, h.clen) == -1 ||
		    take(f, NULL, h.plen) == -1)
			goto fail;
		f->raw_len += h.clen;
	}
fail:
	close(fd);
	f->fd = -1;
	return -1;
}

const char *
fcgi_param(const struct fcgi *f, const char *name)
{
	size_t n = strlen(name), i;

	for (i = 0; i < f->nparams; i++)
		if (f->params[i].nlen == n &&
		    memcmp(f->params[i].name, name, n) == 0)
			return f->params[i].value;
	return NULL;
}

ssize_t
fcgi_read(struct fcgi *f, void *buf, size_t n)
{
	unsigned char *p = buf;
	size_t         got = 0, k;
	struct rec     h;

	while (got < n && !f->in_eof) {
		if (f->failed)
			return -1;
		if (f->stdin_left > 0) {
			k = n - got < f->stdin_left ? n - got : f->stdin_left;
			if (take(f, p + got, k) == -1)
				return -1;
			got += k;
			f->stdin_left -= k;
			continue;
		}
		if (take(f, NULL, f->pad_left) == -1)
			return -1;
		f->pad_left = 0;
		if (header(f, &h) == -1)
			return -1;
		if (h.id == 0 || h.id != f->id || h.type != FCGI_STDIN) {
			if (other_record(f, &h, 1) == -1)
				return -1;
			continue;
		}
		if (h.clen == 0) {
			if (take(f, NULL, h.plen) == -1)
				return -1;
			f->in_eof = 1;
			break;
		}
		f->stdin_left = h.clen;
		f->pad_left = h.plen;
	}
	return f->failed ? -1 : (ssize_t)got;
}

int
fcgi_reply(struct fcgi *f, const void *head, size_t head_len,
    const void *body, size_t body_len)
{
	enum { NREC = 16 };
	unsigned char hdr[NREC][8], tail[24];
	struct iovec  iov[3 * NREC + 1];
	const char   *seg[2] = { head, body };
	size_t        left[2] = { head_len, body_len }, k, c;
	int           n = 0, r = 0, s = 0;

	if (f->fd < 0 || f->failed)
		return -1;
	f->replied = 1;
	while (left[0] + left[1] > 0) {
		c = left[0] + left[1];
		if (c > FCGI_RECORD_MAX)
			c = FCGI_RECORD_MAX;
		put_header(hdr[r], FCGI_STDOUT, f->id, c);
		iov[n].iov_base = hdr[r++];
		iov[n++].iov_len = 8;
		while (c > 0) {
			while (left[s] == 0)
				s++;
			k = left[s] < c ? left[s] : c;
			iov[n].iov_base = (void *)(uintptr_t)seg[s];
			iov[n++].iov_len = k;
			seg[s] += k;
			left[s] -= k;
			c -= k;
		}
		if (r == NREC) {
			if (send_all(f, iov, n) == -1)
				return -1;
			n = r = 0;
		}
	}
	put_header(tail, FCGI_STDOUT, f->id, 0);
	put_header(tail + 8, FCGI_END_REQUEST, f->id, 8);
	memset(tail + 16, 0, 8);
	tail[16 + 4] = FCGI_REQUEST_COMPLETE;
	iov[n].iov_base = tail;
	iov[n++].iov_len = sizeof(tail);
	return send_all(f, iov, n);
}

/*
 * Close a connection whose input was not read to its end: our side
 * first, then wait (bounded) for the peer's end, so that unread input
 * does not make the kernel reset the connection before the reply is read.
 */
static void
linger_close(int fd)
{
	char          trash[4096];
	struct pollfd pfd = { fd, POLLIN, 0 };
	uint64_t      until = time_mono_us() + FCGI_LINGER_MS * 1000ULL;
	uint64_t      now;
	size_t        total = 0;
	ssize_t       r;

	if (shutdown(fd, SHUT_WR) == 0)
		while ((now = time_mono_us()) < until &&
		    total < FCGI_LINGER_MAX &&
		    poll(&pfd, 1, (int)((until - now) / 1000) + 1) > 0 &&
		    (r = read(fd, trash, sizeof(trash))) > 0)
			total += (size_t)r;
	close(fd);
}

/*
 * Read and drop what is left of the request's input after an early reply
 * (404, 405, 413, a short body), up to FCGI_LINGER_MAX, so that a kept
 * connection stands at its next request. 0 at the input's end, else -1.
 */
static int
skip_input(struct fcgi *f)
{
	char    trash[8192];
	size_t  total = 0;
	ssize_t r;

	while ((r = fcgi_read(f, trash, sizeof(trash))) > 0)
		if ((total += (size_t)r) > FCGI_LINGER_MAX)
			return -1;
	return r == 0 ? 0 : -1;
}

int
fcgi_finish(struct fcgi *f)
{
	int fd = f->fd;

	if (fd < 0)
		return -1;
	if (f->keep && !f->failed && !f->in_eof && skip_input(f) == -1)
		f->keep = 0;
	f->fd = -1;
	if (f->keep && !f->failed && f->in_eof && f->in_pos == f->in_len)
		return fd;
	if (f->keep && f->in_pos < f->in_len)
		log_debug("fcgi: a request came before the reply to the one "
		    "before it; connection closed");
	if (!f->failed && !f->in_eof)
		linger_close(fd);
	else
		close(fd);
	return -1;
}
