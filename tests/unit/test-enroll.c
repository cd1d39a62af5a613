/*
 * test-enroll.c - the enrollment profile and MachineInfo (enroll.c): the
 * configuration keys and what enroll_load refuses, the schema check
 * against single mutations of a good profile, the signature over the
 * served bytes, MachineInfo signed by the configured CA, by another, and
 * not at all, and /mdm/enroll's answers (no refusal carries the
 * challenge). Certificates are made at run time by scripts/mkcerts and
 * scripts/mkenroll.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "extern.h"
#include "picomdm/enroll.h"
#include "picomdm/plist.h"
#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "picomdm/util.h"

#include "regress.h"

#define CHALLENGE "unit-test-challenge-0f9e8d"
#define TOPIC	  "com.apple.mgmt.External.1f3a5b7c-9d2e-4f60-8a1b-2c3d4e5f6a7b"

static char certdir[PATH_MAX];
static char tmpdir[PATH_MAX];

static void
script_path(char *buf, size_t sz, const char *name)
{
	const char *s;

	if ((s = getenv("PICOMDM_SRCDIR")) != NULL)
		CHECK((size_t)snprintf(buf, sz, "%s/scripts/%s", s, name) < sz);
	else if ((s = getenv("PICOMDM_TEST_DATA")) != NULL)
		CHECK((size_t)snprintf(
			  buf, sz, "%s/../../scripts/%s", s, name) < sz);
	else
		CHECK((size_t)snprintf(buf, sz, "scripts/%s", name) < sz);
}

static void
run_script(const char *name)
{
	char  script[PATH_MAX];
	pid_t pid;
	int   status;

	script_path(script, sizeof(script), name);
	CHECK((pid = fork()) != -1);
	if (pid == 0) {
		execlp("bash", "bash", script, certdir, (char *)NULL);
		_exit(127);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
make_certs(void)
{
	const char *base;

	if ((base = getenv("PICOMDM_TEST_TMP")) == NULL)
		base = "/tmp";
	CHECK(mkdir(base, 0755) == 0 || errno == EEXIST);
	CHECK((size_t)snprintf(tmpdir, sizeof(tmpdir), "%s/enroll.XXXXXX",
		  base) < sizeof(tmpdir));
	CHECK(mkdtemp(tmpdir) != NULL);
	CHECK((size_t)snprintf(certdir, sizeof(certdir), "%s/certs", tmpdir) <
	    sizeof(certdir));
	run_script("mkcerts");
	run_script("mkenroll");
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
set(struct enroll_conf *c, const char *k, const char *v)
{
	CHECK_EQ(enroll_conf_set(c, k, v), 0);
}

static void
set_path(struct enroll_conf *c, const char *k, const char *name)
{
	char p[PATH_MAX];

	CHECK(
	    (size_t)snprintf(p, sizeof(p), "%s/%s", certdir, name) < sizeof(p));
	set(c, k, p);
}

/* A complete, good configuration. */
static void
conf_good(struct enroll_conf *c)
{
	enroll_conf_defaults(c);
	set(c, "enroll_access", "open");
	set(c, "server_url", "https://mdm.example.com/mdm");
	set(c, "push_topic", TOPIC);
	set(c, "scep_url", "https://mdm.example.com/scep");
	set(c, "scep_challenge", CHALLENGE);
	set(c, "profile_identifier", "com.example.mdm");
	set_path(c, "profile_sign_cert", "profile-sign.pem");
	set_path(c, "profile_sign_key", "profile-sign.key");
	set_path(c, "machineinfo_ca", "machineinfo-ca.pem");
}

static void
test_conf_set(void)
{
	struct enroll_conf c;

	enroll_conf_defaults(&c);
	CHECK_EQ(c.access, ENROLL_ACCESS_OFF);
	CHECK_EQ(c.sign_message, 1);
	CHECK_EQ(c.scep_key_size, 2048);
	CHECK_EQ(enroll_conf_set(&c, "workers", "4"), 1);
	CHECK_EQ(enroll_conf_set(&c, "enroll_access", "maybe"), -1);
	CHECK_EQ(enroll_conf_set(&c, "scep_key_size", "3000"), -1);
	CHECK_EQ(enroll_conf_set(&c, "scep_key_size", "4096"), 0);
	CHECK_EQ(c.scep_key_size, 4096);
	CHECK_EQ(enroll_conf_set(&c, "scep_key_usage", "2"), -1);
	CHECK_EQ(enroll_conf_set(&c, "access_rights", "0"), -1);
	CHECK_EQ(enroll_conf_set(&c, "access_rights", "8192"), -1);
	CHECK_EQ(enroll_conf_set(&c, "sign_message", "perhaps"), -1);
	CHECK_EQ(enroll_conf_set(&c, "sign_message", "no"), 0);
	CHECK_EQ(c.sign_message, 0);
	CHECK_EQ(enroll_conf_set(&c, "server_url", ""), -1);
	CHECK(c.server_url == NULL);
	enroll_conf_free(&c);
}

