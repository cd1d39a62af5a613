/*
 * command.h - operator commands: the plist a device will get, built from
 * the operator API's JSON form or checked in its raw form against Apple's
 * command schema (the generated tables of schema.h), queued to many
 * enrollments at once; and the JSON views of stored results.
 *
 * The JSON form is {"request_type": "...", "command_uuid": "..."?, keys...}
 * where the keys are those of Apple's Command dictionary, converted by the
 * schema: a base64 string becomes <data>, an RFC 3339 string <date>, a
 * JSON integer <integer>, true/false <true/>/<false/>, an object <dict>,
 * an array <array>. The result is {Command: {RequestType, keys...},
 * CommandUUID} serialised as XML; those bytes are what is stored and sent.
 */
#ifndef PICOMDM_COMMAND_H
#define PICOMDM_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <plist/plist.h>

struct schema_key;
struct store;
struct store_queue_item;
struct store_result;
struct store_txn;

#define COMMAND_UUID_MAX 255  /* CommandUUID, bytes */
#define COMMAND_IDS_MAX	 1000 /* enrollment IDs in one enqueue */
#define COMMAND_ERR_SIZE 256  /* a good size for the err buffers below */

/* A validated command, ready to store. Owned; free with command_free. */
struct command {
	char	      *uuid;	     /* CommandUUID */
	char	      *request_type; /* Command.RequestType */
	unsigned char *raw;	     /* the exact bytes the device will get */
	size_t	       raw_len;
};

/*
 * Build a command from the JSON form in buf[0..len). Returns 0 with *out
 * set (caller frees with command_free), 400 with a message naming the
 * offending key in err (errsz bytes, always NUL-terminated), or 500 when
 * out of memory or randomness. Without "command_uuid" a random UUID
 * (version 4) is made.
 */
int command_from_json(
    const char *buf, size_t len, struct command **out, char *err, size_t errsz);

/*
 * Convert a JSON object to a plist dict against keys[0..nkeys): the
 * conversion command_from_json applies to the Command dict (members
 * outside keys refused, required keys checked, types coerced as above,
 * recursively). rtype names the command in messages. Returns 0 with *out
 * (caller frees with plist_free), 400 with err set, or 500.
 */
int command_convert(json_t *obj, const struct schema_key *keys, size_t nkeys,
    const char *rtype, plist_t *out, char *err, size_t errsz);

/*
 * Check a raw command plist: an XML plist (plist_safe_parse), a
 * CommandUUID string of 1 to COMMAND_UUID_MAX printable characters, a
 * Command dict with a RequestType Apple's schema knows, and the keys the
 * schema describes of the right type (keys it does not describe are let
 * through: the raw form is the way to send what the schema lags behind
 * on). The stored bytes are buf byte for byte. Returns as
 * command_from_json.
 */
int command_from_plist(
    const char *buf, size_t len, struct command **out, char *err, size_t errsz);

void command_free(struct command *);

/* A random (version 4) UUID in upper case into out. 0, or -1. */
int command_uuid_new(char out[37]);

/*
 * Parse an expiry: RFC 3339, or a number of seconds from now. Either
 * must be after now and at most COMMAND_EXPIRES_MAX seconds (ten years)
 * ahead; anything else is refused. 0 with *out (µs), or -1.
 */
#define COMMAND_EXPIRES_MAX (10LL * 366 * 86400)
int command_expires_parse(const char *, uint64_t now_us, uint64_t *out);

/* What became of one enrollment ID of an enqueue. */
enum command_outcome {
	COMMAND_QUEUED = 0,
	COMMAND_UNKNOWN_ENROLLMENT,
	COMMAND_ALREADY_QUEUED,
	COMMAND_INVALID_ID,
	COMMAND__MAX
};
const char *command_outcome_name(enum command_outcome);

/*
 * Store cmd and queue it to ids[0..nids) in one durable transaction with
 * the given priority (0..255) and expiry (µs, 0 = never). outcome[i] says
 * what became of ids[i]; *nqueued counts the queued ones. Returns 0 when
 * at least one was queued; STORE_EEXIST when the CommandUUID is already
 * known, STORE_ENOTFOUND when no ID could be queued (nothing is stored in
 * either case, outcome is still filled for the latter), or another
 * store_err.
 */
int command_enqueue(struct store *, const struct command *, char *const *ids,
    size_t nids, int priority, uint64_t expires_at,
    enum command_outcome *outcome, size_t *nqueued);
/*
 * The same, and in the same transaction a push for every enrollment the
 * command was queued to (include/picomdm/push.h), unless nopush; push
 * (may be NULL) says per ID whether one was queued or why not.
 * command_enqueue pushes too. check (may be NULL) runs first in that
 * transaction with check_arg, so that what it reads cannot change before
 * the command is queued: a non-zero return (a positive status of its
 * own) refuses the enqueue, nothing is stored, and it is returned.
 */
int command_enqueue_push(struct store *, const struct command *,
    char *const *ids, size_t nids, int priority, uint64_t expires_at,
    int nopush, int (*check)(struct store_txn *, void *), void *check_arg,
    enum command_outcome *outcome, int *push, size_t *nqueued);

/*
 * A plist as JSON: dict -> object, array -> array, string -> string
 * (invalid UTF-8 replaced by U+FFFD), integer -> integer, real -> real
 * (null when not finite), boolean, data -> base64 string, date -> RFC
 * 3339 string. Returns a new reference or NULL (out of memory).
 */
json_t *command_plist_json(plist_t);

/*
 * The ErrorChain of a raw command report, decoded: an array of {"code",
 * "domain", "description", "us_english_description"} (null for what an
 * item lacks or has of another type). A new reference, or NULL when the
 * report has no ErrorChain array or does not parse.
 */
json_t *command_error_chain(const void *raw, size_t len);

/*
 * One stored result as JSON: seq, command_uuid, status, received_at,
 * known, well_formed, length and error_chain (null when none). With full,
 * also the raw report as text ("raw"; "raw_base64" instead when it is
 * not UTF-8) and the report decoded ("plist", with "plist_error" when it
 * does not parse). A new reference or NULL.
 */
json_t *command_result_json(const struct store_result *, int full);

/*
 * One queued command as JSON: command_uuid, request_type (given; may be
 * NULL), priority, status (Queued or NotNow), seq, enqueued_at,
 * expires_at, expired (expiry passed as of now, µs), sent_count,
 * not_now_count, updated_at. A new reference or NULL.
 */
json_t *command_queue_item_json(
    const struct store_queue_item *, const char *request_type, uint64_t now);

/* Is p[0..n) valid UTF-8? In place, replace what is not, and control
 * characters, by '?' (for messages that echo operator input). */
int  command_utf8_valid(const void *, size_t);
void command_utf8_fix(char *);

/* Small JSON helpers: an RFC 3339 time (null for 0), a string or null. */
json_t *command_json_time(uint64_t us);
json_t *command_json_str(const char *);

#endif
