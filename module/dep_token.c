/*
 * dep_token.c - the ADE server token: the key pair and certificate an
 * administrator uploads to Apple Business/School Manager, and the
 * decryption of the S/MIME server token Apple gives back (include
 * picomdm/dep.h, picomdm-dep(8)). Pure functions: no files, no store.
 */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "picomdm/dep.h"
#include "picomdm/util.h"

/* A server token is a few kilobytes; refuse anything absurd. */
#define TOKEN_MAX_BYTES (256 * 1024)

static void
str_wipe(char **p)
{
	if (*p != NULL)
		freezero(*p, strlen(*p));
	*p = NULL;
}

void
dep_oauth_clear(struct dep_oauth *o)
{
	if (o == NULL)
		return;
	str_wipe(&o->consumer_key);
	str_wipe(&o->consumer_secret);
	str_wipe(&o->access_token);
	str_wipe(&o->access_secret);
	o->expiry_us = 0;
}

/* The contents of a memory BIO as a NUL-terminated string; NULL on error. */
static char *
bio_string(BIO *b)
{
	char *data, *s;
	long  n;

	n = BIO_get_mem_data(b, &data);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

static int
cn_ok(const char *cn)
{
	size_t i, n = strlen(cn);

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!isprint((unsigned char)cn[i]))
			return 0;
	return 1;
}

enum dep_status
dep_token_new(const char *cn, int days, char **cert_pem, char **key_pem)
{
	enum dep_status		 rc = DEP_ERR_SYSTEM;
	EVP_PKEY		*pkey = NULL;
	X509			*x = NULL;
	X509_NAME		*name;
	X509V3_CTX		 ctx;
	X509_EXTENSION		*ext;
	BIGNUM			*bn = NULL;
	BIO			*cb = NULL, *kb = NULL;
	static const char *const exts[][2] = {
	    {"basicConstraints", "critical,CA:FALSE"},
	    {"keyUsage", "critical,keyEncipherment,digitalSignature"},
	    {"subjectKeyIdentifier", "hash"},
	};
	size_t i;

	*cert_pem = *key_pem = NULL;
	if (cn == NULL || !cn_ok(cn) || days < 1 || days > 3650)
		return DEP_ERR_KEY;
	if ((pkey = EVP_RSA_gen(2048)) == NULL || (x = X509_new()) == NULL)
		goto out;
	if (X509_set_version(x, 2) <= 0 || (bn = BN_new()) == NULL ||
	    BN_rand(bn, 64, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) <= 0 ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto out;
	if (X509_gmtime_adj(X509_getm_notBefore(x), 0) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), days, 0, NULL) == NULL)
		goto out;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
		(const unsigned char *)cn, -1, -1, 0) <= 0 ||
	    X509_set_issuer_name(x, name) <= 0 || X509_set_pubkey(x, pkey) <= 0)
		goto out;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
		ext = X509V3_EXT_conf(NULL, &ctx, exts[i][0], exts[i][1]);
		if (ext == NULL)
			goto out;
		if (X509_add_ext(x, ext, -1) <= 0) {
			X509_EXTENSION_free(ext);
			goto out;
		}
		X509_EXTENSION_free(ext);
	}
	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		goto out;
	if ((cb = BIO_new(BIO_s_mem())) == NULL ||
	    (kb = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509(cb, x) <= 0 ||
	    PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) <= 0)
		goto out;
	if ((*cert_pem = bio_string(cb)) == NULL ||
	    (*key_pem = bio_string(kb)) == NULL) {
		free(*cert_pem);
		*cert_pem = NULL;
		goto out;
	}
	rc = DEP_OK;
out:
	if (kb != NULL) {
		/* The key's PEM passed through this buffer. */
		char *d;
		long  n = BIO_get_mem_data(kb, &d);

		if (n > 0)
			OPENSSL_cleanse(d, (size_t)n);
	}
	BIO_free(cb);
	BIO_free(kb);
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return rc;
}

