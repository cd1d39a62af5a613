/*
 * test-pushcert - module/pushcert.c: push certificates this test makes
 * with OpenSSL (subject UID = topic, validity around now), as PEM and
 * PKCS#12, good and bad; the state and the 30-day warning; password
 * files.
 */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "picomdm/pushcert.h"
#include "regress.h"

#define TOPIC "com.apple.mgmt.External.1f3a5b7c-9d2e-4f60-8a1b-2c3d4e5f6a7b"
#define DAY   86400L

static EVP_PKEY *
key_new(int rsa)
{
	EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");

	CHECK(k != NULL);
	return k;
}

/*
 * A self-signed certificate for key k, valid from now + from to now + to
 * (seconds), with UID attributes uid1 and uid2 when not NULL.
 */
static X509 *
cert_new(EVP_PKEY *k, const char *uid1, const char *uid2, long from,
    long to)
{
	X509      *x = X509_new();
	X509_NAME *n;

	CHECK(x != NULL);
	CHECK(X509_set_version(x, 2) == 1);
	CHECK(ASN1_INTEGER_set(X509_get_serialNumber(x), 7) == 1);
	CHECK(X509_gmtime_adj(X509_getm_notBefore(x), from) != NULL);
	CHECK(X509_gmtime_adj(X509_getm_notAfter(x), to) != NULL);
	n = X509_get_subject_name(x);
	if (uid1 != NULL)
		CHECK(X509_NAME_add_entry_by_NID(n, NID_userId, MBSTRING_UTF8,
		    (const unsigned char *)uid1, -1, -1, 0) == 1);
	CHECK(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
	    (const unsigned char *)"APSP:test", -1, -1, 0) == 1);
	if (uid2 != NULL)
		CHECK(X509_NAME_add_entry_by_NID(n, NID_userId, MBSTRING_UTF8,
		    (const unsigned char *)uid2, -1, -1, 0) == 1);
	CHECK(X509_set_issuer_name(x, n) == 1);
	CHECK(X509_set_pubkey(x, k) == 1);
	CHECK(X509_sign(x, k, EVP_sha256()) > 0);
	return x;
}

/* PEM text of a certificate or key (encrypted with pass when not NULL). */
static char *
pem(X509 *x, EVP_PKEY *k, const char *pass)
{
	BIO  *b = BIO_new(BIO_s_mem());
	char *p, *s;
	long  n;

	CHECK(b != NULL);
	if (x != NULL)
		CHECK(PEM_write_bio_X509(b, x) == 1);
	if (k != NULL)
		CHECK(PEM_write_bio_PKCS8PrivateKey(b, k,
		    pass ? EVP_aes_256_cbc() : NULL, NULL, 0, NULL,
		    (void *)(uintptr_t)pass) == 1);
	n = BIO_get_mem_data(b, &p);
	CHECK(n > 0);
	s = calloc(1, (size_t)n + 1);
	CHECK(s != NULL);
	memcpy(s, p, (size_t)n);
	BIO_free(b);
	return s;
}

static unsigned char *
p12(X509 *x, EVP_PKEY *k, const char *pass, size_t *len)
{
	PKCS12        *p = PKCS12_create(pass, "push", k, x, NULL, 0, 0, 0, 0,
	    0);
	unsigned char *der = NULL;
	int            n;

	CHECK(p != NULL);
	n = i2d_PKCS12(p, &der);
	CHECK(n > 0);
	*len = (size_t)n;
	PKCS12_free(p);
	return der;
}

/* Parse PEM cert + key; expect failure with a reason containing want. */
static void
pem_refused(const char *cert, const char *key, const char *want)
{
	char             err[256] = "";
	struct pushcert *pc;

	pc = pushcert_from_pem(cert, strlen(cert), key, key ? strlen(key) : 0,
	    err, sizeof(err));
	if (pc != NULL || strstr(err, want) == NULL)
		fprintf(stderr, "wanted \"%s\", got \"%s\"\n", want, err);
	CHECK(pc == NULL);
	CHECK(strstr(err, want) != NULL);
	/* Never key material in a reason. */
	CHECK(strstr(err, "PRIVATE KEY") == NULL);
}

