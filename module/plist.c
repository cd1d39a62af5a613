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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <plist/plist.h>

#include "picomdm/plist.h"
#include "picomdm/schema.h"
#include "picomdm/util.h"

static const char *const plist_safe_errs[] = {
    [PLIST_SAFE_OK] = "ok",
    [PLIST_SAFE_EMPTY] = "empty body",
    [PLIST_SAFE_NOT_XML] = "not an XML plist",
    [PLIST_SAFE_TOO_DEEP] = "plist nested too deeply",
    [PLIST_SAFE_MALFORMED] = "malformed plist",
    [PLIST_SAFE_NOT_UTF8] = "plist is not valid UTF-8 XML text",
    [PLIST_SAFE_AMBIGUOUS] = "plist outside the strict form",
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
 * The strict form. picomdm keeps raw messages and hands them on (dump,
 * API), so a body that another conforming plist parser (Apple's, Python's
 * plistlib, an XML library) would read differently from libplist 2.2 is
 * refused rather than repaired. The checks below were found by reading
 * what libplist 2.2 does silently, and are proven by the differential
 * test (tests/plist-canon.c, tests/plist-diff.py): every fuzz corpus input
 * accepted here is read by plistlib to the same values.
 *
 *   - the whole body is valid UTF-8 (no overlong forms, surrogates or
 *     code points past U+10FFFF) holding only XML 1.0 characters; an XML
 *     declaration, if any, comes first and names no encoding but UTF-8
 *     (an XML parser decodes by the declaration, libplist never does);
 *   - a DOCTYPE (without internal subset) and comments only between
 *     elements; no other processing instruction, no CDATA section;
 *   - only the elements plist, dict, array, key, string, integer, real,
 *     date, data, true, false, spelled exactly; attributes only on plist;
 *     no text but white space between elements;
 *   - a dict holds key/value pairs (no key without a value, no value
 *     without a key), no key twice; the document holds one value, in
 *     an optional plist element, and nothing after it;
 *   - in key and string: the five named entities, and numeric character
 *     references only to XML characters (libplist 2.2 also decodes
 *     surrogates and C0 controls, which XML refuses), no raw carriage return (XML turns CR LF into LF, libplist
 *     keeps it), no "]]>";
 *   - integer: -?(0|[1-9][0-9]*) within a signed 64-bit integer (libplist
 *     reads with strtoull base 0: "010" would be 8, "0x10" 16, and it
 *     saturates or wraps what is out of range);
 *   - real: -?[0-9]+(.[0-9]+)?([eE][+-]?[0-9]+)? (no "nan", "inf", hex
 *     floats or underscores, which atof() and other parsers disagree on);
 *   - date: YYYY-MM-DDTHH:MM:SSZ, a real calendar date and time between
 *     1933 and 2068 (libplist 2.2 normalises 2024-02-30 to March 1st,
 *     reads "2024" as 1970, and hands out seconds since 2001 in 32 bits);
 *   - data: base64 with white space, correct padding and zero pad bits
 *     (libplist and lenient decoders skip junk and stray '=' differently);
 *   - true and false empty; no entity references outside key and string;
 * and then libplist's tree must hold exactly the values and keys of the
 * text (no key twice, nothing dropped or merged), and no dict may be a
 * lone CF$UID key (Apple's CFPropertyList reads {CF$UID: n} as a UID,
 * libplist 2.2 and plistlib as a dict).
 */
struct strict {
	const char *b;
	size_t      len;
	size_t      values; /* value elements in the text */
	size_t      keys;   /* key elements in the text */
	int         depth;
	int         maxc;   /* deepest nesting of dict and array elements */
	char        kind[PLIST_DEPTH_MAX + 2]; /* 'p'list, 'd'ict, 'a'rray */
	char        want[PLIST_DEPTH_MAX + 2]; /* dict: a key awaits its value;
	                                        * plist: holds its value */
	int         roots;
};

/*
 * The tree of a body in the strict form, built while strict_scan reads it
 * (the common case needs no second parse): the container open at each
 * depth, the key awaiting its value there, and the root. Values whose
 * reading is libplist's own business (real, date, CDATA sections and
 * character references in text) stop the building (ok = 0), and
 * plist_from_xml() makes the tree as before; so do a failed allocation,
 * a key given twice in one dict and a lone CF$UID key (strict_tree
 * refuses those from libplist's tree).
 */
struct build {
	int         ok;
	plist_t     root;
	plist_t     node[PLIST_DEPTH_MAX + 2];
	const char *key[PLIST_DEPTH_MAX + 2]; /* raw text of the pending key */
	size_t      keylen[PLIST_DEPTH_MAX + 2];
};

/* The five named entities the strict form allows in key and string. */
static const struct {
	const char *name;
	size_t      len;
	char        c;
} xml_ents[] = { { "&amp;", 5, '&' }, { "&lt;", 4, '<' }, { "&gt;", 4, '>' },
	{ "&quot;", 6, '"' }, { "&apos;", 6, '\'' } };
#define XML_ENTS (sizeof(xml_ents) / sizeof(xml_ents[0]))

/* Bytes 0x20 to 0x7f in each of the 8 lanes of a word, and their top bits. */
#define UTF8_LANES_20 0x2020202020202020ULL
#define UTF8_LANES_80 0x8080808080808080ULL

/* Is the body valid UTF-8 of XML 1.0 characters only? */
static int
strict_utf8(const unsigned char *p, size_t n)
{
	size_t   i = 0, k, more;
	uint32_t c;
	uint64_t w;

	while (i < n) {
		/*
		 * Eight bytes at once while all are printable ASCII (0x20 to
		 * 0x7f): a byte with its top bit set, or one below 0x20 (its
		 * lane borrows in w - 0x20...), leaves a top bit in the test.
		 * A borrow only ever comes from such a byte, so a zero test
		 * proves all eight; anything else goes byte by byte below.
		 */
		if (n - i >= 8) {
			memcpy(&w, p + i, sizeof(w));
			if ((((w - UTF8_LANES_20) | w) & UTF8_LANES_80) == 0) {
				i += 8;
				continue;
			}
		}
		c = p[i];
		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				return -1;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1;
			c &= 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2;
			c &= 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3;
			c &= 0x07;
		} else
			return -1;
		if (n - i <= more)
			return -1;
		for (k = 1; k <= more; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return -1;
			c = (c << 6) | (p[i + k] & 0x3f);
		}
		if ((more == 2 && c < 0x800) || (more == 3 && c < 0x10000) ||
		    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff) ||
		    c == 0xfffe || c == 0xffff)
			return -1;
		i += more + 1;
	}
	return 0;
}

