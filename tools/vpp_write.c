/*
 * vpp_write.c - picomdm-vpp's write commands (man/picomdm-vpp.8,
 * "Writes"): assign and unassign an asset to serial numbers or users,
 * revoke every licence of serial numbers or users, create and retire
 * users (clientUserIds picomdm generates), and the asynchronous events
 * Apple answers them with: each is recorded in the store as soon as its
 * eventId is known, polled at the service configuration's eventStatus
 * URL with a growing interval until COMPLETE or FAILED or the time limit,
 * and on completion written with its effect on the token's assignments,
 * users and asset counts in one transaction (store_vpp_event.c). A run
 * killed while polling leaves the event PENDING; the next write of the
 * token, or poll, finishes it. Input is checked against the store and
 * the service's limits before anything is sent: bad input changes
 * nothing.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "picomdm/store.h"
#include "picomdm/store_vpp.h"
#include "picomdm/store_vpp_event.h"
#include "picomdm/util.h"
#include "picomdm/vpp.h"
#include "picomdm/vpp_write.h"
#include "vpp_tool.h"

#define WAIT_DEFAULT	300 /* seconds an event is polled, at most */
#define POLL_DEFAULT	1.0 /* first interval, doubled up to POLL_MAX */
#define POLL_MAX	30.0

/* Exit statuses besides 0, 1 (error, refused), 2 (usage, bad syntax),
 * 3 (token error) and 4 (another MDM holds the location). */
#define EXIT_PENDING	5 /* the event is still pending at the limit */
#define EXIT_FAILURES	6 /* the event ended with failed items */

static struct {
	int	    serial, user, no_wait, pending, used;
	const char *token, *email, *maid;
	long	    wait_s;
	double	    poll_s;
} w = { .wait_s = WAIT_DEFAULT, .poll_s = POLL_DEFAULT };

static struct store *db;
static const char   *db_dir;

/* ---- options ---- */

/* --name VALUE or --name=VALUE at argv[*i]: 1 with *val (and *i past
 * it), 0 when argv[*i] is not it, -1 when the value is missing. */
static int
opt_val(char **argv, int argc, int *i, const char *name, const char **val)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return 0;
	if (argv[*i][n] == '=') {
		*val = argv[*i] + n + 1;
		return 1;
	}
	if (argv[*i][n] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "picomdm-vpp: %s needs a value\n", name);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

static int
seconds(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(s, &end);
	if (errno != 0 || *end != '\0' || end == s || !(*out >= lo) ||
	    !(*out <= hi)) {
		fprintf(stderr, "picomdm-vpp: %s %s: not a number of seconds "
		    "in [%g, %g]\n", opt, s, lo, hi);
		return -1;
	}
	return 0;
}

int
vppw_options(int *argc, char **argv)
{
	int	    i, j, db_mode = 0, r;
	const char *v;
	double	    d;

	for (i = 1; i < *argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--db") == 0 ||
		    strncmp(argv[i], "--db=", 5) == 0)
			db_mode = 1;
	for (i = j = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[j++] = argv[i++];
			break;
		}
		v = NULL;
		if (strcmp(argv[i], "--serial") == 0)
			w.serial = w.used = 1;
		else if (strcmp(argv[i], "--user") == 0)
			w.user = w.used = 1;
		else if (strcmp(argv[i], "--no-wait") == 0)
			w.no_wait = w.used = 1;
		else if (strcmp(argv[i], "--pending") == 0)
			w.pending = w.used = 1;
		else if ((r = opt_val(argv, *argc, &i, "--email", &v)) != 0) {
			if (r < 0)
				return 2;
			w.email = v;
			w.used = 1;
		} else if ((r = opt_val(argv, *argc, &i, "--managed-apple-id",
		    &v)) != 0) {
			if (r < 0)
				return 2;
			w.maid = v;
			w.used = 1;
		} else if ((r = opt_val(argv, *argc, &i, "--wait", &v)) != 0) {
			if (r < 0 || seconds("--wait", v, 1, 86400, &d) != 0)
				return 2;
			w.wait_s = (long)d; /* elsewhere unused */
		} else if ((r = opt_val(argv, *argc, &i, "--poll-interval",
		    &v)) != 0) {
			if (r < 0 || seconds("--poll-interval", v, 0.05, 300,
			    &d) != 0)
				return 2;
			w.poll_s = d;
		} else if (db_mode && (r = opt_val(argv, *argc, &i, "--token",
		    &v)) != 0) {
			/* With --db, --token names a stored token. */
			if (r < 0)
				return 2;
			w.token = v;
			w.used = 1;
		} else
			argv[j++] = argv[i];
	}
	argv[j] = NULL;
	*argc = j;
	return 0;
}

