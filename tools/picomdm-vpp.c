/*
 * picomdm-vpp - Apps and Books (VPP): content tokens in the store (token
 * import, list, remove) and the sync of what Apple lists for each (the
 * client configuration, assets, assignments, users) into it, one page
 * with its cursor per transaction so that a sync killed at any point and
 * run again neither skips nor applies a page twice; and, without a
 * store, a token's decoding and the service read as JSON lines. See
 * man/picomdm-vpp.8 and README.md "Apps and Books".
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "extern.h"
#include "picomdm/store.h"
#include "picomdm/store_vpp.h"
#include "picomdm/util.h"
#include "picomdm/vpp.h"
#include "vpp_meta.h"
#include "vpp_tool.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: picomdm-vpp token show FILE.vpptoken\n"
	    "       (every form but token show also takes --config FILE)\n"
	    "       picomdm-vpp --token FILE.vpptoken [--url URL] [--ca FILE]\n"
	    "           [--rps N] [--max-wait SECONDS] config\n"
	    "       picomdm-vpp ... assets\n"
	    "       picomdm-vpp ... assignments|users [--since VERSIONID]\n"
	    "       picomdm-vpp --db DIR token import NAME FILE.vpptoken\n"
	    "       picomdm-vpp --db DIR token list\n"
	    "       picomdm-vpp --db DIR token remove NAME [--purge]\n"
	    "       picomdm-vpp --db DIR [--url URL] [--ca FILE] [--rps N]\n"
	    "           [--max-wait SECONDS] [--mdm-id ID] [--force]\n"
	    "           [--meta-max-age SECONDS] [--v1] [--v1-url URL] sync [NAME]\n"
	    "       picomdm-vpp --db DIR [--url URL] [--ca FILE] [--rps N]\n"
	    "           [--meta-max-age SECONDS] [--refresh] meta [NAME]\n"
	    "       picomdm-vpp --db DIR assets|assignments|users|metadata "
	    "[NAME]\n"
	    "       picomdm-vpp --db DIR [--token NAME] [--no-wait]\n"
	    "           [--wait SECONDS] [--poll-interval SECONDS] [--force]\n"
	    "           assign|unassign ADAMID --serial SERIAL...|--user GUID...\n"
	    "       picomdm-vpp ... revoke --serial SERIAL...|--user GUID...\n"
	    "       picomdm-vpp ... user create [--email E] [--managed-apple-id X]\n"
	    "       picomdm-vpp ... user retire GUID...\n"
	    "       picomdm-vpp ... poll [EVENTID]\n"
	    "       picomdm-vpp --db DIR [--token NAME] events [--pending]\n");
	exit(2);
}

static int
print_line(json_t *x, void *arg)
{
	char *s = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS);

	(void)arg;
	if (s == NULL)
		return -1;
	puts(s);
	free(s);
	return 0;
}

static int
load(const char *path, struct vpp_token *t)
{
	char err[512];

	if (vpp_token_load(path, (int64_t)time(NULL), t, err,
	    sizeof err) != 0) {
		fprintf(stderr, "picomdm-vpp: %s\n", err);
		return -1;
	}
	return 0;
}

static void
warn_expiry(const struct vpp_token *t)
{
	long d = vpp_token_days_left(t, (int64_t)time(NULL));

	if (d < VPP_WARN_DAYS)
		fprintf(stderr, "picomdm-vpp: warning: the token of %s "
		    "expires in %ld day%s (%s)\n", t->org, d, d == 1 ? "" : "s",
		    t->exp_text);
}

static int
token_show(const char *path)
{
	struct vpp_token t;
	json_t          *o;

	if (load(path, &t) != 0)
		return 1;
	o = json_pack("{s:s, s:s?, s:s, s:I}", "org", t.org, "location",
	    t.location, "expires", t.exp_text, "days_left",
	    (json_int_t)vpp_token_days_left(&t, (int64_t)time(NULL)));
	print_line(o, NULL);
	json_decref(o);
	warn_expiry(&t);
	vpp_token_free(&t);
	return 0;
}

static int
fail(const struct vpp_error *e)
{
	fprintf(stderr, "picomdm-vpp: %s\n", e->message);
	return vpp_token_error(e->number) != NULL ? 3 : 1;
}


/* ---- the store (--db) ---- */

static struct store *db;
static const char   *db_dir;

static int
db_fail(int rc, const char *what)
{
	fprintf(stderr, "picomdm-vpp: %s: %s\n", what, store_strerror(rc));
	return 1;
}

static int
db_open(const char *dir, int readonly)
{
	struct store_opts so = { 0 };
	int		  rc;

	so.readonly = readonly;
	db_dir = dir;
	if ((rc = store_open(dir, &so, &db)) != 0) {
		fprintf(stderr, "picomdm-vpp: %s: %s\n", dir,
		    store_strerror(rc));
		return -1;
	}
	return 0;
}

/* A token's name: what a key and a file name can hold. */
static int
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= 'A' && *s <= 'Z') || *s == '-' || *s == '_' ||
		    *s == '.'))
			return 0;
	return 1;
}

static json_t *
now_json(void)
{
	char	  b[64];
	time_t	  s = time(NULL);
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
	return json_string(b);
}

struct import_op {
	json_t *rec;
	int	replaced;
};

