/*
 * dep_store.c - the store-backed commands of picomdm-dep(8) (--db DIR):
 * ADE tokens (new, import, list, remove) and sync, which keeps Apple's
 * device records in the store (picomdm/store_ade.h). Each page of
 * devices is applied in one write transaction together with the cursor
 * that follows it, so a sync killed at any point resumes from the last
 * page applied: no page is skipped and none is applied twice.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dep_tool.h"
#include "picomdm/dep.h"
#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/store_ade.h"
#include "picomdm/util.h"

#define WARN_DAYS 30
#define US_DAY	  (86400ULL * 1000000)

static struct store *
open_store(const char *dir, int readonly)
{
	struct store_opts so;
	struct store	 *s;
	int		  rc;

	memset(&so, 0, sizeof(so));
	so.readonly = readonly;
	if (access(dir, F_OK) == -1) {
		fprintf(stderr, "picomdm-dep: %s: no such store\n", dir);
		return NULL;
	}
	if ((rc = store_open(dir, &so, &s)) != 0) {
		fprintf(
		    stderr, "picomdm-dep: %s: %s\n", dir, store_strerror(rc));
		return NULL;
	}
	return s;
}

static int
store_failed(const char *what, int rc)
{
	fprintf(stderr, "picomdm-dep: %s: %s\n", what, store_strerror(rc));
	return EX_FAIL;
}

static int
name_valid(const char *name)
{
	size_t i, n = strlen(name);

	if (n == 0 || n > STORE_ADE_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return 0;
	return 1;
}

/* ---- token new ---- */

struct new_op {
	struct store_ade_token *tk;
};

static int
op_token_new(struct store_txn *t, void *arg)
{
	struct new_op	       *no = arg;
	struct store_ade_token *old = NULL;
	int			rc;

	rc = store_ade_token_get(t, no->tk->name, &old);
	store_ade_token_free(old);
	if (rc == 0)
		return STORE_EEXIST;
	if (rc != STORE_ENOTFOUND)
		return rc;
	no->tk->created_at = store_txn_now(t);
	return store_ade_token_put(t, no->tk);
}

int
dep_db_token_new(const struct dep_tool *o, int argc, char *argv[])
{
	struct store_ade_token tk;
	struct new_op	       no = {&tk};
	struct store	      *s;
	char		      *cert = NULL, *key = NULL;
	enum dep_status	       ds;
	int		       rc = EX_FAIL, r;

	if (argc != 1)
		return -1;
	if (!name_valid(argv[0])) {
		fprintf(stderr,
		    "picomdm-dep: token new: NAME must be 1 to %d "
		    "printable characters\n",
		    STORE_ADE_NAME_MAX);
		return EX_USAGE;
	}
	if ((ds = dep_token_new(argv[0], o->days, &cert, &key)) != DEP_OK) {
		fprintf(stderr, "picomdm-dep: token new %s: %s\n", argv[0],
		    dep_strerror(ds));
		return EX_FAIL;
	}
	if ((s = open_store(o->db, 0)) == NULL)
		goto out;
	memset(&tk, 0, sizeof(tk));
	tk.name = argv[0];
	tk.key_pem = key;
	tk.cert_pem = cert;
	r = store_write(s, op_token_new, &no);
	store_close(s);
	if (r == STORE_EEXIST) {
		fprintf(stderr,
		    "picomdm-dep: token new: a token named %s exists "
		    "(token remove it first)\n",
		    argv[0]);
		goto out;
	}
	if (r != 0) {
		rc = store_failed("token new", r);
		goto out;
	}
	if (o->out != NULL) {
		if (dep_file_write(o->out, cert, strlen(cert), 0644, 1) != 0)
			goto out;
		printf("certificate %s (upload it to Apple Business Manager)\n",
		    o->out);
	} else
		fputs(cert, stdout);
	rc = 0;
out:
	if (key != NULL)
		freezero(key, strlen(key));
	free(cert);
	return rc;
}

/* ---- token import ---- */

struct import_op {
	const char     *name;
	const char     *p7m;
	size_t		len;
	enum dep_status ds;
	uint64_t	expiry;
};

static int
op_token_import(struct store_txn *t, void *arg)
{
	struct import_op       *io = arg;
	struct store_ade_token *tk = NULL;
	struct dep_oauth	oa = {0};
	int			rc;

	io->ds = DEP_OK;
	io->expiry = 0;
	if ((rc = store_ade_token_get(t, io->name, &tk)) != 0)
		return rc;
	if (tk->key_pem == NULL || tk->cert_pem == NULL) {
		store_ade_token_free(tk);
		io->ds = DEP_ERR_KEY;
		return STORE_EINVAL;
	}
	io->ds = dep_token_decrypt(
	    io->p7m, io->len, tk->key_pem, tk->cert_pem, store_txn_now(t), &oa);
	io->expiry = oa.expiry_us;
	if (io->ds != DEP_OK) {
		dep_oauth_clear(&oa);
		store_ade_token_free(tk);
		return STORE_EINVAL;
	}
	/* The new credentials replace the old: a renewed token keeps its
	 * cursor, devices and account. */
	dep_store_swap(&tk->consumer_key, &oa.consumer_key);
	dep_store_swap(&tk->consumer_secret, &oa.consumer_secret);
	dep_store_swap(&tk->access_token, &oa.access_token);
	dep_store_swap(&tk->access_secret, &oa.access_secret);
	tk->expiry = oa.expiry_us;
	tk->imported_at = store_txn_now(t);
	rc = store_ade_token_put(t, tk);
	dep_oauth_clear(&oa);
	store_ade_token_free(tk);
	return rc;
}

