/*
 * request.h - a request's fields and body from its FastCGI connection
 * (fcgi.h); main.c and request.c only, no other stage sees a FastCGI
 * type.
 */
#ifndef PICOMDM_REQUEST_H
#define PICOMDM_REQUEST_H


#include "extern.h"
#include "fcgi.h"

int  request_init(const struct fcgi *, struct request *);
int  request_read_body(struct fcgi *, struct request *, size_t max);
void request_free(struct request *);

#endif
