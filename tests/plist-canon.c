/*
 * plist-canon.c - what picomdm reads from a plist, in a canonical JSON
 * form, for the differential test (tests/plist-diff.py compares it with
 * Python's plistlib).
 *
 * usage: plist-canon FILE...
 *
 * For each FILE one line: {"file": NAME, "ok": true, "v": VALUE} when
 * plist_safe_parse() accepts it, {"file": NAME, "ok": false, "err": WHY}
 * when it refuses. VALUE is typed so that nothing is lost:
 *
 *	{"d": [[KEY, VALUE], ...]}   dict, pairs in libplist's order
 *	{"a": [VALUE, ...]}          array
 *	{"s": STRING}                string (UTF-8, JSON-escaped)
 *	{"i": "DECIMAL"}             integer (as a string: 64 bits)
 *	{"r": "%.17g"}               real
 *	{"b": true|false}            boolean
 *	{"t": SECONDS}               date, whole seconds since 2001-01-01
 *	{"x": "HEX"}                 data
 *
 * Anything else in the tree (a UID) is printed as {"?": TYPE}, which
 * plistlib never produces, so the comparison fails.
 *
 * Each line also gets "builder": WHY when the tree plist_safe_parse()
 * built itself differs from the one libplist's parser makes
 * (plist_safe_parse_libplist()): another verdict or another tree.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plist/plist.h>

#include "picomdm/plist.h"
#include "fuzz/builder.h"

#define CANON_FILE_MAX (16 * 1024 * 1024)

static void
put_str(const char *s, size_t n)
{
	size_t i;

	putchar('"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void
put_value(plist_t node)
{
	plist_dict_iter it = NULL;
	plist_t		v;
	char	       *key;
	const char     *p;
	uint64_t	u, n;
	uint32_t	i, cnt;
	int32_t		sec, usec;
	uint8_t		b;
	double		r;
	int		first = 1;

	switch (plist_get_node_type(node)) {
	case PLIST_DICT:
		printf("{\"d\":[");
		plist_dict_new_iter(node, &it);
		for (;;) {
			key = NULL;
			v = NULL;
			plist_dict_next_item(node, it, &key, &v);
			if (key == NULL || v == NULL) {
				free(key);
				break;
			}
			printf("%s[", first ? "" : ",");
			first = 0;
			put_str(key, strlen(key));
			putchar(',');
			put_value(v);
			putchar(']');
			free(key);
		}
		free(it);
		printf("]}");
		break;
	case PLIST_ARRAY:
		printf("{\"a\":[");
		cnt = plist_array_get_size(node);
		for (i = 0; i < cnt; i++) {
			printf("%s", i ? "," : "");
			put_value(plist_array_get_item(node, i));
		}
		printf("]}");
		break;
	case PLIST_STRING:
		n = 0;
		p = plist_get_string_ptr(node, &n);
		printf("{\"s\":");
		put_str(p ? p : "", (size_t)n);
		putchar('}');
		break;
	case PLIST_UINT:
		plist_get_uint_val(node, &u);
		printf("{\"i\":\"%" PRId64 "\"}", (int64_t)u);
		break;
	case PLIST_REAL:
		plist_get_real_val(node, &r);
		printf("{\"r\":\"%.17g\"}", r);
		break;
	case PLIST_BOOLEAN:
		plist_get_bool_val(node, &b);
		printf("{\"b\":%s}", b ? "true" : "false");
		break;
	case PLIST_DATE:
		plist_get_date_val(node, &sec, &usec);
		if (usec != 0)
			printf("{\"?\":\"date with %" PRId32 " us\"}", usec);
		else
			printf("{\"t\":%" PRId32 "}", sec);
		break;
	case PLIST_DATA:
		n = 0;
		p = plist_get_data_ptr(node, &n);
		printf("{\"x\":\"");
		for (u = 0; u < n; u++)
			printf("%02x", (unsigned char)p[u]);
		printf("\"}");
		break;
	default:
		printf("{\"?\":%d}", (int)plist_get_node_type(node));
		break;
	}
}

/* A "builder" member when plist_safe_parse()'s tree is not libplist's. */
static void
builder_check(const char *buf, size_t n, enum plist_safe_err e, plist_t root)
{
	const char *why = builder_differs(buf, n, e, root);

	if (why != NULL) {
		printf(",\"builder\":");
		put_str(why, strlen(why));
	}
}

int
main(int argc, char *argv[])
{
	static char buf[CANON_FILE_MAX];
	enum plist_safe_err e;
	plist_t		    root;
	FILE		   *f;
	size_t		    n;
	int		    i, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: plist-canon FILE...\n");
		return 2;
	}
	for (i = 1; i < argc; i++) {
		if ((f = fopen(argv[i], "rb")) == NULL) {
			perror(argv[i]);
			rc = 1;
			continue;
		}
		n = fread(buf, 1, sizeof(buf), f);
		if (ferror(f) || !feof(f)) {
			fprintf(stderr, "%s: read error or over %d bytes\n",
			    argv[i], CANON_FILE_MAX);
			fclose(f);
			rc = 1;
			continue;
		}
		fclose(f);
		printf("{\"file\":");
		put_str(argv[i], strlen(argv[i]));
		root = NULL;
		if ((e = plist_safe_parse(buf, n, &root)) != PLIST_SAFE_OK) {
			printf(",\"ok\":false,\"err\":");
			put_str(plist_safe_strerror(e),
			    strlen(plist_safe_strerror(e)));
		} else {
			printf(",\"ok\":true,\"v\":");
			put_value(root);
		}
		builder_check(buf, n, e, root);
		printf("}\n");
		plist_free(root);
	}
	return fflush(stdout) == 0 ? rc : 1;
}
