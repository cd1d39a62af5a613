/*
 * plist.h - the only door from untrusted bytes to libplist.
 *
 * Debian's libplist 2.2 has no depth limit and crashes freeing very deep
 * input, and guesses formats. plist_safe_parse() therefore checks that the
 * body is an XML plist (never binary, never JSON) in the strict form, and
 * builds its tree while it scans; libplist's plist_from_xml() reads only
 * what the builder leaves to it (module/plist.c).
 */
#ifndef PICOMDM_PLIST_H
#define PICOMDM_PLIST_H

#include <stddef.h>

#include <plist/plist.h>

#include "picomdm/schema.h"

#define PLIST_DEPTH_MAX 32

enum plist_safe_err {
	PLIST_SAFE_OK = 0,
	PLIST_SAFE_EMPTY,    /* no bytes */
	PLIST_SAFE_NOT_XML,  /* binary plist or not a plist at all */
	PLIST_SAFE_TOO_DEEP, /* nesting over the cap */
	PLIST_SAFE_MALFORMED, /* libplist refused it */
	PLIST_SAFE_NOT_UTF8,  /* not UTF-8 text of XML characters */
	PLIST_SAFE_AMBIGUOUS  /* outside the strict form (see plist.c): a
	                       * parser other than libplist could read it
	                       * differently */
};

/*
 * Return the maximum nesting depth of <dict>/<array> elements in an XML
 * document, or -1 when a tag is unterminated. Stops counting (returns
 * max + 1) as soon as the depth passes max. Does not allocate.
 */
int plist_xml_depth(const char *, size_t, int max);

/*
 * Parse an XML plist whose root must be a dict. On success *out is set
 * (caller frees with plist_free). Returns enum plist_safe_err. Only the
 * strict form is accepted, what any conforming plist parser reads to the
 * same values as libplist 2.2 (module/plist.c lists the rules); the rest
 * is PLIST_SAFE_AMBIGUOUS.
 */
enum plist_safe_err plist_safe_parse(const char *, size_t, plist_t *out);
/*
 * The same verdicts with every tree made by libplist's plist_from_xml();
 * plist_safe_parse builds most trees itself while it checks the strict
 * form. Tests compare the two: same verdict, same tree.
 */
enum plist_safe_err plist_safe_parse_libplist(const char *, size_t,
    plist_t *out);
const char         *plist_safe_strerror(enum plist_safe_err);

/* Serialise to XML; caller frees with free(). Returns 0 or -1. */
int plist_to_xml_buf(plist_t, char **out, size_t *outlen);

/*
 * Does node have the schema type t (schema.h)? A <real> key also takes an
 * integer, as Apple's own readers do; SCHEMA_ANY takes anything.
 */
int plist_is_schema_type(plist_t node, enum schema_type t);

/*
 * Typed getters on a dict. They return NULL / -1 when the key is absent or
 * has another type. Returned pointers are borrowed from the plist (valid
 * until it is freed); libplist 2.2 string getters copy, so these return
 * pointers into the node through plist_get_string_ptr-like access.
 */
const char          *plist_dict_str(plist_t dict, const char *key);
const unsigned char *plist_dict_data(plist_t dict, const char *key,
    size_t *len);
int                  plist_dict_bool(plist_t dict, const char *key, int *out);

#endif
