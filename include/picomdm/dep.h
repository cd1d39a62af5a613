/*
 * dep.h - Apple's Automated Device Enrollment service (ADE, formerly
 * DEP; Apple Business/School Manager): the server token and the HTTPS
 * client of mdmenrollment.apple.com.
 *
 * Token (module/dep_token.c): picomdm makes a key pair and a self-signed
 * certificate; the administrator uploads the certificate to Apple
 * Business Manager and downloads a server token, an S/MIME envelope
 * (.p7m) encrypted to that certificate whose content is a MIME text part
 * holding a JSON object with the four OAuth 1.0a credentials and their
 * expiry. Decrypting it yields a struct dep_oauth.
 *
 * Client (module/dep.c): every call carries the session header
 * X-ADM-Auth-Session; the session comes from GET /session, signed with
 * OAuth 1.0a HMAC-SHA1 (RFC 5849). See picomdm-dep(8).
 *
 * Secrets (the four credentials, the session token, the private key)
 * are never logged; dep_oauth_clear() wipes them.
 */
#ifndef PICOMDM_DEP_H
#define PICOMDM_DEP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Apple's service; --url replaces it (tests point it at the mock). */
#define DEP_DEFAULT_URL "https://mdmenrollment.apple.com"
/* Protocol version sent in X-Server-Protocol-Version unless configured. */
#define DEP_DEFAULT_PROTOCOL "7"
/* Largest Retry-After (seconds) waited for before giving up. */
#define DEP_DEFAULT_MAX_WAIT 60

/* The OAuth credentials of one server token (all owned, NUL-terminated). */
struct dep_oauth {
	char	*consumer_key;
	char	*consumer_secret;
	char	*access_token;
	char	*access_secret;
	uint64_t expiry_us; /* access_token_expiry, µs since the epoch */
};

/* Wipe and free the strings of *o (not o itself); NULL is a no-op. */
void dep_oauth_clear(struct dep_oauth *);

/*
 * Outcome of a token operation or an ADE call. DEP_OK is 0; the others
 * say what the operator must know, and dep_strerror() words them.
 */
enum dep_status {
	DEP_OK = 0,
	DEP_ERR_SYSTEM,		  /* memory, OpenSSL, libcurl setup */
	DEP_ERR_TRANSPORT,	  /* connection, TLS, timeout */
	DEP_ERR_PROTOCOL,	  /* unexpected status or malformed response */
	DEP_ERR_AUTH,		  /* 401 even after re-authentication */
	DEP_ERR_TERMS,		  /* 403 T_C_NOT_SIGNED: accept terms in ABM */
	DEP_ERR_DENIED,		  /* 403 ACCESS_DENIED */
	DEP_ERR_RETRY_LATER,	  /* 429/503 beyond the wait bound or retries */
	DEP_ERR_CURSOR_EXHAUSTED, /* 400 EXHAUSTED_CURSOR: use sync */
	DEP_ERR_CURSOR_EXPIRED,	  /* 400 EXPIRED_CURSOR: fetch again */
	DEP_ERR_CURSOR_INVALID,	  /* 400 INVALID_CURSOR: fetch again */
	DEP_ERR_REQUEST,      /* other 4xx: the code is in dep_client_error */
	DEP_ERR_TOKEN_FORMAT, /* not an S/MIME envelope / bad JSON */
	DEP_ERR_TOKEN_WRONG_KEY, /* encrypted to another certificate */
	DEP_ERR_TOKEN_EXPIRED,	 /* access_token_expiry has passed */
	DEP_ERR_KEY,		 /* unreadable key or certificate, or no pair */
	DEP_ERR__MAX
};

/* A fixed lowercase phrase for a status. */
const char *dep_strerror(enum dep_status);

/* --- Token: module/dep_token.c --- */

/*
 * Make an RSA-2048 key pair and a self-signed certificate whose subject
 * CN is cn (1..64 printable bytes), valid for days (1..3650), with key
 * usage keyEncipherment and digitalSignature. On DEP_OK *cert_pem and
 * *key_pem are NUL-terminated PEM strings the caller frees (the key with
 * freezero(p, strlen(p))).
 */
enum dep_status dep_token_new(
    const char *cn, int days, char **cert_pem, char **key_pem);

