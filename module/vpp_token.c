/*
 * vpp_token.c - the Apps and Books content token (.vpptoken): decode,
 * check expiry, never reveal the secret. See include/picomdm/vpp.h.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "picomdm/util.h"
#include "picomdm/vpp.h"

static int
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
vpp_time_parse(const char *s, int64_t *out)
{
	struct tm tm;
	int       y, mo, d, h, mi, se, oh = 0, om = 0, sign = 1;
	time_t    t;
	size_t    len;

	if (s == NULL)
		return -1;
	len = strlen(s);
	if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':')
		return -1;
	if (digits(s, 4, &y) || digits(s + 5, 2, &mo) ||
	    digits(s + 8, 2, &d) || digits(s + 11, 2, &h) ||
	    digits(s + 14, 2, &mi) || digits(s + 17, 2, &se))
		return -1;
	if (len == 20 && s[19] == 'Z')
		;
	else if (len == 24 && (s[19] == '+' || s[19] == '-')) {
		if (digits(s + 20, 2, &oh) || digits(s + 22, 2, &om) ||
		    oh > 14 || om > 59)
			return -1;
		sign = s[19] == '-' ? -1 : 1;
	} else
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    se > 60)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	t = timegm(&tm);
	if (t == (time_t)-1 || tm.tm_mday != d)
		return -1;
	*out = (int64_t)t - sign * (int64_t)(oh * 3600 + om * 60);
	return 0;
}

void
vpp_token_free(struct vpp_token *t)
{
	if (t == NULL)
		return;
	if (t->stoken != NULL)
		explicit_bzero(t->stoken, strlen(t->stoken));
	free(t->stoken);
	free(t->org);
	free(t->location);
	free(t->exp_text);
	memset(t, 0, sizeof *t);
}

/* The location name, when the token names one: "locationName" in the
 * outer object, or in the inner token when that is itself base64 JSON. */
static char *
token_location(json_t *o)
{
	json_t     *inner = NULL, *v;
	const char *in;
	unsigned char *raw;
	size_t      rawlen;
	char       *r = NULL;

	v = json_object_get(o, "locationName");
	if (json_is_string(v))
		return strdup(json_string_value(v));
	in = json_string_value(json_object_get(o, "token"));
	raw = base64_decode(in, strlen(in), &rawlen);
	if (raw == NULL)
		return NULL;
	inner = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES,
	    NULL);
	explicit_bzero(raw, rawlen);
	free(raw);
	if (json_is_object(inner)) {
		v = json_object_get(inner, "locationName");
		if (!json_is_string(v))
			v = json_object_get(json_object_get(inner, "location"),
			    "locationName");
		if (json_is_string(v))
			r = strdup(json_string_value(v));
	}
	json_decref(inner);
	return r;
}

int
vpp_token_parse(const char *text, size_t len, int64_t now,
    struct vpp_token *t, char *err, size_t errlen)
{
	unsigned char *raw = NULL;
	size_t         rawlen, b, e;
	json_t        *o = NULL, *tok, *exp, *org;
	int            rc = -1;

	memset(t, 0, sizeof *t);
	for (b = 0; b < len && strchr(" \t\r\n", text[b]) && text[b]; b++)
		;
	for (e = len; e > b && strchr(" \t\r\n", text[e - 1]) &&
	    text[e - 1]; e--)
		;
	if (e == b) {
		snprintf(err, errlen, "the token is empty");
		return -1;
	}
	if (e - b > VPP_TOKEN_MAX) {
		snprintf(err, errlen, "the token is longer than %d bytes",
		    VPP_TOKEN_MAX);
		return -1;
	}
	for (size_t i = b; i < e; i++)
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789+/=", text[i]) == NULL || text[i] == '\0') {
			snprintf(err, errlen,
			    "the token is not one base64 string (byte %zu)",
			    i - b + 1);
			return -1;
		}
	raw = base64_decode(text + b, e - b, &rawlen);
	if (raw == NULL) {
		snprintf(err, errlen, "the token is not valid base64");
		return -1;
	}
	o = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o)) {
		snprintf(err, errlen,
		    "the token does not decode to a JSON object");
		goto out;
	}
	tok = json_object_get(o, "token");
	exp = json_object_get(o, "expDate");
	org = json_object_get(o, "orgName");
	if (!json_is_string(tok) || json_string_length(tok) == 0) {
		snprintf(err, errlen, "the token has no \"token\" string");
		goto out;
	}
	if (!json_is_string(exp)) {
		snprintf(err, errlen, "the token has no \"expDate\" string");
		goto out;
	}
	if (!json_is_string(org)) {
		snprintf(err, errlen, "the token has no \"orgName\" string");
		goto out;
	}
	if (vpp_time_parse(json_string_value(exp), &t->exp) != 0) {
		snprintf(err, errlen,
		    "the token's expDate \"%.40s\" is not a date like "
		    "2030-11-08T22:33:22+0000", json_string_value(exp));
		goto out;
	}
	if (t->exp <= now) {
		snprintf(err, errlen,
		    "the token of %.100s expired on %.40s; download a new one "
		    "from Apple Business or School Manager",
		    json_string_value(org), json_string_value(exp));
		goto out;
	}
	t->stoken = strndup(text + b, e - b);
	t->org = strdup(json_string_value(org));
	t->exp_text = strdup(json_string_value(exp));
	t->location = token_location(o);
	if (t->stoken == NULL || t->org == NULL || t->exp_text == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	if (rc != 0)
		vpp_token_free(t);
	json_decref(o);
	explicit_bzero(raw, rawlen);
	free(raw);
	return rc;
}

int
vpp_token_load(const char *path, int64_t now, struct vpp_token *t,
    char *err, size_t errlen)
{
	char    buf[VPP_TOKEN_MAX + 2];
	size_t  n = 0;
	ssize_t r;
	int     fd, rc;

	memset(t, 0, sizeof *t);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	while (n < sizeof buf &&
	    (r = read(fd, buf + n, sizeof buf - n)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		n += (size_t)r;
	}
	close(fd);
	if (n == sizeof buf) {
		snprintf(err, errlen, "%s: longer than %d bytes", path,
		    VPP_TOKEN_MAX);
		return -1;
	}
	rc = vpp_token_parse(buf, n, now, t, err, errlen);
	explicit_bzero(buf, n);
	return rc;
}

long
vpp_token_days_left(const struct vpp_token *t, int64_t now)
{
	return t->exp <= now ? 0 : (long)((t->exp - now) / 86400);
}