static int
strict_digits(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return n > 0;
}

/* -?(0|[1-9][0-9]*) within int64_t. */
static int
strict_integer(const char *s, size_t n)
{
	const char *lim = "9223372036854775807";
	int	    neg = n > 0 && s[0] == '-';

	if (neg) {
		s++;
		n--;
		lim = "9223372036854775808";
	}
	if (!strict_digits(s, n) || (n > 1 && s[0] == '0') || n > 19)
		return -1;
	if (n == 19 && memcmp(s, lim, 19) > 0)
		return -1;
	return 0;
}

/* -?[0-9]+(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
strict_real(const char *s, size_t n)
{
	size_t i = 0, j;

	if (i < n && s[i] == '-')
		i++;
	for (j = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (i == j)
		return -1;
	if (i < n && s[i] == '.') {
		for (j = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == j)
			return -1;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (j = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == j || i - j > 4)
			return -1;
	}
	return i == n ? 0 : -1;
}

static int
strict_num(const char *s, size_t n)
{
	int v = 0;

	while (n-- > 0)
		v = v * 10 + (*s++ - '0');
	return v;
}

/*
 * YYYY-MM-DDTHH:MM:SSZ, a real date, 1933 to 2068: libplist 2.2 hands a
 * date out as 32-bit seconds since 2001 (plist_get_date_val).
 */
