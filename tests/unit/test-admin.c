/*
 * test-admin.c - store administration (store_admin.c, store_json.c,
 * store_dump.c, store_check.c, store_purge.c, and the registry of kinds
 * they walk, store_kinds.c) and the data catalogue and inventory
 * (catalogue.c, inventory.c): a store built through the public API; dump ->
 * restore -> dump byte-identical (JSON and raw), secrets only on request;
 * check clean, then orphans written with raw LMDB puts are reported,
 * repaired, and the store is clean again; purge of a device with the
 * byte scan proving it gone and the other devices untouched; purge by
 * topic, and by an unknown token; the per-device inventory labels every
 * field with its service, message and time and never shows a secret; the
 * catalogue covers the four services and every check-in key of Apple's
 * schema. The frozen store of tests/data/store (make-fixture.sh there),
 * restored from its raw bytes and from its JSON, dumps to exactly the
 * JSON kept with it, and checks clean: the store's output did not change.
 * Every kind of the registry (store_kinds.c) has a key and value codec,
 * a catalogue row or a mark of its own for each field, a purge owner and
 * a check: a kind cannot be half-added.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "picomdm/inventory.h"
#include "picomdm/metrics.h"
#include "picomdm/schema.h"
#include "picomdm/store.h"
#include "picomdm/store_ade.h"
#include "picomdm/store_enroll.h"
#include "picomdm/util.h"
#include "regress.h"
#include "store_int.h"
#include "store_kinds.h"

#define TOPIC1 "com.apple.mgmt.External.test-one"
#define TOPIC2 "com.apple.mgmt.External.test-two"

/* Bytes that must never appear in a dump without --secrets. */
static const unsigned char push_token[] = "\x5e\xc7\x01\x02PUSHTOKEN-secret-1";
static const unsigned char unlock_token[] = "UNLOCK-secret-0123456789";

static char base[512];