int
vppw_is_command(const char *cmd)
{
	static const char *const c[] = { "assign", "unassign", "revoke",
		"user", "poll", "events", NULL };

	for (int i = 0; c[i] != NULL; i++)
		if (strcmp(cmd, c[i]) == 0)
			return 1;
	return 0;
}

int
vppw_used(void)
{
	return w.used;
}

/* ---- small helpers ---- */

static void
print_rec(const char *token, const json_t *rec)
{
	json_t *o = json_deep_copy(rec);
	char   *s;

	if (o == NULL)
		return;
	json_object_set_new(o, "token", json_string(token));
	if ((s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS)) != NULL)
		puts(s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

static json_t *
now_json(void)
{
	char		b[64];
	struct timespec ts;
	struct tm	tm;
	size_t		n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(b + n, sizeof b - n, ".%06ldZ", ts.tv_nsec / 1000);
	return json_string(b);
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
fail_vpp(const struct vpp_error *e)
{
	fprintf(stderr, "picomdm-vpp: %s\n", e->message);
	return vpp_token_error(e->number) != NULL ? 3 : 1;
}

static int
fail_db(int rc, const char *what)
{
	fprintf(stderr, "picomdm-vpp: %s: %s\n", what, store_strerror(rc));
	return 1;
}

/* An Apple serial number: 8 to 20 letters and digits. */
static int
serial_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!((s[n] >= '0' && s[n] <= '9') ||
		    (s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z')))
			return 0;
	return n >= 8 && n <= 20;
}

/* An adamId: 1 to 20 digits. */
static int
adam_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (s[n] < '0' || s[n] > '9')
			return 0;
	return n >= 1 && n <= 20;
}

/* Text Apple takes as an email or a managed Apple ID: one @, no space
 * or control character, at most 255 bytes. */
static int
email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	size_t	    n = strlen(s);

	if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') ||
	    n > 255)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return 0;
	return 1;
}

/* ---- the store ---- */

struct names_op {
	json_t *names;
};

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

/* The token the command is for: --token, or the only one. A new
 * string, or NULL after a message. */
static char *
which_token(void)
{
	json_t *names = json_array();
	char   *r = NULL;
	int	rc;

	if (names == NULL)
		return NULL;
	if ((rc = store_read(db, names_op, names)) != 0)
		fail_db(rc, "token");
	else if (w.token != NULL) {
		size_t	i;
		json_t *x;

		json_array_foreach(names, i, x)
			if (strcmp(json_string_value(x), w.token) == 0)
				r = strdup(w.token);
		if (r == NULL)
			fprintf(stderr, "picomdm-vpp: no token %s\n", w.token);
	} else if (json_array_size(names) == 1)
		r = strdup(json_string_value(json_array_get(names, 0)));
	else if (json_array_size(names) == 0)
		fprintf(stderr, "picomdm-vpp: no tokens: token import first\n");
	else
		fprintf(stderr, "picomdm-vpp: %zu tokens: --token NAME says "
		    "which\n", json_array_size(names));
	json_decref(names);
	return r;
}


/* A client for the stored token, the token's lock held in *lk
 * (token_lock) until the caller closes it after vpp_free. */
static struct vpp *
client(const char *name, const struct vpp_opts *o, int *lk)
{
	struct tok_op to = { name, NULL };
	struct vpp_token vt = { 0 };
	struct vpp	*v;
	int		 rc;

	if ((*lk = token_lock(db_dir, name)) < 0)
		return NULL;
	if ((rc = store_read(db, tok_op, &to)) != 0) {
		fail_db(rc, name);
		(void)close(*lk);
		*lk = -1;
		return NULL;
	}
	vt.stoken = (char *)(uintptr_t)json_string_value(json_object_get(
	    to.rec, "stoken"));
	vt.org = (char *)(uintptr_t)json_string_value(json_object_get(to.rec,
	    "org"));
	v = vt.stoken != NULL ? vpp_new(&vt, o) : NULL;
	json_decref(to.rec);
	if (v == NULL) {
		fprintf(stderr, "picomdm-vpp: %s: out of memory or no sToken\n",
		    name);
		(void)close(*lk);
		*lk = -1;
	}
	return v;
}

struct ev_list {
	const char *token; /* NULL: every token's */
	const char *only;  /* one event ID, or NULL */
	int	    pending;
	json_t	   *out;   /* [[token, rec], ...] */
};

