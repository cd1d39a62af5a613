/*
 * vpp_write.c - Apps and Books writes, the client's side
 * (include/picomdm/vpp_write.h): limits from the service configuration,
 * a POST answered with an eventId, and an event's status, all through
 * vpp.c's requests (pacing, errorNumber, Retry-After, token errors).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/rand.h>

#include "picomdm/vpp.h"
#include "picomdm/vpp_write.h"

static void
seterr(struct vpp_error *e, long http, const char *a, const char *b)
{
	if (e == NULL)
		return;
	e->http = http;
	e->number = 0;
	snprintf(e->message, sizeof e->message, "%s%s", a, b);
}

long
vpp_limit(struct vpp *v, const char *name, long dflt, struct vpp_error *e)
{
	json_t *c = vpp_service_config(v, e), *x;

	if (c == NULL)
		return -1;
	x = json_object_get(json_object_get(c, "limits"), name);
	if (json_is_integer(x) && json_integer_value(x) > 0 &&
	    json_integer_value(x) < 1000000000)
		return (long)json_integer_value(x);
	return dflt;
}

/* An event ID is put in a query: letters, digits, - _ . only. */
static int
id_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= '0' && s[n] <= '9') ||
		    (s[n] >= 'a' && s[n] <= 'z') ||
		    (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '-' ||
		    s[n] == '_' || s[n] == '.'))
			return 0;
	return n > 0 && n <= 128;
}

char *
vpp_event_send(struct vpp *v, const char *key, const json_t *body,
    struct vpp_error *e)
{
	json_t	   *o = vpp_post(v, key, body, e);
	const char *id;
	char	   *r;

	if (o == NULL)
		return NULL;
	id = json_string_value(json_object_get(o, "eventId"));
	if (id == NULL || !id_ok(id)) {
		seterr(e, 200, "no usable eventId in the answer to ", key);
		json_decref(o);
		return NULL;
	}
	r = strdup(id);
	json_decref(o);
	if (r == NULL)
		seterr(e, 0, "", "out of memory");
	return r;
}

json_t *
vpp_event_status(struct vpp *v, const char *id, struct vpp_error *e)
{
	char	    q[160];
	json_t	   *o;
	const char *st;

	if (!id_ok(id)) {
		seterr(e, 0, "not an event ID: ", id);
		return NULL;
	}
	snprintf(q, sizeof q, "eventId=%s", id);
	if ((o = vpp_get(v, "eventStatus", q, e)) == NULL)
		return NULL;
	st = json_string_value(json_object_get(o, "eventStatus"));
	if (st == NULL || (strcmp(st, "PENDING") != 0 &&
	    strcmp(st, "COMPLETE") != 0 && strcmp(st, "FAILED") != 0)) {
		seterr(e, 200, "no eventStatus PENDING, COMPLETE or FAILED "
		    "in the status of event ", id);
		json_decref(o);
		return NULL;
	}
	return o;
}

int
vpp_client_user_id(char out[37])
{
	unsigned char b[16];

	if (RAND_bytes(b, sizeof b) != 1)
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
	    "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
	    b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

int
vpp_guid_ok(const char *s)
{
	size_t i;

	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') ||
		    (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	}
	return s[36] == '\0';
}
