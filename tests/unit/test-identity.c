/*
 * test-identity.c - identity_verify and identity_authorize: certificates
 * forwarded by nginx (URL-escaped PEM, RFC 9440), Mdm-Signature detached
 * CMS (RFC 5652) made here with OpenSSL, the device CA chain and validity
 * checks, concurrent verification, and the certauth binding rules against
 * a real store. Certificates are made at run time by scripts/mkcerts.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "picomdm/identity.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

#include "regress.h"

static char		   certdir[PATH_MAX];
static char		   tmpdir[PATH_MAX];
static struct identity_ca *ca;

/* The path of scripts/mkcerts in the source tree. */
static void
script_path(char *buf, size_t sz)
{
	const char *s;

	if ((s = getenv("PICOMDM_SRCDIR")) != NULL)
		CHECK((size_t)snprintf(buf, sz, "%s/scripts/mkcerts", s) < sz);
	else if ((s = getenv("PICOMDM_TEST_DATA")) != NULL)
		CHECK((size_t)snprintf(buf, sz, "%s/../../scripts/mkcerts", s) <
		    sz);
	else
		CHECK((size_t)snprintf(buf, sz, "scripts/mkcerts") < sz);
}

/* Make a fresh temporary directory and run mkcerts into it. */
static void
make_certs(void)
{
	char	    script[PATH_MAX];
	const char *base;
	pid_t	    pid;
	int	    status;

	if ((base = getenv("PICOMDM_TEST_TMP")) == NULL)
		base = "/tmp";
	CHECK(mkdir(base, 0755) == 0 || errno == EEXIST);
	CHECK((size_t)snprintf(tmpdir, sizeof(tmpdir), "%s/identity.XXXXXX",
		  base) < sizeof(tmpdir));
	CHECK(mkdtemp(tmpdir) != NULL);
	CHECK((size_t)snprintf(certdir, sizeof(certdir), "%s/certs", tmpdir) <
	    sizeof(certdir));
	script_path(script, sizeof(script));
	CHECK((pid = fork()) != -1);
	if (pid == 0) {
		execlp("bash", "bash", script, certdir, "device1", "device2",
		    (char *)NULL);
		_exit(127);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	return remove(path);
}

static void
path_of(char *buf, size_t sz, const char *name, const char *ext)
{
	CHECK((size_t)snprintf(buf, sz, "%s/%s.%s", certdir, name, ext) < sz);
}

static char *
file_load(const char *path)
{
	FILE  *f;
	char  *p;
	long   n;
	size_t got;

	CHECK((f = fopen(path, "rb")) != NULL);
	CHECK(fseek(f, 0, SEEK_END) == 0);
	CHECK((n = ftell(f)) >= 0);
	CHECK(fseek(f, 0, SEEK_SET) == 0);
	CHECK((p = malloc((size_t)n + 1)) != NULL);
	got = fread(p, 1, (size_t)n, f);
	CHECK(got == (size_t)n);
	p[n] = '\0';
	fclose(f);
	return p;
}

/* name is relative to certdir without extension: "ca", "devices/x". */
static X509 *
cert_load(const char *name)
{
	char  path[PATH_MAX];
	BIO  *b;
	X509 *x;

	path_of(path, sizeof(path), name, "pem");
	CHECK((b = BIO_new_file(path, "r")) != NULL);
	CHECK((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL);
	BIO_free(b);
	return x;
}

static EVP_PKEY *
key_load(const char *name)
{
	char	  path[PATH_MAX];
	BIO	 *b;
	EVP_PKEY *k;

	path_of(path, sizeof(path), name, "key");
	CHECK((b = BIO_new_file(path, "r")) != NULL);
	CHECK((k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) != NULL);
	BIO_free(b);
	return k;
}

static void
cert_hash(const char *name, unsigned char out[32])
{
	X509	      *x = cert_load(name);
	unsigned char *der = NULL;
	int	       n;

	CHECK((n = i2d_X509(x, &der)) > 0);
	SHA256(der, (size_t)n, out);
	OPENSSL_free(der);
	X509_free(x);
}

/* The PEM file of name, escaped as nginx's $ssl_client_escaped_cert. */
static char *
cert_escaped(const char *name)
{
	static const char hexd[] = "0123456789ABCDEF";
	char		  path[PATH_MAX];
	char		 *pem, *out, *o;
	const char	 *p;

	path_of(path, sizeof(path), name, "pem");
	pem = file_load(path);
	CHECK((out = malloc(strlen(pem) * 3 + 1)) != NULL);
	for (o = out, p = pem; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~')
			*o++ = (char)c;
		else {
			*o++ = '%';
			*o++ = hexd[c >> 4];
			*o++ = hexd[c & 15];
		}
	}
	*o = '\0';
	free(pem);
	return out;
}

/* The RFC 9440 Client-Cert form ":base64(DER):". */
static char *
cert_rfc9440(const char *name)
{
	X509	      *x = cert_load(name);
	unsigned char *der = NULL;
	char	      *b64, *out;
	size_t	       n;
	int	       dlen;

	CHECK((dlen = i2d_X509(x, &der)) > 0);
	CHECK((b64 = base64_encode(der, (size_t)dlen)) != NULL);
	n = strlen(b64) + 3;
	CHECK((out = malloc(n)) != NULL);
	CHECK((size_t)snprintf(out, n, ":%s:", b64) < n);
	free(b64);
	OPENSSL_free(der);
	X509_free(x);
	return out;
}

static char *
cms_base64(CMS_ContentInfo *cms)
{
	unsigned char *der = NULL;
	char	      *b64;
	int	       n;

	CHECK((n = i2d_CMS_ContentInfo(cms, &der)) > 0);
	CHECK((b64 = base64_encode(der, (size_t)n)) != NULL);
	OPENSSL_free(der);
	return b64;
}

/* An Mdm-Signature by name over body, with extra CMS_sign flags. */
static char *
sign_flags(const char *name, const void *body, size_t len, unsigned flags)
{
	X509		*x = cert_load(name);
	EVP_PKEY	*k = key_load(name);
	BIO		*in;
	CMS_ContentInfo *cms;
	char		*b64;

	CHECK((in = BIO_new_mem_buf(len ? body : "", (int)len)) != NULL);
	CHECK((cms = CMS_sign(x, k, NULL, in, CMS_BINARY | flags)) != NULL);
	b64 = cms_base64(cms);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	EVP_PKEY_free(k);
	X509_free(x);
	return b64;
}

static char *
sign(const char *name, const void *body, size_t len)
{
	return sign_flags(name, body, len, CMS_DETACHED);
}

/* Two signers over the same body. */
static char *
sign_two(const char *n1, const char *n2, const void *body, size_t len)
{
	X509		*x1 = cert_load(n1), *x2 = cert_load(n2);
	EVP_PKEY	*k1 = key_load(n1), *k2 = key_load(n2);
	BIO		*in;
	CMS_ContentInfo *cms;
	char		*b64;

	CHECK((in = BIO_new_mem_buf(body, (int)len)) != NULL);
	CHECK((cms = CMS_sign(NULL, NULL, NULL, NULL,
		   CMS_PARTIAL | CMS_DETACHED | CMS_BINARY)) != NULL);
	CHECK(CMS_add1_signer(cms, x1, k1, NULL, CMS_BINARY) != NULL);
	CHECK(CMS_add1_signer(cms, x2, k2, NULL, CMS_BINARY) != NULL);
	CHECK(CMS_final(cms, in, NULL, CMS_DETACHED | CMS_BINARY) > 0);
	b64 = cms_base64(cms);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	X509_free(x1);
	X509_free(x2);
	return b64;
}

/* identity_verify, checking that the OpenSSL error queue is left empty. */
static int
verify(const char *cert, const char *v, const char *sig, const void *body,
    size_t len, unsigned char hash[32], const char **reason)
{
	int rc;

	rc = identity_verify(ca, cert, v, sig, body, len, hash, reason);
	CHECK(ERR_peek_error() == 0);
	if (rc == 0)
		CHECK(*reason == NULL);
	else
		CHECK(*reason != NULL);
	return rc;
}

static const char body[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
			   "<plist version=\"1.0\"><dict><key>MessageType</"
			   "key><string>Authenticate</string></dict></plist>\n";

/* An Mdm-Signature by name that also carries extra's certificate. */
static char *
sign_extra(const char *name, const char *extra, unsigned flags)
{
	X509		*x = cert_load(name), *e = cert_load(extra);
	EVP_PKEY	*k = key_load(name);
	STACK_OF(X509)	*certs = sk_X509_new_null();
	BIO		*in;
	CMS_ContentInfo *cms;
	char		*b64;

	CHECK(certs != NULL && sk_X509_push(certs, e) > 0);
	CHECK((in = BIO_new_mem_buf(body, (int)sizeof(body) - 1)) != NULL);
	CHECK((cms = CMS_sign(x, k, certs, in,
		   CMS_DETACHED | CMS_BINARY | flags)) != NULL);
	b64 = cms_base64(cms);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	sk_X509_free(certs);
	EVP_PKEY_free(k);
	X509_free(e);
	X509_free(x);
	return b64;
}

static void
test_ca_load(void)
{
	struct identity_ca *c = NULL;
	char		    path[PATH_MAX];

	CHECK(identity_ca_load("/nonexistent/ca.pem", &c) == -1);
	CHECK(c == NULL);
	CHECK(ERR_peek_error() == 0);

	/* A file with no certificate (a key). */
	path_of(path, sizeof(path), "devices/device1", "key");
	CHECK(identity_ca_load(path, &c) == -1);
	CHECK(c == NULL);

	path_of(path, sizeof(path), "ca", "pem");
	CHECK(identity_ca_load(path, &ca) == 0);
	CHECK(ca != NULL);
	identity_ca_free(NULL);
}

/* A bundle of two CAs trusts the devices of both. */
static void
test_bundle(void)
{
	struct identity_ca *c = NULL, *save = ca;
	char		    path[PATH_MAX], *a, *b, *esc;
	FILE		   *f;
	unsigned char	    hash[32];
	const char	   *reason;

	path_of(path, sizeof(path), "ca", "pem");
	a = file_load(path);
	path_of(path, sizeof(path), "other-ca", "pem");
	b = file_load(path);
	path_of(path, sizeof(path), "bundle", "pem");
	CHECK((f = fopen(path, "w")) != NULL);
	CHECK(fputs(a, f) >= 0 && fputs(b, f) >= 0);
	CHECK(fclose(f) == 0);
	CHECK(identity_ca_load(path, &c) == 0);
	ca = c;
	esc = cert_escaped("devices/foreign");
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 0);
	free(esc);
	esc = cert_escaped("devices/device1");
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 0);
	free(esc);
	ca = save;
	identity_ca_free(c);
	free(a);
	free(b);
}

/* The certificate nginx forwards. */
static void
test_escaped(void)
{
	unsigned char hash[32], want[32];
	const char   *reason;
	char	     *esc, *big, path[PATH_MAX], *pem;

	cert_hash("devices/device1", want);
	esc = cert_escaped("devices/device1");
	memset(hash, 0xaa, sizeof(hash));
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 0);
	CHECK(memcmp(hash, want, 32) == 0);
	/* No verdict from nginx (NULL, empty, NONE): verified here. */
	CHECK_EQ(verify(esc, NULL, NULL, NULL, 0, hash, &reason), 0);
	CHECK_EQ(verify(esc, "", NULL, NULL, 0, hash, &reason), 0);
	CHECK_EQ(verify(esc, "NONE", NULL, NULL, 0, hash, &reason), 0);
	CHECK(memcmp(hash, want, 32) == 0);

	/* nginx said no. */
	memset(hash, 0xaa, sizeof(hash));
	CHECK_EQ(verify(esc, "FAILED:certificate has expired", NULL, NULL, 0,
		     hash, &reason),
	    403);
	CHECK_STR(reason, "nginx client verification failed");
	CHECK(hash[0] == 0 && hash[31] == 0);
	CHECK_EQ(verify(esc, "success", NULL, NULL, 0, hash, &reason), 403);
	/* The TLS certificate wins over a (bad) signature. */
	CHECK_EQ(
	    verify(esc, "SUCCESS", "!!", body, sizeof(body) - 1, hash, &reason),
	    0);
	/* Verified results are cached per CA: another CA does not see them. */
	{
		struct identity_ca *other = NULL;

		path_of(path, sizeof(path), "other-ca", "pem");
		CHECK_EQ(identity_ca_load(path, &other), 0);
		CHECK_EQ(identity_verify(other, esc, "SUCCESS", NULL, NULL, 0,
			     hash, &reason),
		    403);
		identity_ca_free(other);
		CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 0);
		CHECK(memcmp(hash, want, 32) == 0);
	}
	free(esc);

	/* Plain PEM (nothing escaped) is read as well. */
	path_of(path, sizeof(path), "devices/device2", "pem");
	pem = file_load(path);
	CHECK_EQ(verify(pem, "SUCCESS", NULL, NULL, 0, hash, &reason), 0);
	free(pem);

	/* A device certificate without extendedKeyUsage. */
	esc = cert_escaped("devices/noeku");
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 0);
	free(esc);

	esc = cert_escaped("devices/foreign");
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 403);
	CHECK_STR(reason, "certificate issued by CN=picomdm demo other CA,O=picomdm demo, "
			  "which is not in --device-ca");
	free(esc);

	esc = cert_escaped("server");
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 403);
	CHECK_STR(reason, "certificate issued by CN=picomdm demo server CA,O=picomdm demo, "
			  "which is not in --device-ca");
	free(esc);

	esc = cert_escaped("devices/expired");
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 403);
	CHECK_STR(reason, "certificate expired");
	free(esc);

	esc = cert_escaped("devices/future");
	CHECK_EQ(verify(esc, NULL, NULL, NULL, 0, hash, &reason), 403);
	CHECK_STR(reason, "certificate not yet valid");
	free(esc);

	/* The CA itself is trusted but is no device identity. */
	esc = cert_escaped("ca");
	CHECK_EQ(verify(esc, NULL, NULL, NULL, 0, hash, &reason), 403);
	CHECK_STR(reason, "certificate is a CA certificate");
	free(esc);

	CHECK_EQ(verify("-----BEGIN%20CERTIFICATE-----%0AMIIBgarbage%0A-----"
			"END%20CERTIFICATE-----%0A",
		     "SUCCESS", NULL, NULL, 0, hash, &reason),
	    400);
	CHECK_STR(reason, "client certificate does not parse");
	CHECK_EQ(verify("garbage", NULL, NULL, NULL, 0, hash, &reason), 400);
	CHECK_STR(reason, "client certificate does not parse");
	CHECK_EQ(verify("%zz", NULL, NULL, NULL, 0, hash, &reason), 400);
	CHECK_STR(reason, "client certificate is not URL-escaped");
	CHECK_EQ(verify("%00", NULL, NULL, NULL, 0, hash, &reason), 400);

	/* Over the cap before anything is decoded. */
	CHECK((big = malloc(16 * 1024 + 2)) != NULL);
	memset(big, 'A', 16 * 1024 + 1);
	big[16 * 1024 + 1] = '\0';
	CHECK_EQ(verify(big, NULL, NULL, NULL, 0, hash, &reason), 400);
	CHECK_STR(reason, "client certificate too large");
	free(big);
}

