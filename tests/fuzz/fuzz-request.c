/*
 * fuzz-request.c - fuzz the request stage: fcgi.c's reading of the
 * FastCGI byte stream (records, name-value pairs, management records,
 * other requests' records) and writing of the reply, and request.c's
 * handling of the parameters and the body (CONTENT_LENGTH checked
 * strictly, the body capped, read exactly).
 *
 * No seam is needed: the stream is written into one end of a socketpair
 * and fcgi_accept() reads a request from the other end; the peer's end
 * is shut down, so a stream fcgi.c refuses or that ends too soon ends in
 * a failed accept or read instead of a wait. The reply fcgi.c writes is
 * read back and must be well formed: records of version 1, the reply's
 * own FCGI_STDOUT content byte for byte, its empty FCGI_STDOUT record
 * and its FCGI_END_REQUEST last (FastCGI specification, 3.3 and 5).
 *
 * The first byte of an input picks the mode:
 *
 *   bit 0 clear - structured: the rest is "NAME=VALUE" entries separated
 *     by NUL, then two NULs, then the body. The harness encodes it as a
 *     well-formed stream (bits 1-2: STDIN record size; bit 3: 4-byte
 *     lengths for short pairs; bits 4-6: the body cap; bit 7: padding on
 *     every record, a management record and another request's
 *     FCGI_BEGIN_REQUEST among them) and knows the answer:
 *     request_read_body() must give 0 with the body byte for byte, or
 *     exactly the status its rules call for (400 malformed or short or
 *     long, 413 over the cap); a difference aborts.
 *   bit 0 set - raw: the rest is the FastCGI stream itself; anything
 *     but a crash, a leak, a hang or a malformed reply is fine.
 *
 * Built with -DPICOMDM_LIBFUZZER this is a libFuzzer target. Otherwise
 * main() replays the files and directories given, or
 * tests/fuzz/corpus/request (through PICOMDM_TEST_DATA), as make check
 * does. A file named "expect-NNN-..." must give request_read_body()
 * status NNN (000 for success; "acc" when fcgi_accept() refuses the
 * stream).
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picomdm/log.h"
#include "picomdm/util.h"
#include "fcgi.h"
#include "request.h"

/* Stream bytes at most: the socketpair's buffer must hold all of it. */
#define FUZZ_STREAM_MAX (160 * 1024)
#define FUZZ_INPUT_MAX	(FUZZ_STREAM_MAX - 4096)
#define FUZZ_ACCEPT	(-1) /* fcgi_accept() refused the stream */

static const size_t fuzz_caps[8] = {
    0, 1, 16, 100, 1024, 16384, 65536, 4 * 1024 * 1024};

static int fuzz_ready;

static void
fuzz_init(void)
{
	if (fuzz_ready)
		return;
	/* fcgi.c warns of every stream it refuses: most of them, here. */
	log_set_level(LOG_ERROR);
	fcgi_setup(64);
	/* A write to a closed socketpair must not end the process. */
	signal(SIGPIPE, SIG_IGN);
	fuzz_ready = 1;
}

/* Padding on every record the structured mode writes (mode bit 7). */
static size_t fuzz_pad;

/* Append a record of type for request id with content p[0..n) (n <=
 * 65535), and fuzz_pad bytes of padding. */
static int
fuzz_record_id(struct buf *b, int type, int id, const void *p, size_t n)
{
	static const unsigned char junk[8] = "PADDING";
	unsigned char h[8] = {1, (unsigned char)type, (unsigned char)(id >> 8),
	    (unsigned char)id, (unsigned char)(n >> 8), (unsigned char)n,
	    (unsigned char)fuzz_pad, 0};

	if (buf_append(b, h, sizeof(h)) == -1)
		return -1;
	if (n > 0 && buf_append(b, p, n) == -1)
		return -1;
	return fuzz_pad > 0 ? buf_append(b, junk, fuzz_pad) : 0;
}

static int
fuzz_record(struct buf *b, int type, const void *p, size_t n)
{
	return fuzz_record_id(b, type, 1, p, n);
}