static int
strict_date(const char *s, size_t n)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
		30, 31 };
	int y, mo, d, md;

	if (n != 20 || !strict_digits(s, 4) || s[4] != '-' ||
	    !strict_digits(s + 5, 2) || s[7] != '-' ||
	    !strict_digits(s + 8, 2) || s[10] != 'T' ||
	    !strict_digits(s + 11, 2) || s[13] != ':' ||
	    !strict_digits(s + 14, 2) || s[16] != ':' ||
	    !strict_digits(s + 17, 2) || s[19] != 'Z')
		return -1;
	y = strict_num(s, 4);
	mo = strict_num(s + 5, 2);
	d = strict_num(s + 8, 2);
	if (y < 1933 || y > 2068 || mo < 1 || mo > 12)
		return -1;
	md = mdays[mo - 1];
	if (mo == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		md = 29;
	if (d < 1 || d > md || strict_num(s + 11, 2) > 23 ||
	    strict_num(s + 14, 2) > 59 || strict_num(s + 17, 2) > 59)
		return -1;
	return 0;
}

/* Base64 with white space; '=' only as final padding; pad bits zero. */
static int
strict_data(const char *s, size_t n)
{
	size_t i, m = 0, pad = 0;
	int    v, last = 0;

	for (i = 0; i < n; i++) {
		if (scan_is_ws(s[i]))
			continue;
		if (s[i] == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = b64_val((unsigned char)s[i])) < 0)
			return -1;
		last = v;
		m++;
	}
	if (pad > 2 || (m + pad) % 4 != 0 || (pad > 0 && (m + pad) == 0))
		return -1;
	if ((pad == 1 && (last & 0x03) != 0) ||
	    (pad == 2 && (last & 0x0f) != 0))
		return -1;
	return 0;
}

/*
 * A numeric character reference at s[0..n) ("&#...;"): its length, or 0
 * unless it names an XML 1.0 character (libplist 2.2 also decodes
 * surrogates and C0 controls, which XML refuses).
 */
static size_t
strict_charref(const char *s, size_t n)
{
	uint32_t c = 0;
	size_t	 i = 2, j;
	int	 hex = n > 2 && s[2] == 'x';

	if (hex)
		i++;
	for (j = i; i < n && s[i] != ';'; i++) {
		int v = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' :
		    hex && s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 :
		    hex && s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 10 : -1;

		if (v < 0 || i - j >= 8)
			return 0;
		c = c * (hex ? 16 : 10) + (uint32_t)v;
	}
	if (i == j || i == n)
		return 0;
	if (!(c == 0x9 || c == 0xa || c == 0xd || (c >= 0x20 && c <= 0xd7ff) ||
	    (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff)))
		return 0;
	return i + 1;
}

/*
 * Character data of key and string (between CDATA sections): the five
 * named entities and references to XML characters only, no raw CR (XML
 * turns CR LF into LF, libplist keeps both), no "]]>".
 */
static int
strict_text(const char *s, size_t n)
{
	size_t i, k, m;

	for (i = 0; i < n; i++) {
		if (s[i] == '\r')
			return -1;
		if (s[i] == '>' && i >= 2 && s[i - 1] == ']' && s[i - 2] == ']')
			return -1;
		if (s[i] != '&')
			continue;
		if (scan_starts(s, n, i, "&#")) {
			if ((m = strict_charref(s + i, n - i)) == 0)
				return -1;
			i += m - 1;
			continue;
		}
		for (k = 0; k < XML_ENTS; k++)
			if (scan_starts(s, n, i, xml_ents[k].name))
				break;
		if (k == XML_ENTS)
			return -1;
	}
	return 0;
}

