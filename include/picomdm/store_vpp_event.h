/*
 * store_vpp_event.h - Apps and Books writes in the store
 * (module/store_vpp_event.c): the event record of each asynchronous
 * request picomdm-vpp sent (assign, unassign, revoke, user create,
 * user retire), keyed by the token's name and Apple's eventId so that
 * purge --token removes it with the token's other records; the lookups
 * picomdm-vpp makes before sending one; and the completion, which
 * writes the event's outcome and its effect on the token's assignments,
 * users and asset counts in one transaction. Records go in and out as
 * JSON objects with the registry's field names (store_kinds.c,
 * vppevent_af). See man/picomdm-vpp.8.
 */
#ifndef PICOMDM_STORE_VPP_EVENT_H
#define PICOMDM_STORE_VPP_EVENT_H

#include <stdint.h>

#include <jansson.h>

#include "picomdm/store.h"

/* The event's record (event_id, type, item_kind, items, status, ...),
 * written whole under the token; STORE_EINVAL when it has no event_id or
 * a field does not fit. */
int store_vpp_event_put(struct store_txn *, const char *token,
    const json_t *rec);
/* STORE_ENOTFOUND when none; *out a new reference. */
int store_vpp_event_get(struct store_txn *, const char *token,
    const char *event_id, json_t **out);
/* Every event of the token (NULL: of every token), in key order; cb
 * returning nonzero stops (a negative value is returned). */
int store_vpp_event_each(struct store_txn *, const char *token,
    int (*cb)(const char *token, json_t *rec, void *), void *arg);
/* Remove every event of the token; *n counts them (token remove). */
int store_vpp_event_clear(struct store_txn *, const char *token,
    uint64_t *n);

/*
 * The event is over: rec (its record, status COMPLETE or FAILED, with
 * failures) is written, and what succeeded (the items of rec not in
 * failed, a JSON array of IDs) is applied to the token's records:
 * ASSOCIATE adds an assignment per item, DISASSOCIATE removes it,
 * REVOKE removes every assignment of the item, each changing its
 * asset's assigned and available counts; CREATE adds the user
 * (status Registered), RETIRE sets the user's status to Retired. An
 * event the store already holds as over is left alone (*changed 0), so
 * two pollers of one event apply it once. *changed counts the records
 * written or removed.
 */
int store_vpp_event_finish(struct store_txn *, const char *token,
    const json_t *rec, const json_t *failed, uint64_t *changed);

/* The assets of an adamId (one per pricingParam) as an array of
 * records; an empty array when the token has none. */
int store_vpp_assets_of(struct store_txn *, const char *token,
    const char *adam_id, json_t **out);
/* Is adamId assigned to the serial (user 0) or clientUserId (user 1)?
 * 1, 0 or a store error. */
int store_vpp_assigned(struct store_txn *, const char *token, int user,
    const char *id, const char *adam_id);
/* The user record of a clientUserId; STORE_ENOTFOUND when none. */
int store_vpp_user_get(struct store_txn *, const char *token,
    const char *client_user_id, json_t **out);

#endif
