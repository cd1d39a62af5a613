/*
 * cms_fast.c - the Mdm-Signature check for a signer seen before, without
 * OpenSSL's CMS decoder. OpenSSL 3.0 spends about 270,000 instructions
 * decoding a message (d2i_CMS_ContentInfo) and walking it (CMS_verify)
 * besides the signature itself; this walks the DER once, in place.
 *
 * Handled, and only this (anything else is -1, "not handled", and
 * identity.c lets CMS_verify decide exactly as before, with its reasons):
 *   ContentInfo { id-signedData, [0] SignedData { version 1 or 3,
 *   digestAlgorithms, encapContentInfo { id-data } with no eContent
 *   (detached), [0] certificates (X.509 only), no crls, exactly one
 *   SignerInfo { version 1 with issuerAndSerialNumber or 3 with
 *   subjectKeyIdentifier, digestAlgorithm SHA-256/384/512 (SHA-1 is
 *   left to OpenSSL), optional [0] signedAttrs, signatureAlgorithm
 *   rsaEncryption or shaNNNWithRSAEncryption (PKCS#1 v1.5) or
 *   ecdsa-with-SHA256/384/512 matching the digest, signature,
 *   no unsignedAttrs } } }
 * in strict DER: minimal definite lengths, no trailing bytes anywhere.
 * The signed attributes must be contentType (id-data), messageDigest
 * (the body's digest) and optionally signingTime and smimeCapabilities,
 * each once with one value, in DER SET OF order, so that their bytes with
 * the tag made SET (RFC 5652 section 5.4) are exactly what OpenSSL
 * re-encodes and verifies. The signer is found among the candidates as
 * CMS_set1_signers_certs finds it (X509_NAME_cmp and ASN1_INTEGER_cmp,
 * the issuer compared by its bytes first; or the subject key identifier;
 * the first match) and the signature is checked over the digest under
 * the digestAlgorithm with EVP_PKEY_verify: what EVP_DigestVerify, which
 * CMS_SignerInfo_verify uses, does once it has digested. For a signer
 * whose key cms_fast_prepare made ready, under SHA-256, the context is a
 * copy of that ready one: the same check without OpenSSL 3.0's look-ups
 * and set-up on each message (about 4 us of a 24 us RSA-2048 check on
 * this project's test machine, BENCHMARKS.md). Every rule
 * here is at least as strict as OpenSSL's; tests/unit/test-cms-fast.c and
 * tests/fuzz/fuzz-cms-fast.c compare the two.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cms_fast.h"
#include "picomdm/util.h"

/* One strict DER element in [p, end). */
struct der {
	const unsigned char *p;   /* the element */
	const unsigned char *c;   /* its content */
	size_t               len; /* content length */
	size_t               all; /* header and content */
	unsigned             tag;
};

/*
 * Read the element at *p (before end) into e and step past it: low tag
 * number, minimal definite length of at most 4 bytes. 0 or -1.
 */
static int
der_next(const unsigned char **p, const unsigned char *end, struct der *e)
{
	const unsigned char *q = *p;
	size_t               n = (size_t)(end - q), i, k, l;

	if (n < 2 || (q[0] & 0x1f) == 0x1f)
		return -1;
	if (q[1] < 0x80) {
		l = q[1];
		i = 2;
	} else {
		k = q[1] & 0x7f;
		if (k == 0 || k > 4 || n < 2 + k || q[2] == 0)
			return -1;
		for (l = 0, i = 0; i < k; i++)
			l = l << 8 | q[2 + i];
		if (l < 0x80)
			return -1;
		i = 2 + k;
	}
	if (l > n - i)
		return -1;
	e->p = q;
	e->c = q + i;
	e->len = l;
	e->all = i + l;
	e->tag = q[0];
	*p = q + i + l;
	return 0;
}

/* The element at *p, with tag. */
static int
der_want(const unsigned char **p, const unsigned char *end, unsigned tag,
    struct der *e)
{
	return der_next(p, end, e) == -1 || e->tag != tag ? -1 : 0;
}

/* Step into e: its content is [*p, *end). */
static void
der_in(const struct der *e, const unsigned char **p, const unsigned char **end)
{
	*p = e->c;
	*end = e->c + e->len;
}

/* Is e exactly the encoding oid (with its 0x06 header)? */
static int
der_is(const struct der *e, const unsigned char *oid, size_t n)
{
	return e->all == n && memcmp(e->p, oid, n) == 0;
}