/* A value or key element starts: is it allowed where it stands? */
static int
strict_place(struct strict *st, int is_key)
{
	int d = st->depth;

	if (d == 0) {
		if (is_key || st->roots > 0)
			return -1;
		st->roots++;
		return 0;
	}
	switch (st->kind[d]) {
	case 'p':
		if (is_key || st->want[d])
			return -1;
		st->want[d] = 1;
		st->roots++;
		return 0;
	case 'd':
		if (is_key == st->want[d])
			return -1;
		st->want[d] = (char)is_key;
		return 0;
	default:
		return is_key ? -1 : 0;
	}
}

/* Stop building: what was built is freed; libplist makes the tree. */
static void
build_stop(struct build *b)
{
	plist_free(b->root);
	b->root = NULL;
	b->ok = 0;
}

/*
 * The text of a key or string (strict_text has checked it) with its five
 * named entities decoded, NUL-terminated: in tmp when it fits, else in a
 * copy *heap the caller frees. NULL for a character reference (libplist's
 * reading decides those) or when memory runs out.
 */
static char *
build_text(const char *s, size_t n, char *tmp, size_t tmplen, char **heap)
{
	const char *amp;
	char	   *o;
	size_t	    i = 0, j = 0, k;

	*heap = NULL;
	if (n < tmplen)
		o = tmp;
	else if ((o = *heap = malloc(n + 1)) == NULL)
		return NULL;
	while ((amp = memchr(s + i, '&', n - i)) != NULL) {
		memcpy(o + j, s + i, (size_t)(amp - (s + i)));
		j += (size_t)(amp - (s + i));
		i = (size_t)(amp - s);
		for (k = 0; k < XML_ENTS; k++)
			if (scan_starts(s, n, i, xml_ents[k].name))
				break;
		if (k == XML_ENTS) {
			free(*heap);
			*heap = NULL;
			return NULL;
		}
		o[j++] = xml_ents[k].c;
		i += xml_ents[k].len;
	}
	memcpy(o + j, s + i, n - i);
	o[j + n - i] = '\0';
	return o;
}

/* Place value n where the scan stands (strict_place has allowed it). */
static void
build_place(struct build *b, const struct strict *st, plist_t n)
{
	char  tmp[128], *heap, *key;
	int   d = st->depth;

	if (n == NULL) {
		build_stop(b);
		return;
	}
	if (d == 0 || st->kind[d] == 'p') {
		b->root = n;
		return;
	}
	if (st->kind[d] == 'a') {
		plist_array_append_item(b->node[d], n);
		return;
	}
	/* A key given twice: libplist's tree and strict_tree decide. */
	if ((key = build_text(b->key[d], b->keylen[d], tmp, sizeof(tmp),
	    &heap)) == NULL || plist_dict_get_item(b->node[d], key) != NULL) {
		free(heap);
		plist_free(n);
		build_stop(b);
		return;
	}
	plist_dict_set_item(b->node[d], key, n);
	free(heap);
}

/* The value of leaf element k (strict_scan's leaves[]) from its checked
 * text s[0..n); NULL when libplist is to read it (see struct build). */
static plist_t
build_leaf(size_t k, const char *s, size_t n)
{
	char	       tmp[128], *heap, *str;
	unsigned char *data;
	plist_t	       v = NULL;
	uint64_t       u = 0;
	size_t	       i, len;

	switch (k) {
	case 1: /* string */
		if ((str = build_text(s, n, tmp, sizeof(tmp), &heap)) == NULL)
			return NULL;
		v = plist_new_string(str);
		free(heap);
		return v;
	case 2: /* integer: -?(0|[1-9][0-9]*) within int64_t */
		for (i = s[0] == '-'; i < n; i++)
			u = u * 10 + (uint64_t)(s[i] - '0');
		return plist_new_uint(s[0] == '-' ? 0 - u : u);
	case 5: /* data */
		for (i = 0; i < n && scan_is_ws(s[i]); i++)
			;
		if (i == n)
			return plist_new_data("", 0);
		if ((data = base64_decode(s, n, &len)) == NULL)
			return NULL;
		v = plist_new_data((const char *)data, len);
		free(data);
		return v;
	case 6:
		return plist_new_bool(1);
	case 7:
		return plist_new_bool(0);
	default: /* real, date */
		return NULL;
	}
}

