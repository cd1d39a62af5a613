/*
 * test-ade-store.c - ADE tokens and device records in the store
 * (picomdm/store_ade.h): an event older (op_date) than the stored one is
 * ignored, a deleted device is a tombstone and a later add brings it
 * back, a device's serial is found through its record, its MachineInfo
 * or an ADE record alone; a purge of the device's ID removes its ADE
 * record, a purge by token removes the token's records and the token
 * and nothing else; secrets are hidden in a dump; check is clean.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picomdm/store.h"
#include "picomdm/store_ade.h"
#include "picomdm/store_enroll.h"
#include "regress.h"

/* Remove dir, then make it again when fresh. */
static void
reset_dir(const char *dir, int fresh)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'%s%s%s", dir,
	    fresh ? " && mkdir -p '" : "", fresh ? dir : "", fresh ? "'" : "");
	CHECK(system(cmd) == 0); /* test code only: not in module/ */
}

static int
problems(struct store *s)
{
	struct store_check_count c;

	CHECK_EQ(store_check(s, 0, NULL, NULL, NULL, &c), 0);
	return (int)c.problems;
}

struct ev {
	const char *serial, *token, *op, *date, *model;
	int	    changed, added, rc;
};

static int
op_apply(struct store_txn *t, void *arg)
{
	struct ev	       *e = arg;
	struct store_ade_device d;

	memset(&d, 0, sizeof(d));
	d.f[ADE_SERIAL] = (char *)(uintptr_t)e->serial;
	d.f[ADE_OP_TYPE] = (char *)(uintptr_t)e->op;
	d.f[ADE_OP_DATE] = (char *)(uintptr_t)e->date;
	d.f[ADE_MODEL] = (char *)(uintptr_t)e->model;
	return store_ade_device_apply(t, e->token, &d, &e->changed, &e->added);
}

static void
apply(struct store *s, struct ev *e)
{
	CHECK_EQ(store_write(s, op_apply, e), 0);
}

struct get {
	const char		*serial;
	struct store_ade_device *d;
};

static int
op_get(struct store_txn *t, void *arg)
{
	struct get *g = arg;

	store_ade_device_free(g->d);
	g->d = NULL;
	return store_ade_device_get(t, g->serial, &g->d);
}

/* The stored model of serial, "" when there is no record. */
static const char *
model_of(struct store *s, const char *serial, char *buf, size_t n)
{
	struct get g = {serial, NULL};
	int	   rc = store_read(s, op_get, &g);

	snprintf(buf, n, "%s",
	    rc == 0 && g.d->f[ADE_MODEL] != NULL ? g.d->f[ADE_MODEL] : "");
	if (rc == 0 && g.d->f[ADE_OP_TYPE] != NULL &&
	    strcmp(g.d->f[ADE_OP_TYPE], "deleted") == 0)
		snprintf(buf, n, "deleted");
	store_ade_device_free(g.d);
	return buf;
}

static void
test_apply(struct store *s)
{
	struct ev e1 = {
	    "S1", "tokA", "added", "2026-01-02T00:00:00Z", "m1", 0, 0, 0};
	struct ev old = {
	    "S1", "tokA", "modified", "2026-01-01T00:00:00Z", "old", 0, 0, 0};
	struct ev mod = {
	    "S1", "tokA", "modified", "2026-01-03T00:00:00Z", "m2", 0, 0, 0};
	struct ev del = {
	    "S1", "tokA", "deleted", "2026-01-04T00:00:00Z", "m2", 0, 0, 0};
	struct ev back = {
	    "S1", "tokA", "added", "2026-01-05T00:00:00Z", "m3", 0, 0, 0};
	struct ev fetch = {"S1", "tokA", NULL, NULL, "m4", 0, 0, 0};
	char	  b[32];

	apply(s, &e1);
	CHECK(e1.changed && e1.added);
	CHECK_STR(model_of(s, "S1", b, sizeof(b)), "m1");
	apply(s, &old); /* older than the stored event: ignored */
	CHECK(!old.changed && !old.added);
	CHECK_STR(model_of(s, "S1", b, sizeof(b)), "m1");
	apply(s, &mod);
	CHECK(mod.changed && !mod.added);
	CHECK_STR(model_of(s, "S1", b, sizeof(b)), "m2");
	apply(s, &del);
	CHECK(del.changed && !del.added);
	CHECK_STR(model_of(s, "S1", b, sizeof(b)), "deleted");
	apply(s, &back); /* a tombstone added again is new */
	CHECK(back.changed && back.added);
	CHECK_STR(model_of(s, "S1", b, sizeof(b)), "m3");
	apply(s, &fetch); /* a full fetch has no op_date: it is the state */
	CHECK(fetch.changed && !fetch.added);
	CHECK_STR(model_of(s, "S1", b, sizeof(b)), "m4");
}