static int
import_op(struct store_txn *t, void *arg)
{
	struct import_op *io = arg;
	json_t		 *old = NULL;
	const char	 *keep[] = { "location", "country", "uid",
		"assignments_version", "users_version", "synced_at",
		"cursor_list", "cursor_page", "cursor_since", "cursor_version",
		"org_id", "org_id_hash", "facilitator_member_id", "location_id",
		"licences_since", "licences_batch", NULL };
	int		  rc, i;

	io->replaced = 0;
	rc = store_vpp_token_get(t,
	    json_string_value(json_object_get(io->rec, "name")), 1, &old);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	if (rc == 0) {
		/* Same organisation: a renewed token keeps its sync. */
		io->replaced = 1;
		if (json_equal(json_object_get(old, "org"),
		    json_object_get(io->rec, "org")))
			for (i = 0; keep[i] != NULL; i++)
				if (json_object_get(old, keep[i]) != NULL)
					json_object_set(io->rec, keep[i],
					    json_object_get(old, keep[i]));
		json_decref(old);
	}
	return store_vpp_token_put(t, io->rec);
}

static int
token_import(const char *name, const char *path)
{
	struct import_op io = { 0 };
	struct vpp_token t;
	json_t		*o;
	int		 rc;

	if (!name_ok(name)) {
		fprintf(stderr, "picomdm-vpp: token name %s: 1 to 64 of "
		    "A-Z a-z 0-9 . _ -\n", name);
		return 2;
	}
	if (load(path, &t) != 0)
		return 1;
	io.rec = json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", name,
	    "stoken", t.stoken, "org", t.org, "expires", t.exp_text,
	    "imported_at", now_json());
	if (io.rec != NULL && t.location != NULL)
		json_object_set_new(io.rec, "location",
		    json_string(t.location));
	rc = io.rec == NULL ? STORE_ENOMEM : store_write(db, import_op, &io);
	if (io.rec != NULL) {
		json_object_del(io.rec, "stoken");
		json_decref(io.rec);
	}
	if (rc != 0) {
		vpp_token_free(&t);
		return db_fail(rc, "token import");
	}
	o = json_pack("{s:s, s:s, s:s?, s:s, s:I, s:b}", "name", name, "org",
	    t.org, "location", t.location, "expires", t.exp_text, "days_left",
	    (json_int_t)vpp_token_days_left(&t, (int64_t)time(NULL)),
	    "replaced", io.replaced);
	print_line(o, NULL);
	json_decref(o);
	warn_expiry(&t);
	vpp_token_free(&t);
	return 0;
}

struct list_op {
	json_t *all;
};

static int
list_cb(json_t *rec, void *arg)
{
	struct list_op *lo = arg;

	return json_array_append(lo->all, rec) == 0 ? 0 : STORE_ENOMEM;
}

static int
list_op(struct store_txn *t, void *arg)
{
	struct list_op *lo = arg;
	json_t	       *x;
	size_t		i, n;
	int		rc;

	json_array_clear(lo->all);
	if ((rc = store_vpp_token_each(t, list_cb, lo)) != 0)
		return rc;
	json_array_foreach(lo->all, i, x) {
		if ((rc = store_vpp_count(t, json_string_value(
		    json_object_get(x, "name")), &n)) != 0)
			return rc;
		json_object_set_new(x, "records", json_integer((json_int_t)n));
	}
	return 0;
}

static int
token_list(void)
{
	struct list_op lo;
	json_t	      *x, *o;
	size_t	       i;
	int64_t	       exp;
	long	       d;
	int	       rc;

	if ((lo.all = json_array()) == NULL)
		return db_fail(STORE_ENOMEM, "token list");
	if ((rc = store_read(db, list_op, &lo)) != 0) {
		json_decref(lo.all);
		return db_fail(rc, "token list");
	}
	json_array_foreach(lo.all, i, x) {
		const char *e = json_string_value(json_object_get(x,
		    "expires"));

		d = e != NULL && vpp_time_parse(e, &exp) == 0 ?
		    (long)((exp - (int64_t)time(NULL)) / 86400) : -1;
		o = json_pack("{s:O, s:O, s:O?, s:O?, s:O, s:I, s:O?, s:O}",
		    "name", json_object_get(x, "name"), "org",
		    json_object_get(x, "org"), "location",
		    json_object_get(x, "location"), "country",
		    json_object_get(x, "country"), "expires",
		    json_object_get(x, "expires"), "days_left", (json_int_t)d,
		    "synced_at", json_object_get(x, "synced_at"), "records",
		    json_object_get(x, "records"));
		/* What only v1 gives (sync --v1), when it was read. */
		for (const char *const *k = (const char *const[]){ "org_id",
		    "facilitator_member_id", "location_id", NULL }; *k; k++)
			if (o != NULL && json_object_get(x, *k) != NULL)
				json_object_set(o, *k, json_object_get(x, *k));
		print_line(o, NULL);
		json_decref(o);
		if (d < VPP_WARN_DAYS)
			fprintf(stderr, "picomdm-vpp: warning: token %s "
			    "expires in %ld day%s (%s)\n", json_string_value(
			    json_object_get(x, "name")), d, d == 1 ? "" : "s",
			    e != NULL ? e : "?");
	}
	json_decref(lo.all);
	return 0;
}

struct remove_op {
	const char *name;
	int	    purge;
	size_t	    have;
	uint64_t    removed;
};