/*
 * Check buf[0..len) (BOM and leading white space already skipped) against
 * the strict form. Fills the counts in st and, while b->ok, builds the
 * tree in b. 0 or -1.
 */
static int
strict_scan(struct strict *st, const char *buf, size_t len, struct build *b)
{
	static const char *const leaves[] = { "key", "string", "integer",
		"real", "date", "data", "true", "false" };
	/* The prolog as Apple, libplist and plistlib write it, exactly. */
	static const char *const decls[] = {
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>",
		"<?xml version=\"1.0\" encoding=\"utf-8\"?>",
		"<?xml version=\"1.0\"?>",
	};
	static const char *const doctypes[] = {
		"<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
		"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">",
		"<!DOCTYPE plist PUBLIC \"-//Apple Computer//DTD PLIST 1.0//EN\" "
		"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">",
	};
	size_t i = 0, end, ns, ne, ts, te, k;
	int    prolog = 1, closing, selfclose;

	memset(st, 0, sizeof(*st));
	st->b = buf;
	st->len = len;
	for (k = 0; k < sizeof(decls) / sizeof(decls[0]); k++)
		if (scan_starts(buf, len, 0, decls[k])) {
			i = strlen(decls[k]);
			break;
		}
	if (i == 0 && scan_starts(buf, len, 0, "<?"))
		return -1;
	while (i < len) {
		if (buf[i] != '<') {
			if (!scan_is_ws(buf[i]))
				return -1;
			i++;
			continue;
		}
		if (scan_starts(buf, len, i, "<!--")) {
			end = scan_find(buf, len, i + 4, "--");
			if (end == len || !scan_starts(buf, len, end, "-->"))
				return -1;
			i = end + 3;
			continue;
		}
		if (scan_starts(buf, len, i, "<!DOCTYPE")) {
			for (k = 0; k < sizeof(doctypes) / sizeof(doctypes[0]);
			     k++)
				if (scan_starts(buf, len, i, doctypes[k]))
					break;
			if (!prolog || k == sizeof(doctypes) / sizeof(doctypes[0]))
				return -1;
			prolog = 0;
			i += strlen(doctypes[k]);
			continue;
		}
		if (scan_starts(buf, len, i, "<!") ||
		    scan_starts(buf, len, i, "<?"))
			return -1;
		prolog = 0;
		if ((end = scan_markup(buf, len, i + 1, 0, 0)) == len)
			return -1;
		closing = buf[i + 1] == '/';
		selfclose = buf[end - 1] == '/';
		ns = i + 1 + (closing ? 1 : 0);
		for (ne = ns; ne < end && buf[ne] >= 'a' && buf[ne] <= 'z'; ne++)
			;
		if (ne == ns || (closing && selfclose))
			return -1;
		/* After the name: nothing, "/", or (plist only) its version. */
		if (ne < end - (selfclose ? 1 : 0) && (closing ||
		    !scan_starts(buf, len, ns, "plist version=\"1.0\">") ||
		    end != ns + 19))
			return -1;
#define NAME_IS(s) (ne - ns == strlen(s) && memcmp(buf + ns, s, ne - ns) == 0)
		if (NAME_IS("plist")) {
			if (closing) {
				if (st->depth != 1 || st->kind[1] != 'p' ||
				    !st->want[1])
					return -1;
				st->depth--;
			} else if (st->depth != 0 || st->roots > 0 || selfclose)
				return -1;
			else {
				st->depth = 1;
				st->kind[1] = 'p';
				st->want[1] = 0;
			}
			i = end + 1;
			continue;
		}
		if (NAME_IS("dict") || NAME_IS("array")) {
			char    kind = buf[ns];
			plist_t node = NULL;

			if (closing) {
				if (st->depth == 0 || st->kind[st->depth] !=
				    kind || (kind == 'd' && st->want[st->depth]))
					return -1;
				/* A lone CF$UID key: strict_tree refuses it. */
				if (b->ok && kind == 'd' &&
				    plist_dict_get_size(b->node[st->depth]) == 1 &&
				    plist_dict_get_item(b->node[st->depth],
				    "CF$UID") != NULL)
					build_stop(b);
				st->depth--;
				i = end + 1;
				continue;
			}
			if (strict_place(st, 0) == -1)
				return -1;
			st->values++;
			if (b->ok) {
				node = kind == 'd' ? plist_new_dict() :
				    plist_new_array();
				build_place(b, st, node);
			}
			if (!selfclose) {
				if (st->depth > PLIST_DEPTH_MAX)
					return -1;
				st->depth++;
				if (b->ok)
					b->node[st->depth] = node;
				st->kind[st->depth] = kind;
				st->want[st->depth] = 0;
				/* As plist_xml_depth counts: not plist. */
				if (st->depth - (st->kind[1] == 'p') > st->maxc)
					st->maxc = st->depth -
					    (st->kind[1] == 'p');
			}
			i = end + 1;
			continue;
		}
		for (k = 0; k < sizeof(leaves) / sizeof(leaves[0]); k++)
			if (NAME_IS(leaves[k]))
				break;
		if (k == sizeof(leaves) / sizeof(leaves[0]) || closing)
			return -1;
		if (strict_place(st, k == 0) == -1)
			return -1;
		if (k == 0)
			st->keys++;
		else
			st->values++;
		/* The text, up to exactly "</name>". */
		ts = te = end + 1;
		if (!selfclose) {
			const char *lt;

			/* key and string: character data and CDATA. */
			while ((lt = memchr(buf + te, '<', len - te)) != NULL) {
				if (k > 1 || !scan_starts(buf, len,
				    (size_t)(lt - buf), "<![CDATA[")) {
					break;
				}
				if (strict_text(buf + te,
				    (size_t)(lt - buf) - te) == -1)
					return -1;
				te = (size_t)(lt - buf) + 9;
				if (b->ok) /* CDATA: libplist's */
					build_stop(b);
				end = scan_find(buf, len, te, "]]>");
				if (end == len || memchr(buf + te, '\r',
				    end - te) != NULL)
					return -1;
				te = ts = end + 3;
			}
			if (lt == NULL)
				return -1;
			te = (size_t)(lt - buf);
			if (!scan_starts(buf, len, te, "</") ||
			    !scan_starts(buf, len, te + 2, leaves[k]) ||
			    !scan_starts(buf, len, te + 2 + ne - ns, ">"))
				return -1;
			end = te + 2 + (ne - ns);
		}
		switch (k) {
		case 0: /* key */
		case 1: /* string */
			if (strict_text(buf + ts, te - ts) == -1)
				return -1;
			break;
		case 2:
			if (strict_integer(buf + ts, te - ts) == -1)
				return -1;
			break;
		case 3:
			if (strict_real(buf + ts, te - ts) == -1)
				return -1;
			break;
		case 4:
			if (strict_date(buf + ts, te - ts) == -1)
				return -1;
			break;
		case 5:
			if (strict_data(buf + ts, te - ts) == -1)
				return -1;
			break;
		default: /* true, false */
			if (te != ts)
				return -1;
			break;
		}
		if (b->ok) {
			if (k == 0) {
				b->key[st->depth] = buf + ts;
				b->keylen[st->depth] = te - ts;
			} else
				build_place(b, st, build_leaf(k, buf + ts,
				    te - ts));
		}
		i = end + 1;
#undef NAME_IS
	}
	return st->depth == 0 && st->roots == 1 ? 0 : -1;
}

