/*
 * util.c - strict numbers, time, hex, base64, percent-decoding, SHA-256,
 * a bounded growable buffer, and the string functions glibc lacks.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "picomdm/util.h"

/*
 * Parse the whole of s as a decimal number in [min, max]. strtoll is used
 * only here; the caller never sees a partial parse. s starts with a digit,
 * or with '-' and a digit when min < 0: strtoll would skip white space
 * and take a '+'.
 */
int
num_parse(const char *s, long long min, long long max, long long *out)
{
	const char *d;
	char	   *end;
	long long   v;

	if (s == NULL)
		return -1;
	d = *s == '-' && min < 0 ? s + 1 : s;
	if (*d < '0' || *d > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* See util.h. */
void
time_sleep(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

uint64_t
time_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
time_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void
time_format(uint64_t us, char *buf, size_t bufsz)
{
	time_t    t = (time_t)(us / 1000000u);
	struct tm tm;

	if (us == 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, bufsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		if (bufsz > 0)
			buf[0] = '\0';
	}
}

/* Read exactly n digits at *p; advance. -1 if not digits. */
static int
digits(const char **p, int n)
{
	int v = 0;

	while (n-- > 0) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	return v;
}

/*
 * RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm).
 * Converted with timegm() after range checks.
 */
int
time_parse_rfc3339(const char *s, uint64_t *out)
{
	struct tm tm;
	int       y, mo, d, h, mi, sec, sign, oh, om;
	long long frac = 0, scale = 1000000;
	time_t    t;
	long long off = 0;

	memset(&tm, 0, sizeof(tm));
	if ((y = digits(&s, 4)) < 0 || *s++ != '-' ||
	    (mo = digits(&s, 2)) < 1 || mo > 12 || *s++ != '-' ||
	    (d = digits(&s, 2)) < 1 || d > 31 ||
	    (*s != 'T' && *s != 't' && *s != ' '))
		return -1;
	s++;
	if ((h = digits(&s, 2)) < 0 || h > 23 || *s++ != ':' ||
	    (mi = digits(&s, 2)) < 0 || mi > 59 || *s++ != ':' ||
	    (sec = digits(&s, 2)) < 0 || sec > 60)
		return -1;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -1;
		while (*s >= '0' && *s <= '9') {
			if (scale > 1) {
				scale /= 10;
				frac += (*s - '0') * scale;
			}
			s++;
		}
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if ((oh = digits(&s, 2)) < 0 || oh > 23 || *s++ != ':' ||
		    (om = digits(&s, 2)) < 0 || om > 59)
			return -1;
		off = sign * (oh * 3600LL + om * 60LL);
	} else
		return -1;
	if (*s != '\0' || y < 1970)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1 || t - off < 0)
		return -1;
	*out = (uint64_t)(t - off) * 1000000u + (uint64_t)frac;
	return 0;
}

void
hex_encode(const void *p, size_t len, char *out)
{
	static const char    hx[] = "0123456789abcdef";
	const unsigned char *b = p;
	size_t               i;

	for (i = 0; i < len; i++) {
		out[2 * i] = hx[b[i] >> 4];
		out[2 * i + 1] = hx[b[i] & 15];
	}
	out[2 * len] = '\0';
}

static const char b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *
base64_encode(const void *p, size_t len)
{
	const unsigned char *b = p;
	char                *out, *o;
	size_t               i;

	if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
		return NULL;
	if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
		return NULL;
	o = out;
	for (i = 0; i + 2 < len; i += 3) {
		*o++ = b64[b[i] >> 2];
		*o++ = b64[((b[i] & 3) << 4) | (b[i + 1] >> 4)];
		*o++ = b64[((b[i + 1] & 15) << 2) | (b[i + 2] >> 6)];
		*o++ = b64[b[i + 2] & 63];
	}
	if (i < len) {
		*o++ = b64[b[i] >> 2];
		if (i + 1 < len) {
			*o++ = b64[((b[i] & 3) << 4) | (b[i + 1] >> 4)];
			*o++ = b64[(b[i + 1] & 15) << 2];
		} else {
			*o++ = b64[(b[i] & 3) << 4];
			*o++ = '=';
		}
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* See util.h. */
int
b64_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* b64_val(c) + 1 of the 64 alphabet characters; 0 for any other byte. */
static const unsigned char b64_dec[256] = {
	['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6,
	['G'] = 7, ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12,
	['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17,
	['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21, ['V'] = 22,
	['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27,
	['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32,
	['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37,
	['l'] = 38, ['m'] = 39, ['n'] = 40, ['o'] = 41, ['p'] = 42,
	['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47,
	['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52,
	['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57,
	['5'] = 58, ['6'] = 59, ['7'] = 60, ['8'] = 61, ['9'] = 62,
	['+'] = 63, ['/'] = 64
};

/*
 * Decode standard base64, skipping ASCII whitespace. Padding is optional
 * but, when present, must end the input. Returns NULL on any other byte.
 */
unsigned char *
base64_decode(const char *s, size_t len, size_t *outlen)
{
	const unsigned char *u = (const unsigned char *)s;
	unsigned char       *out;
	size_t               i, n = 0, pad = 0;
	unsigned int         acc = 0, a, b, c4, d;
	int                  bits = 0, v;

	if ((out = malloc(len / 4 * 3 + 3)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c;

		/*
		 * Four alphabet characters at a quantum boundary (most of an
		 * Mdm-Signature header): three bytes at once.
		 */
		while (bits == 0 && pad == 0 && len - i >= 4 &&
		    (a = b64_dec[u[i]]) != 0 && (b = b64_dec[u[i + 1]]) != 0 &&
		    (c4 = b64_dec[u[i + 2]]) != 0 &&
		    (d = b64_dec[u[i + 3]]) != 0) {
			a--, b--, c4--, d--;
			out[n++] = (unsigned char)(a << 2 | b >> 4);
			out[n++] = (unsigned char)((b << 4 | c4 >> 2) & 0xff);
			out[n++] = (unsigned char)((c4 << 6 | d) & 0xff);
			i += 4;
		}
		if (i == len)
			break;
		c = (unsigned char)s[i];

		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = b64_val(c)) < 0)
			goto fail;
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6)
		goto fail;
	*outlen = n;
	return out;
fail:
	free(out);
	return NULL;
}

/* See util.h. */
int
hex_val(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* See util.h. */
int
hex_decode(const char *s, size_t n, unsigned char *out)
{
	size_t i;
	int    hi, lo;

	for (i = 0; i < n; i++) {
		if ((hi = hex_val(s[2 * i])) < 0 ||
		    (lo = hex_val(s[2 * i + 1])) < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

char *
pct_decode(const char *s, size_t len)
{
	char  *out;
	size_t i, n = 0;
	int    hi, lo;

	if ((out = malloc(len + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			if (len - i < 3)
				goto fail;
			if ((hi = hex_val(s[i + 1])) < 0 ||
			    (lo = hex_val(s[i + 2])) < 0)
				goto fail;
			out[n] = (char)(hi << 4 | lo);
			i += 2;
		} else
			out[n] = s[i];
		if (out[n] == '\0')
			goto fail;
		n++;
	}
	out[n] = '\0';
	return out;
fail:
	free(out);
	return NULL;
}

static struct {
	pthread_once_t once;
	EVP_MD        *md[3]; /* SHA256, SHA384, SHA512 */
} digests = { PTHREAD_ONCE_INIT, { NULL } };

static void
digests_fetch(void)
{
	digests.md[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
	digests.md[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
	digests.md[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
}

const EVP_MD *
digest_fetched(unsigned bits)
{
	pthread_once(&digests.once, digests_fetch);
	return bits == 256 ? digests.md[0] : bits == 384 ? digests.md[1] :
	    bits == 512 ? digests.md[2] : NULL;
}

void
sha256(const void *p, size_t len, unsigned char out[32])
{
	const EVP_MD *md = digest_fetched(256);

	if (md == NULL ||
	    EVP_Digest(len > 0 ? p : "", len, out, NULL, md, NULL) != 1)
		SHA256(p, len, out);
}

void
freezero(void *p, size_t n)
{
	if (p == NULL)
		return;
	explicit_bzero(p, n);
	free(p);
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	size_t max = b->max ? b->max : SIZE_MAX / 2;
	size_t ncap;
	void  *np;

	if (n > max || b->len > max - n)
		return -1;
	if (b->len + n + 1 > b->cap) {
		ncap = b->cap ? b->cap : 256;
		while (ncap < b->len + n + 1)
			ncap *= 2;
		if ((np = realloc(b->p, ncap)) == NULL)
			return -1;
		b->p = np;
		b->cap = ncap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
	char    small[512], *big = NULL;
	va_list ap;
	int     n, rc;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	if ((big = malloc((size_t)n + 1)) == NULL)
		return -1;
	va_start(ap, fmt);
	rc = vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rc = rc == n ? buf_append(b, big, (size_t)n) : -1;
	free(big);
	return rc;
}

void
buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

#ifndef HAVE_STRLCPY
size_t
strlcpy(char *dst, const char *src, size_t sz)
{
	size_t n = strlen(src);

	if (sz > 0) {
		size_t c = n < sz - 1 ? n : sz - 1;

		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}
#endif

#ifndef HAVE_STRLCAT
size_t
strlcat(char *dst, const char *src, size_t sz)
{
	size_t d = strnlen(dst, sz);

	if (d == sz)
		return sz + strlen(src);
	return d + strlcpy(dst + d, src, sz - d);
}
#endif

/*
 * F_OFD_SETLK, not flock: a byte per role lets picomdm-notify and
 * picomdm-dep each hold their own on the same file, and unlike a classic
 * POSIX lock it is not dropped when some other descriptor of the file in
 * this process is closed. LMDB locks lock.mdb, never data.mdb, so nothing
 * else contends for these bytes.
 */
static int
lock_slot_cmd(const char *path, int slot, int cmd)
{
	struct flock fl;
	int	     fd, e;

	if ((fd = open(path, O_RDWR | O_CLOEXEC)) == -1)
		return -1;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = slot;
	fl.l_len = 1;
	if (fcntl(fd, cmd, &fl) == 0)
		return fd;
	e = errno;
	(void)close(fd);
	if (e == EAGAIN || e == EACCES)
		return -2;
	errno = e;
	return -1;
}

int
lock_slot(const char *path, int slot)
{
	return lock_slot_cmd(path, slot, F_OFD_SETLK);
}

int
lock_slot_wait(const char *path, int slot)
{
	return lock_slot_cmd(path, slot, F_OFD_SETLKW);
}
