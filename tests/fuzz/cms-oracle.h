/*
 * cms-oracle.h - OpenSSL's verdict on a detached Mdm-Signature, the
 * oracle module/cms_fast.c is held to by tests/unit/test-cms-fast.c and
 * tests/fuzz/fuzz-cms-fast.c. It asks d2i_CMS_ContentInfo and CMS_verify
 * exactly as identity.c's OpenSSL path does for a signer seen before: the
 * message must decode to its last byte, be detached and have one signer,
 * and CMS_verify must verify it with the candidates as the only signer
 * certificates (CMS_NOINTERN), content binary, the signer's chain not
 * verified. cms_oracle() returns 1 with *signer, the index of the
 * candidate CMS_verify took as the signer, or 0 with *signer -1; it ends
 * the process (abort) when out of memory and leaves the thread's OpenSSL
 * error queue empty.
 */
#ifndef PICOMDM_FUZZ_CMS_ORACLE_H
#define PICOMDM_FUZZ_CMS_ORACLE_H

#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509.h>

static int
cms_oracle(const unsigned char *der, size_t n, const void *body, size_t len,
    X509 *const *cand, int ncand, int *signer)
{
	const unsigned char      *p = der;
	CMS_ContentInfo          *cms;
	STACK_OF(X509)           *certs;
	STACK_OF(CMS_SignerInfo) *sis;
	BIO                      *in;
	X509                     *s = NULL;
	int                       i, ok = 0;

	*signer = -1;
	/* Behind a pass-through filter, as identity.c's sig_content does:
	 * OpenSSL 3.0's CMS_verify copies a memory BIO into one it leaks
	 * when verification fails early (Debian's libssl3 3.0.19 leaks it
	 * where this oracle reaches: test-cms-fast under LeakSanitizer). */
	if ((certs = sk_X509_new_null()) == NULL ||
	    (in = BIO_new_mem_buf(len > 0 ? body : "", (int)len)) == NULL ||
	    (in = BIO_push(BIO_new(BIO_f_null()), in)) == NULL)
		abort();
	for (i = 0; i < ncand; i++)
		if (sk_X509_push(certs, cand[i]) <= 0)
			abort();
	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)n)) != NULL &&
	    p == der + n && CMS_is_detached(cms) == 1 &&
	    (sis = CMS_get0_SignerInfos(cms)) != NULL &&
	    sk_CMS_SignerInfo_num(sis) == 1 &&
	    CMS_verify(cms, certs, NULL, in, NULL, CMS_BINARY |
	    CMS_NO_SIGNER_CERT_VERIFY | CMS_NOINTERN) > 0) {
		CMS_SignerInfo_get0_algs(sk_CMS_SignerInfo_value(sis, 0), NULL,
		    &s, NULL, NULL);
		for (i = 0; i < ncand; i++)
			if (cand[i] == s)
				*signer = i;
		ok = *signer != -1;
	}
	ERR_clear_error();
	BIO_free_all(in);
	CMS_ContentInfo_free(cms);
	sk_X509_free(certs);
	return ok;
}

#endif
