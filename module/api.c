/*
 * api.c - the operator API under /api/v1/ (JSON, Bearer API key).
 * The full API comes with the command-queue work; until then every call
 * is answered 501 with a JSON error, never a device-endpoint status.
 */
#include "config.h"

#include "extern.h"

void
api_handle(const struct server *srv, const struct request *req,
    struct response *resp)
{
	(void)srv;
	(void)req;
	response_json_error(resp, 501, "not implemented",
	    "the operator API is not available in this build");
}
