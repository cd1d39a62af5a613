/*
 * vpp_meta.c - picomdm-vpp's app metadata (tools/vpp_meta.h): name,
 * description, icon URL, bundleId, copyright, genres and App Store URL
 * of a token's assets, from the content-metadata lookup the service
 * configuration names (urls.contentMetadataLookup; never a URL of our
 * own), cached in the store (store_vpp_meta_put) with a refresh age.
 * Runs after the listings in transactions of its own: a failed lookup
 * leaves the assets, assignments and users as the sync wrote them. See
 * man/picomdm-vpp.8, README.md "Apps and Books".
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "picomdm/store.h"
#include "picomdm/store_vpp.h"
#include "picomdm/util.h"
#include "picomdm/vpp.h"
#include "vpp_meta.h"

struct plan_op {
	const char *token;
	uint64_t    stale_before; /* µs: fetched before this is stale */
	int	    refresh;
	json_t	   *tok;     /* the token's record (with the sToken) */
	json_t	   *adams;   /* object: adamId -> true, the assets' */
	json_t	   *want;    /* array of adamIds to fetch */
	json_t	   *gone;    /* array of adamIds whose metadata goes */
	size_t	    current; /* metadata kept as it is */
};

static int
plan_asset_cb(const char *token, json_t *rec, void *arg)
{
	struct plan_op *po = arg;
	json_t	       *a = json_object_get(rec, "adam_id");

	(void)token;
	if (!json_is_string(a))
		return 0;
	return json_object_set(po->adams, json_string_value(a), json_true()) ==
		0 ? 0 : STORE_ENOMEM;
}

static int
plan_meta_cb(const char *token, json_t *rec, void *arg)
{
	struct plan_op *po = arg;
	const char     *a = json_string_value(json_object_get(rec, "adam_id"));
	const char     *at;
	uint64_t	us = 0;

	(void)token;
	if (a == NULL)
		return 0;
	if (json_object_get(po->adams, a) == NULL)
		return json_array_append_new(po->gone, json_string(a)) == 0 ? 0 :
		    STORE_ENOMEM;
	at = json_string_value(json_object_get(rec, "synced_at"));
	if (!po->refresh && at != NULL && time_parse_rfc3339(at, &us) == 0 &&
	    us >= po->stale_before) {
		po->current++;
		json_object_del(po->adams, a); /* not fetched again */
	}
	return 0;
}

/* What to fetch and what to remove, in one read. */
static int
plan_op(struct store_txn *t, void *arg)
{
	struct plan_op *po = arg;
	const char     *k;
	json_t	       *v;
	int		rc;

	json_decref(po->tok);
	po->tok = NULL;
	json_object_clear(po->adams);
	json_array_clear(po->want);
	json_array_clear(po->gone);
	po->current = 0;
	if ((rc = store_vpp_token_get(t, po->token, 1, &po->tok)) != 0)
		return rc;
	if ((rc = store_vpp_each(t, STORE_VPP_ASSETS, po->token, plan_asset_cb,
		 po)) != 0)
		return rc;
	if ((rc = store_vpp_each(t, STORE_VPP_META, po->token, plan_meta_cb,
		 po)) != 0)
		return rc;
	json_object_foreach(po->adams, k, v)
		if (json_array_append_new(po->want, json_string(k)) != 0)
			return STORE_ENOMEM;
	return 0;
}

struct write_op {
	const char *token;
	json_t	   *recs; /* array of metadata records to put */
	json_t	   *gone; /* array of adamIds to remove, or NULL */
	size_t	    removed;
};

static int
write_op(struct store_txn *t, void *arg)
{
	struct write_op *wo = arg;
	json_t		*x;
	size_t		 i;
	int		 rc;

	wo->removed = 0;
	json_array_foreach(wo->recs, i, x)
		if ((rc = store_vpp_meta_put(t, wo->token, x)) != 0)
			return rc;
	json_array_foreach(wo->gone, i, x) {
		rc = store_vpp_meta_remove(t, wo->token, json_string_value(x));
		if (rc == 0)
			wo->removed++;
		else if (rc != STORE_ENOTFOUND)
			return rc;
	}
	return 0;
}

