/*
 * vpp.h - Apps and Books (VPP): the content token and the v2 client.
 *
 * Token (vpp_token.c, no network): a .vpptoken file holds one base64
 * string, which decodes to JSON {"token","expDate","orgName"}. The whole
 * base64 string is the credential sent as "Authorization: Bearer"; the
 * inner "token" is the secret part and is never printed. expDate looks
 * like 2030-11-08T22:33:22+0000 (any +-hhmm offset).
 *
 * Client (vpp.c, libcurl + jansson, in libpicomdm_net.a so picomdm-fcgi
 * never links libcurl): GET the service configuration first and use the
 * URLs it names; every answer is parsed for errorNumber, HTTP 200
 * included; 429/9646 and 5xx with Retry-After are retried after a bounded
 * wait; requests are spaced to at most a requests-per-second limit
 * (the smaller of the caller's and the service's maxRequestPerSecond).
 * See man/picomdm-vpp.8.
 */
#ifndef PICOMDM_VPP_H
#define PICOMDM_VPP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define VPP_SERVICE_CONFIG_URL \
	"https://vpp.itunes.apple.com/mdm/v2/service/config"
/* The legacy v1 service configuration (read only, for what only v1
 * carries: licence IDs, organisation, location and facilitator IDs). */
#define VPP_V1_SERVICE_CONFIG_URL \
	"https://vpp.itunes.apple.com/mdm/VPPServiceConfigSrv"
#define VPP_WARN_DAYS   30
#define VPP_TOKEN_MAX   (64 * 1024) /* a .vpptoken file is < 1 KiB today */
#define VPP_RPS_DEFAULT 15.0

struct vpp_token {
	char   *stoken;   /* the whole base64 string: the bearer credential */
	char   *org;      /* orgName */
	char   *location; /* locationName when the token carries one, or NULL */
	char   *exp_text; /* expDate as written */
	int64_t exp;      /* expDate, Unix seconds */
};

/*
 * Decode a token from text (the file's content; surrounding whitespace is
 * ignored). Refuses (-1, a message in err naming what is wrong, never the
 * secret) text that is not base64 of a JSON object with string token,
 * expDate and orgName, a bad expDate, or a token expired at now.
 */
int  vpp_token_parse(const char *, size_t, int64_t now, struct vpp_token *,
    char *err, size_t errlen);
int  vpp_token_load(const char *path, int64_t now, struct vpp_token *,
    char *err, size_t errlen);
void vpp_token_free(struct vpp_token *);
/* Whole days left at now; < VPP_WARN_DAYS means "warn". */
long vpp_token_days_left(const struct vpp_token *, int64_t now);
/* Parse 2030-11-08T22:33:22+0000 (or -hhmm, or Z) into Unix seconds. */
int  vpp_time_parse(const char *, int64_t *out);

struct vpp_opts {
	const char *config_url; /* NULL: VPP_SERVICE_CONFIG_URL */
	const char *ca_file;    /* NULL: the system's */
	double      max_rps;    /* <= 0: VPP_RPS_DEFAULT */
	int         max_retries;    /* per request; default 3 */
	long        max_wait_s;     /* longest Retry-After obeyed; default 60 */
	long        timeout_ms;     /* per request; default 30000 */
	const char *v1_url;     /* NULL: VPP_V1_SERVICE_CONFIG_URL */
};

/* What went wrong with the last call. */
struct vpp_error {
	long http;        /* HTTP status, 0 when no answer */
	int  number;      /* Apple's errorNumber, 0 when none */
	char message[512];
};

struct vpp;

struct vpp *vpp_new(const struct vpp_token *, const struct vpp_opts *);
void        vpp_free(struct vpp *);
/* Fetch (once) the service configuration; the returned object is owned by
 * the client. */
json_t     *vpp_service_config(struct vpp *, struct vpp_error *);
/* GET the URL the service configuration names under urls.<key>, with an
 * optional query ("a=b&c=d"). Returns a new reference or NULL. */
json_t     *vpp_get(struct vpp *, const char *key, const char *query,
    struct vpp_error *);
/*
 * Every page of a listing (key getAssets, getAssignments or getUsers):
 * calls cb once per element of array (assets, assignments, users); since
 * is the sinceVersionId or NULL. *version (caller frees) receives the
 * versionId of the first page. Returns 0, or -1 with err set (cb returning
 * nonzero stops with -1 too).
 */
int vpp_list(struct vpp *, const char *key, const char *array,
    const char *since, int (*cb)(json_t *, void *), void *arg,
    char **version, struct vpp_error *);
/* POST a JSON body to the URL the service configuration names under
 * urls.<key>. Returns a new reference or NULL. */
json_t     *vpp_post(struct vpp *, const char *key, const json_t *body,
    struct vpp_error *);
/* One page of a listing (pageIndex page, sinceVersionId since or NULL),
 * checked to be that page with its array; *total the totalPages. A new
 * reference, or NULL with e set. */
json_t *vpp_page(struct vpp *, const char *key, const char *array,
    const char *since, long long page, long long *total,
    struct vpp_error *);
/* GET the content-metadata lookup URL the service configuration names
 * under urls.<key> with query, the sToken as the itvt cookie (no
 * bearer). Returns a new reference or NULL. */
json_t *vpp_lookup(struct vpp *, const char *key, const char *query,
    struct vpp_error *);
/*
 * Legacy v1: POST body (an object; NULL: {}) with the sToken added to the
 * URL v1's service configuration (fetched once from v1_url, no token)
 * names under its top-level key (clientConfigSrvUrl, getLicensesSrvUrl,
 * ...), without the bearer. An answer whose status is not 0, or that has
 * an errorNumber (v1 sends both with HTTP 200), is an error. A new
 * reference, or NULL with e set.
 */
json_t *vpp_v1_post(struct vpp *, const char *key, const json_t *body,
    struct vpp_error *);
/*
 * Reading an answer of the service, without I/O (what the calls above do
 * with the bytes libcurl hands over; fuzzed by
 * tests/fuzz/fuzz-vpp-response.c):
 *
 * vpp_answer: body (n bytes, need not end in NUL; NULL when empty) of
 * an answer of HTTP status http: the JSON object (a new reference) when
 * http is 200 and the answer carries no errorNumber; else NULL with e
 * set (e may be NULL). *number is the errorNumber (0 when none), which
 * decides a retry.
 * vpp_answer_header: one header line; a Retry-After (seconds, or an
 * HTTP-date: the seconds until it, at least 1) into *retry_after.
 * vpp_config_check: a service configuration must have a "urls" object;
 * lowers *rps to its limits.maxRequestPerSecond. 0, or -1 with e set.
 * vpp_page_check: a page must be page pageIndex of totalPages (>= 1)
 * with the array; *total its totalPages. 0, or -1 with e set.
 */
json_t *vpp_answer(long http, const char *body, size_t n,
    struct vpp_error *, int *number);
void	vpp_answer_header(const char *line, size_t n, long *retry_after);
int	vpp_config_check(const json_t *, double *rps, struct vpp_error *);
int	vpp_page_check(const json_t *, const char *array, long long page,
    long long *total, struct vpp_error *);
/* A sentence for a token error (9621/9622/9625, 9722), or NULL. */
const char *vpp_token_error(int number);
/* Requests sent so far (HTTP requests, retries included). */
unsigned long vpp_requests(const struct vpp *);

#endif