static void
test_pem(EVP_PKEY *k, EVP_PKEY *other)
{
	X509            *x = cert_new(k, TOPIC, NULL, -DAY, 365 * DAY);
	char            *c = pem(x, NULL, NULL), *kp = pem(NULL, k, NULL);
	char            *both = pem(x, k, NULL), *ko = pem(NULL, other, NULL);
	char            *kenc = pem(NULL, k, "secret"), err[256];
	struct pushcert *pc;
	time_t           now = time(NULL);

	/* Certificate and key apart. */
	pc = pushcert_from_pem(c, strlen(c), kp, strlen(kp), err, sizeof(err));
	CHECK(pc != NULL);
	CHECK_STR(pc->topic, TOPIC);
	CHECK(pc->not_after > now + 364 * DAY && pc->not_after <= now +
	    365 * DAY + 5);
	CHECK(pc->not_before < now);
	CHECK_EQ(pushcert_state(pc, now), PUSHCERT_VALID);
	CHECK_STR(pushcert_state_name(pushcert_state(pc, now)), "valid");
	CHECK(pushcert_days_left(pc, now) == 364 ||
	    pushcert_days_left(pc, now) == 365);
	CHECK_EQ(strlen(pc->sha256_hex), 64);
	CHECK(strstr(pc->subject, "UID=" TOPIC) != NULL);
	CHECK(strncmp(pc->cert_pem, "-----BEGIN CERTIFICATE-----", 27) == 0);
	CHECK_EQ(strlen(pc->cert_pem), pc->cert_pem_len);
	CHECK(strncmp(pc->key_pem, "-----BEGIN PRIVATE KEY-----", 27) == 0);
	CHECK_EQ(strlen(pc->key_pem), pc->key_pem_len);
	/* The copies parse again to the same certificate. */
	{
		struct pushcert *again = pushcert_from_pem(pc->cert_pem,
		    pc->cert_pem_len, pc->key_pem, pc->key_pem_len, err,
		    sizeof(err));

		CHECK(again != NULL);
		CHECK_STR(again->sha256_hex, pc->sha256_hex);
		pushcert_free(again);
	}
	pushcert_free(pc);

	/* One text holding both (NanoMDM's PUT /v1/pushcert body). */
	pc = pushcert_from_pem(both, strlen(both), NULL, 0, err, sizeof(err));
	CHECK(pc != NULL);
	CHECK_STR(pc->topic, TOPIC);
	pushcert_free(pc);
	/* The key first, then the certificate. */
	{
		size_t lk = strlen(kp), lc = strlen(c);
		char  *rev = malloc(lk + lc + 1);

		CHECK(rev != NULL);
		memcpy(rev, kp, lk);
		memcpy(rev + lk, c, lc + 1);
		pc = pushcert_from_pem(rev, lk + lc, NULL, 0, err, sizeof(err));
		CHECK(pc != NULL);
		pushcert_free(pc);
		free(rev);
	}

	/* A traditional (PKCS#1 / SEC1) key, as older tools write them. */
	{
		BIO  *b = BIO_new(BIO_s_mem());
		char *p;
		long  n;

		CHECK(b != NULL);
		CHECK(PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0,
		    NULL, NULL) == 1);
		n = BIO_get_mem_data(b, &p);
		CHECK(n > 0);
		CHECK(memmem(p, (size_t)n, "-----BEGIN PRIVATE KEY-----", 27) ==
		    NULL);
		pc = pushcert_from_pem(c, strlen(c), p, (size_t)n, err,
		    sizeof(err));
		CHECK(pc != NULL);
		/* Handed on as PKCS#8 all the same. */
		CHECK(strncmp(pc->key_pem, "-----BEGIN PRIVATE KEY-----", 27) ==
		    0);
		pushcert_free(pc);
		BIO_free(b);
	}

	pem_refused(c, ko, "does not match");
	pem_refused(c, kenc, "encrypted");
	pem_refused(c, NULL, "no PEM private key");
	pem_refused(c, "garbage", "no PEM private key");
	pem_refused("garbage", kp, "no PEM certificate");
	pem_refused(kp, kp, "no PEM certificate");
	CHECK(pushcert_from_pem(NULL, 0, kp, strlen(kp), err, sizeof(err)) ==
	    NULL);
	CHECK(pushcert_from_pem(c, 0, kp, strlen(kp), err, sizeof(err)) ==
	    NULL);
	pushcert_free(NULL);

	free(c);
	free(kp);
	free(both);
	free(ko);
	free(kenc);
	X509_free(x);
}