#define OID(name, ...) static const unsigned char name[] = { __VA_ARGS__ }
OID(oid_signed_data, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x07, 0x02);
OID(oid_data, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07,
    0x01);
OID(oid_content_type, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x09, 0x03);
OID(oid_message_digest, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
    0x01, 0x09, 0x04);
OID(oid_signing_time, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x09, 0x05);
OID(oid_smime_caps, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
    0x09, 0x0f);
OID(oid_rsa, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
    0x01);
#undef OID

/* The digests handled, and the signature algorithms that go with each. */
static const struct cms_fast_md {
	unsigned char oid[11];
	unsigned char rsa[11];   /* shaNNNWithRSAEncryption */
	unsigned char ecdsa[10]; /* ecdsa-with-SHANNN */
	const EVP_MD *(*md)(void);
	unsigned      bits;
} cms_fast_mds[] = {
	{ { 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01 },
	    { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
		0x0b },
	    { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 },
	    EVP_sha256, 256 },
	{ { 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02 },
	    { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
		0x0c },
	    { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03 },
	    EVP_sha384, 384 },
	{ { 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03 },
	    { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
		0x0d },
	    { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04 },
	    EVP_sha512, 512 },
};
#define CMS_FAST_NMD (sizeof(cms_fast_mds) / sizeof(cms_fast_mds[0]))

/* The certificates' ex_data index of a prepared key (cms_fast_prepare). */
static struct {
	pthread_once_t once;
	int            key; /* -1: none */
} prep = { PTHREAD_ONCE_INIT, -1 };

static void
key_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	EVP_PKEY_CTX_free(ptr);
}

static void
prep_once(void)
{
	prep.key = X509_get_ex_new_index(0, NULL, NULL, NULL, key_free);
}

/* m's digest, fetched once (util.c) where that worked. */
static const EVP_MD *
md_get(const struct cms_fast_md *m)
{
	const EVP_MD *f = digest_fetched(m->bits);

	return f != NULL ? f : m->md();
}

/* A verification context for pkey's signatures under md (for RSA,
 * PKCS#1 v1.5), or NULL. */
static EVP_PKEY_CTX *
verify_ctx(EVP_PKEY *pkey, const EVP_MD *md)
{
	EVP_PKEY_CTX *ctx;

	if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
	    EVP_PKEY_verify_init(ctx) != 1 ||
	    (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1) ||
	    EVP_PKEY_CTX_set_signature_md(ctx, md) != 1) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

int
cms_fast_prepare(X509 *cert)
{
	EVP_PKEY     *pkey;
	EVP_PKEY_CTX *ctx;

	pthread_once(&prep.once, prep_once);
	if (prep.key < 0 || (pkey = X509_get0_pubkey(cert)) == NULL)
		return -1;
	if (X509_get_ex_data(cert, prep.key) != NULL)
		return 0;
	if ((ctx = verify_ctx(pkey, md_get(&cms_fast_mds[0]))) == NULL ||
	    X509_set_ex_data(cert, prep.key, ctx) != 1) {
		EVP_PKEY_CTX_free(ctx);
		return -1;
	}
	return 0;
}

/*
 * An AlgorithmIdentifier at e: its OID in *oid, and 0 when its parameters
 * are absent, 1 when NULL; -1 for anything else.
 */
static int
der_alg(const struct der *e, struct der *oid)
{
	const unsigned char *p = e->c, *end = e->c + e->len;
	struct der           par;

	if (e->tag != 0x30 || der_want(&p, end, 0x06, oid) == -1)
		return -1;
	if (p == end)
		return 0;
	if (der_want(&p, end, 0x05, &par) == -1 || par.len != 0 || p != end)
		return -1;
	return 1;
}

/* The digest of AlgorithmIdentifier e, or NULL. */
static const struct cms_fast_md *
der_md(const struct der *e)
{
	struct der oid;
	size_t     i;

	if (der_alg(e, &oid) == -1)
		return NULL;
	for (i = 0; i < CMS_FAST_NMD; i++)
		if (der_is(&oid, cms_fast_mds[i].oid, sizeof(cms_fast_mds[i].oid)))
			return &cms_fast_mds[i];
	return NULL;
}

/*
 * The signed attributes at a (content of the [0]): 0 when they are
 * exactly what the file comment allows and the messageDigest equals
 * digest/dlen; -1 otherwise.
 */
