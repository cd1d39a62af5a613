/*
 * identity.c - who is calling. The device identity certificate comes from
 * the TLS client certificate nginx forwards ($ssl_client_escaped_cert, or
 * an RFC 9440 ":base64(DER):" value) or from the Mdm-Signature header (a
 * detached CMS SignedData over the request body, RFC 5652); its chain and
 * validity are verified against the device CA; its SHA-256 is then bound
 * to the device-channel ID (ARCHITECTURE.md section 4). An Mdm-Signature
 * from a signer verified before is checked by cms_fast.c (no CMS decoder);
 * whatever it declines goes to OpenSSL's CMS_verify, which also words
 * every refusal.
 *
 * Everything here runs on worker threads at once: the X509_STORE is
 * shared and never modified after identity_ca_load(); every call makes
 * its own X509_STORE_CTX and leaves the thread's OpenSSL error queue
 * empty.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "picomdm/identity.h"
#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

#include "cms_fast.h"

/* Caps on the encoded inputs, checked before anything is decoded. */
#define IDENTITY_CERT_MAX (16 * 1024)
#define IDENTITY_SIG_MAX  (32 * 1024)

/*
 * Verified-certificate cache. Parsing the forwarded PEM and verifying its
 * chain costs about 170 µs a request; a device sends the same certificate
 * every time. An entry maps SHA-256 of the exact forwarded string (or, for
 * Mdm-Signature, of the signer's DER) to the DER hash and the validity
 * window; only successful verifications are cached, and a hit is honoured
 * only inside the window. The CA bundle never changes while the process
 * runs, so nothing else can invalidate an entry. Four ways per set, one
 * lock per stripe of sets: two devices whose keys fall into the same set
 * no longer evict each other on every request (direct-mapped, one such
 * pair among 64 devices, a 39% chance, made 2.5% of the bench's requests
 * miss, and a miss, a PEM decode and a chain verification, counts about
 * 70 times the instructions of a hit under callgrind; a fleet larger than
 * the cache missed nearly always).
 * A full set replaces its ways in turn. A signer's entry also keeps the
 * parsed certificate: OpenSSL 3.0 spends most of a signature check
 * decoding the certificates inside the message, which the fast path
 * below skips.
 */
#define IDCACHE_SETS    4096
#define IDCACHE_WAYS    4
#define IDCACHE_SLOTS   (IDCACHE_SETS * IDCACHE_WAYS)
#define IDCACHE_STRIPES 64

struct idcache_entry {
	unsigned char key[32];
	unsigned char hash[IDENTITY_HASH_LEN];
	time_t        not_before;
	time_t        not_after;
	int           used;
	X509         *cert;  /* signers only; one reference */
};

struct idcache {
	pthread_mutex_t      lock[IDCACHE_STRIPES];
	struct idcache_entry slot[IDCACHE_SLOTS]; /* set s: s * WAYS.. */
	unsigned char        next[IDCACHE_SETS];  /* way to replace next */
	unsigned long        sig_fast; /* atomic: fast-path verifications */
	unsigned long        sig_fallback; /* atomic: of those, by CMS_verify
					    * after cms_fast.c declined */
};

struct identity_ca {
	X509_STORE     *store; /* read-only once loaded */
	struct idcache *cache; /* mutable, locked per stripe */
};

/* The set of key. */
static size_t
idcache_set(const unsigned char key[32])
{
	return ((size_t)key[0] << 16 | (size_t)key[1] << 8 | key[2]) %
	    IDCACHE_SETS;
}

/* The entry of key in its set, or NULL. The set's stripe locked. */
static struct idcache_entry *
idcache_find(struct idcache *c, size_t set, const unsigned char key[32])
{
	struct idcache_entry *e = &c->slot[set * IDCACHE_WAYS];
	int                   w;

	for (w = 0; w < IDCACHE_WAYS; w++, e++)
		if (e->used && memcmp(e->key, key, 32) == 0)
			return e;
	return NULL;
}

/* Is e (found for its key) now inside its window? Its stripe locked. */
static int
idcache_hit(const struct idcache_entry *e)
{
	time_t now = time(NULL);

	return e != NULL && now >= e->not_before && now <= e->not_after;
}

/* 1 and the DER hash when key is cached and now inside its window. */
static int
idcache_get(struct idcache *c, const unsigned char key[32],
    unsigned char hash[IDENTITY_HASH_LEN])
{
	size_t                set = idcache_set(key);
	struct idcache_entry *e;
	int                   hit;

	pthread_mutex_lock(&c->lock[set % IDCACHE_STRIPES]);
	e = idcache_find(c, set, key);
	if ((hit = idcache_hit(e)))
		memcpy(hash, e->hash, IDENTITY_HASH_LEN);
	pthread_mutex_unlock(&c->lock[set % IDCACHE_STRIPES]);
	return hit;
}