/* Append a stream (PARAMS or STDIN) in records of at most chunk bytes,
 * then its empty end record. */
static int
fuzz_stream(
    struct buf *b, int type, const unsigned char *p, size_t n, size_t chunk)
{
	size_t k;

	while (n > 0) {
		k = n < chunk ? n : chunk;
		if (fuzz_record(b, type, p, k) == -1)
			return -1;
		p += k;
		n -= k;
	}
	return fuzz_record(b, type, NULL, 0);
}

static int
fuzz_len(struct buf *b, size_t n, int wide)
{
	unsigned char l[4] = {(unsigned char)((n >> 24) | 0x80),
	    (unsigned char)(n >> 16), (unsigned char)(n >> 8),
	    (unsigned char)n};

	if (n < 128 && !wide) {
		l[0] = (unsigned char)n;
		return buf_append(b, l, 1);
	}
	return buf_append(b, l, 4);
}

/*
 * What request_read_body() must answer for CONTENT_LENGTH cl (NULL when
 * absent), a body of n bytes and the cap: the rules of request.c.
 */
static int
fuzz_expect(const char *cl, size_t n, size_t cap)
{
	long long v = 0;

	if (cl != NULL && *cl != '\0' &&
	    num_parse(cl, 0, 0x7fffffffLL, &v) == -1)
		return 400;
	if ((unsigned long long)v > cap)
		return 413;
	return (unsigned long long)v == n ? 0 : 400;
}

/*
 * Build the structured mode's stream into b; the body goes to *body,
 * the first CONTENT_LENGTH to *cl (borrowed from b2, a scratch copy of
 * the parameters). Returns -1 when the input is too big.
 */
static int
fuzz_build(const uint8_t *d, size_t n, unsigned mode, struct buf *b,
    struct buf *pairs, const unsigned char **body, size_t *blen, char **cl)
{
	static const size_t chunks[4] = {65535, 1, 7, 8192};
	/* FCGI_GET_VALUES asking for FCGI_MPXS_CONNS (3.4: empty values). */
	static const unsigned char getv[17] = "\x0f\x00" "FCGI_MPXS_CONNS";
	const uint8_t	   *end = d + n, *sep, *e, *eq;
	unsigned char	    begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};

	fuzz_pad = mode & 128 ? 1 + n % 7 : 0;

	*cl = NULL;
	/* The parameters end at the first pair of NULs. */
	for (sep = d; sep + 1 < end && !(sep[0] == 0 && sep[1] == 0); sep++)
		;
	if (sep + 1 >= end)
		sep = end;
	*body = sep + 2 <= end ? sep + 2 : end;
	*blen = (size_t)(end - *body);
	for (e = d; d < sep; d = e + 1) {
		e = memchr(d, 0, (size_t)(sep - d));
		if (e == NULL)
			e = sep;
		if ((eq = memchr(d, '=', (size_t)(e - d))) == NULL)
			eq = e; /* a name with an empty value */
		if (fuzz_len(pairs, (size_t)(eq - d), mode & 8) == -1 ||
		    fuzz_len(pairs, (size_t)(e - (eq < e ? eq + 1 : e)),
			mode & 8) == -1 ||
		    buf_append(pairs, d, (size_t)(eq - d)) == -1 ||
		    (eq < e &&
			buf_append(pairs, eq + 1, (size_t)(e - eq - 1)) == -1))
			return -1;
		if (*cl == NULL && eq - d == 14 &&
		    memcmp(d, "CONTENT_LENGTH", 14) == 0) {
			size_t vl = eq < e ? (size_t)(e - eq - 1) : 0;

			if ((*cl = calloc(1, vl + 1)) == NULL)
				return -1;
			if (vl > 0)
				memcpy(*cl, eq + 1, vl);
		}
		if (e == sep)
			break;
	}
	if (fuzz_record(b, 1, begin, sizeof(begin)) == -1 ||
	    fuzz_stream(b, 4, pairs->p, pairs->len, 65535) == -1)
		return -1;
	/* Answered FCGI_GET_VALUES_RESULT and FCGI_CANT_MPX_CONN. */
	if ((mode & 128) &&
	    (fuzz_record_id(b, 9, 0, getv, sizeof(getv)) == -1 ||
	    fuzz_record_id(b, 1, 2, begin, sizeof(begin)) == -1))
		return -1;
	if (fuzz_stream(b, 5, *body, *blen, chunks[(mode >> 1) & 3]) == -1)
		return -1;
	return b->len > FUZZ_STREAM_MAX ? -1 : 0;
}

