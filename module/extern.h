/*
 * extern.h - module-internal interfaces of the FastCGI responder: the
 * request as read from FastCGI, the configuration, the response, and the
 * handlers. Not installed; tools use include/picomdm/ only.
 */
#ifndef PICOMDM_EXTERN_H
#define PICOMDM_EXTERN_H

#include <stddef.h>
#include <stdint.h>

#include "picomdm/enroll.h"
#include "picomdm/identity.h"
#include "picomdm/notify.h"
#include "picomdm/store.h"
#include "picomdm/webhook.h"

struct store;
struct identity_ca;

/* Pipeline result: 0 is success, anything else an HTTP status. */
enum pm_status {
	PM_OK = 0,
	PM_BAD_REQUEST = 400,
	PM_UNAUTHORIZED = 401, /* operator API only, never device endpoints */
	PM_FORBIDDEN = 403,
	PM_NOT_FOUND = 404,
	PM_METHOD = 405,
	PM_CONFLICT = 409,
	PM_GONE = 410,
	PM_TOO_LARGE = 413,
	PM_MEDIA_TYPE = 415,
	PM_INTERNAL = 500,
	PM_UNAVAILABLE = 503
};

struct config {
	char    *db;              /* LMDB directory */
	char    *socket;          /* unix socket path; NULL = fd 0 */
	char    *device_ca;       /* PEM bundle */
	char    *api_key_file;
	char    *log_level;
	int      workers;         /* worker threads */
	int      worker_nice;     /* workers' nice above the process's */
	int      max_inflight;    /* requests accepted, not yet answered */
	unsigned commit_delay;    /* us the writer may wait (store_opts) */
	size_t   checkin_max;     /* body cap, check-in */
	size_t   connect_max;     /* body cap, command reports */
	size_t   api_max;         /* body cap, operator API */
	size_t   map_size;
	size_t   map_max;
	int      nosync;          /* bench/tests only */
	int      allow_retro;     /* bind enrollments that have no binding */
	char    *user_auth;       /* "decline" (410) or "challenge" */
	char    *digest_challenge;
	uint64_t retention_days;  /* results history */
	int      socket_mode;
	struct enroll_conf enroll; /* enrollment keys (enroll.c) */
	int      metrics_public;  /* GET /api/v1/metrics without the key */
	unsigned health_stall;    /* seconds a thread may be busy (healthz) */
	char    *socket_owner;    /* user name, or NULL: unchanged */
	char    *socket_group;    /* group name, or NULL: unchanged */
	/* picomdm-dep(8) --config: the responder ignores these */
	char    *dep_url;         /* ADE service, NULL: Apple's */
	unsigned dep_sync_interval; /* sync --daemon, seconds; 0: 3600 */
	char    *dep_enroll_url;  /* profile url, NULL: from server_url */
	/* picomdm-vpp(8) --config */
	char    *vpp_url;         /* Apps and Books service config, NULL: Apple's */
	struct webhook_conf webhook; /* webhook_* keys (webhook_conf.c) */
	struct notify_conf notify; /* picomdm-notify's keys (notify.h) */
};

/* Defaults, then the file (if any), then command-line overrides. */
void config_defaults(struct config *);
/* Four worker threads per online CPU, 8 to 64 (config.c). */
int  config_default_workers(void);
int  config_load(struct config *, const char *path); /* 0 / -1, logs why */
int  config_set(struct config *, const char *key, const char *val);
/* yes/true/1/on or no/false/0/off into *out: 0, or -1 for anything else. */
int  config_bool(const char *v, int *out);
void config_free(struct config *);

/* The request as FastCGI gave it; every pointer borrowed from FastCGI's
 * environment or owned by the request (body). */
struct request {
	const char    *method;
	const char    *uri;          /* path without query */
	const char    *query;
	const char    *content_type;
	const char    *client_cert;  /* PICOMDM_CLIENT_CERT */
	const char    *client_verify;/* PICOMDM_CLIENT_VERIFY */
	const char    *mdm_signature;/* HTTP_MDM_SIGNATURE */
	const char    *authorization;/* HTTP_AUTHORIZATION */
	char          *path;         /* owned copy of the path */
	char          *raw_path;     /* owned: REQUEST_URI's path, still
	                              * percent-encoded (API IDs may hold
	                              * an encoded '/', ',' or '%') */
	unsigned char *body;         /* owned, NUL-terminated */
	size_t         body_len;
	uint64_t       start_us;
};

