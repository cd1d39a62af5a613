/*
 * ctl_privacy.c - picomdmctl inventory, purge and prune: what picomdm
 * holds about a device and where it came from, deleting it on request
 * (provably), and retention.
 *
 * The inventory itself is built by inventory_device() (module/
 * inventory.c) from the stored messages and records, labelled with the
 * data catalogue; this file prints it. Secrets appear as length and
 * SHA-256 only, never their value. Purges run once as a count in a read
 * transaction (which changes nothing and never waits for LMDB's write
 * lock) so that the confirmation names exactly what will go, then for
 * real in one write transaction, which removes no device or enrollment
 * the count did not name: it refuses and changes nothing instead.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl.h"
#include "picomdm/inventory.h"
#include "picomdm/store.h"
#include "picomdm/store_enroll.h"
#include "picomdm/util.h"

struct inv_op {
	const char *arg;
	json_t	   *out;
};

static int
inventory_op(struct store_txn *t, void *arg)
{
	struct inv_op *io = arg;

	return inventory_device(t, io->arg, &io->out);
}

/* A value as one line of text (no tabs or newlines). */
static void
print_value(const json_t *v)
{
	const char *s, *p;

	if (json_is_string(v)) {
		s = json_string_value(v);
		for (p = s; *p != '\0' && p - s < 200; p++)
			putchar(
			    (unsigned char)*p < ' ' || *p == 0x7f ? ' ' : *p);
		if (*p != '\0')
			fputs("...", stdout);
	} else if (json_is_object(v) && json_object_get(v, "sha256")) {
		printf("%s%lld bytes, sha256 %s",
		    json_object_get(v, "secret") ? "secret: " : "",
		    (long long)json_integer_value(json_object_get(v, "length")),
		    json_string_value(json_object_get(v, "sha256")));
	} else if (json_is_object(v) && json_object_get(v, "secret"))
		fputs("secret", stdout);
	else if (json_is_object(v) && json_object_get(v, "keys"))
		printf("dict, %lld keys",
		    (long long)json_integer_value(json_object_get(v, "keys")));
	else if (json_is_object(v) && json_object_get(v, "items"))
		printf("array, %lld items",
		    (long long)json_integer_value(json_object_get(v, "items")));
	else {
		char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

		fputs(t != NULL ? t : "?", stdout);
		free(t);
	}
}

/* The inventory as tab-separated text, one heading per service. */
static void
inventory_print(const json_t *inv)
{
	const json_t *row, *v, *svc, *rt;
	const char   *name;
	size_t	      i, j;

	v = json_object_get(inv, "serial_number");
	printf("device\t%s\tserial\t%s\n",
	    json_string_value(json_object_get(inv, "device_id")),
	    json_is_string(v) ? json_string_value(v) : "-");
	json_array_foreach(json_object_get(inv, "enrollments"), i, v) printf(
	    "enrollment\t%s\t%s\n", json_string_value(json_object_get(v, "id")),
	    json_string_value(json_object_get(v, "type")));
	json_array_foreach(json_object_get(inv, "services"), i, svc)
	{
		name = json_string_value(json_object_get(svc, "service"));
		printf("\n# %s\n",
		    json_string_value(json_object_get(svc, "title")));
		if (json_array_size(json_object_get(svc, "fields")) == 0) {
			printf("# nothing held%s\n",
			    strcmp(name, "ADE") == 0 || strcmp(name, "VPP") == 0
				? " (no token of this service)"
				: "");
			continue;
		}
		printf("# enrollment\tsource\tmessage\treceived\tfield\tvalue"
		       "\tpurpose\n");
		json_array_foreach(json_object_get(svc, "fields"), j, row)
		{
			v = json_object_get(row, "received_at");
			printf("%s\t%s\t%s",
			    json_string_value(
				json_object_get(row, "enrollment")),
			    json_string_value(json_object_get(row, "source")),
			    json_string_value(json_object_get(row, "message")));
			if (json_is_string(
				rt = json_object_get(row, "request_type")))
				printf(" (%s)", json_string_value(rt));
			printf("\t%s\t%s\t",
			    json_is_string(v) ? json_string_value(v) : "-",
			    json_string_value(json_object_get(row, "field")));
			print_value(json_object_get(row, "value"));
			printf("\t%s\n",
			    json_string_value(json_object_get(row, "purpose")));
		}
	}
}