struct each_op {
	const char *after;
	char	    seen[64];
};

static int
each_cb(const struct store_ade_device *d, void *arg)
{
	struct each_op *o = arg;
	size_t		n = strlen(o->seen);

	snprintf(o->seen + n, sizeof(o->seen) - n, "%s,", d->f[ADE_SERIAL]);
	return 0;
}

static int
op_each(struct store_txn *t, void *arg)
{
	struct each_op *o = arg;

	o->seen[0] = '\0';
	return store_ade_device_each(t, o->after, each_cb, o);
}

/* The page after "after": rc from the read, the serials seen in want. */
static void
check_each(struct store *s, const char *after, int rc, const char *want)
{
	struct each_op o;

	o.after = after;
	CHECK_EQ(store_read(s, op_each, &o), rc);
	CHECK_STR(o.seen, want);
}

/* Serial order, strictly after "after"; one too long to be a key is
 * refused rather than read as "from the first". */
static void
test_each(struct store *s)
{
	struct ev a = {"S3", "tokA", "added", "2026-01-02T00:00:00Z", "m",
	    0, 0, 0};
	struct ev b = {"S2", "tokA", "added", "2026-01-02T00:00:00Z", "m",
	    0, 0, 0};
	char	  long_after[600];

	apply(s, &a);
	apply(s, &b);
	check_each(s, NULL, 0, "S1,S2,S3,");
	check_each(s, "", 0, "S1,S2,S3,");
	check_each(s, "S1", 0, "S2,S3,");
	check_each(s, "S25", 0, "S3,");
	memset(long_after, 'S', sizeof(long_after) - 1);
	long_after[sizeof(long_after) - 1] = '\0';
	check_each(s, long_after, STORE_EINVAL, "");
}

struct tok_op {
	const char *name;
};

static int
op_token(struct store_txn *t, void *arg)
{
	struct tok_op	      *o = arg;
	struct store_ade_token tk;

	memset(&tk, 0, sizeof(tk));
	tk.name = (char *)(uintptr_t)o->name;
	tk.consumer_key = (char *)(uintptr_t) "CK-SECRET-VALUE-0001";
	tk.consumer_secret = (char *)(uintptr_t) "CS-SECRET-VALUE-0001";
	tk.access_token = (char *)(uintptr_t) "AT-SECRET-VALUE-0001";
	tk.access_secret = (char *)(uintptr_t) "AS-SECRET-VALUE-0001";
	tk.key_pem = (char *)(uintptr_t) "KEY-SECRET-VALUE-0001";
	tk.cert_pem = (char *)(uintptr_t) "certificate";
	tk.cursor = (char *)(uintptr_t) "cursor-1";
	return store_ade_token_put(t, &tk);
}

struct mi_op {
	const char *udid, *serial;
};

static int
op_mi(struct store_txn *t, void *arg)
{
	struct mi_op		*o = arg;
	struct store_machineinfo mi;

	memset(&mi, 0, sizeof(mi));
	mi.udid = (char *)(uintptr_t)o->udid;
	mi.serial = (char *)(uintptr_t)o->serial;
	return store_machineinfo_put(t, &mi);
}

struct serial_op {
	const char *id;
	char	   *serial;
};

static int
op_serial(struct store_txn *t, void *arg)
{
	struct serial_op *o = arg;

	free(o->serial);
	o->serial = NULL;
	return store_ade_serial_of(t, o->id, &o->serial);
}

struct purge_op {
	const char		 *id;
	int			  token;
	struct store_purge_report r;
};

static int
op_purge(struct store_txn *t, void *arg)
{
	struct purge_op *o = arg;
	const char	*ids[1] = {o->id};

	store_purge_report_free(&o->r);
	return o->token
	    ? store_purge_source(t, STORE_SOURCE_TOKEN, o->id, &o->r)
	    : store_purge_devices(t, ids, 1, &o->r);
}

static uint64_t
removed(const struct store_purge_report *r, const char *db)
{
	size_t i;

	for (i = 0; i < r->ndb; i++)
		if (strcmp(r->db[i], db) == 0)
			return r->removed[i];
	return 0;
}

struct prune_op {
	uint64_t before, n;
};

static int
op_prune(struct store_txn *t, void *arg)
{
	struct prune_op *o = arg;

	return store_ade_prune(t, o->before, &o->n);
}

/* Tombstones synced before the limit go; recent ones and live records
 * stay. */