static int
remove_op(struct store_txn *t, void *arg)
{
	struct remove_op *ro = arg;
	json_t		 *x;
	int		  rc;

	ro->removed = 0;
	if ((rc = store_vpp_token_get(t, ro->name, 0, &x)) != 0)
		return rc;
	json_decref(x);
	if ((rc = store_vpp_count(t, ro->name, &ro->have)) != 0)
		return rc;
	if (ro->have > 0 && !ro->purge)
		return 1; /* refused: nothing changed */
	return store_vpp_token_remove(t, ro->name, &ro->removed);
}

static int
token_remove(const char *name, int purge)
{
	struct remove_op ro = { name, purge, 0, 0 };
	int		 rc;

	rc = store_write(db, remove_op, &ro);
	if (rc == 1) {
		fprintf(stderr, "picomdm-vpp: token %s has %zu asset, "
		    "assignment, user, metadata and event records: --purge "
		    "removes them with it\n", name, ro.have);
		return 1;
	}
	if (rc == STORE_ENOTFOUND) {
		fprintf(stderr, "picomdm-vpp: no token %s\n", name);
		return 1;
	}
	if (rc != 0)
		return db_fail(rc, "token remove");
	printf("removed token %s and %llu records\n", name,
	    (unsigned long long)ro.removed);
	return 0;
}

/* ---- sync ---- */

static const struct {
	const char	   *name; /* the array, cursor_list */
	const char	   *key;  /* the service configuration's URL */
	enum store_vpp_list list;
	const char	   *version; /* the token's field, or NULL: full */
} lists[] = {
	{ "assets", "getAssets", STORE_VPP_ASSETS, NULL },
	{ "assignments", "getAssignments", STORE_VPP_ASSIGNMENTS,
	  "assignments_version" },
	{ "users", "getUsers", STORE_VPP_USERS, "users_version" },
};
#define NLISTS (sizeof lists / sizeof lists[0])

struct page_op {
	const char *token;
	size_t	    li;
	json_t	   *page;    /* Apple's answer */
	long long   index, total;
	const char *since;   /* NULL: a full listing */
	const char *version; /* the listing's versionId (its first page) */
	const json_t *client; /* the client configuration, or NULL */
	size_t	    written, removed;
	char	    why[160];
};

/*
 * Whether an element of a listing reports its record gone: a user whose
 * status is "Deleted", an assignment marked "deleted": true (how a delta
 * reports a licence taken back; see man/picomdm-vpp.8). Its record is
 * removed from the store in the page's transaction; every other element
 * is written.
 */
static int
removed(enum store_vpp_list l, const json_t *x)
{
	const char *st;

	switch (l) {
	case STORE_VPP_ASSIGNMENTS:
		return json_is_true(json_object_get(x, "deleted"));
	case STORE_VPP_USERS:
		st = json_string_value(json_object_get(x, "status"));
		return st != NULL && strcmp(st, "Deleted") == 0;
	default:
		return 0;
	}
}

/* One page and the token's cursor, in one transaction. */
static int
page_op(struct store_txn *t, void *arg)
{
	struct page_op *po = arg;
	json_t	       *tok, *x;
	size_t		i;
	int		rc;

	po->written = 0;
	po->removed = 0;
	po->why[0] = '\0';
	if ((rc = store_vpp_token_get(t, po->token, 1, &tok)) != 0)
		return rc;
	if (po->client != NULL) {
		static const char *const m[][2] = { { "locationName",
			"location" }, { "countryISO2ACode", "country" },
			{ "uId", "uid" } };

		for (i = 0; i < 3; i++)
			if (json_is_string(x = json_object_get(po->client,
			    m[i][0])))
				json_object_set(tok, m[i][1], x);
		x = json_object_get(json_object_get(po->client, "mdmInfo"),
		    "id");
		if (json_is_string(x))
			json_object_set(tok, "mdm_id", x);
		rc = store_vpp_token_put(t, tok);
		json_decref(tok);
		return rc;
	}
	if (po->index == 0 && po->since == NULL &&
	    (rc = store_vpp_clear(t, lists[po->li].list, po->token, NULL)) !=
	    0)
		goto out;
	if (lists[po->li].list == STORE_VPP_ASSIGNMENTS && po->index == 0 &&
	    po->since == NULL) {
		/* The licence IDs went with the assignments: v1's next
		 * licence listing is a whole one. */
		json_object_del(tok, "licences_since");
		json_object_del(tok, "licences_batch");
	}
	json_array_foreach(json_object_get(po->page, lists[po->li].name), i,
	    x) {
		int gone = 0;

		if (removed(lists[po->li].list, x)) {
			/* Reported gone: out of the store with this page. */
			rc = store_vpp_del(t, lists[po->li].list, po->token, x,
			    &gone);
			po->removed += (size_t)gone;
		} else
			rc = store_vpp_put(t, lists[po->li].list, po->token, x);
		if (rc != 0) {
			char *s = json_dumps(x, JSON_COMPACT);

			snprintf(po->why, sizeof po->why, "%s page %lld: %.100s",
			    lists[po->li].name, po->index, s ? s : "?");
			free(s);
			goto out;
		}
		po->written += !removed(lists[po->li].list, x);
	}
	if (po->index + 1 < po->total) {
		json_object_set_new(tok, "cursor_list",
		    json_string(lists[po->li].name));
		json_object_set_new(tok, "cursor_page",
		    json_integer(po->index + 1));
		if (po->since != NULL)
			json_object_set_new(tok, "cursor_since",
			    json_string(po->since));
		else
			json_object_del(tok, "cursor_since");
		if (po->version != NULL)
			json_object_set_new(tok, "cursor_version",
			    json_string(po->version));
		else
			json_object_del(tok, "cursor_version");
	} else {
		json_object_del(tok, "cursor_list");
		json_object_del(tok, "cursor_page");
		json_object_del(tok, "cursor_since");
		json_object_del(tok, "cursor_version");
		if (lists[po->li].version != NULL && po->version != NULL)
			json_object_set_new(tok, lists[po->li].version,
			    json_string(po->version));
		json_object_set_new(tok, "synced_at", now_json());
	}
	rc = store_vpp_token_put(t, tok);
out:
	json_decref(tok);
	return rc;
}

