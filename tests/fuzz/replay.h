/*
 * replay.h - what every fuzz target ends with, and the corpus replay the
 * targets run when they are built without -DPICOMDM_LIBFUZZER, which is
 * how make check runs them.
 *
 * A target defines static int fuzz_one(const uint8_t *, size_t) and ends
 * with one line, REPLAY_TARGET("checkin", .max = ..., ...): the default
 * corpus (tests/fuzz/corpus/checkin; the target is named "fuzz-checkin")
 * and the other fields of its struct replay below. Built with
 * -DPICOMDM_LIBFUZZER that defines LLVMFuzzerTestOneInput(), which runs
 * init (when there is one) and fuzz_one() on each input; otherwise main(),
 * which calls replay_main().
 *
 * replay_main() runs the target's own command line (args) when it has one
 * and takes the arguments, else init, then replays the files and
 * directories given as arguments, or tests/fuzz/corpus/CORPUS (found
 * through PICOMDM_TEST_DATA) when there are none, prints how many inputs
 * it replayed and how many failed, runs fini, and returns the exit status:
 * 0 when some inputs were replayed and none failed, 1 otherwise, 2 for a
 * usage error.
 *
 * A file named "expect-NNN-..." promises that fuzz_one() gives status NNN,
 * one named "expect-NNN-MMM-..." the two statuses NNN and MMM, packed as
 * NNN * 1000 + MMM (0 is success); a status is three digits or one of
 * the target's words. A file whose name breaks its promise fails, and so
 * does one whose "expect-" name is malformed, one that cannot be read and
 * one fuzz_one() could not run. Other files (crashes kept as regressions)
 * only must not crash.
 */
#ifndef PICOMDM_FUZZ_REPLAY_H
#define PICOMDM_FUZZ_REPLAY_H

#include <stddef.h>
#include <stdint.h>

/* A status an "expect-" name gives as a word instead of three digits. */
struct replay_word {
	const char *word; /* three letters */
	int	    status;
};

/*
 * What differs between the targets:
 *
 *	name	 "fuzz-checkin", in messages
 *	corpus	 "checkin", the default corpus: tests/fuzz/corpus/checkin
 *	usage	 more usage lines, or NULL
 *	max	 bytes read from a file at most
 *	exact	 whether an input is copied to a buffer of exactly its size
 *	statuses how many an "expect-" name promises: 1, 2, or 0 when
 *		 names are not read
 *	words	 the words a status may be given as, up to a NULL word; or
 *		 NULL
 *	norun	 the status one() gives for an input it could not run, which
 *		 then fails; 0 for none
 *	one	 the target's fuzz_one(), giving the status(es) of an input
 *	init	 run before the replay and, built for libFuzzer, before each
 *		 input (so it must do nothing once it has run); or NULL
 *	fini	 run after the replay, freeing what init made so that leak
 *		 checkers see none; or NULL
 *	args	 the target's own command line, tried first: an exit status,
 *		 or -1 when the arguments are the replay's; or NULL
 */
struct replay {
	const char		 *name;
	const char		 *corpus;
	const char		 *usage;
	size_t			  max;
	int			  exact;
	int			  statuses;
	const struct replay_word *words;
	int			  norun;
	int (*one)(const uint8_t *, size_t);
	void (*init)(void);
	void (*fini)(void);
	int (*args)(int, char *[]);
};

/* The target's descriptor and entry point; see the top of this file. */
#define REPLAY_TARGET(corpus_, ...)                                        \
	static const struct replay fuzz_replay;                            \
	REPLAY_ENTRY_                                                      \
	static const struct replay fuzz_replay = {.name = "fuzz-" corpus_, \
	    .corpus = corpus_,                                             \
	    .one = fuzz_one,                                               \
	    __VA_ARGS__}

#ifdef PICOMDM_LIBFUZZER

#define REPLAY_ENTRY_                                                \
	int LLVMFuzzerTestOneInput(const uint8_t *, size_t);         \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) \
	{                                                            \
		if (fuzz_replay.init != NULL)                        \
			fuzz_replay.init();                          \
		fuzz_one(data, size);                                \
		return 0;                                            \
	}

#else /* the replay */

#include <sys/stat.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_ENTRY_                                         \
	int main(int argc, char *argv[])                      \
	{                                                     \
		return replay_main(&fuzz_replay, argc, argv); \
	}

static int replay_files, replay_bad;

/*
 * Decode the status at p, three digits or a word followed by '-', into
 * *status; -1 when there is none.
 */
