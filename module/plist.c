/*
 * plist.c - the only door from untrusted bytes to libplist.
 *
 * Debian's libplist 2.2 guesses formats, has no nesting limit and recurses
 * when it frees a tree, so a few kilobytes of "<array>" crash it. Bodies
 * are therefore checked here before libplist sees them: no NUL bytes, XML
 * only (never binary, never JSON), and a nesting depth found by a byte
 * scanner that does not allocate.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <plist/plist.h>

#include "picomdm/plist.h"

static const char *const plist_safe_errs[] = {
    [PLIST_SAFE_OK] = "ok",
    [PLIST_SAFE_EMPTY] = "empty body",
    [PLIST_SAFE_NOT_XML] = "not an XML plist",
    [PLIST_SAFE_TOO_DEEP] = "plist nested too deeply",
    [PLIST_SAFE_MALFORMED] = "malformed plist",
};

/* XML white space, as libplist reads it. */
static int
scan_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Does buf[at..len) begin with the string s? */
static int
scan_starts(const char *buf, size_t len, size_t at, const char *s)
{
	size_t n = strlen(s);

	return at <= len && len - at >= n && memcmp(buf + at, s, n) == 0;
}

/*
 * Index of the first occurrence of s in buf[at..len), or len when there is
 * none. Used for the ends of comments and CDATA sections, which (like
 * libplist) honour no quoting.
 */
static size_t
scan_find(const char *buf, size_t len, size_t at, const char *s)
{
	size_t n = strlen(s);

	while (at < len && len - at >= n) {
		const char *p = memchr(buf + at, s[0], len - at);

		if (p == NULL)
			break;
		at = (size_t)(p - buf);
		if (len - at >= n && memcmp(p, s, n) == 0)
			return at;
		at++;
	}
	return len;
}

/*
 * Find the '>' that ends the markup starting at buf[at] (just after "<",
 * "<?" or "<!DOCTYPE"). Returns its index, or len when the markup is not
 * closed or is unusual enough that libplist might read it differently:
 * a '<' anywhere inside, a '<' or '>' inside a double-quoted value, a
 * quote in an element name, or (for DOCTYPE) an internal subset '['.
 * libplist skips over double-quoted values when it looks for the end of a
 * tag; refusing quoted '<' and '>' makes both readings agree, so a
 * <dict> can never hide from this scanner inside something libplist reads
 * as markup. pi is 1 for a processing instruction (ends with "?>").
 */
static size_t
scan_markup(const char *buf, size_t len, size_t at, int pi, int doctype)
{
	int inq = 0, inname = !pi && !doctype;

	for (; at < len; at++) {
		char c = buf[at];

		if (inname && scan_is_ws(c))
			inname = 0;
		if (c == '"') {
			if (inname)
				return len;
			inq = !inq;
			continue;
		}
		if (c == '<')
			return len;
		if (inq) {
			if (c == '>')
				return len;
			continue;
		}
		if (doctype && c == '[')
			return len;
		if (c == '>') {
			if (pi && (at == 0 || buf[at - 1] != '?'))
				continue;
			return at;
		}
	}
	return len;
}

/* Is buf[s..e) the name of a container element? Exact when strict. */
static int
scan_is_container(const char *buf, size_t s, size_t e, int strict)
{
	size_t n = e - s;

	if (n == 4)
		return strict ? memcmp(buf + s, "dict", 4) == 0
			      : strncasecmp(buf + s, "dict", 4) == 0;
	if (n == 5)
		return strict ? memcmp(buf + s, "array", 5) == 0
			      : strncasecmp(buf + s, "array", 5) == 0;
	return 0;
}

/*
 * Maximum nesting depth of <dict>/<array> in an XML document, found
 * without parsing or allocating. Comments, CDATA sections, processing
 * instructions and a DOCTYPE (without an internal subset) are skipped;
 * self-closing <dict/> and <array/> do not nest. Returns the depth,
 * max + 1 as soon as the depth passes max, or -1 when a comment, CDATA
 * section or tag is not terminated or is malformed (see scan_markup).
 *
 * When unsure, the scanner errs towards a larger depth: it counts opening
 * tags case-insensitively, ends a tag at its first '>' and never lets a
 * stray closing tag lower the depth below zero.
 */