/* The catalogue as JSON, or as text with a heading per service. */
static void
catalogue_print(int json)
{
	const struct inv_row *r;
	json_t		     *arr;
	size_t		      i;
	int		      s;

	if (json) {
		arr = json_array();
		for (i = 0; i < inventory_catalogue_len; i++) {
			r = &inventory_catalogue[i];
			json_array_append_new(arr,
			    json_pack("{s:s, s:s, s:s, "
				      "s:s, s:b, s:s}",
				"service", inventory_service_name(r->service),
				"message", r->message, "field", r->field,
				"purpose", r->purpose, "secret", r->secret,
				"kept", inventory_kept_name(r->kept)));
		}
		json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(arr);
		return;
	}
	for (s = 0; s < INV__MAX; s++) {
		printf("%s# %s\n# service\tmessage\tfield\tkept\tsecret\t"
		       "purpose\n",
		    s ? "\n" : "",
		    inventory_service_title((enum inv_service)s));
		for (i = 0; i < inventory_catalogue_len; i++) {
			r = &inventory_catalogue[i];
			if ((int)r->service != s)
				continue;
			printf("%s\t%s\t%s\t%s\t%s\t%s\n",
			    inventory_service_name(r->service),
			    strcmp(r->message, "*") == 0 ? "(every message)"
							 : r->message,
			    strcmp(r->field, "*") == 0 ? "(other keys)"
						       : r->field,
			    inventory_kept_name(r->kept),
			    r->secret ? "secret" : "-", r->purpose);
		}
	}
}

static const char inventory_help[] =
    "Every field picomdm holds about a device (ID, enrollment ID or serial\n"
    "number) and its user channels, grouped by the Apple service that sent\n"
    "it, with the message, the time received, the topic it came through\n"
    "and what it is used for: every key of the stored check-in messages\n"
    "and command reports, and the fields kept in records. Secrets (push\n"
    "token, PushMagic, UnlockToken, BootstrapToken, ...) appear as length\n"
    "and SHA-256 only.\n"
    "  --catalogue   the table of every field picomdm holds or will hold,\n"
    "                for all four services (no store needed)\n"
    "  --json        JSON instead of tab-separated text\n";

#define INVENTORY_SYNOPSIS "ID|SERIAL [--json] | --catalogue [--json]"

