/*
 * vpp_write.h - Apps and Books writes, the client's side
 * (module/vpp_write.c, in libpicomdm_net.a with vpp.c): the limits the
 * service configuration gives, a POST answered with an eventId, and
 * the status of an event (the service configuration's eventStatus URL
 * with ?eventId=). Requests go through vpp.c, so they are paced to the
 * rate limit, parsed for errorNumber and retried after Retry-After as
 * every other. See man/picomdm-vpp.8.
 */
#ifndef PICOMDM_VPP_WRITE_H
#define PICOMDM_VPP_WRITE_H

#include <jansson.h>

#include "picomdm/vpp.h"

/* limits.<name> of the service configuration when it is a positive
 * integer, else dflt; -1 with e set when the configuration cannot be
 * read. */
long vpp_limit(struct vpp *, const char *name, long dflt,
    struct vpp_error *);
/* POST body to urls.<key>; the eventId of the answer (the caller frees
 * it), or NULL with e set (an answer without an eventId too). */
char *vpp_event_send(struct vpp *, const char *key, const json_t *body,
    struct vpp_error *);
/* The status of an event: Apple's answer, checked to have an
 * eventStatus of PENDING, COMPLETE or FAILED; a new reference, or NULL
 * with e set (9708: Apple knows no such event). */
json_t *vpp_event_status(struct vpp *, const char *event_id,
    struct vpp_error *);
/* A new clientUserId: a random (version 4) UUID, 36 characters and the
 * terminator in out; 0, or -1 when no randomness was to be had. */
int vpp_client_user_id(char out[37]);
/* 36 characters of UUID form (hex digits, dashes at 8, 13, 18, 23). */
int vpp_guid_ok(const char *);

#endif
