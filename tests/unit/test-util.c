/*
 * test-util.c - strict number parsing, base64, percent-decoding, RFC 3339
 * times, hex, the bounded buffer, strlcpy and the config file parser.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"
#include "picomdm/log.h"
#include "picomdm/util.h"
#include "regress.h"

static void
test_num(void)
{
	long long v = -7;

	CHECK_EQ(num_parse("0", 0, 10, &v), 0);
	CHECK_EQ(v, 0);
	CHECK_EQ(num_parse("10", 0, 10, &v), 0);
	CHECK_EQ(v, 10);
	CHECK_EQ(num_parse("11", 0, 10, &v), -1);
	CHECK_EQ(num_parse("-1", 0, 10, &v), -1);
	CHECK_EQ(num_parse("-1", -5, 10, &v), 0);
	CHECK_EQ(v, -1);
	CHECK_EQ(num_parse("", 0, 10, &v), -1);
	CHECK_EQ(num_parse(" 1", 0, 10, &v), -1);
	CHECK_EQ(num_parse("+1", 0, 10, &v), -1);
	CHECK_EQ(num_parse("1 ", 0, 10, &v), -1);
	CHECK_EQ(num_parse("1x", 0, 10, &v), -1);
	CHECK_EQ(num_parse("99999999999999999999999", 0, 10, &v), -1);
	CHECK_EQ(num_parse(NULL, 0, 10, &v), -1);
	/* strtoll would skip any white space: none is taken. */
	CHECK_EQ(num_parse("\n1", 0, 10, &v), -1);
	CHECK_EQ(num_parse("\v1", 0, 10, &v), -1);
	CHECK_EQ(num_parse("\f1", 0, 10, &v), -1);
	CHECK_EQ(num_parse("\r1", 0, 10, &v), -1);
	CHECK_EQ(num_parse("-\n1", -5, 10, &v), -1);
	CHECK_EQ(num_parse("- 1", -5, 10, &v), -1);
	CHECK_EQ(num_parse("-", -5, 10, &v), -1);
	CHECK_EQ(num_parse("\n-1", -5, 10, &v), -1);
}

static void
test_base64(void)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob",
		"fooba", "foobar" };
	static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v",
		"Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
	unsigned char           *d;
	char                    *e;
	size_t                   i, n;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) { /* RFC 4648 */
		e = base64_encode(in[i], strlen(in[i]));
		CHECK_STR(e, out[i]);
		d = base64_decode(e, strlen(e), &n);
		CHECK(d != NULL);
		CHECK_EQ(n, strlen(in[i]));
		CHECK(memcmp(d, in[i], n) == 0);
		free(d);
		free(e);
	}
	d = base64_decode("Zm9v\nYmFy\n", 10, &n);
	CHECK(d != NULL && n == 6 && memcmp(d, "foobar", 6) == 0);
	free(d);
	CHECK(base64_decode("Zm9v!", 5, &n) == NULL);
	CHECK(base64_decode("Zg==Zg", 6, &n) == NULL);
	CHECK(base64_decode("Z", 1, &n) == NULL);
	/*
	 * Every byte value, every length to 200, white space every k-th
	 * character (so the four-at-once path starts on and off quantum
	 * boundaries), then one bad byte at every position.
	 */
	{
		unsigned char raw[200], *dd;
		char          ws[600];
		size_t        len, k, j, m;

		for (j = 0; j < sizeof(raw); j++)
			raw[j] = (unsigned char)(j * 97 + 13);
		for (len = 0; len <= sizeof(raw); len++)
			for (k = 1; k <= 7; k++) {
				e = base64_encode(raw, len);
				CHECK(e != NULL);
				for (j = m = 0; e[j] != '\0'; j++) {
					if (j % k == k - 1)
						ws[m++] = j % 2 ? '\n' : ' ';
					ws[m++] = e[j];
				}
				dd = base64_decode(ws, m, &n);
				CHECK(dd != NULL);
				CHECK_EQ(n, len);
				CHECK(len == 0 || memcmp(dd, raw, len) == 0);
				free(dd);
				if (k == 1 && len == 120)
					for (j = 0; j < strlen(e); j++) {
						char save = e[j];

						e[j] = '!';
						CHECK(base64_decode(e, strlen(e),
						    &n) == NULL);
						e[j] = '=';
						CHECK(j >= strlen(e) - 2 ||
						    base64_decode(e, strlen(e),
						    &n) == NULL);
						e[j] = save;
					}
				free(e);
			}
	}
}

static void
test_pct(void)
{
	char *s;

	s = pct_decode("a%3Ab%40c.d", 11);
	CHECK_STR(s, "a:b@c.d");
	free(s);
	CHECK(pct_decode("%4", 2) == NULL);
	CHECK(pct_decode("%zz", 3) == NULL);
	CHECK(pct_decode("a%00b", 5) == NULL);
	s = pct_decode("", 0);
	CHECK_STR(s, "");
	free(s);
}