/* inventory ID|SERIAL [--json] | --catalogue [--json]. */
int
ctl_inventory(struct ctl *c)
{
	static const struct option lo[] = {{"json", no_argument, NULL, 'j'},
	    {"catalogue", no_argument, NULL, 'c'},
	    {"catalog", no_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct inv_op		   io;
	int			   ch, json = 0, cat = 0, rc;

	optind = 0;
	while ((ch = getopt_long(c->argc, c->argv, "", lo, NULL)) != -1) {
		if (ch == 'j')
			json = 1;
		else if (ch == 'c')
			cat = 1;
		else
			return ctl_usage("inventory", INVENTORY_SYNOPSIS,
			    inventory_help, ch == 'h');
	}
	if (cat) {
		if (optind != c->argc)
			return ctl_usage(
			    "inventory", INVENTORY_SYNOPSIS, NULL, 0);
		catalogue_print(json);
		return 0;
	}
	if (optind != c->argc - 1)
		return ctl_usage("inventory", INVENTORY_SYNOPSIS, NULL, 0);
	if ((rc = ctl_open(c, 1, 0)) != 0)
		return rc;
	io.arg = c->argv[optind];
	io.out = NULL;
	rc = store_read(c->store, inventory_op, &io);
	if (rc == 0 && json) {
		json_dumpf(
		    io.out, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else if (rc == 0)
		inventory_print(io.out);
	json_decref(io.out);
	return ctl_exit(rc, c->argv[optind]);
}

/* ---- purge ---- */

/* PURGE_TOKEN: the ADE or the VPP token of that name, whichever exists. */
enum purge_mode {
	PURGE_DEVICE,
	PURGE_TOPIC,
	PURGE_TOKEN,
	PURGE_ADE_TOKEN,
	PURGE_VPP_TOKEN
};

/* What each mode purges, and what it says when there is none. */
static const struct {
	const char *what;
	const char *none;
} purge_modes[] = {
	[PURGE_DEVICE] = {"device", "nothing stored"},
	[PURGE_TOPIC] = {"topic", "no record came through this topic"},
	[PURGE_TOKEN] = {"token", "no such token"},
	[PURGE_ADE_TOKEN] = {"ADE token", "no such ADE token"},
	[PURGE_VPP_TOKEN] = {"Apps and Books token",
	    "no such Apps and Books token"},
};

/* --token NAME names both an ADE and a VPP token (nothing is changed). */
#define PURGE_AMBIGUOUS 2
/* The purge would remove a device or enrollment the count did not name
 * (one enrolled since): its transaction is discarded. */
#define PURGE_CHANGED 3
/* picomdmctl's exit status then: run the purge again. */
#define EXIT_CHANGED 3

struct purge_ctx {
	enum purge_mode		  mode;
	const char		 *arg;
	char			 *device_id;
	int			  dry;
	int			  verify;
	/* A token of the other service has the same name: --verify does
	 * not look for the name, which that token's records still hold. */
	int			  shared_name;
	struct store_purge_report r;
	/* The count's devices and enrollments, sorted: all the purge may
	 * remove. */
	struct store_purge_report counted;
	/* identifiers to look for afterwards (--verify) */
	char **needle;
	size_t nneedle, cap;
};

/*
 * In the count: does a token of the other service have the same name?
 * Found by counting its purge in this read transaction too. Sets
 * p->shared_name.
 */
static int
token_shared(struct store_txn *t, struct purge_ctx *p, enum store_source other)
{
	struct store_purge_report r;
	int			  rc;

	if (!p->dry)
		return 0;
	memset(&r, 0, sizeof(r));
	rc = store_purge_source(t, other, p->arg, &r);
	store_purge_report_free(&r);
	if (rc != 0 && rc != STORE_ENOTFOUND)
		return rc;
	p->shared_name = rc == 0;
	return 0;
}

static int needles_op(struct store_txn *, void *);

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is s one of the n sorted strings of v? */
static int
id_counted(char *const *v, size_t n, const char *s)
{
	return n > 0 && bsearch(&s, v, n, sizeof(*v), id_cmp) != NULL;
}

/* Did the purge just run remove only devices and enrollments the count
 * named? */
static int
purge_as_counted(const struct purge_ctx *p)
{
	size_t i;

	for (i = 0; i < p->r.ndevices; i++)
		if (!id_counted(p->counted.devices, p->counted.ndevices,
			p->r.devices[i]))
			return 0;
	for (i = 0; i < p->r.nenrollments; i++)
		if (!id_counted(p->counted.enrollments, p->counted.nenrollments,
			p->r.enrollments[i]))
			return 0;
	return 1;
}

/*
 * The purge: with p->dry its count, in a read transaction (the
 * identifiers --verify looks for afterwards are read from the same
 * view); else in one write transaction, discarded (PURGE_CHANGED) when
 * it removes a device or enrollment the count did not name.
 */
static int
purge_op(struct store_txn *t, void *arg)
{
	struct purge_ctx *p = arg;
	const char	 *ids[1];
	int		  rc;

	switch (p->mode) {
	case PURGE_DEVICE:
		ids[0] = p->device_id;
		rc = store_purge_devices(t, ids, 1, &p->r);
		break;
	case PURGE_TOPIC:
		rc = store_purge_source(t, STORE_SOURCE_TOPIC, p->arg, &p->r);
		break;
	case PURGE_ADE_TOKEN:
		rc = store_purge_source(t, STORE_SOURCE_TOKEN, p->arg, &p->r);
		if (rc == 0)
			rc = token_shared(t, p, STORE_SOURCE_VPP_TOKEN);
		break;
	case PURGE_VPP_TOKEN:
		rc = store_purge_source(
		    t, STORE_SOURCE_VPP_TOKEN, p->arg, &p->r);
		if (rc == 0)
			rc = token_shared(t, p, STORE_SOURCE_TOKEN);
		break;
	default:
		rc = store_purge_source(t, STORE_SOURCE_TOKEN, p->arg, &p->r);
		if (rc == STORE_ENOTFOUND)
			rc = store_purge_source(
			    t, STORE_SOURCE_VPP_TOKEN, p->arg, &p->r);
		else if (rc == 0 &&
		    (rc = token_shared(t, p, STORE_SOURCE_VPP_TOKEN)) == 0 &&
		    p->shared_name)
			rc = PURGE_AMBIGUOUS;
		break;
	}
	if (rc != 0)
		return rc;
	if (p->dry)
		return p->verify ? needles_op(t, p) : 0;
	return purge_as_counted(p) ? 0 : PURGE_CHANGED;
}

static int
resolve_op(struct store_txn *t, void *arg)
{
	struct purge_ctx *p = arg;

	free(p->device_id);
	p->device_id = NULL;
	return store_device_resolve(t, p->arg, &p->device_id);
}

/* Add an identifier to look for; 0 or STORE_ENOMEM. */
static int
needle_add(struct purge_ctx *p, const char *s)
{
	char **nv;

	/* Repeats (a device's ID and UDID are usually one string) are
	 * dropped once, before the scan (verify_op). */
	if (s == NULL || *s == '\0')
		return 0;
	if (p->nneedle == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;

		if ((nv = reallocarray(p->needle, cap, sizeof(*nv))) == NULL)
			return STORE_ENOMEM;
		p->needle = nv;
		p->cap = cap;
	}
	if ((p->needle[p->nneedle] = strdup(s)) == NULL)
		return STORE_ENOMEM;
	p->nneedle++;
	return 0;
}

/* store_purge_identifiers' view of needle_add. */
static int
needle_ident(const char *s, void *arg)
{
	return needle_add(arg, s);
}

/* Collect the identifiers of what is about to go, before it goes:
 * device ID, UDID, EnrollmentID, serial number, the enrollment IDs (user
 * channels'), and what else the store's records say identifies them
 * (IMEI, MEID, UserID, PushMagic, push token, MachineInfo's UDID and
 * serial: store_purge_identifiers); and the topic or token name itself:
 * no record may still name it, unless a token of the other service has
 * the same name. */
static int
needles_op(struct store_txn *t, void *arg)
{
	struct purge_ctx    *p = arg;
	struct store_device *d;
	size_t		     i;
	int		     rc = 0;

	if (p->mode != PURGE_DEVICE && !p->shared_name)
		rc = needle_add(p, p->arg);
	for (i = 0; i < p->r.nenrollments && rc == 0; i++)
		rc = needle_add(p, p->r.enrollments[i]);
	if (rc == 0)
		rc = store_purge_identifiers(t, &p->r, needle_ident, p);
	for (i = 0; i < p->r.ndevices && rc == 0; i++) {
		if ((rc = needle_add(p, p->r.devices[i])) != 0)
			break;
		if ((rc = store_device_get(t, p->r.devices[i], &d)) != 0) {
			rc = rc == STORE_ENOTFOUND ? 0 : rc;
			continue;
		}
		if ((rc = needle_add(p, d->udid)) == 0 &&
		    (rc = needle_add(p, d->enrollment_id)) == 0)
			rc = needle_add(p, d->serial);
		store_device_free(d);
	}
	return rc;
}

static int
verify_hit(
    const char *db, const void *key, size_t keylen, size_t needle, void *arg)
{
	struct purge_ctx *p = arg;
	char		 *hex;

	if ((hex = malloc(keylen * 2 + 1)) == NULL)
		return STORE_ENOMEM;
	hex_encode(key, keylen, hex);
	printf("hit\t%s\t%s\t%s\n", db, hex, p->needle[needle]);
	free(hex);
	return 0;
}

/* Scan for the identifiers of what was purged; 1 when any is left. */
static int
verify_op(struct store_txn *t, void *arg)
{
	struct purge_ctx *p = arg;
	const void	**nv;
	size_t		 *nl, i, j;
	long long	  hits = STORE_ENOMEM;

	/* Each once: a MachineInfo's UDID is often the device's ID. */
	if (p->nneedle > 1) {
		qsort(p->needle, p->nneedle, sizeof(*p->needle), id_cmp);
		for (i = j = 1; i < p->nneedle; i++) {
			if (strcmp(p->needle[i], p->needle[j - 1]) == 0)
				free(p->needle[i]);
			else
				p->needle[j++] = p->needle[i];
		}
		p->nneedle = j;
	}
	nv = calloc(p->nneedle + 1, sizeof(*nv));
	nl = calloc(p->nneedle + 1, sizeof(*nl));
	if (nv != NULL && nl != NULL) {
		for (i = 0; i < p->nneedle; i++) {
			nv[i] = p->needle[i];
			nl[i] = strlen(p->needle[i]);
		}
		hits = store_scan(t, nv, nl, p->nneedle, verify_hit, p);
	}
	free(nv);
	free(nl);
	if (hits < 0)
		return (int)hits;
	printf("verify\t%lld hits\t%zu identifiers\n", hits, p->nneedle);
	return hits > 0 ? 1 : 0;
}

static void
purge_summary(FILE *f, const struct store_purge_report *r, const char *pfx)
{
	size_t i;

	for (i = 0; i < r->ndevices; i++)
		fprintf(f, "%sdevice\t%s\n", pfx, r->devices[i]);
	for (i = 0; i < r->nenrollments; i++)
		fprintf(f, "%senrollment\t%s\n", pfx, r->enrollments[i]);
	for (i = 0; i < r->ndb; i++)
		if (r->removed[i] > 0)
			fprintf(f, "%sremoved\t%s\t%llu\n", pfx, r->db[i],
			    (unsigned long long)r->removed[i]);
}

/* Ask on the terminal; 1 for yes. */
static int
confirm(const char *what)
{
	char line[64];

	fprintf(stderr, "%s? [y/N] ", what);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	return strcmp(line, "y\n") == 0 || strcmp(line, "yes\n") == 0 ||
	    strcmp(line, "Y\n") == 0;
}

static const char purge_help[] =
    "Remove everything about a device (ID, enrollment ID or serial\n"
    "number): its enrollments and user channels, certificate and serial\n"
    "bindings, queues, results, raw messages, device facts, and commands\n"
    "no other enrollment uses, in one transaction. --topic removes every\n"
    "device whose data came through that APNs topic. --token removes an\n"
    "ADE or Apps and Books (VPP) token and every record that came through\n"
    "it, and no device; --ade-token and --vpp-token say which service's\n"
    "token, when both have one of that name. Asks about a count made\n"
    "first, and removes no device or enrollment that count did not name:\n"
    "when one appeared since, nothing changes and it exits 3. Prints what\n"
    "it removed.\n"
    "  --yes      do not ask (required when stdin is not a terminal)\n"
    "  --verify   then scan every key and value of every sub-database for\n"
    "             the device ID, UDID, EnrollmentID, serial number and\n"
    "             enrollment IDs, and the IMEI, MEID, UserID, PushMagic\n"
    "             and push token no device that stays shares (and the\n"
    "             topic or token name); exit status 1 if any is left\n"
    "Freed pages of the live file may still hold old bytes until reused;\n"
    "a backup (compacting) holds none of them.\n";

/*
 * purge ID|SERIAL | --topic TOPIC | --token NAME | --ade-token NAME |
 * --vpp-token NAME [--yes] [--verify]:
 * resolve, count (which also names the identifiers to verify), ask,
 * purge as counted, verify.
 */
int
ctl_purge(struct ctl *c)
{
	static const struct option lo[] = {{"yes", no_argument, NULL, 'y'},
	    {"verify", no_argument, NULL, 'v'},
	    {"topic", required_argument, NULL, 't'},
	    {"token", required_argument, NULL, 'T'},
	    {"ade-token", required_argument, NULL, 'A'},
	    {"vpp-token", required_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct purge_ctx	   p;
	char			   what[600];
	int			   ch, yes = 0, verify = 0, rc, ex = 0;
	size_t			   i;

	memset(&p, 0, sizeof(p));
	p.mode = PURGE_DEVICE;
	optind = 0;
	while ((ch = getopt_long(c->argc, c->argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'y':
			yes = 1;
			break;
		case 'v':
			verify = 1;
			break;
		case 't':
		case 'T':
		case 'A':
		case 'V':
			if (p.arg != NULL)
				return ctl_usage(
				    "purge", CTL_PURGE_SYNOPSIS, NULL, 0);
			p.mode = ch == 't' ? PURGE_TOPIC
			    : ch == 'T'	   ? PURGE_TOKEN
			    : ch == 'A'	   ? PURGE_ADE_TOKEN
					   : PURGE_VPP_TOKEN;
			p.arg = optarg;
			break;
		default:
			return ctl_usage(
			    "purge", CTL_PURGE_SYNOPSIS, purge_help, ch == 'h');
		}
	}
	if (p.mode == PURGE_DEVICE) {
		if (optind != c->argc - 1)
			return ctl_usage("purge", CTL_PURGE_SYNOPSIS, NULL, 0);
		p.arg = c->argv[optind];
	} else if (optind != c->argc || *p.arg == '\0')
		return ctl_usage("purge", CTL_PURGE_SYNOPSIS, NULL, 0);
	if (!yes && !isatty(STDIN_FILENO)) {
		fprintf(stderr,
		    "picomdmctl: purge: not purging without --yes "
		    "(standard input is not a terminal)\n");
		return EXIT_USAGE;
	}
	if ((rc = ctl_open(c, 0, 0)) != 0)
		return rc;
	if (p.mode == PURGE_DEVICE &&
	    (rc = store_read(c->store, resolve_op, &p)) != 0) {
		ex = ctl_exit(rc, p.arg);
		goto out;
	}
	/* The count, without the write lock, says exactly what will go. */
	p.dry = 1;
	p.verify = verify;
	rc = store_read(c->store, purge_op, &p);
	if (rc == STORE_ENOTFOUND) {
		fprintf(stderr, "picomdmctl: purge: %s: %s\n", p.arg,
		    purge_modes[p.mode].none);
		ex = EXIT_NOTFOUND;
		goto out;
	}
	if (rc == PURGE_AMBIGUOUS) {
		fprintf(stderr,
		    "picomdmctl: purge: %s: an ADE token and an Apps and "
		    "Books token both have this name; say which with "
		    "--ade-token or --vpp-token\n",
		    p.arg);
		ex = EXIT_USAGE;
		goto out;
	}
	if (rc != 0) {
		ex = ctl_exit(rc, "purge");
		goto out;
	}
	if (!yes) {
		purge_summary(stderr, &p.r, "would remove ");
		if (p.mode == PURGE_DEVICE || p.mode == PURGE_TOPIC)
			snprintf(what, sizeof(what),
			    "purge %zu devices and %zu enrollments (%s %s) "
			    "and everything about them",
			    p.r.ndevices, p.r.nenrollments,
			    purge_modes[p.mode].what,
			    p.mode == PURGE_DEVICE ? p.device_id : p.arg);
		else
			snprintf(what, sizeof(what),
			    "purge the %s %s and every record that came "
			    "through it (no device)",
			    purge_modes[p.mode].what, p.arg);
		if (!confirm(what)) {
			fprintf(stderr, "picomdmctl: purge: not purged\n");
			ex = EXIT_NOTFOUND;
			goto out;
		}
	}
	p.dry = 0;
	p.counted = p.r;
	memset(&p.r, 0, sizeof(p.r));
	qsort(p.counted.devices, p.counted.ndevices, sizeof(char *), id_cmp);
	qsort(p.counted.enrollments, p.counted.nenrollments, sizeof(char *),
	    id_cmp);
	rc = store_write(c->store, purge_op, &p);
	if (rc == PURGE_CHANGED) {
		fprintf(stderr,
		    "picomdmctl: purge: %s: the store changed since the "
		    "count (a device or enrollment it did not name would go); "
		    "nothing purged, run purge again\n",
		    p.arg);
		ex = EXIT_CHANGED;
		goto out;
	}
	if (rc != 0) {
		ex = ctl_exit(rc, "purge");
		goto out;
	}
	purge_summary(stdout, &p.r, "");
	if (verify) {
		rc = store_read(c->store, verify_op, &p);
		ex = rc == 1 ? 1 : ctl_exit(rc, "verify");
	}
out:
	fflush(stdout);
	for (i = 0; i < p.nneedle; i++)
		free(p.needle[i]);
	free(p.needle);
	free(p.device_id);
	store_purge_report_free(&p.r);
	store_purge_report_free(&p.counted);
	return ex;
}

/* ---- prune ---- */

struct prune_ctx {
	uint64_t		  before;
	struct store_prune_count  n;
	char			**ids;
	size_t			  nids, cap;
	const char *const	 *batch;
	size_t			  nbatch;
	struct store_purge_report r;
	uint64_t		  tokens; /* enrollment tokens removed */
};

#define PRUNE_BATCH 5000
#define PURGE_BATCH 500

static int
prune_results_op(struct store_txn *t, void *arg)
{
	struct prune_ctx *p = arg;

	return store_prune(t, p->before, PRUNE_BATCH, &p->n);
}

/* Remember an enrollment ID (checked out long ago). */
static int
prune_collect(const char *id, void *arg)
{
	struct prune_ctx *p = arg;
	char		**nv;

	if (p->nids == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;

		if ((nv = reallocarray(p->ids, cap, sizeof(*nv))) == NULL)
			return STORE_ENOMEM;
		p->ids = nv;
		p->cap = cap;
	}
	if ((p->ids[p->nids] = strdup(id)) == NULL)
		return STORE_ENOMEM;
	p->nids++;
	return 0;
}

static int
prune_list_op(struct store_txn *t, void *arg)
{
	struct prune_ctx *p = arg;
	size_t		  i;

	for (i = 0; i < p->nids; i++)
		free(p->ids[i]);
	p->nids = 0;
	return store_checked_out(t, p->before, prune_collect, p);
}

static int
prune_purge_op(struct store_txn *t, void *arg)
{
	struct prune_ctx *p = arg;
	int		  rc;

	rc = store_purge_enrollments(t, p->batch, p->nbatch, &p->r);
	return rc == STORE_ENOTFOUND ? 0 : rc;
}

/* Enrollment tokens expired (or used) by now: they enroll nothing more. */
static int
prune_tokens_op(struct store_txn *t, void *arg)
{
	struct prune_ctx *p = arg;

	return store_enroll_token_prune(t, p->before, &p->tokens);
}

static const char prune_help[] =
    "Apply the retention policy: remove command results received more\n"
    "than --results-days ago, then the commands no queue holds that are\n"
    "older than that, then enrollments checked out more than\n"
    "--checked-out-days ago with everything about them (a device channel\n"
    "takes its device and user channels), and enrollment tokens that are\n"
    "used or expired. Runs in short transactions.\n"
    "  --results-days N       default 90\n"
    "  --checked-out-days N   default 90\n";

#define PRUNE_SYNOPSIS "[--results-days N] [--checked-out-days N]"

/*
 * prune: results and commands in batches of PRUNE_BATCH until none is
 * left, then checked-out enrollments PURGE_BATCH at a time, each batch
 * one transaction so the responder is never held up for long.
 */
int
ctl_prune(struct ctl *c)
{
	static const struct option lo[] = {
	    {"results-days", required_argument, NULL, 'r'},
	    {"checked-out-days", required_argument, NULL, 'c'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	const struct store_progress *prog = ctl_progress();
	struct prune_ctx	     p;
	struct store_prune_count     total;
	long long		     rdays = 90, cdays = 90;
	uint64_t now = time_now_us(), devices = 0, enrollments = 0;
	size_t	 i;
	int	 ch, rc, ex = 0;

	optind = 0;
	while ((ch = getopt_long(c->argc, c->argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'r':
		case 'c':
			if (num_parse(optarg, 0, 36500,
				ch == 'r' ? &rdays : &cdays) == -1) {
				fprintf(stderr,
				    "picomdmctl: prune: %s: not a "
				    "number of days (0 to 36500)\n",
				    optarg);
				return EXIT_USAGE;
			}
			break;
		default:
			return ctl_usage(
			    "prune", PRUNE_SYNOPSIS, prune_help, ch == 'h');
		}
	}
	if (optind != c->argc)
		return ctl_usage("prune", PRUNE_SYNOPSIS, NULL, 0);
	if ((rc = ctl_open(c, 0, 0)) != 0)
		return rc;
	memset(&p, 0, sizeof(p));
	memset(&total, 0, sizeof(total));
	p.before = now - (uint64_t)rdays * 86400u * 1000000u;
	do {
		if ((rc = store_write(c->store, prune_results_op, &p)) != 0) {
			ex = ctl_exit(rc, "prune");
			goto out;
		}
		total.results += p.n.results;
		total.commands += p.n.commands;
		total.targets += p.n.targets;
		if (prog != NULL)
			prog->fn(prog->arg, "prune results",
			    total.results + total.commands, 0);
	} while (p.n.results + p.n.commands > 0);
	p.before = now;
	if ((rc = store_write(c->store, prune_tokens_op, &p)) != 0) {
		ex = ctl_exit(rc, "prune");
		goto out;
	}
	p.before = now - (uint64_t)cdays * 86400u * 1000000u;
	if ((rc = store_read(c->store, prune_list_op, &p)) != 0) {
		ex = ctl_exit(rc, "prune");
		goto out;
	}
	for (i = 0; i < p.nids; i += p.nbatch) {
		p.batch = (const char *const *)(p.ids + i);
		p.nbatch = p.nids - i < PURGE_BATCH ? p.nids - i : PURGE_BATCH;
		if ((rc = store_write(c->store, prune_purge_op, &p)) != 0) {
			ex = ctl_exit(rc, "prune");
			goto out;
		}
		devices += p.r.ndevices;
		enrollments += p.r.nenrollments;
		store_purge_report_free(&p.r);
		if (prog != NULL)
			prog->fn(prog->arg, "prune enrollments", i + p.nbatch,
			    p.nids);
	}
	if (prog != NULL && p.nids == 0)
		fputc('\n', stderr);
	printf("results\t%llu\ncommands\t%llu\ncommand_targets\t%llu\n"
	       "enrollments\t%llu\ndevices\t%llu\nenrollment_tokens\t%llu\n",
	    (unsigned long long)total.results,
	    (unsigned long long)total.commands,
	    (unsigned long long)total.targets, (unsigned long long)enrollments,
	    (unsigned long long)devices, (unsigned long long)p.tokens);
out:
	for (i = 0; i < p.nids; i++)
		free(p.ids[i]);
	free(p.ids);
	store_purge_report_free(&p.r);
	return ex;
}
