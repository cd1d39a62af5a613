/*
 * pushcert.c - MDM push certificates (pushcert.h): PEM or PKCS#12 in, a
 * checked certificate for one APNs topic out.
 *
 * Apple issues an MDM push certificate for one topic, carried in the
 * subject's UID attribute (OID 0.9.2342.19200300.100.1.1,
 * "com.apple.mgmt.External.<uuid>"); APNs takes pushes for that topic only
 * over TLS authenticated with it. Parsing refuses anything that could not
 * push: no UID or another prefix, a key that does not match, an encrypted
 * PEM key (picomdm has no passphrase to unlock it with later). Expiry is
 * reported, not refused: an operator may import the old certificate to
 * inspect it. Every function leaves the thread's OpenSSL error queue empty.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "picomdm/pushcert.h"
#include "picomdm/util.h"

static void
seterr(char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write a reason into err (may be NULL) and clear OpenSSL's queue. */
static void
seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		if (vsnprintf(err, errsz, fmt, ap) < 0)
			err[0] = '\0';
		va_end(ap);
	}
	ERR_clear_error();
}

/* OpenSSL's last reason, for messages; never holds key material. */
static const char *
ossl_reason(void)
{
	const char *r = ERR_reason_error_string(ERR_peek_last_error());

	return r != NULL ? r : "unknown error";
}

/* Does this PEM text hold an encrypted private key? */
static int
pem_key_encrypted(const char *p, size_t len)
{
	static const char *marks[] = {"BEGIN ENCRYPTED PRIVATE KEY",
		"Proc-Type: 4,ENCRYPTED"};
	size_t            i, n;

	for (i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
		n = strlen(marks[i]);
		if (len >= n && memmem(p, len, marks[i], n) != NULL)
			return 1;
	}
	return 0;
}

/* Refuse every passphrase prompt: keys must come unencrypted. */
static int
no_password(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static time_t
asn1_time_t(const ASN1_TIME *t, int *ok)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		*ok = 0;
		return 0;
	}
	return timegm(&tm);
}

/*
 * The topic from the subject UID: exactly one, printable ASCII without
 * spaces, PUSHCERT_TOPIC_PREFIX followed by something.
 */