/* RFC 9440 Client-Cert ":base64(DER):". */
static void
test_rfc9440(void)
{
	unsigned char hash[32], want[32];
	const char   *reason;
	char	     *c;
	size_t	      n;

	cert_hash("devices/device2", want);
	c = cert_rfc9440("devices/device2");
	CHECK_EQ(verify(c, "SUCCESS", NULL, NULL, 0, hash, &reason), 0);
	CHECK(memcmp(hash, want, 32) == 0);
	/* Without the closing colon. */
	n = strlen(c);
	c[n - 1] = '\0';
	CHECK_EQ(verify(c, NULL, NULL, NULL, 0, hash, &reason), 400);
	CHECK_STR(reason, "client certificate is not base64");
	free(c);

	c = cert_rfc9440("devices/expired");
	CHECK_EQ(verify(c, NULL, NULL, NULL, 0, hash, &reason), 403);
	CHECK_STR(reason, "certificate expired");
	free(c);

	CHECK_EQ(verify(":", NULL, NULL, NULL, 0, hash, &reason), 400);
	CHECK_EQ(verify("::", NULL, NULL, NULL, 0, hash, &reason), 400);
	CHECK_EQ(verify(":!!!!:", NULL, NULL, NULL, 0, hash, &reason), 400);
	CHECK_STR(reason, "client certificate is not base64");
	CHECK_EQ(verify(":AAAA:", NULL, NULL, NULL, 0, hash, &reason), 400);
	CHECK_STR(reason, "client certificate does not parse");
}

