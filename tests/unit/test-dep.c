/*
 * test-dep.c - ADE pieces that need no network (include picomdm/dep.h):
 * RFC 3986 encoding, the OAuth base string URI, the HMAC-SHA1 signature
 * of GET /session against a known answer computed independently, the
 * key pair and certificate of "token new", and the decryption of server
 * tokens encrypted here to that certificate (right key, another key,
 * expired, malformed).
 *
 * The known answer was computed outside picomdm: Python's
 * urllib.parse.quote(s, safe="-._~") built the base string, and
 *   printf %s "$BASE" | openssl dgst -sha1 -hmac "$KEY" -binary | base64
 * signed it.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "picomdm/dep.h"
#include "picomdm/util.h"
#include "regress.h"

static char kat_ck[] = "CK_5e1f0c2a9b", kat_cs[] = "CS_7d/a+b=c d";
static char kat_at[] = "AT_0b3e~x", kat_as[] = "AS_4&9!q";
static const struct dep_oauth kat = {
    .consumer_key = kat_ck,
    .consumer_secret = kat_cs,
    .access_token = kat_at,
    .access_secret = kat_as,
};

static const char kat_base_https[] =
    "GET&https%3A%2F%2Fmdmenrollment.apple.com%2Fsession&oauth_consumer_"
    "key%3DCK_5e1f0c2a9b%26oauth_nonce%3D0123456789abcdef%26oauth_signatur"
    "e_method%3DHMAC-SHA1%26oauth_timestamp%3D1700000000%26oauth_token%3DA"
    "T_0b3e~x%26oauth_version%3D1.0";

static void
test_pct(void)
{
	char *s;

	s = dep_pct_encode("aZ09-._~ /+=&%\xc3\xa9");
	CHECK_STR(s, "aZ09-._~%20%2F%2B%3D%26%25%C3%A9");
	free(s);
	s = dep_pct_encode("");
	CHECK_STR(s, "");
	free(s);
}

static void
test_base_uri(void)
{
	static const char *const cases[][2] = {
	    {"https://mdmenrollment.apple.com",
		"https://mdmenrollment.apple.com/session"},
	    {"HTTPS://MdmEnrollment.Apple.COM:443/",
		"https://mdmenrollment.apple.com/session"},
	    {"http://127.0.0.1:8080", "http://127.0.0.1:8080/session"},
	    {"http://127.0.0.1:80", "http://127.0.0.1/session"},
	    {"https://127.0.0.1:80", "https://127.0.0.1:80/session"},
	    {"https://[::1]:8443/dep/", "https://[::1]:8443/dep/session"},
	    {"https://[::1]", "https://[::1]/session"},
	};
	size_t i;
	char  *s;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = dep_oauth_base_uri(cases[i][0], "/session");
		CHECK_STR(s, cases[i][1]);
		free(s);
	}
	CHECK(dep_oauth_base_uri("ftp://x", "/session") == NULL);
	CHECK(dep_oauth_base_uri("https://", "/session") == NULL);
	CHECK(dep_oauth_base_uri("https://h?q", "/session") == NULL);
	CHECK(dep_oauth_base_uri("mdmenrollment.apple.com", "/s") == NULL);
}

static void
test_oauth_kat(void)
{
	char *h, *base;

	h = dep_oauth_header(&kat, "https://mdmenrollment.apple.com/session",
	    "1700000000", "0123456789abcdef", &base);
	CHECK(h != NULL);
	CHECK_STR(base, kat_base_https);
	CHECK(
	    strstr(h, "oauth_signature=\"C9%2Fa9DsJ0gQwC3w58FnPOlaapzo%3D\"") !=
	    NULL);
	CHECK(strncmp(h, "OAuth realm=\"ADM\", ", 19) == 0);
	CHECK(strstr(h, "oauth_consumer_key=\"CK_5e1f0c2a9b\"") != NULL);
	CHECK(strstr(h, "oauth_token=\"AT_0b3e~x\"") != NULL);
	CHECK(strstr(h, "oauth_signature_method=\"HMAC-SHA1\"") != NULL);
	CHECK(strstr(h, "oauth_timestamp=\"1700000000\"") != NULL);
	CHECK(strstr(h, "oauth_nonce=\"0123456789abcdef\"") != NULL);
	CHECK(strstr(h, "oauth_version=\"1.0\"") != NULL);
	/* No secret in the header. */
	CHECK(strstr(h, "CS_") == NULL && strstr(h, "AS_") == NULL);
	free(h);
	free(base);
	/* The URI is part of what is signed. */
	h = dep_oauth_header(&kat, "http://127.0.0.1:8080/session",
	    "1700000000", "0123456789abcdef", NULL);
	CHECK(strstr(h, "oauth_signature=\"0DXhNCMVvhMPr1bliHKXvUKpAhk%3D\"") !=
	    NULL);
	free(h);
}

static X509 *
cert_of(const char *pem)
{
	BIO  *b = BIO_new_mem_buf(pem, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);

	BIO_free(b);
	return x;
}