/*
 * Decrypt Apple's server token p7m[0..len) (the .p7m file: MIME headers,
 * base64 CMS EnvelopedData, RFC 5652/8551) with key_pem and the
 * certificate cert_pem it was encrypted to, then parse the JSON of its
 * content (a MIME text part, optionally between "-----BEGIN MESSAGE-----"
 * and "-----END MESSAGE-----" lines, possibly line-wrapped). Refuses an
 * envelope with no recipient matching cert_pem (DEP_ERR_TOKEN_WRONG_KEY),
 * a key that is not the certificate's (DEP_ERR_KEY), and a token whose
 * access_token_expiry is not after now_us (DEP_ERR_TOKEN_EXPIRED; *out
 * is then still filled so that the caller can show the date). On any
 * other error *out is empty. The caller clears *out.
 */
enum dep_status dep_token_decrypt(const void *p7m, size_t len,
    const char *key_pem, const char *cert_pem, uint64_t now_us,
    struct dep_oauth *out);

/*
 * The decrypted content of a server token (a MIME text part: headers, an
 * empty line, the JSON, optionally between BEGIN/END MESSAGE lines and
 * line-wrapped; or the bare JSON) into *out, as dep_token_parse_json.
 * DEP_OK or DEP_ERR_TOKEN_FORMAT (then *out is empty).
 */
enum dep_status dep_token_content_parse(const char *, size_t,
					struct dep_oauth *out);

/*
 * Parse the token JSON (the decrypted content, or the interim token file
 * picomdm-dep writes): an object with the string members consumer_key,
 * consumer_secret, access_token, access_secret and access_token_expiry
 * (RFC 3339). DEP_OK or DEP_ERR_TOKEN_FORMAT; expiry is not checked.
 */
enum dep_status dep_token_parse_json(
    const char *, size_t, struct dep_oauth *out);

/*
 * The JSON object dep_token_parse_json reads, for *o (caller frees with
 * freezero(p, strlen(p))); NULL on allocation failure.
 */
char *dep_token_to_json(const struct dep_oauth *);

/* --- OAuth 1.0a (RFC 5849), exposed for the known-answer unit test --- */

/*
 * RFC 3986 percent-encoding as RFC 5849 §3.6 requires: everything but
 * A-Z a-z 0-9 - . _ ~ becomes %XX (uppercase). Caller frees; NULL on
 * allocation failure.
 */
char *dep_pct_encode(const char *);

/*
 * The base string URI (RFC 5849 §3.4.1.2) of base_url + path: scheme and
 * host lowercased, the default port (80 for http, 443 for https)
 * dropped, no query. base_url is "scheme://host[:port][/prefix]". Caller
 * frees; NULL when base_url is not http(s) or on allocation failure.
 */
char *dep_oauth_base_uri(const char *base_url, const char *path);

/*
 * The Authorization header value for GET /session: "OAuth realm="ADM",
 * oauth_consumer_key=..., oauth_signature=..." signed HMAC-SHA1 over the
 * base string of "GET", base_uri and the six oauth_* parameters, with
 * key pct(consumer_secret)&pct(access_secret). timestamp and nonce are
 * given so that tests can fix them. When base_string is not NULL it
 * receives the signed base string (caller frees). Caller frees the
 * result; NULL on allocation failure.
 */
char *dep_oauth_header(const struct dep_oauth *, const char *base_uri,
    const char *timestamp, const char *nonce, char **base_string);

/* --- Client: module/dep.c --- */

struct dep_client_config {
	const char *url;	      /* NULL: DEP_DEFAULT_URL */
	const char *ca_file;	      /* NULL: the system's trust store */
	const char *user_agent;	      /* NULL: "picomdm-dep/VERSION" */
	const char *protocol_version; /* NULL: DEP_DEFAULT_PROTOCOL */
	unsigned    max_wait;	      /* 0: DEP_DEFAULT_MAX_WAIT seconds */
	unsigned    max_retries;      /* 429/503 retries per call; 0: 3 */
	long	    timeout;	      /* seconds per request; 0: 60 */
};

struct dep_client;

/*
 * A client for one token. Copies cfg and the credentials of oauth.
 * Returns NULL on allocation failure, an invalid URL or an oauth with a
 * missing credential. Free with dep_client_free (NULL is a no-op).
 */
struct dep_client *dep_client_new(
    const struct dep_client_config *, const struct dep_oauth *);
void dep_client_free(struct dep_client *);

