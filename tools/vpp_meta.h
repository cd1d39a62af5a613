/*
 * vpp_meta.h - picomdm-vpp's app metadata step (tools/vpp_meta.c), run
 * by sync after a token's listings and by the meta command. See
 * man/picomdm-vpp.8.
 */
#ifndef PICOMDM_VPP_META_H
#define PICOMDM_VPP_META_H

#include "picomdm/store.h"
#include "picomdm/vpp.h"

#define VPP_META_MAX_AGE 604800L /* seconds: a week */
#define VPP_META_BATCH	 20	 /* adamIds in one lookup request */

/*
 * Fetch the metadata of token name's assets from the content-metadata
 * URL its service configuration names: the adamIds with none stored, or
 * fetched more than max_age seconds ago (every one with refresh), in
 * batches of VPP_META_BATCH, each batch written in a transaction of its
 * own; the metadata of adamIds the token no longer holds is removed.
 * Never touches the assets, assignments or users. Reports on stderr.
 * Returns 0, 1 when a lookup or the store failed (what was fetched
 * before stays), 3 for a token error.
 */
int vpp_meta_run(struct store *, const char *name, const struct vpp_opts *,
    long max_age, int refresh);

/* The metadata record (store_vpp.h) of adamId adam_id from the lookup's
 * result for it (results.<adam_id>; NULL or not an object: "not found").
 * A new reference, or NULL when out of memory. */
json_t *vpp_meta_record(const char *adam_id, const json_t *result);

#endif