/*
 * What Apple sends: an S/MIME envelope (SMIME_write_CMS, as `openssl
 * smime -encrypt` writes) to cert_pem of a MIME text part whose body is
 * the JSON between BEGIN/END MESSAGE lines, wrapped at 64 columns.
 * Caller frees.
 */
static char *
make_p7m(const char *cert_pem, const char *json)
{
	struct buf m = {0};
	STACK_OF(X509) *certs = sk_X509_new_null();
	X509		*x = cert_of(cert_pem);
	BIO		*in, *out = BIO_new(BIO_s_mem());
	CMS_ContentInfo *cms;
	char		*data, *s;
	long		 n;
	size_t		 i, len = strlen(json);

	CHECK(x != NULL && certs != NULL && out != NULL);
	CHECK(buf_printf(&m,
		  "Content-Type: text/plain;charset=UTF-8\r\n"
		  "Content-Transfer-Encoding: 7bit\r\n\r\n"
		  "-----BEGIN MESSAGE-----\r\n") == 0);
	for (i = 0; i < len; i += 64) {
		CHECK(
		    buf_append(&m, json + i, len - i < 64 ? len - i : 64) == 0);
		CHECK(buf_append(&m, "\r\n", 2) == 0);
	}
	CHECK(buf_printf(&m, "-----END MESSAGE-----\r\n") == 0);
	CHECK(sk_X509_push(certs, x) > 0);
	in = BIO_new_mem_buf(m.p, (int)m.len);
	cms = CMS_encrypt(certs, in, EVP_aes_256_cbc(), CMS_BINARY);
	CHECK(cms != NULL);
	CHECK(SMIME_write_CMS(out, cms, NULL, CMS_BINARY) == 1);
	n = BIO_get_mem_data(out, &data);
	CHECK(n > 0 && (s = malloc((size_t)n + 1)) != NULL);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	BIO_free(out);
	sk_X509_pop_free(certs, X509_free);
	buf_free(&m);
	return s;
}

static const char token_json[] =
    "{\"consumer_key\":\"CK_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    "aaaaaaaaaaaaaaaaaaaa\",\"consumer_secret\":\"CS_bbbb\","
    "\"access_token\":\"AT_cccc\",\"access_secret\":\"AS_dddd\","
    "\"access_token_expiry\":\"2031-01-14T21:27:41Z\"}";

