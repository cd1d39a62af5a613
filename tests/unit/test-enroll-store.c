/*
 * test-enroll-store.c - the records enrollment writes
 * (picomdm/store_enroll.h): one-time tokens used once, refused when used,
 * expired or unknown, pruned; MachineInfo in the inventory under ADE and
 * gone after a purge of its UDID; both kinds through dump and restore,
 * byte for byte, and checked clean.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "picomdm/inventory.h"
#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "picomdm/util.h"
#include "regress.h"

#define UDID "00008030-00TEST00000001"

static void
fresh_dir(char *dir, size_t n, const char *name)
{
	const char *tmp = getenv("PICOMDM_TEST_TMP");
	char	    cmd[1200];

	snprintf(dir, n, "%s/enrstore-%s-%d", tmp ? tmp : "/tmp", name,
	    (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	CHECK(system(cmd) == 0); /* test code only: not in module/ */
}

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
problems(struct store *s)
{
	struct store_check_count c;

	CHECK_EQ(store_check(s, 0, NULL, NULL, NULL, &c), 0);
	return (int)c.problems;
}

/* ---- tokens ---- */

struct tok_op {
	const char *token;
	uint64_t    expires_at;
	const char *note;
	int	    rc;
};

static void
hash_of(const char *token, unsigned char h[32])
{
	sha256(token, strlen(token), h);
}

static int
op_tok_put(struct store_txn *t, void *arg)
{
	struct tok_op		 *o = arg;
	struct store_enroll_token tk;

	memset(&tk, 0, sizeof(tk));
	hash_of(o->token, tk.hash);
	tk.has_hash = 1;
	tk.expires_at = o->expires_at;
	tk.note = (char *)(uintptr_t)o->note;
	return store_enroll_token_put(t, &tk);
}

static int
op_chal_put(struct store_txn *t, void *arg)
{
	struct tok_op		 *o = arg;
	struct store_enroll_token tk;

	memset(&tk, 0, sizeof(tk));
	hash_of(o->token, tk.hash);
	tk.has_hash = 1;
	tk.expires_at = o->expires_at;
	tk.purpose = (char *)(uintptr_t)STORE_TOKEN_SCEP;
	return store_enroll_token_put(t, &tk);
}

/* The use's own result in o->rc (o->note: the purpose, NULL a token); the write commits whatever it did. */
static int
op_tok_use(struct store_txn *t, void *arg)
{
	struct tok_op *o = arg;
	unsigned char  h[32];

	hash_of(o->token, h);
	o->rc = store_enroll_token_use(t, h, o->note);
	return o->rc == 0 || o->rc == STORE_EINVAL || o->rc == STORE_ENOTFOUND
	    ? 0
	    : o->rc;
}

/* Use as an enrollment token (purpose NULL) or for purpose. */
static int
use_for(struct store *s, const char *token, const char *purpose)
{
	struct tok_op o = {token, 0, purpose, 1};

	CHECK_EQ(store_write(s, op_tok_use, &o), 0);
	return o.rc;
}

static int
use(struct store *s, const char *token)
{
	struct tok_op o = {token, 0, NULL, 1};

	CHECK_EQ(store_write(s, op_tok_use, &o), 0);
	return o.rc;
}

static int
count_cb(const struct store_enroll_token *tk, void *arg)
{
	(void)tk;
	(*(int *)arg)++;
	return 0;
}

static int
op_tok_count(struct store_txn *t, void *arg)
{
	*(int *)arg = 0;
	return store_enroll_token_each(t, count_cb, arg);
}

static int
op_tok_prune(struct store_txn *t, void *arg)
{
	return store_enroll_token_prune(t, store_txn_now(t), arg);
}