void
dep_store_swap(char **a, char **b)
{
	char *x = *a;

	*a = *b;
	*b = x;
}

int
dep_db_token_import(const struct dep_tool *o, int argc, char *argv[])
{
	struct import_op io;
	struct store	*s;
	char		 when[32];
	size_t		 n;
	char		*p7m;
	int		 r, d;

	if (argc != 2)
		return -1;
	if ((p7m = dep_file_read(argv[1], &n)) == NULL)
		return EX_FAIL;
	if ((s = open_store(o->db, 0)) == NULL) {
		free(p7m);
		return EX_FAIL;
	}
	memset(&io, 0, sizeof(io));
	io.name = argv[0];
	io.p7m = p7m;
	io.len = n;
	r = store_write(s, op_token_import, &io);
	store_close(s);
	free(p7m);
	if (r == STORE_ENOTFOUND) {
		fprintf(stderr,
		    "picomdm-dep: token import: no token named %s "
		    "(make it with token new)\n",
		    argv[0]);
		return EX_FAIL;
	}
	if (io.ds == DEP_ERR_TOKEN_EXPIRED) {
		time_format(io.expiry, when, sizeof(when));
		fprintf(stderr, "picomdm-dep: %s: the token expired on %s\n",
		    argv[1], when);
		return EX_FAIL;
	}
	if (io.ds != DEP_OK) {
		fprintf(stderr, "picomdm-dep: %s: %s\n", argv[1],
		    dep_strerror(io.ds));
		return EX_FAIL;
	}
	if (r != 0)
		return store_failed("token import", r);
	time_format(io.expiry, when, sizeof(when));
	printf("token %s imported, expiry %s\n", argv[0], when);
	d = (int)((io.expiry - time_now_us()) / US_DAY);
	if (d < WARN_DAYS)
		fprintf(stderr,
		    "picomdm-dep: warning: token %s expires in %d days; "
		    "renew it in Apple Business Manager\n",
		    argv[0], d);
	return 0;
}

/* ---- token list ---- */

struct count_arg {
	const char *name;
	size_t	    n, deleted;
};

static int
count_cb(const struct store_ade_device *d, void *arg)
{
	struct count_arg *ca = arg;

	if (d->token == NULL || strcmp(d->token, ca->name) != 0)
		return 0;
	if (d->f[ADE_OP_TYPE] != NULL &&
	    strcmp(d->f[ADE_OP_TYPE], "deleted") == 0)
		ca->deleted++;
	else
		ca->n++;
	return 0;
}

static json_t *
j_time_or_null(uint64_t us)
{
	char b[32];

	if (us == 0)
		return json_null();
	time_format(us, b, sizeof(b));
	return json_string(b);
}

static json_t *
j_str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static int
list_cb(const struct store_ade_token *tk, void *arg)
{
	struct store_txn *t = arg;
	struct count_arg  ca = {tk->name, 0, 0};
	json_t		 *j;
	char		 *s;
	int		  rc, days = 0;
	uint64_t	  now = time_now_us();

	if ((rc = store_ade_device_each(t, NULL, count_cb, &ca)) != 0)
		return rc;
	if (tk->expiry != 0)
		days =
		    tk->expiry > now ? (int)((tk->expiry - now) / US_DAY) : -1;
	j = json_pack("{s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b, "
		      "s:o, s:I, s:I}",
	    "name", tk->name, "imported", tk->access_token != NULL, "org_name",
	    j_str_or_null(tk->acct[ADE_ACCT_ORG_NAME]), "org_id",
	    j_str_or_null(tk->acct[ADE_ACCT_ORG_ID]), "server_name",
	    j_str_or_null(tk->acct[ADE_ACCT_SERVER_NAME]), "server_uuid",
	    j_str_or_null(tk->acct[ADE_ACCT_SERVER_UUID]), "expiry",
	    j_time_or_null(tk->expiry), "days_left",
	    tk->expiry != 0 ? json_integer(days) : json_null(), "synced_at",
	    j_time_or_null(tk->synced_at), "fetched", tk->fetched != 0,
	    "default_profile", j_str_or_null(tk->default_profile), "devices",
	    (json_int_t)ca.n, "deleted", (json_int_t)ca.deleted);
	if (j == NULL)
		return STORE_ENOMEM;
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (s == NULL)
		return STORE_ENOMEM;
	printf("%s\n", s);
	free(s);
	if (tk->expiry != 0 && days < 0)
		fprintf(stderr,
		    "picomdm-dep: warning: token %s has expired; "
		    "download a new one and token import it\n",
		    tk->name);
	else if (tk->expiry != 0 && days < WARN_DAYS)
		fprintf(stderr,
		    "picomdm-dep: warning: token %s expires in %d days; "
		    "renew it in Apple Business Manager\n",
		    tk->name, days);
	return 0;
}

