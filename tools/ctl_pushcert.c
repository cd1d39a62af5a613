/*
 * ctl_pushcert.c - picomdmctl pushcert: the APNs push certificates held
 * in the store, one per topic (picomdmctl(8), "pushcert"). import reads
 * a PEM certificate and key or a PKCS#12 file (module/pushcert.c), list
 * shows them without their keys, remove deletes one topic's.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "picomdm/pushcert.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

#define PUSHCERT_FILE_MAX (1024 * 1024)

#define PUSHCERT_SYNOPSIS                                        \
	"import CERT.pem KEY.pem [--force] | import FILE.p12 "   \
	"[--password-file F] [--force] | list [--json] | remove TOPIC"

static const char pushcert_help[] =
    "Manage the APNs push certificates, one per topic (the certificate's\n"
    "UID, which must start with com.apple.mgmt.).\n"
    "  import CERT.pem KEY.pem   store a PEM certificate and its unencrypted key\n"
    "  import FILE.p12           the same from a PKCS#12 file\n"
    "    --password-file F       its password: the first line of F\n"
    "    --force                 accept a certificate of another topic although\n"
    "                            the store's only certificate has enrolled devices\n"
    "  list [--json]             topic, subject, not-after, days left, state;\n"
    "                            a warning on stderr within 30 days of expiry\n"
    "  remove TOPIC              delete the topic's certificate and key\n";

/* Read a whole file (at most PUSHCERT_FILE_MAX); 0 or -1 (reported). */
static int
slurp(const char *path, unsigned char **out, size_t *len)
{
	FILE	      *f;
	unsigned char *b;
	size_t	       n;

	*out = NULL;
	*len = 0;
	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "picomdmctl: pushcert: %s: cannot read\n", path);
		return -1;
	}
	if ((b = malloc(PUSHCERT_FILE_MAX + 1)) == NULL) {
		fclose(f);
		return -1;
	}
	n = fread(b, 1, PUSHCERT_FILE_MAX + 1, f);
	if (ferror(f) || n > PUSHCERT_FILE_MAX || n == 0) {
		fprintf(stderr, "picomdmctl: pushcert: %s: %s\n", path,
		    n == 0 ? "empty or unreadable" : "too large");
		fclose(f);
		freezero(b, PUSHCERT_FILE_MAX + 1);
		return -1;
	}
	fclose(f);
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
}

/* Is the file a PKCS#12 (DER) rather than PEM? By its name, then its
 * first byte (a DER SEQUENCE). */
static int
is_p12(const char *path, const unsigned char *b, size_t n)
{
	size_t l = strlen(path);

	if ((l > 4 && strcmp(path + l - 4, ".p12") == 0) ||
	    (l > 4 && strcmp(path + l - 4, ".pfx") == 0))
		return 1;
	return n > 0 && b[0] == 0x30;
}

struct import_op {
	struct store_pushcert c;
	int		      force;
	char		     *conflict;
	int		      replaced;
};

static int
import_op(struct store_txn *t, void *arg)
{
	struct import_op      *io = arg;
	struct store_pushcert *old = NULL;
	int		       rc;

	rc = store_pushcert_get(t, io->c.topic, &old);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	io->replaced = old != NULL;
	store_pushcert_free(old);
	return store_pushcert_import(t, &io->c, io->force, &io->conflict);
}

static int
pushcert_import(struct ctl *c)
{
	struct import_op io;
	struct pushcert *pc = NULL;
	unsigned char	*a = NULL, *b = NULL;
	const char	*pos[2] = {NULL, NULL}, *pwfile = NULL;
	char		 err[256], pw[1024] = "";
	size_t		 an = 0, bn = 0;
	int		 i, n = 0, rc = EXIT_USAGE;

	memset(&io, 0, sizeof(io));
	for (i = 2; i < c->argc; i++) {
		if (strcmp(c->argv[i], "--force") == 0)
			io.force = 1;
		else if (strcmp(c->argv[i], "--password-file") == 0 &&
		    i + 1 < c->argc)
			pwfile = c->argv[++i];
		else if (strncmp(c->argv[i], "--password-file=", 16) == 0)
			pwfile = c->argv[i] + 16;
		else if (strncmp(c->argv[i], "--", 2) == 0 || n == 2)
			return ctl_usage("pushcert", PUSHCERT_SYNOPSIS,
			    pushcert_help, 0);
		else
			pos[n++] = c->argv[i];
	}
	if (n == 0)
		return ctl_usage("pushcert", PUSHCERT_SYNOPSIS, pushcert_help, 0);
	if (slurp(pos[0], &a, &an) != 0 ||
	    (n == 2 && slurp(pos[1], &b, &bn) != 0))
		goto out;
	if (n == 1 && is_p12(pos[0], a, an)) {
		if (pwfile != NULL &&
		    pushcert_password_read(pwfile, pw, sizeof(pw), err,
			sizeof(err)) != 0) {
			fprintf(stderr, "picomdmctl: pushcert: %s\n", err);
			goto out;
		}
		pc = pushcert_from_p12(a, an, pw, err, sizeof(err));
	} else if (pwfile != NULL) {
		fprintf(stderr, "picomdmctl: pushcert: --password-file is for "
				"a PKCS#12 file\n");
		goto out;
	} else
		/* One PEM file may hold the certificate and then the key. */
		pc = pushcert_from_pem(a, an, b, bn, err, sizeof(err));
	if (pc == NULL) {
		fprintf(stderr, "picomdmctl: pushcert: %s: %s\n", pos[0], err);
		goto out;
	}
	if (pushcert_state(pc, time(NULL)) == PUSHCERT_EXPIRED) {
		fprintf(stderr, "picomdmctl: pushcert: %s: expired\n", pc->topic);
		goto out;
	}
	if ((rc = ctl_open(c, 0, 0)) != 0)
		goto out;
	store_pushcert_from(&io.c, pc, time_now_us());
	rc = store_write(c->store, import_op, &io);
	if (rc == STORE_EEXIST) {
		fprintf(stderr,
		    "picomdmctl: pushcert: refused: the store's push "
		    "certificate is for topic %s and enrollments use it; this "
		    "one is for %s (use --force to add it anyway)\n",
		    io.conflict, pc->topic);
		rc = EXIT_USAGE;
		goto out;
	}
	if (rc != 0) {
		rc = ctl_exit(rc, "pushcert import");
		goto out;
	}
	printf("%s\t%s\t%s\n", io.replaced ? "replaced" : "imported",
	    pc->topic, pc->subject);
	if (pushcert_state(pc, time(NULL)) == PUSHCERT_EXPIRING)
		fprintf(stderr,
		    "picomdmctl: warning: push certificate for %s expires in "
		    "%lld days\n",
		    pc->topic, pushcert_days_left(pc, time(NULL)));
out:
	free(io.conflict);
	pushcert_free(pc);
	if (a != NULL)
		freezero(a, PUSHCERT_FILE_MAX + 1);
	if (b != NULL)
		freezero(b, PUSHCERT_FILE_MAX + 1);
	explicit_bzero(pw, sizeof(pw));
	return rc;
}

