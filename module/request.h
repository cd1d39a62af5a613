/*
 * request.h - reading a request from libfcgi (main.c and request.c only;
 * no other stage sees a FastCGI type).
 */
#ifndef PICOMDM_REQUEST_H
#define PICOMDM_REQUEST_H

#include <fcgiapp.h>

#include "extern.h"

int  request_init(FCGX_Request *, struct request *);
int  request_read_body(FCGX_Request *, struct request *, size_t max);
void request_free(struct request *);
/* Skip the rest of an unread body (kept connections); 0 at its end. */
#define REQUEST_DRAIN_MAX ((size_t)16 << 20)
int  request_drain(FCGX_Request *);

#endif
