/*
 * inventory.h - the inventory of one device: everything picomdm holds
 * about it, each field labelled with its row of the catalogue
 * (catalogue.h, included here). See ARCHITECTURE.md, "The data
 * catalogue".
 */
#ifndef PICOMDM_INVENTORY_H
#define PICOMDM_INVENTORY_H

#include <stddef.h>

#include "picomdm/catalogue.h"

struct json_t;
struct store_txn;

/*
 * Everything held about a device (device ID, enrollment ID or serial
 * number) and its user channels, inside the caller's transaction: every
 * key of the stored raw check-in messages and command reports, and the
 * fields kept in records, each with its catalogue row. *out (caller
 * json_decref()s) is
 *   {"device_id", "serial_number", "enrollments": [{id, type, enabled}],
 *    "services": [{"service", "title", "fields": [row...]}] }
 * for all four services, a row being {enrollment, source ("message",
 * "report" or "record"), message, field, value, received_at, topic,
 * purpose, kept} (reports add command_uuid, request_type, status, seq).
 * Secret values are {"secret": true, "length", "sha256"}, never the
 * value; other data {"length", "sha256"}. Returns 0, STORE_ENOTFOUND or
 * a store_err.
 */
int inventory_device(
    struct store_txn *, const char *id_or_serial, struct json_t **out);

#endif
