/*
 * test-vpp-event - Apps and Books write events in the store
 * (picomdm/store_vpp_event.h) and the clientUserIds picomdm makes
 * (picomdm/vpp_write.h): a finished event applies what did not fail
 * (assignment added or removed with the asset's counts, every licence
 * of a serial revoked, a user created or retired) in the transaction
 * that records it, and only once; token remove takes the events; the
 * store checks clean.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "picomdm/store.h"
#include "picomdm/store_vpp.h"
#include "picomdm/store_vpp_event.h"
#include "picomdm/vpp_write.h"
#include "regress.h"

static void
reset_dir(const char *dir, int fresh)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'%s%s%s", dir,
	    fresh ? " && mkdir -p '" : "", fresh ? dir : "", fresh ? "'" : "");
	CHECK(system(cmd) == 0); /* test code only: not in module/ */
}

struct op {
	const char *text;   /* JSON of the event, or of Apple's asset */
	const char *failed; /* JSON array */
	uint64_t    changed;
	int	    rc;
	json_t	   *out;
	const char *a, *b;
};

static int
op_setup(struct store_txn *t, void *arg)
{
	json_t *tok = json_pack("{s:s, s:s}", "name", "campus", "stoken", "S");
	json_t *as = json_pack("{s:s, s:s, s:i, s:i, s:b}", "adamId", "111",
	    "pricingParam", "STDQ", "assignedCount", 1, "availableCount", 4,
	    "deviceAssignable", 1);
	json_t *x = json_pack("{s:s, s:s, s:s}", "adamId", "222",
	    "pricingParam", "STDQ", "serialNumber", "SERIAL0002");
	int	rc;

	(void)arg;
	rc = store_vpp_token_put(t, tok);
	if (rc == 0)
		rc = store_vpp_put(t, STORE_VPP_ASSETS, "campus", as);
	if (rc == 0)
		rc = store_vpp_put(t, STORE_VPP_ASSIGNMENTS, "campus", x);
	json_decref(tok);
	json_decref(as);
	json_decref(x);
	return rc;
}

static int
op_finish(struct store_txn *t, void *arg)
{
	struct op *o = arg;
	json_t	  *rec = json_loads(o->text, 0, NULL);
	json_t	  *failed = json_loads(o->failed, 0, NULL);
	int	   rc;

	rc = store_vpp_event_finish(t, "campus", rec, failed, &o->changed);
	json_decref(rec);
	json_decref(failed);
	return rc;
}

static int
op_assigned(struct store_txn *t, void *arg)
{
	struct op *o = arg;

	o->rc = store_vpp_assigned(t, "campus", 0, o->a, o->b);
	return 0;
}

static int
op_assets(struct store_txn *t, void *arg)
{
	struct op *o = arg;

	json_decref(o->out);
	return store_vpp_assets_of(t, "campus", o->a, &o->out);
}

static int
op_user(struct store_txn *t, void *arg)
{
	struct op *o = arg;

	json_decref(o->out);
	o->out = NULL;
	return store_vpp_user_get(t, "campus", o->a, &o->out);
}

static int
op_event(struct store_txn *t, void *arg)
{
	struct op *o = arg;

	json_decref(o->out);
	o->out = NULL;
	return store_vpp_event_get(t, "campus", o->a, &o->out);
}

static int
op_remove(struct store_txn *t, void *arg)
{
	struct op *o = arg;

	return store_vpp_token_remove(t, "campus", &o->changed);
}

static int
assigned(struct store *s, const char *serial, const char *adam)
{
	struct op o = { 0 };

	o.a = serial;
	o.b = adam;
	CHECK_EQ(store_read(s, op_assigned, &o), 0);
	return o.rc;
}

/* "assigned|available" of asset 111. */
static void
counts(struct store *s, const char *want)
{
	struct op o = { 0 };
	char	  got[64];
	json_t	 *a;

	o.a = "111";
	CHECK_EQ(store_read(s, op_assets, &o), 0);
	CHECK_EQ(json_array_size(o.out), 1);
	a = json_array_get(o.out, 0);
	snprintf(got, sizeof got, "%lld|%lld",
	    (long long)json_integer_value(json_object_get(a, "assigned_count")),
	    (long long)json_integer_value(json_object_get(a,
	    "available_count")));
	CHECK_STR(got, want);
	json_decref(o.out);
}