static int
attrs_check(const struct der *a, const unsigned char *digest, size_t dlen)
{
	const unsigned char *p = a->c, *end = a->c + a->len, *q, *qe, *v;
	const unsigned char *prev = NULL;
	struct der           at, oid, set, val;
	size_t               prev_all = 0, m;
	int                  ct = 0, md = 0, st = 0, caps = 0, c;
	ASN1_TIME           *t;

	while (p < end) {
		if (der_want(&p, end, 0x30, &at) == -1)
			return -1;
		/* DER SET OF order: ascending encodings, no duplicates. */
		if (prev != NULL) {
			m = prev_all < at.all ? prev_all : at.all;
			c = memcmp(prev, at.p, m);
			if (c > 0 || (c == 0 && prev_all >= at.all))
				return -1;
		}
		prev = at.p;
		prev_all = at.all;
		der_in(&at, &q, &qe);
		if (der_want(&q, qe, 0x06, &oid) == -1 ||
		    der_want(&q, qe, 0x31, &set) == -1 || q != qe)
			return -1;
		v = set.c;
		if (der_next(&v, set.c + set.len, &val) == -1 ||
		    v != set.c + set.len)
			return -1; /* exactly one value */
		if (der_is(&oid, oid_content_type, sizeof(oid_content_type))) {
			if (ct++ || !der_is(&val, oid_data, sizeof(oid_data)))
				return -1;
		} else if (der_is(&oid, oid_message_digest,
		    sizeof(oid_message_digest))) {
			if (md++ || val.tag != 0x04 || val.len != dlen ||
			    memcmp(val.c, digest, dlen) != 0)
				return -1;
		} else if (der_is(&oid, oid_signing_time,
		    sizeof(oid_signing_time))) {
			if (st++ || (val.tag != 0x17 && val.tag != 0x18))
				return -1;
			v = val.p;
			if ((t = d2i_ASN1_TIME(NULL, &v, (long)val.all)) == NULL)
				return -1;
			c = ASN1_TIME_check(t) == 1 && v == val.p + val.all;
			ASN1_TIME_free(t);
			if (!c)
				return -1;
		} else if (der_is(&oid, oid_smime_caps,
		    sizeof(oid_smime_caps))) {
			if (caps++ || val.tag != 0x30)
				return -1;
		} else
			return -1;
	}
	return ct == 1 && md == 1 ? 0 : -1;
}

/*
 * Is the issuer of x the Name whose DER is name? First by the bytes: the
 * same bytes decode to the same name, so X509_NAME_cmp would say 0 (the
 * common case, a device certificate's issuer copied into the sid costs a
 * memcmp instead of d2i_X509_NAME, about 32,000 instructions). Else as
 * OpenSSL compares them: the name decoded (once, into *nm) and
 * X509_NAME_cmp on the canonical encodings. 1, 0, or -1 when name does
 * not decode.
 */
static int
issuer_is(X509 *x, const struct der *name, X509_NAME **nm)
{
	const unsigned char *p;
	size_t               l;

	if (X509_NAME_get0_der(X509_get_issuer_name(x), &p, &l) == 1 &&
	    l == name->all && memcmp(p, name->p, l) == 0)
		return 1;
	if (*nm == NULL) {
		p = name->p;
		if ((*nm = d2i_X509_NAME(NULL, &p, (long)name->all)) == NULL)
			return -1;
		if (p != name->p + name->all)
			return -1;
	}
	return X509_NAME_cmp(*nm, X509_get_issuer_name(x)) == 0;
}

/*
 * The first candidate the SignerIdentifier sid names, as OpenSSL's
 * CMS_set1_signers_certs matches them (X509_NAME_cmp and ASN1_INTEGER_cmp,
 * candidate by candidate, in order); -1 when none (or sid is odd). The
 * serial is compared first, the issuer (issuer_is) only on a candidate
 * whose serial matches: the same predicate, so the same first match.
 */