static char *
json_str_dup(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > 4096 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return strdup(json_string_value(v));
}

enum dep_status
dep_token_parse_json(const char *s, size_t len, struct dep_oauth *out)
{
	json_t	    *j;
	json_t	    *exp;
	json_error_t e;

	memset(out, 0, sizeof(*out));
	if (len > TOKEN_MAX_BYTES)
		return DEP_ERR_TOKEN_FORMAT;
	j = json_loadb(s, len, JSON_REJECT_DUPLICATES, &e);
	if (!json_is_object(j)) {
		json_decref(j);
		return DEP_ERR_TOKEN_FORMAT;
	}
	out->consumer_key = json_str_dup(j, "consumer_key");
	out->consumer_secret = json_str_dup(j, "consumer_secret");
	out->access_token = json_str_dup(j, "access_token");
	out->access_secret = json_str_dup(j, "access_secret");
	exp = json_object_get(j, "access_token_expiry");
	if (out->consumer_key == NULL || out->consumer_secret == NULL ||
	    out->access_token == NULL || out->access_secret == NULL ||
	    !json_is_string(exp) ||
	    time_parse_rfc3339(json_string_value(exp), &out->expiry_us) != 0) {
		/* jansson keeps its own copies; wipe what we can reach. */
		json_decref(j);
		dep_oauth_clear(out);
		return DEP_ERR_TOKEN_FORMAT;
	}
	json_decref(j);
	return DEP_OK;
}

char *
dep_token_to_json(const struct dep_oauth *o)
{
	char	when[32];
	json_t *j;
	char   *s;

	time_format(o->expiry_us, when, sizeof(when));
	j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "consumer_key",
	    o->consumer_key, "consumer_secret", o->consumer_secret,
	    "access_token", o->access_token, "access_secret", o->access_secret,
	    "access_token_expiry", when);
	if (j == NULL)
		return NULL;
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

/*
 * The JSON of the decrypted content: skip the MIME header block (up to
 * the first empty line) when there is one, drop the BEGIN/END MESSAGE
 * lines, and join the remaining lines (Apple may wrap the JSON). Returns
 * a new string (caller frees with freezero) or NULL.
 */
static char *
token_unwrap(const char *p, size_t n)
{
	const char *body = p, *end = p + n, *line, *eol;
	char	   *s;
	size_t	    k = 0, ll;
	int	    headers = 0;

	/* A header block starts with "Name:" on its first line. */
	for (line = p; line < end && *line != '\n' && *line != '{'; line++)
		if (*line == ':') {
			headers = 1;
			break;
		}
	if (headers) {
		for (line = p; line < end; line = eol + 1) {
			eol = memchr(line, '\n', (size_t)(end - line));
			if (eol == NULL)
				return NULL;
			ll = (size_t)(eol - line);
			if (ll == 0 || (ll == 1 && line[0] == '\r')) {
				body = eol + 1;
				break;
			}
		}
		if (line >= end)
			return NULL;
	}
	if ((s = malloc((size_t)(end - body) + 1)) == NULL)
		return NULL;
	for (line = body; line < end; line = eol + 1) {
		eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			eol = end;
		ll = (size_t)(eol - line);
		while (ll > 0 &&
		    (line[ll - 1] == '\r' || line[ll - 1] == ' ' ||
			line[ll - 1] == '\t'))
			ll--;
		if (ll >= 15 && strncmp(line, "-----BEGIN ", 11) == 0)
			continue;
		if (ll >= 13 && strncmp(line, "-----END ", 9) == 0)
			continue;
		memcpy(s + k, line, ll);
		k += ll;
		if (eol == end)
			break;
	}
	s[k] = '\0';
	return s;
}

/* Whether one key-transport recipient of cms is cert (issuer+serial or
 * subject key identifier). */
