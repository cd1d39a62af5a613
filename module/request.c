/*
 * request.c - FastCGI environment and body into struct request.
 *
 * The body is read only after CONTENT_LENGTH has been checked strictly
 * (digits only, within the cap of the endpoint) and never beyond it; a
 * body shorter than announced is refused. FastCGI spec: the responder
 * reads FCGI_STDIN until CONTENT_LENGTH bytes (libfcgi's FCGX_GetStr).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcgiapp.h>

#include "picomdm/util.h"
#include "request.h"

static const char *
param(FCGX_Request *fr, const char *name)
{
	const char *v = FCGX_GetParam(name, fr->envp);

	return v != NULL ? v : "";
}

/* Fill the request's borrowed fields from the FastCGI parameters. */
int
request_init(FCGX_Request *fr, struct request *r)
{
	const char *uri, *q;

	memset(r, 0, sizeof(*r));
	r->start_us = time_mono_us();
	r->method = param(fr, "REQUEST_METHOD");
	r->content_type = param(fr, "CONTENT_TYPE");
	r->client_cert = param(fr, "PICOMDM_CLIENT_CERT");
	/* NULL when nginx passes none at all (a site misconfiguration). */
	r->client_verify = FCGX_GetParam("PICOMDM_CLIENT_VERIFY", fr->envp);
	r->mdm_signature = param(fr, "HTTP_MDM_SIGNATURE");
	r->authorization = param(fr, "HTTP_AUTHORIZATION");
	r->query = param(fr, "QUERY_STRING");
	/* The raw path: REQUEST_URI without its query, not yet decoded. */
	uri = param(fr, "REQUEST_URI");
	q = strchr(uri, '?');
	r->raw_path = q ? strndup(uri, (size_t)(q - uri)) : strdup(uri);
	if (r->raw_path == NULL)
		return -1;
	uri = FCGX_GetParam("DOCUMENT_URI", fr->envp);
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

/* Discard up to n bytes of unread body so the connection stays sane. */
static void
drain(FCGX_Request *fr, unsigned long long n)
{
	char buf[8192];
	int  got;

	while (n > 0) {
		got = FCGX_GetStr(buf, n > sizeof(buf) ? (int)sizeof(buf)
		                                      : (int)n, fr->in);
		if (got <= 0)
			break;
		n -= (unsigned long long)got;
	}
}

/*
 * Read the body, capped at max bytes. Returns 0, or the HTTP status to
 * answer: 411 without a length, 400 for a malformed or short one, 413 over
 * the cap. The body is NUL-terminated (not counted in body_len).
 */
int
request_read_body(FCGX_Request *fr, struct request *r, size_t max)
{
	const char *cl = FCGX_GetParam("CONTENT_LENGTH", fr->envp);
	long long   n;
	int         got;

	if (cl == NULL || *cl == '\0')
		n = 0;
	else if (num_parse(cl, 0, 0x7fffffffLL, &n) == -1)
		return 400;
	if ((unsigned long long)n > max) {
		drain(fr, (unsigned long long)n);
		return 413;
	}
	if ((r->body = malloc((size_t)n + 1)) == NULL)
		return 500;
	got = n > 0 ? FCGX_GetStr((char *)r->body, (int)n, fr->in) : 0;
	if (got != (int)n)
		return 400;
	r->body[n] = '\0';
	r->body_len = (size_t)n;
	/* More bytes than announced: refuse rather than guess. */
	if (FCGX_GetChar(fr->in) != EOF)
		return 400;
	r->input_done = 1;
	return 0;
}

/*
 * Read and discard what is left of the body of a request answered
 * without reading it (404, 405, 413, a short body), so that a kept
 * connection is positioned at the next request. Reads at most the
 * largest body any endpoint takes (REQUEST_DRAIN_MAX) plus one buffer.
 * Returns 0 when the end of the input was reached, -1 otherwise (the
 * connection must then be closed).
 */
int
request_drain(FCGX_Request *fr)
{
	char   buf[8192];
	size_t total = 0;
	int    got;

	if (fr->in == NULL)
		return -1;
	while ((got = FCGX_GetStr(buf, (int)sizeof(buf), fr->in)) > 0) {
		total += (size_t)got;
		if (total > REQUEST_DRAIN_MAX)
			return -1;
	}
	if (FCGX_GetError(fr->in) != 0 || !FCGX_HasSeenEOF(fr->in))
		return -1;
	return 0;
}
