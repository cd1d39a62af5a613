/*
 * test-command.c - operator commands (command.c): the JSON form converted
 * against Apple's command schema (every coercion, unknown request types
 * and keys, wrong types named by their path, nested dicts and arrays,
 * required keys, depth), raw plist checks, CommandUUIDs, expiry parsing,
 * enqueueing to many enrollments on a real store, and the JSON views of
 * results (plist to JSON, ErrorChain).
 */
#include "config.h"

#include <sys/stat.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <plist/plist.h>

#include "picomdm/command.h"
#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/schema.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

#include "regress.h"

#define UUID1 "6F1D2C3B-4A59-4877-9E6D-5C4B3A291807"
#define PLIST_HEAD                                                            \
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">" \
	"<dict>"
#define PLIST_TAIL "</dict></plist>"

static char err[COMMAND_ERR_SIZE];

/* Convert s; expect success; return the command (caller frees). */
static struct command *
json_ok(const char *s)
{
	struct command *c = NULL;
	int		rc;

	rc = command_from_json(s, strlen(s), &c, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "unexpected refusal: %s\n  for %s\n", err, s);
	CHECK_EQ(rc, 0);
	CHECK(c != NULL);
	return c;
}

/* Convert s; expect 400 with an error containing want. */
static void
json_bad(const char *s, const char *want)
{
	struct command *c = NULL;
	int		rc;

	rc = command_from_json(s, strlen(s), &c, err, sizeof(err));
	if (rc != 400 || strstr(err, want) == NULL)
		fprintf(stderr, "for %s\n  got %d \"%s\", want 400 \"%s\"\n", s,
		    rc, err, want);
	CHECK_EQ(rc, 400);
	CHECK(c == NULL);
	CHECK(strstr(err, want) != NULL);
}

static void
plist_bad(const char *s, const char *want)
{
	struct command *c = NULL;
	int		rc;

	rc = command_from_plist(s, strlen(s), &c, err, sizeof(err));
	if (rc != 400 || strstr(err, want) == NULL)
		fprintf(stderr, "for %s\n  got %d \"%s\", want 400 \"%s\"\n", s,
		    rc, err, want);
	CHECK_EQ(rc, 400);
	CHECK(c == NULL);
}

/* Parse a command's raw bytes back; return its Command dict's root. */
static plist_t
parse_raw(const struct command *c)
{
	plist_t root = NULL;

	CHECK_EQ(plist_safe_parse((const char *)c->raw, c->raw_len, &root),
	    PLIST_SAFE_OK);
	return root;
}

static plist_t
cmd_dict(plist_t root)
{
	plist_t d = plist_dict_get_item(root, "Command");

	CHECK(d != NULL && plist_get_node_type(d) == PLIST_DICT);
	return d;
}

static void
test_json_basic(void)
{
	struct command *c;
	plist_t		root, d, q;
	char	       *s;

	c = json_ok("{\"request_type\": \"DeviceInformation\", "
		    "\"command_uuid\": \"" UUID1 "\", "
		    "\"Queries\": [\"UDID\", \"SerialNumber\"]}");
	CHECK_STR(c->uuid, UUID1);
	CHECK_STR(c->request_type, "DeviceInformation");
	root = parse_raw(c);
	CHECK_STR(plist_dict_str(root, "CommandUUID"), UUID1);
	d = cmd_dict(root);
	CHECK_STR(plist_dict_str(d, "RequestType"), "DeviceInformation");
	q = plist_dict_get_item(d, "Queries");
	CHECK(q != NULL && plist_get_node_type(q) == PLIST_ARRAY);
	CHECK_EQ(plist_array_get_size(q), 2);
	plist_get_string_val(plist_array_get_item(q, 1), &s);
	CHECK_STR(s, "SerialNumber");
	free(s);
	/* The raw plist is what the device gets: plain XML, Command first. */
	CHECK(strncmp((const char *)c->raw, "<?xml", 5) == 0);
	CHECK(strstr((const char *)c->raw, "<key>Command</key>") <
	    strstr((const char *)c->raw, "<key>CommandUUID</key>"));
	plist_free(root);
	command_free(c);

	/* No keys at all, and a command without keys in the schema. */
	c = json_ok("{\"request_type\": \"ProfileList\"}");
	root = parse_raw(c);
	CHECK_EQ(plist_dict_get_size(cmd_dict(root)), 1);
	plist_free(root);
	command_free(c);
	json_bad("{\"request_type\": \"DeviceConfigured\", \"X\": 1}",
	    "X: unknown key for DeviceConfigured");
}