static void
test_tokens(struct store *s)
{
	struct tok_op o;
	uint64_t      now = time_now_us(), removed = 0;
	int	      n = 0;

	o = (struct tok_op){"token-valid", now + 3600000000ull, "desk", 0};
	CHECK_EQ(store_write(s, op_tok_put, &o), 0);
	/* The same token again is refused (it would reset its use). */
	CHECK_EQ(store_write(s, op_tok_put, &o), STORE_EEXIST);
	o = (struct tok_op){"token-expired", now - 1, NULL, 0};
	CHECK_EQ(store_write(s, op_tok_put, &o), 0);
	o = (struct tok_op){"token-kept", now + 3600000000ull, NULL, 0};
	CHECK_EQ(store_write(s, op_tok_put, &o), 0);
	o = (struct tok_op){"token-noexpiry", 0, NULL, 0};
	CHECK_EQ(store_write(s, op_tok_put, &o), STORE_EINVAL);

	CHECK_EQ(use(s, "token-unknown"), STORE_ENOTFOUND);
	CHECK_EQ(use(s, "token-expired"), STORE_EINVAL);
	CHECK_EQ(use(s, "token-valid"), 0);
	CHECK_EQ(use(s, "token-valid"), STORE_EINVAL); /* single use */

	CHECK_EQ(store_read(s, op_tok_count, &n), 0);
	CHECK_EQ(n, 3);
	/* Prune: the used and the expired go, the unused one stays and
	 * can still be used once. */
	CHECK_EQ(store_write(s, op_tok_prune, &removed), 0);
	CHECK_EQ(removed, 2);
	CHECK_EQ(store_read(s, op_tok_count, &n), 0);
	CHECK_EQ(n, 1);
	CHECK_EQ(use(s, "token-kept"), 0);
	CHECK_EQ(use(s, "token-kept"), STORE_EINVAL);
	o = (struct tok_op){"token-live", now + 3600000000ull, "live", 0};
	CHECK_EQ(store_write(s, op_tok_put, &o), 0);

	/* An issued SCEP challenge is no enrollment token, nor the other
	 * way round. */
	o = (struct tok_op){"challenge-1", now + 3600000000ull, NULL, 0};
	CHECK_EQ(store_write(s, op_chal_put, &o), 0);
	CHECK_EQ(use(s, "challenge-1"), STORE_ENOTFOUND);
	CHECK_EQ(use_for(s, "token-live", STORE_TOKEN_SCEP), STORE_ENOTFOUND);
	CHECK_EQ(use_for(s, "challenge-1", STORE_TOKEN_SCEP), 0);
	CHECK_EQ(use_for(s, "challenge-1", STORE_TOKEN_SCEP), STORE_EINVAL);
}

/* ---- MachineInfo ---- */

static int
op_mi_put(struct store_txn *t, void *arg)
{
	struct store_machineinfo mi = {(char *)(uintptr_t)UDID,
	    (char *)(uintptr_t)"C02ENRSTORE1", (char *)(uintptr_t)"iPad13,1",
	    (char *)(uintptr_t)"21F90", NULL, NULL, (char *)(uintptr_t)"de",
	    0};

	(void)arg;
	return store_machineinfo_put(t, &mi);
}

static int
op_inventory(struct store_txn *t, void *arg)
{
	return inventory_device(t, UDID, arg);
}

/* The MachineInfo field's value in the inventory, or NULL. */
static const char *
mi_value(json_t *inv, const char *field)
{
	json_t *svc, *row;
	size_t	i, j;

	json_array_foreach(json_object_get(inv, "services"), i, svc)
	{
		if (strcmp(json_string_value(json_object_get(svc, "service")),
			"ADE") != 0)
			continue;
		json_array_foreach(json_object_get(svc, "fields"), j, row)
		{
			if (strcmp(json_string_value(json_object_get(
				       row, "message")),
				"MachineInfo") == 0 &&
			    strcmp(json_string_value(
				       json_object_get(row, "field")),
				field) == 0)
				return json_string_value(
				    json_object_get(row, "value"));
		}
	}
	return NULL;
}

struct purge_op {
	struct store_purge_report r;
};

static int
op_purge(struct store_txn *t, void *arg)
{
	struct purge_op *p = arg;
	const char	*ids[1] = {UDID};

	return store_purge_devices(t, ids, 1, &p->r);
}

