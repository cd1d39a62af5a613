/*
 * test-validate.c - the schema tables, the depth scanner and safe parser
 * (plist.c), and message validation and enrollment IDs (validate.c).
 *
 * Fixtures are realistic device plists under $PICOMDM_TEST_DATA (set by
 * make check to tests/data), in its checkin and connect directories.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plist/plist.h>

#include "picomdm/message.h"
#include "picomdm/plist.h"
#include "picomdm/schema.h"

#include "regress.h"

#define UDID_IOS "00008030-001A2D3C0E8B802E"
#define UDID_MAC "564D5E2A-8F9B-5C3D-A1E7-2B6F0C9D4E31"
#define EID	 "A3F1C9E2B7D84F60A1B2C3D4E5F60718A9B0C1D2"
#define EUID	 "B7E2D1C0-9A8F-4E3D-B2C1-A0F9E8D7C6B5"
#define MAC_USER "2F1E0D9C-8B7A-4695-A4B3-C2D1E0F9A8B7"
#define TOPIC_KV "<key>Topic</key><string>com.apple.mgmt.External.x</string>"
#define TOKEN_KV "<key>Token</key><data>C/Mr6cTGpiTKdmOcU4uwD8Gf4zn2z+Zh</data>"
#define MAGIC_KV "<key>PushMagic</key><string>5B2C7E1A-4D3F</string>"
#define UDID_KV	 "<key>UDID</key><string>" UDID_IOS "</string>"
#define MT(t)	 "<key>MessageType</key><string>" t "</string>"

/* Read $PICOMDM_TEST_DATA/rel into a NUL-terminated buffer. */
static char *
load(const char *rel, size_t *len)
{
	const char *dir = getenv("PICOMDM_TEST_DATA");
	char	    path[1024];
	FILE	   *f;
	char	   *buf;
	long	    n;
	int	    w;

	if (dir == NULL)
		dir = "tests/data";
	w = snprintf(path, sizeof(path), "%s/%s", dir, rel);
	CHECK(w > 0 && (size_t)w < sizeof(path));
	f = fopen(path, "rb");
	if (f == NULL)
		fprintf(stderr, "cannot open %s\n", path);
	CHECK(f != NULL);
	CHECK(fseek(f, 0, SEEK_END) == 0);
	n = ftell(f);
	CHECK(n > 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	CHECK(buf != NULL);
	CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Wrap dict contents into a whole XML plist (malloc'd). */
static char *
wrap(const char *inner)
{
	static const char pre[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
	    "<plist version=\"1.0\">\n<dict>\n";
	static const char post[] = "</dict>\n</plist>\n";
	size_t		  n = strlen(inner);
	char		 *b = malloc(sizeof(pre) + n + sizeof(post));

	CHECK(b != NULL);
	memcpy(b, pre, sizeof(pre) - 1);
	memcpy(b + sizeof(pre) - 1, inner, n);
	memcpy(b + sizeof(pre) - 1 + n, post, sizeof(post));
	return b;
}

/* Parse a fixture as a check-in; return the message or NULL (+ reason). */
static struct mdm_msg *
checkin_file(const char *rel, int want_rc, const char **reason)
{
	struct mdm_msg *m = NULL;
	size_t		len;
	char	       *b = load(rel, &len);
	int		rc = msg_parse_checkin(b, len, &m, reason);

	if (rc != want_rc)
		fprintf(stderr, "%s: rc %d (%s)\n", rel, rc,
		    *reason ? *reason : "");
	CHECK_EQ(rc, want_rc);
	CHECK((m != NULL) == (want_rc == 0));
	free(b);
	return m;
}

static struct mdm_msg *
connect_file(const char *rel, int want_rc, const char **reason)
{
	struct mdm_msg *m = NULL;
	size_t		len;
	char	       *b = load(rel, &len);
	int		rc = msg_parse_connect(b, len, &m, reason);

	if (rc != want_rc)
		fprintf(stderr, "%s: rc %d (%s)\n", rel, rc,
		    *reason ? *reason : "");
	CHECK_EQ(rc, want_rc);
	CHECK((m != NULL) == (want_rc == 0));
	free(b);
	return m;
}

/* Parse dict contents as a check-in; return rc, message in *out. */
static int
checkin_inline(const char *inner, struct mdm_msg **out, const char **reason)
{
	char *b = wrap(inner);
	int   rc = msg_parse_checkin(b, strlen(b), out, reason);

	free(b);
	return rc;
}

static int
connect_inline(const char *inner, struct mdm_msg **out, const char **reason)
{
	char *b = wrap(inner);
	int   rc = msg_parse_connect(b, strlen(b), out, reason);

	free(b);
	return rc;
}

/* A check-in that must be refused with 400 and a reason naming key. */
static void
checkin_refused(const char *inner, const char *want_reason)
{
	struct mdm_msg *m = NULL;
	const char     *r = NULL;

	CHECK_EQ(checkin_inline(inner, &m, &r), 400);
	CHECK(m == NULL);
	CHECK(r != NULL);
	if (want_reason != NULL)
		CHECK_STR(r, want_reason);
}

/* A check-in / connect body: prefix + n copies of c + suffix. */
static char *
build3(const char *pre, char c, size_t n, const char *post)
{
	size_t a = strlen(pre), z = strlen(post);
	char  *s = malloc(a + n + z + 1);

	CHECK(s != NULL);
	memcpy(s, pre, a);
	memset(s + a, c, n);
	memcpy(s + a + n, post, z + 1);
	return s;
}

/* "<array>" x n then "</array>" x n inside a TokenUpdate's dict. */
static char *
deep(size_t n)
{
	const char pre[] = "<plist><dict>" MT("TokenUpdate") "<key>x</key>";
	const char post[] = "</dict></plist>";
	size_t	   len = sizeof(pre) - 1 + n * 15 + sizeof(post);
	char	  *s = malloc(len), *p;
	size_t	   i;

	CHECK(s != NULL);
	p = s;
	memcpy(p, pre, sizeof(pre) - 1);
	p += sizeof(pre) - 1;
	for (i = 0; i < n; i++, p += 7)
		memcpy(p, "<array>", 7);
	for (i = 0; i < n; i++, p += 8)
		memcpy(p, "</array>", 8);
	memcpy(p, post, sizeof(post));
	return s;
}

static void
test_schema(void)
{
	static const char *const eight[] = {"Authenticate", "TokenUpdate",
	    "CheckOut", "UserAuthenticate", "SetBootstrapToken",
	    "GetBootstrapToken", "DeclarativeManagement", "GetToken"};
	const struct schema_msg *sm;
	const struct schema_key *k;
	size_t			 i;

	CHECK_EQ(schema_checkin_len, 8);
	CHECK(schema_commands_len >= 60);
	for (i = 0; i < 8; i++)
		CHECK(schema_checkin_find(eight[i]) != NULL);
	for (i = 1; i < schema_checkin_len; i++)
		CHECK(strcmp(schema_checkin[i - 1].name,
			  schema_checkin[i].name) < 0);
	for (i = 1; i < schema_commands_len; i++)
		CHECK(strcmp(schema_commands[i - 1].name,
			  schema_commands[i].name) < 0);
	for (i = 0; i < schema_commands_len; i++)
		CHECK(schema_command_find(schema_commands[i].name) ==
		    &schema_commands[i]);
	CHECK(schema_checkin_find("Nope") == NULL);
	CHECK(schema_checkin_find("") == NULL);
	CHECK(schema_checkin_find(NULL) == NULL);
	CHECK(schema_command_find("tokenupdate") == NULL);

	sm = schema_checkin_find("TokenUpdate");
	k = schema_key_find(sm->keys, sm->nkeys, "Token");
	CHECK(k != NULL);
	CHECK_EQ(k->type, SCHEMA_DATA);
	CHECK_EQ(k->required, 1);
	/* Required only on some platforms or channels: 0. */
	CHECK_EQ(schema_key_find(sm->keys, sm->nkeys, "UDID")->required, 0);
	CHECK_EQ(
	    schema_key_find(sm->keys, sm->nkeys, "NotOnConsole")->required, 0);
	CHECK(schema_key_find(sm->keys, sm->nkeys, "Nope") == NULL);
	sm = schema_checkin_find("Authenticate");
	CHECK_EQ(
	    schema_key_find(sm->keys, sm->nkeys, "DeviceName")->required, 0);
	/* DigestResponse only comes with the second request. */
	sm = schema_checkin_find("UserAuthenticate");
	CHECK_EQ(
	    schema_key_find(sm->keys, sm->nkeys, "DigestResponse")->required,
	    0);
	sm = schema_checkin_find("GetToken");
	k = schema_key_find(sm->keys, sm->nkeys, "TokenParameters");
	CHECK_EQ(k->type, SCHEMA_DICT);
	CHECK(
	    schema_key_find(k->subkeys, k->nsubkeys, "SecurityToken") != NULL);

	sm = schema_command_find("DeviceInformation");
	CHECK(sm != NULL);
	CHECK(schema_key_find(sm->keys, sm->nkeys, "Queries") != NULL);
	k = schema_key_find(sm->rkeys, sm->nrkeys, "QueryResponses");
	CHECK(k != NULL && k->type == SCHEMA_DICT && k->nsubkeys > 50);
	k = schema_key_find(sm->keys, sm->nkeys, "Queries");
	CHECK_EQ(k->type, SCHEMA_ARRAY);
	CHECK_EQ(k->nsubkeys, 1);
	CHECK(k->subkeys[0].key == NULL);
	CHECK_EQ(k->subkeys[0].type, SCHEMA_STRING);
	sm = schema_command_find("ProfileList");
	k = schema_key_find(sm->rkeys, sm->nrkeys, "ProfileList");
	CHECK(k != NULL && k->type == SCHEMA_ARRAY);
	CHECK_EQ(k->subkeys[0].type, SCHEMA_DICT);
	CHECK(schema_command_find("InstallProfile") != NULL);
	CHECK(schema_command_find("Settings") != NULL);

	CHECK_STR(schema_type_name(SCHEMA_STRING), "string");
	CHECK_STR(schema_type_name(SCHEMA_DICT), "dictionary");
	CHECK_STR(schema_type_name(SCHEMA_ANY), "any");
	CHECK_STR(schema_type_name(SCHEMA__MAX), "?");
}

static void
test_depth(void)
{
	static const char *const ok[] = {
	    "",
	    "no markup at all",
	    "<plist><dict/></plist>",
	    "<plist><dict></dict></plist>",
	    "<plist><array><dict/><array/></array></plist>",
	};
	char  *s;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CHECK(plist_xml_depth(ok[i], strlen(ok[i]), 32) <= 1);
#define DEPTH(str, max) plist_xml_depth((str), sizeof(str) - 1, (max))
	CHECK_EQ(DEPTH("<plist><dict/></plist>", 32), 0);
	CHECK_EQ(DEPTH("<dict><array><dict></dict></array></dict>", 32), 3);
	CHECK_EQ(DEPTH("<dict></dict><dict><array></array></dict>", 32), 2);
	CHECK_EQ(DEPTH("<dict /><array\t/>", 32), 0);
	CHECK_EQ(DEPTH("<dict><!-- <dict><dict> --></dict>", 32), 1);
	CHECK_EQ(DEPTH("<dict><![CDATA[<dict><array>]]></dict>", 32), 1);
	CHECK_EQ(DEPTH("<?xml version=\"1.0\"?><!DOCTYPE plist PUBLIC "
		       "\"-//Apple//DTD PLIST 1.0//EN\" \"x.dtd\"><dict/>",
		     32),
	    0);
	/* Stray closing tags cannot buy depth. */
	CHECK_EQ(
	    DEPTH("</dict></dict></array><dict><dict></dict></dict>", 32), 2);
	/* Opening tags count whatever their case; attributes allowed. */
	CHECK_EQ(DEPTH("<DICT><Array x=\"1\">", 32), 2);
	/* Unterminated or ambiguous markup. */
	CHECK_EQ(DEPTH("<dict><!-- never closed", 32), -1);
	CHECK_EQ(DEPTH("<dict><![CDATA[ never closed", 32), -1);
	CHECK_EQ(DEPTH("<?xml version=\"1.0\"", 32), -1);
	CHECK_EQ(DEPTH("<dict><array", 32), -1);
	CHECK_EQ(DEPTH("<", 32), -1);
	CHECK_EQ(DEPTH("<plist version=\"><dict>\"><dict/></plist>", 32), -1);
	CHECK_EQ(DEPTH("<di\"ct>\">", 32), -1);
	CHECK_EQ(DEPTH("<!DOCTYPE plist [<!ENTITY x \"y\">]><dict/>", 32), -1);
	CHECK_EQ(DEPTH("<!ENTITY x \"y\"><dict/>", 32), -1);
	CHECK_EQ(DEPTH("<dict <dict>", 32), -1);
	/* Stops early: max + 1. */
	CHECK_EQ(DEPTH("<dict><dict><dict><dict>", 2), 3);
	CHECK_EQ(DEPTH("<dict><dict><dict><dict", 2), 3);
#undef DEPTH
	s = deep(10000);
	CHECK_EQ(plist_xml_depth(s, strlen(s), PLIST_DEPTH_MAX),
	    PLIST_DEPTH_MAX + 1);
	free(s);
	s = deep(PLIST_DEPTH_MAX - 1); /* plus the root dict: exactly max */
	CHECK_EQ(
	    plist_xml_depth(s, strlen(s), PLIST_DEPTH_MAX), PLIST_DEPTH_MAX);
	free(s);
	CHECK_EQ(plist_xml_depth(NULL, 0, 32), 0);
}

static void
test_safe_parse(void)
{
	static const char good[] =
	    "<plist><dict><key>s</key><string>v</string>"
	    "<key>d</key><data>AAEC</data><key>e</key><data></data>"
	    "<key>t</key><true/><key>f</key><false/>"
	    "<key>i</key><integer>7</integer></dict></plist>";
	static const char    bom[] = "\xef\xbb\xbf \n<plist><dict/></plist>";
	static const char    nul[] = "<plist><dict><key>a</key><string>x\0y"
				     "</string></dict></plist>";
	const unsigned char *d;
	plist_t		     p = NULL;
	size_t		     n = 99;
	char		    *xml = NULL, *s;
	int		     b = -1;

#define PARSE(str) plist_safe_parse((str), sizeof(str) - 1, &p)
	CHECK_EQ(plist_safe_parse("", 0, &p), PLIST_SAFE_EMPTY);
	CHECK(p == NULL);
	CHECK_EQ(plist_safe_parse(NULL, 0, &p), PLIST_SAFE_EMPTY);
	CHECK_EQ(PARSE(" \r\n\t "), PLIST_SAFE_EMPTY);
	CHECK_EQ(PARSE("bplist00\xd1\x01\x02"), PLIST_SAFE_NOT_XML);
	CHECK_EQ(
	    PARSE("{\"MessageType\": \"Authenticate\"}"), PLIST_SAFE_NOT_XML);
	CHECK_EQ(PARSE("MessageType=Authenticate"), PLIST_SAFE_NOT_XML);
	CHECK_EQ(PARSE(nul), PLIST_SAFE_NOT_XML);
	CHECK_EQ(PARSE("<plist><array/></plist>"), PLIST_SAFE_MALFORMED);
	CHECK_EQ(
	    PARSE("<plist><string>x</string></plist>"), PLIST_SAFE_MALFORMED);
	CHECK_EQ(PARSE("<plist><dict><key>a</key><string>x</str"),
	    PLIST_SAFE_MALFORMED);
	CHECK_EQ(PARSE("<plist><dict><key>a</key><string>x</string>"),
	    PLIST_SAFE_MALFORMED);
	CHECK_EQ(PARSE("<html><body>hi</body></html>"), PLIST_SAFE_MALFORMED);
	CHECK(p == NULL);
	s = deep(10000);
	CHECK_EQ(plist_safe_parse(s, strlen(s), &p), PLIST_SAFE_TOO_DEEP);
	CHECK(p == NULL);
	free(s);
	/*
	 * At the cap, strict bodies (which skip the separate depth pass):
	 * the root dict plus max - 1 arrays is exactly max, one more is too
	 * deep; the same without the plist element (which does not count).
	 */
	s = deep(PLIST_DEPTH_MAX - 1);
	CHECK_EQ(plist_safe_parse(s, strlen(s), &p), PLIST_SAFE_OK);
	plist_free(p);
	p = NULL;
	free(s);
	s = deep(PLIST_DEPTH_MAX);
	CHECK_EQ(plist_safe_parse(s, strlen(s), &p), PLIST_SAFE_TOO_DEEP);
	CHECK(p == NULL);
	free(s);
	s = deep(PLIST_DEPTH_MAX);
	/* "<plist>" and "</plist>" become white space: no plist element. */
	memset(s, ' ', 7);
	memset(s + strlen(s) - 8, ' ', 8);
	CHECK_EQ(plist_safe_parse(s, strlen(s), &p), PLIST_SAFE_TOO_DEEP);
	CHECK(p == NULL);
	free(s);
	s = deep(PLIST_DEPTH_MAX - 1);
	memset(s, ' ', 7);
	memset(s + strlen(s) - 8, ' ', 8);
	CHECK_EQ(plist_safe_parse(s, strlen(s), &p), PLIST_SAFE_OK);
	plist_free(p);
	p = NULL;
	free(s);
	CHECK_EQ(PARSE(bom), PLIST_SAFE_OK);
	plist_free(p);
	p = NULL;
	CHECK_STR(plist_safe_strerror(PLIST_SAFE_TOO_DEEP),
	    "plist nested too deeply");
	CHECK(plist_safe_strerror((enum plist_safe_err)99) != NULL);

	/* Getters, borrowed values; parse input need not be NUL-terminated. */
	CHECK_EQ(plist_safe_parse(good, sizeof(good) - 1, &p), PLIST_SAFE_OK);
	CHECK_STR(plist_dict_str(p, "s"), "v");
	CHECK(plist_dict_str(p, "d") == NULL);
	CHECK(plist_dict_str(p, "nope") == NULL);
	CHECK(plist_dict_str(NULL, "s") == NULL);
	d = plist_dict_data(p, "d", &n);
	CHECK(d != NULL);
	CHECK_EQ(n, 3);
	CHECK(d[0] == 0 && d[1] == 1 && d[2] == 2);
	d = plist_dict_data(p, "e", &n);
	CHECK(d != NULL); /* present but empty is not absent */
	CHECK_EQ(n, 0);
	CHECK(plist_dict_data(p, "s", &n) == NULL);
	CHECK_EQ(n, 0);
	CHECK_EQ(plist_dict_bool(p, "t", &b), 0);
	CHECK_EQ(b, 1);
	CHECK_EQ(plist_dict_bool(p, "f", &b), 0);
	CHECK_EQ(b, 0);
	CHECK_EQ(plist_dict_bool(p, "i", &b), -1);
	CHECK_EQ(plist_dict_bool(p, "nope", &b), -1);

	CHECK_EQ(plist_to_xml_buf(p, &xml, &n), 0);
	CHECK(xml != NULL && n == strlen(xml));
	CHECK(strstr(xml, "<key>s</key>") != NULL);
	plist_free(p);
	p = NULL;
	CHECK_EQ(plist_safe_parse(xml, n, &p), PLIST_SAFE_OK);
	CHECK_STR(plist_dict_str(p, "s"), "v");
	plist_free(p);
	free(xml);
	CHECK_EQ(plist_to_xml_buf(NULL, &xml, &n), -1);
#undef PARSE
}

/* Each fixture with its expected enrollment type and IDs. */
static void
test_ids_fixtures(void)
{
	static const struct {
		const char	*file;
		enum msg_kind	 kind;
		enum enroll_type type;
		int		 user;
		const char	*id;
		const char	*device_id;
	} cases[] = {
	    {"checkin/authenticate.plist", MSG_AUTHENTICATE, ENROLL_DEVICE, 0,
		UDID_IOS, UDID_IOS},
	    {"checkin/authenticate-macos.plist", MSG_AUTHENTICATE,
		ENROLL_DEVICE, 0, UDID_MAC, UDID_MAC},
	    {"checkin/authenticate-ue.plist", MSG_AUTHENTICATE,
		ENROLL_UE_DEVICE, 0, EID, EID},
	    {"checkin/tokenupdate.plist", MSG_TOKEN_UPDATE, ENROLL_DEVICE, 0,
		UDID_IOS, UDID_IOS},
	    {"checkin/tokenupdate-macos.plist", MSG_TOKEN_UPDATE, ENROLL_DEVICE,
		0, UDID_MAC, UDID_MAC},
	    {"checkin/tokenupdate-user.plist", MSG_TOKEN_UPDATE, ENROLL_USER, 1,
		UDID_MAC ":" MAC_USER, UDID_MAC},
	    {"checkin/tokenupdate-shared-ipad.plist", MSG_TOKEN_UPDATE,
		ENROLL_SHARED_IPAD, 1,
		"00008101-000E3C1A2B48001E:student.42@school.example.edu",
		"00008101-000E3C1A2B48001E"},
	    {"checkin/tokenupdate-ue-device.plist", MSG_TOKEN_UPDATE,
		ENROLL_UE_DEVICE, 0, EID, EID},
	    {"checkin/tokenupdate-ue-user.plist", MSG_TOKEN_UPDATE,
		ENROLL_UE_USER, 1, EID ":" EUID, EID},
	    {"checkin/checkout.plist", MSG_CHECK_OUT, ENROLL_DEVICE, 0,
		UDID_IOS, UDID_IOS},
	    {"checkin/userauthenticate.plist", MSG_USER_AUTHENTICATE,
		ENROLL_USER, 1, UDID_MAC ":" MAC_USER, UDID_MAC},
	    {"checkin/userauthenticate-digest.plist", MSG_USER_AUTHENTICATE,
		ENROLL_USER, 1, UDID_MAC ":" MAC_USER, UDID_MAC},
	    {"checkin/setbootstraptoken.plist", MSG_SET_BOOTSTRAP_TOKEN,
		ENROLL_DEVICE, 0, UDID_MAC, UDID_MAC},
	    {"checkin/setbootstraptoken-delete.plist", MSG_SET_BOOTSTRAP_TOKEN,
		ENROLL_DEVICE, 0, UDID_MAC, UDID_MAC},
	    {"checkin/getbootstraptoken.plist", MSG_GET_BOOTSTRAP_TOKEN,
		ENROLL_DEVICE, 0, UDID_MAC, UDID_MAC},
	    {"checkin/declarativemanagement.plist", MSG_DECLARATIVE_MANAGEMENT,
		ENROLL_DEVICE, 0, UDID_IOS, UDID_IOS},
	    {"checkin/declarativemanagement-status.plist",
		MSG_DECLARATIVE_MANAGEMENT, ENROLL_DEVICE, 0, UDID_IOS,
		UDID_IOS},
	    {"checkin/gettoken.plist", MSG_GET_TOKEN, ENROLL_DEVICE, 0,
		UDID_IOS, UDID_IOS},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char     *r = NULL;
		struct mdm_msg *m = checkin_file(cases[i].file, 0, &r);

		CHECK(r == NULL);
		CHECK_EQ(m->kind, cases[i].kind);
		CHECK_EQ(m->type, cases[i].type);
		CHECK_EQ(m->user_channel, cases[i].user);
		CHECK_STR(m->id, cases[i].id);
		CHECK_STR(m->device_id, cases[i].device_id);
		CHECK_EQ(m->well_formed, 1);
		CHECK(m->root != NULL);
		msg_free(m);
	}
}

/* Enrollment IDs from inline identity keys, through msg_resolve_ids. */
static void
test_ids_inline(void)
{
	static const struct {
		const char	*keys;
		enum enroll_type type;
		const char	*id;
		const char	*device_id;
	} ok[] = {
	    /* UDID wins over EnrollmentID. */
	    {"<key>UDID</key><string>U1</string>"
	     "<key>EnrollmentID</key><string>E1</string>",
		ENROLL_DEVICE, "U1", "U1"},
	    {"<key>UDID</key><string>U1</string>"
	     "<key>EnrollmentID</key><string>E1</string>"
	     "<key>UserID</key><string>G1</string>",
		ENROLL_USER, "U1:G1", "U1"},
	    /* The all-F UserID in any case is Shared iPad. */
	    {"<key>UDID</key><string>U1</string>"
	     "<key>UserID</key>"
	     "<string>ffffffff-FFFF-ffff-FFFF-ffffffffffff</string>"
	     "<key>UserShortName</key><string>a.b@c.example</string>",
		ENROLL_SHARED_IPAD, "U1:a.b@c.example", "U1"},
	    /* UserShortName alone does not make a user channel. */
	    {"<key>UDID</key><string>U1</string>"
	     "<key>UserShortName</key><string>jane</string>",
		ENROLL_DEVICE, "U1", "U1"},
	    /* UE user channel: UserID is not the user part. */
	    {"<key>EnrollmentID</key><string>E1</string>"
	     "<key>EnrollmentUserID</key><string>EU1</string>"
	     "<key>UserID</key><string>G1</string>",
		ENROLL_UE_USER, "E1:EU1", "E1"},
	    /* IDs may contain ':', '@' and '.': kept verbatim. */
	    {"<key>UDID</key><string>a:b.c@d</string>"
	     "<key>UserID</key><string>e:f@g.h</string>",
		ENROLL_USER, "a:b.c@d:e:f@g.h", "a:b.c@d"},
	    {"<key>EnrollmentID</key><string>x:y</string>"
	     "<key>EnrollmentUserID</key><string>:@.</string>",
		ENROLL_UE_USER, "x:y::@.", "x:y"},
	};
	static const struct {
		const char *keys;
		const char *reason;
	} bad[] = {
	    {"", "missing UDID or EnrollmentID"},
	    {"<key>UserID</key><string>G1</string>",
		"missing UDID or EnrollmentID"},
	    {"<key>UDID</key><string>U1</string><key>UserID</key>"
	     "<string>FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF</string>",
		"UserShortName: missing (Shared iPad user channel)"},
	    {"<key>UDID</key><string>U1</string>"
	     "<key>EnrollmentUserID</key><string>EU1</string>",
		"EnrollmentUserID: not valid with UDID"},
	    {"<key>EnrollmentID</key><string>E1</string>"
	     "<key>UserID</key><string>G1</string>",
		"EnrollmentUserID: missing (User Enrollment user channel)"},
	    {"<key>UDID</key><integer>1</integer>",
		"UDID: wrong type (integer, want string)"},
	    {"<key>UDID</key><string></string>", "UDID: empty"},
	    {"<key>UDID</key><string>U1</string>"
	     "<key>UserID</key><string></string>",
		"UserID: empty"},
	    {"<key>UDID</key><string>a&#10;b</string>",
		"UDID: contains a control character"},
	};
	char   *big, *b;
	size_t	i;
	plist_t p;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct mdm_msg m;
		const char    *r = "x";

		memset(&m, 0, sizeof(m));
		b = wrap(ok[i].keys);
		p = NULL;
		CHECK_EQ(plist_safe_parse(b, strlen(b), &p), PLIST_SAFE_OK);
		CHECK_EQ(msg_resolve_ids(p, &m, &r), 0);
		CHECK(r == NULL);
		CHECK_EQ(m.type, ok[i].type);
		CHECK_STR(m.id, ok[i].id);
		CHECK_STR(m.device_id, ok[i].device_id);
		CHECK_EQ(
		    m.user_channel, strcmp(ok[i].id, ok[i].device_id) != 0);
		plist_free(p);
		free(b);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mdm_msg m;
		const char    *r = NULL;

		memset(&m, 0, sizeof(m));
		b = wrap(bad[i].keys);
		p = NULL;
		CHECK_EQ(plist_safe_parse(b, strlen(b), &p), PLIST_SAFE_OK);
		CHECK_EQ(msg_resolve_ids(p, &m, &r), -1);
		CHECK_STR(r, bad[i].reason);
		CHECK_EQ(m.type, ENROLL_NONE);
		CHECK_STR(m.id, "");
		plist_free(p);
		free(b);
	}

	/* The longest identity keys still make an ID that fits. */
	big = build3("<key>UDID</key><string>", 'u', MSG_IDENT_MAX,
	    "</string><key>UserID</key><string>");
	b = build3(big, 'g', MSG_IDENT_MAX, "</string>");
	free(big);
	big = wrap(b);
	free(b);
	{
		struct mdm_msg m;
		const char    *r = NULL;

		p = NULL;
		CHECK_EQ(plist_safe_parse(big, strlen(big), &p), PLIST_SAFE_OK);
		CHECK_EQ(msg_resolve_ids(p, &m, &r), 0);
		CHECK_EQ(strlen(m.id), 2 * MSG_IDENT_MAX + 1);
		CHECK(strlen(m.id) <= MSG_ID_MAX);
		plist_free(p);
	}
	free(big);
	b = build3(
	    "<key>UDID</key><string>", 'u', MSG_IDENT_MAX + 1, "</string>");
	checkin_refused(b, NULL);
	{
		struct mdm_msg m;
		const char    *r = NULL;

		big = wrap(b);
		p = NULL;
		CHECK_EQ(plist_safe_parse(big, strlen(big), &p), PLIST_SAFE_OK);
		CHECK_EQ(msg_resolve_ids(p, &m, &r), -1);
		CHECK_STR(r, "UDID: too long");
		plist_free(p);
		free(big);
	}
	free(b);
	{
		struct mdm_msg m;
		const char    *r = NULL;

		CHECK_EQ(msg_resolve_ids(NULL, &m, &r), -1);
		CHECK(r != NULL);
	}
}

/* Each of the eight check-ins: a minimal valid one, then broken ones. */
static void
test_checkin_types(void)
{
	struct mdm_msg *m = NULL;
	const char     *r = NULL;

	/* Authenticate */
	CHECK_EQ(
	    checkin_inline(MT("Authenticate") TOPIC_KV UDID_KV, &m, &r), 0);
	CHECK_EQ(m->kind, MSG_AUTHENTICATE);
	msg_free(m);
	checkin_refused(MT("Authenticate") UDID_KV, "Topic: missing");
	checkin_refused(MT("Authenticate") UDID_KV
	    "<key>Topic</key><string></string>",
	    "Topic: empty");
	checkin_refused(MT("Authenticate") TOPIC_KV UDID_KV
	    "<key>SerialNumber</key><true/>",
	    "SerialNumber: wrong type (boolean, want string)");

	/* TokenUpdate */
	CHECK_EQ(
	    checkin_inline(
		MT("TokenUpdate") TOPIC_KV UDID_KV TOKEN_KV MAGIC_KV, &m, &r),
	    0);
	CHECK_EQ(m->kind, MSG_TOKEN_UPDATE);
	msg_free(m);
	checkin_refused(
	    MT("TokenUpdate") TOPIC_KV UDID_KV MAGIC_KV, "Token: missing");
	checkin_refused(
	    MT("TokenUpdate") TOPIC_KV UDID_KV TOKEN_KV, "PushMagic: missing");
	checkin_refused(
	    MT("TokenUpdate") UDID_KV TOKEN_KV MAGIC_KV, "Topic: missing");
	checkin_refused(MT("TokenUpdate") TOPIC_KV UDID_KV MAGIC_KV
	    "<key>Token</key><string>c0ffee</string>",
	    "Token: wrong type (string, want data)");
	checkin_refused(MT("TokenUpdate") TOPIC_KV UDID_KV MAGIC_KV
	    "<key>Token</key><data></data>",
	    "Token: empty");
	checkin_refused(MT("TokenUpdate") TOPIC_KV UDID_KV TOKEN_KV MAGIC_KV
	    "<key>UnlockToken</key><string>x</string>",
	    "UnlockToken: wrong type (string, want data)");
	checkin_refused(MT("TokenUpdate") TOPIC_KV UDID_KV TOKEN_KV MAGIC_KV
	    "<key>AwaitingConfiguration</key><string>yes</string>",
	    "AwaitingConfiguration: wrong type (string, want boolean)");
	checkin_refused(MT("TokenUpdate") TOPIC_KV UDID_KV TOKEN_KV MAGIC_KV
	    "<key>NotOnConsole</key><integer>0</integer>",
	    "NotOnConsole: wrong type (integer, want boolean)");
	{
		/* 256 bytes of token is the most; 257 is refused. */
		char *d = build3(MT("TokenUpdate") TOPIC_KV UDID_KV MAGIC_KV
		    "<key>Token</key><data>",
		    'A', 340, "AA==</data>");
		char *e = build3(MT("TokenUpdate") TOPIC_KV UDID_KV MAGIC_KV
		    "<key>Token</key><data>",
		    'A', 340, "AAA=</data>");

		CHECK_EQ(checkin_inline(d, &m, &r), 0);
		msg_free(m);
		checkin_refused(e, "Token: too long");
		free(d);
		free(e);
	}

	/* CheckOut */
	CHECK_EQ(checkin_inline(MT("CheckOut") TOPIC_KV UDID_KV, &m, &r), 0);
	CHECK_EQ(m->kind, MSG_CHECK_OUT);
	msg_free(m);
	checkin_refused(MT("CheckOut") UDID_KV, "Topic: missing");
	checkin_refused(
	    MT("CheckOut") TOPIC_KV, "missing UDID or EnrollmentID");

	/* UserAuthenticate */
	CHECK_EQ(checkin_inline(MT("UserAuthenticate") UDID_KV
		     "<key>UserID</key><string>" MAC_USER "</string>",
		     &m, &r),
	    0);
	CHECK_EQ(m->kind, MSG_USER_AUTHENTICATE);
	CHECK(m->user_channel);
	CHECK(msg_str(m, "DigestResponse") == NULL);
	msg_free(m);
	checkin_refused(MT("UserAuthenticate") UDID_KV, "UserID: missing");
	checkin_refused(MT("UserAuthenticate") UDID_KV
	    "<key>UserID</key><string>" MAC_USER "</string>"
	    "<key>DigestResponse</key><data>AA==</data>",
	    "DigestResponse: wrong type (data, want string)");

	/* SetBootstrapToken */
	CHECK_EQ(checkin_inline(MT("SetBootstrapToken") UDID_KV, &m, &r), 0);
	CHECK_EQ(m->kind, MSG_SET_BOOTSTRAP_TOKEN);
	CHECK(msg_data(m, "BootstrapToken", NULL) == NULL);
	msg_free(m);
	checkin_refused(
	    MT("SetBootstrapToken") "<key>BootstrapToken</key><data>AAEC</data>",
	    "missing UDID or EnrollmentID");
	checkin_refused(MT("SetBootstrapToken") UDID_KV
	    "<key>BootstrapToken</key><string>AAEC</string>",
	    "BootstrapToken: wrong type (string, want data)");

	/* GetBootstrapToken */
	CHECK_EQ(checkin_inline(MT("GetBootstrapToken") UDID_KV, &m, &r), 0);
	CHECK_EQ(m->kind, MSG_GET_BOOTSTRAP_TOKEN);
	CHECK_EQ(msg_bool(m, "AwaitingConfiguration", 7), 7);
	msg_free(m);
	checkin_refused(MT("GetBootstrapToken") UDID_KV
	    "<key>AwaitingConfiguration</key><integer>1</integer>",
	    "AwaitingConfiguration: wrong type (integer, want boolean)");

	/* DeclarativeManagement */
	CHECK_EQ(checkin_inline(MT("DeclarativeManagement") UDID_KV
		     "<key>Endpoint</key><string>declaration-items</string>",
		     &m, &r),
	    0);
	CHECK_EQ(m->kind, MSG_DECLARATIVE_MANAGEMENT);
	CHECK_STR(msg_str(m, "Endpoint"), "declaration-items");
	msg_free(m);
	checkin_refused(
	    MT("DeclarativeManagement") UDID_KV, "Endpoint: missing");
	checkin_refused(MT("DeclarativeManagement") UDID_KV
	    "<key>Endpoint</key><string>status</string>"
	    "<key>Data</key><string>{}</string>",
	    "Data: wrong type (string, want data)");

	/* GetToken */
	CHECK_EQ(
	    checkin_inline(MT("GetToken") UDID_KV
		"<key>TokenServiceType</key><string>com.apple.maid</string>",
		&m, &r),
	    0);
	CHECK_EQ(m->kind, MSG_GET_TOKEN);
	msg_free(m);
	checkin_refused(MT("GetToken") UDID_KV, "TokenServiceType: missing");
	checkin_refused(MT("GetToken") UDID_KV
	    "<key>TokenServiceType</key><string>com.apple.maid</string>"
	    "<key>TokenParameters</key><array/>",
	    "TokenParameters: wrong type (array, want dictionary)");
	/* Nested keys are checked where Apple describes them. */
	checkin_refused(MT("GetToken") UDID_KV
	    "<key>TokenServiceType</key><string>com.apple.watch.pairing"
	    "</string><key>TokenParameters</key><dict>"
	    "<key>SecurityToken</key><integer>5</integer></dict>",
	    "TokenParameters.SecurityToken: wrong type (integer, want "
	    "string)");
}

/* The getters see validated keys only; fixtures' values come through. */
static void
test_getters(void)
{
	struct mdm_msg	    *m;
	const char	    *r = NULL;
	const unsigned char *d;
	size_t		     n = 1;
	plist_t		     node;

	m = checkin_file("checkin/tokenupdate.plist", 0, &r);
	CHECK_STR(msg_str(m, "Topic"),
	    "com.apple.mgmt.External.7c3e6a9d-2f41-4b8e-9c5d-1a0b2e3f4d5c");
	CHECK_STR(
	    msg_str(m, "PushMagic"), "5B2C7E1A-4D3F-4A8B-9E6C-0F1D2A3B4C5D");
	d = msg_data(m, "Token", &n);
	CHECK(d != NULL);
	CHECK_EQ(n, 32);
	d = msg_data(m, "UnlockToken", &n);
	CHECK(d != NULL);
	CHECK_EQ(n, 1024);
	CHECK(msg_str(m, "Token") == NULL); /* wrong type */
	CHECK(msg_str(m, "Nope") == NULL);
	CHECK_EQ(msg_bool(m, "AwaitingConfiguration", 1), 0);
	CHECK(msg_node(m, "Topic") != NULL);
	CHECK(msg_str(NULL, "Topic") == NULL);
	msg_free(m);

	/* Unknown keys are tolerated but not visible through the getters. */
	CHECK_EQ(checkin_inline(MT("CheckOut") TOPIC_KV UDID_KV
		     "<key>Extra</key><string>x</string>"
		     "<key>Weird</key><array><integer>1</integer></array>",
		     &m, &r),
	    0);
	CHECK(msg_str(m, "Extra") == NULL);
	CHECK(msg_node(m, "Weird") == NULL);
	CHECK(plist_dict_str(m->root, "Extra") != NULL);
	msg_free(m);

	/* Empty BootstrapToken (delete) differs from an absent one. */
	m = checkin_file("checkin/setbootstraptoken-delete.plist", 0, &r);
	d = msg_data(m, "BootstrapToken", &n);
	CHECK(d != NULL);
	CHECK_EQ(n, 0);
	msg_free(m);
	m = checkin_file("checkin/setbootstraptoken.plist", 0, &r);
	d = msg_data(m, "BootstrapToken", &n);
	CHECK(d != NULL);
	CHECK_EQ(n, 1536);
	msg_free(m);

	m = checkin_file("checkin/gettoken.plist", 0, &r);
	node = msg_node(m, "TokenParameters");
	CHECK(node != NULL);
	CHECK_STR(
	    plist_dict_str(node, "WatchUDID"), "00008301-0019A4C20E12802E");
	CHECK_STR(msg_str(m, "TokenServiceType"), "com.apple.watch.pairing");
	msg_free(m);

	m = checkin_file("checkin/declarativemanagement-status.plist", 0, &r);
	d = msg_data(m, "Data", &n);
	CHECK(d != NULL && n > 100 && d[0] == '{');
	msg_free(m);

	m = checkin_file("checkin/tokenupdate-user.plist", 0, &r);
	CHECK_STR(msg_str(m, "UserLongName"), "Jane Appleseed");
	CHECK_EQ(msg_bool(m, "NotOnConsole", 1), 0);
	msg_free(m);

	/* Identity keys are visible even where Apple's schema omits them. */
	m = checkin_file("checkin/getbootstraptoken.plist", 0, &r);
	CHECK_STR(msg_str(m, "UDID"), UDID_MAC);
	CHECK_EQ(msg_bool(m, "AwaitingConfiguration", 0), 1);
	msg_free(m);
	msg_free(NULL);
}

static void
test_connect(void)
{
	static const struct {
		const char	*file;
		enum cmd_status	 status;
		const char	*uuid;
		const char	*id;
		int		 well_formed;
		enum enroll_type type;
	} cases[] = {
	    {"connect/idle.plist", CMD_STATUS_IDLE, NULL, UDID_IOS, 1,
		ENROLL_DEVICE},
	    {"connect/idle-user.plist", CMD_STATUS_IDLE, NULL,
		UDID_MAC ":" MAC_USER, 1, ENROLL_USER},
	    {"connect/acknowledged.plist", CMD_STATUS_ACKNOWLEDGED,
		"0F6B2E51-7C3D-4A89-B1E2-3D4C5B6A7980", UDID_IOS, 1,
		ENROLL_DEVICE},
	    {"connect/acknowledged-profilelist.plist", CMD_STATUS_ACKNOWLEDGED,
		"8D7C6B5A-4938-4271-A6B5-C4D3E2F1A0B9", UDID_MAC, 1,
		ENROLL_DEVICE},
	    {"connect/acknowledged-ue.plist", CMD_STATUS_ACKNOWLEDGED,
		"9A8B7C6D-5E4F-4031-A2B3-C4D5E6F7A8B9", EID, 1,
		ENROLL_UE_DEVICE},
	    {"connect/error.plist", CMD_STATUS_ERROR,
		"4C3B2A19-0817-4E6F-9D5C-4B3A29180716", UDID_IOS, 1,
		ENROLL_DEVICE},
	    {"connect/formaterror.plist", CMD_STATUS_FORMAT_ERROR,
		"5D4C3B2A-1908-4F7E-8D6C-5B4A39281706", UDID_IOS, 1,
		ENROLL_DEVICE},
	    {"connect/notnow.plist", CMD_STATUS_NOT_NOW,
		"6E5D4C3B-2A19-4087-9E7D-6C5B4A392817", UDID_MAC, 1,
		ENROLL_DEVICE},
	    {"connect/bad-errorchain.plist", CMD_STATUS_ERROR,
		"7F6E5D4C-3B2A-4198-A0F8-7D6C5B4A3928", UDID_IOS, 0,
		ENROLL_DEVICE},
	};
	struct mdm_msg *m = NULL;
	const char     *r = NULL;
	size_t		i;
	char	       *b;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = NULL;
		m = connect_file(cases[i].file, 0, &r);
		CHECK_EQ(m->kind, MSG_CONNECT);
		CHECK_EQ(m->status, cases[i].status);
		if (cases[i].uuid == NULL)
			CHECK(m->command_uuid == NULL);
		else
			CHECK_STR(m->command_uuid, cases[i].uuid);
		CHECK_STR(m->id, cases[i].id);
		CHECK_EQ(m->type, cases[i].type);
		CHECK_EQ(m->well_formed, cases[i].well_formed);
		CHECK((m->reason == NULL) == cases[i].well_formed);
		CHECK((r == NULL) == cases[i].well_formed);
		CHECK(m->root != NULL);
		msg_free(m);
	}

	/* The reason is the message's own copy: later calls keep it. */
	{
		struct mdm_msg *keep;

		keep = connect_file("connect/bad-errorchain.plist", 0, &r);
		CHECK_STR(keep->reason,
		    "ErrorChain.ErrorCode: wrong type (string, want integer)");
		CHECK(msg_node(keep, "ErrorChain") == NULL); /* unvalidated */
		CHECK_EQ(connect_inline(
			     "<key>Status</key><integer>2</integer>" UDID_KV,
			     &m, &r),
		    400);
		CHECK_STR(keep->reason,
		    "ErrorChain.ErrorCode: wrong type (string, want integer)");
		msg_free(keep);
	}

	m = connect_file("connect/error.plist", 0, &r);
	CHECK(msg_node(m, "ErrorChain") != NULL);
	CHECK_EQ(plist_array_get_size(msg_node(m, "ErrorChain")), 2);
	CHECK_STR(msg_str(m, "Status"), "Error");
	CHECK_STR(
	    msg_str(m, "CommandUUID"), "4C3B2A19-0817-4E6F-9D5C-4B3A29180716");
	msg_free(m);

	/* Idle needs no CommandUUID; one sent anyway is ignored. */
	CHECK_EQ(connect_inline("<key>Status</key><string>Idle</string>" UDID_KV
				"<key>CommandUUID</key><string></string>",
		     &m, &r),
	    0);
	CHECK(m->command_uuid == NULL);
	CHECK(msg_str(m, "CommandUUID") == NULL);
	msg_free(m);

	/* Statuses other than Idle need a CommandUUID. */
	static const char *const need_uuid[] = {
	    "Acknowledged", "Error", "CommandFormatError", "NotNow"};
	for (i = 0; i < 4; i++) {
		char inner[256];
		int  w = snprintf(inner, sizeof(inner),
		     "<key>Status</key><string>%s</string>" UDID_KV,
		     need_uuid[i]);

		CHECK(w > 0 && (size_t)w < sizeof(inner));
		r = NULL;
		CHECK_EQ(connect_inline(inner, &m, &r), 400);
		CHECK(m == NULL);
		CHECK_STR(r, "CommandUUID: missing");
		CHECK_EQ(
		    cmd_status_parse(need_uuid[i]), CMD_STATUS_IDLE + 1 + i);
	}
	CHECK_EQ(connect_inline(
		     "<key>Status</key><string>Acknowledged</string>" UDID_KV
		     "<key>CommandUUID</key><string></string>",
		     &m, &r),
	    400);
	CHECK_STR(r, "CommandUUID: empty");
	CHECK_EQ(connect_inline(
		     "<key>Status</key><string>Acknowledged</string>" UDID_KV
		     "<key>CommandUUID</key><integer>4</integer>",
		     &m, &r),
	    400);
	CHECK_STR(r, "CommandUUID: wrong type (integer, want string)");
	b = build3("<key>Status</key><string>NotNow</string>" UDID_KV
		   "<key>CommandUUID</key><string>",
	    'c', 256, "</string>");
	CHECK_EQ(connect_inline(b, &m, &r), 400);
	CHECK_STR(r, "CommandUUID: too long");
	free(b);

	/* Status: required, a string, one of the five. */
	CHECK_EQ(connect_inline(UDID_KV, &m, &r), 400);
	CHECK_STR(r, "Status: missing");
	/* A check-in sent as a report: the hint names the content type. */
	CHECK_EQ(connect_inline("<key>MessageType</key><string>Authenticate"
				"</string>" UDID_KV, &m, &r), 400);
	CHECK_STR(r, "Status: missing; this is a check-in (MessageType): "
		     "send it with Content-Type: application/x-apple-aspen-"
		     "mdm-checkin, or to /mdm/checkin");
	CHECK_EQ(connect_inline(
		     "<key>Status</key><integer>1</integer>" UDID_KV, &m, &r),
	    400);
	CHECK_STR(r, "Status: wrong type (integer, want string)");
	CHECK_EQ(connect_inline(
		     "<key>Status</key><string>idle</string>" UDID_KV, &m, &r),
	    400);
	CHECK_STR(r, "Status: unknown value");
	CHECK_EQ(
	    connect_inline("<key>Status</key><string>Expired</string>"
			   "<key>CommandUUID</key><string>x</string>" UDID_KV,
		&m, &r),
	    400);
	CHECK_STR(r, "Status: unknown value");

	/* Identity keys as for check-ins. */
	CHECK_EQ(
	    connect_inline("<key>Status</key><string>Idle</string>", &m, &r),
	    400);
	CHECK_STR(r, "missing UDID or EnrollmentID");
	CHECK_EQ(connect_inline("<key>Status</key><string>Idle</string>"
				"<key>UDID</key><data>AA==</data>",
		     &m, &r),
	    400);
	CHECK_STR(r, "UDID: wrong type (data, want string)");

	/* A bad ErrorChain or RequestType only clears well_formed. */
	static const char *const odd[] = {
	    "<key>ErrorChain</key><string>oops</string>",
	    "<key>ErrorChain</key><array><string>oops</string></array>",
	    "<key>ErrorChain</key><array><dict><key>ErrorCode</key>"
	    "<integer>1</integer></dict></array>",
	    "<key>ErrorChain</key><array><dict><key>ErrorCode</key>"
	    "<integer>1</integer><key>ErrorDomain</key><string>D</string>"
	    "<key>LocalizedDescription</key><data>AA==</data></dict></array>",
	    "<key>RequestType</key><integer>1</integer>",
	};
	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		char inner[512];
		int  w = snprintf(inner, sizeof(inner),
		     "<key>Status</key><string>Error</string>"
		      "<key>CommandUUID</key><string>u-%zu</string>" UDID_KV "%s",
		     i, odd[i]);

		CHECK(w > 0 && (size_t)w < sizeof(inner));
		r = NULL;
		CHECK_EQ(connect_inline(inner, &m, &r), 0);
		CHECK_EQ(m->well_formed, 0);
		CHECK(m->reason != NULL && r == m->reason);
		CHECK_EQ(m->status, CMD_STATUS_ERROR);
		CHECK(m->command_uuid != NULL);
		msg_free(m);
	}
	/* An empty ErrorChain and unknown keys are fine. */
	CHECK_EQ(
	    connect_inline("<key>Status</key><string>Error</string>"
			   "<key>CommandUUID</key><string>u</string>" UDID_KV
			   "<key>ErrorChain</key><array/>"
			   "<key>Anything</key><dict><key>x</key><date>"
			   "2024-10-21T10:00:00Z</date></dict>",
		&m, &r),
	    0);
	CHECK_EQ(m->well_formed, 1);
	msg_free(m);
}

/*
 * An Acknowledged report against its command's response keys: ProfileList
 * must carry a ProfileList array of dictionaries with PayloadUUID and
 * PayloadIdentifier (Apple's schema); other statuses and RequestTypes
 * without response keys are left alone.
 */
static void
test_check_response(void)
{
	struct mdm_msg *m = NULL;
	const char     *r = NULL;
	static const char ack[] = "<key>Status</key><string>Acknowledged</string>"
				  "<key>CommandUUID</key><string>u</string>" UDID_KV;
	static const char good[] =
	    "<key>ProfileList</key><array><dict><key>PayloadUUID</key>"
	    "<string>P</string><key>PayloadIdentifier</key><string>com.x</string>"
	    "</dict></array>";
	char   body[1024];
	size_t i;

	/* The right shape, and an empty list. */
	snprintf(body, sizeof(body), "%s%s", ack, good);
	CHECK_EQ(connect_inline(body, &m, &r), 0);
	msg_check_response(m, "ProfileList");
	CHECK_EQ(m->well_formed, 1);
	CHECK(m->reason == NULL);
	msg_free(m);
	snprintf(body, sizeof(body), "%s%s", ack,
	    "<key>ProfileList</key><array/>");
	CHECK_EQ(connect_inline(body, &m, &r), 0);
	msg_check_response(m, "ProfileList");
	CHECK_EQ(m->well_formed, 1);
	msg_free(m);

	/* Missing, of the wrong type, an item without a required key. */
	static const char *const bad[] = {
	    "",
	    "<key>ProfileList</key><string>x</string>",
	    ("<key>ProfileList</key><array><dict><key>PayloadUUID</key>"
		"<string>P</string></dict></array>"),
	};
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "%s%s", ack, bad[i]);
		CHECK_EQ(connect_inline(body, &m, &r), 0);
		CHECK_EQ(m->well_formed, 1);
		msg_check_response(m, "ProfileList");
		CHECK_EQ(m->well_formed, 0);
		CHECK(m->reason != NULL &&
		    strstr(m->reason, "ProfileList") != NULL);
		msg_free(m);
	}

	/* The same body for another status, an unknown RequestType, or
	 * none: unchanged. */
	snprintf(body, sizeof(body), "%s%s",
	    "<key>Status</key><string>Error</string>"
	    "<key>CommandUUID</key><string>u</string>" UDID_KV,
	    bad[1]);
	CHECK_EQ(connect_inline(body, &m, &r), 0);
	msg_check_response(m, "ProfileList");
	CHECK_EQ(m->well_formed, 1);
	msg_free(m);
	snprintf(body, sizeof(body), "%s%s", ack, bad[1]);
	CHECK_EQ(connect_inline(body, &m, &r), 0);
	msg_check_response(m, "NoSuchRequestType");
	msg_check_response(m, NULL);
	CHECK_EQ(m->well_formed, 1);
	msg_free(m);

	/*
	 * DeviceInformation: QueryResponses has 87 keys in the schema; a
	 * dict of a few answers is checked item by item (check_dict's
	 * dict_few path), a large one key by key: the same verdicts and
	 * reasons either way, the first failing key in schema order.
	 */
	static const struct {
		const char *qr;     /* the QueryResponses dict's items */
		const char *reason; /* NULL: well-formed */
	} di[] = {
	    {"<key>OSVersion</key><string>17.4</string>"
	     "<key>DeviceName</key><string>d</string>", NULL},
	    {"", NULL},
	    {"<key>NotInTheSchema</key><integer>1</integer>", NULL},
	    {"<key>OSVersion</key><integer>17</integer>"
	     "<key>DeviceName</key><string>d</string>",
		"QueryResponses.OSVersion: wrong type (integer, want string)"},
	    /* DeviceName comes first in the schema: its reason wins. */
	    {"<key>OSVersion</key><integer>17</integer>"
	     "<key>DeviceName</key><false/>",
		"QueryResponses.DeviceName: wrong type (boolean, want string)"},
	    {"<key>IsSupervised</key><string>yes</string>",
		"QueryResponses.IsSupervised: wrong type (string, want boolean)"},
	    /* 24 items: more than the few path takes. */
	    {"<key>A0</key><true/><key>A1</key><true/><key>A2</key><true/>"
	     "<key>A3</key><true/><key>A4</key><true/><key>A5</key><true/>"
	     "<key>A6</key><true/><key>A7</key><true/><key>A8</key><true/>"
	     "<key>A9</key><true/><key>B0</key><true/><key>B1</key><true/>"
	     "<key>B2</key><true/><key>B3</key><true/><key>B4</key><true/>"
	     "<key>B5</key><true/><key>B6</key><true/><key>B7</key><true/>"
	     "<key>B8</key><true/><key>B9</key><true/><key>C0</key><true/>"
	     "<key>C1</key><true/><key>C2</key><true/>"
	     "<key>OSVersion</key><real>17.4</real>",
		"QueryResponses.OSVersion: wrong type (real, want string)"},
	};
	for (i = 0; i < sizeof(di) / sizeof(di[0]); i++) {
		snprintf(body, sizeof(body),
		    "%s<key>QueryResponses</key><dict>%s</dict>", ack, di[i].qr);
		CHECK_EQ(connect_inline(body, &m, &r), 0);
		msg_check_response(m, "DeviceInformation");
		CHECK_EQ(m->well_formed, di[i].reason == NULL);
		if (di[i].reason == NULL)
			CHECK(m->reason == NULL);
		else
			CHECK_STR(m->reason, di[i].reason);
		msg_free(m);
	}
	/* Without QueryResponses, required by the schema. */
	CHECK_EQ(connect_inline(ack, &m, &r), 0);
	msg_check_response(m, "DeviceInformation");
	CHECK_EQ(m->well_formed, 0);
	CHECK_STR(m->reason, "QueryResponses: missing");
	msg_free(m);
}