static void
fresh_dir(char *dir, size_t n, const char *name)
{
	const char *tmp = getenv("PICOMDM_TEST_TMP");
	char	    cmd[1200];

	snprintf(
	    dir, n, "%s/admin-%s-%d", tmp ? tmp : "/tmp", name, (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	CHECK(system(cmd) == 0); /* test code only: not in module/ */
}

/* Remove a test directory (on success: distcheck wants a clean tree). */
static void
remove_dir(const char *dir)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

static struct store *
open_at(const char *dir)
{
	struct store_opts o;
	struct store	 *s = NULL;

	memset(&o, 0, sizeof(o));
	o.nosync = 1;
	CHECK_EQ(store_open(dir, &o, &s), 0);
	return s;
}

/* ---- building a store through the public API ---- */

struct dev {
	const char *udid;
	const char *serial;
	const char *topic;
	const char *user; /* a user channel's UserID, or NULL */
};

static const struct dev devs[] = {
    {"UDID-AAAA-0001", "SERIAL-A-01", TOPIC1, "USER-GUID-A"},
    {"UDID-BBBB-0002", "SERIAL-B-02", TOPIC2, NULL},
    {"UDID-CCCC-0003", "SERIAL-C-03", TOPIC1, NULL},
};

static size_t
plist_of(char *buf, size_t n, const char *body)
{
	int r = snprintf(buf, n,
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	    "\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
	    "<plist version=\"1.0\">\n<dict>\n%s</dict>\n</plist>\n",
	    body);

	CHECK(r > 0 && (size_t)r < n);
	return (size_t)r;
}

static int
op_build(struct store_txn *t, void *arg)
{
	struct store_device	d;
	struct store_enrollment e;
	struct store_command	c;
	char			body[2048], raw[4096], uid[128];
	char		       *tok64, *unl64;
	unsigned char		hash[32];
	size_t			i, n;
	int			rc, known;

	(void)arg;
	tok64 = base64_encode(push_token, sizeof(push_token) - 1);
	unl64 = base64_encode(unlock_token, sizeof(unlock_token) - 1);
	CHECK(tok64 != NULL && unl64 != NULL);
	for (i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		memset(&d, 0, sizeof(d));
		d.id = d.udid = (char *)(uintptr_t)devs[i].udid;
		d.serial = (char *)(uintptr_t)devs[i].serial;
		d.topic = (char *)(uintptr_t)devs[i].topic;
		d.model = (char *)(uintptr_t) "Mac14,2";
		d.os_version = (char *)(uintptr_t) "14.5";
		sha256(devs[i].udid, strlen(devs[i].udid), hash);
		memcpy(d.cert_hash, hash, 32);
		d.has_cert = 1;
		d.unlock_token = (unsigned char *)(uintptr_t)unlock_token;
		d.unlock_token_len = sizeof(unlock_token) - 1;
		d.unlock_token_at = store_txn_now(t);
		d.authenticated_at = store_txn_now(t);
		if ((rc = store_device_put(t, &d)) != 0 ||
		    (rc = store_cert_put(t, hash, devs[i].udid)) != 0)
			return rc;
		memset(&e, 0, sizeof(e));
		e.id = e.device_id = (char *)(uintptr_t)devs[i].udid;
		e.type = ENROLL_DEVICE;
		e.topic = (char *)(uintptr_t)devs[i].topic;
		e.push_magic = (char *)(uintptr_t) "PUSHMAGIC-secret-value";
		e.token = (unsigned char *)(uintptr_t)push_token;
		e.token_len = sizeof(push_token) - 1;
		e.enabled = 1;
		e.token_update_tally = 1;
		e.token_updated_at = store_txn_now(t);
		if ((rc = store_enrollment_put(t, &e)) != 0)
			return rc;
		snprintf(body, sizeof(body),
		    "\t<key>MessageType</key>\n"
		    "\t<string>Authenticate</string>\n\t<key>SerialNumber</key>"
		    "\n\t<string>%s</string>\n\t<key>Topic</key>\n\t<string>%s"
		    "</string>\n\t<key>UDID</key>\n\t<string>%s</string>\n"
		    "\t<key>FutureKey</key>\n\t<string>unknown</string>\n",
		    devs[i].serial, devs[i].topic, devs[i].udid);
		n = plist_of(raw, sizeof(raw), body);
		if ((rc = store_msg_put(t, devs[i].udid, MSG_AUTHENTICATE,
			 devs[i].topic, raw, n)) != 0)
			return rc;
		snprintf(body, sizeof(body),
		    "\t<key>MessageType</key>\n"
		    "\t<string>TokenUpdate</string>\n\t<key>PushMagic</key>\n"
		    "\t<string>PUSHMAGIC-secret-value</string>\n"
		    "\t<key>Token</key>\n\t<data>%s</data>\n\t<key>Topic</key>\n"
		    "\t<string>%s</string>\n\t<key>UDID</key>\n\t<string>%s"
		    "</string>\n\t<key>UnlockToken</key>\n\t<data>%s</data>\n",
		    tok64, devs[i].topic, devs[i].udid, unl64);
		n = plist_of(raw, sizeof(raw), body);
		if ((rc = store_msg_put(t, devs[i].udid, MSG_TOKEN_UPDATE,
			 devs[i].topic, raw, n)) != 0)
			return rc;
		if (devs[i].user == NULL)
			continue;
		snprintf(uid, sizeof(uid), "%s:%s", devs[i].udid, devs[i].user);
		memset(&e, 0, sizeof(e));
		e.id = uid;
		e.device_id = (char *)(uintptr_t)devs[i].udid;
		e.type = ENROLL_USER;
		e.user_id = (char *)(uintptr_t)devs[i].user;
		e.topic = (char *)(uintptr_t)devs[i].topic;
		e.token = (unsigned char *)(uintptr_t)push_token;
		e.token_len = sizeof(push_token) - 1;
		if ((rc = store_enrollment_put(t, &e)) != 0)
			return rc;
	}
	/* CMD-SHARED to A and B; CMD-A-ONLY and CMD-A-DONE to A only;
	 * CMD-B-DONE to B. */
	{
		static const char *uuids[] = {
		    "CMD-SHARED", "CMD-A-ONLY", "CMD-A-DONE", "CMD-B-DONE"};

		for (i = 0; i < 4; i++) {
			snprintf(body, sizeof(body),
			    "\t<key>Command</key>\n"
			    "\t<dict>\n\t\t<key>RequestType</key>\n\t\t<string>"
			    "ClearPasscode</string>\n\t\t<key>UnlockToken"
			    "</key>\n\t\t<data>%s</data>\n\t</dict>\n"
			    "\t<key>CommandUUID</key>\n\t<string>%s</string>\n",
			    unl64, uuids[i]);
			n = plist_of(raw, sizeof(raw), body);
			memset(&c, 0, sizeof(c));
			c.uuid = (char *)(uintptr_t)uuids[i];
			c.request_type = (char *)(uintptr_t) "ClearPasscode";
			c.raw = (unsigned char *)raw;
			c.raw_len = n;
			if ((rc = store_command_put(t, &c)) != 0)
				return rc;
		}
	}
	if ((rc = store_queue_push(t, devs[0].udid, "CMD-SHARED", 50, 0)) ||
	    (rc = store_queue_push(t, devs[1].udid, "CMD-SHARED", 50, 0)) ||
	    (rc = store_queue_push(t, devs[0].udid, "CMD-A-ONLY", 60, 0)) ||
	    (rc = store_queue_push(t, devs[0].udid, "CMD-A-DONE", 50, 0)) ||
	    (rc = store_queue_push(t, devs[1].udid, "CMD-B-DONE", 50, 0)))
		return rc;
	snprintf(body, sizeof(body),
	    "\t<key>CommandUUID</key>\n\t<string>"
	    "CMD-A-DONE</string>\n\t<key>ErrorChain</key>\n\t<array>\n"
	    "\t\t<dict>\n\t\t\t<key>ErrorCode</key>\n\t\t\t<integer>12021"
	    "</integer>\n\t\t\t<key>ErrorDomain</key>\n\t\t\t<string>"
	    "MCMDMErrorDomain</string>\n\t\t\t<key>USEnglishDescription"
	    "</key>\n\t\t\t<string>Passcode could not be cleared</string>\n"
	    "\t\t</dict>\n\t</array>\n\t<key>Status</key>\n\t<string>Error"
	    "</string>\n\t<key>UDID</key>\n\t<string>%s</string>\n",
	    devs[0].udid);
	n = plist_of(raw, sizeof(raw), body);
	if ((rc = store_result_put(t, devs[0].udid, "CMD-A-DONE",
		 CMD_STATUS_ERROR, raw, n, 1, &known)) != 0)
		return rc;
	CHECK_EQ(known, 1);
	snprintf(body, sizeof(body),
	    "\t<key>CommandUUID</key>\n\t<string>"
	    "CMD-B-DONE</string>\n\t<key>Status</key>\n\t<string>Acknowledged"
	    "</string>\n\t<key>UDID</key>\n\t<string>%s</string>\n",
	    devs[1].udid);
	n = plist_of(raw, sizeof(raw), body);
	rc = store_result_put(t, devs[1].udid, "CMD-B-DONE",
	    CMD_STATUS_ACKNOWLEDGED, raw, n, 1, &known);
	free(tok64);
	free(unl64);
	return rc;
}

/* ---- dump helpers ---- */

static char *
dump_mem(struct store *s, unsigned flags, size_t *len)
{
	char  *p = NULL;
	size_t n = 0;
	FILE  *f;

	CHECK((f = open_memstream(&p, &n)) != NULL);
	CHECK_EQ(store_dump(s, f, flags, NULL, NULL), 0);
	CHECK(fclose(f) == 0);
	*len = n;
	return p;
}

static int
contains(const char *hay, size_t n, const void *needle, size_t nn)
{
	return memmem(hay, n, needle, nn) != NULL;
}

/* Does the dump mention a secret in any plain encoding? */
static int
leaks(const char *d, size_t n, const unsigned char *sec, size_t sn)
{
	char *b64 = base64_encode(sec, sn), hex[256];
	int   r;

	hex_encode(sec, sn, hex);
	r = contains(d, n, sec, sn) || contains(d, n, b64, strlen(b64)) ||
	    contains(d, n, hex, strlen(hex));
	free(b64);
	return r;
}

static void
test_dump_restore(struct store *s)
{
	struct store *s2, *s3;
	char	      dir2[600], dir3[600], err[200];
	char	     *d1, *d2, *r1, *r2, *plain;
	size_t	      n1, n2, rn1, rn2, pn;
	uint64_t      recs = 0;

	d1 = dump_mem(s, STORE_DUMP_SECRETS, &n1);
	CHECK(n1 > 0);
	CHECK(!contains(d1, n1, "\"tag_", 5));
	CHECK(leaks(d1, n1, unlock_token, sizeof(unlock_token) - 1));

	/* Into an empty store; the same bytes come out again. */
	fresh_dir(dir2, sizeof(dir2), "restore");
	s2 = open_at(dir2);
	CHECK_EQ(
	    store_restore(s2, d1, n1, 0, NULL, &recs, err, sizeof(err)), 0);
	CHECK(recs > 30);
	d2 = dump_mem(s2, STORE_DUMP_SECRETS, &n2);
	CHECK_EQ(n1, n2);
	CHECK(memcmp(d1, d2, n1) == 0);
	free(d2);

	/* Not over data, unless forced; a forced restore is identical. */
	CHECK_EQ(store_restore(s2, d1, n1, 0, NULL, NULL, err, sizeof(err)),
	    STORE_EEXIST);
	CHECK(strstr(err, "not empty") != NULL);
	CHECK_EQ(store_restore(s2, d1, n1, STORE_RESTORE_FORCE, NULL, NULL, err,
		     sizeof(err)),
	    0);
	d2 = dump_mem(s2, STORE_DUMP_SECRETS, &n2);
	CHECK(n1 == n2 && memcmp(d1, d2, n1) == 0);
	free(d2);

	/* A truncated dump or one without secrets is refused, and leaves
	 * the store as it was. */
	CHECK_EQ(store_restore(s2, d1, n1 / 2, STORE_RESTORE_FORCE, NULL, NULL,
		     err, sizeof(err)),
	    STORE_EINVAL);
	plain = dump_mem(s, 0, &pn);
	CHECK(!leaks(plain, pn, unlock_token, sizeof(unlock_token) - 1));
	CHECK(!leaks(plain, pn, push_token, sizeof(push_token) - 1));
	CHECK(!contains(plain, pn, "PUSHMAGIC-secret-value", 22));
	CHECK(contains(plain, pn, "SERIAL-A-01", 11));
	CHECK(contains(plain, pn, "redacted: ", 10));
	CHECK_EQ(store_restore(s2, plain, pn, STORE_RESTORE_FORCE, NULL, NULL,
		     err, sizeof(err)),
	    STORE_EINVAL);
	CHECK(strstr(err, "secrets") != NULL);
	d2 = dump_mem(s2, STORE_DUMP_SECRETS, &n2);
	CHECK(n1 == n2 && memcmp(d1, d2, n1) == 0);
	free(d2);
	free(plain);

	/* The raw (mdb_dump) form: raw -> restore -> raw, and the JSON of
	 * that store equals the first. */
	r1 = dump_mem(s, STORE_DUMP_RAW | STORE_DUMP_SECRETS, &rn1);
	CHECK(strncmp(r1, "VERSION=3\nformat=bytevalue\ndatabase=meta\n", 41) ==
	    0);
	fresh_dir(dir3, sizeof(dir3), "raw");
	s3 = open_at(dir3);
	CHECK_EQ(
	    store_restore(s3, r1, rn1, 0, NULL, NULL, err, sizeof(err)), 0);
	r2 = dump_mem(s3, STORE_DUMP_RAW | STORE_DUMP_SECRETS, &rn2);
	CHECK(rn1 == rn2 && memcmp(r1, r2, rn1) == 0);
	d2 = dump_mem(s3, STORE_DUMP_SECRETS, &n2);
	CHECK(n1 == n2 && memcmp(d1, d2, n1) == 0);
	CHECK_EQ(
	    store_dump(s3, stdout, STORE_DUMP_RAW, NULL, NULL), STORE_EINVAL);
	free(d2);
	free(r1);
	free(r2);
	free(d1);
	store_close(s2);
	store_close(s3);
	remove_dir(dir2);
	remove_dir(dir3);
}

/* ---- check ---- */

struct problems {
	int  n;
	int  repaired;
	char text[8192];
};

static int
collect_problem(const struct store_problem *p, void *arg)
{
	struct problems *ps = arg;

	ps->n++;
	ps->repaired += p->repaired != 0;
	strlcat(ps->text, p->db, sizeof(ps->text));
	strlcat(ps->text, " ", sizeof(ps->text));
	strlcat(ps->text, p->key, sizeof(ps->text));
	strlcat(ps->text, " ", sizeof(ps->text));
	strlcat(ps->text, p->what, sizeof(ps->text));
	strlcat(ps->text, "\n", sizeof(ps->text));
	return 0;
}

static int
check_run(struct store *s, int repair, struct problems *ps)
{
	struct store_check_count n;

	memset(ps, 0, sizeof(*ps));
	CHECK_EQ(store_check(s, repair, NULL, collect_problem, ps, &n), 0);
	CHECK_EQ(n.problems, ps->n);
	CHECK(n.records > 0);
	return ps->n;
}

struct raw_put {
	enum store_dbi d;
	struct key     k;
	const void    *v;
	size_t	       n;
	int	       del;
};

static int
op_raw(struct store_txn *t, void *arg)
{
	struct raw_put *r = arg;

	if (r->del)
		return db_del(t, r->d, &r->k);
	return db_put(t, r->d, &r->k, r->v, r->n, 0);
}

static int
op_eid(struct store_txn *t, void *arg)
{
	void **a = arg;

	return enroll_eid(t, a[0], a[1]);
}

static void
raw_put(struct store *s, enum store_dbi d, const struct key *k, const void *v,
    size_t n)
{
	struct raw_put r = {d, *k, v, n, 0};

	CHECK_EQ(store_write(s, op_raw, &r), 0);
}

static void
raw_del(struct store *s, enum store_dbi d, const struct key *k)
{
	struct raw_put r = {d, *k, NULL, 0, 1};

	CHECK_EQ(store_write(s, op_raw, &r), 0);
}

static int
op_next(struct store_txn *t, void *arg)
{
	struct store_command *c = NULL;
	int		      rc;

	rc = store_queue_next(t, arg, 0, &c);
	store_command_free(c);
	return rc;
}

static void
test_check(struct store *s)
{
	struct problems ps;
	struct rec_w	w;
	struct key	k;
	unsigned char	hash[32], pos[9], one[8] = {0, 0, 0, 0, 0, 0, 0, 1};
	char		want[120];
	unsigned char	ninety_nine[8] = {0, 0, 0, 0, 0, 0, 0, 99};
	uint64_t	eid_a = 0, eid_b = 0;
	void	       *a[2];

	CHECK_EQ(check_run(s, 0, &ps), 0);
	a[0] = (void *)(uintptr_t)devs[0].udid;
	a[1] = &eid_a;
	CHECK_EQ(store_read(s, op_eid, a), 0);
	a[0] = (void *)(uintptr_t)devs[1].udid;
	a[1] = &eid_b;
	CHECK_EQ(store_read(s, op_eid, a), 0);
	CHECK(eid_a != 0 && eid_b != 0);

	/* Orphans and dangling index entries, written around the API. */
	key_init(&k);
	key_raw(&k, "SERIAL-GHOST", 12);
	raw_put(s, DBI_SERIAL, &k, "NO-SUCH-DEVICE", 14);
	memset(hash, 0x77, sizeof(hash));
	key_init(&k);
	key_raw(&k, hash, 32);
	raw_put(s, DBI_CERT, &k, "NO-SUCH-DEVICE", 14);
	key_init(&k);
	key_u64(&k, 9999);
	raw_put(s, DBI_EID, &k, "NO-SUCH-ENROLLMENT", 18);
	rec_begin(&w, REC_MSG);
	rec_str(&w, 1, "NO-SUCH-ENROLLMENT");
	key_init(&k);
	key_u64(&k, 8888);
	key_u8(&k, MSG_AUTHENTICATE);
	raw_put(s, DBI_MSG, &k, w.b.p, w.b.len);
	key_init(&k); /* sequence, then enrollment number */
	key_u64(&k, 1);
	key_u64(&k, 8888);
	raw_put(s, DBI_RESULT, &k, w.b.p, w.b.len);
	buf_free(&w.b);
	/* A result of a sound enrollment that its index does not name,
	 * and an index entry naming no result. */
	rec_begin(&w, REC_RESULT);
	rec_str(&w, 1, "CMD-UNINDEXED");
	rec_u64(&w, 2, CMD_STATUS_ACKNOWLEDGED);
	rec_u64(&w, 3, 1);
	key_init(&k);
	key_u64(&k, 424243);
	key_u64(&k, eid_a);
	raw_put(s, DBI_RESULT, &k, w.b.p, w.b.len);
	buf_free(&w.b);
	key_init(&k);
	key_u64(&k, eid_a);
	key_u64(&k, 424242);
	raw_put(s, DBI_RESULTIX, &k, "", 0);
	/* A queue entry (at the head: priority 255) for a command that
	 * does not exist, without its position: it stops the queue. */
	rec_begin(&w, REC_QUEUE);
	rec_str(&w, 1, "CMD-GHOST");
	rec_u64(&w, 8, 255);
	key_init(&k);
	key_u64(&k, eid_a);
	key_u8(&k, 0);
	key_u64(&k, 77777);
	raw_put(s, DBI_QUEUE, &k, w.b.p, w.b.len);
	buf_free(&w.b);
	CHECK_EQ(store_write(s, op_next, (void *)(uintptr_t)devs[0].udid),
	    STORE_ECORRUPT);
	/* A position pointing nowhere; a status of a missing command. */
	memset(pos, 0, sizeof(pos));
	key_init(&k);
	key_u64(&k, eid_a);
	key_raw(&k, "CMD-NOWHERE", 11);
	raw_put(s, DBI_QPOS, &k, pos, sizeof(pos));
	rec_begin(&w, REC_CMDQ);
	rec_u64(&w, 1, CMD_STATUS_ACKNOWLEDGED);
	key_init(&k);
	key_str(&k, "CMD-GHOST-2");
	key_u64(&k, eid_b);
	raw_put(s, DBI_CMDQ, &k, w.b.p, w.b.len);
	buf_free(&w.b);
	/* A user channel entry naming a missing user enrollment. */
	key_init(&k);
	key_u64(&k, eid_b);
	key_u64(&k, 5555);
	raw_put(s, DBI_UCHAN, &k, "", 0);
	/* A missing index entry, and a counter below what is in use. */
	key_init(&k);
	key_raw(&k, devs[1].serial, strlen(devs[1].serial));
	raw_del(s, DBI_SERIAL, &k);
	key_init(&k);
	key_raw(&k, "seq", 3);
	raw_put(s, DBI_META, &k, one, 8);
	/* An enrollment counter that does not match the records. */
	key_init(&k);
	key_raw(&k, "enrollments_enabled", 19);
	raw_put(s, DBI_META, &k, ninety_nine, 8);

	CHECK_EQ(check_run(s, 0, &ps), 14);
	CHECK_EQ(ps.repaired, 0);
	CHECK(strstr(ps.text,
		  "serial \"SERIAL-GHOST\" names device "
		  "\"NO-SUCH-DEVICE\"") != NULL);
	CHECK(strstr(ps.text, "cert \"7777") != NULL);
	CHECK(strstr(ps.text, "eid 9999 names enrollment") != NULL);
	CHECK(strstr(ps.text,
		  "msg [8888,\"Authenticate\"] raw message of "
		  "enrollment number 8888") != NULL);
	CHECK(strstr(ps.text, "result [1,8888] result of enrollment number "
		  "8888") != NULL);
	snprintf(want, sizeof(want), "result [424243,%llu] not in "
	    "result_index", (unsigned long long)eid_a);
	CHECK(strstr(ps.text, want) != NULL);
	snprintf(want, sizeof(want), "result_index [%llu,424242] names no "
	    "result", (unsigned long long)eid_a);
	CHECK(strstr(ps.text, want) != NULL);
	CHECK(strstr(ps.text,
		  "queues command CMD-GHOST, which does not "
		  "exist") != NULL);
	CHECK(strstr(ps.text, "points at no queue entry") != NULL);
	CHECK(strstr(ps.text, "status of command CMD-GHOST-2") != NULL);
	CHECK(strstr(ps.text, "names user channel number 5555") != NULL);
	CHECK(strstr(ps.text, "serial number SERIAL-B-02 is not indexed") !=
	    NULL);
	CHECK(strstr(ps.text, "meta \"seq\" counter 1 is below") != NULL);
	CHECK(strstr(ps.text, "meta \"enrollments_enabled\" counter does not "
		  "match the ") != NULL);

	/* Repair fixes all of it, and the queue moves again. */
	CHECK_EQ(check_run(s, 1, &ps), 14);
	CHECK_EQ(ps.repaired, 14);
	CHECK_EQ(check_run(s, 0, &ps), 0);
	CHECK_EQ(store_write(s, op_next, (void *)(uintptr_t)devs[0].udid), 0);

	/* An undecodable record is reported, never "repaired" away. */
	key_init(&k);
	key_raw(&k, "BROKEN-DEVICE", 13);
	raw_put(s, DBI_DEVICE, &k, "not a record", 12);
	CHECK_EQ(check_run(s, 1, &ps), 1);
	CHECK_EQ(ps.repaired, 0);
	CHECK(strstr(ps.text, "record header is wrong") != NULL);
	raw_del(s, DBI_DEVICE, &k);
	CHECK_EQ(check_run(s, 0, &ps), 0);
}

/* ---- queue positions (in the cmdq records; qpos of an older store) ---- */

struct pos_op {
	const char   *id;
	const char   *uuid;
	unsigned char pos[9];
	int	      found;
};

static int
op_pos_get(struct store_txn *t, void *arg)
{
	struct pos_op *p = arg;
	uint64_t       eid;
	int	       rc;

	if ((rc = enroll_eid(t, p->id, &eid)) != 0)
		return rc;
	if ((rc = queue_pos_get(t, p->uuid, eid, p->pos)) < 0)
		return rc;
	p->found = rc;
	return 0;
}

static int
op_report(struct store_txn *t, void *arg)
{
	struct pos_op *p = arg;

	return store_result_put(t, p->id, p->uuid, CMD_STATUS_ACKNOWLEDGED,
	    "x", 1, 0, &p->found);
}

static int
op_push(struct store_txn *t, void *arg)
{
	struct pos_op *p = arg;

	return store_queue_push(t, p->id, p->uuid, 50, 0);
}

static int
op_qpos_entries(struct store_txn *t, void *arg)
{
	MDB_stat st;
	int	 rc;

	if ((rc = mdb_stat(t->txn, t->s->dbi[DBI_QPOS], &st)) != 0)
		return store_rc(rc);
	*(size_t *)arg = st.ms_entries;
	return 0;
}

/* A cmdq record of uuid for eid as written around the API: status none,
 * no position. */
static void
cmdq_put_bare(struct store *s, const char *uuid, uint64_t eid,
    uint64_t queue_seq)
{
	struct rec_w w;
	struct key   k;

	rec_begin(&w, REC_CMDQ);
	rec_u64(&w, 2, 1);
	if (queue_seq != 0) {
		rec_u64(&w, 4, queue_seq);
		rec_u64(&w, 5, 50);
	}
	key_init(&k);
	key_str(&k, uuid);
	key_u64(&k, eid);
	raw_put(s, DBI_CMDQ, &k, w.b.p, w.b.len);
	buf_free(&w.b);
}

static void
test_queue_pos(void)
{
	struct pos_op	pa = {devs[0].udid, "CMD-A-ONLY", {0}, 0};
	struct pos_op	pb = {devs[1].udid, "CMD-SHARED", {0}, 0};
	struct pos_op	pd = {devs[0].udid, "CMD-A-DONE", {0}, 0};
	struct problems ps;
	struct store   *s;
	struct key	k;
	unsigned char	want_a[9], want_b[9];
	uint64_t	eid_a = 0, eid_b = 0;
	size_t		n = 99;
	char		dir[600];
	void	       *a[2];

	fresh_dir(dir, sizeof(dir), "qpos");
	s = open_at(dir);
	CHECK_EQ(store_write(s, op_build, NULL), 0);
	a[0] = (void *)(uintptr_t)devs[0].udid;
	a[1] = &eid_a;
	CHECK_EQ(store_read(s, op_eid, a), 0);
	a[0] = (void *)(uintptr_t)devs[1].udid;
	a[1] = &eid_b;
	CHECK_EQ(store_read(s, op_eid, a), 0);

	/* A push puts the position in the command's cmdq record: the last
	 * nine bytes of its queue key; qpos stays empty. */
	CHECK_EQ(store_read(s, op_pos_get, &pa), 0);
	CHECK_EQ(pa.found, 1);
	CHECK_EQ(pa.pos[0], 255 - 60);
	memcpy(want_a, pa.pos, 9);
	CHECK_EQ(store_read(s, op_pos_get, &pb), 0);
	CHECK_EQ(pb.found, 1);
	memcpy(want_b, pb.pos, 9);
	CHECK_EQ(store_read(s, op_qpos_entries, &n), 0);
	CHECK_EQ(n, 0);
	/* An answered command has none, and may be queued again. */
	CHECK_EQ(store_read(s, op_pos_get, &pd), 0);
	CHECK_EQ(pd.found, 0);
	CHECK_EQ(check_run(s, 0, &ps), 0);

	/* A queued command whose record lost its position: check says so,
	 * --repair puts it back, and a report finds the entry again. */
	cmdq_put_bare(s, "CMD-A-ONLY", eid_a, 0);
	CHECK_EQ(store_read(s, op_pos_get, &pa), 0);
	CHECK_EQ(pa.found, 0);
	CHECK_EQ(check_run(s, 0, &ps), 1);
	CHECK(strstr(ps.text, "command CMD-A-ONLY has no queue position") !=
	    NULL);
	CHECK_EQ(check_run(s, 1, &ps), 1);
	CHECK_EQ(ps.repaired, 1);
	CHECK_EQ(check_run(s, 0, &ps), 0);
	CHECK_EQ(store_read(s, op_pos_get, &pa), 0);
	CHECK_EQ(pa.found, 1);
	CHECK(memcmp(pa.pos, want_a, 9) == 0);

	/* A position that points at no queue entry: it would refuse a push
	 * of the command (queued already) and fail its report; check says
	 * so and --repair drops it. */
	cmdq_put_bare(s, "CMD-A-DONE", eid_a, 424242);
	CHECK_EQ(store_write(s, op_push, &pd), STORE_EEXIST);
	CHECK_EQ(store_write(s, op_report, &pd), STORE_ECORRUPT);
	CHECK_EQ(check_run(s, 0, &ps), 1);
	CHECK(strstr(ps.text, "queue position of command CMD-A-DONE points "
			      "at no queue entry of it") != NULL);
	CHECK_EQ(check_run(s, 1, &ps), 1);
	CHECK_EQ(ps.repaired, 1);
	CHECK_EQ(check_run(s, 0, &ps), 0);
	CHECK_EQ(store_write(s, op_push, &pd), 0);
	CHECK_EQ(store_read(s, op_pos_get, &pd), 0);
	CHECK_EQ(pd.found, 1);

	/* The older format: positions in qpos (eid|uuid -> nine bytes),
	 * none in cmdq. Check reads it as it is; the next writable open
	 * moves every position over and empties qpos. */
	cmdq_put_bare(s, "CMD-SHARED", eid_b, 0);
	key_init(&k);
	key_u64(&k, eid_b);
	key_raw(&k, "CMD-SHARED", 10);
	raw_put(s, DBI_QPOS, &k, want_b, 9);
	cmdq_put_bare(s, "CMD-A-ONLY", eid_a, 0);
	key_init(&k);
	key_u64(&k, eid_a);
	key_raw(&k, "CMD-A-ONLY", 10);
	raw_put(s, DBI_QPOS, &k, want_a, 9);
	CHECK_EQ(check_run(s, 0, &ps), 0);
	store_close(s);
	s = open_at(dir);
	CHECK_EQ(store_read(s, op_qpos_entries, &n), 0);
	CHECK_EQ(n, 0);
	CHECK_EQ(store_read(s, op_pos_get, &pb), 0);
	CHECK_EQ(pb.found, 1);
	CHECK(memcmp(pb.pos, want_b, 9) == 0);
	CHECK_EQ(store_read(s, op_pos_get, &pa), 0);
	CHECK_EQ(pa.found, 1);
	CHECK(memcmp(pa.pos, want_a, 9) == 0);
	CHECK_EQ(check_run(s, 0, &ps), 0);
	/* And they are used: reports find the entries (known) and drop
	 * them with their positions. */
	CHECK_EQ(store_write(s, op_report, &pb), 0);
	CHECK_EQ(pb.found, 1);
	CHECK_EQ(store_read(s, op_pos_get, &pb), 0);
	CHECK_EQ(pb.found, 0);
	CHECK_EQ(store_write(s, op_report, &pa), 0);
	CHECK_EQ(pa.found, 1);
	CHECK_EQ(check_run(s, 0, &ps), 0);
	store_close(s);
	remove_dir(dir);
}

/* ---- purge ---- */

struct purge_op {
	const char		 *arg;
	enum store_source	  src;
	int			  by_source;
	struct store_purge_report r;
};

static int
op_purge(struct store_txn *t, void *arg)
{
	struct purge_op *p = arg;
	char		*id = NULL;
	const char	*ids[1];
	int		 rc;

	if (p->by_source)
		return store_purge_source(t, p->src, p->arg, &p->r);
	if ((rc = store_device_resolve(t, p->arg, &id)) != 0)
		return rc;
	ids[0] = id;
	rc = store_purge_devices(t, ids, 1, &p->r);
	free(id);
	return rc;
}

struct scan_op {
	const char *needles[4];
	size_t	    n;
	long long   hits;
};

static int
op_scan(struct store_txn *t, void *arg)
{
	struct scan_op *s = arg;
	size_t		lens[4], i;

	for (i = 0; i < s->n; i++)
		lens[i] = strlen(s->needles[i]);
	s->hits = store_scan(
	    t, (const void *const *)s->needles, lens, s->n, NULL, NULL);
	return s->hits < 0 ? (int)s->hits : 0;
}

/* 500 needles, three of which are in the store (device B, a command). */
struct scan_many {
	char	  buf[500][32];
	long long hits;
};

static int
op_scan_many(struct store_txn *t, void *arg)
{
	struct scan_many *sm = arg;
	const void	 *nv[500];
	size_t		  nl[500], i;

	for (i = 0; i < 500; i++) {
		snprintf(sm->buf[i], sizeof(sm->buf[i]), "%s-%zu",
		    i % 2 ? "UDID-BBBB" : "NEEDLE", i);
		if (i == 100)
			strlcpy(sm->buf[i], devs[1].udid, sizeof(sm->buf[i]));
		if (i == 200)
			strlcpy(sm->buf[i], devs[1].serial, sizeof(sm->buf[i]));
		if (i == 300)
			strlcpy(sm->buf[i], "CMD-SHARED", sizeof(sm->buf[i]));
		nv[i] = sm->buf[i];
		nl[i] = strlen(sm->buf[i]);
	}
	sm->hits = store_scan(t, nv, nl, 500, NULL, NULL);
	return sm->hits < 0 ? (int)sm->hits : 0;
}

static long long
scan_for(struct store *s, const char *a, const char *b)
{
	struct scan_op so = {{a, b}, b ? 2 : 1, 0};

	CHECK_EQ(store_read(s, op_scan, &so), 0);
	return so.hits;
}

/* The dump lines that mention one string. */
static char *
lines_with(const char *d, size_t n, const char *what, int with)
{
	struct buf  b;
	const char *p = d, *nl;

	memset(&b, 0, sizeof(b));
	while (p < d + n && (nl = memchr(p, '\n', (size_t)(d + n - p)))) {
		if ((memmem(p, (size_t)(nl - p), what, strlen(what)) != NULL) ==
		    with)
			CHECK(buf_append(&b, p, (size_t)(nl - p + 1)) == 0);
		p = nl + 1;
	}
	CHECK(buf_append(&b, "", 1) == 0);
	return (char *)b.p;
}

static void
test_purge(struct store *s)
{
	struct purge_op p;
	struct problems ps;
	char	       *before, *after, *bl, *al;
	size_t		bn, an, i;
	int		saw_user = 0;

	before = dump_mem(s, STORE_DUMP_SECRETS, &bn);
	CHECK(scan_for(s, devs[0].udid, devs[0].serial) > 0);

	memset(&p, 0, sizeof(p));
	p.arg = devs[0].serial; /* by serial number */
	CHECK_EQ(store_write(s, op_purge, &p), 0);
	CHECK_EQ(p.r.ndevices, 1);
	CHECK_STR(p.r.devices[0], devs[0].udid);
	CHECK_EQ(p.r.nenrollments, 2);
	for (i = 0; i < p.r.nenrollments; i++)
		saw_user |= strstr(p.r.enrollments[i], "USER-GUID-A") != NULL;
	CHECK(saw_user);
	CHECK(p.r.removed[DBI_DEVICE] == 1 && p.r.removed[DBI_ENROLL] == 2 &&
	    p.r.removed[DBI_EID] == 2 && p.r.removed[DBI_UCHAN] == 1 &&
	    p.r.removed[DBI_SERIAL] == 1 && p.r.removed[DBI_CERT] == 1 &&
	    p.r.removed[DBI_MSG] == 2);
	/* Its result, and the one test_check's repair indexed; found
	 * by their keys, and their result_index entries go with them. */
	CHECK_EQ(p.r.removed[DBI_RESULT], 2);
	CHECK_EQ(p.r.removed[DBI_RESULTIX], 2);
	/* CMD-A-ONLY and CMD-A-DONE went; CMD-SHARED stays for B. */
	CHECK_EQ(p.r.removed[DBI_CMD], 2);
	store_purge_report_free(&p.r);
	CHECK_EQ(scan_for(s, devs[0].udid, devs[0].serial), 0);
	CHECK_EQ(scan_for(s, "USER-GUID-A", NULL), 0);
	CHECK_EQ(check_run(s, 0, &ps), 0);
	memset(&p, 0, sizeof(p));
	p.arg = devs[0].udid;
	CHECK_EQ(store_write(s, op_purge, &p), STORE_ENOTFOUND);
	store_purge_report_free(&p.r);

	/* Every line that is not about A is still there, unchanged. */
	after = dump_mem(s, STORE_DUMP_SECRETS, &an);
	bl = lines_with(before, bn, "AAAA", 0);
	al = lines_with(after, an, "AAAA", 0);
	CHECK(strstr(al, "CMD-SHARED") != NULL);
	CHECK(strstr(al, "UDID-BBBB-0002") != NULL);
	/* Only the purged enrollments' numbered entries differ. */
	CHECK(strlen(al) < strlen(bl));
	CHECK(strstr(al, "CMD-A-ONLY") == NULL);
	free(bl);
	free(al);
	free(before);
	free(after);

	/* By topic: C went through TOPIC1 (A did too, already gone). */
	memset(&p, 0, sizeof(p));
	p.by_source = 1;
	p.src = STORE_SOURCE_TOPIC;
	p.arg = TOPIC1;
	CHECK_EQ(store_write(s, op_purge, &p), 0);
	CHECK_EQ(p.r.ndevices, 1);
	CHECK_STR(p.r.devices[0], devs[2].udid);
	store_purge_report_free(&p.r);
	CHECK_EQ(scan_for(s, TOPIC1, devs[2].serial), 0);
	CHECK(scan_for(s, TOPIC2, devs[1].serial) > 0);
	CHECK_EQ(check_run(s, 0, &ps), 0);
	CHECK_EQ(store_write(s, op_purge, &p), STORE_ENOTFOUND);
	store_purge_report_free(&p.r);

	/* Many needles at once find what one at a time finds. */
	{
		struct scan_many sm;
		long long	 one;

		one = scan_for(s, devs[1].udid, NULL) +
		    scan_for(s, devs[1].serial, NULL) +
		    scan_for(s, "CMD-SHARED", NULL);
		memset(&sm, 0, sizeof(sm));
		CHECK_EQ(store_read(s, op_scan_many, &sm), 0);
		CHECK(one > 3);
		CHECK_EQ(sm.hits, one);
	}

	/* Tokens of ADE and VPP: none exist yet, and it says so. */
	memset(&p, 0, sizeof(p));
	p.by_source = 1;
	p.src = STORE_SOURCE_TOKEN;
	p.arg = "acme-ade-token";
	CHECK_EQ(store_write(s, op_purge, &p), STORE_ENOTFOUND);
	store_purge_report_free(&p.r);
	CHECK(scan_for(s, devs[1].udid, NULL) > 0);
}

/* ---- inventory ---- */

struct inv_op {
	const char *arg;
	json_t	   *out;
};

static int
op_inventory(struct store_txn *t, void *arg)
{
	struct inv_op *io = arg;

	return inventory_device(t, io->arg, &io->out);
}

/* The row of (service, source, message, field); NULL if none. */
static json_t *
find_row(json_t *inv, const char *svc, const char *source, const char *message,
    const char *field)
{
	json_t *s, *row;
	size_t	i, j;

	json_array_foreach(json_object_get(inv, "services"), i, s)
	{
		if (strcmp(json_string_value(json_object_get(s, "service")),
			svc) != 0)
			continue;
		json_array_foreach(json_object_get(s, "fields"), j,
		    row) if (strcmp(json_string_value(json_object_get(row,
					"source")),
				 source) == 0 &&
		    strcmp(json_string_value(json_object_get(row, "message")),
			message) == 0 &&
		    strcmp(json_string_value(json_object_get(row, "field")),
			field) == 0) return row;
	}
	return NULL;
}

struct msg_time {
	enum msg_kind kind;
	uint64_t      at;
};

static int
msg_time_cb(const struct store_msg *m, void *arg)
{
	struct msg_time *mt = arg;

	if (m->kind == mt->kind)
		mt->at = m->received_at;
	return 0;
}

static int
op_msg_time(struct store_txn *t, void *arg)
{
	return store_msg_iter(t, devs[1].udid, msg_time_cb, arg);
}

static void
test_inventory(struct store *s)
{
	struct inv_op	io = {devs[1].serial, NULL};
	struct msg_time mt = {MSG_TOKEN_UPDATE, 0};
	json_t	       *row, *v;
	char	       *text, when[40];
	size_t		i, n;
	int		seen[INV__MAX];

	CHECK_EQ(store_read(s, op_inventory, &io), 0);
	CHECK_STR(json_string_value(json_object_get(io.out, "device_id")),
	    devs[1].udid);
	CHECK_EQ(json_array_size(json_object_get(io.out, "services")), 4);
	CHECK_EQ(store_read(s, op_msg_time, &mt), 0);
	time_format(mt.at, when, sizeof(when));

	row = find_row(
	    io.out, "check-in", "message", "Authenticate", "SerialNumber");
	CHECK(row != NULL);
	CHECK_STR(
	    json_string_value(json_object_get(row, "value")), devs[1].serial);
	CHECK_STR(json_string_value(json_object_get(row, "topic")), TOPIC2);
	row = find_row(io.out, "check-in", "message", "TokenUpdate", "Token");
	CHECK(row != NULL);
	CHECK_STR(json_string_value(json_object_get(row, "received_at")), when);
	v = json_object_get(row, "value");
	CHECK(json_is_true(json_object_get(v, "secret")));
	CHECK_EQ(json_integer_value(json_object_get(v, "length")),
	    sizeof(push_token) - 1);
	CHECK(strstr(json_string_value(json_object_get(row, "purpose")),
		  "APNs") != NULL);
	row = find_row(
	    io.out, "check-in", "message", "Authenticate", "FutureKey");
	CHECK(row != NULL);
	CHECK(strstr(json_string_value(json_object_get(row, "purpose")),
		  "not used") != NULL);
	row = find_row(
	    io.out, "check-in", "record", "TokenUpdate", "UnlockToken");
	CHECK(row != NULL &&
	    json_is_true(
		json_object_get(json_object_get(row, "value"), "secret")));
	row = find_row(io.out, "command", "report", "report", "Status");
	CHECK(row != NULL);
	CHECK_STR(
	    json_string_value(json_object_get(row, "value")), "Acknowledged");
	CHECK_STR(json_string_value(json_object_get(row, "command_uuid")),
	    "CMD-B-DONE");
	CHECK_STR(json_string_value(json_object_get(row, "request_type")),
	    "ClearPasscode");
	CHECK(json_is_string(json_object_get(row, "received_at")));

	/* Nothing secret in any form, anywhere in it. */
	text = json_dumps(io.out, JSON_COMPACT);
	CHECK(text != NULL);
	n = strlen(text);
	CHECK(!leaks(text, n, push_token, sizeof(push_token) - 1));
	CHECK(!leaks(text, n, unlock_token, sizeof(unlock_token) - 1));
	CHECK(!contains(text, n, "PUSHMAGIC-secret-value", 22));
	free(text);
	json_decref(io.out);

	io.arg = "NO-SUCH-DEVICE";
	io.out = NULL;
	CHECK_EQ(store_read(s, op_inventory, &io), STORE_ENOTFOUND);

	/* The catalogue: all four services, every check-in key of Apple's
	 * schema, the report keys, and the secrets. */
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < inventory_catalogue_len; i++)
		seen[inventory_catalogue[i].service]++;
	for (i = 0; i < INV__MAX; i++)
		CHECK(seen[i] > 0);
	for (i = 0; i < schema_checkin_len; i++) {
		const struct schema_msg *m = &schema_checkin[i];
		size_t			 k;

		for (k = 0; k < m->nkeys; k++) {
			if (inventory_find(
				INV_CHECKIN, m->name, m->keys[k].key) == NULL)
				fprintf(stderr, "no row: %s %s\n", m->name,
				    m->keys[k].key);
			CHECK(inventory_find(INV_CHECKIN, m->name,
				  m->keys[k].key) != NULL);
		}
	}
	CHECK(inventory_find(
		  INV_COMMAND, "report", "ErrorChain[0].ErrorCode") != NULL);
	CHECK(inventory_find(INV_ADE, "device record", "profile_uuid") != NULL);
	CHECK(inventory_find(INV_VPP, "users", "managedAppleId") != NULL);
	CHECK(
	    inventory_find(INV_CHECKIN, "TokenUpdate", "UnlockToken")->secret);
	CHECK(inventory_find(INV_CHECKIN, "SetBootstrapToken", "BootstrapToken")
		  ->secret);
	CHECK(!inventory_find(INV_CHECKIN, "Authenticate", "SerialNumber")
		   ->secret);
	CHECK(inventory_secret_key(INV_COMMAND, "UnlockToken"));
	CHECK(!inventory_secret_key(INV_COMMAND, "ErrorCode"));
}

/*
 * The "record" row of the inventory for this field of a record kind, by
 * the message it is shown under and its field; NULL if none.
 */
static json_t *
inv_record_row(json_t *inv, const struct afield *f)
{
	const char *msg = f->inv_message != NULL ? f->inv_message : f->message;
	json_t	   *sv, *row;
	size_t	    i, j;

	json_array_foreach(json_object_get(inv, "services"), i, sv)
	{
		json_array_foreach(json_object_get(sv, "fields"), j, row)
		{
			if (strcmp(json_string_value(json_object_get(row,
					   "source")),
				"record") == 0 &&
			    strcmp(json_string_value(json_object_get(row,
					   "field")),
				f->field) == 0 &&
			    strcmp(json_string_value(json_object_get(row,
					   "message")),
				msg) == 0)
				return row;
		}
	}
	return NULL;
}

/*
 * The inventory of the fixture's device (every field of its records set,
 * a user channel too) shows every field the registry links to the
 * catalogue, of every kind, with its purpose and, when the registry says
 * which field holds it, the time it was received: a kind or a field added
 * with its catalogue row but that the inventory does not list fails.
 */
static int
op_machineinfo(struct store_txn *t, void *arg)
{
	char udid[] = "0000FE00-FIXT-0000-0000-000000000001",
	     serial[] = "C02FIXTURE01", product[] = "iPhone14,5",
	     version[] = "21F90", imei[] = "35 123456 789012 3",
	     meid[] = "A1000012345678", language[] = "en-US",
	     tok[] = "fixture-token";
	struct store_machineinfo mi = {.udid = udid, .serial = serial,
	    .product = product, .version = version, .imei = imei,
	    .meid = meid, .language = language};

	struct store_ade_device	 ad;
	char			 vals[ADE_DEV__MAX][32];
	size_t			 i;
	int			 rc;

	(void)arg;
	if ((rc = store_machineinfo_put(t, &mi)) != 0)
		return rc;
	/* Its ADE record, every field Apple sends set. */
	memset(&ad, 0, sizeof(ad));
	for (i = 0; i < ADE_DEV__MAX; i++) {
		snprintf(vals[i], sizeof(vals[i]), "ade-%zu", i);
		ad.f[i] = vals[i];
	}
	ad.f[ADE_SERIAL] = serial;
	ad.token = tok;
	return store_ade_device_put(t, &ad);
}

static void
fixture_inventory(struct store *s)
{
	/* A device with a user channel; a User Enrollment. */
	struct inv_op io[2] = {{"0000FE00-FIXT-0000-0000-000000000001", NULL},
	    {"UE-FIXTURE-0000-0001", NULL}};
	const struct store_kind *k;
	const struct afield	*f;
	json_t			*row;
	size_t			 i, d, j;

	/* The fixture predates the MachineInfo and ADE kinds: the device
	 * gets one of each here, with every field, as Setup Assistant and
	 * Apple's ADE service would send them. */
	CHECK_EQ(store_write(s, op_machineinfo, NULL), 0);
	for (i = 0; i < 2; i++) {
		CHECK_EQ(store_read(s, op_inventory, &io[i]), 0);
		CHECK(io[i].out != NULL);
	}
	for (d = 0; d < DBI__MAX; d++) {
		k = &store_kinds[d];
		/*
		 * A device's inventory shows what is kept about it; a kind
		 * owned by an APNs topic (push certificates) belongs to no
		 * device and is listed by its own command (pushcert list)
		 * and by inventory --catalogue.
		 */
		if (k->owner == OWN_TOPIC || k->owner == OWN_TOKEN)
			continue;
		/* A VPP token's records belong to the token, not to a
		 * device: picomdm-vpp lists them (token list, assets,
		 * assignments, users) and show SERIAL the device's
		 * assignments; they are checked in test-vpp. */
		if (k->owner == OWN_VPP_TOKEN)
			continue;
		for (j = 0; j < k->nf; j++) {
			f = &k->f[j];
			if (f->cat != CAT_ROW || (f->flags & AF_KEY))
				continue;
			row = inv_record_row(io[0].out, f);
			if (row == NULL)
				row = inv_record_row(io[1].out, f);
			if (row == NULL)
				fprintf(stderr, "not in the inventory: %s %s\n",
				    store_kind_name(k), f->name);
			CHECK(row != NULL);
			if (row == NULL)
				continue;
			CHECK(strstr(json_string_value(
					 json_object_get(row, "purpose")),
				  "not used") == NULL);
			CHECK(f->at_tag == 0 ||
			    json_is_string(json_object_get(row, "received_at")));
			CHECK(!afield_secret(f) ||
			    json_is_true(json_object_get(
				json_object_get(row, "value"), "secret")));
		}
	}
	json_decref(io[0].out);
	json_decref(io[1].out);
}

/* ---- stats ---- */

struct stat_op {
	struct store_dbi_stat st[DBI__MAX + 1];
	size_t		      n;
	int		      rc;
};

static int
op_stat(struct store_txn *t, void *arg)
{
	struct stat_op *so = arg;

	so->rc = store_stat(t, so->st, so->n);
	return 0;
}

/*
 * stats and stats --prometheus list every kind of the registry, by its
 * name, in its order, with as many entries as the dump of the fixture
 * (dump) has lines of it; and an array too short for every kind is
 * refused rather than leaving a kind out.
 */
static void
fixture_stats(struct store *s, const char *dump, size_t len)
{
	struct stat_op so;
	struct buf     b;
	const char    *p, *end = dump + len;
	char	       pat[64], line[128];
	uint64_t       lines;
	size_t	       d;

	memset(&so, 0, sizeof(so));
	so.n = DBI__MAX - 1;
	CHECK_EQ(store_read(s, op_stat, &so), 0);
	CHECK_EQ(so.rc, STORE_EINVAL);
	so.n = DBI__MAX + 1;
	CHECK_EQ(store_read(s, op_stat, &so), 0);
	CHECK_EQ(so.rc, DBI__MAX);
	memset(&b, 0, sizeof(b));
	CHECK_EQ(metrics_render_store(&b, s), 0);
	CHECK(buf_append(&b, "", 1) == 0);
	for (d = 0; d < DBI__MAX; d++) {
		CHECK(so.st[d].name != NULL);
		CHECK_STR(so.st[d].name, store_kind_name(&store_kinds[d]));
		snprintf(pat, sizeof(pat), "{\"db\":\"%s\",", so.st[d].name);
		for (lines = 0, p = dump; p < end &&
		     (p = strstr(p, pat)) != NULL; p++)
			lines++;
		if (so.st[d].entries != lines)
			fprintf(stderr, "stats: %s: %llu entries, %llu in the "
			    "dump\n", so.st[d].name,
			    (unsigned long long)so.st[d].entries,
			    (unsigned long long)lines);
		CHECK_EQ(so.st[d].entries, lines);
		snprintf(line, sizeof(line),
		    "\npicomdm_store_entries{db=\"%s\"} %llu\n",
		    so.st[d].name, (unsigned long long)lines);
		CHECK(strstr((const char *)b.p, line) != NULL);
	}
	buf_free(&b);
}

/* ---- the frozen store of tests/data/store ---- */

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

/*
 * store.raw is the exact bytes of a store made by real check-ins (every
 * sub-database and record kind, secrets included) and store.json its
 * "dump --secrets" when it was made. Restored into an empty store, either
 * must dump to store.json byte for byte, and the store must check clean.
 */
static void
test_fixture(void)
{
	static const char *const forms[] = {"store/store.raw", "store/store.json"};
	struct problems ps;
	struct store   *s;
	char		dir[600], err[200];
	char	       *want, *in, *got;
	size_t		wn, in_n, gn, i;
	uint64_t	recs;

	want = load("store/store.json", &wn);
	/* Every field the store writes has its name in the registry (an
	 * unknown tag would be dumped as "tag_N"), and every entry decodes
	 * (else "key_b64" / "value_b64"). */
	CHECK(!contains(want, wn, "\"tag_", 5));
	CHECK(!contains(want, wn, "_b64\"", 5));
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		fresh_dir(dir, sizeof(dir), "fixture");
		s = open_at(dir);
		in = load(forms[i], &in_n);
		recs = 0;
		CHECK_EQ(store_restore(s, in, in_n, 0, NULL, &recs, err,
			     sizeof(err)),
		    0);
		/* store.raw predates the enrollment counters in meta, which
		 * a restore adds (store_counts.c); store.json holds them. */
		CHECK_EQ(recs, i == 0 ? 110 : 112);
		got = dump_mem(s, STORE_DUMP_SECRETS, &gn);
		CHECK_EQ(gn, wn);
		CHECK(gn == wn && memcmp(got, want, wn) == 0);
		CHECK_EQ(check_run(s, 0, &ps), 0);
		fixture_stats(s, want, wn);
		fixture_inventory(s); /* adds a MachineInfo: stats first */
		free(got);
		free(in);
		store_close(s);
		remove_dir(dir);
	}
	free(want);
}