static int
op_list(struct store_txn *t, void *arg)
{
	(void)arg;
	return store_ade_token_each(t, list_cb, t);
}

int
dep_db_token_list(const struct dep_tool *o, int argc, char *argv[])
{
	struct store *s;
	int	      r;

	(void)argv;
	if (argc != 0)
		return -1;
	if ((s = open_store(o->db, 1)) == NULL)
		return EX_FAIL;
	r = store_read(s, op_list, NULL);
	store_close(s);
	if (fflush(stdout) != 0)
		return EX_FAIL;
	return r != 0 ? store_failed("token list", r) : 0;
}

/* ---- token remove ---- */

struct remove_op {
	const char		  *name;
	int			   purge;
	struct store_purge_report *r;
};

static int
op_remove(struct store_txn *t, void *arg)
{
	struct remove_op *ro = arg;
	int		  rc;

	if (!ro->purge)
		return store_ade_token_del(t, ro->name);
	store_purge_report_free(ro->r);
	/* Every ADE record through the token, the token itself too; an
	 * Apps and Books token of the same name is not this one. */
	if ((rc = store_purge_source(t, STORE_SOURCE_TOKEN, ro->name, ro->r)) !=
	    0)
		return rc;
	return 0;
}

static uint64_t
report_count(const struct store_purge_report *r, const char *db)
{
	size_t i;

	for (i = 0; i < r->ndb; i++)
		if (strcmp(r->db[i], db) == 0)
			return r->removed[i];
	return 0;
}

int
dep_db_token_remove(const struct dep_tool *o, int argc, char *argv[])
{
	struct store_purge_report rep;
	struct remove_op	  ro = {NULL, o->purge, &rep};
	struct store		 *s;
	int			  r;

	if (argc != 1)
		return -1;
	memset(&rep, 0, sizeof(rep));
	ro.name = argv[0];
	if ((s = open_store(o->db, 0)) == NULL)
		return EX_FAIL;
	/* Without --purge: the token must exist. */
	r = store_write(s, op_remove, &ro);
	store_close(s);
	if (r == STORE_ENOTFOUND) {
		fprintf(stderr,
		    "picomdm-dep: token remove: no token named %s\n", argv[0]);
		store_purge_report_free(&rep);
		return EX_FAIL;
	}
	if (r != 0) {
		store_purge_report_free(&rep);
		return store_failed("token remove", r);
	}
	if (o->purge)
		printf("token %s removed with %llu ADE device records\n",
		    argv[0],
		    (unsigned long long)report_count(&rep, "ade_device"));
	else
		printf("token %s removed (its device records are kept; "
		       "purge --token %s removes them)\n",
		    argv[0], argv[0]);
	store_purge_report_free(&rep);
	return 0;
}

/* ---- sync ---- */

static volatile sig_atomic_t stop_asked;

static void
on_stop(int sig)
{
	(void)sig;
	stop_asked = 1;
}

/* One page of Apple's answer, applied with its cursor in one
 * transaction (an op may run again: outputs are reset on entry). */
struct page_op {
	const char *token;
	json_t	   *devices;
	const char *cursor;  /* the cursor that follows this page */
	int	    fetched; /* the token's state after this page */
	json_t	   *account; /* /account's answer, or NULL */
	/* out */
	size_t	applied, added, skipped, ignored;
	json_t *new_serials; /* added devices, for auto-assign */
};