/* Bodies no device should send. None may crash; all get 400. */
static void
test_hostile(void)
{
	struct mdm_msg	 *m = NULL;
	const char	 *r = NULL;
	char		 *b, *s;
	size_t		  len;
	static const char nul[] = "<plist><dict>" MT("CheckOut") TOPIC_KV
	    "<key>UDID</key><string>"
	    "U\0X</string></dict></plist>";

#define BOTH(buf, n, want)                                            \
	do {                                                          \
		r = NULL;                                             \
		CHECK_EQ(msg_parse_checkin((buf), (n), &m, &r), 400); \
		CHECK(m == NULL);                                     \
		CHECK_STR(r, (want));                                 \
		r = NULL;                                             \
		CHECK_EQ(msg_parse_connect((buf), (n), &m, &r), 400); \
		CHECK(m == NULL);                                     \
		CHECK_STR(r, (want));                                 \
	} while (0)

	BOTH("", 0, "empty body");
	BOTH(NULL, 0, "empty body");
	BOTH("hello", 5, "not an XML plist");
	BOTH("bplist00\xd1\x01\x02\x53\x66\x6f\x6f", 13, "not an XML plist");
	BOTH("{\"Status\":\"Idle\"}", 17, "not an XML plist");
	BOTH(nul, sizeof(nul) - 1, "not an XML plist");

	/*
	 * Truncated XML: every prefix of a real check-in that cuts into its
	 * root dict is refused (libplist stops reading at the root's end, so
	 * a missing "</plist>" alone does not matter).
	 */
	b = load("checkin/tokenupdate.plist", &len);
	CHECK(len > 17 && memcmp(b + len - 17, "</dict>\n</plist>\n", 17) == 0);
	for (size_t i = 1; i < len - 10; i++) {
		m = NULL;
		r = NULL;
		CHECK_EQ(msg_parse_checkin(b, i, &m, &r), 400);
		CHECK(m == NULL && r != NULL);
	}
	free(b);
	BOTH("<plist><dict><key>MessageType</key><string>Auth", 47,
	    "malformed plist");

	/* 10,000-deep nesting: refused before libplist sees it. */
	s = deep(10000);
	BOTH(s, strlen(s), "plist nested too deeply");
	free(s);

	/* Wrong types. */
	checkin_refused(MT("Authenticate") TOPIC_KV
	    "<key>UDID</key><integer>42</integer>",
	    "UDID: wrong type (integer, want string)");
	checkin_refused(MT("TokenUpdate") TOPIC_KV UDID_KV MAGIC_KV
	    "<key>Token</key><string>abc</string>",
	    "Token: wrong type (string, want data)");
	checkin_refused("<key>MessageType</key><integer>1</integer>",
	    "MessageType: wrong type (integer, want string)");
	checkin_refused(TOPIC_KV UDID_KV, "MessageType: missing");
	checkin_refused(MT("Nonsense") TOPIC_KV UDID_KV, "unknown MessageType");
	checkin_refused(
	    MT("authenticate") TOPIC_KV UDID_KV, "unknown MessageType");
	checkin_refused(MT("Connect") TOPIC_KV UDID_KV, "unknown MessageType");
	checkin_refused(MT("DeviceInformation") UDID_KV, "unknown MessageType");
	checkin_refused(MT("Authenticate") TOPIC_KV,
	    "missing UDID or "
	    "EnrollmentID");

	/* A NUL smuggled in as an entity is refused too. */
	checkin_refused(MT("CheckOut") TOPIC_KV
	    "<key>UDID</key><string>U&#0;X</string>",
	    NULL);

	/* 1 MB strings: refused for known keys, tolerated for unknown. */
	s = build3(MT("Authenticate") TOPIC_KV UDID_KV
	    "<key>DeviceName</key><string>",
	    'x', 1 << 20, "</string>");
	checkin_refused(s, "DeviceName: too long");
	free(s);
	s = build3(MT("Authenticate") TOPIC_KV "<key>UDID</key><string>", 'x',
	    1 << 20, "</string>");
	checkin_refused(s, "UDID: too long");
	free(s);
	s = build3(MT("Authenticate") TOPIC_KV UDID_KV
	    "<key>Unknown</key><string>",
	    'x', 1 << 20, "</string>");
	CHECK_EQ(checkin_inline(s, &m, &r), 0);
	msg_free(m);
	free(s);
	/* 4096 is the longest other string; 64 KiB the longest data. */
	s = build3(MT("Authenticate") TOPIC_KV UDID_KV
	    "<key>OSVersion</key><string>",
	    '1', 4096, "</string>");
	CHECK_EQ(checkin_inline(s, &m, &r), 0);
	msg_free(m);
	free(s);
	s = build3(MT("Authenticate") TOPIC_KV UDID_KV
	    "<key>OSVersion</key><string>",
	    '1', 4097, "</string>");
	checkin_refused(s, "OSVersion: too long");
	free(s);
	s = build3(MT("SetBootstrapToken") UDID_KV
	    "<key>BootstrapToken</key><data>",
	    'A', 65536 / 3 * 4 + 4, "</data>");
	checkin_refused(s, "BootstrapToken: too long");
	free(s);
	s = build3(MT("CheckOut") UDID_KV "<key>Topic</key><string>", 't', 256,
	    "</string>");
	checkin_refused(s, "Topic: too long");
	free(s);
	/* SerialNumber becomes a key of the serial index: an identity key's
	 * limit, and no control characters. */
	s = build3(MT("Authenticate") TOPIC_KV UDID_KV
	    "<key>SerialNumber</key><string>",
	    'S', MSG_IDENT_MAX, "</string>");
	CHECK_EQ(checkin_inline(s, &m, &r), 0);
	msg_free(m);
	free(s);
	s = build3(MT("Authenticate") TOPIC_KV UDID_KV
	    "<key>SerialNumber</key><string>",
	    'S', MSG_IDENT_MAX + 1, "</string>");
	checkin_refused(s, "SerialNumber: too long");
	free(s);
	checkin_refused(MT("Authenticate") TOPIC_KV UDID_KV
	    "<key>SerialNumber</key><string>C02\nX</string>",
	    "SerialNumber: contains a control character");
	s = build3(MT("TokenUpdate") TOPIC_KV UDID_KV TOKEN_KV
	    "<key>PushMagic</key><string>",
	    'p', 256, "</string>");
	checkin_refused(s, "PushMagic: too long");
	free(s);

	/* Control characters in identity keys; ordinary ones elsewhere. */
	checkin_refused(MT("CheckOut") TOPIC_KV
	    "<key>UDID</key><string>a\tb</string>",
	    "UDID: contains a control character");
	CHECK_EQ(checkin_inline(MT("Authenticate") TOPIC_KV UDID_KV
		     "<key>DeviceName</key><string>a\tb</string>",
		     &m, &r),
	    0);
	msg_free(m);

	/* Root that is not a dict, duplicate roots, junk after. */
	BOTH("<plist><array/></plist>", 23, "malformed plist");
	BOTH("<plist><string>x</string></plist>", 33, "malformed plist");
	BOTH("<!-- x", 6, "malformed plist");
#undef BOTH
}