static void
test_json_uuid(void)
{
	struct command *c;
	char		u[37], big[400];
	int		i;

	c = json_ok("{\"request_type\": \"ProfileList\"}");
	CHECK_EQ(strlen(c->uuid), 36);
	CHECK(c->uuid[8] == '-' && c->uuid[13] == '-' && c->uuid[18] == '-' &&
	    c->uuid[23] == '-');
	CHECK(c->uuid[14] == '7'); /* version 7: the time first */
	CHECK(strchr("89AB", c->uuid[19]) != NULL);
	command_free(c);
	for (i = 0; i < 100; i++) {
		char v[37];

		CHECK_EQ(command_uuid_new(u), 0);
		CHECK_EQ(command_uuid_new(v), 0);
		CHECK(strcmp(u, v) != 0);
		if (i % 10 == 0) {
			/* A later millisecond sorts after. */
			usleep(2000);
			CHECK_EQ(command_uuid_new(v), 0);
			CHECK(strcmp(u, v) < 0);
		}
	}
	json_bad("{\"request_type\": \"ProfileList\", \"command_uuid\": \"\"}",
	    "command_uuid");
	json_bad("{\"request_type\": \"ProfileList\", \"command_uuid\": "
		 "\"a b\"}",
	    "command_uuid");
	json_bad("{\"request_type\": \"ProfileList\", \"command_uuid\": 7}",
	    "command_uuid");
	snprintf(big, sizeof(big),
	    "{\"request_type\": \"ProfileList\", "
	    "\"command_uuid\": \"%0256d\"}",
	    0);
	json_bad(big, "command_uuid");
	snprintf(big, sizeof(big),
	    "{\"request_type\": \"ProfileList\", "
	    "\"command_uuid\": \"%0255d\"}",
	    0);
	c = json_ok(big);
	CHECK_EQ(strlen(c->uuid), 255);
	command_free(c);
	json_bad("{\"request_type\": \"ProfileList\", \"CommandUUID\": \"x\"}",
	    "CommandUUID: give it as command_uuid");
	json_bad("{\"request_type\": \"ProfileList\", \"RequestType\": \"x\"}",
	    "RequestType: give it as request_type");
}

static void
test_json_types(void)
{
	struct command	    *c;
	plist_t		     root, d, n;
	const unsigned char *data;
	size_t		     len;
	uint64_t	     u;
	int		     b;

	/* base64 string -> <data>, exact bytes. */
	c = json_ok("{\"request_type\": \"InstallProfile\", "
		    "\"Payload\": \"AAEC/f7/\"}");
	root = parse_raw(c);
	data = plist_dict_data(cmd_dict(root), "Payload", &len);
	CHECK(data != NULL);
	CHECK_EQ(len, 6);
	CHECK(memcmp(data, "\x00\x01\x02\xfd\xfe\xff", 6) == 0);
	CHECK(strstr((const char *)c->raw, "<data>") != NULL);
	plist_free(root);
	command_free(c);
	json_bad("{\"request_type\": \"InstallProfile\", \"Payload\": "
		 "\"not base64!\"}",
	    "Payload: want base64 data");
	json_bad("{\"request_type\": \"InstallProfile\", \"Payload\": 12}",
	    "Payload: want base64 string, got integer");
	json_bad("{\"request_type\": \"InstallProfile\"}",
	    "Payload: required key missing");

	/* integer, boolean, string, nested dicts. */
	c = json_ok(
	    "{\"request_type\": \"InstallApplication\", "
	    "\"iTunesStoreID\": 361309726, \"ManagementFlags\": -1, "
	    "\"InstallAsManaged\": true, \"Identifier\": \"com.example\", "
	    "\"Options\": {\"PurchaseMethod\": 1}, "
	    "\"Attributes\": {\"Removable\": false, "
	    "\"AssociatedDomains\": [\"a.example\", \"b.example\"]}, "
	    "\"Configuration\": {\"free\": \"form\", \"n\": 2, \"r\": 1.5, "
	    "\"b\": true, \"a\": [1, \"x\", {\"k\": false}]}}");
	root = parse_raw(c);
	d = cmd_dict(root);
	n = plist_dict_get_item(d, "iTunesStoreID");
	CHECK(n != NULL && plist_get_node_type(n) == PLIST_UINT);
	plist_get_uint_val(n, &u);
	CHECK_EQ(u, 361309726);
	n = plist_dict_get_item(d, "ManagementFlags");
	plist_get_uint_val(n, &u);
	CHECK_EQ((int64_t)u, -1);
	CHECK_EQ(plist_dict_bool(d, "InstallAsManaged", &b), 0);
	CHECK_EQ(b, 1);
	n = plist_dict_get_item(
	    plist_dict_get_item(d, "Options"), "PurchaseMethod");
	CHECK(n != NULL && plist_get_node_type(n) == PLIST_UINT);
	n = plist_dict_get_item(d, "Attributes");
	CHECK_EQ(plist_dict_bool(n, "Removable", &b), 0);
	CHECK_EQ(b, 0);
	CHECK_EQ(
	    plist_array_get_size(plist_dict_get_item(n, "AssociatedDomains")),
	    2);
	n = plist_dict_get_item(d, "Configuration");
	CHECK_STR(plist_dict_str(n, "free"), "form");
	CHECK(plist_get_node_type(plist_dict_get_item(n, "n")) == PLIST_UINT);
	CHECK(plist_get_node_type(plist_dict_get_item(n, "r")) == PLIST_REAL);
	CHECK(
	    plist_get_node_type(plist_dict_get_item(n, "b")) == PLIST_BOOLEAN);
	CHECK_EQ(plist_array_get_size(plist_dict_get_item(n, "a")), 3);
	plist_free(root);
	command_free(c);

	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"iTunesStoreID\": \"361309726\"}",
	    "iTunesStoreID: want integer, got string");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"iTunesStoreID\": 1.5}",
	    "iTunesStoreID: want integer, got real");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"InstallAsManaged\": \"true\"}",
	    "InstallAsManaged: want boolean, got string");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"InstallAsManaged\": 1}",
	    "InstallAsManaged: want boolean");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"Identifier\": 5}",
	    "Identifier: want string, got integer");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"Identifier\": null}",
	    "Identifier: want string, got null");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"Options\": []}",
	    "Options: want object, got array");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"Options\": {\"PurchaseMethod\": true}}",
	    "Options.PurchaseMethod: want integer, got boolean");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"Options\": {\"Nope\": 1}}",
	    "Options.Nope: unknown key for InstallApplication");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"Attributes\": {\"AssociatedDomains\": [\"a\", 2]}}",
	    "Attributes.AssociatedDomains[1]: want string, got integer");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"Configuration\": {\"x\": null}}",
	    "Configuration.x: null is not a plist value");
	json_bad("{\"request_type\": \"InstallApplication\", "
		 "\"Identifier\": \"a\\u0001b\"}",
	    "Identifier: string contains a control character");
}