/*
 * Read back what fcgi.c wrote to the peer's end and check it: whole
 * records of version 1 and no padding; FCGI_STDOUT of the request ID
 * carrying exactly head, then its empty record, then FCGI_END_REQUEST
 * (FCGI_REQUEST_COMPLETE) as the last of the request's records. Besides
 * them only the answers to records read with the request may come, before
 * the reply or after it (fcgi_finish reads the rest of a kept
 * connection's input): FCGI_END_REQUEST refusing another request
 * (FCGI_CANT_MPX_CONN; FCGI_UNKNOWN_ROLE, also under the request's own ID
 * when a refused request had it first), FCGI_GET_VALUES_RESULT and
 * FCGI_UNKNOWN_TYPE. Aborts on anything else.
 */
static void
fuzz_check_reply(int fd, unsigned id, const char *head, size_t hlen)
{
	static unsigned char out[FUZZ_STREAM_MAX];
	size_t		     n = 0, off = 0, clen, got = 0;
	ssize_t		     r;
	unsigned	     type, rid;
	int		     ended = 0, closed = 0;

	while (n < sizeof(out) && (r = read(fd, out + n, sizeof(out) - n)) > 0)
		n += (size_t)r;
	while (off < n) {
		if (n - off < 8 || out[off] != 1 || out[off + 6] != 0)
			abort();
		type = out[off + 1];
		rid = (unsigned)out[off + 2] << 8 | out[off + 3];
		clen = (size_t)out[off + 4] << 8 | out[off + 5];
		off += 8;
		if (clen > n - off)
			abort();
		if (type == 6 && rid == id && !closed && !ended) {
			if (clen == 0)
				closed = 1;
			else if (got + clen > hlen ||
			    memcmp(out + off, head + got, clen) != 0)
				abort();
			got += clen;
		} else if (type == 3 && rid == id && closed && !ended) {
			if (clen != 8 || out[off + 4] != 0)
				abort();
			ended = 1;
		} else if (type == 3 && rid != 0 && clen == 8) {
			/* Another request refused: FCGI_CANT_MPX_CONN, or
			 * FCGI_UNKNOWN_ROLE (also for a request whose ID the
			 * request served then took again). */
			if (out[off + 4] != 3 && (out[off + 4] != 1 ||
			    rid == id))
				abort();
		} else if (!((type == 10 || type == 11) && rid == 0))
			abort();
		off += clen;
	}
	if (!ended || got != hlen)
		abort();
}

/*
 * Feed stream[0..n) to fcgi.c and, if it yields a request, to request.c
 * with the cap. Returns request_read_body()'s status, FUZZ_ACCEPT when
 * fcgi_accept() refused the stream, or -2 when the harness could not
 * run.
 */
