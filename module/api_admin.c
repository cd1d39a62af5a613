/*
 * api_admin.c - the operator API's endpoints about the service rather
 * than a device:
 *
 *	GET    /api/v1/metrics                  Prometheus text format
 *	GET    /api/v1/pushcert, PUT /api/v1/pushcert[?force=1]
 *	POST/GET /api/v1/enrollment-tokens, DELETE .../{id}
 *	GET    /healthz                         (no key) 200 ok, or 503 why
 *
 * Routed by api.c (and /healthz by main.c); the shared helpers are in
 * api_int.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "extern.h"
#include "picomdm/command.h"
#include "picomdm/enroll.h"
#include "picomdm/message.h"
#include "picomdm/metrics.h"
#include "picomdm/plist.h"
#include "picomdm/pushcert.h"
#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "picomdm/util.h"

#include "api_int.h"

/* ---- metrics and health ---- */

/*
 * GET /api/v1/metrics: every counter and the store's figures in the
 * Prometheus text format (metrics.c). Behind the key unless
 * metrics_public = yes. No query parameter is taken.
 */
void
api_metrics(struct api *a)
{
	struct buf b;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	memset(&b, 0, sizeof(b));
	if (metrics_render(&b, a->srv->store, a->srv->cfg->max_inflight,
	    a->srv->cfg->map_max) == -1 || response_set_body(a->resp,
	    "text/plain; version=0.0.4; charset=utf-8", b.p, b.len) == -1)
		api_fail(a, 500, "internal error", "out of memory");
	buf_free(&b);
}

/* ---- push certificates (picomdm-api(7), "Push certificates") ---- */

/* A push certificate without its key. */
static json_t *
pushcert_json(const struct store_pushcert *sc, time_t now)
{
	struct pushcert pc;

	memset(&pc, 0, sizeof(pc));
	pc.not_after = (time_t)(sc->not_after / 1000000u);
	return json_pack("{s:s, s:s?, s:o?, s:I, s:s, s:s?, s:o?}", "topic",
	    sc->topic, "subject", sc->subject, "not_after",
	    command_json_time(sc->not_after), "days_left",
	    (json_int_t)pushcert_days_left(&pc, now), "state",
	    pushcert_state_name(pushcert_state(&pc, now)), "sha256",
	    sc->sha256, "imported_at", command_json_time(sc->imported_at));
}

struct pushcert_list_op {
	json_t *arr;
	time_t	now;
};

static int
pushcert_list_cb(const struct store_pushcert *sc, void *arg)
{
	struct pushcert_list_op *op = arg;

	return json_array_append_new(op->arr, pushcert_json(sc, op->now)) == 0
	    ? 0
	    : STORE_ENOMEM;
}

static int
pushcert_list_run(struct store_txn *t, void *arg)
{
	return store_pushcert_each(t, pushcert_list_cb, arg);
}