static void
test_json_nested(void)
{
	struct command *c;
	plist_t		root, d, a, item;
	size_t		len;

	/* Array of dicts, with data inside. */
	c = json_ok("{\"request_type\": \"AccountConfiguration\", "
		    "\"AutoSetupAdminAccounts\": [{\"shortName\": \"admin\", "
		    "\"passwordHash\": \"cGFzcw==\", \"hidden\": true}]}");
	root = parse_raw(c);
	d = cmd_dict(root);
	a = plist_dict_get_item(d, "AutoSetupAdminAccounts");
	CHECK(a != NULL && plist_get_node_type(a) == PLIST_ARRAY);
	item = plist_array_get_item(a, 0);
	CHECK_STR(plist_dict_str(item, "shortName"), "admin");
	CHECK(plist_dict_data(item, "passwordHash", &len) != NULL);
	CHECK_EQ(len, 4);
	plist_free(root);
	command_free(c);
	json_bad("{\"request_type\": \"AccountConfiguration\", "
		 "\"AutoSetupAdminAccounts\": [{\"shortName\": \"a\"}, "
		 "{\"shortName\": \"b\", \"passwordHash\": 3}]}",
	    "AutoSetupAdminAccounts[1].passwordHash: want base64 string");
	json_bad("{\"request_type\": \"AccountConfiguration\", "
		 "\"AutoSetupAdminAccounts\": [{\"fullName\": \"a\"}]}",
	    "AutoSetupAdminAccounts[0].shortName: required key missing");
	json_bad("{\"request_type\": \"AccountConfiguration\", "
		 "\"AutoSetupAdminAccounts\": [\"admin\"]}",
	    "AutoSetupAdminAccounts[0]: want object, got string");

	/* Dict in a dict, with a required key. */
	c = json_ok("{\"request_type\": \"EraseDevice\", \"PIN\": \"123456\", "
		    "\"ReturnToService\": {\"Enabled\": true, "
		    "\"WiFiProfileData\": \"PD94bWw+\"}}");
	root = parse_raw(c);
	d = plist_dict_get_item(cmd_dict(root), "ReturnToService");
	CHECK(plist_dict_data(d, "WiFiProfileData", &len) != NULL);
	CHECK_EQ(len, 6);
	plist_free(root);
	command_free(c);
	json_bad("{\"request_type\": \"EraseDevice\", "
		 "\"ReturnToService\": {}}",
	    "ReturnToService.Enabled: required key missing");
	json_bad("{\"request_type\": \"EraseDevice\", "
		 "\"ReturnToService\": {\"Enabled\": \"yes\"}}",
	    "ReturnToService.Enabled: want boolean, got string");

	/* Settings: an array of dicts described by the union of items. */
	c = json_ok("{\"request_type\": \"Settings\", \"Settings\": "
		    "[{\"Item\": \"DeviceName\", \"DeviceName\": \"Lab 4\"}]}");
	command_free(c);
	json_bad("{\"request_type\": \"Settings\", \"Settings\": {}}",
	    "Settings: want array, got object");
}

static void
test_json_refusals(void)
{
	char  *deep;
	size_t i, n;

	json_bad("", "invalid JSON");
	json_bad("{\"request_type\": ", "invalid JSON");
	json_bad("[]", "must be a JSON object");
	json_bad("\"ProfileList\"", "invalid JSON");
	json_bad("{}", "request_type: missing");
	json_bad("{\"request_type\": 3}", "request_type: want a non-empty");
	json_bad("{\"request_type\": \"\"}", "request_type: want a non-empty");
	json_bad("{\"request_type\": \"NoSuchCommand\"}",
	    "unknown RequestType \"NoSuchCommand\"");
	json_bad("{\"request_type\": \"deviceinformation\", \"Queries\": []}",
	    "unknown RequestType");
	json_bad("{\"request_type\": \"DeviceInformation\"}",
	    "Queries: required key missing");
	json_bad("{\"request_type\": \"DeviceInformation\", \"Queries\": [], "
		 "\"Querys\": []}",
	    "Querys: unknown key for DeviceInformation");
	json_bad("{\"request_type\": \"ProfileList\", \"request_type\": "
		 "\"ProfileList\"}",
	    "duplicate");
	json_bad("{\"request_type\": \"ProfileList\", \"command_uuid\": "
		 "\"a\\u0000b\"}",
	    "invalid JSON");

	/* Nesting past the cap is refused, not recursed into. */
	n = 40;
	deep = malloc(64 + 2 * n * 8);
	CHECK(deep != NULL);
	deep[0] = '\0';
	strlcat(deep,
	    "{\"request_type\": \"InstallApplication\", "
	    "\"Configuration\": ",
	    64 + 2 * n * 8);
	for (i = 0; i < n; i++)
		strlcat(deep, "{\"a\": ", 64 + 2 * n * 8);
	strlcat(deep, "1", 64 + 2 * n * 8);
	for (i = 0; i <= n; i++)
		strlcat(deep, "}", 64 + 2 * n * 8);
	json_bad(deep, "nested more than");
	free(deep);
}