/* See vpp_tool.h. */
int
tok_op(struct store_txn *t, void *arg)
{
	struct tok_op *to = arg;

	json_decref(to->rec);
	to->rec = NULL;
	return store_vpp_token_get(t, to->name, 1, &to->rec);
}

/* What names this picomdm to Apple as the location's MDM (mdmInfo). */
char mdm_id[101];
int  force;

/*
 * Claim the location for this picomdm: a location no MDM holds is
 * claimed; one another MDM holds is left alone (exit 4) unless --force.
 * *cc is replaced by the configuration the claim answered.
 */
int
claim(struct vpp *v, const char *name, json_t **cc)
{
	struct vpp_error e = { 0 };
	json_t		*mi = json_object_get(*cc, "mdmInfo"), *body, *n;
	const char	*id = json_string_value(json_object_get(mi, "id"));

	if (id != NULL && strcmp(id, mdm_id) == 0)
		return 0;
	if (id != NULL && !force) {
		fprintf(stderr, "picomdm-vpp: %s: the location %s is managed "
		    "by another MDM (%s, id %s); --force takes it over\n",
		    name, json_string_value(json_object_get(*cc,
		    "locationName")) ?: "?", json_string_value(
		    json_object_get(mi, "name")) ?: "?", id);
		return 4;
	}
	body = json_pack("{s:{s:s, s:s, s:s}}", "mdmInfo", "id", mdm_id,
	    "name", "picomdm", "metadata", name);
	n = body != NULL ? vpp_post(v, "clientConfig", body, &e) : NULL;
	json_decref(body);
	if (n == NULL)
		return fail(&e);
	fprintf(stderr, "picomdm-vpp: %s: claimed the location%s%s%s\n", name,
	    id != NULL ? " from " : "", id != NULL ? id : "",
	    id != NULL ? " (--force)" : "");
	json_decref(*cc);
	*cc = n;
	return 0;
}

/* ---- legacy v1 reads (--v1) ---- */

static int v1;

struct v1_op {
	const char   *token;
	const json_t *client;  /* v1's client configuration, or NULL */
	const json_t *batch;   /* a getVPPLicensesSrv answer */
	const char   *next;    /* its batchToken: more to come */
	const char   *since;   /* its sinceModifiedToken: the end */
	size_t	      matched, unmatched;
};

/* A JSON number or string as a string (v1 answers either), or NULL. */
static json_t *
v1_str(const json_t *x)
{
	char b[32];

	if (json_is_string(x) && json_string_length(x) > 0)
		return json_incref((json_t *)(uintptr_t)x);
	if (json_is_integer(x)) {
		snprintf(b, sizeof b, "%lld", (long long)json_integer_value(x));
		return json_string(b);
	}
	return NULL;
}

/* v1's client configuration onto the token, or a batch of licences onto
 * their assignments with the token's licence cursor, in one
 * transaction. */
static int
v1_op(struct store_txn *t, void *arg)
{
	struct v1_op *vo = arg;
	json_t	     *tok, *x, *key, *f, *id;
	const char   *adam, *who;
	size_t	      i;
	int	      rc = 0, found;

	vo->matched = vo->unmatched = 0;
	if ((rc = store_vpp_token_get(t, vo->token, 1, &tok)) != 0)
		return rc;
	if (vo->client != NULL) {
		static const char *const m[][2] = {
			{ "organizationId", "org_id" },
			{ "organizationIdHash", "org_id_hash" },
			{ "facilitatorMemberId", "facilitator_member_id" } };

		for (i = 0; i < 3; i++)
			if ((x = v1_str(json_object_get(vo->client,
			    m[i][0]))) != NULL)
				json_object_set_new(tok, m[i][1], x);
		if ((x = v1_str(json_object_get(json_object_get(vo->client,
		    "location"), "locationId"))) != NULL)
			json_object_set_new(tok, "location_id", x);
		goto put;
	}
	json_array_foreach(json_object_get(vo->batch, "licenses"), i, x) {
		adam = json_string_value(json_object_get(x, "adamIdStr"));
		who = json_string_value(json_object_get(x, "serialNumber"));
		id = v1_str(json_object_get(x, "licenseIdStr"));
		if (adam == NULL || id == NULL) {
			json_decref(id);
			vo->unmatched++;
			continue;
		}
		key = who != NULL ?
		    json_pack("{s:s, s:s}", "adamId", adam, "serialNumber", who) :
		    json_pack("{s:s, s:s?}", "adamId", adam, "clientUserId",
		    json_string_value(json_object_get(x, "clientUserIdStr")));
		f = json_pack("{s:o}", "license_id", id);
		rc = key != NULL && f != NULL ? store_vpp_annotate(t,
		    STORE_VPP_ASSIGNMENTS, vo->token, key, f, &found) :
		    STORE_ENOMEM;
		json_decref(key);
		json_decref(f);
		if (rc == STORE_EINVAL) {
			/* No serial or user: no assignment to hold it. */
			rc = 0;
			found = 0;
		}
		if (rc != 0)
			goto out;
		if (found)
			vo->matched++;
		else
			vo->unmatched++;
	}
	if (vo->next != NULL)
		json_object_set_new(tok, "licences_batch", json_string(vo->next));
	else {
		json_object_del(tok, "licences_batch");
		if (vo->since != NULL)
			json_object_set_new(tok, "licences_since",
			    json_string(vo->since));
	}
put:
	rc = store_vpp_token_put(t, tok);
out:
	json_decref(tok);
	return rc;
}