static int
fuzz_serve(const unsigned char *stream, size_t n, size_t cap,
    const unsigned char *want_body, size_t want_len, int check_body)
{
	static struct fcgi fr;
	static int	   fr_ready;
	struct request	   req;
	int		   sv[2], status = -2, hl, fd, replied;
	size_t		   off = 0;
	ssize_t		   w;
	char		   head[64];
	struct timeval	   tv = {0, 100 * 1000};

	if (!fr_ready) {
		/* One slot for every input, as a worker keeps it. */
		fcgi_init(&fr);
		fr_ready = 1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return -2;
	{
		int sz = FUZZ_STREAM_MAX * 2;

		(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		(void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		(void)setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		/* Answers to a stream of many small management records can
		 * fill the socket (each small write costs a buffer of its
		 * own): a write that cannot go on fails instead of hanging. */
		(void)setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	while (off < n) {
		w = write(sv[1], stream + off, n - off);
		if (w <= 0) {
			close(sv[0]);
			close(sv[1]);
			return -2;
		}
		off += (size_t)w;
	}
	shutdown(sv[1], SHUT_WR);

	if (fcgi_accept(&fr, sv[0]) == -1) {
		/* fcgi_accept() closed sv[0]. */
		if (fr.fd != -1)
			abort();
		close(sv[1]);
		return FUZZ_ACCEPT;
	}
	if (request_init(&fr, &req) == -1)
		abort(); /* out of memory only */
	if (req.path == NULL || req.raw_path == NULL || req.method == NULL ||
	    req.content_type == NULL || strchr(req.path, '?') != NULL ||
	    strchr(req.raw_path, '?') != NULL)
		abort();
	status = request_read_body(&fr, &req, cap);
	if (status == 0) {
		if (req.body == NULL || req.body_len > cap ||
		    req.body[req.body_len] != '\0' || !fr.in_eof)
			abort();
		if (check_body &&
		    (req.body_len != want_len ||
			(want_len > 0 &&
			    memcmp(req.body, want_body, want_len) != 0)))
			abort();
	} else if (status != 400 && status != 411 && status != 413 &&
	    status != 500)
		abort();
	/* A small answer, as the responder writes it. */
	hl = snprintf(head, sizeof(head),
	    "Status: %d\r\nContent-Length: 0\r\n\r\n",
	    status == 0 ? 200 : status);
	if ((replied = fcgi_reply(&fr, head, (size_t)hl, NULL, 0)) == -1 &&
	    !fr.failed)
		abort();
	request_free(&req);
	/* Kept only when its input was read to the end, nothing after. */
	if ((fd = fcgi_finish(&fr)) != -1) {
		if (!fr.keep || !fr.in_eof || fr.failed ||
		    fr.in_pos != fr.in_len)
			abort();
		close(fd);
	}
	if (fr.fd != -1)
		abort();
	/* The connection is closed now: its reply is read to the end. */
	if (replied == 0)
		fuzz_check_reply(sv[1], fr.id, head, (size_t)hl);
	close(sv[1]);
	return status;
}

static int
fuzz_one(const uint8_t *data, size_t size)
{
	struct buf	     b, pairs;
	const unsigned char *body = NULL;
	size_t		     blen = 0, cap;
	char		    *cl = NULL;
	unsigned	     mode;
	int		     rc, want;

	fuzz_init();
	if (size < 1 || size > FUZZ_INPUT_MAX)
		return -2;
	mode = data[0];
	cap = fuzz_caps[(mode >> 4) & 7];
	if (mode & 1)
		return fuzz_serve(data + 1, size - 1, cap, NULL, 0, 0);

	memset(&b, 0, sizeof(b));
	memset(&pairs, 0, sizeof(pairs));
	if (fuzz_build(data + 1, size - 1, mode, &b, &pairs, &body, &blen,
		&cl) == -1) {
		rc = -2;
		goto out;
	}
	rc = fuzz_serve(b.p, b.len, cap, body, blen, 1);
	want = fuzz_expect(cl, blen, cap);
	/* A stream this harness built well is always accepted. */
	if (rc != want) {
		fprintf(stderr,
		    "fuzz-request: status %d, want %d (cap %zu, "
		    "CONTENT_LENGTH %s, body %zu)\n",
		    rc, want, cap, cl ? cl : "(none)", blen);
		abort();
	}
out:
	free(cl);
	buf_free(&b);
	buf_free(&pairs);
	return rc;
}

#include "replay.h"

static const struct replay_word fuzz_words[] = {
    {"acc", FUZZ_ACCEPT}, {NULL, 0}};

/*
 * .max is one byte more, so that fuzz_one() refuses more; .norun is the
 * status of an input the harness could not run.
 */
REPLAY_TARGET("request", .max = FUZZ_INPUT_MAX + 1, .statuses = 1,
    .words = fuzz_words, .norun = -2);
