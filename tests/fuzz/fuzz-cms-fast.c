/*
 * fuzz-cms-fast.c - fuzz module/cms_fast.c differentially: whenever the
 * hand-written check says a message is verified, OpenSSL's CMS_verify
 * (as identity.c asks it; tests/fuzz/cms-oracle.h) must verify it too,
 * with the same signer; otherwise the target aborts.
 *
 * An input is a 16-bit big-endian length, that many bytes of DER (the
 * decoded Mdm-Signature), then the body (the rest). A length beyond the
 * input is clipped. The candidates are the two certificates below, an
 * RSA-2048 and a P-256 device certificate (self-signed, valid until
 * 2126, keys discarded), as the verified-certificate cache would hold
 * them. The seeds were signed by them with `openssl cms -sign -binary
 * -outform DER` (what tests/loadgen.c --sign makes) and its -noattr,
 * -keyid and -md sha384 variants, over a TokenUpdate body.
 *
 * Built with -DPICOMDM_LIBFUZZER (clang -fsanitize=fuzzer,...) this is a
 * libFuzzer target. Otherwise main() replays the files and directories
 * given as arguments, or tests/fuzz/corpus/cms-fast (found through
 * PICOMDM_TEST_DATA) when there are none, which is how make check runs it.
 * A corpus file named "expect-001-..." must be verified by the fast check
 * (status 1; 0 when it declines), so the seeds prove it handles them.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cms_fast.h"

#include "cms-oracle.h"

#define FUZZ_INPUT_MAX (64 * 1024)
#define FUZZ_NCAND     2

static const char fuzz_certs_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDTTCCAjWgAwIBAgIUDU8C13VLJE/fZOPFti7yFIt55tkwDQYJKoZIhvcNAQEL\n"
    "BQAwNTEVMBMGA1UECgwMcGljb21kbSBmdXp6MRwwGgYDVQQDDBNjbXMtZmFzdCBy\n"
    "c2EgZGV2aWNlMCAXDTI2MTIwNTAyMjc1MFoYDzIxMjYxMTExMDIyNzUwWjA1MRUw\n"
    "EwYDVQQKDAxwaWNvbWRtIGZ1enoxHDAaBgNVBAMME2Ntcy1mYXN0IHJzYSBkZXZp\n"
    "Y2UwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQCerww2UIozbEoAyNbp\n"
    "j7rCUyEeHbyqWfdq34ZJlGVG4d20nCEJsOKhgvHyxJoBsOiXHIr4mCdcxQqJphK7\n"
    "/uRfZjpgWP3X/4LsOLud6TEqOjWivTbrLChnrEaoUzPqIoi8t596So4q4ruVVDy6\n"
    "kptlY8fBEPG0F/iAps1QZIaAXu1c5UieSw/EkuXHwls+L4aY6fzun8XaY//rN+BR\n"
    "glC/2TPIgcz5rKJmD4ekjzqlJAVp8AHvu6vyGs7pM1khskF1hdXy3QrtJPHngVWr\n"
    "Dsb3fKoEEAfez/i33rD+Ly92AOb//jki/f4ssb29wMZ/82b/71YK6wLFWybLCUXL\n"
    "Mh7lAgMBAAGjUzBRMB0GA1UdDgQWBBQ+ugrXCwzGCSxd0sdOO4t38eNOMzAfBgNV\n"
    "HSMEGDAWgBQ+ugrXCwzGCSxd0sdOO4t38eNOMzAPBgNVHRMBAf8EBTADAQH/MA0G\n"
    "CSqGSIb3DQEBCwUAA4IBAQBqnlL/NYTUuRCR66LUB7z0uUH2LeaWKze3rpW2OX8s\n"
    "glO7Hd7gtI5Ix04MXuxno9VcIUc+TofIjU4GJ8ZmfXjEgzi9+BpCyQHmOf4DdI/p\n"
    "Q9Ya16jb9VGapJfzRifmyR79QyMEKStlZsebwg7TB5ft75oFf8hhaaXwXywi3Cz0\n"
    "XTcGeQZ0HFfL2RhC4vP0WBIiVZuOZaSQKVNP5VUoG4PaImIpaBIb68RHZqGOfmhR\n"
    "XAiOya0pflISEkKMkMeAxOYetUUe9Jj8Im5jMwCOq1FffsMmucihfXMZRvpqBA6N\n"
    "yhyMB7JJTckIhnyjucwtIo7OLBHBXEWZ/yV2oSzz7WEj\n"
    "-----END CERTIFICATE-----\n"
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBvzCCAWWgAwIBAgIUU9s5B+HybcrD7x02LkaS1ZKDK3swCgYIKoZIzj0EAwIw\n"
    "NDEVMBMGA1UECgwMcGljb21kbSBmdXp6MRswGQYDVQQDDBJjbXMtZmFzdCBlYyBk\n"
    "ZXZpY2UwIBcNMjYxMjA1MDIyNzUwWhgPMjEyNjExMTEwMjI3NTBaMDQxFTATBgNV\n"
    "BAoMDHBpY29tZG0gZnV6ejEbMBkGA1UEAwwSY21zLWZhc3QgZWMgZGV2aWNlMFkw\n"
    "EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEb17MIO+ZvvM3huYHGek1/+pY6GXKQBQW\n"
    "Lk7G15ApS/jy3cyqENzB43585P4Uu8puGVuDxaA9RTglz6HWN0YtKaNTMFEwHQYD\n"
    "VR0OBBYEFLsL7L5Ewxx+1yddGq8tDhouhjD7MB8GA1UdIwQYMBaAFLsL7L5Ewxx+\n"
    "1yddGq8tDhouhjD7MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIh\n"
    "APLerTdbsvg4fiUOWJGAA1Dhnnwje23S8VU3BQAqYZFpAiBd6pmfN6gnjDglXf/K\n"
    "ND1zO1aMigNu03fNF9vOyzZMIA==\n"
    "-----END CERTIFICATE-----\n";

static X509          *cand[FUZZ_NCAND];
static X509          *prep[FUZZ_NCAND]; /* the same, keys prepared */
static unsigned char *cand_der[FUZZ_NCAND];
static size_t         cand_len[FUZZ_NCAND];