static int
topic_from_cert(X509 *x, char *topic, char *err, size_t errsz)
{
	X509_NAME     *name = X509_get_subject_name(x);
	unsigned char *utf8 = NULL;
	int            i, n, rc = -1;
	size_t         len, prefix = strlen(PUSHCERT_TOPIC_PREFIX);

	i = X509_NAME_get_index_by_NID(name, NID_userId, -1);
	if (i < 0) {
		seterr(err, errsz, "the certificate has no UID attribute "
		    "(not an MDM push certificate)");
		return -1;
	}
	if (X509_NAME_get_index_by_NID(name, NID_userId, i) >= 0) {
		seterr(err, errsz, "the certificate has more than one UID");
		return -1;
	}
	n = ASN1_STRING_to_UTF8(&utf8,
	    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n < 0) {
		seterr(err, errsz, "the certificate's UID is unreadable");
		return -1;
	}
	len = (size_t)n;
	if (len > PUSHCERT_TOPIC_MAX) {
		seterr(err, errsz, "the certificate's UID is too long");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (utf8[i] <= 0x20 || utf8[i] >= 0x7f) {
			seterr(err, errsz, "the certificate's UID has a "
			    "character a topic cannot have");
			goto out;
		}
	if (len <= prefix || memcmp(utf8, PUSHCERT_TOPIC_PREFIX, prefix)) {
		seterr(err, errsz, "the certificate's UID %.*s does not start "
		    "with %s (not an MDM push topic)", n > 80 ? 80 : n,
		    (const char *)utf8, PUSHCERT_TOPIC_PREFIX);
		goto out;
	}
	memcpy(topic, utf8, len);
	topic[len] = '\0';
	rc = 0;
out:
	OPENSSL_free(utf8);
	return rc;
}

/* Serialize to a NUL-terminated heap copy of the BIO's contents. */
static char *
bio_strdup(BIO *b, size_t *len)
{
	char *p, *s;
	long  n = BIO_get_mem_data(b, &p);

	if (n <= 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	memcpy(s, p, (size_t)n);
	s[n] = '\0';
	*len = (size_t)n;
	return s;
}

/*
 * Build the struct from a certificate and key (both borrowed): topic,
 * validity, key match, fingerprint, PEM copies. NULL with err on failure.
 */
static struct pushcert *
pushcert_build(X509 *x, EVP_PKEY *key, char *err, size_t errsz)
{
	struct pushcert *pc = NULL;
	BIO             *cb = NULL, *kb = NULL;
	unsigned char   *der = NULL, md[32];
	int              derlen, ok = 1;

	if ((pc = calloc(1, sizeof(*pc))) == NULL) {
		seterr(err, errsz, "out of memory");
		return NULL;
	}
	if (topic_from_cert(x, pc->topic, err, errsz) == -1)
		goto fail;
	if (X509_check_private_key(x, key) != 1) {
		seterr(err, errsz, "the key does not match the certificate");
		goto fail;
	}
	pc->not_before = asn1_time_t(X509_get0_notBefore(x), &ok);
	pc->not_after = asn1_time_t(X509_get0_notAfter(x), &ok);
	if (!ok) {
		seterr(err, errsz, "the certificate's validity is unreadable");
		goto fail;
	}
	if (X509_NAME_oneline(X509_get_subject_name(x), pc->subject,
	    sizeof(pc->subject)) == NULL)
		pc->subject[0] = '\0';
	if ((derlen = i2d_X509(x, &der)) <= 0) {
		seterr(err, errsz, "cannot encode the certificate");
		goto fail;
	}
	sha256(der, (size_t)derlen, md);
	hex_encode(md, sizeof(md), pc->sha256_hex);
	if ((cb = BIO_new(BIO_s_mem())) == NULL ||
	    (kb = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_X509(cb, x) != 1 ||
	    PEM_write_bio_PKCS8PrivateKey(kb, key, NULL, NULL, 0, NULL,
	    NULL) != 1 ||
	    (pc->cert_pem = bio_strdup(cb, &pc->cert_pem_len)) == NULL ||
	    (pc->key_pem = bio_strdup(kb, &pc->key_pem_len)) == NULL) {
		seterr(err, errsz, "cannot encode the certificate and key");
		goto fail;
	}
	OPENSSL_free(der);
	BIO_free(cb);
	BIO_free(kb);
	ERR_clear_error();
	return pc;
fail:
	OPENSSL_free(der);
	BIO_free(cb);
	BIO_free(kb);
	pushcert_free(pc);
	return NULL;
}

struct pushcert *
pushcert_from_pem(const void *cert, size_t certlen, const void *key,
    size_t keylen, char *err, size_t errsz)
{
	struct pushcert *pc = NULL;
	BIO             *b = NULL;
	X509            *x = NULL;
	EVP_PKEY        *pk = NULL;

	if (cert == NULL || certlen == 0) {
		seterr(err, errsz, "empty certificate");
		return NULL;
	}
	if (certlen > INT32_MAX || keylen > INT32_MAX) {
		seterr(err, errsz, "certificate or key too large");
		return NULL;
	}
	if ((b = BIO_new_mem_buf(cert, (int)certlen)) == NULL ||
	    (x = PEM_read_bio_X509(b, NULL, no_password, NULL)) == NULL) {
		seterr(err, errsz, "no PEM certificate found (%s)",
		    ossl_reason());
		goto out;
	}
	if (key == NULL) {
		/* The key follows in the same PEM text. */
		key = cert;
		keylen = certlen;
		if (BIO_reset(b) != 1) {
			seterr(err, errsz, "cannot reread the certificate");
			goto out;
		}
	} else {
		BIO_free(b);
		if ((b = BIO_new_mem_buf(key, (int)keylen)) == NULL) {
			seterr(err, errsz, "out of memory");
			goto out;
		}
	}
	if (pem_key_encrypted(key, keylen)) {
		seterr(err, errsz, "the private key is encrypted; give it "
		    "unencrypted, or as a PKCS#12 file with its password");
		goto out;
	}
	if ((pk = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL)) ==
	    NULL) {
		seterr(err, errsz, "no PEM private key found (%s)",
		    ossl_reason());
		goto out;
	}
	pc = pushcert_build(x, pk, err, errsz);
out:
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	return pc;
}

struct pushcert *
pushcert_from_p12(const void *der, size_t len, const char *password,
    char *err, size_t errsz)
{
	struct pushcert *pc = NULL;
	BIO             *b = NULL;
	PKCS12          *p12 = NULL;
	X509            *x = NULL;
	EVP_PKEY        *pk = NULL;
	STACK_OF(X509)  *ca = NULL;
	const char      *pass = password;

	if (der == NULL || len == 0) {
		seterr(err, errsz, "empty PKCS#12 file");
		return NULL;
	}
	if (len > INT32_MAX) {
		seterr(err, errsz, "PKCS#12 file too large");
		return NULL;
	}
	if ((b = BIO_new_mem_buf(der, (int)len)) == NULL ||
	    (p12 = d2i_PKCS12_bio(b, NULL)) == NULL) {
		seterr(err, errsz, "not a PKCS#12 file (%s)", ossl_reason());
		goto out;
	}
	if (pass == NULL || pass[0] == '\0') {
		/* No password: tools write either an empty or no MAC key. */
		pass = "";
		if (PKCS12_mac_present(p12) &&
		    PKCS12_verify_mac(p12, "", 0) != 1 &&
		    PKCS12_verify_mac(p12, NULL, 0) == 1)
			pass = NULL;
	}
	if (PKCS12_mac_present(p12) &&
	    PKCS12_verify_mac(p12, pass, -1) != 1) {
		seterr(err, errsz, "wrong PKCS#12 password (or a damaged "
		    "file)");
		goto out;
	}
	if (PKCS12_parse(p12, pass, &pk, &x, &ca) != 1) {
		seterr(err, errsz, "cannot read the PKCS#12 file (%s)",
		    ossl_reason());
		goto out;
	}
	if (x == NULL || pk == NULL) {
		seterr(err, errsz, "the PKCS#12 file lacks a %s",
		    x == NULL ? "certificate" : "private key");
		goto out;
	}
	pc = pushcert_build(x, pk, err, errsz);
out:
	BIO_free(b);
	PKCS12_free(p12);
	X509_free(x);
	EVP_PKEY_free(pk);
	sk_X509_pop_free(ca, X509_free);
	ERR_clear_error();
	return pc;
}

void
pushcert_free(struct pushcert *pc)
{
	if (pc == NULL)
		return;
	free(pc->cert_pem);
	freezero(pc->key_pem, pc->key_pem_len);
	free(pc);
}

enum pushcert_state
pushcert_state(const struct pushcert *pc, time_t now)
{
	if (now < pc->not_before)
		return PUSHCERT_NOT_YET_VALID;
	if (now >= pc->not_after)
		return PUSHCERT_EXPIRED;
	if (pc->not_after - now <= (time_t)PUSHCERT_WARN_DAYS * 86400)
		return PUSHCERT_EXPIRING;
	return PUSHCERT_VALID;
}

const char *
pushcert_state_name(enum pushcert_state s)
{
	static const char *names[PUSHCERT__MAX] = {
		[PUSHCERT_VALID] = "valid",
		[PUSHCERT_EXPIRING] = "expiring",
		[PUSHCERT_EXPIRED] = "expired",
		[PUSHCERT_NOT_YET_VALID] = "not-yet-valid",
	};

	return (unsigned)s < PUSHCERT__MAX ? names[s] : "unknown";
}

long long
pushcert_days_left(const struct pushcert *pc, time_t now)
{
	long long d = (long long)pc->not_after - (long long)now;

	/* Floor division: one second past the end is day -1. */
	return d >= 0 ? d / 86400 : -((-d + 86399) / 86400);
}

int
pushcert_password_read(const char *path, char *buf, size_t bufsz,
    char *err, size_t errsz)
{
	char    tmp[1024];
	ssize_t n;
	size_t  len = 0, i;
	int     fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		seterr(err, errsz, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (len < sizeof(tmp) &&
	    (n = read(fd, tmp + len, sizeof(tmp) - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			seterr(err, errsz, "%s: %s", path, strerror(errno));
			goto out;
		}
		len += (size_t)n;
	}
	for (i = 0; i < len && tmp[i] != '\n' && tmp[i] != '\r'; i++)
		if (tmp[i] == '\0') {
			seterr(err, errsz, "%s: a NUL byte in the password",
			    path);
			goto out;
		}
	if (i == len && len == sizeof(tmp)) {
		seterr(err, errsz, "%s: the password is too long", path);
		goto out;
	}
	if (i == 0) {
		seterr(err, errsz, "%s: empty password file", path);
		goto out;
	}
	if (i >= bufsz) {
		seterr(err, errsz, "%s: the password is too long", path);
		goto out;
	}
	memcpy(buf, tmp, i);
	buf[i] = '\0';
	rc = 0;
out:
	explicit_bzero(tmp, sizeof(tmp));
	close(fd);
	return rc;
}