static void
test_names(void)
{
	int i;

	CHECK_STR(msg_kind_name(MSG_AUTHENTICATE), "Authenticate");
	CHECK_STR(msg_kind_name(MSG_GET_TOKEN), "GetToken");
	CHECK_STR(msg_kind_name(MSG_CONNECT), "Connect");
	CHECK_STR(msg_kind_name(MSG__MAX), "Unknown");
	for (i = 0; i < MSG_CONNECT; i++)
		CHECK(schema_checkin_find(msg_kind_name(i)) != NULL);
	CHECK_STR(enroll_type_name(ENROLL_DEVICE), "Device");
	CHECK_STR(enroll_type_name(ENROLL_SHARED_IPAD), "SharediPad");
	CHECK_STR(enroll_type_name(ENROLL_UE_USER), "UserEnrollment");
	CHECK_STR(enroll_type_name(ENROLL__MAX), "Unknown");
	for (i = 0; i < CMD_STATUS__MAX; i++)
		CHECK_EQ(cmd_status_parse(cmd_status_name(i)), i);
	CHECK_STR(
	    cmd_status_name(CMD_STATUS_FORMAT_ERROR), "CommandFormatError");
	CHECK_STR(cmd_status_name(CMD_STATUS_NOT_NOW), "NotNow");
	CHECK_STR(cmd_status_name(CMD_STATUS__MAX), "Unknown");
	CHECK_EQ(cmd_status_parse("notnow"), -1);
	CHECK_EQ(cmd_status_parse(""), -1);
	CHECK_EQ(cmd_status_parse(NULL), -1);
}

int
main(void)
{
	test_schema();
	test_depth();
	test_safe_parse();
	test_ids_fixtures();
	test_ids_inline();
	test_checkin_types();
	test_getters();
	test_connect();
	test_check_response();
	test_hostile();
	test_names();
	REGRESS_DONE();
}