/*
 * Does libplist's tree hold exactly what the text does: as many values
 * and keys, no key twice in a dict, no type the text cannot spell (a UID)?
 * Counts into *values and *keys; -1 on a mismatch of kind.
 */
static int
strict_tree(plist_t node, int depth, size_t *values, size_t *keys)
{
	plist_dict_iter it = NULL;
	plist_t		val = NULL;
	char	       *key = NULL;
	char	      **seen = NULL;
	uint32_t	i, n;
	size_t		m = 0, j;
	int		rc = -1;

	if (depth > PLIST_DEPTH_MAX + 1)
		return -1;
	(*values)++;
	switch (plist_get_node_type(node)) {
	case PLIST_BOOLEAN:
	case PLIST_UINT:
	case PLIST_REAL:
	case PLIST_STRING:
	case PLIST_DATA:
	case PLIST_DATE:
		return 0;
	case PLIST_ARRAY:
		n = plist_array_get_size(node);
		for (i = 0; i < n; i++)
			if (strict_tree(plist_array_get_item(node, i),
			    depth + 1, values, keys) == -1)
				return -1;
		return 0;
	case PLIST_DICT:
		break;
	default:
		return -1;
	}
	n = plist_dict_get_size(node);
	if (n > 0 && (seen = calloc(n, sizeof(*seen))) == NULL)
		return -1;
	plist_dict_new_iter(node, &it);
	if (it == NULL && n > 0)
		goto out;
	for (;;) {
		key = NULL;
		val = NULL;
		plist_dict_next_item(node, it, &key, &val);
		if (key == NULL || val == NULL)
			break;
		for (j = 0; j < m; j++)
			if (strcmp(seen[j], key) == 0)
				goto out;
		if (m == n)
			goto out;
		seen[m++] = key;
		key = NULL;
		(*keys)++;
		if (strict_tree(val, depth + 1, values, keys) == -1)
			goto out;
	}
	/* Apple's parser (and later libplist) reads {CF$UID: n} as a UID. */
	rc = m == n && !(n == 1 && strcmp(seen[0], "CF$UID") == 0) ? 0 : -1;
out:
	free(key);
	for (j = 0; j < m; j++)
		free(seen[j]);
	free(seen);
	free(it);
	return rc;
}