static int
has_recipient(CMS_ContentInfo *cms, X509 *cert)
{
	STACK_OF(CMS_RecipientInfo) *ris = CMS_get0_RecipientInfos(cms);
	CMS_RecipientInfo *ri;
	int		   i;

	for (i = 0; i < sk_CMS_RecipientInfo_num(ris); i++) {
		ri = sk_CMS_RecipientInfo_value(ris, i);
		if (CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS &&
		    CMS_RecipientInfo_ktri_cert_cmp(ri, cert) == 0)
			return 1;
	}
	return 0;
}

enum dep_status
dep_token_content_parse(const char *p, size_t n, struct dep_oauth *out)
{
	enum dep_status rc;
	char	       *json;

	memset(out, 0, sizeof(*out));
	if (n > TOKEN_MAX_BYTES)
		return DEP_ERR_TOKEN_FORMAT;
	if ((json = token_unwrap(p, n)) == NULL)
		return DEP_ERR_TOKEN_FORMAT;
	rc = dep_token_parse_json(json, strlen(json), out);
	freezero(json, strlen(json) + 1);
	return rc;
}

enum dep_status
dep_token_decrypt(const void *p7m, size_t len, const char *key_pem,
    const char *cert_pem, uint64_t now_us, struct dep_oauth *out)
{
	enum dep_status	 rc = DEP_ERR_SYSTEM;
	BIO		*in = NULL, *kb = NULL, *cb = NULL, *plain = NULL;
	CMS_ContentInfo *cms = NULL;
	EVP_PKEY	*pkey = NULL;
	X509		*cert = NULL;
	char		*data;
	long		 n;

	memset(out, 0, sizeof(*out));
	if (len == 0 || len > TOKEN_MAX_BYTES || len > INT32_MAX)
		return DEP_ERR_TOKEN_FORMAT;
	if ((kb = BIO_new_mem_buf(key_pem, -1)) == NULL ||
	    (cb = BIO_new_mem_buf(cert_pem, -1)) == NULL)
		goto out;
	pkey = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
	cert = PEM_read_bio_X509(cb, NULL, NULL, NULL);
	if (pkey == NULL || cert == NULL ||
	    X509_check_private_key(cert, pkey) != 1) {
		rc = DEP_ERR_KEY;
		goto out;
	}
	if ((in = BIO_new_mem_buf(p7m, (int)len)) == NULL)
		goto out;
	cms = SMIME_read_CMS(in, NULL);
	if (cms == NULL) {
		/* Also accept the bare DER or PEM form of the envelope. */
		BIO_free(in);
		if ((in = BIO_new_mem_buf(p7m, (int)len)) == NULL)
			goto out;
		cms = d2i_CMS_bio(in, NULL);
	}
	if (cms == NULL ||
	    OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_enveloped) {
		rc = DEP_ERR_TOKEN_FORMAT;
		goto out;
	}
	if (!has_recipient(cms, cert)) {
		rc = DEP_ERR_TOKEN_WRONG_KEY;
		goto out;
	}
	if ((plain = BIO_new(BIO_s_mem())) == NULL)
		goto out;
	if (CMS_decrypt(cms, pkey, cert, NULL, plain, 0) != 1) {
		rc = DEP_ERR_TOKEN_FORMAT;
		goto out;
	}
	n = BIO_get_mem_data(plain, &data);
	if (n <= 0) {
		rc = DEP_ERR_TOKEN_FORMAT;
		goto out;
	}
	if ((rc = dep_token_content_parse(data, (size_t)n, out)) != DEP_OK)
		goto out;
	if (out->expiry_us <= now_us)
		rc = DEP_ERR_TOKEN_EXPIRED;
out:
	if (plain != NULL && (n = BIO_get_mem_data(plain, &data)) > 0)
		OPENSSL_cleanse(data, (size_t)n);
	BIO_free(plain);
	BIO_free(in);
	BIO_free(kb);
	BIO_free(cb);
	CMS_ContentInfo_free(cms);
	EVP_PKEY_free(pkey);
	X509_free(cert);
	ERR_clear_error();
	return rc;
}
