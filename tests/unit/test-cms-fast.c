/*
 * test-cms-fast.c - module/cms_fast.c against OpenSSL's CMS_verify. Many
 * detached SignedData messages are made here with OpenSSL (RSA-2048,
 * P-256 and P-384 keys; SHA-256/384; signed attributes or none;
 * issuerAndSerialNumber or subjectKeyIdentifier), then damaged (body
 * changed by a byte, every byte of the message flipped in turn, a signer
 * not among the candidates or one of the same key listed before it, one
 * of the same serial listed before it, the sid's issuer in another case,
 * a second signer, eContent present). For each, the fast check's verdict
 * and signer are compared with CMS_verify's on the same message and
 * candidates (tests/fuzz/cms-oracle.h, shared with fuzz-cms-fast): a fast
 * "verified" must be one OpenSSL verifies with the same signer, and every
 * intact message must be verified by the fast check (else the test would
 * prove nothing).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cms_fast.h"

#include "../fuzz/cms-oracle.h"
#include "regress.h"

static long n_fast, n_ssl, n_cases, n_prepared;

/* A self-signed certificate of key, with a subject key identifier. */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, long serial)
{
	X509           *x = X509_new();
	X509_NAME      *nm = X509_NAME_new();
	X509V3_CTX      v3;
	X509_EXTENSION *ext;
	unsigned char  *der = NULL;
	const unsigned char *p;
	int             l;

	CHECK(x != NULL && nm != NULL);
	CHECK(X509_set_version(x, 2) == 1);
	CHECK(ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1);
	CHECK(X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) == 1);
	CHECK(X509_set_subject_name(x, nm) == 1);
	CHECK(X509_set_issuer_name(x, nm) == 1);
	CHECK(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL);
	CHECK(X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL);
	CHECK(X509_set_pubkey(x, key) == 1);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	CHECK((ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_key_identifier,
	    "hash")) != NULL);
	CHECK(X509_add_ext(x, ext, -1) == 1);
	X509_EXTENSION_free(ext);
	CHECK(X509_sign(x, key, EVP_sha256()) > 0);
	X509_NAME_free(nm);
	/* Parsed back, as the verified-certificate cache holds them. */
	CHECK((l = i2d_X509(x, &der)) > 0);
	X509_free(x);
	p = der;
	CHECK((x = d2i_X509(NULL, &p, l)) != NULL);
	OPENSSL_free(der);
	return x;
}

/*
 * A copy of the candidate with DER der/len with its key prepared
 * (cms_fast_prepare), made once per certificate (73 here), as the cache
 * keeps its signers. Found by its bytes: the test makes certificates
 * anew.
 */
#define PREP_MAX 128
static struct {
	unsigned char *der;
	size_t         len;
	X509          *x;
} prep_of[PREP_MAX];

static X509 *
prepared(X509 *x, const unsigned char *der, size_t len)
{
	size_t i;

	for (i = 0; i < PREP_MAX && prep_of[i].x != NULL; i++)
		if (prep_of[i].len == len &&
		    memcmp(prep_of[i].der, der, len) == 0)
			return prep_of[i].x;
	CHECK(i < PREP_MAX);
	CHECK((prep_of[i].der = malloc(len)) != NULL);
	memcpy(prep_of[i].der, der, len);
	prep_of[i].len = len;
	CHECK((prep_of[i].x = X509_dup(x)) != NULL);
	CHECK(cms_fast_prepare(prep_of[i].x) == 0);
	return prep_of[i].x;
}

/*
 * Compare the two on one message. Returns the fast verdict (1 verified).
 */
static int
differ(const unsigned char *der, size_t n, const void *body, size_t len,
    X509 *const *cand, int ncand)
{
	int fs = -1, ss, fast, ssl;

	unsigned char *cd[2] = { NULL, NULL };
	size_t         cl[2];
	X509          *prep[2];
	int            i, fp = -1, fastp;

	for (i = 0; i < ncand; i++)
		CHECK((cl[i] = (size_t)i2d_X509(cand[i], &cd[i])) > 0);
	fast = cms_fast_verify(der, n, body, len, cand,
	    (const unsigned char *const *)cd, cl, ncand, &fs) == 0;
	/* The same certificates with their keys made ready (the cache's
	 * signers): the same verdict, by the other way of checking. */
	for (i = 0; i < ncand; i++)
		prep[i] = prepared(cand[i], cd[i], cl[i]);
	fastp = cms_fast_verify(der, n, body, len, prep,
	    (const unsigned char *const *)cd, cl, ncand, &fp) == 0;
	CHECK_EQ(fastp, fast);
	if (fast)
		CHECK_EQ(fp, fs);
	n_prepared += fastp;
	for (i = 0; i < ncand; i++)
		OPENSSL_free(cd[i]);
	ssl = cms_oracle(der, n, body, len, cand, ncand, &ss);
	n_cases++;
	n_fast += fast;
	n_ssl += ssl;
	if (fast) {
		if (!ssl)
			fprintf(stderr, "message %ld: verified by the fast "
			    "check only\n", n_cases);
		CHECK(ssl);
		CHECK_EQ(fs, ss);
	}
	return fast;
}