static void
test_prune(struct store *s)
{
	struct ev d = {
	    "P1", "tokC", "deleted", "2026-01-02T00:00:00Z", "p", 0, 0, 0};
	struct ev l = {
	    "P2", "tokC", "added", "2026-01-02T00:00:00Z", "q", 0, 0, 0};
	struct prune_op po = {0, 0};
	char		b[32];

	apply(s, &d);
	apply(s, &l);
	po.before = 1; /* before every record */
	CHECK_EQ(store_write(s, op_prune, &po), 0);
	CHECK_EQ(po.n, 0);
	CHECK_STR(model_of(s, "P1", b, sizeof(b)), "deleted");
	po.before = UINT64_MAX;
	CHECK_EQ(store_write(s, op_prune, &po), 0);
	CHECK_EQ(po.n, 1);
	CHECK_STR(model_of(s, "P1", b, sizeof(b)), "");
	CHECK_STR(model_of(s, "P2", b, sizeof(b)), "q");
}

static void
test_purge(struct store *s)
{
	struct ev e2 = {
	    "S2", "tokA", "added", "2026-01-02T00:00:00Z", "x", 0, 0, 0};
	struct ev e3 = {
	    "S3", "tokB", "added", "2026-01-02T00:00:00Z", "y", 0, 0, 0};
	struct mi_op	 mi = {"UDID-2", "S2"};
	struct serial_op so = {"UDID-2", NULL};
	struct tok_op	 ta = {"tokA"}, tb = {"tokB"};
	struct purge_op	 p;
	char		*dump = NULL;
	size_t		 n = 0;
	FILE		*f;
	char		 b[32];

	apply(s, &e2);
	apply(s, &e3);
	CHECK_EQ(store_write(s, op_token, &ta), 0);
	CHECK_EQ(store_write(s, op_token, &tb), 0);
	CHECK_EQ(store_write(s, op_mi, &mi), 0);
	CHECK_EQ(problems(s), 0);
	/* Secrets: length and SHA-256 only, without --secrets. */
	CHECK((f = open_memstream(&dump, &n)) != NULL);
	CHECK_EQ(store_dump(s, f, 0, NULL, NULL), 0);
	CHECK(fclose(f) == 0);
	CHECK(strstr(dump, "SECRET-VALUE") == NULL);
	CHECK(strstr(dump, "\"cursor\":\"cursor-1\"") != NULL);
	free(dump);
	/* A device's serial: through its MachineInfo, or an ADE serial. */
	CHECK_EQ(store_read(s, op_serial, &so), 0);
	CHECK_STR(so.serial, "S2");
	so.id = "S3";
	CHECK_EQ(store_read(s, op_serial, &so), 0);
	CHECK_STR(so.serial, "S3");
	so.id = "NOSUCH";
	CHECK_EQ(store_read(s, op_serial, &so), 0);
	CHECK(so.serial == NULL);
	/* Purging the device removes its ADE record. */
	memset(&p, 0, sizeof(p));
	p.id = "UDID-2";
	CHECK_EQ(store_write(s, op_purge, &p), 0);
	CHECK_EQ(removed(&p.r, "ade_device"), 1);
	CHECK_EQ(removed(&p.r, "machineinfo"), 1);
	CHECK_STR(model_of(s, "S2", b, sizeof(b)), "");
	store_purge_report_free(&p.r);
	/* By token: tokA's records and tokA, not tokB's. */
	p.id = "tokA";
	p.token = 1;
	CHECK_EQ(store_write(s, op_purge, &p), 0);
	CHECK_EQ(removed(&p.r, "ade_device"), 1); /* S1 */
	CHECK_EQ(removed(&p.r, "ade_token"), 1);
	CHECK_EQ(removed(&p.r, "device"), 0);
	CHECK_STR(model_of(s, "S1", b, sizeof(b)), "");
	CHECK_STR(model_of(s, "S3", b, sizeof(b)), "y");
	store_purge_report_free(&p.r);
	CHECK_EQ(store_write(s, op_purge, &p), STORE_ENOTFOUND);
	store_purge_report_free(&p.r);
	free(so.serial);
	CHECK_EQ(problems(s), 0);
}

int
main(void)
{
	const char	 *tmp = getenv("PICOMDM_TEST_TMP");
	struct store_opts o;
	struct store	 *s = NULL;
	char		  dir[600];

	snprintf(dir, sizeof(dir), "%s/adestore-%d", tmp ? tmp : "/tmp",
	    (int)getpid());
	reset_dir(dir, 1);
	memset(&o, 0, sizeof(o));
	o.nosync = 1;
	CHECK_EQ(store_open(dir, &o, &s), 0);
	test_apply(s);
	test_each(s);
	test_prune(s);
	test_purge(s);
	store_close(s);
	reset_dir(dir, 0);
	REGRESS_DONE();
}
