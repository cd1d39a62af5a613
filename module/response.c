/*
 * response.c - the status table and reply bodies. The worker writes the
 * reply to FastCGI (main.c); everything here only fills struct response.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "extern.h"
#include "picomdm/util.h"
#include "picomdm/store.h"

static const struct {
	int         code;
	const char *text;
} statuses[] = {
	{ 200, "OK" },
	{ 201, "Created" },
	{ 204, "No Content" },
	{ 207, "Multi-Status" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 409, "Conflict" },
	{ 410, "Gone" },
	{ 411, "Length Required" },
	{ 413, "Payload Too Large" },
	{ 415, "Unsupported Media Type" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 503, "Service Unavailable" },
};

const char *
response_status_text(int code)
{
	size_t i;

	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (statuses[i].code == code)
			return statuses[i].text;
	return "Unknown";
}

/*
 * Set the status (0 means 200) and the reason logged for a refusal. The
 * reason is copied (cut to fit), so a caller may pass a buffer of its own.
 */
void
response_set(struct response *r, int status, const char *reason)
{
	r->status = status == 0 ? 200 : status;
	/* Every 503 here means "the same request may succeed later". */
	r->retry_after = r->status == 503 ? RESPONSE_RETRY_AFTER : 0;
	r->reason = NULL;
	if (reason != NULL) {
		strlcpy(r->reason_buf, reason, sizeof(r->reason_buf));
		r->reason = r->reason_buf;
	}
}

/* Replace the body with a copy of p[0..n). 0 or -1 (out of memory). */
int
response_set_body(struct response *r, const char *ctype, const void *p,
    size_t n)
{
	unsigned char *b;

	if ((b = malloc(n ? n : 1)) == NULL)
		return -1;
	if (n > 0)
		memcpy(b, p, n);
	free(r->body);
	r->body = b;
	r->body_len = n;
	r->content_type = ctype;
	return 0;
}

/* The operator API's error shape: {"error": "...", "detail": "..."}. */
int
response_json_error(struct response *r, int status, const char *error,
    const char *detail)
{
	json_t *o;
	char   *s;
	int     rc = -1;

	response_set(r, status, detail ? detail : error);
	o = json_pack("{s:s, s:s}", "error", error, "detail",
	    detail ? detail : "");
	if (o == NULL)
		return -1;
	if ((s = json_dumps(o, JSON_COMPACT)) != NULL) {
		rc = response_set_body(r, "application/json", s, strlen(s));
		free(s);
	}
	json_decref(o);
	return rc;
}

/*
 * Map what store_write() returned to the response: a positive value is the
 * operation's own refusal (HTTP status); a store that is full or
 * unavailable (map or file system full, disk error, read-only, reader
 * table full: store_err_unavailable) is 503 with Retry-After, since the
 * same request may succeed later (RFC 9110, 15.6.4); any other store
 * error 500.
 */
void
response_store_result(struct response *resp, int rc, const char *reason)
{
	if (rc > 0)
		response_set(resp, rc, reason ? reason : "refused");
	else if (store_err_unavailable(rc))
		response_set(resp, 503, store_strerror(rc));
	else if (rc < 0)
		response_set(resp, 500, store_strerror(rc));
}