/*
 * The parsed certificate of a cached signer (a new reference), or NULL. A
 * signer's key is the SHA-256 of its DER, which is also its hash.
 */
static X509 *
idcache_get_cert(struct idcache *c, const unsigned char key[32])
{
	size_t                set = idcache_set(key);
	struct idcache_entry *e;
	X509                 *x = NULL;

	pthread_mutex_lock(&c->lock[set % IDCACHE_STRIPES]);
	e = idcache_find(c, set, key);
	if (idcache_hit(e) && e->cert != NULL && X509_up_ref(e->cert) == 1)
		x = e->cert;
	pthread_mutex_unlock(&c->lock[set % IDCACHE_STRIPES]);
	return x;
}

/*
 * Remember a verified certificate (its validity window from leaf); with
 * keep, the entry holds a reference to leaf too.
 */
static void
idcache_put(struct idcache *c, const unsigned char key[32],
    const unsigned char hash[IDENTITY_HASH_LEN], X509 *leaf, int keep)
{
	struct idcache_entry e, *slot;
	struct tm            tm;
	size_t               set = idcache_set(key), w;
	X509                *old;

	memset(&e, 0, sizeof(e));
	if (ASN1_TIME_to_tm(X509_get0_notBefore(leaf), &tm) != 1 ||
	    (e.not_before = timegm(&tm)) == (time_t)-1 ||
	    ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) != 1 ||
	    (e.not_after = timegm(&tm)) == (time_t)-1)
		return;
	if (keep) {
		/* A signer's key made ready for the fast path's checks
		 * while leaf is still this thread's alone. */
		(void)cms_fast_prepare(leaf);
		if (X509_up_ref(leaf) != 1)
			return;
	}
	memcpy(e.key, key, 32);
	memcpy(e.hash, hash, IDENTITY_HASH_LEN);
	e.used = 1;
	e.cert = keep ? leaf : NULL;
	pthread_mutex_lock(&c->lock[set % IDCACHE_STRIPES]);
	/* The key's own entry, else a free way, else the next in turn. */
	if ((slot = idcache_find(c, set, key)) == NULL) {
		slot = &c->slot[set * IDCACHE_WAYS];
		for (w = 0; w < IDCACHE_WAYS && slot[w].used; w++)
			;
		if (w == IDCACHE_WAYS) {
			w = c->next[set] % IDCACHE_WAYS;
			c->next[set] = (unsigned char)((w + 1) % IDCACHE_WAYS);
		}
		slot += w;
	}
	old = slot->cert;
	*slot = e;
	pthread_mutex_unlock(&c->lock[set % IDCACHE_STRIPES]);
	X509_free(old);
}

/*
 * Empty this thread's OpenSSL error queue, logging each entry at debug
 * level after what. Entries name OpenSSL functions and reasons, never key
 * material.
 */
static void
identity_ssl_drain(const char *what)
{
	unsigned long e;
	char	      buf[256];

	while ((e = ERR_get_error()) != 0) {
		if (what != NULL && log_enabled(LOG_DEBUG)) {
			ERR_error_string_n(e, buf, sizeof(buf));
			log_debug("%s: %s", what, buf);
		}
	}
}

/*
 * Load a PEM bundle of one or more trusted device CA certificates (PEM
 * blocks of other types are skipped). Every certificate in the bundle is
 * a trust anchor, an intermediate too (identity_chain_verify uses
 * X509_V_FLAG_PARTIAL_CHAIN, as Go's x509 root pools do for NanoMDM).
 * Returns 0 with *out owned by the caller (identity_ca_free), or -1 after
 * logging why.
 */
int
identity_ca_load(const char *path, struct identity_ca **out)
{
	struct identity_ca *ca = NULL;
	BIO		   *bio = NULL;
	X509		   *x = NULL;
	unsigned long	    e;
	int		    n = 0, rc = -1;

	*out = NULL;
	if ((ca = calloc(1, sizeof(*ca))) == NULL) {
		log_error("calloc: %s", strerror(errno));
		goto out;
	}
	if ((ca->cache = calloc(1, sizeof(*ca->cache))) == NULL) {
		log_error("calloc: %s", strerror(errno));
		goto out;
	}
	for (n = 0; n < IDCACHE_STRIPES; n++)
		pthread_mutex_init(&ca->cache->lock[n], NULL);
	n = 0;
	if ((ca->store = X509_STORE_new()) == NULL) {
		log_error("X509_STORE_new failed");
		goto out;
	}
	if ((bio = BIO_new_file(path, "r")) == NULL) {
		log_error("device CA bundle %s: %s", path, strerror(errno));
		goto out;
	}
	for (;;) {
		if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) == NULL) {
			e = ERR_peek_last_error();
			if (n > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM &&
			    ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
				break;
			if (n == 0)
				log_error("no certificate in device CA bundle "
					  "%s",
				    path);
			else
				log_error("bad certificate %d in device CA "
					  "bundle %s",
				    n + 1, path);
			goto out;
		}
		/* Also caches the extensions before threads share x. */
		if (X509_check_ca(x) == 0)
			log_warn("certificate %d in device CA bundle %s is not "
				 "a CA certificate",
			    n + 1, path);
		if (X509_STORE_add_cert(ca->store, x) <= 0) {
			log_error("cannot add certificate %d of device CA "
				  "bundle %s",
			    n + 1, path);
			goto out;
		}
		X509_free(x);
		x = NULL;
		n++;
	}
	*out = ca;
	ca = NULL;
	rc = 0;