static int
op_page(struct store_txn *t, void *arg)
{
	struct page_op	       *po = arg;
	struct store_ade_token *tk = NULL;
	struct store_ade_device d;
	json_t		       *e, *v;
	size_t			i, j;
	int			rc, changed, added;

	po->applied = po->added = po->skipped = po->ignored = 0;
	json_array_clear(po->new_serials);
	if ((rc = store_ade_token_get(t, po->token, &tk)) != 0)
		return rc;
	for (i = 0; i < json_array_size(po->devices); i++) {
		e = json_array_get(po->devices, i);
		memset(&d, 0, sizeof(d));
		for (j = 0; json_is_object(e) && j < ADE_DEV__MAX; j++) {
			v = json_object_get(e, store_ade_field_names[j]);
			if (json_is_string(v))
				d.f[j] =
				    (char *)(uintptr_t)json_string_value(v);
		}
		if (d.f[ADE_SERIAL] == NULL || *d.f[ADE_SERIAL] == '\0' ||
		    strlen(d.f[ADE_SERIAL]) > 255) {
			po->skipped++;
			continue;
		}
		if ((rc = store_ade_device_apply(
			 t, po->token, &d, &changed, &added)) != 0)
			goto out;
		if (changed)
			po->applied++;
		else
			po->ignored++;
		if (added) {
			po->added++;
			json_array_append_new(
			    po->new_serials, json_string(d.f[ADE_SERIAL]));
		}
	}
	if (po->account != NULL) {
		for (j = 0; j < ADE_ACCT__MAX; j++) {
			v = json_object_get(
			    po->account, store_ade_account_names[j]);
			free(tk->acct[j]);
			tk->acct[j] = json_is_string(v)
			    ? strdup(json_string_value(v))
			    : NULL;
		}
		tk->account_at = store_txn_now(t);
	}
	/* The cursor that follows the page, in the page's transaction. */
	if (po->cursor != NULL) {
		free(tk->cursor);
		if ((tk->cursor = strdup(po->cursor)) == NULL) {
			rc = STORE_ENOMEM;
			goto out;
		}
		tk->fetched = po->fetched;
		tk->synced_at = store_txn_now(t);
	}
	rc = store_ade_token_put(t, tk);
out:
	store_ade_token_free(tk);
	return rc;
}

static int
op_get_token(struct store_txn *t, void *arg)
{
	void **a = arg;

	return store_ade_token_get(t, a[0], (struct store_ade_token **)a[1]);
}

struct names {
	char **v;
	size_t n;
};

static int
names_cb(const struct store_ade_token *tk, void *arg)
{
	struct names *nm = arg;
	char	    **v;

	if ((v = realloc(nm->v, (nm->n + 1) * sizeof(*v))) == NULL)
		return STORE_ENOMEM;
	nm->v = v;
	if ((v[nm->n] = strdup(tk->name)) == NULL)
		return STORE_ENOMEM;
	nm->n++;
	return 0;
}

static int
op_names(struct store_txn *t, void *arg)
{
	return store_ade_token_each(t, names_cb, arg);
}

/* Apply one page with its cursor (or only the account). */
static int
apply_page(struct store *s, struct page_op *po)
{
	int rc;

	if ((rc = store_write(s, op_page, po)) != 0)
		fprintf(stderr, "picomdm-dep: sync %s: %s\n", po->token,
		    store_strerror(rc));
	return rc;
}

/*
 * Assign (or, remove set, take off) profile uuid for serials, in calls
 * of at most 1,000 (Apple's limit). Serials Apple answers THROTTLED are
 * sent again after retry_after_seconds (1 when absent, at most
 * --max-wait), up to ASSIGN_TRIES times. Every serial not answered
 * SUCCESS is put in failed (serial -> Apple's answer). 0, or the
 * dep_status of a call that failed whole.
 */
#define ASSIGN_TRIES 5
static enum dep_status
assign_serials(const struct dep_tool *o, struct dep_client *c, const char *uuid,
    int remove, json_t *serials, size_t *ok, json_t *failed)
{
	json_t	       *batch, *todo, *r = NULL, *req, *res, *v;
	enum dep_status ds = DEP_OK;
	const char     *serial;
	size_t		i, j, n;
	long long	wait;
	unsigned	max_wait = o->cfg.max_wait ? o->cfg.max_wait : 60;
	int		tries;

	*ok = 0;
	for (i = 0; i < json_array_size(serials) && ds == DEP_OK; i += n) {
		n = json_array_size(serials) - i;
		if (n > 1000)
			n = 1000;
		if ((todo = json_array()) == NULL)
			return DEP_ERR_SYSTEM;
		for (j = 0; j < n; j++)
			json_array_append(todo, json_array_get(serials, i + j));
		for (tries = 0; json_array_size(todo) > 0; tries++) {
			batch = todo;
			if ((todo = json_array()) == NULL) {
				json_decref(batch);
				return DEP_ERR_SYSTEM;
			}
			req = remove ? json_pack("{s:O}", "devices", batch)
				     : json_pack("{s:s, s:O}", "profile_uuid",
					   uuid, "devices", batch);
			ds = req == NULL
			    ? DEP_ERR_SYSTEM
			    : dep_call(c, remove ? "DELETE" : "POST",
				  "/profile/devices", req, &r);
			json_decref(req);
			if (ds == DEP_OK &&
			    !json_is_object(json_object_get(r, "devices")))
				ds = DEP_ERR_PROTOCOL;
			if (ds != DEP_OK) {
				json_decref(batch);
				break;
			}
			res = json_object_get(r, "devices");
			for (j = 0; j < json_array_size(batch); j++) {
				serial =
				    json_string_value(json_array_get(batch, j));
				v = json_object_get(res, serial);
				if (json_is_string(v) &&
				    strcmp(json_string_value(v), "SUCCESS") ==
					0)
					(*ok)++;
				else if (json_is_string(v) &&
				    strcmp(json_string_value(v), "THROTTLED") ==
					0 &&
				    tries + 1 < ASSIGN_TRIES)
					json_array_append(
					    todo, json_array_get(batch, j));
				else
					json_object_set_new(failed, serial,
					    json_string(json_is_string(v)
						    ? json_string_value(v)
						    : "NO_ANSWER"));
			}
			wait = json_integer_value(
			    json_object_get(r, "retry_after_seconds"));
			json_decref(r);
			r = NULL;
			json_decref(batch);
			if (json_array_size(todo) == 0)
				break;
			if (wait < 1)
				wait = 1;
			if (wait > max_wait)
				wait = max_wait;
			log_info("%zu devices THROTTLED: again in %lld s",
			    json_array_size(todo), wait);
			sleep((unsigned)wait);
		}
		json_decref(todo);
	}
	return ds;
}

