/*
 * picomdm-vpp - Apps and Books (VPP), the interim form: decode a content
 * token and read the v2 service (config, assets, assignments, users) as
 * JSON lines. Nothing is stored yet; see man/picomdm-vpp.8 and README.md
 * "Apps and Books".
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "picomdm/vpp.h"

static void
usage(void)
{
	fprintf(stderr,
	    "usage: picomdm-vpp token show FILE.vpptoken\n"
	    "       picomdm-vpp --token FILE.vpptoken [--url URL] [--ca FILE]\n"
	    "           [--rps N] [--max-wait SECONDS] config\n"
	    "       picomdm-vpp ... assets\n"
	    "       picomdm-vpp ... assignments|users [--since VERSIONID]\n");
	exit(2);
}

static int
print_line(json_t *x, void *arg)
{
	char *s = json_dumps(x, JSON_COMPACT | JSON_SORT_KEYS);

	(void)arg;
	if (s == NULL)
		return -1;
	puts(s);
	free(s);
	return 0;
}

static int
load(const char *path, struct vpp_token *t)
{
	char err[512];

	if (vpp_token_load(path, (int64_t)time(NULL), t, err,
	    sizeof err) != 0) {
		fprintf(stderr, "picomdm-vpp: %s\n", err);
		return -1;
	}
	return 0;
}

static void
warn_expiry(const struct vpp_token *t)
{
	long d = vpp_token_days_left(t, (int64_t)time(NULL));

	if (d < VPP_WARN_DAYS)
		fprintf(stderr, "picomdm-vpp: warning: the token of %s "
		    "expires in %ld day%s (%s)\n", t->org, d, d == 1 ? "" : "s",
		    t->exp_text);
}

static int
token_show(const char *path)
{
	struct vpp_token t;
	json_t          *o;

	if (load(path, &t) != 0)
		return 1;
	o = json_pack("{s:s, s:s?, s:s, s:I}", "org", t.org, "location",
	    t.location, "expires", t.exp_text, "days_left",
	    (json_int_t)vpp_token_days_left(&t, (int64_t)time(NULL)));
	print_line(o, NULL);
	json_decref(o);
	warn_expiry(&t);
	vpp_token_free(&t);
	return 0;
}

static int
fail(const struct vpp_error *e)
{
	fprintf(stderr, "picomdm-vpp: %s\n", e->message);
	return vpp_token_error(e->number) != NULL ? 3 : 1;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "token", required_argument, NULL, 't' },
		{ "url", required_argument, NULL, 'u' },
		{ "ca", required_argument, NULL, 'c' },
		{ "rps", required_argument, NULL, 'r' },
		{ "max-wait", required_argument, NULL, 'w' },
		{ "since", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct vpp_opts  o = { 0 };
	struct vpp_token t;
	struct vpp_error e = { 0 };
	struct vpp      *v;
	const char      *token = NULL, *since = NULL, *cmd;
	char            *end, *version = NULL;
	json_t          *j;
	int              c, rc = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 't': token = optarg; break;
		case 'u': o.config_url = optarg; break;
		case 'c': o.ca_file = optarg; break;
		case 's': since = optarg; break;
		case 'r':
			o.max_rps = strtod(optarg, &end);
			if (*end != '\0' || !(o.max_rps > 0 &&
			    o.max_rps <= 1000)) {
				fprintf(stderr, "picomdm-vpp: --rps %s: not a "
				    "number in (0, 1000]\n", optarg);
				return 2;
			}
			break;
		case 'w':
			o.max_wait_s = strtol(optarg, &end, 10);
			if (*end != '\0' || o.max_wait_s < 1 ||
			    o.max_wait_s > 3600) {
				fprintf(stderr, "picomdm-vpp: --max-wait %s: "
				    "not 1..3600 seconds\n", optarg);
				return 2;
			}
			break;
		default: usage();
		}
	}
	if (optind >= argc)
		usage();
	cmd = argv[optind];
	if (strcmp(cmd, "token") == 0) {
		if (argc - optind != 3 || strcmp(argv[optind + 1], "show") != 0)
			usage();
		return token_show(argv[optind + 2]);
	}
	if (argc - optind != 1 || token == NULL)
		usage();
	if (since != NULL && strcmp(cmd, "assignments") != 0 &&
	    strcmp(cmd, "users") != 0) {
		fprintf(stderr, "picomdm-vpp: --since is for assignments and "
		    "users only\n");
		return 2;
	}
	if (strcmp(cmd, "config") != 0 && strcmp(cmd, "assets") != 0 &&
	    strcmp(cmd, "assignments") != 0 && strcmp(cmd, "users") != 0)
		usage();
	if (load(token, &t) != 0)
		return 1;
	warn_expiry(&t);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	v = vpp_new(&t, &o);
	vpp_token_free(&t);
	if (v == NULL) {
		fprintf(stderr, "picomdm-vpp: out of memory\n");
		return 1;
	}
	if (strcmp(cmd, "config") == 0) {
		j = vpp_get(v, "clientConfig", NULL, &e);
		if (j == NULL)
			rc = fail(&e);
		else {
			print_line(j, NULL);
			json_decref(j);
		}
	} else {
		const char *key = strcmp(cmd, "assets") == 0 ? "getAssets" :
		    strcmp(cmd, "users") == 0 ? "getUsers" : "getAssignments";

		if (vpp_list(v, key, cmd, since, print_line, NULL, &version,
		    &e) != 0)
			rc = fail(&e);
		else {
			if (version != NULL)
				fprintf(stderr, "picomdm-vpp: versionId %s\n",
				    version);
			free(version);
		}
	}
	vpp_free(v);
	curl_global_cleanup();
	return rc;
}
