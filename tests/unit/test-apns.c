/*
 * test-apns - module/apns.c without APNs: how answers are classified, the
 * exact body, token checks, the jittered backoff, client set-up errors,
 * malformed pushes refused before sending, a refused connection and an
 * unusable client certificate. Requests against a server that answers are
 * tests/integration/test-apns.sh (tests/mock-apns.py).
 */
#include "config.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "picomdm/apns.h"
#include "regress.h"

#define TOPIC "com.apple.mgmt.External.1f3a5b7c-9d2e-4f60-8a1b-2c3d4e5f6a7b"
#define TOKEN "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"

static void
test_classify(void)
{
	static const struct {
		int              status;
		const char      *reason;
		enum apns_result want;
	} t[] = {
		{200, NULL, APNS_DELIVERED},
		{200, "", APNS_DELIVERED},
		{400, "BadDeviceToken", APNS_TOKEN_INVALID},
		{400, "DeviceTokenNotForTopic", APNS_TOKEN_INVALID},
		{410, "Unregistered", APNS_TOKEN_INVALID},
		{410, "ExpiredToken", APNS_TOKEN_INVALID},
		{410, NULL, APNS_TOKEN_INVALID},
		{400, "BadTopic", APNS_TOPIC_STOPPED},
		{400, "TopicDisallowed", APNS_TOPIC_STOPPED},
		{400, "MissingTopic", APNS_TOPIC_STOPPED},
		{403, "BadCertificate", APNS_TOPIC_STOPPED},
		{403, "BadCertificateEnvironment", APNS_TOPIC_STOPPED},
		{403, "Forbidden", APNS_TOPIC_STOPPED},
		{403, NULL, APNS_TOPIC_STOPPED},
		{429, "TooManyRequests", APNS_RETRY},
		{500, "InternalServerError", APNS_RETRY},
		{503, "ServiceUnavailable", APNS_RETRY},
		{503, "Shutdown", APNS_RETRY},
		{599, NULL, APNS_RETRY},
		{0, NULL, APNS_RETRY},
		{400, "BadExpirationDate", APNS_REJECTED},
		{400, "BadPriority", APNS_REJECTED},
		{400, "PayloadEmpty", APNS_REJECTED},
		{400, "badDeviceToken", APNS_REJECTED},
		{400, NULL, APNS_REJECTED},
		{404, "BadPath", APNS_REJECTED},
		{405, "MethodNotAllowed", APNS_REJECTED},
		{413, "PayloadTooLarge", APNS_REJECTED},
		{201, NULL, APNS_REJECTED},
		{600, NULL, APNS_REJECTED},
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (apns_classify(t[i].status, t[i].reason) != t[i].want)
			fprintf(stderr, "case %zu: %d %s\n", i, t[i].status,
			    t[i].reason ? t[i].reason : "(null)");
		CHECK_EQ(apns_classify(t[i].status, t[i].reason), t[i].want);
	}
	CHECK_STR(apns_result_name(APNS_DELIVERED), "delivered");
	CHECK_STR(apns_result_name(APNS_TOKEN_INVALID), "token-invalid");
	CHECK_STR(apns_result_name(APNS_TOPIC_STOPPED), "topic-stopped");
	CHECK_STR(apns_result_name(APNS_RETRY), "retry");
	CHECK_STR(apns_result_name(APNS_REJECTED), "rejected");
	CHECK_STR(apns_result_name(APNS__MAX), "unknown");
}

static void
test_body(void)
{
	char buf[APNS_BODY_MAX], magic[APNS_MAGIC_MAX + 2];

	CHECK_EQ(apns_body("8A2E1C4D-0B3F-4E5A-9C6D-7E8F90A1B2C3", buf,
	    sizeof(buf)), 0);
	CHECK_STR(buf, "{\"mdm\":\"8A2E1C4D-0B3F-4E5A-9C6D-7E8F90A1B2C3\"}");
	CHECK_EQ(apns_body("a\"b\\c", buf, sizeof(buf)), 0);
	CHECK_STR(buf, "{\"mdm\":\"a\\\"b\\\\c\"}");
	CHECK_EQ(apns_body("", buf, sizeof(buf)), -1);
	CHECK_EQ(apns_body(NULL, buf, sizeof(buf)), -1);
	CHECK_EQ(apns_body("a\nb", buf, sizeof(buf)), -1);
	CHECK_EQ(apns_body("a\x7f", buf, sizeof(buf)), -1);
	CHECK_EQ(apns_body("caf\xc3\xa9", buf, sizeof(buf)), -1);
	/* The longest magic, all quotes, fits the declared maximum. */
	memset(magic, '"', APNS_MAGIC_MAX);
	magic[APNS_MAGIC_MAX] = '\0';
	CHECK_EQ(apns_body(magic, buf, sizeof(buf)), 0);
	CHECK_EQ(strlen(buf), 10 + 2 * APNS_MAGIC_MAX);
	magic[APNS_MAGIC_MAX] = '"';
	magic[APNS_MAGIC_MAX + 1] = '\0';
	CHECK_EQ(apns_body(magic, buf, sizeof(buf)), -1);
	/* A short buffer is refused, never overrun. */
	memset(buf, 'Z', sizeof(buf));
	CHECK_EQ(apns_body("abcdef", buf, 16), -1);
	CHECK_EQ(buf[16], 'Z');
	CHECK_EQ(apns_body("abcdef", buf, 17), 0);
	CHECK_STR(buf, "{\"mdm\":\"abcdef\"}");
}

