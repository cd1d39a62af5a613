/*
 * store_pushcert.c - push certificates in the store, one per APNs topic
 * (DBI_PUSHCERT; the registry entry is in store_kinds.c): get, put,
 * remove, list, and the import rule that keeps a certificate of another
 * topic from silently replacing the one the devices are enrolled with
 * (picomdmctl(8), "pushcert import").
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "picomdm/pushcert.h"
#include "picomdm/store.h"
#include "picomdm/util.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define PF(tag, type, m, req) \
	{ tag, type, offsetof(struct store_pushcert, m), 0, req }

/* The tags of pushcert_af in store_kinds.c. */
static const struct fdesc pushcert_fields[] = {
	PF(TAG_PUSHCERT_TOPIC, F_STR, topic, 1),
	PF(TAG_PUSHCERT_CERT, F_STR, cert_pem, 1),
	PF(TAG_PUSHCERT_KEY, F_STR, key_pem, 1),
	PF(TAG_PUSHCERT_NOTAFTER, F_U64, not_after, 1),
	PF(5, F_U64, imported_at, 0),
	PF(6, F_STR, subject, 0),
	PF(7, F_STR, sha256, 0),
};

void
store_pushcert_free(struct store_pushcert *c)
{
	if (c == NULL)
		return;
	/* rec_free_fields wipes bytes fields only: the key is a string. */
	if (c->key_pem != NULL)
		explicit_bzero(c->key_pem, strlen(c->key_pem));
	rec_free_fields(pushcert_fields, NF(pushcert_fields), c);
	free(c);
}

static int
pushcert_decode(const MDB_val *v, struct store_pushcert **out)
{
	struct store_pushcert *c;
	int		       rc;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(v, REC_PUSHCERT, pushcert_fields,
		 NF(pushcert_fields), c, NULL, NULL)) != 0) {
		store_pushcert_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

int
store_pushcert_get(
    struct store_txn *t, const char *topic, struct store_pushcert **out)
{
	MDB_val v;
	size_t	n;
	int	rc;

	*out = NULL;
	if (topic == NULL || (n = strlen(topic)) == 0 || n > KEY_MAX)
		return STORE_EINVAL;
	if ((rc = db_getv(t, DBI_PUSHCERT, topic, n, &v)) != 0)
		return rc;
	return pushcert_decode(&v, out);
}

int
store_pushcert_put(struct store_txn *t, const struct store_pushcert *c)
{
	size_t n;

	if (c->topic == NULL || (n = strlen(c->topic)) == 0 || n > KEY_MAX ||
	    c->cert_pem == NULL || c->key_pem == NULL)
		return STORE_EINVAL;
	return rec_putv(t, DBI_PUSHCERT, c->topic, n, REC_PUSHCERT,
	    pushcert_fields, NF(pushcert_fields), c);
}

int
store_pushcert_del(struct store_txn *t, const char *topic)
{
	size_t n;

	if (topic == NULL || (n = strlen(topic)) == 0 || n > KEY_MAX)
		return STORE_EINVAL;
	return db_delv(t, DBI_PUSHCERT, topic, n);
}

struct each_arg {
	store_pushcert_cb cb;
	void		 *arg;
	int		  rc;
};

static int
each_visit(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct each_arg	      *ea = arg;
	struct store_pushcert *c;
	int		       rc;

	(void)t;
	(void)k;
	if ((rc = pushcert_decode(v, &c)) != 0)
		return rc;
	rc = ea->cb(c, ea->arg);
	store_pushcert_free(c);
	if (rc < 0)
		return rc;
	return rc != 0 ? 1 : 0;
}

int
store_pushcert_each(struct store_txn *t, store_pushcert_cb cb, void *arg)
{
	MDB_cursor     *cur;
	MDB_val		k, v;
	struct each_arg ea = {cb, arg, 0};
	int		rc;

	/* A plain cursor walk: db_visit may delete, this never does. */
	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_PUSHCERT], &cur)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		if ((ea.rc = each_visit(t, &k, &v, &ea)) != 0)
			break;
	mdb_cursor_close(cur);
	if (ea.rc != 0)
		return ea.rc < 0 ? ea.rc : 0;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

/* The only topic held, when exactly one is. */
struct single_arg {
	size_t n;
	char  *topic;
};

static int
single_cb(const struct store_pushcert *c, void *arg)
{
	struct single_arg *sa = arg;

	if (sa->n++ == 0 && (sa->topic = strdup(c->topic)) == NULL)
		return STORE_ENOMEM;
	return sa->n > 1;
}

/* Does an enrollment record hold this topic? 1, 0 or a store_err. */
static int
topic_enrolled(struct store_txn *t, const char *topic)
{
	MDB_cursor	    *cur;
	MDB_val		     k, v;
	const unsigned char *p;
	size_t		     n, tl = strlen(topic);
	int		     rc, hit = 0;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_ENROLL], &cur)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !hit;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		hit = rec_field(&v, REC_ENROLL, TAG_ENROLL_TOPIC, &p, &n) == 1 &&
		    n == tl && memcmp(p, topic, n) == 0;
	mdb_cursor_close(cur);
	if (hit)
		return 1;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

int
store_pushcert_import(struct store_txn *t, const struct store_pushcert *c,
    int force, char **conflict)
{
	struct single_arg sa = {0, NULL};
	int		  rc;

	*conflict = NULL;
	if (c->topic == NULL || *c->topic == '\0')
		return STORE_EINVAL;
	if (!force) {
		if ((rc = store_pushcert_each(t, single_cb, &sa)) != 0)
			goto out;
		if (sa.n == 1 && strcmp(sa.topic, c->topic) != 0) {
			if ((rc = topic_enrolled(t, sa.topic)) < 0)
				goto out;
			if (rc == 1) {
				*conflict = sa.topic;
				sa.topic = NULL;
				rc = STORE_EEXIST;
				goto out;
			}
		}
	}
	rc = store_pushcert_put(t, c);
out:
	free(sa.topic);
	return rc;
}

void
store_pushcert_from(struct store_pushcert *c, struct pushcert *pc,
    uint64_t now)
{
	memset(c, 0, sizeof(*c));
	c->topic = pc->topic;
	c->cert_pem = pc->cert_pem;
	c->key_pem = pc->key_pem;
	c->not_after =
	    pc->not_after > 0 ? (uint64_t)pc->not_after * 1000000u : 0;
	c->imported_at = now;
	c->subject = pc->subject;
	c->sha256 = pc->sha256_hex;
}