out:
	X509_free(x);
	BIO_free(bio);
	identity_ca_free(ca);
	identity_ssl_drain(rc == 0 ? NULL : "device CA");
	return rc;
}

void
identity_ca_free(struct identity_ca *ca)
{
	if (ca == NULL)
		return;
	X509_STORE_free(ca->store);
	if (ca->cache != NULL) {
		int i;

		for (i = 0; i < IDCACHE_STRIPES; i++)
			pthread_mutex_destroy(&ca->cache->lock[i]);
		for (i = 0; i < IDCACHE_SLOTS; i++)
			X509_free(ca->cache->slot[i].cert);
		free(ca->cache);
	}
	free(ca);
}

/*
 * Parse the certificate nginx forwarded: a URL-escaped PEM certificate
 * ($ssl_client_escaped_cert; only the first certificate is used), or,
 * when the value starts with ':', the RFC 9440 Client-Cert form
 * ":base64(DER):". Returns 0 with *leaf owned by the caller, or 400 (or
 * 500 when out of memory) with *reason.
 */
static int
identity_cert_parse(const char *s, X509 **leaf, const char **reason)
{
	unsigned char	    *der = NULL;
	const unsigned char *p;
	char		    *pem = NULL;
	BIO		    *bio = NULL;
	size_t		     n, derlen = 0;
	int		     rc = 400;

	if ((n = strnlen(s, IDENTITY_CERT_MAX + 1)) > IDENTITY_CERT_MAX) {
		*reason = "client certificate too large";
		goto out;
	}
	if (s[0] == ':') {
		/* RFC 9440 section 2.2: an sf-binary byte sequence. */
		if (n < 3 || s[n - 1] != ':' ||
		    (der = base64_decode(s + 1, n - 2, &derlen)) == NULL ||
		    derlen == 0) {
			*reason = "client certificate is not base64";
			goto out;
		}
		p = der;
		if ((*leaf = d2i_X509(NULL, &p, (long)derlen)) == NULL ||
		    p != der + derlen) {
			*reason = "client certificate does not parse";
			goto out;
		}
	} else {
		if ((pem = pct_decode(s, n)) == NULL) {
			*reason = "client certificate is not URL-escaped";
			goto out;
		}
		if ((bio = BIO_new_mem_buf(pem, -1)) == NULL) {
			rc = 500;
			*reason = "out of memory";
			goto out;
		}
		if ((*leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL)) ==
		    NULL) {
			*reason = "client certificate does not parse";
			goto out;
		}
	}
	rc = 0;
out:
	if (rc != 0) {
		X509_free(*leaf);
		*leaf = NULL;
	}
	BIO_free(bio);
	free(pem);
	free(der);
	return rc;
}

/*
 * The body as CMS_verify's detached content: behind a pass-through
 * filter, because OpenSSL 3.0's CMS_verify copies a memory BIO into one
 * it leaks when the message's digest is unknown (found by fuzz-cms); any
 * other BIO type it leaves to us. 0, 400 or 500 with *reason.
 */
static int
sig_content(const void *body, size_t len, BIO **out, const char **reason)
{
	BIO *mem, *f;

	*out = NULL;
	if (len > INT_MAX) {
		*reason = "body too large";
		return 400;
	}
	if ((mem = BIO_new_mem_buf(len > 0 ? body : "", (int)len)) == NULL ||
	    (f = BIO_new(BIO_f_null())) == NULL) {
		BIO_free(mem);
		*reason = "out of memory";
		return 500;
	}
	*out = BIO_push(f, mem);
	return 0;
}

/*
 * DER, just enough to find the certificates of a SignedData (RFC 5652
 * section 5.1) without decoding them. der_elem reads one element at
 * p[0..n): low tag number, definite length of at most 4 bytes; anything
 * else (BER's indefinite length included) is -1 and leaves the message
 * to the full path.
 */
