/*
 * request.c - FastCGI environment and body into struct request.
 *
 * The body is read only after CONTENT_LENGTH has been checked strictly
 * (digits only, within the cap of the endpoint) and never beyond it; a
 * body shorter than announced is refused, and so is one longer: the
 * input must end (the empty FCGI_STDIN record, fcgi.c) right after
 * CONTENT_LENGTH bytes.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picomdm/util.h"
#include "fcgi.h"
#include "request.h"

static const char *
param(const struct fcgi *fr, const char *name)
{
	const char *v = fcgi_param(fr, name);

	return v != NULL ? v : "";
}

/* Fill the request's borrowed fields from the FastCGI parameters. */
int
request_init(const struct fcgi *fr, struct request *r)
{
	const char *uri, *q;

	memset(r, 0, sizeof(*r));
	r->start_us = time_mono_us();
	r->method = param(fr, "REQUEST_METHOD");
	r->content_type = param(fr, "CONTENT_TYPE");
	r->client_cert = param(fr, "PICOMDM_CLIENT_CERT");
	/* NULL when nginx passes none at all (a site misconfiguration). */
	r->client_verify = fcgi_param(fr, "PICOMDM_CLIENT_VERIFY");
	r->mdm_signature = param(fr, "HTTP_MDM_SIGNATURE");
	r->authorization = param(fr, "HTTP_AUTHORIZATION");
	r->query = param(fr, "QUERY_STRING");
	/* The raw path: REQUEST_URI without its query, not yet decoded. */
	uri = param(fr, "REQUEST_URI");
	q = strchr(uri, '?');
	r->raw_path = q ? strndup(uri, (size_t)(q - uri)) : strdup(uri);
	if (r->raw_path == NULL)
		return -1;
	uri = fcgi_param(fr, "DOCUMENT_URI");
	if (uri == NULL || *uri == '\0')
		uri = param(fr, "REQUEST_URI");
	/* REQUEST_URI carries the query; DOCUMENT_URI does not. */
	q = strchr(uri, '?');
	r->path = q ? strndup(uri, (size_t)(q - uri)) : strdup(uri);
	if (r->path == NULL)
		return -1;
	r->uri = r->path;
	return 0;
}

void
request_free(struct request *r)
{
	free(r->path);
	free(r->raw_path);
	/* Bodies carry secrets (push tokens, a push certificate's key). */
	if (r->body != NULL)
		freezero(r->body, r->body_len + 1);
	r->path = NULL;
	r->raw_path = NULL;
	r->body = NULL;
}

/*
 * Read the body, capped at max bytes. Returns 0, or the HTTP status to
 * answer: 411 without a length, 400 for a malformed or short one, 413 over
 * the cap. The body is NUL-terminated (not counted in body_len).
 */
int
request_read_body(struct fcgi *fr, struct request *r, size_t max)
{
	const char   *cl = fcgi_param(fr, "CONTENT_LENGTH");
	long long     n;
	ssize_t       got;
	unsigned char extra;

	if (cl == NULL || *cl == '\0')
		n = 0;
	else if (num_parse(cl, 0, 0x7fffffffLL, &n) == -1)
		return 400;
	/* Answered at once: fcgi_finish deals with the unread rest. */
	if ((unsigned long long)n > max)
		return 413;
	if ((r->body = malloc((size_t)n + 1)) == NULL)
		return 500;
	got = n > 0 ? fcgi_read(fr, r->body, (size_t)n) : 0;
	if (got != (ssize_t)n)
		return 400;
	r->body[n] = '\0';
	r->body_len = (size_t)n;
	/* More bytes than announced: refuse rather than guess. */
	if (fcgi_read(fr, &extra, 1) != 0)
		return 400;
	return 0;
}
