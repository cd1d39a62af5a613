/*
 * cms_fast.h - a hand-written check of the one SignerInfo of a detached
 * CMS SignedData (RFC 5652) against already-parsed candidate signer
 * certificates; see cms_fast.c.
 */
#ifndef PICOMDM_CMS_FAST_H
#define PICOMDM_CMS_FAST_H

#include <stddef.h>

#include <openssl/x509.h>

/*
 * Check der/n (a DER ContentInfo) over body/len against the candidates
 * cand[0..ncand) (the caller's cached, chain-verified certificates), whose
 * DER encodings are cand_der[i]/cand_len[i]. The signer must be a
 * candidate whose DER is among the message's certificates; every other
 * certificate of the message must decode. 0 with *signer, the index of
 * the candidate that signed it; -1 when not handled or not verified: the
 * caller then lets OpenSSL's CMS_verify decide. Never 0 where CMS_verify
 * would refuse.
 */
int cms_fast_verify(const unsigned char *der, size_t n, const void *body,
    size_t len, X509 *const *cand, const unsigned char *const *cand_der,
    const size_t *cand_len, int ncand, int *signer);

/*
 * Make cert's public key ready for cms_fast_verify's SHA-256 checks: a
 * verification context set up once and kept with the certificate (its
 * ex_data, freed with it); each check then works on a copy. Call before
 * cert is shared between threads. 0, or -1 when it could not (checks then
 * take the general path).
 */
int cms_fast_prepare(X509 *cert);

#endif