/* GET /api/v1/pushcert: {"pushcerts": [...]}, never a key. */
void
api_pushcert_list(struct api *a)
{
	struct pushcert_list_op op;
	int			rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	op.now = time(NULL);
	if ((op.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	if ((rc = store_read(a->srv->store, pushcert_list_run, &op)) != 0) {
		json_decref(op.arr);
		api_store_fail(a, rc);
		return;
	}
	api_reply(a, 200, json_pack("{s:o}", "pushcerts", op.arr));
}

struct pushcert_put_op {
	struct store_pushcert c;
	int		      force, replaced;
	char		     *conflict;
	json_t		     *out;
};

static int
pushcert_put_run(struct store_txn *t, void *arg)
{
	struct pushcert_put_op *op = arg;
	struct store_pushcert  *old = NULL;
	int			rc;

	rc = store_pushcert_get(t, op->c.topic, &old);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	op->replaced = old != NULL;
	store_pushcert_free(old);
	return store_pushcert_import(t, &op->c, op->force, &op->conflict);
}

/*
 * PUT /api/v1/pushcert[?force=1]: a JSON body {"cert": PEM, "key": PEM},
 * or the PEM certificate followed by its key (as NanoMDM's
 * PUT /v1/pushcert takes it). 200 with the certificate (no key), 400 for
 * a certificate that does not parse or has expired, 409 for another
 * topic refused by the rule of picomdmctl(8), "pushcert import".
 */
void
api_pushcert_put(struct api *a)
{
	static const struct api_param qn[] = {{"force", 0, NULL}};
	struct pushcert_put_op	 op;
	struct pushcert		*pc = NULL;
	json_t			*j = NULL, *o, *v;
	json_error_t		 je;
	const char		*cert, *key = NULL, *k;
	char			*qv[1], err[256];
	long long		 force;
	size_t			 i;
	int			 rc;

	memset(&op, 0, sizeof(op));
	if (api_query(a, qn, 1, qv) == -1)
		return;
	if (api_num(a, "force", qv[0], 0, 1, 0, &force) == -1)
		goto out;
	op.force = (int)force;
	if (a->req->body_len == 0) {
		api_fail(a, 400, "bad request",
		    "empty body: send {\"cert\": PEM, \"key\": PEM} or the PEM "
		    "certificate followed by its key");
		goto out;
	}
	/* JSON, as enqueue tells it: '{' after any leading white space. */
	if ((i = api_body_start(a)) < a->req->body_len &&
	    a->req->body[i] == '{') {
		j = json_loadb((const char *)a->req->body, a->req->body_len,
		    JSON_REJECT_DUPLICATES, &je);
		if (j == NULL) {
			api_fail(a, 400, "bad request",
			    "invalid JSON at line %d column %d: %s", je.line,
			    je.column, je.text);
			goto out;
		}
		json_object_foreach(j, k, v)
		{
			if (strcmp(k, "cert") != 0 && strcmp(k, "key") != 0) {
				api_fail(a, 400, "bad request",
				    "unknown key \"%.64s\": want {\"cert\": "
				    "PEM, \"key\": PEM}", k);
				goto out;
			}
		}
		if (!json_is_object(j) ||
		    (cert = json_string_value(json_object_get(j, "cert"))) ==
			NULL ||
		    (key = json_string_value(json_object_get(j, "key"))) ==
			NULL) {
			api_fail(a, 400, "bad request",
			    "want {\"cert\": PEM, \"key\": PEM}");
			goto out;
		}
		pc = pushcert_from_pem(
		    cert, strlen(cert), key, strlen(key), err, sizeof(err));
	} else
		pc = pushcert_from_pem(a->req->body, a->req->body_len, NULL, 0,
		    err, sizeof(err));
	if (pc == NULL) {
		api_fail(a, 400, "invalid push certificate", "%s", err);
		goto out;
	}
	if (pushcert_state(pc, time(NULL)) == PUSHCERT_EXPIRED) {
		api_fail(a, 400, "invalid push certificate",
		    "the certificate for %.255s has expired", pc->topic);
		goto out;
	}
	store_pushcert_from(&op.c, pc, time_now_us());
	rc = store_write(a->srv->store, pushcert_put_run, &op);
	if (rc == STORE_EEXIST) {
		api_fail(a, 409, "topic conflict",
		    "the only push certificate is for %.255s and enrollments "
		    "use it; this one is for %.255s (force=1 adds it anyway)",
		    op.conflict, pc->topic);
		goto out;
	}
	if (rc != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	if ((o = pushcert_json(&op.c, time(NULL))) == NULL ||
	    api_set(o, "replaced", json_boolean(op.replaced)) == -1) {
		json_decref(o);
		api_fail(a, 500, "internal error", "out of memory");
		goto out;
	}
	api_reply(a, 200, o);
out:
	/* The parsed body's copy of the key (the body itself is wiped with
	 * the request). */
	if (key != NULL)
		explicit_bzero((char *)(uintptr_t)key, strlen(key));
	json_decref(j);
	free(op.conflict);
	pushcert_free(pc);
	api_query_free(qv, 1);
}

static int
health_read(struct store_txn *t, void *arg)
{
	(void)t;
	(void)arg;
	return 0;
}

int
api_health(const struct server *srv, const struct request *req,
    struct response *resp)
{
	char why[160];
	int  rc, n;

	resp->msgtype = "health";
	if (strcmp(req->method, "GET") != 0 &&
	    strcmp(req->method, "HEAD") != 0) {
		response_set(resp, 405, "healthz takes GET");
		strlcpy(resp->allow, "GET, HEAD", sizeof(resp->allow));
		return HANDLED;
	}
	if (metrics_health((uint64_t)srv->cfg->health_stall * 1000000,
	    why, sizeof(why)) == 0 &&
	    (rc = store_read(srv->store, health_read, NULL)) != 0)
		snprintf(why, sizeof(why), "store unreadable: %s",
		    store_strerror(rc));
	resp->status = strcmp(why, "ok") == 0 ? 200 : 503;
	if (resp->status != 200) {
		strlcpy(resp->reason_buf, why, sizeof(resp->reason_buf));
		resp->reason = resp->reason_buf;
	}
	n = (int)strlen(why);
	why[n] = '\n';
	if (response_set_body(resp, "text/plain; charset=utf-8", why,
	    (size_t)n + 1) == -1)
		response_set(resp, 500, "out of memory");
	return HANDLED;
}

/* ---- enrollment tokens ---- */

/* The JSON form of a stored token: its ID is the SHA-256 of the token
 * (the token itself is shown once, when issued, and never stored). */
static json_t *
token_json(const struct store_enroll_token *tk, uint64_t now)
{
	char	    hex[65], c[40], e[40], u[40];
	const char *state;

	hex_encode(tk->hash, 32, hex);
	time_format(tk->created_at, c, sizeof(c));
	time_format(tk->expires_at, e, sizeof(e));
	if (tk->used_at != 0)
		time_format(tk->used_at, u, sizeof(u));
	state = tk->used_at != 0 ? "used"
	    : tk->expires_at <= now ? "expired"
				    : "unused";
	return json_pack("{s:s, s:s*, s:s, s:s, s:s*, s:s}", "id", hex, "note",
	    tk->note, "created_at", c, "expires_at", e, "used_at",
	    tk->used_at != 0 ? u : NULL, "state", state);
}

struct token_list {
	json_t	*arr;
	uint64_t now;
};

static int
token_list_cb(const struct store_enroll_token *tk, void *arg)
{
	struct token_list *l = arg;

	/* Issued SCEP challenges are picomdm's own, not the operator's. */
	if (tk->purpose != NULL && strcmp(tk->purpose, "enroll") != 0)
		return 0;
	return json_array_append_new(l->arr, token_json(tk, l->now)) == 0
	    ? 0
	    : STORE_ENOMEM;
}

static int
token_list_op(struct store_txn *t, void *arg)
{
	struct token_list *l = arg;

	l->now = store_txn_now(t);
	return store_enroll_token_each(t, token_list_cb, l);
}

static int
token_put_op(struct store_txn *t, void *arg)
{
	return store_enroll_token_put(t, arg);
}

static int
token_del_op(struct store_txn *t, void *arg)
{
	int rc = store_enroll_token_del(t, arg);

	return rc == STORE_ENOTFOUND ? 404 : rc;
}

#define TOKEN_NOTE_MAX 256

/*
 * POST /api/v1/enrollment-tokens: {"expires_in": seconds, "note": text},
 * both optional (an empty body takes the defaults). Answers 201 with the
 * token, once: only its SHA-256 is stored, committed before the answer.
 */
void
api_token_new(struct api *a)
{
	struct store_enroll_token tk;
	char			  tok[ENROLL_TOKEN_LEN + 1], hex[65], e[40];
	json_t			 *body = NULL, *v;
	json_error_t		  je;
	const char		 *k, *note = NULL;
	json_int_t		  ttl = ENROLL_TOKEN_TTL_DEFAULT;
	int			  rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	if (a->req->body_len > 0) {
		body = json_loadb((const char *)a->req->body,
		    a->req->body_len, JSON_REJECT_DUPLICATES, &je);
		if (body == NULL) {
			api_fail(a, 400, "bad request",
			    "body: invalid JSON at line %d column %d: %s",
			    je.line, je.column, je.text);
			goto out;
		}
		if (!json_is_object(body)) {
			api_fail(a, 400, "bad request",
			    "body: want a JSON object");
			goto out;
		}
		json_object_foreach(body, k, v)
		{
			if (strcmp(k, "expires_in") == 0) {
				if (!json_is_integer(v) ||
				    (ttl = json_integer_value(v)) < 1 ||
				    ttl > ENROLL_TOKEN_TTL_MAX) {
					api_fail(a, 400, "bad request",
					    "expires_in: want seconds, 1 to "
					    "%d",
					    ENROLL_TOKEN_TTL_MAX);
					goto out;
				}
			} else if (strcmp(k, "note") == 0) {
				if (!json_is_string(v) ||
				    json_string_length(v) > TOKEN_NOTE_MAX) {
					api_fail(a, 400, "bad request",
					    "note: want a string of at most "
					    "%d bytes",
					    TOKEN_NOTE_MAX);
					goto out;
				}
				note = json_string_value(v);
			} else {
				api_fail(a, 400, "bad request",
				    "unknown key \"%.64s\"", k);
				goto out;
			}
		}
	}
	if (enroll_token_new(tok) == -1) {
		api_fail(a, 500, "internal error", "no random bytes");
		goto out;
	}
	memset(&tk, 0, sizeof(tk));
	sha256(tok, ENROLL_TOKEN_LEN, tk.hash);
	tk.has_hash = 1;
	tk.note = (char *)(uintptr_t)note;
	tk.expires_at = time_now_us() + (uint64_t)ttl * 1000000u;
	if ((rc = store_write(a->srv->store, token_put_op, &tk)) != 0) {
		api_store_fail(a, rc);
		goto out;
	}
	hex_encode(tk.hash, 32, hex);
	time_format(tk.expires_at, e, sizeof(e));
	api_reply(a, 201,
	    json_pack("{s:s, s:s, s:s, s:s*}", "token", tok, "id", hex,
		"expires_at", e, "note", note));
out:
	explicit_bzero(tok, sizeof(tok));
	json_decref(body);
}

/* GET /api/v1/enrollment-tokens: every token, with its state. */
void
api_token_list(struct api *a)
{
	struct token_list l;
	int		  rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	if ((l.arr = json_array()) == NULL) {
		api_fail(a, 500, "internal error", "out of memory");
		return;
	}
	if ((rc = store_read(a->srv->store, token_list_op, &l)) != 0)
		api_store_fail(a, rc);
	else
		api_reply(a, 200, json_pack("{s:O}", "tokens", l.arr));
	json_decref(l.arr);
}

/* DELETE /api/v1/enrollment-tokens/{id}: revoke (the ID from the list). */
void
api_token_del(struct api *a)
{
	unsigned char h[32];
	const char   *id = a->seg[1];
	int	      rc;

	if (api_query(a, NULL, 0, NULL) == -1)
		return;
	if (!enroll_token_valid(id)) {
		api_fail(a, 400, "bad request",
		    "token ID: want 64 lowercase hex digits");
		return;
	}
	(void)hex_decode(id, 32, h); /* checked by enroll_token_valid */
	rc = store_write(a->srv->store, token_del_op, h);
	if (rc == 404)
		api_fail(a, 404, "not found", "no enrollment token %.64s", id);
	else if (rc != 0)
		api_store_fail(a, rc);
	else
		api_reply(a, 200, json_pack("{s:s, s:b}", "id", id, "revoked",
		    1));
}
