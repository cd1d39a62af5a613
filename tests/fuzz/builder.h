/*
 * builder.h - the one check that the tree plist_safe_parse() builds while
 * it scans (module/plist.c, struct build) is libplist's own: the same
 * verdict from plist_safe_parse_libplist() and, when accepted, the same
 * XML from plist_to_xml() (types, integer widths, key order, data bytes).
 * Used by tests/plist-canon.c (the differential test's "builder" member)
 * and tests/fuzz/fuzz-checkin.c (an abort).
 */
#ifndef PICOMDM_TESTS_BUILDER_H
#define PICOMDM_TESTS_BUILDER_H

#include <stdlib.h>
#include <string.h>

#include <plist/plist.h>

#include "picomdm/plist.h"

/* NULL when buf's verdict e and tree root (when e is PLIST_SAFE_OK) are
 * libplist's; else what differs. */
static inline const char *
builder_differs(const char *buf, size_t n, enum plist_safe_err e,
    plist_t root)
{
	plist_t     lib = NULL;
	char       *x1 = NULL, *x2 = NULL;
	size_t      n1 = 0, n2 = 0;
	const char *why = NULL;

	if (plist_safe_parse_libplist(buf, n, &lib) != e)
		why = "another verdict than libplist's";
	else if (e == PLIST_SAFE_OK &&
	    (plist_to_xml_buf(root, &x1, &n1) == -1 ||
		plist_to_xml_buf(lib, &x2, &n2) == -1))
		why = "cannot serialise";
	else if (e == PLIST_SAFE_OK && (n1 != n2 || memcmp(x1, x2, n1) != 0))
		why = "another tree than libplist's";
	free(x1);
	free(x2);
	plist_free(lib);
	return why;
}

#endif