/*
 * What only the legacy v1 API carries, read after the v2 listings: the
 * organisation, facilitator member and location IDs onto the token, and
 * the licence ID of each assignment. Licences are listed by batchToken,
 * each batch written with the next batchToken in one transaction (a
 * killed sync resumes at it); the last answer's sinceModifiedToken makes
 * the next listing a delta, unless a whole v2 assignment listing has
 * since replaced the assignments (page_op drops it).
 */
static int
sync_v1(struct vpp *v, const char *name)
{
	struct tok_op	 to = { name, NULL };
	struct v1_op	 vo = { 0 };
	struct vpp_error e = { 0 };
	json_t		*cc, *body, *b;
	const char	*batch, *since;
	char		*prev = NULL;
	size_t		 matched = 0, unmatched = 0, n;
	int		 rc, resumed;

	vo.token = name;
	if ((cc = vpp_v1_post(v, "clientConfigSrvUrl", NULL, &e)) == NULL)
		return fail(&e);
	vo.client = cc;
	rc = store_write(db, v1_op, &vo);
	json_decref(cc);
	vo.client = NULL;
	if (rc != 0)
		return db_fail(rc, "sync --v1");
	if ((rc = store_read(db, tok_op, &to)) != 0)
		return db_fail(rc, "sync --v1");
	batch = json_string_value(json_object_get(to.rec, "licences_batch"));
	since = json_string_value(json_object_get(to.rec, "licences_since"));
	resumed = batch != NULL;
	for (n = 0;; n++) {
		body = json_pack("{s:b}", "assignedOnly", 1);
		if (body != NULL && batch != NULL)
			json_object_set_new(body, "batchToken",
			    json_string(batch));
		else if (body != NULL && since != NULL)
			json_object_set_new(body, "sinceModifiedToken",
			    json_string(since));
		b = body != NULL ? vpp_v1_post(v, "getLicensesSrvUrl", body,
		    &e) : NULL;
		json_decref(body);
		if (b == NULL) {
			rc = body == NULL ? db_fail(STORE_ENOMEM, "sync --v1") :
			    fail(&e);
			break;
		}
		vo.batch = b;
		vo.next = json_string_value(json_object_get(b, "batchToken"));
		vo.since = json_string_value(json_object_get(b,
		    "sinceModifiedToken"));
		if (!json_is_array(json_object_get(b, "licenses")) ||
		    (vo.next == NULL && vo.since == NULL) ||
		    (vo.next != NULL && prev != NULL &&
		    strcmp(vo.next, prev) == 0) || n > 1000000) {
			fprintf(stderr, "picomdm-vpp: %s: v1 licences: an "
			    "answer without licenses, or with neither a new "
			    "batchToken nor a sinceModifiedToken\n", name);
			json_decref(b);
			rc = 1;
			break;
		}
		rc = store_write(db, v1_op, &vo);
		matched += vo.matched;
		unmatched += vo.unmatched;
		free(prev);
		prev = vo.next != NULL ? strdup(vo.next) : NULL;
		json_decref(b);
		if (rc != 0) {
			rc = db_fail(rc, "sync --v1");
			break;
		}
		if (prev == NULL)
			break;
		batch = prev;
	}
	if (rc == 0)
		fprintf(stderr, "picomdm-vpp: %s: v1 licences: %zu licence IDs "
		    "onto assignments, %zu without one%s%s\n", name, matched,
		    unmatched, since != NULL && !resumed ? ", modified since " :
		    "", resumed ? " (resumed)" : since != NULL ? since : "");
	free(prev);
	json_decref(to.rec);
	return rc;
}