static int
ev_cb(const char *token, json_t *rec, void *arg)
{
	struct ev_list *el = arg;
	const char     *st = json_string_value(json_object_get(rec, "status"));
	const char     *id = json_string_value(json_object_get(rec,
	    "event_id"));

	if (el->pending && (st == NULL || strcmp(st, "PENDING") != 0))
		return 0;
	if (el->only != NULL && (id == NULL || strcmp(id, el->only) != 0))
		return 0;
	return json_array_append_new(el->out, json_pack("[s,O]", token,
	    rec)) == 0 ? 0 : STORE_ENOMEM;
}

static int
ev_op(struct store_txn *t, void *arg)
{
	struct ev_list *el = arg;

	json_array_clear(el->out);
	return store_vpp_event_each(t, el->token, ev_cb, el);
}

/* The events of a token (or all), pending only or one: a new array of
 * [token, record], or NULL after a message. */
static json_t *
events_of(const char *token, const char *only, int pending)
{
	struct ev_list el = { token, only, pending, json_array() };
	int	       rc;

	if (el.out == NULL)
		return NULL;
	if ((rc = store_read(db, ev_op, &el)) != 0) {
		fail_db(rc, "events");
		json_decref(el.out);
		return NULL;
	}
	return el.out;
}

struct put_op {
	const char *token;
	json_t	   *rec;
	json_t	   *failed;  /* finish: the items that failed */
	uint64_t    changed;
};

static int
put_op(struct store_txn *t, void *arg)
{
	struct put_op *po = arg;

	return store_vpp_event_put(t, po->token, po->rec);
}

static int
finish_op(struct store_txn *t, void *arg)
{
	struct put_op *po = arg;

	return store_vpp_event_finish(t, po->token, po->rec, po->failed,
	    &po->changed);
}

/* ---- polling ---- */

/* Apple's failures as one entry per item (item, errorNumber,
 * errorMessage; a failure naming no item is kept without one); the
 * items named go in *failed. */
static json_t *
per_item(const json_t *failures, json_t *failed)
{
	/* errorInfo's assets name the request's one asset: not an item. */
	static const char *const lists[] = { "serialNumbers",
		"clientUserIds", NULL };
	json_t *out = json_array(), *f, *x;
	size_t	i, k;

	json_array_foreach(failures, i, f) {
		json_t *info = json_object_get(f, "errorInfo");
		json_t *num = json_object_get(f, "errorNumber");
		json_t *msg = json_object_get(f, "errorMessage");
		int	named = 0;

		for (int l = 0; lists[l] != NULL; l++) {
			json_array_foreach(json_object_get(info, lists[l]), k,
			    x) {
				if (!json_is_string(x))
					continue;
				named = 1;
				json_array_append(failed, x);
				json_array_append_new(out, json_pack(
				    "{s:O, s:O?, s:O?}", "item", x,
				    "errorNumber", num, "errorMessage", msg));
			}
		}
		if (!named)
			json_array_append_new(out, json_pack("{s:O?, s:O?}",
			    "errorNumber", num, "errorMessage", msg));
	}
	return out;
}

/*
 * Poll one event until it is over or the deadline (monotonic seconds)
 * passes; the store is told each step. 0: COMPLETE with no failure;
 * EXIT_FAILURES: FAILED or failed items; EXIT_PENDING: still pending at
 * the deadline; else an error's exit status.
 */
