/*
 * test-vpp-token - module/vpp_token.c: the reference's composed token,
 * dates with offsets, expiry and the 30-day warning, a location carried
 * in the inner token, and malformed tokens refused with messages that
 * never contain the secret.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picomdm/util.h"
#include "picomdm/vpp.h"
#include "regress.h"

/* {"token":"VEVTVFRPS0VO","expDate":"2030-11-08T22:33:22+0000",
 *  "orgName":"Example Org"} */
#define SAMPLE "eyJ0b2tlbiI6IlZFVlRWRlJQUzBWTyIsImV4cERhdGUiOiIyMDMwLTExLTA4" \
	"VDIyOjMzOjIyKzAwMDAiLCJvcmdOYW1lIjoiRXhhbXBsZSBPcmcifQ=="
#define EXP_2030 1920407602LL /* 2030-11-08T22:33:22Z */

static char *
b64(const char *s)
{
	char *r = base64_encode(s, strlen(s));

	CHECK(r != NULL);
	return r;
}

static void
refused(const char *text, const char *want)
{
	struct vpp_token t;
	char             err[512] = "";

	CHECK_EQ(vpp_token_parse(text, strlen(text), 1700000000, &t, err,
	    sizeof err),
	    -1);
	if (strstr(err, want) == NULL) {
		fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, want);
		exit(1);
	}
	CHECK(strstr(err, "SECRET") == NULL);
	CHECK(t.stoken == NULL && t.org == NULL);
}

/* vpp_answer: an errorNumber is an error whatever its value; one out of
 * int's range is none of Apple's (never a token error after a cast). */
static void
test_answer_numbers(void)
{
	static const char token[] = "{\"errorNumber\":9621}";
	static const char wrapped[] = "{\"errorNumber\":4294976917}";
	static const char ok[] = "{\"versionId\":\"v1\"}";
	struct vpp_error  e;
	json_t		 *o;
	int		  n;

	CHECK(vpp_answer(200, token, strlen(token), &e, &n) == NULL);
	CHECK_EQ(n, 9621);
	CHECK(vpp_token_error(n) != NULL);
	CHECK(vpp_answer(200, wrapped, strlen(wrapped), &e, &n) == NULL);
	CHECK_EQ(n, -1);
	CHECK(vpp_token_error(e.number) == NULL);
	CHECK(strstr(e.message, "Apple error") != NULL);
	CHECK((o = vpp_answer(200, ok, strlen(ok), &e, &n)) != NULL);
	CHECK_EQ(n, 0);
	json_decref(o);
}

int
main(void)
{
	struct vpp_token t;
	char             err[512];
	int64_t          v;
	const char      *s;
	char            *inner, *outer, *m;

	test_answer_numbers();

	/* Dates. */
	CHECK_EQ(vpp_time_parse("2030-11-08T22:33:22+0000", &v), 0);
	CHECK_EQ(v, EXP_2030);
	CHECK_EQ(vpp_time_parse("2014-08-15T18:13:52-0700", &v), 0);
	CHECK_EQ(v, 1408151632LL); /* 2014-08-16T01:13:52Z */
	CHECK_EQ(vpp_time_parse("2014-08-16T03:13:52+0200", &v), 0);
	CHECK_EQ(v, 1408151632LL);
	CHECK_EQ(vpp_time_parse("2030-11-08T22:33:22Z", &v), 0);
	CHECK_EQ(v, EXP_2030);
	CHECK_EQ(vpp_time_parse("2030-11-08 22:33:22+0000", &v), -1);
	CHECK_EQ(vpp_time_parse("2030-13-08T22:33:22+0000", &v), -1);
	CHECK_EQ(vpp_time_parse("2030-02-30T22:33:22+0000", &v), -1);
	CHECK_EQ(vpp_time_parse("2030-11-08T22:33:22+00", &v), -1);
	CHECK_EQ(vpp_time_parse("2030-11-08T22:33:22+0a00", &v), -1);

	/* The reference's sample, with surrounding whitespace. */
	s = "\n  " SAMPLE "\r\n";
	CHECK_EQ(vpp_token_parse(s, strlen(s), 1700000000, &t, err,
	    sizeof err), 0);
	CHECK_STR(t.stoken, SAMPLE);
	CHECK_STR(t.org, "Example Org");
	CHECK_STR(t.exp_text, "2030-11-08T22:33:22+0000");
	CHECK_EQ(t.exp, EXP_2030);
	CHECK(t.location == NULL);
	CHECK_EQ(vpp_token_days_left(&t, EXP_2030 - 29 * 86400 - 5), 29);
	CHECK_EQ(vpp_token_days_left(&t, EXP_2030 - 31 * 86400), 31);
	vpp_token_free(&t);

	/* Expired: one second after expDate is refused, one before taken. */
	CHECK_EQ(vpp_token_parse(SAMPLE, strlen(SAMPLE), EXP_2030 - 1, &t, err,
	    sizeof err), 0);
	CHECK_EQ(vpp_token_days_left(&t, EXP_2030 - 1), 0);
	vpp_token_free(&t);
	CHECK_EQ(vpp_token_parse(SAMPLE, strlen(SAMPLE), EXP_2030, &t, err,
	    sizeof err), -1);
	CHECK(strstr(err, "expired") != NULL);
	CHECK(strstr(err, "Example Org") != NULL);
	CHECK(strstr(err, "VEVTVFRPS0VO") == NULL);

	/* A location in the inner token (base64 JSON). */
	inner = b64("{\"locationName\":\"Main Campus\",\"k\":\"SECRET\"}");
	{
		char j[512];

		snprintf(j, sizeof j, "{\"token\":\"%s\",\"expDate\":"
		    "\"2030-11-08T22:33:22+0000\",\"orgName\":\"O\"}", inner);
		outer = b64(j);
	}
	CHECK_EQ(vpp_token_parse(outer, strlen(outer), 0, &t, err, sizeof err),
	    0);
	CHECK_STR(t.location, "Main Campus");
	vpp_token_free(&t);
	free(outer);
	free(inner);

	/* Malformed. */
	refused("", "empty");
	refused("  \n", "empty");
	refused("not base64!", "not one base64 string");
	refused("QUJD", "not decode to a JSON object"); /* "ABC" */
	m = b64("[1,2]");
	refused(m, "JSON object");
	free(m);
	m = b64("{\"expDate\":\"2030-11-08T22:33:22+0000\",\"orgName\":\"O\"}");
	refused(m, "\"token\"");
	free(m);
	m = b64("{\"token\":\"SECRET\",\"orgName\":\"O\"}");
	refused(m, "\"expDate\"");
	free(m);
	m = b64("{\"token\":\"SECRET\",\"expDate\":\"2030-11-08T22:33:22+0000\"}");
	refused(m, "\"orgName\"");
	free(m);
	m = b64("{\"token\":\"SECRET\",\"expDate\":\"soon\",\"orgName\":\"O\"}");
	refused(m, "not a date");
	free(m);
	m = b64("{\"token\":\"SECRET\",\"expDate\":\"2020-01-01T00:00:00+0000\","
	    "\"orgName\":\"O\"}");
	refused(m, "expired");
	free(m);
	m = b64("{\"token\":\"SECRET\",\"token\":\"SECRET\",\"expDate\":"
	    "\"2030-01-01T00:00:00+0000\",\"orgName\":\"O\"}");
	refused(m, "JSON object");
	free(m);

	REGRESS_DONE();
}