static int
der_elem(const unsigned char *p, size_t n, unsigned *tag, size_t *hlen,
    size_t *clen)
{
	size_t i, k, l;

	if (n < 2 || (p[0] & 0x1f) == 0x1f)
		return -1;
	*tag = p[0];
	if (p[1] < 0x80) {
		l = p[1];
		i = 2;
	} else {
		k = p[1] & 0x7f;
		if (k == 0 || k > 4 || n < 2 + k)
			return -1;
		for (l = 0, i = 0; i < k; i++)
			l = l << 8 | p[2 + i];
		i = 2 + k;
	}
	if (l > n - i)
		return -1;
	*hlen = i;
	*clen = l;
	return 0;
}

/* Write a DER header for tag and len at out (6 bytes at most). */
static size_t
der_hdr(unsigned char *out, unsigned tag, size_t len)
{
	size_t k = 0, i;

	out[0] = (unsigned char)tag;
	if (len < 0x80) {
		out[1] = (unsigned char)len;
		return 2;
	}
	for (i = len; i > 0; i >>= 8)
		k++;
	out[1] = (unsigned char)(0x80 | k);
	for (i = 0; i < k; i++)
		out[2 + i] = (unsigned char)(len >> (8 * (k - 1 - i)));
	return 2 + k;
}

#define SIG_CERTS_MAX 8

struct sig_split {
	unsigned char       *bare;     /* the message without certificates */
	size_t               bare_len;
	const unsigned char *cert[SIG_CERTS_MAX];
	size_t               cert_len[SIG_CERTS_MAX];
	int                  ncert;
};

/*
 * Split a DER ContentInfo holding a SignedData into its certificates (each
 * an X.509 Certificate SEQUENCE; pointers into der) and a copy of the
 * message without the certificates field (sp->bare, the caller frees it).
 * -1 when the message has any other shape: the full path then decides,
 * with its own reasons.
 */
static int
sig_split(const unsigned char *der, size_t n, struct sig_split *sp)
{
	static const unsigned char signed_data[] = { 0x06, 0x09, 0x2a, 0x86,
		0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02 };
	const unsigned char *p, *end, *sd, *cf = NULL, *c0 = NULL, *c1 = NULL;
	unsigned char        hdr[3][6], *o;
	unsigned             tag;
	size_t               h, l, hl[3], sd_len, e0_len, ci_len;
	int                  field;

	memset(sp, 0, sizeof(*sp));
	/* ContentInfo ::= SEQUENCE { contentType, [0] EXPLICIT content } */
	if (der_elem(der, n, &tag, &h, &l) == -1 || tag != 0x30 || h + l != n)
		return -1;
	p = der + h;
	end = der + n;
	if ((size_t)(end - p) < sizeof(signed_data) ||
	    memcmp(p, signed_data, sizeof(signed_data)) != 0)
		return -1;
	p += sizeof(signed_data);
	if (der_elem(p, (size_t)(end - p), &tag, &h, &l) == -1 ||
	    tag != 0xa0 || p + h + l != end)
		return -1;
	p += h;
	if (der_elem(p, (size_t)(end - p), &tag, &h, &l) == -1 ||
	    tag != 0x30 || p + h + l != end)
		return -1;
	sd = p += h;
	/* SignedData: version, digestAlgorithms, encapContentInfo,
	 * [0] IMPLICIT certificates, [1] crls, signerInfos. */
	for (field = 0; p < end; field++) {
		if (der_elem(p, (size_t)(end - p), &tag, &h, &l) == -1)
			return -1;
		if (field == 3 && tag == 0xa0) {
			cf = p;
			c0 = p + h;
			c1 = p + h + l;
		}
		p += h + l;
	}
	if (cf == NULL)
		return -1;
	for (p = c0; p < c1; p += h + l) {
		if (sp->ncert == SIG_CERTS_MAX ||
		    der_elem(p, (size_t)(c1 - p), &tag, &h, &l) == -1 ||
		    tag != 0x30)
			return -1;
		sp->cert[sp->ncert] = p;
		sp->cert_len[sp->ncert++] = h + l;
	}
	/* The three enclosing elements, re-encoded without the field. */
	sd_len = (size_t)(cf - sd) + (size_t)(end - c1);
	hl[2] = der_hdr(hdr[2], 0x30, sd_len);
	e0_len = hl[2] + sd_len;
	hl[1] = der_hdr(hdr[1], 0xa0, e0_len);
	ci_len = sizeof(signed_data) + hl[1] + e0_len;
	hl[0] = der_hdr(hdr[0], 0x30, ci_len);
	if ((o = sp->bare = malloc(hl[0] + ci_len)) == NULL)
		return -1;
	sp->bare_len = hl[0] + ci_len;
	memcpy(o, hdr[0], hl[0]);
	o += hl[0];
	memcpy(o, signed_data, sizeof(signed_data));
	o += sizeof(signed_data);
	memcpy(o, hdr[1], hl[1]);
	o += hl[1];
	memcpy(o, hdr[2], hl[2]);
	o += hl[2];
	memcpy(o, sd, (size_t)(cf - sd));
	o += cf - sd;
	memcpy(o, c1, (size_t)(end - c1));
	return 0;
}