static int
poll_event(struct vpp *v, const char *token, json_t *rec, double deadline)
{
	const char	*id = json_string_value(json_object_get(rec,
	    "event_id"));
	struct vpp_error e = { 0 };
	struct put_op	 po = { token, rec, NULL, 0 };
	double		 gap = w.poll_s;
	json_int_t	 polls;
	json_t		*ans, *x, *fl;
	char		 st[16];
	char		*s;
	int		 rc;

	for (;;) {
		ans = vpp_event_status(v, id, &e);
		polls = json_integer_value(json_object_get(rec, "polls")) + 1;
		json_object_set_new(rec, "polls", json_integer(polls));
		json_object_set_new(rec, "updated_at", now_json());
		if (ans == NULL && e.number != 9708) {
			/* Not over: say why in the record, keep it pending. */
			json_object_set_new(rec, "last_error",
			    json_string(e.message));
			store_write(db, put_op, &po);
			return fail_vpp(&e);
		}
		/* vpp_event_status checked it is one of the three. */
		snprintf(st, sizeof st, "%s", ans != NULL ? json_string_value(
		    json_object_get(ans, "eventStatus")) : "FAILED");
		if (strcmp(st, "PENDING") == 0) {
			if (json_is_integer(x = json_object_get(ans,
			    "numCompleted")))
				json_object_set(rec, "num_completed", x);
			json_decref(ans);
			if ((rc = store_write(db, put_op, &po)) != 0)
				return fail_db(rc, "event");
			if (mono() + gap > deadline) {
				fprintf(stderr, "picomdm-vpp: %s: event %s is "
				    "still PENDING; picomdm-vpp poll goes on "
				    "with it\n", token, id);
				return EXIT_PENDING;
			}
			time_sleep(gap);
			gap = gap * 2 > POLL_MAX ? POLL_MAX : gap * 2;
			continue;
		}
		/* Over: the outcome and its effect, in one transaction. */
		po.failed = json_array();
		if (ans == NULL) {
			/* 9708: Apple knows no such event; nothing of it is
			 * applied. */
			fl = json_pack("[{s:i, s:s}]", "errorNumber", e.number,
			    "errorMessage", e.message);
		} else
			fl = per_item(json_object_get(ans, "failures"),
			    po.failed);
		if (strcmp(st, "FAILED") == 0 && json_array_size(po.failed) ==
		    0) {
			/* Failed with no item named: none succeeded. */
			json_t *items = json_loads(json_string_value(
			    json_object_get(rec, "items")) ?: "", 0, NULL);

			if (json_is_array(items))
				json_array_extend(po.failed, items);
			json_decref(items);
		}
		json_object_set_new(rec, "status", json_string(st));
		if (ans != NULL && json_is_integer(x = json_object_get(ans,
		    "numCompleted")))
			json_object_set(rec, "num_completed", x);
		s = json_dumps(fl, JSON_COMPACT);
		json_object_set_new(rec, "failures", json_string(s ? s : "[]"));
		free(s);
		json_object_set_new(rec, "completed_at", now_json());
		json_object_del(rec, "last_error");
		json_decref(fl);
		json_decref(ans);
		rc = store_write(db, finish_op, &po);
		json_decref(po.failed);
		if (rc != 0)
			return fail_db(rc, "event");
		print_rec(token, rec);
		return strcmp(st, "COMPLETE") == 0 &&
		    strcmp(json_string_value(json_object_get(rec,
		    "failures")), "[]") == 0 ? 0 : EXIT_FAILURES;
	}
}

/* Poll the token's pending events (or the one named), in key order:
 * picomdm-vpp's own runs leave at most one pending per token, since a
 * write waits for the earlier one first. 0 when none is left pending. */
static int
resume(struct vpp *v, const char *token, const char *only, double deadline)
{
	json_t *ev = events_of(token, only, 1), *x;
	size_t	i;
	int	rc = 0, r;

	if (ev == NULL)
		return 1;
	if (json_array_size(ev) > 0)
		fprintf(stderr, "picomdm-vpp: %s: %zu pending event%s: "
		    "polling\n", token, json_array_size(ev),
		    json_array_size(ev) == 1 ? "" : "s");
	json_array_foreach(ev, i, x) {
		r = poll_event(v, token, json_array_get(x, 1), deadline);
		if (r == EXIT_PENDING || (r != 0 && r != EXIT_FAILURES)) {
			rc = r;
			break;
		}
		if (r != 0 && rc == 0)
			rc = r;
	}
	json_decref(ev);
	return rc;
}

/* ---- the checks before a write ---- */

enum wtype { W_ASSOC, W_DISASSOC, W_REVOKE, W_CREATE, W_RETIRE };

static const struct {
	const char *type; /* Apple's eventType */
	const char *key;  /* the service configuration's URL */
} wt[] = {
	[W_ASSOC] = { "ASSOCIATE", "associateAssets" },
	[W_DISASSOC] = { "DISASSOCIATE", "disassociateAssets" },
	[W_REVOKE] = { "REVOKE", "revokeAssets" },
	[W_CREATE] = { "CREATE", "createUsers" },
	[W_RETIRE] = { "RETIRE", "retireUsers" },
};

struct check_op {
	enum wtype  type;
	const char *token;
	const char *adam;
	int	    user;     /* items are clientUserIds */
	json_t	   *items;    /* in: as given; out: what is to be sent */
	char	    pricing[64];
	char	    why[512]; /* refused: the reason */
	int	    skipped;  /* items with nothing to do */
};

static int refuse(struct check_op *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
refuse(struct check_op *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->why, sizeof c->why, fmt, ap);
	va_end(ap);
	return 1;
}