static int
replay_status(const struct replay *r, const char *p, int *status)
{
	const struct replay_word *w;
	int			  i;

	for (w = r->words; w != NULL && w->word != NULL; w++)
		if (strncmp(p, w->word, 3) == 0 && p[3] == '-') {
			*status = w->status;
			return 0;
		}
	*status = 0;
	for (i = 0; i < 3; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		*status = *status * 10 + (p[i] - '0');
	}
	return p[3] == '-' ? 0 : -1;
}

/*
 * What the file name base promises: 1 with the statuses, packed like
 * fuzz_one()'s result, in *want; 0 nothing; -1 a malformed "expect-" name.
 */
static int
replay_expect(const struct replay *r, const char *base, int *want)
{
	int i, v;

	*want = 0;
	if (r->statuses == 0 || strncmp(base, "expect-", 7) != 0)
		return 0;
	for (i = 0; i < r->statuses; i++) {
		if (replay_status(r, base + 7 + 4 * i, &v) == -1)
			return -1;
		*want = *want * 1000 + v;
	}
	return 1;
}

/* Replay one file; check the statuses its name promises. */
static void
replay_file(const struct replay *r, const char *path)
{
	const char *base;
	FILE	   *f;
	uint8_t	   *buf, *exact;
	size_t	    n;
	int	    rc, want, promise;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "%s: cannot open %s\n", r->name, path);
		replay_bad++;
		return;
	}
	if ((buf = malloc(r->max)) == NULL)
		abort();
	n = fread(buf, 1, r->max, f);
	fclose(f);
	if (r->exact) {
		/* An exactly sized copy, so reads past the input are caught. */
		if ((exact = malloc(n > 0 ? n : 1)) == NULL)
			abort();
		memcpy(exact, buf, n);
		free(buf);
		buf = exact;
	}
	rc = r->one(buf, n);
	free(buf);
	replay_files++;

	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	promise = replay_expect(r, base, &want);
	if (promise == -1) {
		fprintf(stderr, "%s: %s: bad expect- name\n", r->name, path);
		replay_bad++;
	} else if (r->norun != 0 && rc == r->norun) {
		fprintf(stderr, "%s: %s: harness could not run it\n", r->name,
		    path);
		replay_bad++;
	} else if (promise == 1 && rc != want) {
		if (r->statuses == 2)
			fprintf(stderr,
			    "%s: %s: statuses %03d-%03d, expected %.7s\n",
			    r->name, path, rc / 1000, rc % 1000, base + 7);
		else
			fprintf(stderr, "%s: %s: status %d, expected %.3s\n",
			    r->name, path, rc, base + 7);
		replay_bad++;
	}
}

/* Replay a file, or every regular file of a directory. */
static void
replay_path(const struct replay *r, const char *path)
{
	struct stat    st;
	DIR	      *d;
	struct dirent *de;
	char	       sub[4096];
	int	       w;

	if (stat(path, &st) == -1) {
		fprintf(stderr, "%s: cannot stat %s\n", r->name, path);
		replay_bad++;
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		replay_file(r, path);
		return;
	}
	if ((d = opendir(path)) == NULL) {
		fprintf(stderr, "%s: cannot open %s\n", r->name, path);
		replay_bad++;
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		w = snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (w < 0 || (size_t)w >= sizeof(sub))
			continue;
		if (stat(sub, &st) == 0 && S_ISREG(st.st_mode))
			replay_file(r, sub);
	}
	closedir(d);
}

/* Replay the arguments, or the target's corpus; returns the exit status. */
static int
replay_run(const struct replay *r, int argc, char *argv[])
{
	const char *data;
	char	    dir[4096];
	int	    i, w;

	if (argc > 1)
		for (i = 1; i < argc; i++)
			replay_path(r, argv[i]);
	else {
		if ((data = getenv("PICOMDM_TEST_DATA")) == NULL) {
			fprintf(stderr, "usage: %s file|dir ...\n%s", r->name,
			    r->usage != NULL ? r->usage : "");
			return 2;
		}
		w = snprintf(
		    dir, sizeof(dir), "%s/../fuzz/corpus/%s", data, r->corpus);
		if (w < 0 || (size_t)w >= sizeof(dir))
			return 2;
		replay_path(r, dir);
	}
	printf("%s: %d inputs replayed, %d failed\n", r->name, replay_files,
	    replay_bad);
	return replay_bad == 0 && replay_files > 0 ? 0 : 1;
}

/* The target's main(): its own arguments, or init, the replay and fini. */
static int
replay_main(const struct replay *r, int argc, char *argv[])
{
	int rc;

	if (r->args != NULL && (rc = r->args(argc, argv)) != -1)
		return rc;
	if (r->init != NULL)
		r->init();
	rc = replay_run(r, argc, argv);
	if (r->fini != NULL)
		r->fini();
	return rc;
}

#endif /* PICOMDM_LIBFUZZER */

#endif /* PICOMDM_FUZZ_REPLAY_H */