/* Assign newly added devices to the token's default profile. Failures
 * are reported, not fatal: the devices stay in the store and can be
 * assigned by hand (profile assign). */
static void
auto_assign(const struct dep_tool *o, struct dep_client *c, const char *token,
    const char *profile, json_t *serials)
{
	json_t	       *failed = json_object();
	size_t		ok = 0;
	enum dep_status ds;

	ds = assign_serials(o, c, profile, 0, serials, &ok, failed);
	if (ds != DEP_OK)
		fprintf(stderr,
		    "picomdm-dep: sync %s: assigning profile %s: %s\n", token,
		    profile, dep_strerror(ds));
	else if (json_object_size(failed) > 0)
		fprintf(stderr,
		    "picomdm-dep: sync %s: profile %s not assigned to %zu "
		    "devices\n",
		    token, profile, json_object_size(failed));
	else
		log_info("sync %s: profile %s assigned to %zu devices", token,
		    profile, ok);
	json_decref(failed);
}

/*
 * The client of a stored, imported, unexpired token (*tk kept for the
 * caller when tk is not NULL). 0 or an exit status after a message.
 */
static int
token_client(const struct dep_tool *o, struct store *s, const char *name,
    struct dep_client **c, struct store_ade_token **tkout)
{
	struct store_ade_token *tk = NULL;
	struct dep_oauth	oa = {0};
	void		       *a[2] = {(void *)(uintptr_t)name, &tk};
	int			rc;

	*c = NULL;
	if ((rc = store_read(s, op_get_token, a)) != 0) {
		if (rc == STORE_ENOTFOUND)
			fprintf(
			    stderr, "picomdm-dep: no token named %s\n", name);
		else
			store_failed(name, rc);
		return EX_FAIL;
	}
	if (tk->access_token == NULL) {
		fprintf(stderr,
		    "picomdm-dep: %s: no server token imported yet "
		    "(token import %s FILE.p7m)\n",
		    name, name);
		store_ade_token_free(tk);
		return EX_FAIL;
	}
	if (tk->expiry <= time_now_us()) {
		fprintf(stderr,
		    "picomdm-dep: %s: the token has expired; download "
		    "a new one and token import it\n",
		    name);
		store_ade_token_free(tk);
		return EX_FAIL;
	}
	oa.consumer_key = tk->consumer_key;
	oa.consumer_secret = tk->consumer_secret;
	oa.access_token = tk->access_token;
	oa.access_secret = tk->access_secret;
	oa.expiry_us = tk->expiry;
	if ((*c = dep_client_new(&o->cfg, &oa)) == NULL) {
		fprintf(stderr, "picomdm-dep: bad --url or out of memory\n");
		store_ade_token_free(tk);
		return EX_USAGE;
	}
	if (tkout != NULL)
		*tkout = tk;
	else
		store_ade_token_free(tk);
	return 0;
}

/*
 * One pass for one token: /account, then the full fetch (from the
 * stored cursor when it was interrupted) until more_to_follow is false,
 * then /devices/sync until more_to_follow is false. 0 or an exit status.
 */
