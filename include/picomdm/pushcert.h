/*
 * pushcert.h - MDM push certificates: parse a PEM certificate and key, or a
 * PKCS#12 file, into a checked certificate for one APNs topic.
 *
 * Pure functions over buffers: no files (except pushcert_password_read), no
 * store, no network. The topic is the certificate subject's UID attribute
 * (OID 0.9.2342.19200300.100.1.1) and must start with "com.apple.mgmt.";
 * the key must match the certificate. The parsed certificate keeps a PEM
 * copy of both, which is what the push client (apns.h) hands to TLS.
 */
#ifndef PICOMDM_PUSHCERT_H
#define PICOMDM_PUSHCERT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PUSHCERT_TOPIC_PREFIX "com.apple.mgmt."
#define PUSHCERT_TOPIC_MAX    255
/* A certificate this close to its end is warned about (log and list). */
#define PUSHCERT_WARN_DAYS    30

struct pushcert {
	char   topic[PUSHCERT_TOPIC_MAX + 1];
	time_t not_before;
	time_t not_after;
	char   subject[256];   /* one-line subject, for display */
	char   sha256_hex[65]; /* of the DER certificate */
	char  *cert_pem;       /* NUL-terminated, owned */
	size_t cert_pem_len;
	char  *key_pem;        /* unencrypted PKCS#8, wiped on free */
	size_t key_pem_len;
};

/*
 * Parse a push certificate from PEM. cert holds the certificate (the first
 * CERTIFICATE block is used); key holds an unencrypted private key, or is
 * NULL when the key follows the certificate in the same buffer (as
 * NanoMDM's PUT /v1/pushcert takes them). Returns a certificate the caller
 * frees with pushcert_free, or NULL with a reason in err (never key
 * material): not PEM, no certificate, encrypted or unreadable key, no UID,
 * a topic without the com.apple.mgmt. prefix, a key that does not match.
 * Expiry is not a parse error: see pushcert_state.
 */
struct pushcert *pushcert_from_pem(const void *cert, size_t certlen,
    const void *key, size_t keylen, char *err, size_t errsz);

/*
 * The same from a PKCS#12 (DER) file and its password (NULL or "" for
 * none). A wrong password is reported as such.
 */
struct pushcert *pushcert_from_p12(const void *der, size_t len,
    const char *password, char *err, size_t errsz);

/* Wipe the key and free; NULL is a no-op. */
void pushcert_free(struct pushcert *);

enum pushcert_state {
	PUSHCERT_VALID = 0,
	PUSHCERT_EXPIRING, /* within PUSHCERT_WARN_DAYS of not_after */
	PUSHCERT_EXPIRED,
	PUSHCERT_NOT_YET_VALID,
	PUSHCERT__MAX
};

/* The certificate's state at time now (seconds since the epoch). */
enum pushcert_state pushcert_state(const struct pushcert *, time_t now);
/* "valid", "expiring", "expired", "not-yet-valid". */
const char *pushcert_state_name(enum pushcert_state);
/* Whole days from now until not_after (negative once expired). */
long long pushcert_days_left(const struct pushcert *, time_t now);

/*
 * Read a password file: its first line, without the line end, at most
 * bufsz - 1 bytes. Returns 0, or -1 with a reason in err (unreadable,
 * empty, too long, a NUL byte).
 */
int pushcert_password_read(const char *path, char *buf, size_t bufsz,
    char *err, size_t errsz);

#endif