static int
sid_match(const struct der *sid, X509 *const *cand, int ncand)
{
	const unsigned char     *p, *end;
	const ASN1_OCTET_STRING *ski;
	struct der               name, serial;
	X509_NAME               *nm = NULL;
	ASN1_INTEGER            *sn = NULL;
	int                      i, is, found = -1;

	if (sid->tag == 0x80) { /* [0] subjectKeyIdentifier */
		for (i = 0; i < ncand; i++)
			if ((ski = X509_get0_subject_key_id(cand[i])) != NULL &&
			    (size_t)ASN1_STRING_length(ski) == sid->len &&
			    memcmp(ASN1_STRING_get0_data(ski), sid->c,
				sid->len) == 0)
				return i;
		return -1;
	}
	if (sid->tag != 0x30)
		return -1;
	der_in(sid, &p, &end);
	if (der_want(&p, end, 0x30, &name) == -1 ||
	    der_want(&p, end, 0x02, &serial) == -1 || p != end)
		return -1;
	p = serial.p;
	if ((sn = d2i_ASN1_INTEGER(NULL, &p, (long)serial.all)) == NULL ||
	    p != serial.p + serial.all)
		goto out;
	for (i = 0; i < ncand; i++) {
		if (ASN1_INTEGER_cmp(sn, X509_get0_serialNumber(cand[i])) != 0)
			continue;
		if ((is = issuer_is(cand[i], &name, &nm)) == -1)
			break;
		if (is) {
			found = i;
			break;
		}
	}
out:
	X509_NAME_free(nm);
	ASN1_INTEGER_free(sn);
	return found;
}

/*
 * Does sig verify, by pkey under md, over what d/dn is the digest of? With
 * a copy of the prepared context tpl when there is one (it is shared
 * between threads and only read), else with a context made here.
 */
