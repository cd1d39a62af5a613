/*
 * fuzz-cms.c - fuzz identity_verify: the Mdm-Signature header (base64 of a
 * detached CMS SignedData, RFC 5652) over a request body, and the
 * certificate nginx forwards (URL-escaped PEM, RFC 9440 ":base64(DER):").
 *
 * An input is: one mode byte, a 16-bit big-endian header length, the
 * header, then the body (the rest). Mode (low two bits):
 *   0  the header is the Mdm-Signature text as sent
 *   1  the header is DER; it is base64-encoded into the Mdm-Signature, so
 *      that mutations reach the CMS parser
 *   2  the header is the forwarded certificate text (escaped PEM)
 *   3  the header is a DER certificate, sent in the RFC 9440 form
 * A header length beyond the input is clipped.
 *
 * Built with -DPICOMDM_LIBFUZZER (clang -fsanitize=fuzzer,...) this is a
 * libFuzzer target. Otherwise main() replays the files and directories
 * given as arguments, or tests/fuzz/corpus/cms (found through
 * PICOMDM_TEST_DATA) when there are none, which is how make check runs it.
 * A corpus file named "expect-NNN-..." must also give status NNN (0 for
 * success); other files (crashes kept as regressions) only must not crash.
 *
 * The device CA below is the fuzz CA, valid until 2126; the corpus seeds
 * were signed by a device certificate of it (keys discarded) with
 * `openssl cms -sign -binary -outform DER` and its -noattr, -nocerts,
 * -nodetach and two -signer variants, plus one from an unrelated CA.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include "picomdm/identity.h"
#include "picomdm/log.h"
#include "picomdm/util.h"

#define FUZZ_INPUT_MAX (256 * 1024)

static const char fuzz_ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBxDCCAWqgAwIBAgIBATAKBggqhkjOPQQDAjA4MRUwEwYDVQQKDAxwaWNvbWRt\n"
    "IGZ1enoxHzAdBgNVBAMMFnBpY29tZG0gZnV6eiBkZXZpY2UgQ0EwIBcNMjYxMTI3\n"
    "MTEwNDM5WhgPMjEyNjExMDMxMTA0MzlaMDgxFTATBgNVBAoMDHBpY29tZG0gZnV6\n"
    "ejEfMB0GA1UEAwwWcGljb21kbSBmdXp6IGRldmljZSBDQTBZMBMGByqGSM49AgEG\n"
    "CCqGSM49AwEHA0IABIqkmNYOQNS8zsEL/44t7RVmUfpu+E2TUJmlwoXKl4Z0RtAr\n"
    "2N9Z9iql2S5YD4xL5Rn62R+2rAUjygvz06oC4bCjYzBhMB0GA1UdDgQWBBRuIujU\n"
    "YRBUw670vYYRGQZkHHAHxDAfBgNVHSMEGDAWgBRuIujUYRBUw670vYYRGQZkHHAH\n"
    "xDAPBgNVHRMBAf8EBTADAQH/MA4GA1UdDwEB/wQEAwIBBjAKBggqhkjOPQQDAgNI\n"
    "ADBFAiBmnnswJoINk2fYTxhe84VVaF6VF4To4n8sliOK2r+GOgIhAKEwN6wDVWXX\n"
    "US/g31FOXVr+Rde80527lsRl6Z2i0DqR\n"
    "-----END CERTIFICATE-----\n";

static struct identity_ca *fuzz_ca;

/* identity_ca_load reads a file: write the CA to a temporary one. */
static void
fuzz_init(void)
{
	char	    path[4096];
	const char *tmp;
	FILE	   *f;
	int	    fd;

	if (fuzz_ca != NULL)
		return;
	log_set_level(LOG_ERROR);
	if ((tmp = getenv("TMPDIR")) == NULL || tmp[0] == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(path, sizeof(path), "%s/fuzz-cms.XXXXXX", tmp) >=
	    sizeof(path))
		abort();
	if ((fd = mkstemp(path)) == -1 || (f = fdopen(fd, "w")) == NULL)
		abort();
	if (fputs(fuzz_ca_pem, f) == EOF || fclose(f) != 0)
		abort();
	if (identity_ca_load(path, &fuzz_ca) != 0)
		abort();
	unlink(path);
}

/* A NUL-terminated copy of p[0..n). */
static char *
fuzz_str(const uint8_t *p, size_t n)
{
	char *s;

	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* Run one input; returns identity_verify's status. */
static int
fuzz_one(const uint8_t *data, size_t size)
{
	unsigned char  hash[IDENTITY_HASH_LEN];
	const uint8_t *hdr;
	const char    *reason = NULL;
	char	      *cert = NULL, *sig = NULL, *b64 = NULL;
	unsigned char *body;
	size_t	       hl, blen, n;
	int	       mode, rc;

	if (size < 3)
		return -1;
	mode = data[0] & 3;
	hl = (size_t)data[1] << 8 | data[2];
	if (hl > size - 3)
		hl = size - 3;
	hdr = data + 3;
	blen = size - 3 - hl;
	/* An exact-size copy, so that an over-read is caught. */
	if ((body = malloc(blen > 0 ? blen : 1)) == NULL)
		abort();
	memcpy(body, hdr + hl, blen);

	switch (mode) {
	case 0:
		sig = fuzz_str(hdr, hl);
		break;
	case 1:
		if ((sig = base64_encode(hdr, hl)) == NULL)
			abort();
		break;
	case 2:
		cert = fuzz_str(hdr, hl);
		break;
	default:
		if ((b64 = base64_encode(hdr, hl)) == NULL)
			abort();
		n = strlen(b64) + 3;
		if ((cert = malloc(n)) == NULL)
			abort();
		if ((size_t)snprintf(cert, n, ":%s:", b64) >= n)
			abort();
		break;
	}
	rc = identity_verify(fuzz_ca, cert, NULL, sig, blen > 0 ? body : NULL,
	    blen, hash, &reason);
	/* Anything but these (500 is out of memory) is a finding. */
	if (rc != 0 && rc != 400 && rc != 403)
		abort();
	if ((rc == 0) != (reason == NULL))
		abort();
	if (ERR_peek_error() != 0)
		abort();
	free(b64);
	free(cert);
	free(sig);
	free(body);
	return rc;
}

/* Free what fuzz_init() made, after the replay. */
static void
fuzz_fini(void)
{
	identity_ca_free(fuzz_ca);
}

#include "replay.h"

REPLAY_TARGET("cms", .max = FUZZ_INPUT_MAX, .statuses = 1, .init = fuzz_init,
    .fini = fuzz_fini);