static int
sync_one(const char *name, const struct vpp_opts *o)
{
	struct tok_op	 to = { name, NULL };
	struct page_op	 po;
	struct vpp_token vt = { 0 };
	struct vpp_error e = { 0 };
	struct vpp	*v;
	json_t		*cc;
	const char	*cl;
	char		*since = NULL, *version = NULL;
	long long	 start;
	size_t		 li, first = 0, n, gone;
	int		 rc = 0;

	if ((rc = store_read(db, tok_op, &to)) != 0) {
		if (rc == STORE_ENOTFOUND) {
			fprintf(stderr, "picomdm-vpp: no token %s\n", name);
			return 1;
		}
		return db_fail(rc, "sync");
	}
	vt.stoken = (char *)(uintptr_t)json_string_value(json_object_get(
	    to.rec, "stoken"));
	vt.org = (char *)(uintptr_t)json_string_value(json_object_get(to.rec,
	    "org"));
	if (vt.stoken == NULL || (v = vpp_new(&vt, o)) == NULL) {
		json_decref(to.rec);
		fprintf(stderr, "picomdm-vpp: %s: out of memory or no sToken\n",
		    name);
		return 1;
	}
	/* The service configuration first (vpp_get reads it), then the
	 * client configuration for the token's location. */
	memset(&po, 0, sizeof po);
	po.token = name;
	if ((cc = vpp_get(v, "clientConfig", NULL, &e)) == NULL) {
		rc = fail(&e);
		goto out;
	}
	if ((rc = claim(v, name, &cc)) != 0) {
		json_decref(cc);
		goto out;
	}
	po.client = cc;
	rc = store_write(db, page_op, &po);
	json_decref(cc);
	po.client = NULL;
	if (rc != 0) {
		rc = db_fail(rc, "sync");
		goto out;
	}
	/* Resume a listing a sync left half done, at the page after the
	 * last one written. */
	cl = json_string_value(json_object_get(to.rec, "cursor_list"));
	for (li = 0; cl != NULL && li < NLISTS; li++)
		if (strcmp(lists[li].name, cl) == 0)
			first = li;
	for (li = first; li < NLISTS && rc == 0; li++) {
		int resume = cl != NULL && li == first;

		free(since);
		free(version);
		since = version = NULL;
		start = 0;
		if (resume) {
			json_t *x = json_object_get(to.rec, "cursor_since");

			start = json_integer_value(json_object_get(to.rec,
			    "cursor_page"));
			if (json_is_string(x))
				since = strdup(json_string_value(x));
			x = json_object_get(to.rec, "cursor_version");
			if (json_is_string(x))
				version = strdup(json_string_value(x));
		} else if (lists[li].version != NULL) {
			json_t *x = json_object_get(to.rec, lists[li].version);

			if (json_is_string(x))
				since = strdup(json_string_value(x));
		}
		n = gone = 0;
		po.li = li;
		po.since = since;
		for (po.index = start, po.total = start + 1;
		    po.index < po.total; po.index++) {
			po.page = vpp_page(v, lists[li].key, lists[li].name,
			    since, po.index, &po.total, &e);
			if (po.page == NULL && e.number == 9721 &&
			    since != NULL && po.index == 0) {
				/* Apple no longer knows the version (a new
				 * library, a reset): list it whole. */
				fprintf(stderr, "picomdm-vpp: %s: %s: versionId "
				    "%s refused (9721): listing all\n", name,
				    lists[li].name, since);
				free(since);
				since = NULL;
				po.since = NULL;
				po.index = -1;
				po.total = 1;
				continue;
			}
			if (po.page == NULL) {
				rc = fail(&e);
				break;
			}
			if (po.index == 0 || version == NULL) {
				json_t *x = json_object_get(po.page,
				    "versionId");

				free(version);
				version = json_is_string(x) ?
				    strdup(json_string_value(x)) : NULL;
			}
			po.version = version;
			rc = store_write(db, page_op, &po);
			json_decref(po.page);
			if (rc != 0) {
				fprintf(stderr, "picomdm-vpp: %s: %s%s%s\n",
				    name, store_strerror(rc),
				    po.why[0] ? ": " : "", po.why);
				rc = 1;
				break;
			}
			n += po.written;
			gone += po.removed;
		}
		if (rc == 0)
			fprintf(stderr, "picomdm-vpp: %s: %s: %zu %s%s, %zu "
			    "removed%s\n", name, lists[li].name, n, since ?
			    "changed since " : "in all", since ? since : "", gone,
			    resume && start > 0 ? " (resumed)" : "");
	}
	if (rc == 0 && v1)
		rc = sync_v1(v, name);
out:
	free(since);
	free(version);
	vpp_free(v);
	json_decref(to.rec);
	return rc;
}

/* App metadata: after a sync's listings (never undoing them: its
 * errors are reported, the sync's exit status is the listings'), or
 * alone (meta). See tools/vpp_meta.c. */
static long meta_max_age = VPP_META_MAX_AGE;
static int  meta_refresh, meta_only;

/* See vpp_tool.h. */
int
token_lock(const char *dir, const char *name)
{
	char	 path[4096];
	uint32_t h = 2166136261u; /* FNV-1a */
	int	 fd, slot;

	for (const char *p = name; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	slot = STORE_ROLE_VPP_TOKEN + (int)(h % STORE_ROLE_VPP_SLOTS);
	errno = ENAMETOOLONG;
	if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", dir) >=
	    sizeof(path))
		fd = -1;
	else if ((fd = lock_slot(path, slot)) == -2) {
		fprintf(stderr, "picomdm-vpp: %s: waiting for another "
		    "picomdm-vpp run on this token\n", name);
		fd = lock_slot_wait(path, slot);
	}
	if (fd < 0)
		fprintf(stderr, "picomdm-vpp: %s: %s\n", path, strerror(errno));
	return fd;
}

static int
sync_meta(const char *name, const struct vpp_opts *o)
{
	int rc, lk;

	if ((lk = token_lock(db_dir, name)) < 0)
		return 1;
	if (meta_only)
		rc = vpp_meta_run(db, name, o, meta_max_age, meta_refresh);
	else if ((rc = sync_one(name, o)) == 0)
		(void)vpp_meta_run(db, name, o, meta_max_age, 0);
	(void)close(lk);
	return rc;
}

static int
names_cb(json_t *rec, void *arg)
{
	return json_array_append(arg, json_object_get(rec, "name")) == 0 ? 0 :
	    STORE_ENOMEM;
}

