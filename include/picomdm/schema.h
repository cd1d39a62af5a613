/*
 * schema.h - key tables generated from Apple's device-management schema
 * (the mdm/checkin and mdm/commands YAML files) by scripts/gen-schema; the
 * generated module/schema_tables.c is committed.
 */
#ifndef PICOMDM_SCHEMA_H
#define PICOMDM_SCHEMA_H

#include <stddef.h>

enum schema_type {
	SCHEMA_STRING = 0,
	SCHEMA_DATA,
	SCHEMA_BOOL,
	SCHEMA_INTEGER,
	SCHEMA_REAL,
	SCHEMA_DATE,
	SCHEMA_DICT,
	SCHEMA_ARRAY,
	SCHEMA_ANY,
	SCHEMA__MAX
};

/*
 * One key. required is 1 only when Apple marks the key required for every
 * platform and channel (no supportedOS condition); keys required only on
 * some platform or channel (UDID, NotOnConsole, ...) are 0 and checked by
 * code that knows the channel. For SCHEMA_ARRAY, subkeys describe one item
 * (nsubkeys 1, key NULL); for SCHEMA_DICT, its keys.
 */
struct schema_key {
	const char              *key;
	enum schema_type         type;
	int                      required;
	const struct schema_key *subkeys;
	size_t                   nsubkeys;
};

/* One message: a check-in MessageType or a command RequestType. */
struct schema_msg {
	const char              *name;
	const struct schema_key *keys; /* check-in keys, or the Command dict's */
	size_t                   nkeys;
	const struct schema_key *rkeys; /* commands: response keys (may be 0) */
	size_t                   nrkeys;
};

extern const struct schema_msg schema_checkin[];
extern const size_t            schema_checkin_len;
extern const struct schema_msg schema_commands[];
extern const size_t            schema_commands_len;
/* Profile payloads by PayloadType (schema_profiles.c, --profiles). */
extern const struct schema_msg schema_profiles[];
extern const size_t            schema_profiles_len;

/* Look up by name; NULL when absent. */
const struct schema_msg *schema_checkin_find(const char *);
const struct schema_msg *schema_command_find(const char *);
const struct schema_key *schema_key_find(const struct schema_key *, size_t,
    const char *);
const char *schema_type_name(enum schema_type);

#endif