int
plist_xml_depth(const char *buf, size_t len, int max)
{
	size_t i = 0;
	int    depth = 0, maxd = 0;

	if (buf == NULL)
		return len == 0 ? 0 : -1;
	while (i < len) {
		const char *lt = memchr(buf + i, '<', len - i);
		size_t	    end, ns, ne;
		int	    closing, selfclose;

		if (lt == NULL)
			break;
		i = (size_t)(lt - buf);
		if (scan_starts(buf, len, i, "<!--")) {
			end = scan_find(buf, len, i + 4, "-->");
			if (end == len)
				return -1;
			i = end + 3;
			continue;
		}
		if (scan_starts(buf, len, i, "<![CDATA[")) {
			end = scan_find(buf, len, i + 9, "]]>");
			if (end == len)
				return -1;
			i = end + 3;
			continue;
		}
		if (scan_starts(buf, len, i, "<?")) {
			end = scan_markup(buf, len, i + 2, 1, 0);
			if (end == len)
				return -1;
			i = end + 1;
			continue;
		}
		if (scan_starts(buf, len, i, "<!DOCTYPE")) {
			end = scan_markup(buf, len, i + 9, 0, 1);
			if (end == len)
				return -1;
			i = end + 1;
			continue;
		}
		if (scan_starts(buf, len, i, "<!"))
			return -1;

		/* An element tag: <name ...>, </name ...> or <name .../>. */
		end = scan_markup(buf, len, i + 1, 0, 0);
		if (end == len)
			return -1;
		closing = buf[i + 1] == '/';
		selfclose = buf[end - 1] == '/';
		ns = i + 1 + (closing ? 1 : 0);
		for (ne = ns; ne < end; ne++)
			if (scan_is_ws(buf[ne]) || buf[ne] == '/')
				break;
		if (!closing && !selfclose &&
		    scan_is_container(buf, ns, ne, 0)) {
			depth++;
			if (depth > maxd)
				maxd = depth;
			if (maxd > max)
				return max + 1;
		} else if (closing && depth > 0 &&
		    scan_is_container(buf, ns, ne, 1))
			depth--;
		i = end + 1;
	}
	return maxd;
}

/*
 * Parse an untrusted XML plist whose root must be a dict. The checks run
 * cheapest first and libplist runs last: empty, binary ("bplist"), NUL
 * bytes, not starting with '<' (after an optional UTF-8 BOM and
 * whitespace), too long for libplist's uint32_t length, nesting deeper
 * than PLIST_DEPTH_MAX, then plist_from_xml() on a NUL-terminated copy
 * (libplist 2.2 calls strtoull()/atof() on its input in place). On
 * success *out is a tree the caller frees with plist_free(); otherwise
 * *out is NULL. Returns enum plist_safe_err.
 */
enum plist_safe_err
plist_safe_parse(const char *buf, size_t len, plist_t *out)
{
	enum plist_safe_err rc = PLIST_SAFE_MALFORMED;
	plist_t		    root = NULL;
	char		   *copy = NULL;
	size_t		    off = 0;
	int		    depth;

	if (out == NULL)
		return PLIST_SAFE_MALFORMED;
	*out = NULL;
	if (buf == NULL || len == 0)
		return PLIST_SAFE_EMPTY;
	if (scan_starts(buf, len, 0, "bplist"))
		return PLIST_SAFE_NOT_XML;
	if (memchr(buf, '\0', len) != NULL)
		return PLIST_SAFE_NOT_XML;
	if (scan_starts(buf, len, 0, "\xef\xbb\xbf"))
		off = 3;
	while (off < len && scan_is_ws(buf[off]))
		off++;
	if (off == len)
		return PLIST_SAFE_EMPTY;
	if (buf[off] != '<')
		return PLIST_SAFE_NOT_XML;
	if (len - off > UINT32_MAX - 1)
		return PLIST_SAFE_MALFORMED;

	depth = plist_xml_depth(buf + off, len - off, PLIST_DEPTH_MAX);
	if (depth < 0)
		return PLIST_SAFE_MALFORMED;
	if (depth > PLIST_DEPTH_MAX)
		return PLIST_SAFE_TOO_DEEP;

	if ((copy = malloc(len - off + 1)) == NULL)
		goto out;
	memcpy(copy, buf + off, len - off);
	copy[len - off] = '\0';
	plist_from_xml(copy, (uint32_t)(len - off), &root);
	if (root == NULL)
		goto out;
	if (plist_get_node_type(root) != PLIST_DICT)
		goto out;
	*out = root;
	root = NULL;
	rc = PLIST_SAFE_OK;
out:
	plist_free(root);
	free(copy);
	return rc;
}