static void
test_time(void)
{
	uint64_t us;
	char     buf[40];

	CHECK_EQ(time_parse_rfc3339("1970-01-01T00:00:00Z", &us), 0);
	CHECK_EQ(us, 0);
	CHECK_EQ(time_parse_rfc3339("2026-11-27T10:53:10Z", &us), 0);
	CHECK_EQ(us, 1795776790ULL * 1000000);
	time_format(us, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-27T10:53:10Z");
	CHECK_EQ(time_parse_rfc3339("2026-11-27T12:53:10.5+02:00", &us), 0);
	CHECK_EQ(us, 1795776790ULL * 1000000 + 500000);
	CHECK_EQ(time_parse_rfc3339("2026-11-27T10:53:10", &us), -1);
	CHECK_EQ(time_parse_rfc3339("2026-13-27T10:53:10Z", &us), -1);
	CHECK_EQ(time_parse_rfc3339("2026-11-27T10:53:10Zjunk", &us), -1);
	CHECK_EQ(time_parse_rfc3339("yesterday", &us), -1);
}

static void
test_buf_hex_strlcpy(void)
{
	struct buf b = { NULL, 0, 0, 8 };
	char       hex[9], small[4];

	CHECK_EQ(buf_append(&b, "12345678", 8), 0);
	CHECK_EQ(buf_append(&b, "9", 1), -1); /* over the maximum */
	CHECK_EQ(b.len, 8);
	buf_free(&b);
	b.max = 0;
	CHECK_EQ(buf_printf(&b, "%s-%d", "x", 42), 0);
	CHECK_STR((char *)b.p, "x-42");
	buf_free(&b);
	hex_encode("\x00\xff\x10\xab", 4, hex);
	CHECK_STR(hex, "00ff10ab");
	CHECK_EQ(strlcpy(small, "abcdef", sizeof(small)), 6);
	CHECK_STR(small, "abc");
}

static void
test_config(void)
{
	struct config c;
	char          path[] = "/tmp/picomdm-conf-XXXXXX";
	FILE         *f;
	int           fd;

	config_defaults(&c);
	/* Four per online CPU, 8 to 64 (test-promises checks the figure
	 * picomdm-fcgi starts with). */
	CHECK_EQ(c.workers, config_default_workers());
	CHECK(c.workers >= 8 && c.workers <= 64 && c.workers % 4 == 0);
	CHECK_EQ(c.max_inflight, 256);
	CHECK_EQ(config_set(&c, "workers", "4"), 0);
	CHECK_EQ(c.workers, 4);
	CHECK_EQ(config_set(&c, "workers", "0"), -1);
	CHECK_EQ(config_set(&c, "max-inflight", "2"), 0);
	CHECK_EQ(c.max_inflight, 2);
	CHECK_EQ(config_set(&c, "max_inflight", "0"), -1);
	CHECK_EQ(config_set(&c, "max_inflight", "65537"), -1);
	CHECK_EQ(c.commit_delay, 200);
	CHECK_EQ(config_set(&c, "commit-delay", "0"), 0);
	CHECK_EQ(c.commit_delay, 0);
	CHECK_EQ(config_set(&c, "commit_delay", "100000"), 0);
	CHECK_EQ(c.commit_delay, 100000);
	CHECK_EQ(config_set(&c, "commit_delay", "100001"), -1);
	CHECK_EQ(config_set(&c, "commit_delay", "-1"), -1);
	CHECK_EQ(c.commit_delay, 100000);
	CHECK_EQ(config_set(&c, "checkin-max", "128k"), 0);
	CHECK_EQ(c.checkin_max, 128 * 1024);
	CHECK_EQ(config_set(&c, "map_max", "2g"), 0);
	CHECK_EQ(c.map_max, (size_t)2 << 30);
	CHECK_EQ(config_set(&c, "no_such_key", "1"), -1);
	CHECK_EQ(config_set(&c, "allow_retro", "maybe"), -1);
	CHECK_EQ(config_set(&c, "user_authenticate", "challenge"), 0);
	CHECK_EQ(config_set(&c, "user_authenticate", "sometimes"), -1);
	CHECK((fd = mkstemp(path)) != -1);
	CHECK((f = fdopen(fd, "w")) != NULL);
	fputs("# comment\n\ndb = /var/lib/picomdm\n  workers=2  \n", f);
	fclose(f);
	CHECK_EQ(config_load(&c, path), 0);
	CHECK_STR(c.db, "/var/lib/picomdm");
	CHECK_EQ(c.workers, 2);
	CHECK((f = fopen(path, "w")) != NULL);
	fputs("db /no/equals/sign\n", f);
	fclose(f);
	CHECK_EQ(config_load(&c, path), -1);
	unlink(path);
	config_free(&c);
}

int
main(void)
{
	log_set_level(LOG_ERROR);
	test_num();
	test_base64();
	test_pct();
	test_time();
	test_buf_hex_strlcpy();
	test_config();
	REGRESS_DONE();
}