/* The reply being built; owned buffers. */
struct response {
	int            status;       /* HTTP status; 200 default */
	const char    *content_type;
	unsigned char *body;         /* malloc'd */
	size_t         body_len;
	const char    *reason;       /* refusal reason for the log;
	                              * points into reason_buf */
	char           reason_buf[256];
	int            retry_after;  /* seconds; > 0 adds Retry-After */
	char           allow[32];    /* a 405's Allow header; "" none */
	const char    *msgtype;      /* for the log */
	char           id[520];      /* enrollment ID for the log */
};

/* Shared read-only state of all workers. */
struct server {
	struct config      *cfg;
	struct store       *store;
	struct identity_ca *ca;
	unsigned char      *api_key;
	size_t              api_key_len;
	struct enroll      *enroll;  /* NULL: enrollment not configured */
};

/* response.c */
#define RESPONSE_RETRY_AFTER 30 /* seconds, on 503 for an unavailable store */
void        response_set(struct response *, int status, const char *reason);
int         response_set_body(struct response *, const char *ctype,
            const void *, size_t);
int         response_json_error(struct response *, int status,
            const char *error, const char *detail);
const char *response_status_text(int);
void        response_store_result(struct response *, int rc,
            const char *reason);

/*
 * One request from accept to reply (main.c). A handler that queues a
 * write returns PENDING and keeps the exchange: the write's completion
 * fills the response and calls exchange_done(), from the store's writer
 * thread, only once the write is durable. HANDLED: the response is
 * complete and the caller sends it.
 */
struct exchange;
enum handler_rc { HANDLED = 0, PENDING = 1 };
/* exchange.c: exchange_done calls what main.c set, once, before any
 * request is accepted. release(arg), when not NULL, is run by the worker
 * that takes the exchange's slot for its next request: what a request
 * allocated in a worker is freed in a worker, not in the writer, the
 * stage every write waits for (and malloc keeps a freed block for the
 * thread that frees it). */
typedef void (*exchange_release_fn)(void *);
typedef void (*exchange_done_fn)(struct exchange *, exchange_release_fn,
    void *);
void exchange_set_done(exchange_done_fn);
void exchange_done(struct exchange *, exchange_release_fn, void *);

/*
 * device.c: what a device request's handler holds, first in its
 * operation, from identification to the reply.
 */
struct mdm_msg;
struct device_op {
	const struct server  *srv;
	const struct request *req;
	struct response      *resp;
	struct exchange      *x;
	struct mdm_msg       *msg;                      /* owned */
	unsigned char         hash[IDENTITY_HASH_LEN];  /* the caller's cert */
};
typedef int (*device_parse_fn)(const char *, size_t, struct mdm_msg **,
    const char **reason);
/*
 * Allocate an operation of size bytes (its first member a struct
 * device_op), identify the caller and parse its message into it. The
 * operation, or NULL with the refusal in resp.
 */
struct device_op *device_begin(size_t size, const struct server *,
    const struct request *, struct response *, struct exchange *,
    device_parse_fn);
/* Queue the operation d begins for the writer: PENDING, or HANDLED with
 * the error in the response and the operation freed. */
int  device_submit(struct device_op *d, store_op_fn, store_done_fn);
/* From the operation's completion: the store's verdict into the
 * response, the operation freed, the exchange passed on to be sent. */
void device_finish(struct device_op *d, int rc, const char *reason);

/* checkin.c, connect.c: decide and store (asynchronously). */
int checkin_handle(const struct server *, const struct request *,
    struct response *, struct exchange *);
int connect_handle(const struct server *, const struct request *,
    struct response *, struct exchange *);
/* enroll.c: GET/POST /mdm/enroll (answers before returning). */
void enroll_handle(const struct server *, const struct request *,
     struct response *);
/* api.c: the operator API (answers before returning), for a request
 * api_authorize let through. */
void api_handle(const struct server *, const struct request *,
     struct response *);
/* api.c: the API key, checked before the body is read: 0, or -1 with the
 * refusal set. Every API request goes through it first (main.c). */
int  api_authorize(const struct server *, const struct request *,
     struct response *);
/* api.c: GET /healthz, without authentication: 200 "ok" or 503 and why.
 * HANDLED. */
int  api_health(const struct server *, const struct request *,
     struct response *);

#endif