/* Certificates whose subject does not name an MDM push topic. */
static void
test_topics(EVP_PKEY *k)
{
	static const struct {
		const char *uid1, *uid2, *want;
	} bad[] = {
		{NULL, NULL, "no UID"},
		{"com.apple.foo.x", NULL, "does not start with"},
		{"com.apple.mgmt.", NULL, "does not start with"},
		{"com.apple.mgmtX.y", NULL, "does not start with"},
		{"org.example.mgmt", NULL, "does not start with"},
		{"com.apple.mgmt.a b", NULL, "character"},
		{"com.apple.mgmt.\xc3\xa9", NULL, "character"},
		{TOPIC, TOPIC ".2", "more than one UID"},
	};
	char   *kp = pem(NULL, k, NULL), *c, longuid[300];
	size_t  i;
	X509   *x;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		x = cert_new(k, bad[i].uid1, bad[i].uid2, -DAY, DAY * 100);
		c = pem(x, NULL, NULL);
		pem_refused(c, kp, bad[i].want);
		free(c);
		X509_free(x);
	}
	/* 256 bytes is one too many; 255 is accepted. */
	memset(longuid, 'a', sizeof(longuid));
	memcpy(longuid, PUSHCERT_TOPIC_PREFIX, strlen(PUSHCERT_TOPIC_PREFIX));
	longuid[256] = '\0';
	x = cert_new(k, longuid, NULL, -DAY, DAY * 100);
	c = pem(x, NULL, NULL);
	pem_refused(c, kp, "too long");
	free(c);
	X509_free(x);
	longuid[255] = '\0';
	x = cert_new(k, longuid, NULL, -DAY, DAY * 100);
	c = pem(x, NULL, NULL);
	{
		char             err[256];
		struct pushcert *pc = pushcert_from_pem(c, strlen(c), kp,
		    strlen(kp), err, sizeof(err));

		CHECK(pc != NULL);
		CHECK_STR(pc->topic, longuid);
		pushcert_free(pc);
	}
	free(c);
	X509_free(x);
	free(kp);
}

static enum pushcert_state
state_of(EVP_PKEY *k, long from, long to, long long *days)
{
	X509               *x = cert_new(k, TOPIC, NULL, from, to);
	char               *c = pem(x, NULL, NULL), *kp = pem(NULL, k, NULL);
	char                err[256];
	struct pushcert    *pc;
	enum pushcert_state s;
	time_t              now = time(NULL);

	pc = pushcert_from_pem(c, strlen(c), kp, strlen(kp), err, sizeof(err));
	CHECK(pc != NULL); /* expiry is reported, not refused */
	s = pushcert_state(pc, now);
	*days = pushcert_days_left(pc, now);
	pushcert_free(pc);
	free(c);
	free(kp);
	X509_free(x);
	return s;
}

static void
test_expiry(EVP_PKEY *k)
{
	long long days;

	CHECK_EQ(state_of(k, -400 * DAY, -DAY, &days), PUSHCERT_EXPIRED);
	CHECK(days == -1 || days == -2);
	CHECK_EQ(state_of(k, -400 * DAY, -100, &days), PUSHCERT_EXPIRED);
	CHECK_EQ(days, -1);
	CHECK_EQ(state_of(k, -DAY, 10 * DAY, &days), PUSHCERT_EXPIRING);
	CHECK(days == 9 || days == 10);
	CHECK_EQ(state_of(k, -DAY, 30 * DAY - 60, &days), PUSHCERT_EXPIRING);
	CHECK_EQ(state_of(k, -DAY, 31 * DAY, &days), PUSHCERT_VALID);
	CHECK(days == 30 || days == 31);
	CHECK_EQ(state_of(k, DAY, 100 * DAY, &days), PUSHCERT_NOT_YET_VALID);
	CHECK_STR(pushcert_state_name(PUSHCERT_EXPIRING), "expiring");
	CHECK_STR(pushcert_state_name(PUSHCERT_EXPIRED), "expired");
	CHECK_STR(pushcert_state_name(PUSHCERT_NOT_YET_VALID),
	    "not-yet-valid");
	CHECK_STR(pushcert_state_name(PUSHCERT__MAX), "unknown");
	/* Exactly at the boundaries, on a fixed struct. */
	{
		struct pushcert pc = {.not_before = 1000, .not_after =
			1000 + 40 * DAY};

		CHECK_EQ(pushcert_state(&pc, 999), PUSHCERT_NOT_YET_VALID);
		CHECK_EQ(pushcert_state(&pc, 1000), PUSHCERT_VALID);
		CHECK_EQ(pushcert_state(&pc, 1000 + 10 * DAY - 1),
		    PUSHCERT_VALID);
		CHECK_EQ(pushcert_state(&pc, 1000 + 10 * DAY),
		    PUSHCERT_EXPIRING);
		CHECK_EQ(pushcert_state(&pc, 1000 + 40 * DAY - 1),
		    PUSHCERT_EXPIRING);
		CHECK_EQ(pushcert_state(&pc, 1000 + 40 * DAY),
		    PUSHCERT_EXPIRED);
		CHECK_EQ(pushcert_days_left(&pc, 1000), 40);
		CHECK_EQ(pushcert_days_left(&pc, 1000 + 40 * DAY), 0);
		CHECK_EQ(pushcert_days_left(&pc, 1000 + 40 * DAY + 1), -1);
	}
}