static void
test_token(void)
{
	char		*cert1, *key1, *cert2, *key2, *p7m, *j;
	const char	*js;
	struct dep_oauth o, o2;
	X509		*x;
	uint64_t	 now = time_now_us(), exp;
	char		 when[32];

	CHECK_EQ(dep_token_new("picomdm test", 30, &cert1, &key1), DEP_OK);
	CHECK_EQ(dep_token_new("other server", 30, &cert2, &key2), DEP_OK);
	CHECK(strncmp(cert1, "-----BEGIN CERTIFICATE-----", 27) == 0);
	CHECK(strncmp(key1, "-----BEGIN PRIVATE KEY-----", 27) == 0);
	CHECK(strstr(cert1, "PRIVATE") == NULL);
	x = cert_of(cert1);
	CHECK(x != NULL);
	CHECK((X509_get_key_usage(x) &
		  (KU_KEY_ENCIPHERMENT | KU_DIGITAL_SIGNATURE)) ==
	    (KU_KEY_ENCIPHERMENT | KU_DIGITAL_SIGNATURE));
	CHECK(X509_verify(x, X509_get0_pubkey(x)) == 1);
	CHECK(EVP_PKEY_get_bits(X509_get0_pubkey(x)) == 2048);
	X509_free(x);
	/* Bad names and lifetimes are refused. */
	CHECK_EQ(dep_token_new("", 30, &j, &p7m), DEP_ERR_KEY);
	CHECK_EQ(dep_token_new("x\ny", 30, &j, &p7m), DEP_ERR_KEY);
	CHECK_EQ(dep_token_new("x", 0, &j, &p7m), DEP_ERR_KEY);

	/* The right key. */
	p7m = make_p7m(cert1, token_json);
	CHECK(strstr(p7m, "smime.p7m") != NULL);
	CHECK_EQ(
	    dep_token_decrypt(p7m, strlen(p7m), key1, cert1, now, &o), DEP_OK);
	CHECK_STR(o.consumer_key,
	    "CK_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	CHECK_STR(o.consumer_secret, "CS_bbbb");
	CHECK_STR(o.access_token, "AT_cccc");
	CHECK_STR(o.access_secret, "AS_dddd");
	time_format(o.expiry_us, when, sizeof(when));
	CHECK_STR(when, "2031-01-14T21:27:41Z");
	/* Round trip through the interim token file's JSON. */
	j = dep_token_to_json(&o);
	CHECK(j != NULL);
	CHECK_EQ(dep_token_parse_json(j, strlen(j), &o2), DEP_OK);
	CHECK_STR(o2.access_secret, "AS_dddd");
	CHECK_EQ(o2.expiry_us, o.expiry_us);
	free(j);
	dep_oauth_clear(&o2);
	CHECK(o2.access_secret == NULL);
	exp = o.expiry_us;
	dep_oauth_clear(&o);
	/* Expired: refused, but the date is there to be shown. */
	CHECK_EQ(dep_token_decrypt(p7m, strlen(p7m), key1, cert1, exp, &o),
	    DEP_ERR_TOKEN_EXPIRED);
	CHECK_EQ(o.expiry_us, exp);
	dep_oauth_clear(&o);
	/* Another server's key and certificate. */
	CHECK_EQ(dep_token_decrypt(p7m, strlen(p7m), key2, cert2, now, &o),
	    DEP_ERR_TOKEN_WRONG_KEY);
	CHECK(o.consumer_key == NULL);
	/* A key that is not the certificate's. */
	CHECK_EQ(dep_token_decrypt(p7m, strlen(p7m), key2, cert1, now, &o),
	    DEP_ERR_KEY);
	CHECK_EQ(dep_token_decrypt(p7m, strlen(p7m), "junk", cert1, now, &o),
	    DEP_ERR_KEY);
	/* Not an envelope; truncated. */
	CHECK_EQ(dep_token_decrypt("hello", 5, key1, cert1, now, &o),
	    DEP_ERR_TOKEN_FORMAT);
	CHECK_EQ(dep_token_decrypt(p7m, strlen(p7m) / 2, key1, cert1, now, &o),
	    DEP_ERR_TOKEN_FORMAT);
	free(p7m);
	/* A well-formed envelope around bad content. */
	p7m = make_p7m(cert1, "{\"consumer_key\":\"CK_1\"}");
	CHECK_EQ(dep_token_decrypt(p7m, strlen(p7m), key1, cert1, now, &o),
	    DEP_ERR_TOKEN_FORMAT);
	CHECK(o.consumer_key == NULL);
	free(p7m);
	p7m = make_p7m(cert1, "not json at all");
	CHECK_EQ(dep_token_decrypt(p7m, strlen(p7m), key1, cert1, now, &o),
	    DEP_ERR_TOKEN_FORMAT);
	free(p7m);
	/* The JSON parser alone. */
	CHECK_EQ(dep_token_parse_json("[]", 2, &o), DEP_ERR_TOKEN_FORMAT);
	js =
	    "{\"consumer_key\":\"a\",\"consumer_secret\":\"b\",\"access_token\":"
	    "\"c\",\"access_secret\":\"d\",\"access_token_expiry\":\"soon\"}";
	CHECK_EQ(
	    dep_token_parse_json(js, strlen(js), &o), DEP_ERR_TOKEN_FORMAT);
	js =
	    "{\"consumer_key\":\"a\",\"consumer_secret\":\"\",\"access_token\":"
	    "\"c\",\"access_secret\":\"d\",\"access_token_expiry\":"
	    "\"2031-01-01T00:00:00Z\"}";
	CHECK_EQ(
	    dep_token_parse_json(js, strlen(js), &o), DEP_ERR_TOKEN_FORMAT);
	freezero(key1, strlen(key1));
	freezero(key2, strlen(key2));
	free(cert1);
	free(cert2);
}

/* A client refuses a bad URL or missing credentials; a closed port is a
 * transport error, reported before any session exists. */
static void
test_client(void)
{
	struct dep_client_config cfg = {0};
	struct dep_oauth	 none = {0};
	struct dep_client	*c;
	json_t			*j = (json_t *)1;
	long			 st = -1;

	cfg.url = "ftp://127.0.0.1";
	CHECK(dep_client_new(&cfg, &kat) == NULL);
	cfg.url = NULL;
	CHECK(dep_client_new(&cfg, &none) == NULL);
	/* Port 1 on loopback: nothing listens there. */
	cfg.url = "http://127.0.0.1:1/";
	cfg.timeout = 5;
	c = dep_client_new(&cfg, &kat);
	CHECK(c != NULL);
	CHECK_EQ(dep_account(c, &j), DEP_ERR_TRANSPORT);
	CHECK(j == NULL);
	CHECK_STR(dep_client_error(c, &st), "");
	CHECK_EQ(st, 0);
	CHECK_EQ(dep_client_sessions(c), 1);
	CHECK_EQ(dep_devices_sync(c, NULL, 0, &j), DEP_ERR_CURSOR_INVALID);
	CHECK_EQ(dep_devices_details(c, NULL, 0, &j), DEP_ERR_REQUEST);
	dep_client_free(c);
	dep_client_free(NULL);
}

static void
test_strerror(void)
{
	int i;

	for (i = 0; i < DEP_ERR__MAX; i++)
		CHECK(dep_strerror((enum dep_status)i) != NULL);
	CHECK_STR(dep_strerror(DEP_ERR__MAX), "unknown error");
}

int
main(void)
{
	test_pct();
	test_base_uri();
	test_oauth_kat();
	test_token();
	test_client();
	test_strerror();
	REGRESS_DONE();
}