/* The offset of the last occurrence of s in der/n (there must be one). */
static size_t
last_of(const unsigned char *der, size_t n, const char *s)
{
	size_t l = strlen(s), i;

	CHECK(n >= l);
	for (i = n - l + 1; i-- > 0;)
		if (memcmp(der + i, s, l) == 0)
			return i;
	CHECK(0);
	return 0;
}

/* DER of cms. */
static unsigned char *
to_der(CMS_ContentInfo *cms, size_t *n)
{
	unsigned char *der = NULL;
	int            l = i2d_CMS_ContentInfo(cms, &der);

	CHECK(l > 0);
	*n = (size_t)l;
	return der;
}

/* Sign body with key/cert under md with flags, a second signer or not. */
static unsigned char *
sign(X509 *cert, EVP_PKEY *key, const EVP_MD *md, unsigned flags,
    X509 *cert2, EVP_PKEY *key2, const char *body, size_t *n)
{
	CMS_ContentInfo *cms;
	BIO             *in = BIO_new_mem_buf(body, (int)strlen(body));
	unsigned char   *der;

	CHECK((cms = CMS_sign(NULL, NULL, NULL, NULL, CMS_PARTIAL |
	    CMS_BINARY | (flags & CMS_DETACHED))) != NULL);
	CHECK(CMS_add1_signer(cms, cert, key, md, flags & ~CMS_DETACHED) !=
	    NULL);
	if (cert2 != NULL)
		CHECK(CMS_add1_signer(cms, cert2, key2, md,
		    flags & ~CMS_DETACHED) != NULL);
	CHECK(CMS_final(cms, in, NULL, CMS_BINARY | (flags & CMS_DETACHED)) ==
	    1);
	der = to_der(cms, n);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return der;
}

