/*
 * ctl_enroll.c - picomdmctl enrollment-profile: the signed enrollment
 * profile picomdm-fcgi serves at /mdm/enroll, built from the same
 * picomdm.conf (--config), for installing by hand or serving elsewhere;
 * and scep-verify, scepserver's -csrverifierexec: a CSR is accepted only
 * with a SCEP challenge picomdm issued (scep_challenge_issued).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ctl.h"
#include "picomdm/enroll.h"
#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "picomdm/util.h"

#define ENROLL_SYNOPSIS "[-o FILE]"

static const char enroll_help[] =
    "Write the signed enrollment profile (DER CMS SignedData holding the\n"
    "Configuration profile) that picomdm-fcgi serves at /mdm/enroll, built\n"
    "from the picomdm.conf given with --config. It holds the SCEP\n"
    "challenge: keep the file private.\n"
    "  -o, --output F   write to F (created mode 0600) instead of stdout\n";

/* Write all of buf to fd; 0 or -1. */
static int
write_all(int fd, const unsigned char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* enrollment-profile [-o FILE], with the global --config FILE. */
int
ctl_enroll_profile(struct ctl *c)
{
	static const struct option lo[] = {
	    {"output", required_argument, NULL, 'o'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct enroll *e = NULL;
	unsigned char *der = NULL;
	const char    *file = NULL;
	char	       err[256];
	size_t	       len = 0;
	int	       ch, fd = STDOUT_FILENO, rc = EXIT_USAGE;

	optind = 0;
	while ((ch = getopt_long(c->argc, c->argv, "o:", lo, NULL)) != -1) {
		switch (ch) {
		case 'o':
			file = optarg;
			break;
		default:
			return ctl_usage("enrollment-profile", ENROLL_SYNOPSIS,
			    enroll_help, ch == 'h');
		}
	}
	if (optind != c->argc)
		return ctl_usage(
		    "enrollment-profile", ENROLL_SYNOPSIS, NULL, 0);
	if (c->config == NULL) {
		fprintf(stderr,
		    "picomdmctl: enrollment-profile: --config "
		    "FILE is required\n");
		return EXIT_USAGE;
	}
	if ((e = enroll_load_file(c->config, err, sizeof(err))) == NULL) {
		fprintf(stderr, "picomdmctl: enrollment-profile: %s\n", err);
		return EXIT_USAGE;
	}
	if (enroll_profile_signed(e, NULL, &der, &len) == -1) {
		fprintf(stderr,
		    "picomdmctl: enrollment-profile: cannot make "
		    "the profile\n");
		goto out;
	}
	if (file != NULL &&
	    (fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1) {
		fprintf(stderr, "picomdmctl: enrollment-profile: %s: %s\n",
		    file, strerror(errno));
		goto out;
	}
	if (write_all(fd, der, len) == -1 ||
	    (file != NULL && close(fd) == -1)) {
		fprintf(stderr, "picomdmctl: enrollment-profile: %s: %s\n",
		    file != NULL ? file : "stdout", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(der);
	enroll_free(e);
	return rc;
}

/* ---- scep-verify ---- */

#define CSR_MAX (64 * 1024)

static const char scep_verify_help[] =
    "Read a certificate signing request (DER or PEM) on stdin, as\n"
    "scepserver -csrverifierexec hands it over, and accept it (exit 0)\n"
    "only when its challengePassword is one picomdm-fcgi issued in a\n"
    "served profile (scep_challenge_issued = yes), unused and unexpired;\n"
    "it is marked used in the same write. Otherwise exit 1, the reason\n"
    "on stderr. scepserver takes a program without arguments: run it\n"
    "through a script, e.g.\n"
    "  #!/bin/sh\n"
    "  exec picomdmctl --db /var/lib/picomdm scep-verify\n";

static int
chal_use_op(struct store_txn *t, void *arg)
{
	int rc = store_enroll_token_use(t, arg, STORE_TOKEN_SCEP);

	return rc == STORE_ENOTFOUND || rc == STORE_EINVAL ? 403 : rc;
}

/* The challengePassword of a CSR into out; 0, or -1 with *why set. */
static int
csr_challenge(const unsigned char *p, size_t n, char out[ENROLL_TOKEN_LEN + 1],
    const char **why)
{
	const unsigned char *q = p;
	X509_REQ	    *req;
	X509_ATTRIBUTE	    *a;
	ASN1_TYPE	    *v;
	EVP_PKEY	    *k;
	BIO		    *bio;
	int		     i, rc = -1;

	*why = "not a certificate signing request";
	if ((req = d2i_X509_REQ(NULL, &q, (long)n)) == NULL &&
	    (bio = BIO_new_mem_buf(p, (int)n)) != NULL) {
		req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	if (req == NULL)
		return -1;
	if ((k = X509_REQ_get0_pubkey(req)) == NULL ||
	    X509_REQ_verify(req, k) != 1) {
		*why = "the request's signature does not verify";
		goto out;
	}
	*why = "no challengePassword";
	if ((i = X509_REQ_get_attr_by_NID(
		 req, NID_pkcs9_challengePassword, -1)) < 0 ||
	    (a = X509_REQ_get_attr(req, i)) == NULL ||
	    (v = X509_ATTRIBUTE_get0_type(a, 0)) == NULL)
		goto out;
	if ((v->type != V_ASN1_PRINTABLESTRING && v->type != V_ASN1_UTF8STRING &&
		v->type != V_ASN1_IA5STRING) ||
	    ASN1_STRING_length(v->value.asn1_string) != ENROLL_TOKEN_LEN) {
		*why = "challengePassword is not one picomdm issues";
		goto out;
	}
	memcpy(out, ASN1_STRING_get0_data(v->value.asn1_string),
	    ENROLL_TOKEN_LEN);
	out[ENROLL_TOKEN_LEN] = '\0';
	if (!enroll_token_valid(out)) {
		*why = "challengePassword is not one picomdm issues";
		goto out;
	}
	rc = 0;
out:
	X509_REQ_free(req);
	return rc;
}

/* scep-verify, with the global --db DIR: exit 0 accepted, 1 refused. */
int
ctl_scep_verify(struct ctl *c)
{
	unsigned char *buf, hash[32];
	char	       chal[ENROLL_TOKEN_LEN + 1];
	const char    *why = NULL;
	size_t	       n = 0;
	ssize_t	       r;
	int	       rc;

	if (c->argc == 2 && (strcmp(c->argv[1], "-h") == 0 ||
				strcmp(c->argv[1], "--help") == 0))
		return ctl_usage("scep-verify", "", scep_verify_help, 1);
	if (c->argc != 1)
		return ctl_usage("scep-verify", "", NULL, 0);
	if ((buf = malloc(CSR_MAX)) == NULL)
		return EXIT_USAGE;
	while (n < CSR_MAX &&
	    ((r = read(STDIN_FILENO, buf + n, CSR_MAX - n)) > 0 ||
		(r == -1 && errno == EINTR)))
		if (r > 0)
			n += (size_t)r;
	if (n == 0 || n == CSR_MAX) {
		fprintf(stderr, "picomdmctl: scep-verify: %s\n",
		    n == 0 ? "no request on stdin" : "request over 64 KiB");
		free(buf);
		return EXIT_NOTFOUND;
	}
	rc = csr_challenge(buf, n, chal, &why);
	free(buf);
	if (rc == -1) {
		fprintf(stderr, "picomdmctl: scep-verify: refused: %s\n", why);
		return EXIT_NOTFOUND;
	}
	sha256(chal, ENROLL_TOKEN_LEN, hash);
	explicit_bzero(chal, sizeof(chal));
	if ((rc = ctl_open(c, 0, 0)) != 0)
		return rc;
	rc = store_write(c->store, chal_use_op, hash);
	if (rc == 403) {
		fprintf(stderr, "picomdmctl: scep-verify: refused: challenge "
				"unknown, used or expired\n");
		return EXIT_NOTFOUND;
	}
	if (rc != 0)
		return ctl_exit(rc, "scep-verify");
	return 0;
}