/*
 * A signer verified once is recognised from then on by its certificate's
 * bytes, without decoding it again (the fast path); that path accepts
 * exactly what the full path accepts and names the same certificate.
 */
static void
test_signature_fast(void)
{
	struct identity_ca *saved = ca;
	unsigned char	    hash[32], want1[32], want2[32];
	const char	   *reason;
	char		    path[PATH_MAX], *sig, *mixed, *borrowed;
	unsigned long	    n, nc;
	int		    k;

	path_of(path, sizeof(path), "ca", "pem");
	CHECK(identity_ca_load(path, &ca) == 0);
	cert_hash("devices/device1", want1);
	cert_hash("devices/device2", want2);
	sig = sign("devices/device1", body, sizeof(body) - 1);
	CHECK_EQ(identity_sig_fast_count(ca), 0);
	CHECK_EQ(
	    verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason), 0);
	CHECK_EQ(identity_sig_fast_count(ca), 0); /* first time: full */
	memset(hash, 0, sizeof(hash));
	CHECK_EQ(
	    verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason), 0);
	CHECK_EQ(identity_sig_fast_count(ca), 1);
	CHECK_EQ(identity_cms_fast_count(ca), 1);
	CHECK(memcmp(hash, want1, 32) == 0);
	/* A known signer and an altered body: refused, same reason. */
	{
		char alt[sizeof(body)];

		memcpy(alt, body, sizeof(body));
		alt[70] ^= 4;
		CHECK_EQ(verify(NULL, NULL, sig, alt, sizeof(body) - 1, hash,
			     &reason),
		    400);
		CHECK_STR(reason, "Mdm-Signature does not verify");
		CHECK_EQ(identity_sig_fast_count(ca), 1);
	}
	free(sig);

	/* device2 signs and also carries device1's (known) certificate:
	 * the signer is device2, by the full path and then the fast one. */
	mixed = sign_extra("devices/device2", "devices/device1", 0);
	/* The same, but without the signer's own certificate. */
	borrowed = sign_extra("devices/device2", "devices/device1",
	    CMS_NOCERTS);
	/* Only device1's certificate, which did not sign: never device1. */
	n = identity_sig_fast_count(ca);
	CHECK_EQ(verify(NULL, NULL, borrowed, body, sizeof(body) - 1, hash,
		     &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature has no signer certificate");
	CHECK_EQ(identity_sig_fast_count(ca), n);
	CHECK_EQ(verify(NULL, NULL, mixed, body, sizeof(body) - 1, hash,
		     &reason),
	    0);
	CHECK(memcmp(hash, want2, 32) == 0);
	CHECK_EQ(identity_sig_fast_count(ca), n);
	memset(hash, 0, sizeof(hash));
	CHECK_EQ(verify(NULL, NULL, mixed, body, sizeof(body) - 1, hash,
		     &reason),
	    0);
	CHECK(memcmp(hash, want2, 32) == 0);
	CHECK_EQ(identity_sig_fast_count(ca), n + 1);
	/* Now both are known: still not device1 without device2's cert. */
	CHECK_EQ(verify(NULL, NULL, borrowed, body, sizeof(body) - 1, hash,
		     &reason),
	    400);
	CHECK_EQ(identity_sig_fast_count(ca), n + 1);
	free(mixed);
	free(borrowed);
	/* Both known now. Each signs with both certificates, by issuer and
	 * serial and by key identifier: the identity is the signer's, by
	 * the fast path. A message lists its certificates in DER order, so
	 * one signer comes first and the other last, whichever order this
	 * run's certificates sort in: taking any known certificate of the
	 * message but the signer's is seen. Without the signer's own
	 * certificate the message is refused, fast or not: a known signer
	 * counts only when the message carries its certificate. */
	for (k = 0; k < 4; k++) {
		const char	    *s = k & 1 ? "devices/device2" :
						 "devices/device1";
		const char	    *o = k & 1 ? "devices/device1" :
						 "devices/device2";
		const unsigned char *want = k & 1 ? want2 : want1;
		unsigned	     flags = k & 2 ? CMS_USE_KEYID : 0;

		mixed = sign_extra(s, o, flags);
		borrowed = sign_extra(s, o, flags | CMS_NOCERTS);
		n = identity_sig_fast_count(ca);
		nc = identity_cms_fast_count(ca);
		memset(hash, 0, sizeof(hash));
		CHECK_EQ(verify(NULL, NULL, mixed, body, sizeof(body) - 1,
			     hash, &reason),
		    0);
		CHECK(memcmp(hash, want, 32) == 0);
		CHECK_EQ(identity_sig_fast_count(ca), n + 1);
		/* By cms_fast.c itself, not by CMS_verify after it
		 * declined: a fast check that took the other candidate
		 * would decline here and still give the right identity. */
		CHECK_EQ(identity_cms_fast_count(ca), nc + 1);
		CHECK_EQ(verify(NULL, NULL, borrowed, body, sizeof(body) - 1,
			     hash, &reason),
		    400);
		CHECK_STR(reason, "Mdm-Signature has no signer certificate");
		CHECK_EQ(identity_sig_fast_count(ca), n + 1);
		CHECK(memcmp(hash, want1, 32) != 0 &&
		    memcmp(hash, want2, 32) != 0);
		free(mixed);
		free(borrowed);
	}
	identity_ca_free(ca);
	ca = saved;
}

/* The Mdm-Signature header. */
static void
test_signature(void)
{
	unsigned char	 hash[32], want[32];
	const char	*reason;
	char		*sig, *bad, *big;
	CMS_ContentInfo *cms;
	BIO		*in;

	cert_hash("devices/device1", want);
	sig = sign("devices/device1", body, sizeof(body) - 1);
	memset(hash, 0xaa, sizeof(hash));
	CHECK_EQ(
	    verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason), 0);
	CHECK(memcmp(hash, want, 32) == 0);
	/* Empty certificate and NONE: nginx had no TLS certificate. */
	CHECK_EQ(
	    verify("", "NONE", sig, body, sizeof(body) - 1, hash, &reason), 0);
	CHECK(memcmp(hash, want, 32) == 0);

	/* Exactly the body: altered, shortened, lengthened. */
	{
		char alt[sizeof(body)];

		memcpy(alt, body, sizeof(body));
		alt[60] ^= 1;
		CHECK_EQ(verify(NULL, NULL, sig, alt, sizeof(body) - 1, hash,
			     &reason),
		    400);
		CHECK_STR(reason, "Mdm-Signature does not verify");
		CHECK(hash[0] == 0 && hash[31] == 0);
	}
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 2, hash, &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature does not verify");
	CHECK_EQ(
	    verify(NULL, NULL, sig, body, sizeof(body), hash, &reason), 400);
	CHECK_EQ(verify(NULL, NULL, sig, NULL, 0, hash, &reason), 400);
	/* nginx failed even though there is a signature. */
	CHECK_EQ(verify(NULL, "FAILED:unable to verify", sig, body,
		     sizeof(body) - 1, hash, &reason),
	    403);
	/* Base64 with line breaks is fine. */
	{
		size_t n = strlen(sig);
		char  *wrapped;

		CHECK((wrapped = malloc(n + 2)) != NULL);
		memcpy(wrapped, sig, 40);
		wrapped[40] = '\n';
		memcpy(wrapped + 41, sig + 40, n - 40 + 1);
		CHECK_EQ(verify(NULL, NULL, wrapped, body, sizeof(body) - 1,
			     hash, &reason),
		    0);
		free(wrapped);
	}
	free(sig);

	/* An empty body, as signed. */
	sig = sign("devices/device2", NULL, 0);
	CHECK_EQ(verify(NULL, NULL, sig, NULL, 0, hash, &reason), 0);
	CHECK_EQ(verify(NULL, NULL, sig, "x", 1, hash, &reason), 400);
	free(sig);

	sig = sign("devices/noeku", body, sizeof(body) - 1);
	CHECK_EQ(
	    verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason), 0);
	free(sig);

	sig = sign("devices/foreign", body, sizeof(body) - 1);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    403);
	CHECK_STR(reason, "certificate issued by CN=picomdm demo other CA,O=picomdm demo, "
			  "which is not in --device-ca");
	free(sig);

	sig = sign("devices/expired", body, sizeof(body) - 1);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    403);
	CHECK_STR(reason, "certificate expired");
	free(sig);

	sig = sign("devices/future", body, sizeof(body) - 1);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    403);
	CHECK_STR(reason, "certificate not yet valid");
	free(sig);

	/* Signed by the CA key: a valid signature, but no device. */
	sig = sign("ca", body, sizeof(body) - 1);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    403);
	free(sig);

	/* No signer certificate in the message. */
	sig = sign_flags("devices/device1", body, sizeof(body) - 1,
	    CMS_DETACHED | CMS_NOCERTS);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature has no signer certificate");
	free(sig);

	/* Content inside instead of detached. */
	sig = sign_flags("devices/device1", body, sizeof(body) - 1, 0);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature is not detached");
	free(sig);

	/* Without signed attributes (a bare PKCS#7-style signature). */
	sig = sign_flags("devices/device1", body, sizeof(body) - 1,
	    CMS_DETACHED | CMS_NOATTR);
	CHECK_EQ(
	    verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason), 0);
	CHECK(memcmp(hash, want, 32) == 0);
	free(sig);

	sig = sign_two(
	    "devices/device1", "devices/device2", body, sizeof(body) - 1);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature must have exactly one signer");
	free(sig);

	/* A CMS message that is not SignedData. */
	CHECK((in = BIO_new_mem_buf(body, (int)sizeof(body) - 1)) != NULL);
	CHECK((cms = CMS_data_create(in, CMS_BINARY)) != NULL);
	sig = cms_base64(cms);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature is not a CMS SignedData");
	free(sig);
	CMS_ContentInfo_free(cms);
	BIO_free(in);

	CHECK_EQ(verify(NULL, NULL, "not base64!", body, sizeof(body) - 1, hash,
		     &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature is not base64");
	CHECK_EQ(
	    verify(NULL, NULL, "====", body, sizeof(body) - 1, hash, &reason),
	    400);
	CHECK_EQ(
	    verify(NULL, NULL, "AAAA", body, sizeof(body) - 1, hash, &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature is not a CMS message");

	/* Trailing bytes after the DER. */
	sig = sign("devices/device1", body, sizeof(body) - 1);
	{
		unsigned char *der;
		size_t	       n;

		CHECK((der = base64_decode(sig, strlen(sig), &n)) != NULL);
		CHECK((der = realloc(der, n + 2)) != NULL);
		der[n] = 0;
		der[n + 1] = 0;
		CHECK((bad = base64_encode(der, n + 2)) != NULL);
		CHECK_EQ(verify(NULL, NULL, bad, body, sizeof(body) - 1, hash,
			     &reason),
		    400);
		CHECK_STR(reason, "Mdm-Signature is not a CMS message");
		free(bad);
		free(der);
	}
	free(sig);

	CHECK((big = malloc(32 * 1024 + 2)) != NULL);
	memset(big, 'A', 32 * 1024 + 1);
	big[32 * 1024 + 1] = '\0';
	CHECK_EQ(verify(NULL, NULL, big, body, sizeof(body) - 1, hash, &reason),
	    400);
	CHECK_STR(reason, "Mdm-Signature too large");
	free(big);

	/* Nothing at all. */
	CHECK_EQ(
	    verify(NULL, NULL, NULL, body, sizeof(body) - 1, hash, &reason),
	    400);
	CHECK_STR(reason, "no client certificate, and nginx passes no "
			  "PICOMDM_CLIENT_VERIFY parameter (see nginx/README.md)");
	CHECK_EQ(
	    verify("", "NONE", "", body, sizeof(body) - 1, hash, &reason), 400);
	CHECK_STR(reason, "no client certificate");
	CHECK_EQ(verify(NULL, "SUCCESS", NULL, NULL, 0, hash, &reason), 400);
	CHECK_STR(reason, "nginx verified a client certificate but passes no "
			  "PICOMDM_CLIENT_CERT parameter (see nginx/README.md)");
}

/*
 * A device under an intermediate CA: the Mdm-Signature may carry the
 * intermediate; nginx forwards only the leaf, so the bundle must hold the
 * intermediate, which alone is enough (a partial chain).
 */
static void
test_chain(void)
{
	struct identity_ca *c = NULL, *save = ca;
	X509		   *x, *xi;
	EVP_PKEY	   *k;
	BIO		   *in;
	CMS_ContentInfo	   *cms;
	unsigned char	    hash[32], want[32];
	const char	   *reason;
	char		   *esc, *sig, path[PATH_MAX];

	cert_hash("devices/chained", want);
	esc = cert_escaped("devices/chained");
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 403);

	CHECK_STR(reason, "certificate issued by CN=picomdm demo device "
			  "intermediate CA,O=picomdm demo, which is not in "
			  "--device-ca");

	/* Signed without the intermediate: no chain to the root. */
	sig = sign("devices/chained", body, sizeof(body) - 1);
	CHECK_EQ(verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason),
	    403);
	CHECK_STR(reason, "certificate issued by CN=picomdm demo device "
			  "intermediate CA,O=picomdm demo, which is not in "
			  "--device-ca");
	free(sig);

	/*
	 * With the intermediate in the message: refused all the same, as on
	 * the TLS path, where nginx forwards the leaf only. The same
	 * --device-ca file behaves the same on both paths.
	 */
	x = cert_load("devices/chained");
	xi = cert_load("device-int-ca");
	k = key_load("devices/chained");
	CHECK((in = BIO_new_mem_buf(body, (int)sizeof(body) - 1)) != NULL);
	CHECK((cms = CMS_sign(x, k, NULL, NULL,
		   CMS_PARTIAL | CMS_DETACHED | CMS_BINARY)) != NULL);
	CHECK(CMS_add1_cert(cms, xi) > 0);
	CHECK(CMS_final(cms, in, NULL, CMS_DETACHED | CMS_BINARY) > 0);
	sig = cms_base64(cms);
	CHECK_EQ(
	    verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason), 403);
	CHECK_STR(reason, "certificate issued by CN=picomdm demo device "
			  "intermediate CA,O=picomdm demo, which is not in "
			  "--device-ca");
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	EVP_PKEY_free(k);
	X509_free(xi);
	X509_free(x);

	/* A bundle of the intermediate only. */
	path_of(path, sizeof(path), "device-int-ca", "pem");
	CHECK(identity_ca_load(path, &c) == 0);
	ca = c;
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 0);
	CHECK(memcmp(hash, want, 32) == 0);
	CHECK_EQ(
	    verify(NULL, NULL, sig, body, sizeof(body) - 1, hash, &reason), 0);
	free(esc);
	/* Devices of the root are not trusted by it. */
	esc = cert_escaped("devices/device1");
	CHECK_EQ(verify(esc, "SUCCESS", NULL, NULL, 0, hash, &reason), 403);
	free(esc);
	free(sig);
	ca = save;
	identity_ca_free(c);
}

