/*
 * ctl_enroll.c - picomdmctl enrollment-profile: the signed enrollment
 * profile picomdm-fcgi serves at /mdm/enroll, built from the same
 * picomdm.conf (--config), for installing by hand or serving elsewhere.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "picomdm/enroll.h"

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