static void
test_machineinfo(struct store *s)
{
	json_t *inv = NULL;

	CHECK_EQ(store_write(s, op_mi_put, NULL), 0);
	CHECK_EQ(store_read(s, op_inventory, &inv), 0);
	CHECK(inv != NULL);
	if (inv != NULL) {
		CHECK_STR(mi_value(inv, "UDID"), UDID);
		CHECK_STR(mi_value(inv, "SERIAL"), "C02ENRSTORE1");
		CHECK_STR(mi_value(inv, "PRODUCT"), "iPad13,1");
		CHECK_STR(mi_value(inv, "LANGUAGE"), "de");
		CHECK(mi_value(inv, "IMEI") == NULL); /* not sent */
		CHECK_STR(json_string_value(json_object_get(inv,
			      "serial_number")),
		    "C02ENRSTORE1");
	}
	json_decref(inv);
}

static void
test_purge(struct store *s)
{
	struct purge_op p;
	json_t	       *inv = NULL;

	memset(&p, 0, sizeof(p));
	CHECK_EQ(store_write(s, op_purge, &p), 0);
	CHECK_EQ(p.r.ndevices, 1);
	store_purge_report_free(&p.r);
	CHECK_EQ(store_read(s, op_inventory, &inv), STORE_ENOTFOUND);
	json_decref(inv);
	/* Nothing left to purge. */
	memset(&p, 0, sizeof(p));
	CHECK_EQ(store_write(s, op_purge, &p), STORE_ENOTFOUND);
	store_purge_report_free(&p.r);
}

/* ---- dump and restore ---- */

static void
test_dump_restore(struct store *s)
{
	struct store *s2;
	char	      dir[600], err[200], hex[65];
	unsigned char h[32];
	char	     *d1, *d2, *plain;
	size_t	      n1, n2, pn;
	uint64_t      recs = 0;

	d1 = dump_mem(s, STORE_DUMP_SECRETS, &n1);
	CHECK(memmem(d1, n1, "\"db\":\"machineinfo\"", 18) != NULL);
	CHECK(memmem(d1, n1, "\"db\":\"enrollment_token\"", 23) != NULL);
	CHECK(memmem(d1, n1, "C02ENRSTORE1", 12) != NULL);
	/* A token is keyed by its SHA-256; the token is in no dump. */
	hash_of("token-live", h);
	hex_encode(h, 32, hex);
	CHECK(memmem(d1, n1, hex, 64) != NULL);
	CHECK(memmem(d1, n1, "token-live", 10) == NULL);
	plain = dump_mem(s, 0, &pn);
	CHECK(memmem(plain, pn, "token-live", 10) == NULL);
	CHECK(memmem(plain, pn, "C02ENRSTORE1", 12) != NULL);

	fresh_dir(dir, sizeof(dir), "restore");
	s2 = open_at(dir);
	CHECK_EQ(store_restore(s2, d1, n1, 0, NULL, &recs, err, sizeof(err)),
	    0);
	d2 = dump_mem(s2, STORE_DUMP_SECRETS, &n2);
	CHECK_EQ(n2, n1);
	CHECK(n1 == n2 && memcmp(d1, d2, n1) == 0);
	CHECK_EQ(problems(s2), 0);
	/* The restored token keeps its state: usable once. */
	CHECK_EQ(use(s2, "token-live"), 0);
	CHECK_EQ(use(s2, "token-live"), STORE_EINVAL);
	free(d2);
	store_close(s2);
	remove_dir(dir);
	free(d1);
	free(plain);
}

int
main(void)
{
	struct store *s;
	char	      dir[600];

	fresh_dir(dir, sizeof(dir), "main");
	s = open_at(dir);
	test_tokens(s);
	test_machineinfo(s);
	CHECK_EQ(problems(s), 0);
	test_dump_restore(s);
	test_purge(s);
	CHECK_EQ(problems(s), 0);
	store_close(s);
	remove_dir(dir);
	REGRESS_DONE();
}