/* Load the candidates once. */
static void
fuzz_init(void)
{
	BIO *b;
	int  i, l;

	if (cand[0] != NULL)
		return;
	if ((b = BIO_new_mem_buf(fuzz_certs_pem, -1)) == NULL)
		abort();
	for (i = 0; i < FUZZ_NCAND; i++) {
		if ((cand[i] = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL ||
		    (l = i2d_X509(cand[i], &cand_der[i])) <= 0 ||
		    (prep[i] = X509_dup(cand[i])) == NULL ||
		    cms_fast_prepare(prep[i]) != 0)
			abort();
		cand_len[i] = (size_t)l;
	}
	BIO_free(b);
}

/* 1 when the fast check verified the input (and OpenSSL agreed). */
static int
fuzz_one(const uint8_t *data, size_t size)
{
	size_t n;
	int    fs = -1, fp = -1, ss, fast, fastp;

	if (size > FUZZ_INPUT_MAX) /* from libFuzzer; the replay reads less */
		return 0;
	fuzz_init();
	if (size < 2)
		return 0;
	n = (size_t)data[0] << 8 | data[1];
	if (n > size - 2)
		n = size - 2;
	fast = cms_fast_verify(data + 2, n, data + 2 + n, size - 2 - n, cand,
	    (const unsigned char *const *)cand_der, cand_len, FUZZ_NCAND,
	    &fs) == 0;
	/* With the keys prepared (as the cache holds its signers): the
	 * same verdict, by the other way of checking. */
	fastp = cms_fast_verify(data + 2, n, data + 2 + n, size - 2 - n, prep,
	    (const unsigned char *const *)cand_der, cand_len, FUZZ_NCAND,
	    &fp) == 0;
	if (fastp != fast || (fast && fp != fs)) {
		fprintf(stderr, "fuzz-cms-fast: prepared keys gave another "
		    "verdict (%d, signer %d) than the general path (%d, %d)\n",
		    fastp, fp, fast, fs);
		abort();
	}
	ERR_clear_error();
	if (fast && (!cms_oracle(data + 2, n, data + 2 + n, size - 2 - n, cand,
	    FUZZ_NCAND, &ss) || ss != fs)) {
		fprintf(stderr, "fuzz-cms-fast: the fast check verified what "
		    "CMS_verify does not (or another signer)\n");
		abort();
	}
	ERR_clear_error();
	return fast;
}

#include "replay.h"

REPLAY_TARGET("cms-fast", .max = FUZZ_INPUT_MAX, .exact = 1, .statuses = 1);
