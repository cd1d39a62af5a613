/*
 * fuzz-request.c - fuzz the request stage: libfcgi's reading of the
 * FastCGI byte stream (records, name-value pairs) and request.c's
 * handling of the parameters and the body (CONTENT_LENGTH checked
 * strictly, the body capped, read exactly).
 *
 * No seam is needed: the stream is written into one end of a socketpair
 * and FCGX_Accept_r() reads a request from the other end, which is set
 * up as an open connection (ipcFd, keepConnection) with no listening
 * socket behind it, so a stream libfcgi rejects ends in a failed accept
 * instead of a wait. The FastCGI spec is the one shipped in libfcgi-dev
 * (fcgi-spec.html): records of 8-byte headers, FCGI_BEGIN_REQUEST, then
 * FCGI_PARAMS and FCGI_STDIN streams each ended by an empty record.
 *
 * The first byte of an input picks the mode:
 *
 *   bit 0 clear - structured: the rest is "NAME=VALUE" entries separated
 *     by NUL, then two NULs, then the body. The harness encodes it as a
 *     well-formed stream (bits 1-2: STDIN record size; bit 3: 4-byte
 *     lengths for short pairs; bits 4-6: the body cap) and knows the
 *     answer: request_read_body() must give 0 with the body byte for
 *     byte, or exactly the status its rules call for (400 malformed or
 *     short or long, 413 over the cap); a difference aborts.
 *   bit 0 set - raw: the rest is the FastCGI stream itself; anything
 *     but a crash, a leak or a hang is fine.
 *
 * Built with -DPICOMDM_LIBFUZZER this is a libFuzzer target. Otherwise
 * main() replays the files and directories given, or
 * tests/fuzz/corpus/request (through PICOMDM_TEST_DATA), as make check
 * does. A file named "expect-NNN-..." must give request_read_body()
 * status NNN (000 for success; "acc" when libfcgi refuses the stream,
 * "bug" when the stream would make libfcgi abort and is not run).
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "picomdm/util.h"
#include "request.h"

/* Stream bytes at most: the socketpair's buffer must hold all of it. */
#define FUZZ_STREAM_MAX (160 * 1024)
#define FUZZ_INPUT_MAX	(FUZZ_STREAM_MAX - 4096)
#define FUZZ_ACCEPT	(-1) /* libfcgi refused the stream */
#define FUZZ_LIBFCGI	(-5) /* not run: would abort inside libfcgi */

static const size_t fuzz_caps[8] = {
    0, 1, 16, 100, 1024, 16384, 65536, 4 * 1024 * 1024};

static int fuzz_ready;

/*
 * libfcgi 2.4.2 leaks the parameter block it allocates for a management
 * record (request ID 0) of any type but FCGI_GET_VALUES, 48 bytes a
 * record (ProcessManagementRecord in fcgiapp.c; found by this target,
 * corpus file leak-libfcgi-management-record). nginx never sends one
 * and the FastCGI socket is nginx's alone; it is not ours to fix, so
 * LeakSanitizer is told to ignore leaks from inside libfcgi.
 */
const char *__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:libfcgi.so\n";
}

static void
fuzz_init(void)
{
	if (fuzz_ready)
		return;
	if (FCGX_Init() != 0)
		abort();
	/* A write to a closed socketpair must not end the process. */
	signal(SIGPIPE, SIG_IGN);
	fuzz_ready = 1;
}

/* Append a record of type with content p[0..n) (n <= 65535). */
static int
fuzz_record(struct buf *b, int type, const void *p, size_t n)
{
	unsigned char h[8] = {1, (unsigned char)type, 0, 1,
	    (unsigned char)(n >> 8), (unsigned char)n, 0, 0};

	if (buf_append(b, h, sizeof(h)) == -1)
		return -1;
	return n > 0 ? buf_append(b, p, n) : 0;
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
	const uint8_t	   *end = d + n, *sep, *e, *eq;
	unsigned char	    begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};

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
	    fuzz_stream(b, 4, pairs->p, pairs->len, 65535) == -1 ||
	    fuzz_stream(b, 5, *body, *blen, chunks[(mode >> 1) & 3]) == -1)
		return -1;
	return b->len > FUZZ_STREAM_MAX ? -1 : 0;
}

/* Whether a name-value pair list holds a pair whose lengths overflow
 * libfcgi's int arithmetic (see fuzz_libfcgi_abort), or claim more bytes
 * than any stream here holds: libfcgi allocates nameLen + valueLen + 2
 * before it reads them, up to 2 GiB for a stream of 80 bytes, and ASan
 * then writes the shadow of it all (seconds: libFuzzer's timeout). */
static int
fuzz_pairs_overflow(const unsigned char *p, size_t n)
{
	unsigned long long len[2];
	size_t		   off = 0;
	int		   i;

	while (off < n) {
		for (i = 0; i < 2; i++) {
			if (off >= n)
				return 0;
			if (p[off] & 0x80) {
				if (n - off < 4)
					return 0;
				len[i] = (unsigned long long)(p[off] & 0x7f)
					<< 24 |
				    (unsigned long long)p[off + 1] << 16 |
				    (unsigned long long)p[off + 2] << 8 |
				    p[off + 3];
				off += 4;
			} else
				len[i] = p[off++];
		}
		if (len[0] + len[1] + 2 > 0x7fffffffULL ||
		    len[0] + len[1] > FUZZ_STREAM_MAX)
			return 1;
		if (len[0] + len[1] > n - off)
			return 0;
		off += (size_t)(len[0] + len[1]);
	}
	return 0;
}