/* command_convert on a table with every type, including date and real
 * (Apple's command keys have none today; the converter must not care). */
static void
test_convert_table(void)
{
	static const struct schema_key item[] = {
	    {NULL, SCHEMA_INTEGER, 0, NULL, 0},
	};
	static const struct schema_key sub[] = {
	    {"When", SCHEMA_DATE, 1, NULL, 0},
	};
	static const struct schema_key keys[] = {
	    {"S", SCHEMA_STRING, 0, NULL, 0},
	    {"D", SCHEMA_DATA, 0, NULL, 0},
	    {"B", SCHEMA_BOOL, 0, NULL, 0},
	    {"I", SCHEMA_INTEGER, 0, NULL, 0},
	    {"R", SCHEMA_REAL, 0, NULL, 0},
	    {"T", SCHEMA_DATE, 0, NULL, 0},
	    {"O", SCHEMA_DICT, 0, sub, 1},
	    {"A", SCHEMA_ARRAY, 0, item, 1},
	    {"X", SCHEMA_ANY, 0, NULL, 0},
	};
	json_t *j;
	plist_t p = NULL, n;
	int32_t sec = 0, usec = 0;
	double	r = 0;
	json_t *back;

	j = json_loads("{\"S\": \"s\", \"D\": \"\", \"B\": false, \"I\": 7, "
		       "\"R\": 2, \"T\": \"2026-11-27T10:53:10Z\", "
		       "\"O\": {\"When\": \"2001-01-01T00:01:00+00:00\"}, "
		       "\"A\": [1, 2, 3], \"X\": {\"y\": [true]}}",
	    0, NULL);
	CHECK(j != NULL);
	CHECK_EQ(command_convert(j, keys, 9, "Test", &p, err, sizeof(err)), 0);
	n = plist_dict_get_item(p, "T");
	CHECK(n != NULL && plist_get_node_type(n) == PLIST_DATE);
	plist_get_date_val(n, &sec, &usec);
	CHECK_EQ((long long)sec + 978307200LL, 1795776790LL);
	n = plist_dict_get_item(plist_dict_get_item(p, "O"), "When");
	plist_get_date_val(n, &sec, &usec);
	CHECK_EQ(sec, 60);
	n = plist_dict_get_item(p, "R");
	CHECK(plist_get_node_type(n) == PLIST_REAL);
	plist_get_real_val(n, &r);
	CHECK(r == 2.0);
	n = plist_dict_get_item(p, "D");
	CHECK(plist_get_node_type(n) == PLIST_DATA);
	CHECK(plist_get_node_type(plist_dict_get_item(p, "X")) == PLIST_DICT);

	/* And back to JSON: dates RFC 3339, data base64. */
	back = command_plist_json(p);
	CHECK(back != NULL);
	CHECK_STR(json_string_value(json_object_get(back, "T")),
	    "2026-11-27T10:53:10Z");
	CHECK_STR(json_string_value(
		      json_object_get(json_object_get(back, "O"), "When")),
	    "2001-01-01T00:01:00Z");
	CHECK_STR(json_string_value(json_object_get(back, "D")), "");
	CHECK(json_real_value(json_object_get(back, "R")) == 2.0);
	CHECK_EQ(
	    json_integer_value(json_array_get(json_object_get(back, "A"), 2)),
	    3);
	CHECK(json_is_false(json_object_get(back, "B")));
	json_decref(back);
	plist_free(p);
	json_decref(j);

	j = json_loads("{\"T\": \"yesterday\"}", 0, NULL);
	CHECK_EQ(
	    command_convert(j, keys, 9, "Test", &p, err, sizeof(err)), 400);
	CHECK(strstr(err, "T: want an RFC 3339 date") != NULL);
	json_decref(j);
	j = json_loads("{\"T\": 5}", 0, NULL);
	CHECK_EQ(
	    command_convert(j, keys, 9, "Test", &p, err, sizeof(err)), 400);
	CHECK(strstr(err, "T: want RFC 3339 date string, got integer") != NULL);
	json_decref(j);
	j = json_loads("{\"R\": \"1.5\"}", 0, NULL);
	CHECK_EQ(
	    command_convert(j, keys, 9, "Test", &p, err, sizeof(err)), 400);
	CHECK(strstr(err, "R: want number, got string") != NULL);
	json_decref(j);
	j = json_loads("{\"O\": {}}", 0, NULL);
	CHECK_EQ(
	    command_convert(j, keys, 9, "Test", &p, err, sizeof(err)), 400);
	CHECK(strstr(err, "O.When: required key missing") != NULL);
	json_decref(j);
	j = json_loads("{\"A\": [1, true]}", 0, NULL);
	CHECK_EQ(
	    command_convert(j, keys, 9, "Test", &p, err, sizeof(err)), 400);
	CHECK(strstr(err, "A[1]: want integer, got boolean") != NULL);
	json_decref(j);
	j = json_loads("[1]", 0, NULL);
	CHECK_EQ(
	    command_convert(j, keys, 9, "Test", &p, err, sizeof(err)), 400);
	json_decref(j);
}

