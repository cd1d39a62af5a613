/*
 * schema.c - lookups in the tables scripts/gen-schema generates from
 * Apple's device-management schema (module/schema_tables.c).
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

#include "picomdm/schema.h"

static const char *const schema_type_names[SCHEMA__MAX] = {
    [SCHEMA_STRING] = "string",
    [SCHEMA_DATA] = "data",
    [SCHEMA_BOOL] = "boolean",
    [SCHEMA_INTEGER] = "integer",
    [SCHEMA_REAL] = "real",
    [SCHEMA_DATE] = "date",
    [SCHEMA_DICT] = "dictionary",
    [SCHEMA_ARRAY] = "array",
    [SCHEMA_ANY] = "any",
};

/*
 * Binary search of a message table; the generator sorts both tables by
 * name in strcmp() order. Returns the entry or NULL.
 */
static const struct schema_msg *
schema_msg_find(const struct schema_msg *tab, size_t len, const char *name)
{
	size_t lo = 0, hi = len;

	if (name == NULL)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int    c = strcmp(name, tab[mid].name);

		if (c == 0)
			return &tab[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* The check-in message named by MessageType, or NULL. */
const struct schema_msg *
schema_checkin_find(const char *name)
{
	return schema_msg_find(schema_checkin, schema_checkin_len, name);
}

/* The command named by RequestType, or NULL. */
const struct schema_msg *
schema_command_find(const char *name)
{
	return schema_msg_find(schema_commands, schema_commands_len, name);
}

/*
 * A key in one key array (kept in Apple's order, so a linear scan; the
 * arrays are short). Nameless entries (array items) never match. Returns
 * the key or NULL. The first byte is compared inline before strcmp(): most
 * entries differ there, and this runs on every msg_str() of a request
 * (about 250 instructions a call with strcmp() alone, BENCHMARKS.md,
 * Round 2, "2026-12-05, 02:05").
 */
const struct schema_key *
schema_key_find(const struct schema_key *keys, size_t n, const char *name)
{
	size_t i;

	if (keys == NULL || name == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		const char *k = keys[i].key;

		if (k != NULL && k[0] == name[0] && strcmp(k, name) == 0)
			return &keys[i];
	}
	return NULL;
}

/* Apple's name for a type ("string", "dictionary", ...); "?" if unknown. */
const char *
schema_type_name(enum schema_type t)
{
	if ((unsigned)t >= SCHEMA__MAX)
		return "?";
	return schema_type_names[t];
}
