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

#endif