/*
 * The fast path for a signer seen before: the message without its
 * certificates is verified against the cached, already chain-verified
 * certificates among them. 0 with hash set, or -1: not known, or not
 * verified this way (the full path then decides and reports why).
 */
static int
identity_sig_fast(struct idcache *c, const unsigned char *der, size_t derlen,
    const void *body, size_t len, unsigned char hash[IDENTITY_HASH_LEN])
{
	struct sig_split          sp;
	STACK_OF(X509)           *certs = NULL;
	STACK_OF(CMS_SignerInfo) *sis;
	CMS_ContentInfo          *cms = NULL;
	const unsigned char      *p;
	unsigned char             key[SIG_CERTS_MAX][32];
	int                       of[SIG_CERTS_MAX]; /* certs[j] is cert of[j] */
	BIO                      *dcont = NULL;
	X509                     *x, *signer = NULL;
	X509                     *cand[SIG_CERTS_MAX];
	const unsigned char      *cand_der[SIG_CERTS_MAX];
	size_t                    cand_len[SIG_CERTS_MAX];
	const char               *reason;
	int                       i, j, rc = -1;

	if (sig_split(der, derlen, &sp) == -1)
		goto out;
	if ((certs = sk_X509_new_null()) == NULL)
		goto out;
	for (i = 0; i < sp.ncert; i++) {
		sha256(sp.cert[i], sp.cert_len[i], key[i]);
		if ((x = idcache_get_cert(c, key[i])) == NULL)
			continue;
		of[sk_X509_num(certs)] = i;
		if (sk_X509_push(certs, x) <= 0) {
			X509_free(x);
			goto out;
		}
	}
	if (sk_X509_num(certs) == 0)
		goto out;
	/* The hand-written check (cms_fast.c); CMS_verify when it declines. */
	for (j = 0; j < sk_X509_num(certs); j++) {
		cand[j] = sk_X509_value(certs, j);
		cand_der[j] = sp.cert[of[j]];
		cand_len[j] = sp.cert_len[of[j]];
	}
	if (cms_fast_verify(der, derlen, body, len, cand, cand_der, cand_len,
	    j, &i) == 0) {
		memcpy(hash, key[of[i]], IDENTITY_HASH_LEN);
		rc = 0;
		goto out;
	}
	p = sp.bare;
	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)sp.bare_len)) == NULL ||
	    p != sp.bare + sp.bare_len || CMS_is_detached(cms) != 1 ||
	    (sis = CMS_get0_SignerInfos(cms)) == NULL ||
	    sk_CMS_SignerInfo_num(sis) != 1 ||
	    sig_content(body, len, &dcont, &reason) != 0)
		goto out;
	if (CMS_verify(cms, certs, NULL, dcont, NULL, CMS_BINARY |
	    CMS_NO_SIGNER_CERT_VERIFY | CMS_NOINTERN) <= 0)
		goto out;
	CMS_SignerInfo_get0_algs(
	    sk_CMS_SignerInfo_value(sis, 0), NULL, &signer, NULL, NULL);
	/* The signer is one of ours: its key is its DER hash. */
	for (i = 0; signer != NULL && i < sk_X509_num(certs); i++)
		if (sk_X509_value(certs, i) == signer) {
			memcpy(hash, key[of[i]], IDENTITY_HASH_LEN);
			__atomic_add_fetch(&c->sig_fallback, 1,
			    __ATOMIC_RELAXED);
			rc = 0;
			break;
		}
out:
	BIO_free_all(dcont);
	CMS_ContentInfo_free(cms);
	sk_X509_pop_free(certs, X509_free);
	free(sp.bare);
	return rc;
}

/*
 * Verify an Mdm-Signature (its base64 decoded): a DER CMS ContentInfo
 * holding a SignedData (RFC 5652 section 5) with detached content, exactly one
 * signer, and the signer certificate among its certificates. The
 * signature (and the signed attributes, when present) must verify over
 * exactly body/len. The signer certificate is not verified here; it is
 * returned in *leaf, and the message (whose certificates are the untrusted
 * intermediates) in *cmsp, both owned by the caller. Returns 0, or 400
 * (500 when out of memory) with *reason.
 */