/* ---- the registry of kinds ---- */

/* Do a writer's field type and the registry's agree? */
static int
types_agree(enum fdesc_type w, enum afield_type a)
{
	switch (w) {
	case F_STR:
		return a == A_STR;
	case F_BYTES:
		return a == A_BYTES || a == A_PLIST;
	case F_U64:
		return a == A_U64 || a == A_TIME;
	case F_INT:
		return a == A_BOOL || a == A_ETYPE || a == A_KIND ||
		    a == A_STATUS || a == A_U64;
	case F_HASH32:
		return a == A_HASH;
	}
	return 0;
}

/*
 * The writers' field tables (store_device.c, store_queue.c) and the
 * registry's say the same: every tag written has its field in the
 * registry, of a type that agrees, and every field of the registry is
 * written (the enrollment's number, written on its own, aside). Every
 * kind of those two files has its table.
 */
static void
test_writer_tables(void)
{
	const struct store_kind *k;
	const struct fdesc	*w;
	size_t			 n, i, j, found = 0;
	int			 r;

	for (r = 1; r < REC__MAX; r++) {
		k = store_kind_of_rec((enum rec_kind)r);
		if ((w = store_device_fdesc((enum rec_kind)r, &n)) == NULL &&
		    (w = store_queue_fdesc((enum rec_kind)r, &n)) == NULL &&
		    (w = store_ade_fdesc((enum rec_kind)r, &n)) == NULL)
			w = store_event_fdesc((enum rec_kind)r, &n);
		if (w == NULL || k == NULL)
			continue;
		found++;
		for (i = 0; i < n; i++) {
			for (j = 0; j < k->nf && k->f[j].tag != w[i].tag; j++)
				continue;
			if (j == k->nf)
				fprintf(stderr, "kind %d: tag %u not in the "
				    "registry\n", r, w[i].tag);
			CHECK(j < k->nf);
			CHECK(j == k->nf || types_agree(w[i].type, k->f[j].type));
		}
		for (j = 0; j < k->nf; j++) {
			for (i = 0; i < n && w[i].tag != k->f[j].tag; i++)
				continue;
			if (i == n && !(r == REC_ENROLL &&
			    k->f[j].tag == TAG_ENROLL_EID))
				fprintf(stderr, "kind %d: %s not written\n", r,
				    k->f[j].name);
			CHECK(i < n ||
			    (r == REC_ENROLL && k->f[j].tag == TAG_ENROLL_EID));
		}
	}
	/* and the two ADE kinds and the webhook events */
	CHECK_EQ(found, (size_t)REC_CMDQ + 3);
}