/* A string member, or NULL when absent or of another type. */
static const char *
str_of(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* Apple's artwork: [{url, ...}] or {url: ".../{w}x{h}bb.{f}", ...}; the
 * template's size and format filled in (512x512, png). A new string or
 * NULL. */
static json_t *
icon_url(const json_t *art)
{
	const char *u;
	char	    b[2048];
	size_t	    n = 0;

	if (json_is_array(art))
		art = json_array_get(art, 0);
	if ((u = str_of(art, "url")) == NULL)
		return NULL;
	while (*u != '\0' && n + 4 < sizeof(b)) {
		if (strncmp(u, "{w}", 3) == 0 || strncmp(u, "{h}", 3) == 0) {
			memcpy(b + n, "512", 3);
			n += 3;
			u += 3;
		} else if (strncmp(u, "{f}", 3) == 0) {
			memcpy(b + n, "png", 3);
			n += 3;
			u += 3;
		} else
			b[n++] = *u++;
	}
	if (*u != '\0')
		return NULL; /* longer than any icon URL */
	b[n] = '\0';
	return json_string(b);
}

/* genreNames as one string, joined by ", ". */
static json_t *
genres(const json_t *a)
{
	char   b[1024];
	size_t i, n = 0, l;
	json_t *x;

	if (!json_is_array(a) || json_array_size(a) == 0)
		return NULL;
	json_array_foreach(a, i, x) {
		if (!json_is_string(x))
			continue;
		l = json_string_length(x);
		if (n + l + 3 > sizeof(b))
			break;
		if (n > 0) {
			memcpy(b + n, ", ", 2);
			n += 2;
		}
		memcpy(b + n, json_string_value(x), l);
		n += l;
	}
	b[n] = '\0';
	return n > 0 ? json_string(b) : NULL;
}

/* The record of adamId a from Apple's lookup result r (NULL: not found). */
static json_t *
meta_rec(const char *a, const json_t *r)
{
	static const char *const s[][2] = {{"name", "name"},
	    {"bundleId", "bundle_id"}, {"copyright", "copyright"},
	    {"url", "store_url"}};
	json_t *o = json_pack("{s:s, s:s}", "adam_id", a, "status",
	    json_is_object(r) ? "found" : "not found");
	json_t *d;
	size_t	i;

	if (o == NULL || !json_is_object(r))
		return o;
	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++)
		if (str_of(r, s[i][0]) != NULL)
			json_object_set(o, s[i][1], json_object_get(r, s[i][0]));
	d = json_object_get(r, "description");
	if (json_is_object(d))
		d = json_object_get(d, "standard");
	if (json_is_string(d))
		json_object_set(o, "description", d);
	if ((d = icon_url(json_object_get(r, "artwork"))) != NULL)
		json_object_set_new(o, "icon_url", d);
	if ((d = genres(json_object_get(r, "genreNames"))) != NULL)
		json_object_set_new(o, "genres", d);
	return o;
}

/* An adamId as the lookup takes it: digits. */
static int
adam_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!isdigit((unsigned char)s[n]))
			return 0;
	return n > 0 && n <= 20;
}

/* A client configuration value fit for a query: [A-Za-z0-9], at most
 * 31 characters, lower-cased; else dflt. */
static void
query_word(char *out, size_t n, const char *v, const char *dflt)
{
	size_t i;

	for (i = 0; v != NULL && v[i] != '\0' && i + 1 < n; i++) {
		if (!isalnum((unsigned char)v[i]))
			break;
		out[i] = (char)tolower((unsigned char)v[i]);
	}
	if (v == NULL || v[i] != '\0' || i == 0) {
		snprintf(out, n, "%s", dflt);
		return;
	}
	out[i] = '\0';
}