struct list_op {
	json_t *arr;
	int	json;
	time_t	now;
};

static int
list_cb(const struct store_pushcert *sc, void *arg)
{
	struct list_op	*lo = arg;
	struct pushcert	 pc;
	char		 na[32];
	time_t		 t = (time_t)(sc->not_after / 1000000u);
	struct tm	 tm;
	long long	 days;
	const char	*state;

	memset(&pc, 0, sizeof(pc));
	pc.not_after = t;
	days = pushcert_days_left(&pc, lo->now);
	state = pushcert_state_name(pushcert_state(&pc, lo->now));
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(na, sizeof(na), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(na, sizeof(na), "?");
	if (lo->json) {
		if (json_array_append_new(lo->arr,
			json_pack("{s:s, s:o, s:s, s:I, s:s, s:o, s:o}", "topic",
			    sc->topic, "subject", ctl_json_str(sc->subject),
			    "not_after", na, "days_left", (json_int_t)days,
			    "state", state, "sha256", ctl_json_str(sc->sha256),
			    "imported_at", ctl_json_time(sc->imported_at))) != 0)
			return STORE_ENOMEM;
	} else
		printf("%s\t%s\t%s\t%lld\t%s\n", sc->topic,
		    sc->subject != NULL ? sc->subject : "", na, days, state);
	if (days <= PUSHCERT_WARN_DAYS)
		fprintf(stderr,
		    "picomdmctl: warning: push certificate for %s %s (%lld "
		    "days left, not after %s)\n",
		    sc->topic, days < 0 ? "has expired" : "expires soon", days,
		    na);
	return 0;
}

static int
list_read(struct store_txn *t, void *arg)
{
	return store_pushcert_each(t, list_cb, arg);
}

static int
pushcert_list(struct ctl *c)
{
	struct list_op lo;
	char	      *s;
	int	       rc;

	memset(&lo, 0, sizeof(lo));
	lo.now = time(NULL);
	if (c->argc > 3 ||
	    (c->argc == 3 && strcmp(c->argv[2], "--json") != 0))
		return ctl_usage("pushcert", PUSHCERT_SYNOPSIS, pushcert_help, 0);
	lo.json = c->argc == 3;
	if ((rc = ctl_open(c, 1, 0)) != 0)
		return rc;
	if (lo.json && (lo.arr = json_array()) == NULL)
		return EXIT_USAGE;
	rc = store_read(c->store, list_read, &lo);
	if (rc == 0 && lo.json) {
		if ((s = json_dumps(lo.arr, JSON_COMPACT)) == NULL)
			rc = STORE_ENOMEM;
		else {
			printf("%s\n", s);
			free(s);
		}
	}
	json_decref(lo.arr);
	return ctl_exit(rc, "pushcert list");
}

static int
remove_op(struct store_txn *t, void *arg)
{
	return store_pushcert_del(t, arg);
}

static int
pushcert_remove(struct ctl *c)
{
	int rc;

	if (c->argc != 3 || strncmp(c->argv[2], "--", 2) == 0)
		return ctl_usage("pushcert", PUSHCERT_SYNOPSIS, pushcert_help, 0);
	if ((rc = ctl_open(c, 0, 0)) != 0)
		return rc;
	rc = store_write(c->store, remove_op, c->argv[2]);
	if (rc == 0)
		printf("removed\t%s\n", c->argv[2]);
	return ctl_exit(rc, c->argv[2]);
}

/* pushcert import|list|remove ... */
int
ctl_pushcert(struct ctl *c)
{
	if (c->argc >= 2 && strcmp(c->argv[1], "import") == 0)
		return pushcert_import(c);
	if (c->argc >= 2 && strcmp(c->argv[1], "list") == 0)
		return pushcert_list(c);
	if (c->argc >= 2 && strcmp(c->argv[1], "remove") == 0)
		return pushcert_remove(c);
	return ctl_usage("pushcert", PUSHCERT_SYNOPSIS, pushcert_help,
	    c->argc >= 2 && (strcmp(c->argv[1], "--help") == 0 ||
				strcmp(c->argv[1], "-h") == 0));
}
