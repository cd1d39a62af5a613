/*
 * identity.h - who is calling: the device identity certificate, from the
 * TLS client certificate nginx forwards or from the Mdm-Signature header,
 * verified against the device CA; and its binding to an enrollment.
 */
#ifndef PICOMDM_IDENTITY_H
#define PICOMDM_IDENTITY_H

#include <stddef.h>

struct store_txn;
struct identity_ca;

#define IDENTITY_HASH_LEN 32

/* Load a PEM bundle of trusted device CA certificates. 0 or -1. */
int  identity_ca_load(const char *path, struct identity_ca **out);
void identity_ca_free(struct identity_ca *);

/*
 * Establish the caller's certificate. escaped_cert is nginx's
 * $ssl_client_escaped_cert (URL-escaped PEM), verify its
 * $ssl_client_verify; mdm_signature the Mdm-Signature header (base64
 * detached CMS over exactly body/len, RFC 5652). The TLS certificate is
 * used when present, else the signature. The certificate chain and its
 * validity are verified against the CA here, whatever nginx said.
 * On success returns 0 and fills hash with SHA-256 of the DER; otherwise
 * returns 400 (no or unreadable certificate, bad signature) or 403 (not
 * from our CA, expired, nginx verification failed) with *reason set, or
 * 500 when out of memory. *reason is a static string, or a buffer of the
 * calling thread valid until its next identity_verify (copy it). verify
 * is NULL when nginx passes no PICOMDM_CLIENT_VERIFY at all.
 */
int identity_verify(const struct identity_ca *, const char *escaped_cert,
    const char *verify, const char *mdm_signature, const void *body,
    size_t len, unsigned char hash[IDENTITY_HASH_LEN], const char **reason);

/*
 * Mdm-Signatures verified by the fast path since the CA was loaded: a
 * signer verified before is recognised by its certificate's bytes and
 * not decoded again (read by tests/unit/test-identity).
 */
unsigned long identity_sig_fast_count(const struct identity_ca *);
/* Of those, the ones module/cms_fast.c verified (the rest went through
 * CMS_verify on the cached certificates, after cms_fast.c declined). */
unsigned long identity_cms_fast_count(const struct identity_ca *);

/*
 * Certificate-to-enrollment binding (ARCHITECTURE.md section 4), inside the
 * write transaction, before anything is written. device_id is the
 * device-channel ID. On Authenticate (authenticate = 1) a certificate never
 * seen is bound, a certificate bound to this device is accepted, one bound
 * to another device is refused. Other messages need the device's current
 * certificate; with allow_retro, a device with no binding yet binds a
 * never-seen certificate. Returns 0, 403 (with *reason), or 500/503 on
 * store errors.
 */
int identity_authorize(struct store_txn *, const char *device_id,
    const unsigned char hash[IDENTITY_HASH_LEN], int authenticate,
    int allow_retro, const char **reason);

#endif