static int
identity_sig_verify(const unsigned char *der, size_t derlen, const void *body,
    size_t len, X509 **leaf, CMS_ContentInfo **cmsp, const char **reason)
{
	const unsigned char *p;
	CMS_ContentInfo	    *cms = NULL;
	X509		    *signer = NULL;
	BIO		    *dcont = NULL;
	int		     rc = 400;
	STACK_OF(CMS_SignerInfo) *sis = NULL;

	p = der;
	if ((cms = d2i_CMS_ContentInfo(NULL, &p, (long)derlen)) == NULL ||
	    p != der + derlen) {
		*reason = "Mdm-Signature is not a CMS message";
		goto out;
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		*reason = "Mdm-Signature is not a CMS SignedData";
		goto out;
	}
	if (CMS_is_detached(cms) != 1) {
		*reason = "Mdm-Signature is not detached";
		goto out;
	}
	if ((sis = CMS_get0_SignerInfos(cms)) == NULL ||
	    sk_CMS_SignerInfo_num(sis) != 1) {
		*reason = "Mdm-Signature must have exactly one signer";
		goto out;
	}
	/* Match the signer to a certificate of the message, if there is. */
	if (CMS_set1_signers_certs(cms, NULL, 0) < 0) {
		*reason = "Mdm-Signature is not a CMS SignedData";
		goto out;
	}
	CMS_SignerInfo_get0_algs(
	    sk_CMS_SignerInfo_value(sis, 0), NULL, &signer, NULL, NULL);
	if (signer == NULL) {
		*reason = "Mdm-Signature has no signer certificate";
		goto out;
	}
	if ((rc = sig_content(body, len, &dcont, reason)) != 0)
		goto out;
	rc = 400;
	/* Binary content: no MIME canonicalisation of the body. */
	if (CMS_verify(cms, NULL, NULL, dcont, NULL,
		CMS_BINARY | CMS_NO_SIGNER_CERT_VERIFY) <= 0) {
		*reason = "Mdm-Signature does not verify";
		goto out;
	}
	/* signer is borrowed from cms: take a reference. */
	if (X509_up_ref(signer) <= 0) {
		rc = 500;
		*reason = "out of memory";
		goto out;
	}
	*leaf = signer;
	*cmsp = cms;
	cms = NULL;
	rc = 0;
out:
	BIO_free_all(dcont);
	CMS_ContentInfo_free(cms);
	return rc;
}

/*
 * "certificate issued by CN=..., which is not in --device-ca": the issuer
 * of the certificate the chain stopped at, in a buffer of the calling
 * thread (valid until its next identity_verify; response_set copies it).
 */
static const char *
identity_missing_issuer(X509_STORE_CTX *ctx)
{
	static __thread char buf[200];
	X509		    *x = X509_STORE_CTX_get_current_cert(ctx);
	BIO		    *b;
	char		     name[120];
	int		     n;

	if (x == NULL || (b = BIO_new(BIO_s_mem())) == NULL)
		return "certificate not issued by the device CA";
	n = X509_NAME_print_ex(b, X509_get_issuer_name(x), 0,
	    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	if (n <= 0 || (n = BIO_read(b, name, sizeof(name) - 1)) <= 0) {
		BIO_free(b);
		return "certificate not issued by the device CA";
	}
	BIO_free(b);
	name[n] = '\0';
	snprintf(buf, sizeof(buf), "certificate issued by %s, which is not "
	    "in --device-ca", name);
	return buf;
}

/*
 * Verify leaf against the device CA at the current time (RFC 5280
 * section 6 as OpenSSL implements it), for client authentication: an
 * extendedKeyUsage without clientAuth is refused, a certificate without
 * extendedKeyUsage is accepted. Not X509_V_FLAG_X509_STRICT. A CA
 * certificate is never a device identity.
 *
 * The chain is built from the --device-ca bundle alone, on both identity
 * paths: certificates an Mdm-Signature carries are not used, because the
 * TLS path has none (nginx's $ssl_client_escaped_cert is the leaf only).
 * So one file behaves the same for both: it must hold the CA that issued
 * the device certificates (every certificate in it is an anchor), and, to
 * serve nginx's ssl_client_certificate too, the CAs above it.
 * Returns 0, 403 with *reason, or 500.
 */
static int
identity_chain_verify(const struct identity_ca *ca, X509 *leaf,
    const char **reason)
{
	X509_STORE_CTX *ctx = NULL;
	int		rc = 500, err;

	*reason = "certificate verification failed";
	if (X509_check_ca(leaf) != 0) {
		rc = 403;
		*reason = "certificate is a CA certificate";
		goto out;
	}
	if ((ctx = X509_STORE_CTX_new()) == NULL ||
	    X509_STORE_CTX_init(ctx, ca->store, leaf, NULL) <= 0 ||
	    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) <= 0) {
		log_error("cannot set up certificate verification");
		goto out;
	}
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_PARTIAL_CHAIN);
	if (X509_verify_cert(ctx) > 0) {
		rc = 0;
		*reason = NULL;
		goto out;
	}
	err = X509_STORE_CTX_get_error(ctx);
	log_debug(
	    "certificate verification: %s", X509_verify_cert_error_string(err));
	rc = 403;
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		*reason = "certificate expired";
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		*reason = "certificate not yet valid";
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		*reason = identity_missing_issuer(ctx);
		break;
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_REJECTED:
		*reason = "certificate not issued by the device CA";
		break;
	case X509_V_ERR_INVALID_PURPOSE:
		*reason = "certificate not valid for client authentication";
		break;
	case X509_V_ERR_OUT_OF_MEM:
		rc = 500;
		*reason = "out of memory";
		break;
	default:
		*reason = "certificate chain does not verify";
		break;
	}