static int
names_op(struct store_txn *t, void *arg)
{
	json_array_clear(arg);
	return store_vpp_token_each(t, names_cb, arg);
}

static int
sync_all(const char *name, const struct vpp_opts *o)
{
	json_t *names;
	json_t *x;
	size_t	i;
	int	rc = 0, r;

	if (name != NULL)
		return sync_meta(name, o);
	if ((names = json_array()) == NULL ||
	    (rc = store_read(db, names_op, names)) != 0) {
		json_decref(names);
		return db_fail(rc ? rc : STORE_ENOMEM, "sync");
	}
	if (json_array_size(names) == 0)
		fprintf(stderr, "picomdm-vpp: no tokens: token import first\n");
	json_array_foreach(names, i, x)
		if ((r = sync_meta(json_string_value(x), o)) != 0 && rc == 0)
			rc = r;
	json_decref(names);
	return rc;
}

struct show_op {
	enum store_vpp_list list;
	const char	   *token;
};

static int
show_cb(const char *token, json_t *rec, void *arg)
{
	(void)arg;
	json_object_set_new(rec, "token", json_string(token));
	return print_line(rec, NULL) == 0 ? 0 : STORE_ENOMEM;
}

static int
show_op(struct store_txn *t, void *arg)
{
	struct show_op *so = arg;

	return store_vpp_each(t, so->list, so->token, show_cb, NULL);
}

/* The commands on the store (--db). */
static int
db_main(const char *dir, int argc, char **argv, const struct vpp_opts *o,
    int purge)
{
	struct show_op so = { STORE_VPP_ASSETS, NULL };
	const char    *cmd = argv[0];
	int	       rc, ro;

	if (strcmp(cmd, "meta") == 0) {
		meta_only = 1;
		cmd = "sync";
	} else if (meta_refresh) {
		fprintf(stderr, "picomdm-vpp: --refresh is for meta\n");
		return 2;
	}
	ro = strcmp(cmd, "sync") != 0 && !(strcmp(cmd, "token") == 0 &&
	    argc > 1 && strcmp(argv[1], "list") != 0);
	if (strcmp(cmd, "token") == 0) {
		if (argc == 4 && strcmp(argv[1], "import") == 0)
			;
		else if (argc == 2 && strcmp(argv[1], "list") == 0)
			;
		else if (argc == 3 && strcmp(argv[1], "remove") == 0)
			;
		else
			usage();
	} else if (strcmp(cmd, "sync") == 0) {
		if (argc > 2)
			usage();
	} else if (strcmp(cmd, "assets") == 0 ||
	    strcmp(cmd, "assignments") == 0 || strcmp(cmd, "users") == 0 ||
	    strcmp(cmd, "metadata") == 0) {
		if (argc > 2)
			usage();
		so.list = strcmp(cmd, "assets") == 0 ? STORE_VPP_ASSETS :
		    strcmp(cmd, "metadata") == 0 ? STORE_VPP_META :
		    strcmp(cmd, "users") == 0 ? STORE_VPP_USERS :
		    STORE_VPP_ASSIGNMENTS;
		so.token = argc == 2 ? argv[1] : NULL;
	} else
		usage();
	if (purge && !(strcmp(cmd, "token") == 0 &&
	    strcmp(argv[1], "remove") == 0)) {
		fprintf(stderr, "picomdm-vpp: --purge is for token remove\n");
		return 2;
	}
	if (db_open(dir, ro) != 0)
		return 1;
	if (strcmp(cmd, "token") == 0)
		rc = argv[1][0] == 'i' ? token_import(argv[2], argv[3]) :
		    argv[1][0] == 'l' ? token_list() :
		    token_remove(argv[2], purge);
	else if (strcmp(cmd, "sync") == 0) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = sync_all(argc == 2 ? argv[1] : NULL, o);
		curl_global_cleanup();
	} else if ((rc = store_read(db, show_op, &so)) != 0)
		rc = db_fail(rc, cmd);
	store_close(db);
	return rc;
}

/*
 * --config FILE: picomdm.conf(5)'s db (into *dir unless dir is NULL)
 * and vpp_url, for what the command line does not give (--db, --url).
 * 0, or -1 after a message. The strings live until exit.
 */