static int
sig_ok(EVP_PKEY *pkey, const EVP_PKEY_CTX *tpl, const EVP_MD *md,
    const unsigned char *d, size_t dn, const unsigned char *sig,
    size_t siglen)
{
	EVP_PKEY_CTX *ctx;
	int           ok;

	ctx = tpl != NULL ? EVP_PKEY_CTX_dup(tpl) : verify_ctx(pkey, md);
	ok = ctx != NULL && EVP_PKEY_verify(ctx, sig, siglen, d, dn) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/*
 * The digest under md of the signed attributes a as signed: their bytes
 * with the tag made SET (RFC 5652 section 5.4). 0 or -1.
 */
static int
attrs_digest(const struct der *a, const EVP_MD *md, unsigned char *d,
    unsigned int *dn)
{
	static const unsigned char set = 0x31;
	EVP_MD_CTX                *ctx;
	int                        ok;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestInit_ex(ctx, md, NULL) == 1 &&
	    EVP_DigestUpdate(ctx, &set, 1) == 1 &&
	    EVP_DigestUpdate(ctx, a->p + 1, a->all - 1) == 1 &&
	    EVP_DigestFinal_ex(ctx, d, dn) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

/*
 * Is the certificate e one of the candidates (bit 1 of the result for
 * candidate 0, ...)? Else 0 when it decodes as d2i_CMS_ContentInfo would
 * demand, -1 when not.
 */
static long
cert_known(const struct der *e, const unsigned char *const *cand_der,
    const size_t *cand_len, int ncand)
{
	const unsigned char *p = e->p;
	X509                *x;
	int                  i;

	for (i = 0; i < ncand && i < 31; i++)
		if (cand_len[i] == e->all &&
		    memcmp(cand_der[i], e->p, e->all) == 0)
			return 1L << i;
	if ((x = d2i_X509(NULL, &p, (long)e->all)) == NULL)
		return -1;
	X509_free(x);
	return p == e->p + e->all ? 0 : -1;
}

int
cms_fast_verify(const unsigned char *der, size_t n, const void *body,
    size_t len, X509 *const *cand, const unsigned char *const *cand_der,
    const size_t *cand_len, int ncand, int *signer)
{
	long                      known = 0, k;
	const unsigned char      *p = der, *end = der + n, *q, *qe;
	const struct cms_fast_md *md, *mdx;
	unsigned                  mds = 0;
	struct der                ci, e0, sd, ver, dalgs, eci, certs, sis, si;
	struct der                sver, sid, dalg, attrs, salg, sig, oid, x;
	unsigned char             digest[EVP_MAX_MD_SIZE];
	unsigned int              dlen;
	const EVP_PKEY_CTX       *tpl = NULL;
	EVP_PKEY                 *pkey;
	int                       which, rsa, par;

	/* ContentInfo */
	if (der_want(&p, end, 0x30, &ci) == -1 || p != end)
		return -1;
	der_in(&ci, &p, &end);
	if (der_want(&p, end, 0x06, &oid) == -1 ||
	    !der_is(&oid, oid_signed_data, sizeof(oid_signed_data)) ||
	    der_want(&p, end, 0xa0, &e0) == -1 || p != end)
		return -1;
	der_in(&e0, &p, &end);
	if (der_want(&p, end, 0x30, &sd) == -1 || p != end)
		return -1;
	/* SignedData */
	der_in(&sd, &p, &end);
	if (der_want(&p, end, 0x02, &ver) == -1 || ver.len != 1 ||
	    (ver.c[0] != 1 && ver.c[0] != 3) ||
	    der_want(&p, end, 0x31, &dalgs) == -1 ||
	    der_want(&p, end, 0x30, &eci) == -1 ||
	    der_want(&p, end, 0xa0, &certs) == -1 ||
	    der_want(&p, end, 0x31, &sis) == -1 || p != end)
		return -1;
	/* digestAlgorithms: each a known digest (the signer's checked below:
	 * OpenSSL digests the content only under these). */
	for (der_in(&dalgs, &q, &qe); q < qe;
	    mds |= 1U << (mdx - cms_fast_mds))
		if (der_next(&q, qe, &x) == -1 || (mdx = der_md(&x)) == NULL)
			return -1;
	/* encapContentInfo: id-data, detached (no eContent). */
	der_in(&eci, &q, &qe);
	if (der_want(&q, qe, 0x06, &oid) == -1 ||
	    !der_is(&oid, oid_data, sizeof(oid_data)) || q != qe)
		return -1;
	/* certificates: X.509 only, each a candidate or decoding. */
	if (ncand > 31)
		return -1;
	for (der_in(&certs, &q, &qe); q < qe; known |= k)
		if (der_want(&q, qe, 0x30, &x) == -1 ||
		    (k = cert_known(&x, cand_der, cand_len, ncand)) == -1)
			return -1;
	/* signerInfos: exactly one. */
	der_in(&sis, &q, &qe);
	if (der_want(&q, qe, 0x30, &si) == -1 || q != qe)
		return -1;
	der_in(&si, &q, &qe);
	if (der_want(&q, qe, 0x02, &sver) == -1 || sver.len != 1 ||
	    der_next(&q, qe, &sid) == -1 ||
	    (sver.c[0] == 1 ? sid.tag != 0x30 :
	     sver.c[0] != 3 || sid.tag != 0x80) ||
	    der_next(&q, qe, &dalg) == -1 || (md = der_md(&dalg)) == NULL ||
	    !(mds & 1U << (md - cms_fast_mds)) ||
	    der_next(&q, qe, &attrs) == -1)
		return -1;
	if (attrs.tag == 0xa0) {
		if (der_next(&q, qe, &salg) == -1)
			return -1;
	} else {
		salg = attrs;
		attrs.p = NULL;
	}
	if (der_want(&q, qe, 0x04, &sig) == -1 || q != qe ||
	    (par = der_alg(&salg, &oid)) == -1)
		return -1;
	if (der_is(&oid, oid_rsa, sizeof(oid_rsa)) ||
	    der_is(&oid, md->rsa, sizeof(md->rsa)))
		rsa = 1;
	else if (der_is(&oid, md->ecdsa, sizeof(md->ecdsa)) && par == 0)
		rsa = 0;
	else
		return -1;
	if ((which = sid_match(&sid, cand, ncand)) == -1 ||
	    !(known & 1L << which) ||
	    (pkey = X509_get0_pubkey(cand[which])) == NULL ||
	    EVP_PKEY_get_base_id(pkey) != (rsa ? EVP_PKEY_RSA : EVP_PKEY_EC))
		return -1;
	/* The body's digest; with signed attributes, checked against their
	 * messageDigest and replaced by the attributes' own. */
	if (EVP_Digest(len > 0 ? body : "", len, digest, &dlen, md_get(md),
	    NULL) != 1 ||
	    (attrs.p != NULL && (attrs_check(&attrs, digest, dlen) == -1 ||
	    attrs_digest(&attrs, md_get(md), digest, &dlen) == -1)))
		return -1;
	pthread_once(&prep.once, prep_once);
	if (md == &cms_fast_mds[0] && prep.key >= 0)
		tpl = X509_get_ex_data(cand[which], prep.key);
	if (!sig_ok(pkey, tpl, md_get(md), digest, dlen, sig.c, sig.len))
		return -1;
	*signer = which;
	return 0;
}