static int
sync_token(const struct dep_tool *o, struct store *s, const char *name)
{
	struct store_ade_token *tk = NULL;
	struct dep_client      *c = NULL;
	struct page_op		po;
	json_t		       *r = NULL, *acct = NULL;
	enum dep_status		ds;
	char		       *cursor = NULL, *profile = NULL;
	const char	       *nc;
	size_t			fetched_n = 0, synced_n = 0, pages = 0;
	int			rc, fetched, restarts = 0, more, tty;

	if ((rc = token_client(o, s, name, &c, &tk)) != 0)
		return rc;
	cursor = tk->cursor != NULL ? strdup(tk->cursor) : NULL;
	fetched = tk->fetched && cursor != NULL;
	profile = tk->default_profile != NULL && o->auto_assign
	    ? strdup(tk->default_profile)
	    : NULL;
	store_ade_token_free(tk);
	memset(&po, 0, sizeof(po));
	po.token = name;
	po.new_serials = json_array();
	tty = isatty(STDERR_FILENO);
	rc = 0;
	if ((ds = dep_account(c, &acct)) != DEP_OK) {
		rc = dep_call_failed(c, "account", ds);
		goto out;
	}
	po.account = acct;
	if (apply_page(s, &po) != 0) {
		rc = EX_FAIL;
		goto out;
	}
	po.account = NULL;
	while (!stop_asked) {
		ds = fetched ? dep_devices_sync(c, cursor, o->limit, &r)
			     : dep_devices_fetch(c, cursor, o->limit, &r);
		if (ds == DEP_ERR_CURSOR_EXHAUSTED && !fetched) {
			log_info("sync %s: fetch complete: syncing", name);
			fetched = 1;
			continue;
		}
		if ((ds == DEP_ERR_CURSOR_EXPIRED ||
			ds == DEP_ERR_CURSOR_INVALID) &&
		    cursor != NULL && restarts++ == 0) {
			fprintf(stderr,
			    "picomdm-dep: sync %s: %s: fetching every device "
			    "again\n",
			    name, dep_strerror(ds));
			free(cursor);
			cursor = NULL;
			fetched = 0;
			continue;
		}
		if (ds != DEP_OK) {
			rc = dep_call_failed(c, fetched ? "sync" : "fetch", ds);
			goto out;
		}
		nc = json_string_value(json_object_get(r, "cursor"));
		more = json_is_true(json_object_get(r, "more_to_follow"));
		if (nc == NULL || *nc == '\0' ||
		    !json_is_array(json_object_get(r, "devices"))) {
			fprintf(stderr,
			    "picomdm-dep: sync %s: a page without a cursor or "
			    "devices: stopped (nothing of it applied)\n",
			    name);
			rc = EX_FAIL;
			goto out;
		}
		po.devices = json_object_get(r, "devices");
		po.cursor = nc;
		/* The page that ends the full fetch makes the token's
		 * cursor a sync cursor. */
		po.fetched = fetched || !more;
		if (apply_page(s, &po) != 0) {
			rc = EX_FAIL;
			goto out;
		}
		pages++;
		if (fetched)
			synced_n += po.applied;
		else
			fetched_n += po.applied;
		if (po.skipped > 0)
			log_warn("sync %s: %zu device entries without a "
				 "serial_number skipped",
			    name, po.skipped);
		if (profile != NULL && json_array_size(po.new_serials) > 0)
			auto_assign(o, c, name, profile, po.new_serials);
		free(cursor);
		if ((cursor = strdup(nc)) == NULL) {
			rc = EX_FAIL;
			goto out;
		}
		json_decref(r);
		r = NULL;
		if (tty && !o->quiet)
			fprintf(stderr,
			    "\rpicomdm-dep: %s: %zu fetched, %zu "
			    "synced",
			    name, fetched_n, synced_n);
		if (more)
			continue;
		if (fetched)
			break;
		fetched = 1;
	}
	if (tty && !o->quiet && pages > 0)
		fputc('\n', stderr);
	if (stop_asked)
		rc = EX_FAIL;
	else
		fprintf(stderr,
		    "picomdm-dep: sync %s: %zu devices fetched, %zu changes "
		    "synced, %zu pages\n",
		    name, fetched_n, synced_n, pages);
out:
	json_decref(r);
	json_decref(acct);
	json_decref(po.new_serials);
	free(cursor);
	free(profile);
	dep_client_free(c);
	return rc;
}