/* Through picomdm.conf's parser: '-' or '_', bad values refused. */
static void
test_config(void)
{
	struct config c;

	config_defaults(&c);
	CHECK_EQ(c.enroll.scep_key_size, 2048);
	CHECK_EQ(config_set(&c, "scep-key-size", "1024"), 0);
	CHECK_EQ(c.enroll.scep_key_size, 1024);
	CHECK_EQ(config_set(&c, "enroll_access", "open"), 0);
	CHECK_EQ(c.enroll.access, ENROLL_ACCESS_OPEN);
	CHECK_EQ(config_set(&c, "scep_challenge", CHALLENGE), 0);
	CHECK_STR(c.enroll.scep_challenge, CHALLENGE);
	CHECK_EQ(config_set(&c, "scep_key_size", "512"), -1);
	CHECK_EQ(c.enroll.scep_key_size, 1024);
	CHECK_EQ(config_set(&c, "enroll_bogus", "1"), -1);
	CHECK_EQ(config_set(&c, "workers", "4"), 0);
	config_free(&c);
	CHECK(c.enroll.scep_challenge == NULL);
}

static plist_t
payload(plist_t root, const char *type)
{
	plist_t	 pl = plist_dict_get_item(root, "PayloadContent"), p;
	uint32_t i;

	for (i = 0; i < plist_array_get_size(pl); i++) {
		p = plist_array_get_item(pl, i);
		if (strcmp(plist_dict_str(p, "PayloadType"), type) == 0)
			return p;
	}
	CHECK(0);
	return NULL;
}

/* enroll_load refuses conf and says why (err contains want). */
static void
load_refused(struct enroll_conf *c, const char *want)
{
	struct enroll *e = (struct enroll *)1;
	char	       err[256] = "";

	CHECK_EQ(enroll_load(c, &e, err, sizeof(err)), -1);
	CHECK(e == NULL);
	if (strstr(err, want) == NULL) {
		fprintf(stderr, "err \"%s\", want \"%s\"\n", err, want);
		CHECK(0);
	}
	CHECK(strstr(err, CHALLENGE) == NULL);
}

static void
test_load(void)
{
	struct enroll_conf c;
	struct enroll	  *e = NULL;
	char		   err[256];

	enroll_conf_defaults(&c);
	CHECK_EQ(enroll_load(&c, &e, err, sizeof(err)), 0);
	CHECK(e == NULL); /* not configured, off */
	set(&c, "enroll_access", "open");
	load_refused(&c, "server_url");
	enroll_conf_free(&c);

	conf_good(&c);
	free(c.push_topic);
	c.push_topic = NULL;
	load_refused(&c, "push_topic or push_cert");
	enroll_conf_free(&c);

	conf_good(&c);
	set(&c, "push_topic", "com.example.not-a-push-topic");
	load_refused(&c, "Topic");
	enroll_conf_free(&c);

	conf_good(&c);
	set(&c, "server_url", "http://mdm.example.com/mdm");
	load_refused(&c, "https");
	enroll_conf_free(&c);

	conf_good(&c);
	set_path(&c, "profile_sign_key", "server.key");
	load_refused(&c, "does not match");
	enroll_conf_free(&c);

	conf_good(&c);
	set_path(&c, "profile_sign_cert", "nonexistent.pem");
	load_refused(&c, "profile_sign_cert");
	enroll_conf_free(&c);

	conf_good(&c);
	set_path(&c, "machineinfo_ca", "profile-sign.key");
	load_refused(&c, "machineinfo_ca");
	enroll_conf_free(&c);

	conf_good(&c);
	set(&c, "access_rights", "2"); /* 2 needs 1 */
	load_refused(&c, "AccessRights");
	enroll_conf_free(&c);

	/* The topic from the push certificate's subject UID. */
	conf_good(&c);
	set_path(&c, "push_cert", "push.pem");
	load_refused(&c, "is not the topic of push_cert");
	free(c.push_topic);
	c.push_topic = NULL;
	CHECK_EQ(enroll_load(&c, &e, err, sizeof(err)), 0);
	{
		plist_t	    root = enroll_profile_plist(e, NULL);
		const char *topic =
		    plist_dict_str(payload(root, "com.apple.mdm"), "Topic");
		char  want[300];
		FILE *f;
		char  cmd[PATH_MAX + 100];

		/* What openssl reads as the subject's UID. */
		CHECK((size_t)snprintf(cmd, sizeof(cmd),
			  "openssl x509 -in %s/push.pem -noout -subject "
			  "-nameopt sep_multiline | sed -n 's/^ *UID=//p'",
			  certdir) < sizeof(cmd));
		CHECK((f = popen(cmd, "r")) != NULL);
		CHECK(fgets(want, sizeof(want), f) != NULL);
		pclose(f);
		want[strcspn(want, "\n")] = '\0';
		CHECK(strncmp(want, "com.apple.mgmt.External.", 24) == 0);
		CHECK_STR(topic, want);
		plist_free(root);
	}
	enroll_free(e);
	set_path(&c, "push_cert", "server.pem"); /* no UID */
	load_refused(&c, "no UID");
	set_path(&c, "push_cert", "nonexistent.pem");
	load_refused(&c, "push_cert");
	enroll_conf_free(&c);

	conf_good(&c);
	CHECK_EQ(enroll_load(&c, &e, err, sizeof(err)), 0);
	CHECK(e != NULL);
	CHECK_EQ(enroll_access(e), ENROLL_ACCESS_OPEN);
	enroll_free(e);
	enroll_conf_free(&c);
}


