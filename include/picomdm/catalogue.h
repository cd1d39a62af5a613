/*
 * catalogue.h - the catalogue of every field picomdm holds, or will hold,
 * about a device: which Apple service sends it, in which message or API,
 * under which key, what picomdm uses it for, and whether it is a secret.
 *
 * One table (catalogue.c), used by everything that has to know:
 * `picomdmctl inventory --catalogue` prints it, the per-device inventory
 * (inventory.h) labels every key of the stored messages with its row,
 * and the store's registry (store_kinds.c) links every record field to
 * its row, so that dump and show decide from it which values are secrets
 * (shown as length and SHA-256 only). See ARCHITECTURE.md, "The data
 * catalogue".
 */
#ifndef PICOMDM_CATALOGUE_H
#define PICOMDM_CATALOGUE_H

#include <stddef.h>

/* The services data arrives through. */
enum inv_service {
	INV_CHECKIN = 0, /* APNs / check-in protocol (the push topic) */
	INV_COMMAND,	 /* MDM command protocol (reports on connect) */
	INV_ADE,	 /* Automated Device Enrollment (Apple Business/School
			  * Manager device sync) */
	INV_VPP,	 /* Apps and Books (VPP) */
	INV__MAX
};

/* How picomdm keeps a field. */
enum inv_kept {
	INV_KEPT_FIELD = 0, /* decoded into a record, and in the raw message */
	INV_KEPT_RAW,	    /* only inside the raw message, as received */
	INV_KEPT_PLANNED,   /* held once the service's sync exists */
	INV_KEPT__MAX
};

/*
 * One row. message "*" matches every message of the service; field "*"
 * every key of the message without a row of its own. Nested keys are
 * dotted, array items leave no trace: "ErrorChain.ErrorCode".
 */
struct inv_row {
	enum inv_service service;
	const char	*message;
	const char	*field;
	const char	*purpose;
	int		 secret; /* shown as length and SHA-256 only */
	enum inv_kept	 kept;
};

extern const struct inv_row inventory_catalogue[];
extern const size_t	    inventory_catalogue_len;

/* "check-in", "command", "ADE", "VPP": short names used in output. */
const char *inventory_service_name(enum inv_service);
/* "APNs / check-in", ...: titles for headings. */
const char *inventory_service_title(enum inv_service);
const char *inventory_kept_name(enum inv_kept);

/*
 * The row describing field of message: the exact row, else the message's
 * "*" row, else a row of message "*" for that field. NULL when the
 * catalogue has none (an unknown key kept in the raw message). Array
 * indices ("[0]") in field are ignored.
 */
const struct inv_row *inventory_find(
    enum inv_service, const char *message, const char *field);

/*
 * Is a key a secret wherever it appears in data of this service? True when
 * any secret row of the service has key as the last component of its
 * field. Used to redact raw plists, whose nesting may differ from the
 * catalogue's, so it errs towards hiding.
 */
int inventory_secret_key(enum inv_service, const char *key);

#endif