static void
test_raw(void)
{
	static const char ok[] = PLIST_HEAD
	    "<key>Command</key><dict><key>RequestType</key>"
	    "<string>DeviceInformation</string><key>Queries</key><array>"
	    "<string>UDID</string></array><key>FutureKey</key><true/></dict>"
	    "<key>CommandUUID</key><string>" UUID1 "</string>" PLIST_TAIL;
	struct command *c = NULL;
	char	       *deep;
	size_t		i;

	CHECK_EQ(command_from_plist(ok, strlen(ok), &c, err, sizeof(err)), 0);
	CHECK_STR(c->uuid, UUID1);
	CHECK_STR(c->request_type, "DeviceInformation");
	/* Byte for byte, keys outside the schema kept. */
	CHECK_EQ(c->raw_len, strlen(ok));
	CHECK(memcmp(c->raw, ok, c->raw_len) == 0);
	command_free(c);

	plist_bad("", "empty");
	plist_bad(PLIST_HEAD
	    "<key>Command</key><dict><key>RequestType</key>"
	    "<string>ProfileList</string><key>x\xff</key><true/></dict>"
	    "<key>CommandUUID</key><string>x</string>" PLIST_TAIL,
	    "not valid UTF-8");
	plist_bad("bplist00\x01", "not an XML plist");
	plist_bad("{\"request_type\": \"ProfileList\"}", "not an XML plist");
	plist_bad(PLIST_HEAD "<key>Command</key><dict><key>RequestType</key>"
			     "<string>ProfileList</string></dict>" PLIST_TAIL,
	    "CommandUUID");
	plist_bad(PLIST_HEAD
	    "<key>Command</key><dict><key>RequestType</key>"
	    "<string>ProfileList</string></dict><key>CommandUUID</key>"
	    "<string></string>" PLIST_TAIL,
	    "CommandUUID");
	plist_bad(PLIST_HEAD
	    "<key>Command</key><dict><key>RequestType</key>"
	    "<string>ProfileList</string></dict><key>CommandUUID</key>"
	    "<integer>5</integer>" PLIST_TAIL,
	    "CommandUUID");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>" PLIST_TAIL,
	    "Command: missing");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>"
	    "<key>Command</key><string>ProfileList</string>" PLIST_TAIL,
	    "Command: want a dictionary");
	plist_bad(PLIST_HEAD "<key>CommandUUID</key><string>x</string>"
			     "<key>Command</key><dict></dict>" PLIST_TAIL,
	    "Command.RequestType: missing or not a string");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>"
	    "<key>Command</key><dict><key>RequestType</key><integer>1"
	    "</integer></dict>" PLIST_TAIL,
	    "RequestType: missing or not");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>"
	    "<key>Command</key><dict><key>RequestType</key><string>Nope"
	    "</string></dict>" PLIST_TAIL,
	    "unknown RequestType \"Nope\"");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>"
	    "<key>Command</key><dict><key>RequestType</key><string>"
	    "DeviceInformation</string><key>Queries</key><string>UDID"
	    "</string></dict>" PLIST_TAIL,
	    "Command.Queries: want array, got string");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>"
	    "<key>Command</key><dict><key>RequestType</key><string>"
	    "DeviceInformation</string><key>Queries</key><array><integer>1"
	    "</integer></array></dict>" PLIST_TAIL,
	    "Command.Queries[0]: want string, got integer");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>"
	    "<key>Command</key><dict><key>RequestType</key><string>"
	    "DeviceInformation</string></dict>" PLIST_TAIL,
	    "Command.Queries: required key missing");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>"
	    "<key>Command</key><dict><key>RequestType</key><string>"
	    "InstallProfile</string><key>Payload</key><string>AAAA</string>"
	    "</dict>" PLIST_TAIL,
	    "Command.Payload: want data, got string");
	plist_bad(PLIST_HEAD
	    "<key>CommandUUID</key><string>x</string>"
	    "<key>Command</key><dict><key>RequestType</key><string>"
	    "EraseDevice</string><key>ReturnToService</key><dict><key>Enabled"
	    "</key><string>yes</string></dict></dict>" PLIST_TAIL,
	    "Command.ReturnToService.Enabled: want boolean, got string");

	/* Deeper than the cap: refused before libplist sees it. */
	deep = malloc(64 * 8 + 256);
	CHECK(deep != NULL);
	deep[0] = '\0';
	strlcat(deep, PLIST_HEAD "<key>a</key>", 64 * 8 + 256);
	for (i = 0; i < 40; i++)
		strlcat(deep, "<array>", 64 * 8 + 256);
	for (i = 0; i < 40; i++)
		strlcat(deep, "</array>", 64 * 8 + 256);
	strlcat(deep, PLIST_TAIL, 64 * 8 + 256);
	plist_bad(deep, "too deeply");
	free(deep);
}