static void
test_p12(EVP_PKEY *k, EVP_PKEY *other)
{
	X509            *x = cert_new(k, TOPIC, NULL, -DAY, 365 * DAY);
	X509            *xo = cert_new(other, "com.apple.foo", NULL, -DAY, DAY);
	unsigned char   *d;
	size_t           len;
	char             err[256];
	struct pushcert *pc;

	d = p12(x, k, "s3cret", &len);
	pc = pushcert_from_p12(d, len, "s3cret", err, sizeof(err));
	CHECK(pc != NULL);
	CHECK_STR(pc->topic, TOPIC);
	CHECK(strncmp(pc->key_pem, "-----BEGIN PRIVATE KEY-----", 27) == 0);
	pushcert_free(pc);
	CHECK(pushcert_from_p12(d, len, "wrong", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "wrong PKCS#12 password") != NULL);
	CHECK(pushcert_from_p12(d, len, NULL, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "wrong PKCS#12 password") != NULL);
	/* Truncated: not a PKCS#12 file. */
	CHECK(pushcert_from_p12(d, len / 2, "s3cret", err, sizeof(err)) ==
	    NULL);
	CHECK(strstr(err, "not a PKCS#12") != NULL);
	OPENSSL_free(d);

	/* Without a password. */
	d = p12(x, k, NULL, &len);
	pc = pushcert_from_p12(d, len, NULL, err, sizeof(err));
	CHECK(pc != NULL);
	CHECK_STR(pc->topic, TOPIC);
	pushcert_free(pc);
	pc = pushcert_from_p12(d, len, "", err, sizeof(err));
	CHECK(pc != NULL);
	pushcert_free(pc);
	OPENSSL_free(d);

	/* The topic rules hold for PKCS#12 too. */
	d = p12(xo, other, "pw", &len);
	CHECK(pushcert_from_p12(d, len, "pw", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "does not start with") != NULL);
	OPENSSL_free(d);

	CHECK(pushcert_from_p12("\x30\x03\x02\x01\x03", 5, "x", err,
	    sizeof(err)) == NULL);
	CHECK(pushcert_from_p12(NULL, 0, "x", err, sizeof(err)) == NULL);
	X509_free(x);
	X509_free(xo);
}

static void
write_file(const char *path, const char *s, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	CHECK(fd != -1);
	CHECK(write(fd, s, len) == (ssize_t)len);
	CHECK(close(fd) == 0);
}

static void
test_password_file(void)
{
	const char *tmp = getenv("PICOMDM_TEST_TMP");
	char        path[512], pw[64], err[256], big[2000];

	if (tmp == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	(void)mkdir(tmp, 0700);
	CHECK(snprintf(path, sizeof(path), "%s/test-pushcert.%ld.pw", tmp,
	    (long)getpid()) < (int)sizeof(path));
	write_file(path, "s3cret\n", 7);
	CHECK_EQ(pushcert_password_read(path, pw, sizeof(pw), err,
	    sizeof(err)), 0);
	CHECK_STR(pw, "s3cret");
	write_file(path, "two words\r\nsecond line\n", 23);
	CHECK_EQ(pushcert_password_read(path, pw, sizeof(pw), err,
	    sizeof(err)), 0);
	CHECK_STR(pw, "two words");
	write_file(path, "no newline", 10);
	CHECK_EQ(pushcert_password_read(path, pw, sizeof(pw), err,
	    sizeof(err)), 0);
	CHECK_STR(pw, "no newline");
	write_file(path, "\n", 1);
	CHECK_EQ(pushcert_password_read(path, pw, sizeof(pw), err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "empty") != NULL);
	write_file(path, "a\0b\n", 4);
	CHECK_EQ(pushcert_password_read(path, pw, sizeof(pw), err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "NUL") != NULL);
	memset(big, 'x', sizeof(big));
	write_file(path, big, 64);
	CHECK_EQ(pushcert_password_read(path, pw, sizeof(pw), err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "too long") != NULL);
	write_file(path, big, sizeof(big));
	CHECK_EQ(pushcert_password_read(path, pw, sizeof(pw), err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "too long") != NULL);
	CHECK(unlink(path) == 0);
	CHECK_EQ(pushcert_password_read(path, pw, sizeof(pw), err,
	    sizeof(err)), -1);
	CHECK(strstr(err, "No such file") != NULL);
}

int
main(void)
{
	EVP_PKEY *rsa = key_new(1), *ec = key_new(0), *ec2 = key_new(0);

	test_pem(rsa, ec);
	test_pem(ec, ec2);
	test_topics(ec);
	test_expiry(ec);
	test_p12(rsa, ec2);
	test_p12(ec, ec2);
	test_password_file();
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec2);
	REGRESS_DONE();
}