static int
check_op(struct store_txn *t, void *arg)
{
	struct check_op *c = arg;
	json_t		*assets = NULL, *keep, *x, *u;
	size_t		 i;
	int		 rc;
	uint64_t	 avail = 0;
	int		 have_avail = 0;

	c->why[0] = '\0';
	c->pricing[0] = '\0';
	c->skipped = 0;
	if (c->type == W_ASSOC || c->type == W_DISASSOC) {
		if ((rc = store_vpp_assets_of(t, c->token, c->adam,
		    &assets)) != 0)
			return rc;
		if (json_array_size(assets) == 0) {
			json_decref(assets);
			return refuse(c, "no asset %s in token %s's assets "
			    "(picomdm-vpp sync lists them)", c->adam, c->token);
		}
		/* The pricingParam with the most licences available. */
		json_array_foreach(assets, i, x) {
			uint64_t    n = 0;
			json_t	   *a = json_object_get(x, "available_count");
			const char *pp = json_string_value(json_object_get(x,
			    "pricing_param"));

			if (json_is_integer(a))
				n = (uint64_t)json_integer_value(a);
			if (pp != NULL && (c->pricing[0] == '\0' || n > avail)) {
				snprintf(c->pricing, sizeof c->pricing, "%s",
				    pp);
				avail = n;
				have_avail = json_is_integer(a);
			}
		}
		if (!c->user && c->type == W_ASSOC)
			json_array_foreach(assets, i, x)
				if (json_is_false(json_object_get(x,
				    "device_assignable")) && strcmp(
				    json_string_value(json_object_get(x,
				    "pricing_param")) ?: "", c->pricing) == 0) {
					json_decref(assets);
					return refuse(c, "asset %s is not "
					    "device-assignable (token %s): "
					    "assign it to users", c->adam,
					    c->token);
				}
		json_decref(assets);
	}
	if ((keep = json_array()) == NULL)
		return STORE_ENOMEM;
	json_array_foreach(c->items, i, x) {
		const char *id = json_string_value(x);

		if (c->user && c->type != W_CREATE) {
			const char *st;

			rc = store_vpp_user_get(t, c->token, id, &u);
			if (rc == STORE_ENOTFOUND) {
				json_decref(keep);
				return refuse(c, "no user %s in token %s's users "
				    "(user create makes one; sync lists them)",
				    id, c->token);
			}
			if (rc != 0) {
				json_decref(keep);
				return rc;
			}
			st = json_string_value(json_object_get(u, "status"));
			rc = st != NULL && (strcmp(st, "Retired") == 0 ||
			    strcmp(st, "Deleted") == 0);
			json_decref(u);
			if (rc && c->type != W_DISASSOC &&
			    c->type != W_REVOKE) {
				json_decref(keep);
				return refuse(c, "user %s of token %s is "
				    "retired", id, c->token);
			}
		}
		if (c->type == W_ASSOC || c->type == W_DISASSOC) {
			rc = store_vpp_assigned(t, c->token, c->user, id,
			    c->adam);
			if (rc < 0) {
				json_decref(keep);
				return rc;
			}
			if ((c->type == W_ASSOC) == (rc == 1)) {
				fprintf(stderr, "picomdm-vpp: %s: %s %s %s\n",
				    c->token, c->adam, rc ? "is already "
				    "assigned to" : "is not assigned to", id);
				c->skipped++;
				continue;
			}
		}
		json_array_append(keep, x);
	}
	json_decref(c->items);
	c->items = keep;
	if (c->type == W_ASSOC && have_avail &&
	    json_array_size(keep) > avail) {
		char n[64];

		snprintf(n, sizeof n, "%zu licences, %llu available",
		    json_array_size(keep), (unsigned long long)avail);
		return refuse(c, "asset %s needs %s (buy more or unassign "
		    "some)", c->adam, n);
	}
	return 0;
}

/* ---- the commands ---- */

struct wreq {
	enum wtype  type;
	const char *adam;
	int	    user;
	json_t	   *items; /* strings */
};