/* Worker threads verifying at once share one identity_ca. */
struct worker {
	const char   *good, *expired, *sig;
	unsigned char want[32];
	int	      failures;
	int	      queue_left;
};

static void *
worker_run(void *arg)
{
	struct worker *w = arg;
	unsigned char  hash[32];
	const char    *reason;
	int	       i;

	for (i = 0; i < 200; i++) {
		switch (i % 3) {
		case 0:
			if (identity_verify(ca, w->good, "SUCCESS", NULL, NULL,
				0, hash, &reason) != 0 ||
			    memcmp(hash, w->want, 32) != 0)
				w->failures++;
			break;
		case 1:
			if (identity_verify(ca, w->expired, "SUCCESS", NULL,
				NULL, 0, hash, &reason) != 403 ||
			    strcmp(reason, "certificate expired") != 0)
				w->failures++;
			break;
		default:
			if (identity_verify(ca, NULL, NULL, w->sig, body,
				sizeof(body) - 1, hash, &reason) != 0 ||
			    memcmp(hash, w->want, 32) != 0)
				w->failures++;
			break;
		}
		if (ERR_peek_error() != 0)
			w->queue_left++;
	}
	return NULL;
}

static void
test_threads(void)
{
	struct worker w[4];
	pthread_t     t[4];
	char	     *good, *expired, *sig;
	size_t	      i;

	good = cert_escaped("devices/device1");
	expired = cert_escaped("devices/expired");
	sig = sign("devices/device1", body, sizeof(body) - 1);
	for (i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].good = good;
		w[i].expired = expired;
		w[i].sig = sig;
		cert_hash("devices/device1", w[i].want);
		CHECK(pthread_create(&t[i], NULL, worker_run, &w[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		CHECK(pthread_join(t[i], NULL) == 0);
		CHECK_EQ(w[i].failures, 0);
		CHECK_EQ(w[i].queue_left, 0);
	}
	free(good);
	free(expired);
	free(sig);
}

/* ---- identity_authorize against a store ---- */

struct az {
	const char   *id;
	unsigned char hash[32];
	int	      authenticate, retro;
	const char   *reason;
};

static int
az_op(struct store_txn *txn, void *arg)
{
	struct az *a = arg;

	a->reason = NULL;
	return identity_authorize(
	    txn, a->id, a->hash, a->authenticate, a->retro, &a->reason);
}

/* Authorize id with the hash made of byte h; *reason if refused. */
static int
az(struct store *st, const char *id, int h, int authenticate, int retro,
    const char **reason)
{
	struct az a;
	int	  rc;

	memset(&a, 0, sizeof(a));
	a.id = id;
	memset(a.hash, h, sizeof(a.hash));
	a.authenticate = authenticate;
	a.retro = retro;
	rc = store_write(st, az_op, &a);
	*reason = a.reason;
	if (rc == 0)
		CHECK(a.reason == NULL);
	return rc;
}

struct look {
	const char *id;
	int	    h;
	int	    dev_rc, has_cert, current;
	char	   *serial;
	uint64_t    created_at;
	int	    cert_rc;
	char	   *bound;
};

static int
look_op(struct store_txn *txn, void *arg)
{
	struct look	    *l = arg;
	struct store_device *d = NULL;
	unsigned char	     hash[32];

	memset(hash, l->h, sizeof(hash));
	l->dev_rc = store_device_get(txn, l->id, &d);
	if (l->dev_rc == 0) {
		l->has_cert = d->has_cert;
		l->current = memcmp(d->cert_hash, hash, 32) == 0;
		l->serial = d->serial ? strdup(d->serial) : NULL;
		l->created_at = d->created_at;
		store_device_free(d);
	}
	l->bound = NULL;
	l->cert_rc = store_cert_get(txn, hash, &l->bound);
	return 0;
}

static void
look(struct store *st, const char *id, int h, struct look *l)
{
	memset(l, 0, sizeof(*l));
	l->id = id;
	l->h = h;
	CHECK_EQ(store_read(st, look_op, l), 0);
}

static void
look_free(struct look *l)
{
	free(l->serial);
	free(l->bound);
}

static int
dev_put_op(struct store_txn *txn, void *arg)
{
	struct store_device *d = arg;

	return store_device_put(txn, d);
}

/* A device record as the check-in handler leaves it, without a cert. */
static void
dev_put(struct store *st, const char *id, const char *serial)
{
	struct store_device d;
	char		    idb[64], serialb[64];

	memset(&d, 0, sizeof(d));
	CHECK((size_t)snprintf(idb, sizeof(idb), "%s", id) < sizeof(idb));
	CHECK((size_t)snprintf(serialb, sizeof(serialb), "%s", serial) <
	    sizeof(serialb));
	d.id = idb;
	d.serial = serialb;
	d.created_at = 1;
	CHECK_EQ(store_write(st, dev_put_op, &d), 0);
}

static void
test_authorize(void)
{
	struct store	 *st = NULL;
	struct store_opts opts;
	struct look	  l;
	const char	 *reason;
	char		  dir[PATH_MAX];

	CHECK(
	    (size_t)snprintf(dir, sizeof(dir), "%s/db", tmpdir) < sizeof(dir));
	CHECK(mkdir(dir, 0700) == 0);
	memset(&opts, 0, sizeof(opts));
	opts.nosync = 1;
	CHECK_EQ(store_open(dir, &opts, &st), 0);

	/* TokenUpdate before Authenticate. */
	CHECK_EQ(az(st, "dev1", 0x11, 0, 0, &reason), 403);
	CHECK_STR(reason, "certificate not bound to this enrollment");
	look(st, "dev1", 0x11, &l);
	CHECK_EQ(l.dev_rc, STORE_ENOTFOUND);
	CHECK_EQ(l.cert_rc, STORE_ENOTFOUND);
	look_free(&l);

	/* Authenticate binds and makes a minimal device record. */
	CHECK_EQ(az(st, "dev1", 0x11, 1, 0, &reason), 0);
	look(st, "dev1", 0x11, &l);
	CHECK_EQ(l.dev_rc, 0);
	CHECK(l.has_cert && l.current);
	CHECK(l.serial == NULL);
	CHECK(l.created_at != 0);
	CHECK_EQ(l.cert_rc, 0);
	CHECK_STR(l.bound, "dev1");
	look_free(&l);
	/* Then TokenUpdate, and Authenticate again (re-enrollment). */
	CHECK_EQ(az(st, "dev1", 0x11, 0, 0, &reason), 0);
	CHECK_EQ(az(st, "dev1", 0x11, 1, 0, &reason), 0);
	CHECK_EQ(az(st, "dev1", 0x11, 0, 1, &reason), 0);

	/* A new identity swapped in without Authenticate. */
	CHECK_EQ(az(st, "dev1", 0x22, 0, 0, &reason), 403);
	CHECK_STR(reason, "certificate not bound to this enrollment");
	CHECK_EQ(az(st, "dev1", 0x22, 0, 1, &reason), 403);
	CHECK_STR(reason, "certificate not bound to this enrollment");

	/* Another device presenting dev1's certificate. */
	CHECK_EQ(az(st, "dev2", 0x11, 1, 0, &reason), 403);
	CHECK_STR(reason, "certificate bound to another enrollment");
	CHECK_EQ(az(st, "dev2", 0x11, 0, 0, &reason), 403);
	CHECK_STR(reason, "certificate bound to another enrollment");
	CHECK_EQ(az(st, "dev2", 0x11, 0, 1, &reason), 403);
	look(st, "dev2", 0x11, &l);
	CHECK_EQ(l.dev_rc, STORE_ENOTFOUND);
	look_free(&l);

	/* Renewal: a new certificate on Authenticate; only it is valid. */
	CHECK_EQ(az(st, "dev1", 0x22, 1, 0, &reason), 0);
	CHECK_EQ(az(st, "dev1", 0x22, 0, 0, &reason), 0);
	CHECK_EQ(az(st, "dev1", 0x11, 0, 0, &reason), 403);
	CHECK_STR(reason, "certificate superseded by a renewal");
	CHECK_EQ(az(st, "dev1", 0x11, 1, 0, &reason), 403);
	CHECK_STR(reason, "certificate superseded by a renewal");
	CHECK_EQ(az(st, "dev1", 0x11, 0, 1, &reason), 403);
	look(st, "dev1", 0x22, &l);
	CHECK(l.has_cert && l.current);
	CHECK_STR(l.bound, "dev1");
	look_free(&l);
	/* The old certificate still belongs to dev1, not to anyone else. */
	CHECK_EQ(az(st, "dev3", 0x11, 1, 0, &reason), 403);
	CHECK_STR(reason, "certificate bound to another enrollment");

	/* Authenticate keeps what the check-in handler stored. */
	dev_put(st, "dev4", "SERIAL4");
	CHECK_EQ(az(st, "dev4", 0x44, 0, 0, &reason), 403);
	CHECK_EQ(az(st, "dev4", 0x44, 1, 0, &reason), 0);
	look(st, "dev4", 0x44, &l);
	CHECK(l.has_cert && l.current);
	CHECK_STR(l.serial, "SERIAL4");
	CHECK_EQ(l.created_at, 1);
	look_free(&l);

	/* Retroactive binding: a device with no binding yet (migrated). */
	dev_put(st, "dev5", "SERIAL5");
	CHECK_EQ(az(st, "dev5", 0x55, 0, 0, &reason), 403);
	CHECK_STR(reason, "certificate not bound to this enrollment");
	CHECK_EQ(az(st, "dev5", 0x22, 0, 1, &reason), 403); /* dev1's */
	CHECK_STR(reason, "certificate bound to another enrollment");
	CHECK_EQ(az(st, "dev5", 0x55, 0, 1, &reason), 0);
	look(st, "dev5", 0x55, &l);
	CHECK(l.has_cert && l.current);
	CHECK_STR(l.serial, "SERIAL5");
	CHECK_STR(l.bound, "dev5");
	look_free(&l);
	CHECK_EQ(az(st, "dev5", 0x55, 0, 0, &reason), 0);
	/* Once bound, retro binds nothing more. */
	CHECK_EQ(az(st, "dev5", 0x56, 0, 1, &reason), 403);
	/* Retro never creates a device. */
	CHECK_EQ(az(st, "dev6", 0x66, 0, 1, &reason), 403);
	look(st, "dev6", 0x66, &l);
	CHECK_EQ(l.dev_rc, STORE_ENOTFOUND);
	CHECK_EQ(l.cert_rc, STORE_ENOTFOUND);
	look_free(&l);

	CHECK_EQ(az(st, "", 0x66, 1, 0, &reason), 500);

	store_close(st);
}

int
main(void)
{
	make_certs();
	test_ca_load();
	test_bundle();
	test_escaped();
	test_rfc9440();
	test_signature();
	test_signature_fast();
	test_chain();
	test_threads();
	test_authorize();
	identity_ca_free(ca);
	CHECK(nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
	REGRESS_DONE();
}