out:
	X509_STORE_CTX_free(ctx);
	return rc;
}

/*
 * Establish and verify the caller's certificate (see identity.h): nginx's
 * verdict first, then the forwarded TLS certificate or else the
 * Mdm-Signature (RFC 5652 detached SignedData), then the chain against the
 * device CA. On success hash is the SHA-256 of the certificate's DER.
 * Returns 0, 400 or 403 with *reason (a static string, or the calling
 * thread's buffer until its next call), or 500 when out
 * of memory. The thread's OpenSSL error queue is empty on return.
 */
int
identity_verify(const struct identity_ca *ca, const char *escaped_cert,
    const char *verify, const char *mdm_signature, const void *body, size_t len,
    unsigned char hash[IDENTITY_HASH_LEN], const char **reason)
{
	X509		*leaf = NULL;
	CMS_ContentInfo *cms = NULL;
	unsigned char	*der = NULL, *sig = NULL;
	unsigned char	 key[32];
	size_t		 n, siglen = 0;
	int		 derlen, rc, cached = 0;

	*reason = NULL;
	memset(hash, 0, IDENTITY_HASH_LEN);
	if (ca == NULL) {
		rc = 500;
		*reason = "no device CA";
		goto out;
	}
	/* $ssl_client_verify: SUCCESS, FAILED:reason or NONE. */
	if (verify != NULL && verify[0] != '\0' &&
	    strcmp(verify, "NONE") != 0 && strcmp(verify, "SUCCESS") != 0) {
		rc = 403;
		*reason = "nginx client verification failed";
		goto out;
	}
	if (escaped_cert != NULL && escaped_cert[0] != '\0') {
		/* The same forwarded string verified before: done. */
		sha256(escaped_cert, strlen(escaped_cert), key);
		if (idcache_get(ca->cache, key, hash)) {
			rc = 0;
			goto out;
		}
		cached = 1;
		rc = identity_cert_parse(escaped_cert, &leaf, reason);
	} else if (mdm_signature != NULL && mdm_signature[0] != '\0') {
		n = strnlen(mdm_signature, IDENTITY_SIG_MAX + 1);
		if (n > IDENTITY_SIG_MAX) {
			rc = 400;
			*reason = "Mdm-Signature too large";
			goto out;
		}
		if ((sig = base64_decode(mdm_signature, n, &siglen)) == NULL ||
		    siglen == 0) {
			rc = 400;
			*reason = "Mdm-Signature is not base64";
			goto out;
		}
		/* A signer verified before: no certificate decoded again. */
		if (identity_sig_fast(ca->cache, sig, siglen, body, len,
		    hash) == 0) {
			__atomic_add_fetch(&ca->cache->sig_fast, 1,
			    __ATOMIC_RELAXED);
			rc = 0;
			goto out;
		}
		rc = identity_sig_verify(sig, siglen, body, len, &leaf, &cms,
		    reason);
	} else if (verify == NULL) {
		/* Not even NONE: the nginx site lacks the parameters. */
		rc = 400;
		*reason = "no client certificate, and nginx passes no "
		    "PICOMDM_CLIENT_VERIFY parameter (see nginx/README.md)";
	} else if (strcmp(verify, "SUCCESS") == 0) {
		rc = 400;
		*reason = "nginx verified a client certificate but passes no "
		    "PICOMDM_CLIENT_CERT parameter (see nginx/README.md)";
	} else {
		rc = 400;
		*reason = "no client certificate";
	}
	if (rc != 0)
		goto out;
	if ((derlen = i2d_X509(leaf, &der)) <= 0) {
		rc = 500;
		*reason = "out of memory";
		goto out;
	}
	sha256(der, (size_t)derlen, hash);
	/* A signature was verified above; its signer's chain may be known. */
	if (!cached) {
		memcpy(key, hash, sizeof(key));
		if (idcache_get(ca->cache, key, hash)) {
			rc = 0;
			goto out;
		}
	}
	if ((rc = identity_chain_verify(ca, leaf, reason)) != 0) {
		memset(hash, 0, IDENTITY_HASH_LEN);
		goto out;
	}
	idcache_put(ca->cache, key, hash, leaf, cms != NULL);
	rc = 0;
out:
	free(sig);
	OPENSSL_free(der);
	CMS_ContentInfo_free(cms);
	X509_free(leaf);
	identity_ssl_drain(rc == 0 ? NULL : "identity");
	return rc;
}