/* The limit of the service configuration the request must keep to. */
static int
check_limit(struct vpp *v, const struct wreq *r)
{
	struct vpp_error e = { 0 };
	const char	*name;
	long		 dflt, lim;

	switch (r->type) {
	case W_REVOKE:
		name = r->user ? "maxRevokeClientUserIds" :
		    "maxRevokeSerialNumbers";
		dflt = 100;
		break;
	case W_CREATE:
	case W_RETIRE:
		name = "maxUsers";
		dflt = 100;
		break;
	default:
		name = r->user ? "maxClientUserIds" : "maxSerialNumbers";
		dflt = 1000;
	}
	if ((lim = vpp_limit(v, name, dflt, &e)) < 0)
		return fail_vpp(&e);
	if ((long)json_array_size(r->items) > lim) {
		fprintf(stderr, "picomdm-vpp: %zu %s in one request; the "
		    "service takes at most %ld (limits.%s): nothing sent\n",
		    json_array_size(r->items), r->user ? "users" :
		    "serial numbers", lim, name);
		return 2;
	}
	if (r->adam != NULL && (lim = vpp_limit(v, "maxAssets", 25, &e)) < 1) {
		fprintf(stderr, "picomdm-vpp: the service takes no asset per "
		    "request (limits.maxAssets)\n");
		return 1;
	}
	return 0;
}

static json_t *
body_of(const struct wreq *r, const char *pricing)
{
	const char *list = r->user ? "clientUserIds" : "serialNumbers";
	json_t	   *b, *u, *x;
	size_t	    i;

	switch (r->type) {
	case W_ASSOC:
	case W_DISASSOC:
		return json_pack("{s:[{s:s, s:s}], s:O}", "assets", "adamId",
		    r->adam, "pricingParam", pricing, list, r->items);
	case W_REVOKE:
		return json_pack("{s:O}", list, r->items);
	default:
		if ((b = json_pack("{s:[]}", "users")) == NULL)
			return NULL;
		json_array_foreach(r->items, i, x) {
			u = json_pack("{s:O}", "clientUserId", x);
			if (u != NULL && r->type == W_CREATE && w.email)
				json_object_set_new(u, "email",
				    json_string(w.email));
			if (u != NULL && r->type == W_CREATE && w.maid)
				json_object_set_new(u, "managedAppleId",
				    json_string(w.maid));
			json_array_append_new(json_object_get(b, "users"), u);
		}
		return b;
	}
}

static int
write_cmd(const char *token, const struct wreq *r, const struct vpp_opts *o)
{
	struct check_op	 c = { r->type, token, r->adam, r->user, NULL, "",
		"", 0 };
	struct vpp_error e = { 0 };
	struct put_op	 po = { token, NULL, NULL, 0 };
	struct vpp	*v = NULL;
	double		 deadline = mono() + (double)w.wait_s;
	json_t		*cc = NULL, *body = NULL, *rec = NULL;
	char		*id = NULL, *s = NULL;
	int		 rc, lk = -1;

	/* What the store says first: nothing is sent for bad input. */
	c.items = json_deep_copy(r->items);
	if (c.items == NULL)
		return fail_db(STORE_ENOMEM, "check");
	if ((rc = store_read(db, check_op, &c)) != 0) {
		json_decref(c.items);
		if (rc == 1) {
			fprintf(stderr, "picomdm-vpp: %s: nothing sent\n",
			    c.why);
			return 1;
		}
		return fail_db(rc, "check");
	}
	if (json_array_size(c.items) == 0) {
		fprintf(stderr, "picomdm-vpp: %s: nothing to do\n", token);
		json_decref(c.items);
		return 0;
	}
	struct wreq sent = *r;

	sent.items = c.items;
	if ((v = client(token, o, &lk)) == NULL) {
		rc = 1;
		goto out;
	}
	/* The service's limits, the location's claim, then what an earlier
	 * run left pending: a new event waits for those. */
	if ((rc = check_limit(v, &sent)) != 0)
		goto out;
	if ((cc = vpp_get(v, "clientConfig", NULL, &e)) == NULL) {
		rc = fail_vpp(&e);
		goto out;
	}
	if ((rc = claim(v, token, &cc)) != 0)
		goto out;
	if ((rc = resume(v, token, NULL, deadline)) != 0 &&
	    rc != EXIT_FAILURES) {
		if (rc == EXIT_PENDING)
			fprintf(stderr, "picomdm-vpp: %s: an earlier event is "
			    "still pending: nothing sent\n", token);
		goto out;
	}
	if ((body = body_of(&sent, c.pricing)) == NULL) {
		rc = fail_db(STORE_ENOMEM, "request");
		goto out;
	}
	if ((id = vpp_event_send(v, wt[r->type].key, body, &e)) == NULL) {
		rc = fail_vpp(&e);
		goto out;
	}
	/* Apple has it: record it before anything else. */
	s = json_dumps(sent.items, JSON_COMPACT);
	rec = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:I, s:o, s:o, s:I}",
	    "event_id", id, "type", wt[r->type].type, "item_kind",
	    r->user ? "user" : "serial", "items", s,
	    "num_requested", (json_int_t)json_array_size(sent.items),
	    "num_completed", (json_int_t)0, "created_at", now_json(),
	    "updated_at", now_json(), "polls", (json_int_t)0);
	if (rec != NULL) {
		json_object_set_new(rec, "status", json_string("PENDING"));
		if (r->adam != NULL) {
			json_object_set_new(rec, "adam_id",
			    json_string(r->adam));
			json_object_set_new(rec, "pricing_param",
			    json_string(c.pricing));
		}
		if (r->type == W_CREATE && w.email != NULL)
			json_object_set_new(rec, "email", json_string(w.email));
		if (r->type == W_CREATE && w.maid != NULL)
			json_object_set_new(rec, "managed_apple_id",
			    json_string(w.maid));
	}
	po.rec = rec;
	if (s == NULL || rec == NULL ||
	    (rc = store_write(db, put_op, &po)) != 0) {
		fprintf(stderr, "picomdm-vpp: %s: Apple accepted event %s but "
		    "it could not be recorded (%s); the next sync shows its "
		    "effect\n", token, id, store_strerror(rec ? rc :
		    STORE_ENOMEM));
		rc = 1;
		goto out;
	}
	if (w.no_wait) {
		print_rec(token, rec);
		rc = 0;
		goto out;
	}
	rc = poll_event(v, token, rec, deadline);
	if (rc == EXIT_PENDING)
		print_rec(token, rec);
