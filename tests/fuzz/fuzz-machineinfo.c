/*
 * fuzz-machineinfo.c - fuzz enroll_machineinfo_verify: the body Setup
 * Assistant POSTs to /mdm/enroll, a DER CMS SignedData (RFC 5652) whose
 * content is the MachineInfo plist. The input is the body.
 *
 * Built with -DPICOMDM_LIBFUZZER (clang -fsanitize=fuzzer,...) this is a
 * libFuzzer target. Otherwise main() replays the files and directories
 * given as arguments, or tests/fuzz/corpus/machineinfo (found through
 * PICOMDM_TEST_DATA) when there are none, which is how make check runs it.
 * A corpus file named "expect-NNN-..." must also give status NNN (0 for
 * success); other files only must not crash.
 *
 * The MachineInfo CA below is the fuzz CA, valid until 2126; the seeds were
 * signed by a certificate of it, or of an unrelated CA (keys discarded),
 * with `openssl cms -sign -nodetach -binary -outform DER`. The profile
 * signer enroll_load needs is made here at start, with a fresh key.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "picomdm/enroll.h"
#include "picomdm/log.h"

#define FUZZ_INPUT_MAX (ENROLL_MACHINEINFO_MAX + 1024)

static const char fuzz_ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIB5zCCAY2gAwIBAgIUBkummyAcPUWhCQMi23+SMN/IEtUwCgYIKoZIzj0EAwIw\n"
    "QDEVMBMGA1UECgwMcGljb21kbSBmdXp6MScwJQYDVQQDDB5waWNvbWRtIGZ1enog\n"
    "Y2EgTWFjaGluZUluZm8gQ0EwIBcNMjYxMjA0MTU1ODM5WhgPMjEyNjExMTAxNTU4\n"
    "MzlaMEAxFTATBgNVBAoMDHBpY29tZG0gZnV6ejEnMCUGA1UEAwwecGljb21kbSBm\n"
    "dXp6IGNhIE1hY2hpbmVJbmZvIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
    "9OTMJe7UHWkyO1CqZ5cj4dSe77odg9NC3CHCEEp61ITVpyjBb9EUUs0k6XbrITYx\n"
    "gEMGjr+p602fjLiB8HUbcaNjMGEwHwYDVR0jBBgwFoAUjEsvyq1b8sQU1/OYyl7Y\n"
    "6WuxySMwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYE\n"
    "FIxLL8qtW/LEFNfzmMpe2OlrsckjMAoGCCqGSM49BAMCA0gAMEUCIQC00j22oUNJ\n"
    "2CtH8xqtbFA0DuPYMDAW8IbzVsymy2GfFAIgCC55OUZB2lnjGSPAOiH0wmyo1JEF\n"
    "mNDpEfhTixSAw80=\n"
    "-----END CERTIFICATE-----\n";

static struct enroll_conf fuzz_conf;
static struct enroll	 *fuzz_enroll;

/* Write len bytes to a new temporary file; its path into path. */
static void
tmp_write(char *path, size_t sz, const char *what, const void *p, size_t len)
{
	const char *tmp;
	FILE	   *f;
	int	    fd;

	if ((tmp = getenv("TMPDIR")) == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(path, sz, "%s/fuzz-mi-%s.XXXXXX", tmp, what) >= sz)
		abort();
	if ((fd = mkstemp(path)) == -1 || (f = fdopen(fd, "w")) == NULL)
		abort();
	if (fwrite(p, 1, len, f) != len || fclose(f) != 0)
		abort();
}

/* A self-signed profile signer with a fresh P-256 key, as PEM files. */
static void
make_signer(char *cert, char *key, size_t sz)
{
	EVP_PKEY *k;
	X509	 *x;
	BIO	 *b;
	BUF_MEM	 *m;

	if ((k = EVP_EC_gen("P-256")) == NULL || (x = X509_new()) == NULL)
		abort();
	if (X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 3600) == NULL ||
	    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
		MBSTRING_ASC, (const unsigned char *)"fuzz profile signer", -1,
		-1, 0) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(x)) != 1 ||
	    X509_set_pubkey(x, k) != 1 || X509_sign(x, k, EVP_sha256()) <= 0)
		abort();
	if ((b = BIO_new(BIO_s_mem())) == NULL || PEM_write_bio_X509(b, x) != 1)
		abort();
	BIO_get_mem_ptr(b, &m);
	tmp_write(cert, sz, "cert", m->data, m->length);
	BIO_free(b);
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1)
		abort();
	BIO_get_mem_ptr(b, &m);
	tmp_write(key, sz, "key", m->data, m->length);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
fuzz_init(void)
{
	char cert[4096], key[4096], ca[4096], err[256];

	if (fuzz_enroll != NULL)
		return;
	log_set_level(LOG_ERROR);
	make_signer(cert, key, sizeof(cert));
	tmp_write(ca, sizeof(ca), "ca", fuzz_ca_pem, sizeof(fuzz_ca_pem) - 1);
	enroll_conf_defaults(&fuzz_conf);
	if (enroll_conf_set(&fuzz_conf, "enroll_access", "open") != 0 ||
	    enroll_conf_set(
		&fuzz_conf, "server_url", "https://mdm.example.com/mdm") != 0 ||
	    enroll_conf_set(&fuzz_conf, "push_topic",
		"com.apple.mgmt.External.fuzz") != 0 ||
	    enroll_conf_set(
		&fuzz_conf, "scep_url", "https://mdm.example.com/scep") != 0 ||
	    enroll_conf_set(&fuzz_conf, "profile_identifier", "fuzz") != 0 ||
	    enroll_conf_set(&fuzz_conf, "profile_sign_cert", cert) != 0 ||
	    enroll_conf_set(&fuzz_conf, "profile_sign_key", key) != 0 ||
	    enroll_conf_set(&fuzz_conf, "machineinfo_ca", ca) != 0)
		abort();
	if (enroll_load(&fuzz_conf, &fuzz_enroll, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz-machineinfo: %s\n", err);
		abort();
	}
	unlink(cert);
	unlink(key);
	unlink(ca);
}

/* Run one input; returns enroll_machineinfo_verify's status. */
static int
fuzz_one(const uint8_t *data, size_t size)
{
	struct enroll_machineinfo mi;
	const char		 *reason = NULL;
	unsigned char		 *body;
	int			  rc;

	/* An exact-size copy, so that an over-read is caught. */
	if ((body = malloc(size > 0 ? size : 1)) == NULL)
		abort();
	memcpy(body, data, size);
	rc = enroll_machineinfo_verify(fuzz_enroll, body, size, &mi, &reason);
	/* Anything but these (500 is out of memory) is a finding. */
	if (rc != 0 && rc != 400 && rc != 403)
		abort();
	if (rc == 0) {
		if (mi.udid == NULL || mi.udid[0] == '\0' || mi.root == NULL)
			abort();
		enroll_machineinfo_free(&mi);
	} else if (reason == NULL || mi.root != NULL)
		abort();
	if (ERR_peek_error() != 0)
		abort();
	free(body);
	return rc;
}

/* Free what fuzz_init() made, after the replay. */
static void
fuzz_fini(void)
{
	enroll_free(fuzz_enroll);
	enroll_conf_free(&fuzz_conf);
}

#include "replay.h"

REPLAY_TARGET("machineinfo", .max = FUZZ_INPUT_MAX, .statuses = 1,
    .init = fuzz_init, .fini = fuzz_fini);
