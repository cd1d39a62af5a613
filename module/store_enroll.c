/*
 * store_enroll.c - the records enrollment writes (picomdm/store_enroll.h):
 * MachineInfo, keyed by UDID, owned by the device of that ID (purge by
 * device removes it), and one-time enrollment tokens, keyed by the
 * SHA-256 of the token, owned by nothing but their expiry (prune). Their
 * registry entries are in store_kinds.c.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))

#define MF(tag, type, m) \
	{ tag, type, offsetof(struct store_machineinfo, m), 0, 0 }
static const struct fdesc mi_fields[] = {
	{ 1, F_STR, offsetof(struct store_machineinfo, udid), 0, 1 },
	MF(2, F_STR, serial),
	MF(3, F_STR, product),
	MF(4, F_STR, version),
	MF(5, F_STR, imei),
	MF(6, F_STR, meid),
	MF(7, F_STR, language),
	MF(8, F_U64, received_at),
};

#define TF(tag, type, m) \
	{ tag, type, offsetof(struct store_enroll_token, m), 0, 0 }
static const struct fdesc tok_fields[] = {
	TF(1, F_STR, note),
	TF(2, F_U64, created_at),
	{ 3, F_U64, offsetof(struct store_enroll_token, expires_at), 0, 1 },
	TF(4, F_U64, used_at),
	TF(5, F_STR, purpose),
};

/* ---- MachineInfo ---- */

int
store_machineinfo_put(struct store_txn *t, const struct store_machineinfo *mi)
{
	struct store_machineinfo m = *mi;
	size_t			 n;

	if (mi->udid == NULL || (n = strlen(mi->udid)) == 0 || n > KEY_MAX)
		return STORE_EINVAL;
	m.received_at = store_txn_now(t);
	return rec_putv(t, DBI_MACHINEINFO, mi->udid, n, REC_MACHINEINFO,
	    mi_fields, NF(mi_fields), &m);
}

int
store_machineinfo_get(
    struct store_txn *t, const char *udid, struct store_machineinfo **out)
{
	struct store_machineinfo *m;
	MDB_val			  v;
	size_t			  n = strlen(udid);
	int			  rc;

	*out = NULL;
	if (n == 0 || n > KEY_MAX)
		return STORE_ENOTFOUND;
	if ((rc = db_getv(t, DBI_MACHINEINFO, udid, n, &v)) != 0)
		return rc;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return STORE_ENOMEM;
	if ((rc = rec_decode(&v, REC_MACHINEINFO, mi_fields, NF(mi_fields), m,
		 NULL, NULL)) != 0) {
		store_machineinfo_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void
store_machineinfo_free(struct store_machineinfo *m)
{
	if (m == NULL)
		return;
	rec_free_fields(mi_fields, NF(mi_fields), m);
	free(m);
}

/* ---- enrollment tokens ---- */

static int
tok_write(struct store_txn *t, const struct store_enroll_token *tk)
{
	return rec_putv(t, DBI_ENRTOKEN, tk->hash, 32, REC_ENRTOKEN,
	    tok_fields, NF(tok_fields), tk);
}

int
store_enroll_token_put(struct store_txn *t, const struct store_enroll_token *tk)
{
	struct store_enroll_token c = *tk;
	int			  rc;

	if (!tk->has_hash || tk->expires_at == 0)
		return STORE_EINVAL;
	if ((rc = db_has(t, DBI_ENRTOKEN, tk->hash, 32)) < 0)
		return rc;
	if (rc == 1)
		return STORE_EEXIST;
	c.created_at = store_txn_now(t);
	c.used_at = 0;
	return tok_write(t, &c);
}

static int
tok_decode(const MDB_val *k, const MDB_val *v, struct store_enroll_token *tk)
{
	memset(tk, 0, sizeof(*tk));
	if (k->mv_size != 32)
		return STORE_ECORRUPT;
	memcpy(tk->hash, k->mv_data, 32);
	tk->has_hash = 1;
	return rec_decode(
	    v, REC_ENRTOKEN, tok_fields, NF(tok_fields), tk, NULL, NULL);
}

/* Is the stored purpose p the one asked for (NULL: enrollment)? */
static int
purpose_is(const char *p, const char *want)
{
	if (p == NULL || strcmp(p, "enroll") == 0)
		return want == NULL || strcmp(want, "enroll") == 0;
	return want != NULL && strcmp(p, want) == 0;
}

int
store_enroll_token_use(
    struct store_txn *t, const unsigned char hash[32], const char *purpose)
{
	struct store_enroll_token tk;
	unsigned char		  kb[32];
	MDB_val			  k = {32, kb}, v;
	uint64_t		  now = store_txn_now(t);
	int			  rc;

	memcpy(kb, hash, 32);
	if ((rc = db_getv(t, DBI_ENRTOKEN, hash, 32, &v)) != 0)
		return rc;
	if ((rc = tok_decode(&k, &v, &tk)) != 0)
		return rc;
	if (!purpose_is(tk.purpose, purpose))
		rc = STORE_ENOTFOUND;
	else if (tk.used_at != 0 || tk.expires_at <= now)
		rc = STORE_EINVAL;
	else {
		tk.used_at = now;
		rc = tok_write(t, &tk);
	}
	rec_free_fields(tok_fields, NF(tok_fields), &tk);
	return rc;
}

struct tok_each {
	store_token_fn fn;
	void	      *arg;
};

static int
tok_each_one(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct tok_each		 *e = arg;
	struct store_enroll_token tk;
	int			  rc;

	(void)t;
	if ((rc = tok_decode(k, v, &tk)) == 0)
		rc = e->fn(&tk, e->arg);
	rec_free_fields(tok_fields, NF(tok_fields), &tk);
	return rc != 0 ? (rc < 0 ? rc : 1) : 0;
}

int
store_enroll_token_each(struct store_txn *t, store_token_fn fn, void *arg)
{
	struct tok_each e = {fn, arg};
	MDB_cursor     *c;
	MDB_val		k, v;
	int		rc, frc = 0;

	if ((rc = mdb_cursor_open(t->txn, t->s->dbi[DBI_ENRTOKEN], &c)) != 0)
		return store_rc(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		if ((frc = tok_each_one(t, &k, &v, &e)) != 0)
			break;
	mdb_cursor_close(c);
	if (frc != 0)
		return frc == 1 ? 0 : frc;
	return rc == MDB_NOTFOUND ? 0 : store_rc(rc);
}

int
store_enroll_token_del(struct store_txn *t, const unsigned char hash[32])
{
	return db_delv(t, DBI_ENRTOKEN, hash, 32);
}

struct tok_prune {
	uint64_t before;
};

static int
tok_prune_one(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct tok_prune	 *p = arg;
	struct store_enroll_token tk;
	int			  rc, gone;

	(void)t;
	if ((rc = tok_decode(k, v, &tk)) != 0)
		return 0; /* check reports it; prune keeps what it cannot read */
	gone = tk.used_at != 0 || tk.expires_at <= p->before;
	rec_free_fields(tok_fields, NF(tok_fields), &tk);
	return gone;
}

int
store_enroll_token_prune(struct store_txn *t, uint64_t before, uint64_t *removed)
{
	struct tok_prune p = {before};

	*removed = 0;
	return db_visit(t, DBI_ENRTOKEN, tok_prune_one, &p, removed);
}