static void
test_token(void)
{
	char out[APNS_TOKEN_HEX_MAX + 1], t[APNS_TOKEN_HEX_MAX + 3];

	CHECK_EQ(apns_token_check(TOKEN, out), 0);
	CHECK_STR(out, "0123456789abcdef0123456789abcdef0123456789abcdef"
	    "0123456789abcdef");
	CHECK_EQ(apns_token_check(NULL, out), -1);
	CHECK_EQ(apns_token_check("", out), -1);
	CHECK_EQ(apns_token_check("0123456789abcdef0123456789abcde", out),
	    -1); /* 31: odd and short */
	CHECK_EQ(apns_token_check("0123456789abcdef0123456789abcd", out),
	    -1); /* 30 */
	CHECK_EQ(apns_token_check("0123456789abcdef0123456789abcdef", out),
	    0);
	CHECK_EQ(apns_token_check("0123456789abcdef0123456789abcdeg", out),
	    -1);
	CHECK_EQ(apns_token_check("0123456789abcdef0123456789abcde/", out),
	    -1);
	memset(t, 'a', sizeof(t));
	t[APNS_TOKEN_HEX_MAX] = '\0';
	CHECK_EQ(apns_token_check(t, out), 0);
	t[APNS_TOKEN_HEX_MAX] = 'a';
	t[APNS_TOKEN_HEX_MAX + 2] = '\0';
	CHECK_EQ(apns_token_check(t, out), -1);
}

static void
test_backoff(void)
{
	uint64_t  seed = 42;
	long long v, lo = -1, hi = -1, d;
	unsigned  a, i;

	CHECK_EQ(apns_backoff_ms(0, 5, 100, 10000, &seed), -1);
	CHECK_EQ(apns_backoff_ms(6, 5, 100, 10000, &seed), -1);
	CHECK_EQ(apns_backoff_ms(1, 5, 0, 10000, &seed), -1);
	CHECK_EQ(apns_backoff_ms(1, 5, 100, 50, &seed), -1);
	for (a = 1; a <= 12; a++) {
		d = 100LL << (a - 1);
		if (d > 10000)
			d = 10000;
		for (i = 0; i < 200; i++) {
			v = apns_backoff_ms(a, 12, 100, 10000, &seed);
			CHECK(v >= d / 2 && v <= d);
		}
	}
	/* Jittered: many values, spread over the interval. */
	for (i = 0; i < 1000; i++) {
		v = apns_backoff_ms(3, 5, 100, 10000, &seed);
		if (lo == -1 || v < lo)
			lo = v;
		if (v > hi)
			hi = v;
	}
	CHECK(lo < 220 && hi > 380);
	/* No overflow when doubling would pass LLONG_MAX. */
	v = apns_backoff_ms(2, 5, (1LL << 62) + 1, INT64_MAX, &seed);
	CHECK(v >= INT64_MAX / 2 && v <= INT64_MAX);
	v = apns_backoff_ms(5, 5, (1LL << 62) + 1, INT64_MAX, &seed);
	CHECK(v >= INT64_MAX / 2 && v <= INT64_MAX);
	/* No overflow with a large base and many attempts. */
	v = apns_backoff_ms(60, 64, 1LL << 40, 1LL << 61, &seed);
	CHECK(v >= (1LL << 60) && v <= (1LL << 61));
	/* The same seed gives the same sequence; another seed differs. */
	{
		uint64_t s1 = 7, s2 = 7, s3 = 8;
		int      same = 1, differ = 0;

		for (i = 0; i < 20; i++) {
			long long x = apns_backoff_ms(8, 8, 100, 60000, &s1);
			long long y = apns_backoff_ms(8, 8, 100, 60000, &s2);
			long long z = apns_backoff_ms(8, 8, 100, 60000, &s3);

			same &= x == y;
			differ |= x != z;
		}
		CHECK(same && differ);
	}
}

static const char fake_pem[] = "-----BEGIN CERTIFICATE-----\nnot a "
    "certificate\n-----END CERTIFICATE-----\n";

