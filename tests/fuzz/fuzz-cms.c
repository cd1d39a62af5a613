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

#include <sys/stat.h>

#include <dirent.h>
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

#ifdef PICOMDM_LIBFUZZER

int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_init();
	fuzz_one(data, size);
	return 0;
}

#else

static int fuzz_files, fuzz_bad;

/* Replay one file; check the status its name promises. */
static void
replay_file(const char *path)
{
	const char *base;
	FILE	   *f;
	uint8_t	   *buf;
	size_t	    n;
	long long   want;
	char	    num[4];
	int	    rc;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "fuzz-cms: cannot open %s\n", path);
		fuzz_bad++;
		return;
	}
	if ((buf = malloc(FUZZ_INPUT_MAX)) == NULL)
		abort();
	n = fread(buf, 1, FUZZ_INPUT_MAX, f);
	fclose(f);
	rc = fuzz_one(buf, n);
	free(buf);
	fuzz_files++;

	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (strncmp(base, "expect-", 7) != 0)
		return;
	if (strlen(base) < 11 || base[10] != '-') {
		fprintf(stderr, "fuzz-cms: %s: bad expect- name\n", path);
		fuzz_bad++;
		return;
	}
	memcpy(num, base + 7, 3);
	num[3] = '\0';
	if (num_parse(num, 0, 999, &want) == -1 || want != rc) {
		fprintf(stderr, "fuzz-cms: %s: status %d, expected %s\n", path,
		    rc, num);
		fuzz_bad++;
	}
}

/* Replay a file, or every regular file of a directory. */
static void
replay_path(const char *path)
{
	struct stat    st;
	DIR	      *d;
	struct dirent *de;
	char	       sub[4096];

	if (stat(path, &st) == -1) {
		fprintf(stderr, "fuzz-cms: cannot stat %s\n", path);
		fuzz_bad++;
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		replay_file(path);
		return;
	}
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "fuzz-cms: cannot open %s\n", path);
		fuzz_bad++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(sub, sizeof(sub), "%s/%s", path,
			de->d_name) >= sizeof(sub))
			continue;
		if (stat(sub, &st) == 0 && S_ISREG(st.st_mode))
			replay_file(sub);
	}
	closedir(d);
}

int
main(int argc, char *argv[])
{
	const char *data;
	char	    dir[4096];
	int	    i;

	fuzz_init();
	if (argc > 1)
		for (i = 1; i < argc; i++)
			replay_path(argv[i]);
	else {
		if ((data = getenv("PICOMDM_TEST_DATA")) == NULL) {
			fprintf(stderr, "usage: fuzz-cms file|dir ...\n");
			return 2;
		}
		if ((size_t)snprintf(dir, sizeof(dir), "%s/../fuzz/corpus/cms",
			data) >= sizeof(dir))
			return 2;
		replay_path(dir);
	}
	identity_ca_free(fuzz_ca);
	printf(
	    "fuzz-cms: %d inputs replayed, %d failed\n", fuzz_files, fuzz_bad);
	return fuzz_bad == 0 && fuzz_files > 0 ? 0 : 1;
}

#endif