/* A short lowercase description of a plist_safe_parse() result. */
const char *
plist_safe_strerror(enum plist_safe_err e)
{
	if ((unsigned)e >= sizeof(plist_safe_errs) / sizeof(plist_safe_errs[0]))
		return "unknown plist error";
	return plist_safe_errs[e];
}

/*
 * Serialise a plist to XML into a malloc'd, NUL-terminated buffer the
 * caller frees with free(); *outlen excludes the NUL. Returns 0 or -1.
 */
int
plist_to_xml_buf(plist_t p, char **out, size_t *outlen)
{
	char	*xml = NULL, *copy = NULL;
	uint32_t len = 0;
	int	 rc = -1;

	if (out == NULL || outlen == NULL)
		return -1;
	*out = NULL;
	*outlen = 0;
	if (p == NULL)
		return -1;
	plist_to_xml(p, &xml, &len);
	if (xml == NULL)
		goto out;
	if ((copy = malloc((size_t)len + 1)) == NULL)
		goto out;
	memcpy(copy, xml, len);
	copy[len] = '\0';
	*out = copy;
	*outlen = len;
	rc = 0;
out:
	if (xml != NULL)
		plist_to_xml_free(xml);
	return rc;
}

/* The value of key in dict when it is a node of type t, else NULL. */
static plist_t
dict_typed(plist_t dict, const char *key, plist_type t)
{
	plist_t node;

	if (dict == NULL || key == NULL ||
	    plist_get_node_type(dict) != PLIST_DICT)
		return NULL;
	node = plist_dict_get_item(dict, key);
	if (node == NULL || plist_get_node_type(node) != t)
		return NULL;
	return node;
}

/*
 * A string value, borrowed from the tree. NULL when absent, of another
 * type, or holding a NUL byte (a C string would silently truncate it).
 */
const char *
plist_dict_str(plist_t dict, const char *key)
{
	plist_t	    node;
	const char *s;
	uint64_t    len = 0;

	if ((node = dict_typed(dict, key, PLIST_STRING)) == NULL)
		return NULL;
	s = plist_get_string_ptr(node, &len);
	if (s == NULL || strlen(s) != len)
		return NULL;
	return s;
}

/*
 * A data value, borrowed from the tree, with its length in *len. Empty
 * data returns a pointer to a static empty buffer (libplist keeps none),
 * so that "present but empty" (SetBootstrapToken: delete) differs from
 * "absent" (NULL).
 */
const unsigned char *
plist_dict_data(plist_t dict, const char *key, size_t *len)
{
	static const unsigned char empty[1];
	plist_t			   node;
	const char		  *p;
	uint64_t		   n = 0;

	if (len != NULL)
		*len = 0;
	if ((node = dict_typed(dict, key, PLIST_DATA)) == NULL)
		return NULL;
	p = plist_get_data_ptr(node, &n);
	if (n > SIZE_MAX)
		return NULL;
	if (len != NULL)
		*len = (size_t)n;
	if (p == NULL || n == 0)
		return empty;
	return (const unsigned char *)p;
}

/* A boolean value into *out (0 or 1). Returns 0, or -1 if absent/other. */
int
plist_dict_bool(plist_t dict, const char *key, int *out)
{
	plist_t node;
	uint8_t v = 0;

	if ((node = dict_typed(dict, key, PLIST_BOOLEAN)) == NULL)
		return -1;
	plist_get_bool_val(node, &v);
	if (out != NULL)
		*out = v != 0;
	return 0;
}