static void
test_new(void)
{
	struct apns_config cfg = {.url = "http://127.0.0.1:1"};
	char               err[256];
	struct apns       *a;

	a = apns_new(&cfg, TOPIC, fake_pem, sizeof(fake_pem) - 1, fake_pem,
	    sizeof(fake_pem) - 1, err, sizeof(err));
	CHECK(a == NULL);
	CHECK(strstr(err, "https://") != NULL);
	cfg.url = "https://";
	CHECK(apns_new(&cfg, TOPIC, fake_pem, 10, fake_pem, 10, err,
	    sizeof(err)) == NULL);
	cfg.url = "https://127.0.0.1:1/";
	CHECK(apns_new(&cfg, "", fake_pem, 10, fake_pem, 10, err,
	    sizeof(err)) == NULL);
	CHECK(apns_new(&cfg, TOPIC, NULL, 0, fake_pem, 10, err,
	    sizeof(err)) == NULL);
	CHECK(apns_new(&cfg, TOPIC, fake_pem, 10, NULL, 0, err,
	    sizeof(err)) == NULL);
	a = apns_new(&cfg, TOPIC, fake_pem, 10, fake_pem, 10, err,
	    sizeof(err));
	CHECK(a != NULL);
	CHECK_EQ(apns_send(a, NULL, 0), 0);
	CHECK_EQ(apns_connections(a), 0);
	apns_free(a);
	apns_free(NULL);
	/* The production URL by default. */
	a = apns_new(NULL, TOPIC, fake_pem, 10, fake_pem, 10, err,
	    sizeof(err));
	CHECK(a != NULL);
	apns_free(a);
}

/* A listening loopback socket nobody accepts on: TCP connects, TLS never
 * answers. Returns the fd and sets *port. */
static int
listener(int *port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t          len = sizeof(sin);
	int                fd = socket(AF_INET, SOCK_STREAM, 0);

	CHECK(fd != -1);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
	CHECK(listen(fd, 16) == 0);
	CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

static void
test_send_errors(void)
{
	struct apns_config cfg = {.timeout_ms = 3000,
		.connect_timeout_ms = 3000};
	struct apns_push   p[4];
	char               err[256], url[64];
	struct apns       *a;
	int                fd, port;

	/* Malformed pushes never leave; the rest of the batch goes on. A
	 * closed port is a connection failure: retry later. */
	fd = listener(&port);
	CHECK(close(fd) == 0);
	CHECK(snprintf(url, sizeof(url), "https://127.0.0.1:%d", port) > 0);
	cfg.url = url;
	a = apns_new(&cfg, TOPIC, fake_pem, sizeof(fake_pem) - 1, fake_pem,
	    sizeof(fake_pem) - 1, err, sizeof(err));
	CHECK(a != NULL);
	memset(p, 0, sizeof(p));
	p[0].token_hex = "xyz";
	p[0].magic = "m";
	p[1].token_hex = TOKEN;
	p[1].magic = "";
	p[2].token_hex = TOKEN;
	p[2].magic = "magic";
	p[3].token_hex = TOKEN;
	p[3].magic = "bad\001";
	CHECK_EQ(apns_send(a, p, 4), 0);
	CHECK_EQ(p[0].result, APNS_REJECTED);
	CHECK_STR(p[0].reason, "malformed token");
	CHECK_EQ(p[1].result, APNS_REJECTED);
	CHECK_STR(p[1].reason, "malformed PushMagic");
	CHECK_EQ(p[3].result, APNS_REJECTED);
	CHECK_EQ(p[2].result, APNS_RETRY);
	CHECK_EQ(p[2].status, 0);
	CHECK(p[2].reason[0] != '\0');
	CHECK_STR(p[2].apns_id, "");
	apns_free(a);

	/* A server that takes the TCP connection: our certificate is not
	 * one TLS can use, so no push for this topic can work. */
	fd = listener(&port);
	CHECK(snprintf(url, sizeof(url), "https://127.0.0.1:%d", port) > 0);
	a = apns_new(&cfg, TOPIC, fake_pem, sizeof(fake_pem) - 1, fake_pem,
	    sizeof(fake_pem) - 1, err, sizeof(err));
	CHECK(a != NULL);
	memset(p, 0, sizeof(p));
	p[0].token_hex = TOKEN;
	p[0].magic = "magic";
	CHECK_EQ(apns_send(a, p, 1), 0);
	if (p[0].result != APNS_TOPIC_STOPPED)
		fprintf(stderr, "result %s: %s\n", apns_result_name(
		    p[0].result), p[0].reason);
	CHECK_EQ(p[0].result, APNS_TOPIC_STOPPED);
	CHECK_EQ(p[0].status, 0);
	apns_free(a);
	CHECK(close(fd) == 0);
}

int
main(void)
{
	test_classify();
	test_body();
	test_token();
	test_backoff();
	test_new();
	test_send_errors();
	REGRESS_DONE();
}