out:
	free(s);
	free(id);
	json_decref(rec);
	json_decref(body);
	json_decref(cc);
	json_decref(c.items);
	vpp_free(v);
	if (lk >= 0)
		(void)close(lk);
	return rc;
}

static int
events_cmd(const char *token)
{
	json_t *ev = events_of(token, NULL, w.pending), *x;
	size_t	i;

	if (ev == NULL)
		return 1;
	json_array_foreach(ev, i, x)
		print_rec(json_string_value(json_array_get(x, 0)),
		    json_array_get(x, 1));
	json_decref(ev);
	return 0;
}

/* poll [EVENTID]: the token's pending events, or every token's. */
static int
poll_cmd(const char *token, const char *only, const struct vpp_opts *o)
{
	double	deadline = mono() + (double)w.wait_s;
	json_t *ev = events_of(token, only, 1), *names, *x;
	size_t	i;
	int	rc = 0, r;

	if (ev == NULL)
		return 1;
	if (only != NULL && json_array_size(ev) == 0) {
		json_decref(ev);
		ev = events_of(token, only, 0);
		fprintf(stderr, "picomdm-vpp: event %s: %s\n", only,
		    ev != NULL && json_array_size(ev) > 0 ?
		    "not pending" : "no such event");
		rc = ev != NULL && json_array_size(ev) > 0 ? 0 : 1;
		json_decref(ev);
		return rc;
	}
	/* The tokens with something pending, each once. */
	names = json_array();
	json_array_foreach(ev, i, x) {
		json_t *n = json_array_get(x, 0);
		size_t	k;
		json_t *y;
		int	seen = 0;

		json_array_foreach(names, k, y)
			seen |= json_equal(y, n);
		if (!seen)
			json_array_append(names, n);
	}
	json_decref(ev);
	json_array_foreach(names, i, x) {
		int	    lk;
		struct vpp *v = client(json_string_value(x), o, &lk);

		r = v == NULL ? 1 : resume(v, json_string_value(x), only,
		    deadline);
		vpp_free(v);
		if (lk >= 0)
			(void)close(lk);
		if (r != 0 && (rc == 0 || rc == EXIT_FAILURES))
			rc = r;
	}
	if (json_array_size(names) == 0)
		fprintf(stderr, "picomdm-vpp: no pending events\n");
	json_decref(names);
	return rc;
}

/* The items of a command (argv), checked: new array or NULL (usage). */
static json_t *
items_of(int argc, char **argv, int user)
{
	json_t *a = json_array();

	for (int i = 0; a != NULL && i < argc; i++) {
		if (user ? !vpp_guid_ok(argv[i]) : !serial_ok(argv[i])) {
			fprintf(stderr, "picomdm-vpp: %s: not a %s\n", argv[i],
			    user ? "clientUserId (a GUID: 8-4-4-4-12 hex "
			    "digits)" : "serial number (8 to 20 letters and "
			    "digits)");
			json_decref(a);
			return NULL;
		}
		for (int k = 0; k < i; k++)
			if (strcmp(argv[k], argv[i]) == 0) {
				fprintf(stderr, "picomdm-vpp: %s given twice\n",
				    argv[i]);
				json_decref(a);
				return NULL;
			}
		json_array_append_new(a, json_string(argv[i]));
	}
	return a;
}