/* Is tag an A_TIME field of k? */
static int
time_field(const struct store_kind *k, unsigned tag)
{
	size_t i;

	for (i = 0; i < k->nf; i++)
		if (k->f[i].tag == tag)
			return k->f[i].type == A_TIME;
	return 0;
}

/*
 * A kind half-added to store_kinds.c fails here: without a key or value
 * codec, a field table, a catalogue row (or the CAT_OWN mark) for every
 * field, a purge owner, a check, or a source field that exists.
 */
static void
test_registry(void)
{
	const struct store_kind *k;
	const struct afield	*f;
	size_t			 i, j, nrec = 0;
	int			 d, r, src_ok;

	for (d = 0; d < DBI__MAX; d++) {
		k = &store_kinds[d];
		CHECK_EQ((int)k->dbi, d);
		CHECK_EQ(store_kind_by_name(store_dbi_names[d]), d);
		/* codec */
		CHECK(k->key != KK_UNSET);
		CHECK(k->val != KV_UNSET);
		/* purge owner, and a check (the counters are checked whole) */
		CHECK(k->owner != OWN_UNSET);
		CHECK(k->check_pass > 0 || k->owner == OWN_STORE);
		CHECK(k->check_pass <= DBI__MAX);
		CHECK(k->check_pass == 0 || store_check_has((enum store_dbi)d));
		for (j = 0; j < DBI__MAX; j++)
			CHECK(j == (size_t)d || k->check_pass == 0 ||
			    store_kinds[j].check_pass != k->check_pass);
		CHECK(k->ref != REF_CMD_FIELD || k->val == KV_RECORD);
		if (k->val != KV_RECORD) {
			CHECK(k->f == NULL && k->nf == 0);
			CHECK(k->src == STORE_SOURCE__MAX);
			continue;
		}
		nrec++;
		CHECK(k->rec > 0 && k->rec < REC__MAX);
		CHECK(store_kind_of_rec(k->rec) == k);
		CHECK(k->f != NULL && k->nf > 0);
		src_ok = k->src == STORE_SOURCE__MAX;
		for (i = 0; i < k->nf; i++) {
			f = &k->f[i];
			CHECK(f->name != NULL && *f->name != '\0');
			CHECK(f->cat == CAT_ROW || f->cat == CAT_OWN);
			/* The row names a field of the catalogue. */
			CHECK(f->cat != CAT_ROW ||
			    inventory_find(f->svc, f->message, f->field) != NULL);
			for (j = 0; j < i; j++)
				CHECK(k->f[j].tag != f->tag);
			/* The inventory lists it (store_fields.c walks
			 * records keyed by a device or enrollment ID),
			 * under a message, with the time it came; a
			 * topic's push certificate belongs to no device
			 * and is listed by pushcert list. */
			if (f->cat == CAT_ROW && !(f->flags & AF_KEY)) {
				CHECK(((k->owner == OWN_DEVICE ||
					   k->owner == OWN_ENROLL) &&
					  k->key == KK_TEXT) ||
				    (k->owner == OWN_SERIAL &&
					k->key == KK_TEXT) ||
				    k->owner == OWN_EID ||
				    k->owner == OWN_TOPIC ||
				    k->owner == OWN_TOKEN ||
				    k->owner == OWN_VPP_TOKEN);
				CHECK(f->inv_message != NULL ||
				    strcmp(f->message, "*") != 0);
			}
			/* The key: an identity, one per kind. */
			if (f->flags & AF_KEY) {
				CHECK(f->type == A_STR && f->cat == CAT_ROW &&
				    strcmp(f->message, "*") == 0);
				for (j = 0; j < i; j++)
					CHECK(!(k->f[j].flags & AF_KEY));
			}
			CHECK(f->cat == CAT_ROW || (f->inv_message == NULL &&
			    f->at_tag == 0 && f->flags == 0));
			CHECK(f->at_tag == 0 || time_field(k, f->at_tag));
			CHECK(f->at_or_tag == 0 ||
			    (f->at_tag != 0 && time_field(k, f->at_or_tag)));
			if (k->src != STORE_SOURCE__MAX && f->tag == k->src_tag)
				src_ok = 1;
		}
		CHECK(src_ok);
		CHECK(k->src == STORE_SOURCE__MAX || k->src_owner != SRC_NONE);
	}
	/* Every record kind is registered. */
	for (r = 1; r < REC__MAX; r++)
		CHECK(store_kind_of_rec((enum rec_kind)r) != NULL);
	CHECK_EQ(nrec, REC__MAX - 1);
	/* Secrets come from the catalogue through the registry. */
	k = store_kind_of_rec(REC_ENROLL);
	for (i = 0; i < k->nf; i++)
		if (strcmp(k->f[i].name, "token") == 0)
			CHECK(afield_secret(&k->f[i]));
		else if (strcmp(k->f[i].name, "topic") == 0)
			CHECK(!afield_secret(&k->f[i]));
	/* A push certificate's key is a secret, its certificate is not;
	 * the kind is purged by its topic, itself. */
	k = store_kind_of_rec(REC_PUSHCERT);
	CHECK(k != NULL && k->owner == OWN_TOPIC && k->src_owner == SRC_SELF);
	for (i = 0; k != NULL && i < k->nf; i++)
		if (strcmp(k->f[i].name, "key_pem") == 0)
			CHECK(afield_secret(&k->f[i]));
		else if (strcmp(k->f[i].name, "cert_pem") == 0)
			CHECK(!afield_secret(&k->f[i]));
	/* An ADE token's OAuth credentials and key are secrets, its
	 * account is not; tokens and device records are purged by the
	 * token's name (purge --token), themselves. */
	k = store_kind_of_rec(REC_ADETOKEN);
	CHECK(k != NULL && k->owner == OWN_TOKEN && k->src_owner == SRC_SELF &&
	    k->src == STORE_SOURCE_TOKEN);
	for (i = 0; k != NULL && i < k->nf; i++)
		if (strcmp(k->f[i].name, "consumer_key") == 0 ||
		    strcmp(k->f[i].name, "consumer_secret") == 0 ||
		    strcmp(k->f[i].name, "access_token") == 0 ||
		    strcmp(k->f[i].name, "access_secret") == 0 ||
		    strcmp(k->f[i].name, "key_pem") == 0)
			CHECK(afield_secret(&k->f[i]));
		else
			CHECK(!afield_secret(&k->f[i]));
	k = store_kind_of_rec(REC_ADEDEVICE);
	CHECK(k != NULL && k->owner == OWN_SERIAL && k->src_owner == SRC_SELF &&
	    k->src == STORE_SOURCE_TOKEN);
}