/*
 * Parse an untrusted XML plist whose root must be a dict. The checks run
 * cheapest first and libplist runs last: empty, binary ("bplist"), NUL
 * bytes, not starting with '<' (after an optional UTF-8 BOM and
 * whitespace), too long for libplist's uint32_t length, nesting deeper
 * than PLIST_DEPTH_MAX, not UTF-8 text of XML characters, then
 * plist_from_xml() on a NUL-terminated copy (libplist 2.2 calls
 * strtoull()/atof() on its input in place), and last the strict form
 * (strict_scan, strict_tree): what libplist accepted but another parser
 * could read differently is PLIST_SAFE_AMBIGUOUS. A body the strict scan
 * accepts (most are) skips the separate depth pass: the scan bounds the
 * same depth; the verdicts are the ones of the order above. Such a body
 * is also built into its tree by the scan itself (struct build), so
 * libplist never reads it, unless build is 0 or it holds what the
 * builder leaves to libplist (reals, dates, CDATA sections, character
 * references, a key twice, a lone CF$UID key). On success *out is a tree
 * the caller frees with plist_free(); otherwise *out is NULL. Returns enum
 * plist_safe_err.
 */
static enum plist_safe_err
safe_parse(const char *buf, size_t len, plist_t *out, int build)
{
	enum plist_safe_err rc = PLIST_SAFE_MALFORMED;
	plist_t		    root = NULL;
	char		   *copy = NULL;
	size_t		    off = 0, tvalues = 0, tkeys = 0;
	struct strict	    st;
	struct build	    b;
	int		    depth, strict;

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
	/* An XML declaration must come first (XML 1.0, 2.8). */
	if (off > 0 && (off != 3 || buf[0] != '\xef') &&
	    scan_starts(buf, len, off, "<?xml"))
		return PLIST_SAFE_AMBIGUOUS;
	if (len - off > UINT32_MAX - 1)
		return PLIST_SAFE_MALFORMED;

	/*
	 * The common case first: a body in the strict form, nested no deeper
	 * than plist_xml_depth() allows (for such a body the scan counts the
	 * same depth: no comment, CDATA section or text can hold markup it
	 * would count), then UTF-8. Any other body takes the checks in their
	 * order, so that it is refused for the same reason as ever.
	 */
	memset(&b, 0, sizeof(b));
	b.ok = build;
	strict = strict_scan(&st, buf + off, len - off, &b) == 0 &&
	    st.maxc <= PLIST_DEPTH_MAX &&
	    strict_utf8((const unsigned char *)buf, len) == 0;
	/* Built while scanning: libplist's reading is not needed. */
	if (strict && b.ok) {
		root = b.root;
		if (root == NULL || plist_get_node_type(root) != PLIST_DICT)
			goto out;
		*out = root;
		return PLIST_SAFE_OK;
	}
	build_stop(&b);
	if (!strict) {
		depth = plist_xml_depth(buf + off, len - off, PLIST_DEPTH_MAX);
		if (depth < 0)
			return PLIST_SAFE_MALFORMED;
		if (depth > PLIST_DEPTH_MAX)
			return PLIST_SAFE_TOO_DEEP;
		if (strict_utf8((const unsigned char *)buf, len) == -1)
			return PLIST_SAFE_NOT_UTF8;
	}

	if ((copy = malloc(len - off + 1)) == NULL)
		goto out;
	memcpy(copy, buf + off, len - off);
	copy[len - off] = '\0';
	plist_from_xml(copy, (uint32_t)(len - off), &root);
	if (root == NULL)
		goto out;
	if (plist_get_node_type(root) != PLIST_DICT)
		goto out;
	/* What libplist read must be what the text says (strict form; b
	 * has stopped, so this scan only checks). */
	if ((!strict && strict_scan(&st, buf + off, len - off, &b) == -1) ||
	    strict_tree(root, 0, &tvalues, &tkeys) == -1 ||
	    tvalues != st.values || tkeys != st.keys) {
		rc = PLIST_SAFE_AMBIGUOUS;
		goto out;
	}
	*out = root;
	root = NULL;
	rc = PLIST_SAFE_OK;
out:
	plist_free(root);
	free(copy);
	return rc;
}

enum plist_safe_err
plist_safe_parse(const char *buf, size_t len, plist_t *out)
{
	return safe_parse(buf, len, out, 1);
}

enum plist_safe_err
plist_safe_parse_libplist(const char *buf, size_t len, plist_t *out)
{
	return safe_parse(buf, len, out, 0);
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

/* See plist.h. */
int
plist_is_schema_type(plist_t node, enum schema_type t)
{
	plist_type pt = plist_get_node_type(node);

	switch (t) {
	case SCHEMA_STRING:
		return pt == PLIST_STRING;
	case SCHEMA_DATA:
		return pt == PLIST_DATA;
	case SCHEMA_BOOL:
		return pt == PLIST_BOOLEAN;
	case SCHEMA_INTEGER:
		return pt == PLIST_UINT;
	case SCHEMA_REAL:
		return pt == PLIST_REAL || pt == PLIST_UINT;
	case SCHEMA_DATE:
		return pt == PLIST_DATE;
	case SCHEMA_DICT:
		return pt == PLIST_DICT;
	case SCHEMA_ARRAY:
		return pt == PLIST_ARRAY;
	case SCHEMA_ANY:
		return 1;
	default:
		return 0;
	}
}
