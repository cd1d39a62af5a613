/*
 * util.h - small helpers shared by every program: strict numbers, time,
 * hex/base64, compat functions glibc lacks, a growable byte buffer.
 */
#ifndef PICOMDM_UTIL_H
#define PICOMDM_UTIL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse a whole decimal string into [min, max]. Returns 0 and sets *out, or
 * -1 on empty input, trailing bytes, sign where min >= 0, or out of range.
 * The only number parser request code uses.
 */
int num_parse(const char *, long long min, long long max, long long *out);

/* Microseconds since the epoch (CLOCK_REALTIME) and monotonic. */
uint64_t time_now_us(void);
uint64_t time_mono_us(void);

/* Sleep s seconds (nothing when s <= 0), a signal's interruption waited
 * out. */
void time_sleep(double s);

/* RFC 3339 UTC "2026-11-27T10:53:10Z" (buf >= 32 bytes); from µs. */
void time_format(uint64_t us, char *buf, size_t bufsz);
/* Parse RFC 3339 (Z or +hh:mm, optional fraction) into µs; 0 or -1. */
int  time_parse_rfc3339(const char *, uint64_t *out_us);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void hex_encode(const void *, size_t len, char *out);
/* The value of one hex digit (either case), or -1. */
int  hex_val(int c);
/* Decode 2n hex digits of s into out[n]: 0, or -1 at a non-hex digit. */
int  hex_decode(const char *s, size_t n, unsigned char *out);
/* The value of one base64 character (RFC 4648 alphabet), or -1. */
int  b64_val(int c);

/*
 * Base64 (RFC 4648, with padding). base64_encode returns a NUL-terminated
 * string the caller frees, or NULL. base64_decode ignores ASCII whitespace,
 * returns a buffer the caller frees (with *outlen), or NULL when the input
 * is not base64.
 */
char *base64_encode(const void *, size_t);
unsigned char *base64_decode(const char *, size_t, size_t *outlen);

/* Percent-decode src[0..len) into a new NUL-terminated string; NULL on bad
 * escapes or an embedded NUL. Caller frees. */
char *pct_decode(const char *, size_t len);

/* SHA-256 of a buffer into out[32]. */
void sha256(const void *, size_t, unsigned char out[32]);
/* SHA-256, -384 or -512 (bits) fetched once, or NULL: given EVP_sha256()
 * and the like, or SHA256(), OpenSSL 3.0 looks the digest up on every
 * use. */
const struct evp_md_st *digest_fetched(unsigned bits);

/* Wipe then free (secrets). freezero(NULL, n) is a no-op. */
void freezero(void *, size_t);

/* A growable buffer with a hard maximum; every append checks it. */
struct buf {
	unsigned char *p;
	size_t         len;
	size_t         cap;
	size_t         max; /* 0 means SIZE_MAX / 2 */
};
int  buf_append(struct buf *, const void *, size_t);
int  buf_printf(struct buf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));
void buf_free(struct buf *);

#ifndef HAVE_STRLCPY
size_t strlcpy(char *, const char *, size_t);
#endif
#ifndef HAVE_STRLCAT
size_t strlcat(char *, const char *, size_t);
#endif

/*
 * One process per role on a file: an exclusive lock on byte slot of path
 * (an open file description lock, advisory, taken without waiting). The
 * descriptor returned holds it until it is closed or the process ends.
 * Returns the descriptor, -2 when another process holds the slot, or -1
 * with errno (the file cannot be opened read-write, ...).
 */
int lock_slot(const char *path, int slot);
/* The same, waiting while another process holds the slot; -1 with errno
 * EINTR when a signal's handler interrupted the wait. */
int lock_slot_wait(const char *path, int slot);

#endif