/* See vpp_meta.h. */
int
vpp_meta_run(struct store *db, const char *name, const struct vpp_opts *o,
    long max_age, int refresh)
{
	struct plan_op	 po;
	struct write_op	 wo = {name, NULL, NULL, 0};
	struct vpp_token vt = {0};
	struct vpp_error e = {0};
	struct vpp	*v = NULL;
	json_t		*cc = NULL, *ans, *res, *x;
	char		 q[1024], platform[32], cc2[32];
	size_t		 i, j, nb, fetched = 0, missing = 0;
	uint64_t	 now = time_now_us();
	double		 rps;
	int		 rc, ret = 0;

	memset(&po, 0, sizeof(po));
	po.token = name;
	po.refresh = refresh;
	po.stale_before = (uint64_t)max_age * 1000000u < now ?
	    now - (uint64_t)max_age * 1000000u : 0;
	po.adams = json_object();
	po.want = json_array();
	po.gone = json_array();
	wo.recs = json_array();
	if (po.adams == NULL || po.want == NULL || po.gone == NULL ||
	    wo.recs == NULL) {
		fprintf(stderr, "picomdm-vpp: %s: metadata: out of memory\n",
		    name);
		ret = 1;
		goto out;
	}
	if ((rc = store_read(db, plan_op, &po)) != 0) {
		fprintf(stderr, "picomdm-vpp: %s: metadata: %s\n", name,
		    rc == STORE_ENOTFOUND ? "no such token" :
		    store_strerror(rc));
		ret = 1;
		goto out;
	}
	/* The metadata of assets the token no longer holds goes first. */
	if (json_array_size(po.gone) > 0) {
		wo.gone = po.gone;
		if ((rc = store_write(db, write_op, &wo)) != 0) {
			fprintf(stderr, "picomdm-vpp: %s: metadata: %s\n", name,
			    store_strerror(rc));
			ret = 1;
			goto out;
		}
		wo.gone = NULL;
	}
	if (json_array_size(po.want) > 0) {
		vt.stoken = (char *)(uintptr_t)str_of(po.tok, "stoken");
		vt.org = (char *)(uintptr_t)str_of(po.tok, "org");
		if (vt.stoken == NULL || (v = vpp_new(&vt, o)) == NULL) {
			fprintf(stderr, "picomdm-vpp: %s: metadata: out of "
			    "memory or no sToken\n", name);
			ret = 1;
			goto out;
		}
		/* Spaced from the sync's last request as the client spaces
		 * its own (vpp.c, pace): at most the rate in any second. */
		rps = o != NULL && o->max_rps > 0 ? o->max_rps :
		    VPP_RPS_DEFAULT;
		time_sleep(1.1 / (rps < 1.2 ? 1.2 : rps));
		/* The store front and platform the location buys in. */
		if ((cc = vpp_get(v, "clientConfig", NULL, &e)) == NULL)
			goto fail;
		query_word(platform, sizeof(platform),
		    str_of(cc, "defaultPlatform"), "volumestore");
		query_word(cc2, sizeof(cc2), str_of(cc, "countryISO2ACode"),
		    "us");
	}
	for (i = 0; i < json_array_size(po.want); i += nb) {
		size_t n;

		n = (size_t)snprintf(q, sizeof(q), "version=2&p=mdm-lockup&"
		    "caller=MDM&platform=%s&cc=%s&l=en&id=", platform, cc2);
		for (nb = 0; i + nb < json_array_size(po.want) &&
		     nb < VPP_META_BATCH; nb++) {
			const char *a = json_string_value(
			    json_array_get(po.want, i + nb));

			if (!adam_ok(a)) {
				fprintf(stderr, "picomdm-vpp: %s: metadata: "
				    "adamId %.40s is not a number: skipped\n",
				    name, a);
				continue;
			}
			n += (size_t)snprintf(q + n, sizeof(q) - n, "%s%s",
			    q[n - 1] == '=' ? "" : ",", a);
			if (n >= sizeof(q)) {
				snprintf(e.message, sizeof(e.message),
				    "the lookup's query is too long");
				e.number = 0;
				goto fail;
			}
		}
		if (q[n - 1] == '=')
			continue;
		if ((ans = vpp_lookup(v, "contentMetadataLookup", q, &e)) ==
		    NULL)
			goto fail;
		res = json_object_get(ans, "results");
		if (!json_is_object(res)) {
			json_decref(ans);
			snprintf(e.message, sizeof(e.message), "the lookup's "
			    "answer has no \"results\" object");
			e.number = 0;
			goto fail;
		}
		json_array_clear(wo.recs);
		for (j = i; j < i + nb; j++) {
			const char *a = json_string_value(
			    json_array_get(po.want, j));

			if (!adam_ok(a))
				continue;
			x = meta_rec(a, json_object_get(res, a));
			if (x == NULL || json_array_append_new(wo.recs, x)) {
				json_decref(ans);
				snprintf(e.message, sizeof(e.message),
				    "out of memory");
				goto fail;
			}
			if (json_is_object(json_object_get(res, a)))
				fetched++;
			else
				missing++;
		}
		json_decref(ans);
		if ((rc = store_write(db, write_op, &wo)) != 0) {
			fprintf(stderr, "picomdm-vpp: %s: metadata: %s\n", name,
			    store_strerror(rc));
			ret = 1;
			goto report;
		}
	}
	goto report;
fail:
	fprintf(stderr, "picomdm-vpp: %s: metadata: %s (the assets stay as "
	    "synced)\n", name, e.message);
	ret = vpp_token_error(e.number) != NULL ? 3 : 1;
report:
	fprintf(stderr, "picomdm-vpp: %s: metadata: %zu fetched, %zu not "
	    "found, %zu current, %zu removed\n", name, fetched, missing,
	    po.current, json_array_size(po.gone));
out:
	vpp_free(v);
	json_decref(cc);
	json_decref(po.tok);
	json_decref(po.adams);
	json_decref(po.want);
	json_decref(po.gone);
	json_decref(wo.recs);
	return ret;
}

/* See vpp_meta.h. */
json_t *
vpp_meta_record(const char *adam_id, const json_t *result)
{
	return meta_rec(adam_id, result);
}
