/*
 * api_int.h - what the operator API's files share (api.c: the helpers,
 * authentication and routing; api_data.c: enqueue and the enrollment,
 * queue, command and result views; api_admin.c: metrics, push
 * certificates, enrollment tokens and health). Not a public interface.
 */
#ifndef PICOMDM_API_INT_H
#define PICOMDM_API_INT_H

#include <stddef.h>

#include <jansson.h>

#include "extern.h"

#define API_PREFIX    "/api/v1/"
#define API_SEGS_MAX  4
#define API_LIMIT_DEF 100
#define API_LIMIT_MAX 1000
/* Enrollments looked at per list request, matching or not. */
#define API_SCAN_MAX 100000

struct api {
	const struct server  *srv;
	const struct request *req;
	struct response	     *resp;
	const char	     *raw[API_SEGS_MAX]; /* segments, as sent */
	size_t		      rawlen[API_SEGS_MAX];
	char		     *seg[API_SEGS_MAX]; /* decoded; seg[0] the name */
	size_t		      nseg;
};


/* Answer with {"error": error, "detail": fmt...} and status. */
void api_fail(struct api *, int status, const char *error, const char *fmt,
    ...) __attribute__((format(printf, 4, 5)));
/* Answer a store error with the status it maps to. */
void api_store_fail(struct api *, int rc);
/* Answer with o (taken) as JSON; a NULL o is a 500. */
void api_reply(struct api *, int status, json_t *o);
/* json_object_set_new that tells about a NULL value or no memory: -1. */
int  api_set(json_t *o, const char *key, json_t *v);
/*
 * A query parameter an endpoint takes: its name and the longest value
 * the store can hold for it, what in "longer than WHAT (MAX bytes)";
 * max 0 when only the value's parser bounds it (a number, a time, a
 * word of a set) or nothing the store holds does.
 */
struct api_param {
	const char *name;
	size_t	    max;
	const char *what;
};
/* The query parameters p[0..n) into vals (NULL when absent): 0, or -1
 * answered (400 for an unknown or repeated name, an empty value or one
 * over its max). Free with api_query_free. */
int  api_query(struct api *, const struct api_param *p, size_t n, char **vals);
void api_query_free(char **vals, size_t n);
/* A number parameter within [min, max], dflt when absent: 0, or -1
 * answered (400). */
int  api_num(struct api *, const char *name, const char *v, long long min,
    long long max, long long dflt, long long *out);
/* The comma-separated IDs of segment 1, decoded, repeats dropped: 0, or
 * -1 answered. */
int  api_ids(struct api *, char ***ids, size_t *nids);
/* Where the body starts after leading white space (space, tab, CR, LF):
 * an index, body_len when there is nothing else. */
size_t api_body_start(const struct api *);

/*
 * A page of a list paged by "after" (the routes of api_ade.c and
 * api_vpp.c): up to limit records after a cursor, and "next", the cursor
 * of the last record looked at, to pass as after for the next page (null
 * at the end). Stable while records come and go between pages: a cursor
 * is a place in the store's order, not a count. At most API_SCAN_MAX
 * records are looked at per request, so a selective filter may give a
 * short page; only a null next means the end.
 */
struct api_page {
	size_t	limit, scanned;
	json_t *arr;  /* the page */
	char   *next; /* the cursor of the last record looked at */
	int	more;
};
/* (Re)start the page (zeroed first): 0, or STORE_ENOMEM. */
int  api_page_start(struct api_page *, size_t limit);
/* Before looking at the record of this cursor: 1 when the page is done
 * (stop the walk), 0 to go on (append it to arr if it matches), or
 * STORE_ENOMEM. */
int  api_page_step(struct api_page *, const char *cursor);
/* Answer 200 {name: the page, "next": cursor or null}. */
void api_page_reply(struct api *, struct api_page *, const char *name);
void api_page_free(struct api_page *);

/* api_vpp.c */
void api_vpp(struct api *);

/*
 * api_vpp_install.c: an InstallApplication with an iTunesStoreID only
 * for enrollments whose device holds a licence of it (of token, or of
 * any token when NULL), checked inside the enqueue's write transaction.
 * api_vpp_licence_new: 0 with *lic NULL when cmd is no App Store install
 * (nothing to check), 0 with *lic (free with api_vpp_licence_free; it
 * borrows ids and token), or -1 answered (400, 500).
 * api_vpp_licence_run: command_enqueue_push's check, with lic as its
 * argument: 0 when every known enrollment's device holds a licence, else
 * 409 (404 for an unknown token) and the enqueue stores nothing.
 * api_vpp_licence_fail: answer what api_vpp_licence_run refused (409
 * naming the serial and adamId, or 404).
 */
struct command;
struct store_txn;
struct api_licence;
int  api_vpp_licence_new(struct api *, const struct command *,
    char *const *ids, size_t nids, const char *token,
    struct api_licence **lic);
int  api_vpp_licence_run(struct store_txn *, void *lic);
void api_vpp_licence_fail(struct api *, const struct api_licence *);
void api_vpp_licence_free(struct api_licence *);

/* api_data.c */
void api_enqueue(struct api *);
void api_push(struct api *);
void api_enrollments(struct api *);
void api_enrollment(struct api *);
void api_queue(struct api *);
void api_command(struct api *);
void api_results(struct api *);

/* api_admin.c */
void api_metrics(struct api *);
void api_pushcert_list(struct api *);
void api_pushcert_put(struct api *);
void api_token_new(struct api *);
void api_token_list(struct api *);
void api_token_del(struct api *);

/* api_ade.c */
void api_ade_devices(struct api *);
void api_ade_device(struct api *);

#endif /* PICOMDM_API_INT_H */