/*
 * libfcgi 2.4.2 (Debian 12's 2.4.2-2+deb12u1 included) computes a
 * name-value pair's size as nameLen + valueLen + 2 in an int: lengths
 * whose sum passes INT_MAX make its Malloc() assert, which aborts the
 * whole responder (ReadParams in fcgiapp.c; found by this target, kept as
 * corpus files expect-bug-*). Only a peer that can write to the FastCGI
 * socket can send that, and nginx never does: such streams are not run.
 * This looks at the content of FCGI_PARAMS records joined up (pairs span
 * records) and of every FCGI_GET_VALUES management record (request ID 0)
 * on its own, which libfcgi reads as pairs up to the record's end. A
 * management record of any other type is answered FCGI_UNKNOWN_TYPE but
 * its content is not skipped: FillBuffProc hands it on to whichever
 * stream is reading, so while the params are read it joins them (the
 * padding after it is skipped). Such records count here as params until
 * the params' empty record, an over-approximation (before
 * FCGI_BEGIN_REQUEST libfcgi refuses the stream instead).
 * libfcgi does not always skip a record's padding: switching its reader
 * to the params stream after FCGI_BEGIN_REQUEST, and to stdin after the
 * params' empty record, drops the padding length, so those padding bytes
 * are read as the next header (fuzz-request found both). libfcgi skips
 * an FCGI_PARAMS record of another request ID (ProcessHeader: SKIP), so
 * its content is not between the pairs; joining it in anyway can hide an
 * overflow behind it (fuzz-request found that too: corpus file
 * expect-bug-libfcgi-other-request-id). Each of the eight readings (the
 * two paddings kept or dropped, other request IDs' params joined or
 * skipped) is walked; any that overflows counts.
 */
static int
fuzz_libfcgi_walk(const unsigned char *s, size_t n, int keep_pad)
{
	struct buf params;
	size_t	   off = 0, clen, plen;
	int	   bad = 0, rid, type, brid = -1, ended = 0;

	memset(&params, 0, sizeof(params));
	while (!bad && n - off >= 8) {
		type = s[off + 1];
		rid = s[off + 2] << 8 | s[off + 3];
		clen = (size_t)(s[off + 4] << 8 | s[off + 5]);
		plen = s[off + 6];
		off += 8;
		if (clen > n - off)
			clen = n - off;
		if (rid == 0 && type == 9)
			bad = fuzz_pairs_overflow(s + off, clen);
		else if (((type == 4 &&
			       (!(keep_pad & 4) || rid == 0 || rid == brid)) ||
			     (rid == 0 && !ended)) &&
		    buf_append(&params, s + off, clen) == -1)
			abort();
		off += clen;
		if (rid != 0 && type == 1 && brid == -1) {
			brid = rid;
			if (keep_pad & 1)
				plen = 0;
		}
		/* Only the request's own empty record ends its params; libfcgi
		 * skips records of another request ID. */
		if (rid == brid && type == 4 && clen == 0 && !ended++ &&
		    (keep_pad & 2))
			plen = 0;
		off += plen < n - off ? plen : n - off;
	}
	if (!bad && params.len > 0)
		bad = fuzz_pairs_overflow(params.p, params.len);
	buf_free(&params);
	return bad;
}

static int
fuzz_libfcgi_abort(const unsigned char *s, size_t n)
{
	int keep_pad;

	for (keep_pad = 0; keep_pad < 8; keep_pad++)
		if (fuzz_libfcgi_walk(s, n, keep_pad))
			return 1;
	return 0;
}

/*
 * Feed stream[0..n) to libfcgi and, if it yields a request, to
 * request.c with the cap. Returns request_read_body()'s status,
 * FUZZ_ACCEPT when libfcgi refused the stream, or -2 when the harness
 * could not run.
 */
static int
fuzz_serve(const unsigned char *stream, size_t n, size_t cap,
    const unsigned char *want_body, size_t want_len, int check_body)
{
	FCGX_Request   fr;
	struct request req;
	int	       sv[2], rc, status = -2;
	size_t	       off = 0;
	ssize_t	       w;

	if (fuzz_libfcgi_abort(stream, n))
		return FUZZ_LIBFCGI;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		return -2;
	{
		int sz = FUZZ_STREAM_MAX * 2;

		(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		(void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
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

	if (FCGX_InitRequest(&fr, -1, 0) != 0)
		abort();
	fr.ipcFd = sv[0];
	fr.keepConnection = 1; /* FCGX_Accept_r must not close it first */
	rc = FCGX_Accept_r(&fr);
	if (rc < 0) {
		/* libfcgi closed sv[0] itself (ipcFd is -1 now). */
		if (fr.ipcFd >= 0)
			close(fr.ipcFd);
		FCGX_Free(&fr, 0);
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
		    req.body[req.body_len] != '\0')
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
	FCGX_FPrintF(fr.out, "Status: %d\r\nContent-Length: 0\r\n\r\n",
	    status == 0 ? 200 : status);
	request_free(&req);
	fr.keepConnection = 0;
	FCGX_Finish_r(&fr);
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
    {"acc", FUZZ_ACCEPT}, {"bug", FUZZ_LIBFCGI}, {NULL, 0}};

/*
 * .max is one byte more, so that fuzz_one() refuses more; .norun is the
 * status of an input the harness could not run.
 */
REPLAY_TARGET("request", .max = FUZZ_INPUT_MAX + 1, .statuses = 1,
    .words = fuzz_words, .norun = -2);