unsigned long
identity_sig_fast_count(const struct identity_ca *ca)
{
	return __atomic_load_n(&ca->cache->sig_fast, __ATOMIC_RELAXED);
}

/* Counted as the rest: the fallback is the rare path, so the common one
 * pays for no second counter. */
unsigned long
identity_cms_fast_count(const struct identity_ca *ca)
{
	return __atomic_load_n(&ca->cache->sig_fast, __ATOMIC_RELAXED) -
	    __atomic_load_n(&ca->cache->sig_fallback, __ATOMIC_RELAXED);
}

/* Map a store error to the status identity_authorize returns. */
static int
identity_store_status(int src, const char *what, const char **reason)
{
	log_error("%s: %s", what, store_strerror(src));
	if (store_err_unavailable(src)) {
		*reason = store_strerror(src);
		return 503;
	}
	*reason = "store error";
	return 500;
}

/*
 * Bind hash to device_id: the certificate index entry, and the device
 * record's current certificate. dev is the device record or NULL; a new
 * record gets only its ID, certificate and creation time, the check-in
 * handler fills the rest. Returns 0 or a store error.
 */
static int
identity_bind(struct store_txn *txn, const char *device_id,
    struct store_device *dev, const unsigned char hash[IDENTITY_HASH_LEN])
{
	struct store_device *nd = NULL;
	int		     src;

	if ((src = store_cert_put(txn, hash, device_id)) != 0)
		goto out;
	if (dev == NULL) {
		if ((nd = calloc(1, sizeof(*nd))) == NULL ||
		    (nd->id = strdup(device_id)) == NULL) {
			src = STORE_ENOMEM;
			goto out;
		}
		nd->created_at = store_txn_now(txn);
		dev = nd;
	}
	memcpy(dev->cert_hash, hash, IDENTITY_HASH_LEN);
	dev->has_cert = 1;
	src = store_device_put(txn, dev);
out:
	store_device_free(nd);
	return src;
}

/*
 * The certauth rules (ARCHITECTURE.md section 4; NanoMDM certauth with its KV
 * semantics, where only a device's latest certificate is valid), inside
 * the caller's write transaction:
 *
 *  - the device's current certificate is always accepted;
 *  - a certificate ever bound to another device is refused;
 *  - Authenticate binds a never-seen certificate (enrollment, renewal),
 *    and rebinds one bound to this device when the device has no current
 *    certificate; an older certificate of a renewed device is refused;
 *  - other messages with allow_retro bind a never-seen certificate to an
 *    existing device that has no binding yet; anything else is refused.
 *
 * Returns 0, 403 with *reason, or 500/503 on store errors.
 */
int
identity_authorize(struct store_txn *txn, const char *device_id,
    const unsigned char hash[IDENTITY_HASH_LEN], int authenticate,
    int allow_retro, const char **reason)
{
	struct store_device *dev = NULL;
	char		    *bound = NULL;
	int		     rc, src, mine;

	*reason = NULL;
	if (device_id == NULL || device_id[0] == '\0') {
		rc = 500;
		*reason = "no device ID";
		goto out;
	}
	/* The common case, the bound certificate, without a decode. */
	if ((src = store_device_cert_is(txn, device_id, hash, &mine)) == 0 &&
	    mine) {
		rc = 0;
		goto out;
	}
	src = store_device_get(txn, device_id, &dev);
	if (src == STORE_ENOTFOUND)
		dev = NULL;
	else if (src != 0) {
		rc = identity_store_status(src, "store_device_get", reason);
		goto out;
	}
	if (dev != NULL && dev->has_cert &&
	    CRYPTO_memcmp(dev->cert_hash, hash, IDENTITY_HASH_LEN) == 0) {
		rc = 0;
		goto out;
	}
	src = store_cert_get(txn, hash, &bound);
	if (src == STORE_ENOTFOUND)
		bound = NULL;
	else if (src != 0) {
		rc = identity_store_status(src, "store_cert_get", reason);
		goto out;
	}
	if (bound != NULL && strcmp(bound, device_id) != 0) {
		rc = 403;
		*reason = "certificate bound to another enrollment";
		goto out;
	}
	mine = bound != NULL; /* bound to this device, but not current */
	rc = 403;
	if (mine && dev != NULL && dev->has_cert)
		*reason = "certificate superseded by a renewal";
	else if (authenticate ||
	    (allow_retro && !mine && dev != NULL && !dev->has_cert)) {
		if ((src = identity_bind(txn, device_id, dev, hash)) != 0)
			rc = identity_store_status(
			    src, "certificate binding", reason);
		else
			rc = 0;
	} else
		*reason = "certificate not bound to this enrollment";
out:
	free(bound);
	store_device_free(dev);
	return rc;
}