/* db_prefix_each: an empty prefix walks every entry, as the enrollment
 * counters say there are (store_rec.c). */
static int
count_each(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	(void)t;
	(void)k;
	(void)v;
	(*(uint64_t *)arg)++;
	return 0;
}

static int
op_prefix_all(struct store_txn *t, void *arg)
{
	uint64_t *n = arg, en, dis;
	int	  rc;

	if ((rc = db_prefix_each(t, DBI_ENROLL, "", 0, 0, count_each,
		 &n[0])) != 0 ||
	    (rc = store_enrollment_counts(t, &en, &dis)) != 0)
		return rc;
	n[1] = en + dis;
	return 0;
}

static void
test_prefix_all(struct store *s)
{
	uint64_t n[2] = {0, 0};

	CHECK_EQ(store_read(s, op_prefix_all, n), 0);
	CHECK(n[0] > 0);
	CHECK_EQ(n[0], n[1]);
}

int
main(void)
{
	struct store *s;

	fresh_dir(base, sizeof(base), "main");
	s = open_at(base);
	CHECK_EQ(store_write(s, op_build, NULL), 0);
	test_dump_restore(s);
	test_fixture();
	test_registry();
	test_writer_tables();
	test_check(s);
	test_queue_pos();
	test_prefix_all(s);
	test_inventory(s);
	test_purge(s);
	store_close(s);
	remove_dir(base);
	REGRESS_DONE();
}