static void
test_expires(void)
{
	uint64_t now = 1795776790ULL * 1000000u, out = 0;

	CHECK_EQ(command_expires_parse("60", now, &out), 0);
	CHECK_EQ(out, now + 60000000u);
	CHECK_EQ(command_expires_parse("2026-11-27T10:54:10Z", now, &out), 0);
	CHECK_EQ(out, now + 60000000u);
	CHECK_EQ(
	    command_expires_parse("2026-11-27T11:54:10+01:00", now, &out), 0);
	CHECK_EQ(out, now + 60000000u);
	CHECK_EQ(command_expires_parse("2026-11-27T10:53:10Z", now, &out), -1);
	CHECK_EQ(command_expires_parse("2020-01-01T00:00:00Z", now, &out), -1);
	CHECK_EQ(command_expires_parse("0", now, &out), -1);
	CHECK_EQ(command_expires_parse("-5", now, &out), -1);
	CHECK_EQ(command_expires_parse("10s", now, &out), -1);
	CHECK_EQ(command_expires_parse("", now, &out), -1);
	CHECK_EQ(command_expires_parse("999999999999", now, &out), -1);
	/* One rule for both forms: at most ten years ahead. */
	CHECK_EQ(command_expires_parse("316224000", now, &out), 0);
	CHECK_EQ(command_expires_parse("316224001", now, &out), -1);
	CHECK_EQ(command_expires_parse("2036-12-04T10:53:10Z", now, &out), 0);
	CHECK_EQ(out, now + 316224000ULL * 1000000u);
	CHECK_EQ(command_expires_parse("2036-12-04T10:53:11Z", now, &out), -1);
	CHECK_EQ(command_expires_parse("9999-12-31T23:59:59Z", now, &out), -1);
}