int
main(void)
{
	static const char body[] = "<?xml version=\"1.0\"?><plist><dict><key>"
	    "MessageType</key><string>TokenUpdate</string></dict></plist>";
	static const char *const cn[3] = { "rsa device", "p256 device",
		"p384 device" };
	static const char *const upper[3] = { "RSA DEVICE", "P256 DEVICE",
		"P384 DEVICE" };
	EVP_PKEY      *key[3], *okey;
	X509          *cert[3], *other, *twin, *cand[2];
	const EVP_MD  *md[2];
	unsigned char *der;
	char           bad[sizeof(body)];
	size_t         n, i;
	int            k, m, attr, ski, fast;
	unsigned       flags;

	CHECK((key[0] = EVP_RSA_gen(2048)) != NULL);
	CHECK((key[1] = EVP_EC_gen("P-256")) != NULL);
	CHECK((key[2] = EVP_EC_gen("P-384")) != NULL);
	for (k = 0; k < 3; k++)
		cert[k] = make_cert(key[k], cn[k], k + 1);
	/* A candidate that never signs, listed first. */
	CHECK((okey = EVP_EC_gen("P-256")) != NULL);
	other = make_cert(okey, "unrelated", 7);
	md[0] = EVP_sha256();
	md[1] = EVP_sha384();
	memcpy(bad, body, sizeof(body));
	bad[20] ^= 1;

	for (k = 0; k < 3; k++)
		for (m = 0; m < 2; m++)
			for (attr = 0; attr < 2; attr++)
				for (ski = 0; ski < 2; ski++) {
			flags = CMS_DETACHED | CMS_BINARY |
			    (attr ? 0 : CMS_NOATTR) | (ski ? CMS_USE_KEYID : 0);
			der = sign(cert[k], key[k], md[m], flags, NULL, NULL,
			    body, &n);
			cand[0] = other;
			cand[1] = cert[k];
			/* Intact: verified by both, signer 1. */
			printf("key %d, %s, %s, %s\n", k, m ? "SHA-384" :
			    "SHA-256", attr ? "signed attributes" :
			    "no attributes", ski ? "keyid" : "issuer+serial");
			CHECK(differ(der, n, body, strlen(body), cand, 2));
			CHECK(differ(der, n, body, strlen(body), cand + 1, 1));
			/* Body changed by one byte; empty body. */
			CHECK(!differ(der, n, bad, strlen(bad), cand, 2));
			CHECK(!differ(der, n, "", 0, cand, 2));
			/* A certificate of the same key (so the same subject
			 * key identifier) listed first but not in the message:
			 * CMS_verify would take it as the signer; the fast
			 * check must decline, not pick the message's one (by
			 * issuer and serial both pick the message's). */
			twin = make_cert(key[k], "twin", 9);
			cand[0] = twin;
			CHECK_EQ(differ(der, n, body, strlen(body), cand, 2),
			    !ski);
			cand[0] = other;
			X509_free(twin);
			/* A certificate of the same serial listed first: with
			 * another issuer it is passed over (the issuer's bytes
			 * differ, the decoded names too) and the message's
			 * signer found; with the same issuer in another case
			 * (X509_NAME_cmp's canonical form equal, the bytes
			 * not) CMS_verify takes it, so the fast check must
			 * not skip to the signer whose bytes match. */
			twin = make_cert(okey, "unrelated", k + 1);
			cand[0] = twin;
			CHECK(differ(der, n, body, strlen(body), cand, 2));
			X509_free(twin);
			twin = make_cert(okey, upper[k], k + 1);
			cand[0] = twin;
			CHECK_EQ(differ(der, n, body, strlen(body), cand, 2),
			    ski);
			cand[0] = other;
			X509_free(twin);
			/* The sid's issuer in another case (not signed): the
			 * same name to OpenSSL, matched by the decoded
			 * comparison. */
			if (!ski) {
				i = last_of(der, n, cn[k]);
				der[i] ^= 0x20;
				CHECK(differ(der, n, body, strlen(body), cand,
				    2));
				der[i] ^= 0x20;
			}
			/* The signer not among the candidates. */
			CHECK(!differ(der, n, body, strlen(body), cand, 1));
			/* Trailing byte. */
			der = OPENSSL_realloc(der, n + 1);
			der[n] = 0;
			CHECK(!differ(der, n + 1, body, strlen(body), cand, 2));
			/* Every byte flipped in turn, one bit and all bits. */
			for (i = 0; i < n; i++) {
				der[i] ^= 0x01;
				differ(der, n, body, strlen(body), cand, 2);
				der[i] ^= 0x01 ^ 0xff;
				differ(der, n, body, strlen(body), cand, 2);
				der[i] ^= 0xff;
			}
			/* Truncated. */
			for (i = 0; i < n; i += 7)
				CHECK(!differ(der, i, body, strlen(body), cand,
				    2));
			OPENSSL_free(der);
			/* Two signers. */
			der = sign(cert[k], key[k], md[m], flags,
			    cert[(k + 1) % 3], key[(k + 1) % 3], body, &n);
			cand[0] = cert[(k + 1) % 3];
			fast = differ(der, n, body, strlen(body), cand, 2);
			CHECK(!fast);
			OPENSSL_free(der);
			/* eContent present (not detached). */
			der = sign(cert[k], key[k], md[m], flags & ~CMS_DETACHED,
			    NULL, NULL, body, &n);
			CHECK(!differ(der, n, body, strlen(body), cand, 2));
			OPENSSL_free(der);
		}
	printf("test-cms-fast: %ld messages, %ld verified by the fast "
	    "check (%ld of them with prepared keys), %ld by CMS_verify\n",
	    n_cases, n_fast, n_prepared, n_ssl);
	CHECK(n_fast > 0 && n_fast <= n_ssl);
	CHECK_EQ(n_prepared, n_fast);
	for (k = 0; k < 3; k++) {
		X509_free(cert[k]);
		EVP_PKEY_free(key[k]);
	}
	X509_free(other);
	EVP_PKEY_free(okey);
	for (k = 0; k < PREP_MAX; k++) {
		X509_free(prep_of[k].x);
		free(prep_of[k].der);
	}
	REGRESS_DONE();
}