int
dep_db_sync(const struct dep_tool *o, int argc, char *argv[])
{
	struct names	 nm = {NULL, 0};
	struct store	*s;
	struct sigaction sa;
	char		 path[4096];
	size_t		 i;
	int		 rc = 0, r, lk = -1;

	if (argc > 1)
		return -1;
	if ((s = open_store(o->db, 0)) == NULL)
		return EX_FAIL;
	/* One sync per store at a time, held until exit (store.h). */
	errno = ENAMETOOLONG;
	if ((size_t)snprintf(path, sizeof(path), "%s/data.mdb", o->db) >=
	    sizeof(path) ||
	    (lk = lock_slot(path, STORE_ROLE_DEP_SYNC)) < 0) {
		if (lk == -2)
			fprintf(stderr, "picomdm-dep: %s: another picomdm-dep "
			    "sync is running on this store (one at a time; "
			    "is picomdm-dep.service running?)\n", o->db);
		else
			fprintf(stderr, "picomdm-dep: %s: %s\n", path,
			    strerror(errno));
		store_close(s);
		return EX_FAIL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	do {
		if (argc == 1) {
			rc = sync_token(o, s, argv[0]);
		} else {
			if ((r = store_read(s, op_names, &nm)) != 0) {
				rc = store_failed("sync", r);
				break;
			}
			if (nm.n == 0 && !o->daemon)
				fprintf(stderr,
				    "picomdm-dep: sync: no token (token new, "
				    "then token import)\n");
			for (i = 0, rc = 0; i < nm.n && !stop_asked; i++)
				if ((r = sync_token(o, s, nm.v[i])) != 0)
					rc = r;
			for (i = 0; i < nm.n; i++)
				free(nm.v[i]);
			free(nm.v);
			nm.v = NULL;
			nm.n = 0;
		}
		/* Daemon: every interval, a failure reported and retried. */
		for (i = 0; o->daemon && !stop_asked && i < o->interval; i++)
			sleep(1);
	} while (o->daemon && !stop_asked);
	store_close(s);
	(void)close(lk);
	return o->daemon && stop_asked ? 0 : rc;
}

/* ---- default profile ---- */

struct profile_op {
	const char *name, *uuid;
};

static int
op_profile(struct store_txn *t, void *arg)
{
	struct profile_op      *po = arg;
	struct store_ade_token *tk = NULL;
	int			rc;

	if ((rc = store_ade_token_get(t, po->name, &tk)) != 0)
		return rc;
	free(tk->default_profile);
	tk->default_profile = po->uuid != NULL ? strdup(po->uuid) : NULL;
	rc = po->uuid != NULL && tk->default_profile == NULL
	    ? STORE_ENOMEM
	    : store_ade_token_put(t, tk);
	store_ade_token_free(tk);
	return rc;
}

/* token default NAME UUID|none: the profile auto-assigned to devices
 * newly added through the token (sync --auto-assign). */
int
dep_db_token_default(const struct dep_tool *o, int argc, char *argv[])
{
	struct profile_op po;
	struct store	 *s;
	int		  r;

	if (argc != 2)
		return -1;
	po.name = argv[0];
	po.uuid = strcmp(argv[1], "none") == 0 ? NULL : argv[1];
	if (po.uuid != NULL && (strlen(po.uuid) > 64 || *po.uuid == '\0'))
		return -1;
	if ((s = open_store(o->db, 0)) == NULL)
		return EX_FAIL;
	r = store_write(s, op_profile, &po);
	store_close(s);
	if (r == STORE_ENOTFOUND) {
		fprintf(stderr,
		    "picomdm-dep: token default: no token named "
		    "%s\n",
		    argv[0]);
		return EX_FAIL;
	}
	return r != 0 ? store_failed("token default", r) : 0;
}

/* ---- profiles ---- */

/*
 * profile define TOKEN FILE.json [--enroll-url URL] [--default]: the
 * JSON's url defaults to --enroll-url, picomdm's enrollment URL
 * (https://HOST/mdm/enroll); with --default the new profile becomes the
 * token's default (sync --auto-assign).
 */
static int
profile_define(const struct dep_tool *o, struct store *s, struct dep_client *c,
    const char *token, const char *file)
{
	struct profile_op po;
	json_t		 *p, *r = NULL;
	json_error_t	  e;
	enum dep_status	  ds;
	const char	 *url;
	int		  rc;

	if ((p = json_load_file(file, JSON_REJECT_DUPLICATES, &e)) == NULL) {
		fprintf(
		    stderr, "picomdm-dep: %s:%d: %s\n", file, e.line, e.text);
		return EX_FAIL;
	}
	if (!json_is_object(p) ||
	    !json_is_string(json_object_get(p, "profile_name"))) {
		fprintf(stderr,
		    "picomdm-dep: %s: a profile is a JSON object "
		    "with profile_name\n",
		    file);
		json_decref(p);
		return EX_FAIL;
	}
	if (json_object_get(p, "url") == NULL && o->enroll_url != NULL)
		json_object_set_new(p, "url", json_string(o->enroll_url));
	url = json_string_value(json_object_get(p, "url"));
	if (url == NULL || strncmp(url, "https://", 8) != 0) {
		fprintf(stderr,
		    "picomdm-dep: %s: no https url: give picomdm's enrollment "
		    "URL with --enroll-url https://HOST/mdm/enroll\n",
		    file);
		json_decref(p);
		return EX_FAIL;
	}
	ds = dep_profile_define(c, p, &r);
	json_decref(p);
	if (ds != DEP_OK)
		return dep_call_failed(c, "profile define", ds);
	if (!json_is_string(json_object_get(r, "profile_uuid"))) {
		json_decref(r);
		return dep_call_failed(c, "profile define", DEP_ERR_PROTOCOL);
	}
	printf("%s\n", json_string_value(json_object_get(r, "profile_uuid")));
	rc = 0;
	if (o->make_default) {
		po.name = token;
		po.uuid = json_string_value(json_object_get(r, "profile_uuid"));
		if ((rc = store_write(s, op_profile, &po)) != 0)
			rc = store_failed("profile define --default", rc);
	}
	json_decref(r);
	return rc;
}

/* profile assign|remove TOKEN [UUID] SERIAL...: one JSON line with the
 * count assigned and the serials that were not, with Apple's answer;
 * exit 1 when any was not. */
static int
profile_assign(const struct dep_tool *o, struct dep_client *c, int remove,
    const char *uuid, int argc, char *argv[])
{
	json_t	       *serials = json_array(), *failed = json_object(), *out;
	enum dep_status ds;
	size_t		ok = 0;
	int		i, rc;

	for (i = 0; i < argc; i++)
		json_array_append_new(serials, json_string(argv[i]));
	ds = assign_serials(o, c, uuid, remove, serials, &ok, failed);
	json_decref(serials);
	if (ds != DEP_OK) {
		json_decref(failed);
		return dep_call_failed(
		    c, remove ? "profile remove" : "profile assign", ds);
	}
	rc = json_object_size(failed) > 0 ? EX_FAIL : 0;
	out = json_pack("{s:o, s:I, s:o}", "profile_uuid",
	    uuid != NULL ? json_string(uuid) : json_null(),
	    remove ? "removed" : "assigned", (json_int_t)ok, "failed", failed);
	if (out != NULL) {
		char *t = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);

		if (t != NULL)
			printf("%s\n", t);
		free(t);
	}
	json_decref(out);
	return rc;
}