/* Apply one change to a fresh good profile: the check must refuse it. */
static void
mutant(struct enroll *e, const char *type, const char *key, plist_t val,
    const char *want)
{
	plist_t root, p;
	char	err[256] = "";

	CHECK((root = enroll_profile_plist(e, NULL)) != NULL);
	CHECK_EQ(enroll_profile_check(root, err, sizeof(err)), 0);
	p = type == NULL ? root : payload(root, type);
	if (strcmp(key, "PayloadContent.Keysize") == 0)
		p = plist_dict_get_item(p, "PayloadContent"), key = "Keysize";
	if (val == NULL)
		plist_dict_remove_item(p, key);
	else
		plist_dict_set_item(p, key, val);
	CHECK_EQ(enroll_profile_check(root, err, sizeof(err)), -1);
	if (strstr(err, want) == NULL) {
		fprintf(stderr, "err \"%s\", want \"%s\"\n", err, want);
		CHECK(0);
	}
	plist_free(root);
}

static void
test_check(struct enroll *e)
{
	plist_t root, a, b;
	char	err[256];

	CHECK((root = enroll_profile_plist(e, "UDID-1")) != NULL);
	CHECK_EQ(enroll_profile_check(root, err, sizeof(err)), 0);
	CHECK_STR(plist_dict_str(root, "PayloadIdentifier"), "com.example.mdm");
	CHECK_STR(
	    plist_dict_str(payload(root, "com.apple.mdm"), "PayloadIdentifier"),
	    "com.example.mdm.mdm");
	CHECK_STR(plist_dict_str(payload(root, "com.apple.mdm"),
		      "IdentityCertificateUUID"),
	    plist_dict_str(
		payload(root, "com.apple.security.scep"), "PayloadUUID"));
	CHECK(plist_dict_get_item(
		  payload(root, "com.apple.mdm"), "CheckInURL") == NULL);
	plist_free(root);

	mutant(e, "com.apple.mdm", "NotAKey", plist_new_string("x"),
	    "unknown key NotAKey");
	mutant(e, "com.apple.mdm", "SignMessage", plist_new_string("yes"),
	    "SignMessage: want boolean");
	mutant(e, "com.apple.mdm", "Topic", NULL, "Topic missing");
	mutant(e, "com.apple.mdm", "ServerURL", plist_new_string("http://x/"),
	    "https");
	mutant(e, "com.apple.mdm", "IdentityCertificateUUID",
	    plist_new_string("0A1B2C3D-0000-4000-8000-000000000000"),
	    "names no SCEP payload");
	mutant(e, "com.apple.mdm", "ServerCapabilities", plist_new_string("x"),
	    "ServerCapabilities: want array");
	mutant(e, "com.apple.mdm", "PayloadUUID", plist_new_string("nope"),
	    "not a UUID");
	mutant(e, "com.apple.security.scep", "PayloadContent.Keysize",
	    plist_new_uint(3000), "Keysize");
	mutant(e, "com.apple.security.scep", "PayloadContent",
	    plist_new_string("x"), "PayloadContent: want dictionary");
	mutant(e, "com.apple.security.scep", "PayloadVersion", NULL,
	    "PayloadVersion missing");
	mutant(e, NULL, "PayloadType", plist_new_string("Other"),
	    "not Configuration");
	mutant(e, NULL, "Extra", plist_new_bool(1), "unknown key Extra");
	mutant(e, NULL, "PayloadUUID", plist_new_string("1-2-3-4-5"),
	    "not a UUID");

	/* A payload type the schema does not know. */
	CHECK((root = enroll_profile_plist(e, NULL)) != NULL);
	a = plist_copy(payload(root, "com.apple.mdm"));
	plist_dict_set_item(
	    a, "PayloadType", plist_new_string("com.apple.wifi.managed"));
	plist_array_append_item(plist_dict_get_item(root, "PayloadContent"), a);
	CHECK_EQ(enroll_profile_check(root, err, sizeof(err)), -1);
	CHECK(strstr(err, "not in the schema") != NULL);
	plist_free(root);

	/* Two profiles: the same identifiers, other UUIDs. */
	a = enroll_profile_plist(e, NULL);
	b = enroll_profile_plist(e, NULL);
	CHECK(strcmp(plist_dict_str(a, "PayloadUUID"),
		  plist_dict_str(b, "PayloadUUID")) != 0);
	CHECK(strcmp(plist_dict_str(
			 payload(a, "com.apple.security.scep"), "PayloadUUID"),
		  plist_dict_str(payload(b, "com.apple.security.scep"),
		      "PayloadUUID")) != 0);
	CHECK_STR(plist_dict_str(payload(a, "com.apple.security.scep"),
		      "PayloadIdentifier"),
	    "com.example.mdm.scep");
	plist_free(a);
	plist_free(b);
}

