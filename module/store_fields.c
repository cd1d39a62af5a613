/*
 * store_fields.c - the fields of a device's or an enrollment's records
 * that have a row of the data catalogue, found through the registry of
 * record kinds (store_kinds.c), for the inventory (inventory.c): a kind
 * added to the registry with catalogue rows is listed with no change
 * there. See ARCHITECTURE.md, "The registry of record kinds".
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "picomdm/store.h"
#include "picomdm/store_ade.h"
#include "store_admin.h"
#include "store_int.h"
#include "store_kinds.h"

#define NF_MAX 64 /* fields of one kind, at most (as rec_decode) */

/* A record's fields by their index in the kind's table. */
struct rec_fields {
	const unsigned char *p[NF_MAX];
	size_t		     n[NF_MAX];
	int		     has[NF_MAX];
};

/* Split v into its fields; a repeated or malformed one is
 * STORE_ECORRUPT, unknown tags are skipped. */
static int
rec_split(const struct store_kind *k, const MDB_val *v, struct rec_fields *rf)
{
	struct rec_r	     r;
	const unsigned char *p;
	size_t		     n, i;
	unsigned	     tag;
	int		     rc;

	if (k->nf > NF_MAX)
		return STORE_EINVAL;
	memset(rf, 0, sizeof(*rf));
	if ((rc = rec_open(&r, v, k->rec)) != 0)
		return rc;
	while ((rc = rec_next(&r, &tag, &p, &n)) == 1) {
		for (i = 0; i < k->nf && k->f[i].tag != tag; i++)
			continue;
		if (i == k->nf)
			continue;
		if (rf->has[i])
			return STORE_ECORRUPT;
		rf->has[i] = 1;
		rf->p[i] = p;
		rf->n[i] = n;
	}
	return rc;
}

/* The number in the field of this tag; 0 when absent. */
static uint64_t
rec_time(const struct store_kind *k, const struct rec_fields *rf, unsigned tag)
{
	size_t i;

	for (i = 0; tag != 0 && i < k->nf; i++)
		if (k->f[i].tag == tag)
			return rf->has[i] && rf->n[i] == 8 ? key_get_u64(rf->p[i])
							   : 0;
	return 0;
}

static enum store_field_form
field_form(enum afield_type t)
{
	switch (t) {
	case A_STR:
		return SF_TEXT;
	case A_HASH:
		return SF_HASH;
	case A_BOOL:
		return SF_BOOL;
	case A_U64:
		return SF_NUMBER;
	case A_TIME:
		return SF_TIME;
	default:
		return SF_BYTES;
	}
}

/* The catalogued fields of one record. */
static int
rec_fields(const struct store_kind *k, const MDB_val *v, store_field_fn fn,
    void *arg)
{
	struct rec_fields     rf;
	struct store_field    sf;
	const struct afield  *f;
	const struct inv_row *row;
	char		   *topic = NULL;
	size_t		    i;
	int		    rc, shown;

	if ((rc = rec_split(k, v, &rf)) != 0)
		return rc;
	for (i = 0; i < k->nf; i++)
		if (k->src != STORE_SOURCE__MAX && k->f[i].tag == k->src_tag &&
		    rf.has[i] &&
		    (rc = rec_dup_str(rf.p[i], rf.n[i], &topic)) != 0)
			return rc;
	for (i = 0; rc == 0 && i < k->nf; i++) {
		f = &k->f[i];
		if (f->cat != CAT_ROW || (f->flags & AF_KEY))
			continue;
		memset(&sf, 0, sizeof(sf));
		sf.kind = store_kind_name(k);
		sf.svc = f->svc;
		sf.message = f->inv_message != NULL ? f->inv_message : f->message;
		sf.field = f->field;
		sf.form = field_form(f->type);
		sf.p = rf.p[i];
		sf.n = rf.n[i];
		sf.topic = topic;
		sf.at = rec_time(k, &rf, f->at_tag);
		/* A flag is stored only when true: it is known (false when
		 * absent) once the message that sets it was received. */
		shown = sf.form == SF_BOOL && f->at_tag != 0 ? sf.at != 0
							       : rf.has[i];
		if (sf.at == 0)
			sf.at = rec_time(k, &rf, f->at_or_tag);
		if (!shown)
			continue;
		row = inventory_find(sf.svc, sf.message, sf.field);
		sf.secret = row != NULL && row->secret;
		rc = fn(&sf, arg);
	}
	free(topic);
	return rc;
}

struct each_arg {
	const struct store_kind *k;
	store_field_fn		 fn;
	void			*arg;
};

static int
each_rec(struct store_txn *t, const MDB_val *k, const MDB_val *v, void *arg)
{
	struct each_arg *ea = arg;

	(void)t;
	(void)k;
	return rec_fields(ea->k, v, ea->fn, ea->arg);
}

/* Has k fields the inventory lists? */
static int
kind_listed(const struct store_kind *k)
{
	size_t i;

	if (k->val != KV_RECORD)
		return 0;
	for (i = 0; i < k->nf; i++)
		if (k->f[i].cat == CAT_ROW && !(k->f[i].flags & AF_KEY))
			return 1;
	return 0;
}

/* See store.h. */
int
store_owner_fields(struct store_txn *t, int enrollment, const char *id,
    store_field_fn fn, void *arg)
{
	const struct store_kind *k;
	struct each_arg		 ea = {NULL, fn, arg};
	struct key		 key;
	MDB_val			 v;
	unsigned char		 be[8];
	uint64_t		 eid = 0, x;
	char			*serial = NULL;
	size_t			 d;
	int			 i, rc;

	for (d = 0; d < DBI__MAX; d++) {
		k = &store_kinds[d];
		if (!kind_listed(k))
			continue;
		if (k->key == KK_TEXT &&
		    k->owner == (enrollment ? OWN_ENROLL : OWN_DEVICE)) {
			/* Keyed by the device or enrollment ID. */
			key_init(&key);
			key_raw(&key, id, strlen(id));
			rc = db_get(t, k->dbi, &key, &v);
			if (rc == STORE_ENOTFOUND)
				continue;
			if (rc != 0 || (rc = rec_fields(k, &v, fn, arg)) != 0)
				return rc;
		} else if (!enrollment && k->owner == OWN_SERIAL &&
		    k->key == KK_TEXT) {
			/* Keyed by the device's serial (ADE records). */
			if ((rc = store_ade_serial_of(t, id, &serial)) != 0)
				return rc;
			if (serial == NULL)
				continue;
			rc = db_getv(t, k->dbi, serial, strlen(serial), &v);
			free(serial);
			serial = NULL;
			if (rc == STORE_ENOTFOUND)
				continue;
			if (rc != 0 || (rc = rec_fields(k, &v, fn, arg)) != 0)
				return rc;
		} else if (enrollment && (k->owner == OWN_EID ||
		    k->owner == OWN_EID_INDEX)) {
			/* Keyed by the enrollment's number, then more; or
			 * found through the index of its number. */
			if (eid == 0 && (rc = enroll_eid(t, id, &eid)) != 0)
				return rc == STORE_ENOTFOUND ? 0 : rc;
			for (i = 7, x = eid; i >= 0; i--, x >>= 8)
				be[i] = (unsigned char)x;
			ea.k = k;
			rc = k->owner == OWN_EID_INDEX
			    ? result_each_of(t, eid, each_rec, &ea)
			    : db_prefix_each(t, k->dbi, be, 8, 0, each_rec,
				  &ea);
			if (rc != 0)
				return rc;
		}
	}
	return 0;
}