/*
 * The error code Apple's last failed response carried ("T_C_NOT_SIGNED",
 * "INVALID_CURSOR", ...; a bare code with quotes or JSON {"code":...}
 * reduced to the code) and its HTTP status, or "" and 0. Borrowed until
 * the next call.
 */
const char *dep_client_error(const struct dep_client *, long *http_status);

/* Number of GET /session calls made so far (for tests and -v). */
unsigned dep_client_sessions(const struct dep_client *);

/*
 * One call: method ("GET", "POST", "PUT", "DELETE"), path (with query),
 * body (NULL or a JSON value, borrowed). Gets a session first when there
 * is none; sends X-ADM-Auth-Session, User-Agent,
 * X-Server-Protocol-Version and, with a body, Content-Type
 * application/json;charset=UTF8; adopts a session token the response
 * carries in X-ADM-Auth-Session; on 401, or 403 whose body says
 * FORBIDDEN, authenticates again and replays the call once; on 429 and
 * 503 waits Retry-After seconds (1 when absent) and retries, at most
 * max_retries times and never waiting longer than max_wait at once.
 * T_C_NOT_SIGNED and ACCESS_DENIED are returned, never retried. On
 * DEP_OK *out (when out is not NULL) is the decoded JSON response the
 * caller json_decref()s.
 */
enum dep_status dep_call(struct dep_client *, const char *method,
    const char *path, json_t *body, json_t **out);

/*
 * Reading an answer of the ADE service, without I/O (what dep_call and
 * the calls below do with the bytes libcurl hands over; fuzzed by
 * tests/fuzz/fuzz-dep-response.c).
 *
 * dep_answer_parse: body (len bytes, need not end in NUL) of an answer
 * of HTTP status. For 200, the JSON into *out (a new reference) as kind
 * requires: DEP_OK, or DEP_ERR_PROTOCOL with *out NULL. For another
 * status, *out is NULL, Apple's error code goes into code (code_len
 * bytes; "" when the body carries none; code may be NULL when code_len
 * is 0) and the dep_status the status and code mean is returned (never
 * DEP_OK; 429 and 503 are retried by dep_call before this).
 *
 * dep_answer_header: one header line (len bytes, with or without CRLF):
 * X-ADM-Auth-Session into session (sn bytes; left alone when empty or
 * too long), Retry-After seconds (0 to a week) into *retry_after (left
 * alone when not a number).
 */
enum dep_answer {
	DEP_ANSWER_ANY = 0, /* any JSON: details, profile answers */
	DEP_ANSWER_SESSION, /* an object with a non-empty auth_session_token */
	DEP_ANSWER_ACCOUNT, /* an object (AccountDetail) */
	DEP_ANSWER_DEVICES, /* an object, string cursor, devices an array */
	DEP_ANSWER__MAX
};
enum dep_status dep_answer_parse(enum dep_answer, long status,
    const char *body, size_t len, json_t **out, char *code,
    size_t code_len);
void dep_answer_header(const char *line, size_t len, char *session,
    size_t sn, long *retry_after);

/* GET /account: the organisation and server (AccountDetail). */
enum dep_status dep_account(struct dep_client *, json_t **out);

/*
 * POST /server/devices (fetch; cursor NULL on the first call) and POST
 * /devices/sync (cursor required). limit 0 leaves Apple's default. *out
 * is the FetchDeviceResponse: cursor, devices, more_to_follow,
 * fetched_until.
 */
enum dep_status dep_devices_fetch(
    struct dep_client *, const char *cursor, unsigned limit, json_t **out);
enum dep_status dep_devices_sync(
    struct dep_client *, const char *cursor, unsigned limit, json_t **out);

/* POST /devices: details of n serials (1..1000). */
enum dep_status dep_devices_details(
    struct dep_client *, const char *const *serials, size_t n, json_t **out);

/* POST /profile: define an enrollment profile (borrowed JSON object). */
enum dep_status dep_profile_define(
    struct dep_client *, json_t *profile, json_t **out);

/* GET /profile?profile_uuid=UUID. */
enum dep_status dep_profile_get(
    struct dep_client *, const char *uuid, json_t **out);

/* POST /profile/devices: assign profile uuid to n serials (1..1000). */
enum dep_status dep_profile_assign(struct dep_client *, const char *uuid,
    const char *const *serials, size_t n, json_t **out);

#endif