static X509_STORE *
store_of(const char *name)
{
	X509_STORE *st;
	X509	   *x;
	BIO	   *bio;
	char	    p[PATH_MAX];

	CHECK((size_t)snprintf(p, sizeof(p), "%s/%s.pem", certdir, name) <
	    sizeof(p));
	CHECK((bio = BIO_new_file(p, "r")) != NULL);
	CHECK((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL);
	CHECK((st = X509_STORE_new()) != NULL);
	CHECK(X509_STORE_add_cert(st, x) == 1);
	X509_free(x);
	BIO_free(bio);
	return st;
}

/* Verify DER SignedData against CA name; the content, or NULL. */
static char *
cms_content(const unsigned char *der, size_t len, const char *ca)
{
	const unsigned char *p = der;
	CMS_ContentInfo	    *cms;
	X509_STORE	    *st = store_of(ca);
	BIO		    *out;
	BUF_MEM		    *bm;
	char		    *s = NULL;

	CHECK((cms = d2i_CMS_ContentInfo(NULL, &p, (long)len)) != NULL);
	CHECK((out = BIO_new(BIO_s_mem())) != NULL);
	if (CMS_verify(cms, NULL, st, NULL, out, CMS_BINARY) == 1) {
		BIO_get_mem_ptr(out, &bm);
		CHECK((s = strndup(bm->data, bm->length)) != NULL);
	}
	ERR_clear_error();
	BIO_free(out);
	CMS_ContentInfo_free(cms);
	X509_STORE_free(st);
	return s;
}

static void
test_signed(struct enroll *e)
{
	unsigned char *der = NULL;
	size_t	       len = 0;
	char	      *xml;
	plist_t	       root;
	char	       err[256];

	CHECK_EQ(enroll_profile_signed(e, "SERIAL-9", &der, &len), 0);
	CHECK((xml = cms_content(der, len, "server-ca")) != NULL);
	CHECK(cms_content(der, len, "other-ca") == NULL);
	CHECK_EQ(plist_safe_parse(xml, strlen(xml), &root), PLIST_SAFE_OK);
	CHECK_EQ(enroll_profile_check(root, err, sizeof(err)), 0);
	CHECK(strstr(xml, CHALLENGE) != NULL);
	CHECK(strstr(xml, "picomdm device SERIAL-9") != NULL);
	plist_free(root);
	free(xml);
	free(der);
}

/* The bytes of a MachineInfo signed by devices/NAME or NAME. */
static unsigned char *
mi_sign(const char *plist, const char *name, size_t *len)
{
	CMS_ContentInfo *cms;
	X509		*x;
	EVP_PKEY	*k;
	BIO		*in, *bio;
	unsigned char	*der = NULL, *copy;
	char		 p[PATH_MAX];
	int		 n;

	CHECK((size_t)snprintf(p, sizeof(p), "%s/%s.pem", certdir, name) <
	    sizeof(p));
	CHECK((bio = BIO_new_file(p, "r")) != NULL);
	CHECK((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL);
	BIO_free(bio);
	CHECK((size_t)snprintf(p, sizeof(p), "%s/%s.key", certdir, name) <
	    sizeof(p));
	CHECK((bio = BIO_new_file(p, "r")) != NULL);
	CHECK((k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) != NULL);
	BIO_free(bio);
	CHECK((in = BIO_new_mem_buf(plist, (int)strlen(plist))) != NULL);
	CHECK((cms = CMS_sign(x, k, NULL, in, CMS_BINARY)) != NULL);
	CHECK((n = i2d_CMS_ContentInfo(cms, &der)) > 0);
	CHECK((copy = malloc((size_t)n)) != NULL);
	memcpy(copy, der, (size_t)n);
	*len = (size_t)n;
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	EVP_PKEY_free(k);
	X509_free(x);
	return copy;
}

#define MI_PLIST(body)                                        \
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist " \
	"version=\"1.0\">\n<dict>\n" body "</dict>\n</plist>\n"

static void
test_machineinfo(struct enroll *e)
{
	static const char good[] = MI_PLIST(
	    "<key>UDID</key><string>00008030-0011223344556677</string>\n"
	    "<key>SERIAL</key><string>C02UNIT00001</string>\n"
	    "<key>PRODUCT</key><string>iPad13,1</string>\n"
	    "<key>VERSION</key><string>21F90</string>\n"
	    "<key>LANGUAGE</key><string>de</string>\n");
	static const char noudid[] =
	    MI_PLIST("<key>SERIAL</key><string>C02UNIT00001</string>\n");
	static const char badtype[] = MI_PLIST(
	    "<key>UDID</key><string>00008030-0011223344556677</string>\n"
	    "<key>SERIAL</key><integer>7</integer>\n");
	struct enroll_machineinfo mi;
	const char		 *reason;
	unsigned char		 *der;
	size_t			  len;

	der = mi_sign(good, "machineinfo", &len);
	CHECK_EQ(enroll_machineinfo_verify(e, der, len, &mi, &reason), 0);
	CHECK_STR(mi.udid, "00008030-0011223344556677");
	CHECK_STR(mi.serial, "C02UNIT00001");
	CHECK_STR(mi.product, "iPad13,1");
	CHECK_STR(mi.language, "de");
	CHECK(mi.imei == NULL);
	enroll_machineinfo_free(&mi);
	/* Truncated: not a SignedData any more. */
	CHECK_EQ(enroll_machineinfo_verify(e, der, len - 1, &mi, &reason), 400);
	/* One byte of the content changed: the signature fails. */
	{
		unsigned char *at = memmem(der, len, "C02UNIT00001", 12);

		CHECK(at != NULL);
		at[0] = 'X';
		CHECK_EQ(
		    enroll_machineinfo_verify(e, der, len, &mi, &reason), 403);
	}
	free(der);

	der = mi_sign(good, "devices/foreign", &len);
	CHECK_EQ(enroll_machineinfo_verify(e, der, len, &mi, &reason), 403);
	CHECK(mi.root == NULL);
	free(der);
	/* A device identity from picomdm's own device CA is not Apple's. */
	der = mi_sign(good, "devices/device1", &len);
	CHECK_EQ(enroll_machineinfo_verify(e, der, len, &mi, &reason), 403);
	free(der);

	CHECK_EQ(
	    enroll_machineinfo_verify(e, good, sizeof(good) - 1, &mi, &reason),
	    400);
	CHECK(strstr(reason, "not signed") != NULL);
	CHECK_EQ(enroll_machineinfo_verify(e, "", 0, &mi, &reason), 400);

	der = mi_sign(noudid, "machineinfo", &len);
	CHECK_EQ(enroll_machineinfo_verify(e, der, len, &mi, &reason), 400);
	CHECK(strstr(reason, "UDID") != NULL);
	free(der);
	der = mi_sign(badtype, "machineinfo", &len);
	CHECK_EQ(enroll_machineinfo_verify(e, der, len, &mi, &reason), 400);
	free(der);
}

/* /mdm/enroll through enroll_handle. */
static void
handle(struct server *srv, const char *method, const char *ctype,
    const void *body, size_t len, struct response *resp)
{
	struct request req;

	memset(&req, 0, sizeof(req));
	memset(resp, 0, sizeof(*resp));
	resp->status = 200;
	req.method = method;
	req.uri = "/mdm/enroll";
	req.content_type = ctype;
	req.body = (unsigned char *)(uintptr_t)body;
	req.body_len = len;
	enroll_handle(srv, &req, resp);
}

static int
has_challenge(const struct response *r)
{
	return r->body != NULL &&
	    memmem(r->body, r->body_len, CHALLENGE, strlen(CHALLENGE)) != NULL;
}

static int
op_mi_get(struct store_txn *t, void *arg)
{
	return store_machineinfo_get(t, "00008030-00AABBCCDDEEFF00", arg);
}

struct tok_put {
	const char *token;
	uint64_t    expires_at;
};

static int
op_tok_put(struct store_txn *t, void *arg)
{
	struct tok_put		 *p = arg;
	struct store_enroll_token tk;

	memset(&tk, 0, sizeof(tk));
	sha256(p->token, strlen(p->token), tk.hash);
	tk.has_hash = 1;
	tk.expires_at = p->expires_at;
	return store_enroll_token_put(t, &tk);
}

/* GET /mdm/enroll?QUERY in token mode: 403 with no body, or the profile. */
static void
get_q(struct server *srv, const char *query, struct response *r)
{
	struct request req;

	memset(&req, 0, sizeof(req));
	memset(r, 0, sizeof(*r));
	r->status = 200;
	req.method = "GET";
	req.uri = "/mdm/enroll";
	req.query = query;
	req.content_type = "";
	enroll_handle(srv, &req, r);
}

struct use_op {
	unsigned char hash[32];
	const char   *purpose;
	int	      rc;
};

static int
op_use(struct store_txn *t, void *arg)
{
	struct use_op *u = arg;

	u->rc = store_enroll_token_use(t, u->hash, u->purpose);
	return 0;
}

/* Use the challenge in the profile XML for purpose: its result. */
static int
issued_used(struct server *srv, const char *xml, const char *purpose)
{
	struct use_op u;
	const char   *p, *q;

	memset(&u, 0, sizeof(u));
	u.purpose = purpose;
	if ((p = strstr(xml, "<key>Challenge</key>")) == NULL ||
	    (p = strstr(p, "<string>")) == NULL)
		return 1;
	p += strlen("<string>");
	if ((q = strchr(p, '<')) == NULL || q - p != ENROLL_TOKEN_LEN)
		return 1;
	sha256(p, ENROLL_TOKEN_LEN, u.hash);
	CHECK_EQ(store_write(srv->store, op_use, &u), 0);
	return u.rc;
}

static void
test_tokens(struct server *srv, struct enroll_conf *c)
{
	char		valid[ENROLL_TOKEN_LEN + 1], expired[ENROLL_TOKEN_LEN + 1];
	char		unknown[ENROLL_TOKEN_LEN + 1], q[256];
	struct tok_put	p;
	struct response r;
	char	       *xml;

	CHECK_EQ(enroll_token_new(valid), 0);
	CHECK_EQ(enroll_token_new(expired), 0);
	CHECK_EQ(enroll_token_new(unknown), 0);
	CHECK(enroll_token_valid(valid) && strcmp(valid, expired) != 0);
	CHECK(!enroll_token_valid("abc") && !enroll_token_valid(""));
	p.token = valid;
	p.expires_at = time_now_us() + 3600000000ull;
	CHECK_EQ(store_write(srv->store, op_tok_put, &p), 0);
	p.token = expired;
	p.expires_at = time_now_us() - 1;
	CHECK_EQ(store_write(srv->store, op_tok_put, &p), 0);

	c->access = ENROLL_ACCESS_TOKEN;
	get_q(srv, NULL, &r);
	CHECK_EQ(r.status, 403);
	CHECK(r.body == NULL);
	snprintf(q, sizeof(q), "token=%s", unknown);
	get_q(srv, q, &r);
	CHECK_EQ(r.status, 403);
	CHECK(r.body == NULL);
	snprintf(q, sizeof(q), "token=%s", expired);
	get_q(srv, q, &r);
	CHECK_EQ(r.status, 403);
	CHECK(r.body == NULL);
	snprintf(q, sizeof(q), "token=%.63s", valid); /* one digit short */
	get_q(srv, q, &r);
	CHECK_EQ(r.status, 403);
	snprintf(q, sizeof(q), "token=%s&token=%s", valid, valid);
	get_q(srv, q, &r);
	CHECK_EQ(r.status, 403);
	/* Valid: the profile, once. */
	snprintf(q, sizeof(q), "x=1&token=%s", valid);
	get_q(srv, q, &r);
	CHECK_EQ(r.status, 200);
	CHECK((xml = cms_content(r.body, r.body_len, "server-ca")) != NULL);
	CHECK(xml != NULL && strstr(xml, CHALLENGE) != NULL);
	free(xml);
	free(r.body);
	get_q(srv, q, &r);
	CHECK_EQ(r.status, 403);
	CHECK(!has_challenge(&r) && r.body == NULL);
	c->access = ENROLL_ACCESS_OPEN;

	/* Issued challenges: each profile its own, stored (as a hash) for
	 * scep-verify, never the static one; no enrollment token. */
	c->scep_challenge_issued = 1;
	get_q(srv, NULL, &r);
	CHECK_EQ(r.status, 200);
	CHECK((xml = cms_content(r.body, r.body_len, "server-ca")) != NULL);
	CHECK(xml != NULL && strstr(xml, CHALLENGE) == NULL);
	CHECK(xml != NULL && issued_used(srv, xml, NULL) == STORE_ENOTFOUND);
	CHECK(xml != NULL && issued_used(srv, xml, STORE_TOKEN_SCEP) == 0);
	CHECK(xml != NULL &&
	    issued_used(srv, xml, STORE_TOKEN_SCEP) == STORE_EINVAL);
	free(xml);
	free(r.body);
	c->scep_challenge_issued = 0;
}

static void
test_handle(struct enroll *e, struct enroll_conf *c)
{
	static const char mi[] = MI_PLIST(
	    "<key>UDID</key><string>00008030-00AABBCCDDEEFF00</string>\n"
	    "<key>SERIAL</key><string>C02TEST</string>\n");
	struct server		  srv;
	struct response		  r;
	struct store_machineinfo *stored = NULL;
	struct store_opts	  so;
	unsigned char		 *der;
	size_t			  len;
	char			 *xml, dbdir[PATH_MAX + 8];


	memset(&srv, 0, sizeof(srv));
	srv.enroll = e;
	/* A store for what enrollment writes (MachineInfo, token uses). */
	CHECK((size_t)snprintf(dbdir, sizeof(dbdir), "%s/db", tmpdir) <
	    sizeof(dbdir));
	CHECK(mkdir(dbdir, 0700) == 0);
	memset(&so, 0, sizeof(so));
	so.nosync = 1;
	CHECK_EQ(store_open(dbdir, &so, &srv.store), 0);
	handle(&srv, "GET", "", NULL, 0, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.content_type, "application/x-apple-aspen-config");
	CHECK((xml = cms_content(r.body, r.body_len, "server-ca")) != NULL);
	CHECK(strstr(xml, CHALLENGE) != NULL);
	free(xml);
	free(r.body);

	der = mi_sign(mi, "machineinfo", &len);
	handle(&srv, "POST", "application/pkcs7-signature", der, len, &r);
	CHECK_EQ(r.status, 200);
	CHECK_STR(r.id, "00008030-00AABBCCDDEEFF00");
	CHECK((xml = cms_content(r.body, r.body_len, "server-ca")) != NULL);
	CHECK(strstr(xml, "picomdm device 00008030-00AABBCCDDEEFF00") != NULL);
	free(xml);
	free(r.body);
	/* Stored before the answer. */
	CHECK_EQ(store_read(srv.store, op_mi_get, &stored), 0);
	CHECK(stored != NULL &&
	    strcmp(stored->udid, "00008030-00AABBCCDDEEFF00") == 0 &&
	    strcmp(stored->serial, "C02TEST") == 0 && stored->received_at > 0);
	store_machineinfo_free(stored);
	handle(&srv, "POST", "application/octet-stream", der, len, &r);
	CHECK_EQ(r.status, 415);
	CHECK(r.body == NULL);
	free(der);

	der = mi_sign(mi, "devices/foreign", &len);
	handle(&srv, "POST", "application/pkcs7-signature", der, len, &r);
	CHECK_EQ(r.status, 403);
	CHECK(!has_challenge(&r) && r.body == NULL);
	free(der);
	handle(&srv, "POST", "application/pkcs7-signature", mi, sizeof(mi) - 1,
	    &r);
	CHECK_EQ(r.status, 400);
	CHECK(r.body == NULL);
	handle(&srv, "DELETE", "", NULL, 0, &r);
	CHECK_EQ(r.status, 405);
	CHECK(r.body == NULL);
	handle(&srv, "GET", "", "x", 1, &r);
	CHECK_EQ(r.status, 400);
	CHECK(r.body == NULL);

	/* Access off: nothing is served, not even to a verified device. */
	c->access = ENROLL_ACCESS_OFF;
	handle(&srv, "GET", "", NULL, 0, &r);
	CHECK_EQ(r.status, 404);
	CHECK(r.body == NULL);
	der = mi_sign(mi, "machineinfo", &len);
	handle(&srv, "POST", "application/pkcs7-signature", der, len, &r);
	CHECK_EQ(r.status, 404);
	CHECK(r.body == NULL);
	free(der);
	c->access = ENROLL_ACCESS_OPEN;

	test_tokens(&srv, c);

	/* Not configured at all. */
	srv.enroll = NULL;
	handle(&srv, "GET", "", NULL, 0, &r);
	CHECK_EQ(r.status, 404);
	store_close(srv.store);
}

/*
 * Workers share one struct enroll: profiles signed and MachineInfo
 * verified from several threads at once, each result checked.
 */
struct thread_arg {
	struct enroll	    *e;
	const unsigned char *mi;
	size_t		     milen;
	int		     ok;
};

static void *
thread_main(void *p)
{
	struct thread_arg	 *a = p;
	struct enroll_machineinfo m;
	const char		 *reason;
	unsigned char		 *der;
	size_t			  len;
	int			  i;

	for (i = 0; i < 40; i++) {
		if (enroll_profile_signed(a->e, NULL, &der, &len) != 0)
			return NULL;
		free(der);
		if (enroll_machineinfo_verify(
			a->e, a->mi, a->milen, &m, &reason) != 0 ||
		    strcmp(m.udid, "00008030-00AABBCCDDEEFF00") != 0)
			return NULL;
		enroll_machineinfo_free(&m);
	}
	a->ok = 1;
	return NULL;
}

static void
test_threads(struct enroll *e)
{
	static const char mi[] = MI_PLIST(
	    "<key>UDID</key><string>00008030-00AABBCCDDEEFF00</string>\n");
	struct thread_arg a[4];
	pthread_t	  th[4];
	unsigned char	 *der;
	size_t		  len, i;

	der = mi_sign(mi, "machineinfo", &len);
	for (i = 0; i < 4; i++) {
		a[i].e = e;
		a[i].mi = der;
		a[i].milen = len;
		a[i].ok = 0;
		CHECK(pthread_create(&th[i], NULL, thread_main, &a[i]) == 0);
	}
	for (i = 0; i < 4; i++) {
		CHECK(pthread_join(th[i], NULL) == 0);
		CHECK(a[i].ok == 1);
	}
	free(der);
}

/* No MachineInfo CA: every MachineInfo is refused, 403. */
static void
test_no_ca(void)
{
	static const char mi[] = MI_PLIST(
	    "<key>UDID</key><string>00008030-00AABBCCDDEEFF00</string>\n");
	struct enroll_conf	  c;
	struct enroll		 *e;
	struct enroll_machineinfo m;
	const char		 *reason;
	unsigned char		 *der;
	size_t			  len;
	char			  err[256];

	conf_good(&c);
	free(c.machineinfo_ca);
	c.machineinfo_ca = NULL;
	CHECK_EQ(enroll_load(&c, &e, err, sizeof(err)), 0);
	der = mi_sign(mi, "machineinfo", &len);
	CHECK_EQ(enroll_machineinfo_verify(e, der, len, &m, &reason), 403);
	free(der);
	enroll_free(e);
	enroll_conf_free(&c);
}

int
main(void)
{
	struct enroll_conf c;
	struct enroll	  *e = NULL;
	char		   err[256];

	make_certs();
	test_conf_set();
	test_config();
	test_load();
	conf_good(&c);
	if (enroll_load(&c, &e, err, sizeof(err)) != 0)
		fprintf(stderr, "enroll_load: %s\n", err);
	CHECK(e != NULL);
	test_check(e);
	test_signed(e);
	test_machineinfo(e);
	test_handle(e, &c);
	test_threads(e);
	test_no_ca();
	enroll_free(e);
	enroll_conf_free(&c);
	CHECK(nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0);
	REGRESS_DONE();
}