static void
wusage(const char *why)
{
	fprintf(stderr, "picomdm-vpp: %s (man picomdm-vpp, \"Writes\")\n",
	    why);
}

int
vppw_main(const char *dir, int argc, char **argv, const struct vpp_opts *o)
{
	struct store_opts so = { 0 };
	struct wreq	  r = { 0 };
	const char	 *cmd = argv[0], *only = NULL;
	char		 *token = NULL;
	char		  guid[37];
	int		  rc, is_write = 1;

	/* The command line first, whole. */
	if (strcmp(cmd, "events") == 0 || strcmp(cmd, "poll") == 0) {
		is_write = 0;
		if (argc > (cmd[0] == 'p' ? 2 : 1) || w.serial || w.user ||
		    w.email || w.maid || w.no_wait ||
		    (w.pending && cmd[0] == 'p')) {
			wusage("events [--pending] or poll [EVENTID]");
			return 2;
		}
		only = argc == 2 ? argv[1] : NULL;
	} else if (w.pending) {
		wusage("--pending is for events");
		return 2;
	} else if (strcmp(cmd, "user") == 0) {
		if (argc >= 2 && strcmp(argv[1], "create") == 0 && argc == 2) {
			r.type = W_CREATE;
			if ((w.email && !email_ok(w.email)) ||
			    (w.maid && !email_ok(w.maid))) {
				fprintf(stderr, "picomdm-vpp: --email and "
				    "--managed-apple-id take an address "
				    "(name@domain, at most 255 bytes)\n");
				return 2;
			}
			if (vpp_client_user_id(guid) != 0) {
				fprintf(stderr, "picomdm-vpp: no randomness "
				    "for a clientUserId\n");
				return 1;
			}
			r.items = json_pack("[s]", guid);
		} else if (argc >= 3 && strcmp(argv[1], "retire") == 0) {
			r.type = W_RETIRE;
			if ((r.items = items_of(argc - 2, argv + 2, 1)) == NULL)
				return 2;
		} else {
			wusage("user create [--email E] [--managed-apple-id X] "
			    "or user retire GUID...");
			return 2;
		}
		if ((w.email || w.maid) && r.type != W_CREATE) {
			json_decref(r.items);
			wusage("--email and --managed-apple-id are for user "
			    "create");
			return 2;
		}
		if (w.serial || w.user) {
			json_decref(r.items);
			wusage("user takes no --serial or --user");
			return 2;
		}
		r.user = 1;
	} else {
		int first = strcmp(cmd, "revoke") == 0 ? 1 : 2;

		r.type = cmd[0] == 'a' ? W_ASSOC : cmd[0] == 'u' ? W_DISASSOC :
		    W_REVOKE;
		if (w.serial == w.user || argc <= first || w.email || w.maid) {
			wusage(first == 1 ? "revoke --serial SERIAL... | --user "
			    "GUID..." : "assign|unassign ADAMID --serial "
			    "SERIAL... | --user GUID...");
			return 2;
		}
		if (first == 2) {
			r.adam = argv[1];
			if (!adam_ok(r.adam)) {
				fprintf(stderr, "picomdm-vpp: %s: not an adamId "
				    "(1 to 20 digits)\n", r.adam);
				return 2;
			}
		}
		r.user = w.user;
		if ((r.items = items_of(argc - first, argv + first,
		    r.user)) == NULL)
			return 2;
	}
	so.readonly = strcmp(cmd, "events") == 0;
	db_dir = dir;
	if ((rc = store_open(dir, &so, &db)) != 0) {
		json_decref(r.items);
		fprintf(stderr, "picomdm-vpp: %s: %s\n", dir,
		    store_strerror(rc));
		return 1;
	}
	if (!is_write && w.token == NULL)
		token = NULL; /* every token's events */
	else if ((token = which_token()) == NULL) {
		rc = 1;
		goto out;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(cmd, "events") == 0)
		rc = events_cmd(token);
	else if (strcmp(cmd, "poll") == 0)
		rc = poll_cmd(token, only, o);
	else
		rc = write_cmd(token, &r, o);
	curl_global_cleanup();
out:
	free(token);
	json_decref(r.items);
	store_close(db);
	return rc;
}
