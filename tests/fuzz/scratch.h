/*
 * scratch.h - the scratch store of the fuzz targets that write what they
 * parse (fuzz-record, fuzz-dep-response, fuzz-vpp-response): opened once
 * in a fresh directory on tmpfs when there is one (else PICOMDM_TEST_TMP,
 * TMPDIR or /tmp), without fsync, and removed with its two files at exit.
 * A target calls scratch_open(its name) from its init and uses the store
 * returned; a failure to make it ends the process with status 2.
 */
#ifndef PICOMDM_FUZZ_SCRATCH_H
#define PICOMDM_FUZZ_SCRATCH_H

#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picomdm/store.h"

static struct store *scratch_store;
static char	     scratch_dir[4096];

static void
scratch_cleanup(void)
{
	char p[4200];

	if (scratch_store != NULL)
		store_close(scratch_store);
	scratch_store = NULL;
	if (scratch_dir[0] == '\0')
		return;
	snprintf(p, sizeof(p), "%s/data.mdb", scratch_dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", scratch_dir);
	unlink(p);
	rmdir(scratch_dir);
	scratch_dir[0] = '\0';
}

static struct store *
scratch_open(const char *name)
{
	struct store_opts so;
	const char	 *base;
	struct stat	  st;
	int		  rc;

	if (scratch_store != NULL)
		return scratch_store;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
	    access("/dev/shm", W_OK) == 0)
		base = "/dev/shm";
	else if ((base = getenv("PICOMDM_TEST_TMP")) == NULL &&
	    (base = getenv("TMPDIR")) == NULL)
		base = "/tmp";
	(void)mkdir(base, 0700);
	snprintf(scratch_dir, sizeof(scratch_dir), "%s/%s.XXXXXX", base, name);
	if (mkdtemp(scratch_dir) == NULL) {
		fprintf(stderr, "%s: mkdtemp %s: %s\n", name, scratch_dir,
		    strerror(errno));
		exit(2);
	}
	atexit(scratch_cleanup);
	memset(&so, 0, sizeof(so));
	so.nosync = 1;
	so.map_size = (size_t)16 << 20;
	so.map_max = (size_t)256 << 20;
	if ((rc = store_open(scratch_dir, &so, &scratch_store)) != 0) {
		fprintf(stderr, "%s: store_open: %s\n", name,
		    store_strerror(rc));
		exit(2);
	}
	return scratch_store;
}

#endif