int
dep_db_profile(const struct dep_tool *o, int argc, char *argv[])
{
	struct dep_client *c;
	struct store	  *s;
	json_t		  *r;
	enum dep_status	   ds;
	int		   rc;

	if (argc < 3)
		return -1;
	if (strcmp(argv[0], "define") == 0 && argc != 3)
		return -1;
	if (strcmp(argv[0], "show") == 0 && argc != 3)
		return -1;
	if (strcmp(argv[0], "assign") == 0 && argc < 4)
		return -1;
	if (strcmp(argv[0], "define") != 0 && strcmp(argv[0], "show") != 0 &&
	    strcmp(argv[0], "assign") != 0 && strcmp(argv[0], "remove") != 0)
		return -1;
	if ((s = open_store(o->db, 0)) == NULL)
		return EX_FAIL;
	if ((rc = token_client(o, s, argv[1], &c, NULL)) != 0) {
		store_close(s);
		return rc;
	}
	if (strcmp(argv[0], "define") == 0)
		rc = profile_define(o, s, c, argv[1], argv[2]);
	else if (strcmp(argv[0], "show") == 0) {
		if ((ds = dep_profile_get(c, argv[2], &r)) != DEP_OK)
			rc = dep_call_failed(c, "profile show", ds);
		else {
			char *t = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS);

			if (t != NULL)
				printf("%s\n", t);
			free(t);
			json_decref(r);
		}
	} else if (strcmp(argv[0], "assign") == 0)
		rc = profile_assign(o, c, 0, argv[2], argc - 3, argv + 3);
	else
		rc = profile_assign(o, c, 1, NULL, argc - 2, argv + 2);
	dep_client_free(c);
	store_close(s);
	return rc;
}

/* details NAME SERIAL ...: Apple's current record of each serial
 * (POST /devices, at most 1,000), printed as one JSON line; the store
 * is not changed (sync keeps it current). */
int
dep_db_details(const struct dep_tool *o, int argc, char *argv[])
{
	struct dep_client *c;
	struct store	  *s;
	json_t		  *r;
	enum dep_status	   ds;
	char		  *t;
	int		   rc;

	if (argc < 2 || argc > 1001)
		return -1;
	if ((s = open_store(o->db, 1)) == NULL)
		return EX_FAIL;
	rc = token_client(o, s, argv[0], &c, NULL);
	store_close(s);
	if (rc != 0)
		return rc;
	ds = dep_devices_details(
	    c, (const char *const *)argv + 1, (size_t)argc - 1, &r);
	if (ds != DEP_OK)
		rc = dep_call_failed(c, "details", ds);
	else {
		if ((t = json_dumps(r, JSON_COMPACT | JSON_SORT_KEYS)) != NULL)
			printf("%s\n", t);
		free(t);
		json_decref(r);
	}
	dep_client_free(c);
	return rc;
}

/* prune [--days N]: remove the ADE tombstones synced more than N days
 * ago (default 90), in one transaction. */
struct prune_op {
	uint64_t before, n;
};

static int
op_prune(struct store_txn *t, void *arg)
{
	struct prune_op *po = arg;

	return store_ade_prune(t, po->before, &po->n);
}

int
dep_db_prune(const struct dep_tool *o, int argc, char *argv[])
{
	struct prune_op po;
	struct store   *s;
	uint64_t	now = time_now_us();
	int		rc;

	(void)argv;
	if (argc != 0)
		return -1;
	po.n = 0;
	po.before = now - (uint64_t)o->prune_days * US_DAY;
	if ((s = open_store(o->db, 0)) == NULL)
		return EX_FAIL;
	rc = store_write(s, op_prune, &po);
	store_close(s);
	if (rc != 0)
		return store_failed("prune", rc);
	printf("tombstones\t%llu\n", (unsigned long long)po.n);
	return 0;
}
