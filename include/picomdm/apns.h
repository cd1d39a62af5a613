/*
 * apns.h - the APNs push client: MDM pushes over HTTP/2 with libcurl.
 *
 * One struct apns per topic (push certificate). apns_send() sends a batch
 * of pushes multiplexed as HTTP/2 streams over one TLS connection to APNs,
 * authenticated with the topic's certificate and key (PEM, in memory), and
 * gives each push a classified result. The connection is kept between
 * calls. Nothing here touches the store: the caller decides what a result
 * means for an enrollment (picomdm-notify, README.md "Waking devices").
 *
 * The request (Apple, "Sending MDM commands to a device"; "Sending
 * notification requests to APNs"):
 *	POST /3/device/<token, lowercase hex>
 *	apns-push-type: mdm, apns-topic: <topic>, apns-priority: 10,
 *	apns-expiration: <now + expiration, Unix seconds>,
 *	content-type: application/json
 *	body {"mdm":"<PushMagic>"}
 */
#ifndef PICOMDM_APNS_H
#define PICOMDM_APNS_H

#include <stddef.h>
#include <stdint.h>

#define APNS_URL_PRODUCTION     "https://api.push.apple.com"
#define APNS_EXPIRATION_DEFAULT (7 * 24 * 3600)
#define APNS_TOKEN_HEX_MAX      200 /* 100 bytes; Apple's are 32 today */
#define APNS_MAGIC_MAX          256
#define APNS_BODY_MAX           (sizeof("{\"mdm\":\"\"}") + 6 * APNS_MAGIC_MAX)

enum apns_result {
	APNS_DELIVERED = 0, /* 200: APNs took it; apns_id is set */
	APNS_TOKEN_INVALID, /* 400 BadDeviceToken / DeviceTokenNotForTopic,
			       410 Unregistered / ExpiredToken: no more
			       pushes to this token until a TokenUpdate */
	APNS_TOPIC_STOPPED, /* 403 (certificate), 400 BadTopic /
			       TopicDisallowed / MissingTopic, or a local
			       certificate TLS will not use: stop the topic */
	APNS_RETRY,         /* 429, 5xx, connection loss, GOAWAY, timeout */
	APNS_REJECTED,      /* any other answer (a request APNs calls
			       malformed): not retried, logged */
	APNS__MAX
};

struct apns_push {
	/* In: borrowed, must outlive apns_send. */
	const char *token_hex; /* device token, hex (either case) */
	const char *magic;     /* PushMagic */
	/* Out. */
	enum apns_result result;
	int              status;    /* HTTP status, 0 when none came */
	char             reason[64];  /* APNs "reason" or a transport error */
	char             apns_id[64]; /* the apns-id answered */
	uint64_t         timestamp_ms; /* 410's "timestamp", else 0 */
};

struct apns_config {
	const char *url;     /* NULL: APNS_URL_PRODUCTION */
	const char *ca_file; /* NULL: the system's trust store */
	long long   expiration_s;  /* apns-expiration = now + this; 0 sends
				      0 (deliver now or never); < 0: default */
	long        timeout_ms;    /* per push, 0: 30000 */
	long        connect_timeout_ms; /* 0: 10000 */
	unsigned    max_inflight;  /* streams submitted at once, 0: 500 */
};

struct apns;

/*
 * A client for one topic. cert_pem and key_pem (an unencrypted key) are
 * copied; the key copy is wiped on apns_free. Returns NULL with a reason in
 * err on bad arguments or when libcurl lacks HTTP/2. A client is used by
 * one thread at a time; apns_new and apns_free call curl_global_init and
 * curl_global_cleanup, so create and free clients before starting threads
 * or from one thread.
 */
struct apns *apns_new(const struct apns_config *, const char *topic,
    const char *cert_pem, size_t cert_len, const char *key_pem,
    size_t key_len, char *err, size_t errsz);
void apns_free(struct apns *);

/*
 * Send n pushes and wait until each has a result (in place). A push whose
 * token or magic is malformed gets APNS_REJECTED without being sent.
 * Returns 0, or -1 when libcurl itself failed (out of memory); then every
 * push not yet answered is APNS_RETRY.
 */
int apns_send(struct apns *, struct apns_push *, size_t n);

/* TLS connections opened by this client so far (a new one after GOAWAY). */
unsigned long apns_connections(const struct apns *);

/*
 * Pure helpers, exported for the tests and for picomdm-notify.
 *
 * apns_classify: the result for an HTTP status and APNs reason (NULL when
 * none). apns_result_name: "delivered", "token-invalid", "topic-stopped",
 * "retry", "rejected". apns_body: write {"mdm":"<magic, JSON-escaped>"}
 * into buf; -1 when magic is empty, longer than APNS_MAGIC_MAX, has a
 * control byte or the buffer is short. apns_token_check: 0 when token is
 * an even number of hex digits, 32 to APNS_TOKEN_HEX_MAX; lowercases it
 * into out (APNS_TOKEN_HEX_MAX + 1 bytes).
 */
enum apns_result apns_classify(int status, const char *reason);
const char      *apns_result_name(enum apns_result);
int              apns_body(const char *magic, char *buf, size_t bufsz);
int              apns_token_check(const char *token, char *out);

/*
 * Backoff before retry number attempt (1 for the first retry): a random
 * delay in [d/2, d] where d = min(cap_ms, base_ms * 2^(attempt-1)), using
 * and advancing *seed (any value; a splitmix64 step). Returns -1 when
 * attempt > max_attempts: give up.
 */
long long apns_backoff_ms(unsigned attempt, unsigned max_attempts,
    long long base_ms, long long cap_ms, uint64_t *seed);

#endif