static int
apply_config(const char *path, const char **dir, struct vpp_opts *o)
{
	static struct config cfg;

	config_defaults(&cfg);
	if (config_load(&cfg, path) == -1) {
		fprintf(stderr, "picomdm-vpp: %s: not a usable picomdm.conf "
		    "(above)\n", path);
		return -1;
	}
	if (dir != NULL && *dir == NULL)
		*dir = cfg.db;
	if (o->config_url == NULL)
		o->config_url = cfg.vpp_url;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "token", required_argument, NULL, 't' },
		{ "url", required_argument, NULL, 'u' },
		{ "ca", required_argument, NULL, 'c' },
		{ "rps", required_argument, NULL, 'r' },
		{ "max-wait", required_argument, NULL, 'w' },
		{ "since", required_argument, NULL, 's' },
		{ "db", required_argument, NULL, 'd' },
		{ "purge", no_argument, NULL, 'p' },
		{ "force", no_argument, NULL, 'f' },
		{ "mdm-id", required_argument, NULL, 'm' },
		{ "meta-max-age", required_argument, NULL, 'A' },
		{ "refresh", no_argument, NULL, 'R' },
		{ "config", required_argument, NULL, 'g' },
		{ "v1", no_argument, NULL, '1' },
		{ "v1-url", required_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct vpp_opts  o = { 0 };
	struct vpp_token t;
	struct vpp_error e = { 0 };
	struct vpp      *v;
	const char      *token = NULL, *since = NULL, *cmd, *dir = NULL;
	const char      *config_path = NULL;
	int              purge = 0;
	char            *end, *version = NULL;
	json_t          *j;
	int              c, rc = 0;

	/* The write commands' options (tools/vpp_write.c) first. */
	if ((rc = vppw_options(&argc, argv)) != 0)
		return rc;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't': token = optarg; break;
		case 'u': o.config_url = optarg; break;
		case 'c': o.ca_file = optarg; break;
		case 's': since = optarg; break;
		case 'd': dir = optarg; break;
		case 'p': purge = 1; break;
		case 'f': force = 1; break;
		case 'R': meta_refresh = 1; break;
		case 'A':
			meta_max_age = strtol(optarg, &end, 10);
			if (*end != '\0' || end == optarg || meta_max_age < 0 ||
			    meta_max_age > 10L * 366 * 86400) {
				fprintf(stderr, "picomdm-vpp: --meta-max-age %s: "
				    "not 0..316224000 seconds\n", optarg);
				return 2;
			}
			break;
		case 'g': config_path = optarg; break;
		case '1': v1 = 1; break;
		case 'V': o.v1_url = optarg; v1 = 1; break;
		case 'm':
			if (strlen(optarg) < 1 || strlen(optarg) >= sizeof mdm_id) {
				fprintf(stderr, "picomdm-vpp: --mdm-id: 1 to 100 "
				    "characters\n");
				return 2;
			}
			snprintf(mdm_id, sizeof mdm_id, "%s", optarg);
			break;
		case 'r':
			o.max_rps = strtod(optarg, &end);
			if (*end != '\0' || !(o.max_rps > 0 &&
			    o.max_rps <= 1000)) {
				fprintf(stderr, "picomdm-vpp: --rps %s: not a "
				    "number in (0, 1000]\n", optarg);
				return 2;
			}
			break;
		case 'w':
			o.max_wait_s = strtol(optarg, &end, 10);
			if (*end != '\0' || o.max_wait_s < 1 ||
			    o.max_wait_s > 3600) {
				fprintf(stderr, "picomdm-vpp: --max-wait %s: "
				    "not 1..3600 seconds\n", optarg);
				return 2;
			}
			break;
		default: usage();
		}
	}
	if (optind >= argc)
		usage();
	/* The file's db is for the store's commands: not for --token's nor
	 * for token show, which read no store. */
	if (config_path != NULL && apply_config(config_path,
	    token != NULL || (strcmp(argv[optind], "token") == 0 &&
	    optind + 1 < argc && strcmp(argv[optind + 1], "show") == 0) ?
	    NULL : &dir, &o) != 0)
		return 2;
	if (mdm_id[0] == '\0') {
		char host[64];

		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
		snprintf(mdm_id, sizeof mdm_id, "picomdm@%s", host);
	}
	cmd = argv[optind];
	if (dir != NULL && vppw_is_command(cmd))
		return vppw_main(dir, argc - optind, argv + optind, &o);
	if (vppw_used()) {
		fprintf(stderr, "picomdm-vpp: --serial, --user, --email, "
		    "--no-wait, --pending and --token NAME with --db "
		    "are for the write commands\n");
		return 2;
	}
	if (dir != NULL) {
		if (token != NULL || since != NULL) {
			fprintf(stderr, "picomdm-vpp: --token and --since are "
			    "for the commands without --db\n");
			return 2;
		}
		return db_main(dir, argc - optind, argv + optind, &o, purge);
	}
	if (purge)
		usage();
	if (strcmp(cmd, "token") == 0) {
		if (argc - optind != 3 || strcmp(argv[optind + 1], "show") != 0)
			usage();
		return token_show(argv[optind + 2]);
	}
	if (argc - optind != 1 || token == NULL)
		usage();
	if (since != NULL && strcmp(cmd, "assignments") != 0 &&
	    strcmp(cmd, "users") != 0) {
		fprintf(stderr, "picomdm-vpp: --since is for assignments and "
		    "users only\n");
		return 2;
	}
	if (strcmp(cmd, "config") != 0 && strcmp(cmd, "assets") != 0 &&
	    strcmp(cmd, "assignments") != 0 && strcmp(cmd, "users") != 0)
		usage();
	if (load(token, &t) != 0)
		return 1;
	warn_expiry(&t);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	v = vpp_new(&t, &o);
	vpp_token_free(&t);
	if (v == NULL) {
		fprintf(stderr, "picomdm-vpp: out of memory\n");
		return 1;
	}
	if (strcmp(cmd, "config") == 0) {
		j = vpp_get(v, "clientConfig", NULL, &e);
		if (j == NULL)
			rc = fail(&e);
		else {
			print_line(j, NULL);
			json_decref(j);
		}
	} else {
		const char *key = strcmp(cmd, "assets") == 0 ? "getAssets" :
		    strcmp(cmd, "users") == 0 ? "getUsers" : "getAssignments";

		if (vpp_list(v, key, cmd, since, print_line, NULL, &version,
		    &e) != 0)
			rc = fail(&e);
		else {
			if (version != NULL)
				fprintf(stderr, "picomdm-vpp: versionId %s\n",
				    version);
			free(version);
		}
	}
	vpp_free(v);
	curl_global_cleanup();
	return rc;
}