/* Read $PICOMDM_TEST_DATA/rel; caller frees. */
static char *
load(const char *rel, size_t *len)
{
	const char *dir = getenv("PICOMDM_TEST_DATA");
	char	    path[1024];
	FILE	   *f;
	char	   *buf;
	long	    n;

	CHECK((size_t)snprintf(path, sizeof(path), "%s/%s",
		  dir ? dir : "tests/data", rel) < sizeof(path));
	CHECK((f = fopen(path, "rb")) != NULL);
	CHECK(fseek(f, 0, SEEK_END) == 0);
	CHECK((n = ftell(f)) > 0);
	rewind(f);
	CHECK((buf = malloc((size_t)n + 1)) != NULL);
	CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void
test_results_json(void)
{
	struct store_result r;
	json_t		   *ec, *o;
	char		   *raw;
	size_t		    len;

	raw = load("connect/error.plist", &len);
	ec = command_error_chain(raw, len);
	CHECK(ec != NULL);
	CHECK_EQ(json_array_size(ec), 2);
	CHECK_EQ(
	    json_integer_value(json_object_get(json_array_get(ec, 0), "code")),
	    12021);
	CHECK_STR(
	    json_string_value(json_object_get(json_array_get(ec, 0), "domain")),
	    "MCMDMErrorDomain");
	CHECK_STR(json_string_value(json_object_get(
		      json_array_get(ec, 1), "us_english_description")),
	    "Installation failed.");
	CHECK(strstr(json_string_value(
			 json_object_get(json_array_get(ec, 0), "description")),
		  "not managed") != NULL);
	json_decref(ec);

	memset(&r, 0, sizeof(r));
	r.enrollment_id = (char *)(uintptr_t) "00008030-001A2D3C0E8B802E";
	r.uuid = (char *)(uintptr_t) "4C3B2A19-0817-4E6F-9D5C-4B3A29180716";
	r.seq = 42;
	r.received_at = 1795776790ULL * 1000000u;
	r.status = CMD_STATUS_ERROR;
	r.known = 1;
	r.well_formed = 1;
	r.raw = (unsigned char *)raw;
	r.raw_len = len;
	o = command_result_json(&r, 0);
	CHECK(o != NULL);
	CHECK_STR(json_string_value(json_object_get(o, "status")), "Error");
	CHECK_STR(json_string_value(json_object_get(o, "received_at")),
	    "2026-11-27T10:53:10Z");
	CHECK_EQ(json_integer_value(json_object_get(o, "seq")), 42);
	CHECK_EQ(json_array_size(json_object_get(o, "error_chain")), 2);
	CHECK(json_object_get(o, "raw") == NULL);
	json_decref(o);
	o = command_result_json(&r, 1);
	CHECK(o != NULL);
	CHECK_STR(json_string_value(json_object_get(o, "raw")), raw);
	CHECK_STR(json_string_value(
		      json_object_get(json_object_get(o, "plist"), "Status")),
	    "Error");
	CHECK_EQ(json_integer_value(json_object_get(
		     json_array_get(json_object_get(json_object_get(o, "plist"),
					"ErrorChain"),
			 1),
		     "ErrorCode")),
	    4);
	json_decref(o);
	free(raw);

	/* No ErrorChain, not a plist, not UTF-8: still a result. */
	r.raw = (unsigned char *)(uintptr_t) "\xff\xfe garbage";
	r.raw_len = 10;
	r.well_formed = 0;
	o = command_result_json(&r, 1);
	CHECK(o != NULL);
	CHECK(json_is_null(json_object_get(o, "error_chain")));
	CHECK(json_is_null(json_object_get(o, "plist")));
	CHECK_STR(json_string_value(json_object_get(o, "plist_error")),
	    "not an XML plist");
	CHECK(json_object_get(o, "raw") == NULL);
	CHECK_STR(json_string_value(json_object_get(o, "raw_base64")),
	    "//4gZ2FyYmFnZQ==");
	CHECK(json_is_false(json_object_get(o, "well_formed")));
	json_decref(o);
	r.raw = (unsigned char *)(uintptr_t)PLIST_HEAD
	    "<key>ErrorChain</key><string>x</string>" PLIST_TAIL;
	r.raw_len = strlen((const char *)r.raw);
	CHECK(command_error_chain(r.raw, r.raw_len) == NULL);
}

static void
test_plist_json(void)
{
	static const char doc[] =
	    PLIST_HEAD "<key>s</key><string>caf\xc3\xa9</string>"
		       "<key>i</key><integer>-3</integer>"
		       "<key>r</key><real>0.25</real>"
		       "<key>t</key><true/>"
		       "<key>d</key><data>AAEC</data>"
		       "<key>dt</key><date>2026-11-27T10:53:10Z</date>"
		       "<key>a</key><array><dict/><array/></array>" PLIST_TAIL;
	plist_t root = NULL;
	json_t *j;

	static const char notutf8[] =
	    PLIST_HEAD "<key>bad</key><string>a\xffz</string>" PLIST_TAIL;
	CHECK_EQ(plist_safe_parse(notutf8, strlen(notutf8), &root),
	    PLIST_SAFE_NOT_UTF8);
	CHECK(root == NULL);
	/*
	 * One bad byte at every position of a long ASCII run, so in every
	 * lane of the check's eight-byte words: a lone continuation byte
	 * (below 0xa0, which a word test without the top-bit mask would let
	 * through), a control character, DEL's neighbour 0x80 and 0xc0.
	 */
	{
		static const unsigned char bad[] = { 0x85, 0x01, 0x80, 0xc0,
			0x9f, 0x1f };
		char   buf[512];
		size_t b, k;
		int    n;

		for (b = 0; b < sizeof(bad); b++)
			for (k = 0; k < 17; k++) {
				n = snprintf(buf, sizeof(buf), "%s<key>k</key>"
				    "<string>%.*s%c%s</string>%s", PLIST_HEAD,
				    (int)k, "abcdefghijklmnopqrstuvwxyz",
				    (char)bad[b], "0123456789abcdefghij",
				    PLIST_TAIL);
				CHECK(n > 0 && (size_t)n < sizeof(buf));
				CHECK_EQ(plist_safe_parse(buf, (size_t)n,
				    &root), PLIST_SAFE_NOT_UTF8);
				CHECK(root == NULL);
			}
	}
	CHECK_EQ(plist_safe_parse(doc, strlen(doc), &root), PLIST_SAFE_OK);
	/* Stored before the strict form, or built: still converts. */
	plist_dict_set_item(root, "bad", plist_new_string("a\xffz"));
	j = command_plist_json(root);
	CHECK(j != NULL);
	CHECK_STR(json_string_value(json_object_get(j, "s")), "caf\xc3\xa9");
	CHECK_STR(
	    json_string_value(json_object_get(j, "bad")), "a\xef\xbf\xbdz");
	CHECK_EQ(json_integer_value(json_object_get(j, "i")), -3);
	CHECK(json_real_value(json_object_get(j, "r")) == 0.25);
	CHECK(json_is_true(json_object_get(j, "t")));
	CHECK_STR(json_string_value(json_object_get(j, "d")), "AAEC");
	CHECK_STR(json_string_value(json_object_get(j, "dt")),
	    "2026-11-27T10:53:10Z");
	CHECK(json_is_object(json_array_get(json_object_get(j, "a"), 0)));
	CHECK(json_is_array(json_array_get(json_object_get(j, "a"), 1)));
	json_decref(j);
	plist_free(root);

	/* A key that is not UTF-8 (a device may send one) still converts. */
	root = plist_new_dict();
	plist_dict_set_item(root, "k\xff\xfey", plist_new_bool(1));
	j = command_plist_json(root);
	CHECK(j != NULL);
	CHECK(json_is_true(json_object_get(j, "k??y")));
	json_decref(j);
	plist_free(root);
}

/* ---- enqueue on a real store ---- */

static int
op_enroll(struct store_txn *t, void *arg)
{
	struct store_enrollment e;

	memset(&e, 0, sizeof(e));
	e.id = arg;
	e.device_id = arg;
	e.type = ENROLL_DEVICE;
	e.enabled = 1;
	return store_enrollment_put(t, &e);
}

struct get_args {
	const char *uuid;
	int	    rc;
	size_t	    queued;
};

static int
op_get(struct store_txn *t, void *arg)
{
	struct get_args	     *g = arg;
	struct store_command *c = NULL;

	g->rc = store_command_get(t, g->uuid, &c);
	store_command_free(c);
	return 0;
}

static int
count_cb(const struct store_queue_item *q, void *arg)
{
	struct get_args *g = arg;

	if (strcmp(q->uuid, g->uuid) == 0)
		g->queued++;
	return 0;
}

static int
op_count(struct store_txn *t, void *arg)
{
	return store_queue_iter(t, "dev-a", count_cb, arg);
}

/* command_enqueue_push's check: enrols its argument (a write, so it
 * must be given the enqueue's write transaction) or refuses with 409. */
static int
check_enroll(struct store_txn *t, void *arg)
{
	return arg != NULL ? op_enroll(t, arg) : 409;
}

static void
test_enqueue(void)
{
	const char	    *tmp = getenv("PICOMDM_TEST_TMP");
	char		     dir[512], path[600];
	struct store_opts    o;
	struct store	    *s = NULL;
	struct command	    *c;
	enum command_outcome oc[3];
	char		a[] = "dev-a", n[] = "nobody", b[] = "dev-b:user@x";
	char		gh[] = "ghost";
	char	       *ids[3] = {a, n, b};
	char	       *none[1] = {gh};
	char		cc[] = "dev-c";
	char	       *newc[1] = {cc};
	struct get_args g;
	size_t		nq = 99;

	CHECK((size_t)snprintf(dir, sizeof(dir), "%s/command-XXXXXX",
		  tmp ? tmp : "/tmp") < sizeof(dir));
	if (tmp != NULL)
		(void)mkdir(tmp, 0700); /* make check's tests/tmp, if new */
	CHECK(mkdtemp(dir) != NULL);
	memset(&o, 0, sizeof(o));
	o.nosync = 1;
	CHECK_EQ(store_open(dir, &o, &s), 0);
	CHECK_EQ(store_write(s, op_enroll, a), 0);
	CHECK_EQ(store_write(s, op_enroll, b), 0);

	c = json_ok("{\"request_type\": \"ProfileList\", \"command_uuid\": "
		    "\"Q1\"}");
	CHECK_EQ(command_enqueue(s, c, ids, 3, 10, 0, oc, &nq), 0);
	CHECK_EQ(nq, 2);
	CHECK_EQ(oc[0], COMMAND_QUEUED);
	CHECK_EQ(oc[1], COMMAND_UNKNOWN_ENROLLMENT);
	CHECK_EQ(oc[2], COMMAND_QUEUED);
	CHECK_STR(command_outcome_name(oc[1]), "unknown enrollment");
	memset(&g, 0, sizeof(g));
	g.uuid = "Q1";
	CHECK_EQ(store_read(s, op_count, &g), 0);
	CHECK_EQ(g.queued, 1);
	/* The same CommandUUID again is refused, nothing changes. */
	CHECK_EQ(command_enqueue(s, c, ids, 1, 0, 0, oc, &nq), STORE_EEXIST);
	CHECK_EQ(nq, 0);
	command_free(c);

	/* Nobody takes it: not kept. */
	c = json_ok("{\"request_type\": \"ProfileList\", \"command_uuid\": "
		    "\"Q2\"}");
	CHECK_EQ(
	    command_enqueue(s, c, none, 1, 0, 0, oc, &nq), STORE_ENOTFOUND);
	CHECK_EQ(oc[0], COMMAND_UNKNOWN_ENROLLMENT);
	g.uuid = "Q2";
	CHECK_EQ(store_read(s, op_get, &g), 0);
	CHECK_EQ(g.rc, STORE_ENOTFOUND);
	CHECK_EQ(command_enqueue(s, c, ids, 1, 256, 0, oc, &nq), STORE_EINVAL);
	command_free(c);

	/* The caller's check runs first in the enqueue's own write
	 * transaction: what it writes, the enqueue sees (dev-c, enrolled
	 * by the check, gets the command); its refusal is returned and
	 * nothing is stored. */
	c = json_ok("{\"request_type\": \"ProfileList\", \"command_uuid\": "
		    "\"Q3\"}");
	CHECK_EQ(command_enqueue_push(s, c, newc, 1, 0, 0, 1, check_enroll,
	    newc[0], oc, NULL, &nq), 0);
	CHECK_EQ(nq, 1);
	CHECK_EQ(oc[0], COMMAND_QUEUED);
	command_free(c);
	c = json_ok("{\"request_type\": \"ProfileList\", \"command_uuid\": "
		    "\"Q4\"}");
	CHECK_EQ(command_enqueue_push(s, c, ids, 1, 0, 0, 1, check_enroll,
	    NULL, oc, NULL, &nq), 409);
	CHECK_EQ(nq, 0);
	g.uuid = "Q4";
	g.queued = 0;
	CHECK_EQ(store_read(s, op_get, &g), 0);
	CHECK_EQ(g.rc, STORE_ENOTFOUND);
	CHECK_EQ(store_read(s, op_count, &g), 0);
	CHECK_EQ(g.queued, 0);
	command_free(c);
	store_close(s);
	/* An LMDB environment is these two files. */
	CHECK((size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) <
	    sizeof(path));
	CHECK(unlink(path) == 0);
	CHECK((size_t)snprintf(path, sizeof(path), "%s/lock.mdb", dir) <
	    sizeof(path));
	CHECK(unlink(path) == 0);
	CHECK(rmdir(dir) == 0);
}

int
main(void)
{
	test_json_basic();
	test_json_uuid();
	test_json_types();
	test_json_nested();
	test_json_refusals();
	test_convert_table();
	test_raw();
	test_expires();
	test_results_json();
	test_plist_json();
	test_enqueue();
	REGRESS_DONE();
}