static uint64_t
finish(struct store *s, const char *text, const char *failed)
{
	struct op o = { 0 };

	o.text = text;
	o.failed = failed;
	CHECK_EQ(store_write(s, op_finish, &o), 0);
	return o.changed;
}

static void
test_guid(void)
{
	char a[37], b[37];

	CHECK_EQ(vpp_client_user_id(a), 0);
	CHECK_EQ(vpp_client_user_id(b), 0);
	CHECK(strcmp(a, b) != 0);
	CHECK(vpp_guid_ok(a));
	CHECK_EQ(a[14], '4');
	CHECK(strchr("89ab", a[19]) != NULL);
	CHECK(vpp_guid_ok("0B2A6A3C-0000-4000-8000-000000000000"));
	CHECK(!vpp_guid_ok("0b2a6a3c-0000-4000-8000-00000000000"));
	CHECK(!vpp_guid_ok("0b2a6a3c-0000-4000-8000-0000000000000"));
	CHECK(!vpp_guid_ok("0b2a6a3c_0000-4000-8000-000000000000"));
	CHECK(!vpp_guid_ok("0b2a6a3c-0000-4000-8000-00000000000g"));
	CHECK(!vpp_guid_ok(""));
}

static void
test_events(struct store *s)
{
	struct op o = { 0 };

	CHECK_EQ(store_write(s, op_setup, NULL), 0);
	counts(s, "1|4");
	/* Associate two serials, one failed: only the other is applied. */
	CHECK_EQ(finish(s, "{\"event_id\":\"e1\",\"type\":\"ASSOCIATE\","
	    "\"item_kind\":\"serial\",\"items\":\"[\\\"SERIAL0001\\\","
	    "\\\"SERIAL0003\\\"]\",\"adam_id\":\"111\",\"pricing_param\":"
	    "\"STDQ\",\"status\":\"COMPLETE\",\"failures\":\"[]\"}",
	    "[\"SERIAL0003\"]"), 2);
	CHECK_EQ(assigned(s, "SERIAL0001", "111"), 1);
	CHECK_EQ(assigned(s, "SERIAL0003", "111"), 0);
	counts(s, "2|3");
	/* The same event again (a second poller): applied once only. */
	CHECK_EQ(finish(s, "{\"event_id\":\"e1\",\"type\":\"ASSOCIATE\","
	    "\"item_kind\":\"serial\",\"items\":\"[\\\"SERIAL0003\\\"]\","
	    "\"adam_id\":\"111\",\"pricing_param\":\"STDQ\",\"status\":"
	    "\"COMPLETE\"}", "[]"), 0);
	CHECK_EQ(assigned(s, "SERIAL0003", "111"), 0);
	o.a = "e1";
	CHECK_EQ(store_read(s, op_event, &o), 0);
	CHECK_STR(json_string_value(json_object_get(o.out, "items")),
	    "[\"SERIAL0001\",\"SERIAL0003\"]");
	/* Every item failed: nothing applied, the event recorded. */
	CHECK_EQ(finish(s, "{\"event_id\":\"e2\",\"type\":\"DISASSOCIATE\","
	    "\"item_kind\":\"serial\",\"items\":\"[\\\"SERIAL0001\\\"]\","
	    "\"adam_id\":\"111\",\"pricing_param\":\"STDQ\",\"status\":"
	    "\"FAILED\"}", "[\"SERIAL0001\"]"), 0);
	CHECK_EQ(assigned(s, "SERIAL0001", "111"), 1);
	o.a = "e2";
	CHECK_EQ(store_read(s, op_event, &o), 0);
	CHECK_STR(json_string_value(json_object_get(o.out, "status")),
	    "FAILED");
	/* Disassociate: gone, the counts back. */
	CHECK_EQ(finish(s, "{\"event_id\":\"e3\",\"type\":\"DISASSOCIATE\","
	    "\"item_kind\":\"serial\",\"items\":\"[\\\"SERIAL0001\\\"]\","
	    "\"adam_id\":\"111\",\"pricing_param\":\"STDQ\",\"status\":"
	    "\"COMPLETE\"}", "[]"), 2);
	CHECK_EQ(assigned(s, "SERIAL0001", "111"), 0);
	counts(s, "1|4");
	/* Revoke: every licence of the serial (asset 222 has no record:
	 * no count to change). */
	CHECK_EQ(finish(s, "{\"event_id\":\"e4\",\"type\":\"ASSOCIATE\","
	    "\"item_kind\":\"serial\",\"items\":\"[\\\"SERIAL0002\\\"]\","
	    "\"adam_id\":\"111\",\"pricing_param\":\"STDQ\",\"status\":"
	    "\"COMPLETE\"}", "[]"), 2);
	CHECK_EQ(finish(s, "{\"event_id\":\"e5\",\"type\":\"REVOKE\","
	    "\"item_kind\":\"serial\",\"items\":\"[\\\"SERIAL0002\\\"]\","
	    "\"status\":\"COMPLETE\"}", "[]"), 3);
	CHECK_EQ(assigned(s, "SERIAL0002", "111"), 0);
	CHECK_EQ(assigned(s, "SERIAL0002", "222"), 0);
	counts(s, "1|4");
	/* Users: created Registered with the email, then retired. */
	CHECK_EQ(finish(s, "{\"event_id\":\"e6\",\"type\":\"CREATE\","
	    "\"item_kind\":\"user\",\"items\":\"[\\\"0b2a6a3c-0000-4000-"
	    "8000-000000000001\\\"]\",\"email\":\"a@example.com\","
	    "\"status\":\"COMPLETE\"}", "[]"), 1);
	o.a = "0b2a6a3c-0000-4000-8000-000000000001";
	CHECK_EQ(store_read(s, op_user, &o), 0);
	CHECK_STR(json_string_value(json_object_get(o.out, "status")),
	    "Registered");
	CHECK_STR(json_string_value(json_object_get(o.out, "email")),
	    "a@example.com");
	CHECK_EQ(finish(s, "{\"event_id\":\"e7\",\"type\":\"RETIRE\","
	    "\"item_kind\":\"user\",\"items\":\"[\\\"0b2a6a3c-0000-4000-"
	    "8000-000000000001\\\"]\",\"status\":\"COMPLETE\"}", "[]"), 1);
	CHECK_EQ(store_read(s, op_user, &o), 0);
	CHECK_STR(json_string_value(json_object_get(o.out, "status")),
	    "Retired");
	json_decref(o.out);
	o.out = NULL;
	/* A bad event changes nothing. */
	o.text = "{\"type\":\"CREATE\",\"item_kind\":\"user\"}";
	o.failed = "[]";
	CHECK_EQ(store_write(s, op_finish, &o), STORE_EINVAL);
	o.text = "{\"event_id\":\"e8\",\"type\":\"ASSOCIATE\",\"item_kind\":"
	    "\"serial\",\"items\":\"[\\\"SERIAL0001\\\"]\",\"status\":"
	    "\"COMPLETE\"}"; /* no adam_id */
	CHECK_EQ(store_write(s, op_finish, &o), STORE_EINVAL);
	o.a = "e8";
	CHECK_EQ(store_read(s, op_event, &o), STORE_ENOTFOUND);
	{
		struct store_check_count c;

		CHECK_EQ(store_check(s, 0, NULL, NULL, NULL, &c), 0);
		CHECK_EQ(c.problems, 0);
	}
	/* token remove takes the 7 events with the assets, assignments
	 * and users (1 asset, 1 user left). */
	CHECK_EQ(store_write(s, op_remove, &o), 0);
	CHECK_EQ(o.changed, 9);
	o.a = "e1";
	CHECK_EQ(store_read(s, op_event, &o), STORE_ENOTFOUND);
}

int
main(void)
{
	const char	 *tmp = getenv("PICOMDM_TEST_TMP");
	struct store_opts o;
	struct store	 *s = NULL;
	char		  dir[600];

	test_guid();
	snprintf(dir, sizeof(dir), "%s/vppevent-%d", tmp ? tmp : "/tmp",
	    (int)getpid());
	reset_dir(dir, 1);
	memset(&o, 0, sizeof(o));
	o.nosync = 1;
	CHECK_EQ(store_open(dir, &o, &s), 0);
	test_events(s);
	store_close(s);
	reset_dir(dir, 0);
	REGRESS_DONE();
}
