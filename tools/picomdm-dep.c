/*
 * picomdm-dep - Apple's Automated Device Enrollment service (Apple
 * Business/School Manager) for picomdm: make the certificate an
 * administrator uploads, decrypt the server token Apple gives back, and
 * talk to the ADE service with it (see picomdm-dep(8)).
 *
 * Interim form: the store does not keep ADE tokens or device records
 * yet, so the decrypted OAuth credentials live in a token file (mode
 * 0600, checked) and the sync cursor in a cursor file; device records
 * are printed as JSON lines, not stored.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "dep_tool.h"
#include "extern.h"
#include "picomdm/dep.h"
#include "picomdm/log.h"
#include "picomdm/util.h"


#define FILE_MAX   (1024 * 1024)
#define CURSOR_MAX 4096
#define WARN_DAYS  30

static void
usage(void)
{
	fprintf(stderr,
	    "usage: picomdm-dep [-v] [--config FILE] [--url URL] [--ca FILE] "
	    "[--user-agent UA]\n"
	    "                   [--protocol-version N] [--max-wait SECS] "
	    "COMMAND ...\n"
	    "  on the store:\n"
	    "       picomdm-dep --db DIR token new NAME [-o CERT.pem] "
	    "[--days N]\n"
	    "       picomdm-dep --db DIR token import NAME FILE.p7m\n"
	    "       picomdm-dep --db DIR token list\n"
	    "       picomdm-dep --db DIR token remove NAME [--purge]\n"
	    "       picomdm-dep --db DIR token default NAME UUID|none\n"
	    "       picomdm-dep --db DIR sync [NAME] [--once | --daemon "
	    "[--interval SECS]]\n"
	    "                   [--auto-assign] [--limit N] [--quiet]\n"
	    "       picomdm-dep --db DIR profile define TOKEN FILE.json "
	    "[--enroll-url URL]\n"
	    "                   [--default]\n"
	    "       picomdm-dep --db DIR profile show TOKEN UUID\n"
	    "       picomdm-dep --db DIR profile assign TOKEN UUID SERIAL ...\n"
	    "       picomdm-dep --db DIR profile remove TOKEN SERIAL ...\n"
	    "       picomdm-dep --db DIR details TOKEN SERIAL ...\n"
	    "       picomdm-dep --db DIR prune [--days N]\n"
	    "  interim, on files:\n"
	    "       picomdm-dep token new NAME -o CERT.pem --key-out KEY.pem "
	    "[--days N]\n"
	    "       picomdm-dep token decrypt FILE.p7m --key KEY.pem "
	    "[--cert CERT.pem]\n"
	    "                   [-o TOKEN.json]\n"
	    "       picomdm-dep account --token TOKEN.json\n"
	    "       picomdm-dep devices --token TOKEN.json [--cursor-file FILE] "
	    "[--limit N]\n"
	    "       picomdm-dep details --token TOKEN.json SERIAL ...\n"
	    "       picomdm-dep profile define --token TOKEN.json FILE.json\n"
	    "       picomdm-dep profile show --token TOKEN.json UUID\n"
	    "       picomdm-dep profile assign --token TOKEN.json UUID "
	    "SERIAL ...\n");
	exit(EX_USAGE);
}

/* Read a whole file (at most FILE_MAX bytes) into a NUL-terminated
 * buffer; NULL with a message on error. Caller frees (freezero). */
char *
dep_file_read(const char *path, size_t *len)
{
	struct buf b = {.max = FILE_MAX};
	char	   chunk[8192];
	ssize_t	   n;
	int	   fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "picomdm-dep: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(&b, chunk, (size_t)n) != 0) {
			fprintf(stderr, "picomdm-dep: %s: too large\n", path);
			goto fail;
		}
	if (n < 0) {
		fprintf(stderr, "picomdm-dep: %s: %s\n", path, strerror(errno));
		goto fail;
	}
	if (buf_append(&b, "", 1) != 0)
		goto fail;
	close(fd);
	memset(chunk, 0, sizeof(chunk));
	*len = b.len - 1;
	return (char *)b.p;
fail:
	close(fd);
	memset(chunk, 0, sizeof(chunk));
	if (b.p != NULL)
		freezero(b.p, b.cap);
	return NULL;
}

/*
 * Write data to path, created with mode. excl: refuse an existing file;
 * otherwise replace it atomically (temporary file + rename). 0 or -1
 * with a message.
 */
int
dep_file_write(
    const char *path, const void *data, size_t len, mode_t mode, int excl)
{
	char	    tmp[4096];
	const char *target = path;
	int	    fd, rc = -1;

	if (!excl) {
		if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >=
		    (int)sizeof(tmp)) {
			fprintf(
			    stderr, "picomdm-dep: %s: name too long\n", path);
			return -1;
		}
		target = tmp;
		(void)unlink(tmp);
	}
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1) {
		fprintf(
		    stderr, "picomdm-dep: %s: %s\n", target, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1 || write(fd, data, len) != (ssize_t)len ||
	    fsync(fd) == -1) {
		fprintf(
		    stderr, "picomdm-dep: %s: %s\n", target, strerror(errno));
		close(fd);
		(void)unlink(target);
		return -1;
	}
	if (close(fd) == -1) {
		fprintf(
		    stderr, "picomdm-dep: %s: %s\n", target, strerror(errno));
		(void)unlink(target);
		return -1;
	}
	if (!excl && rename(tmp, path) == -1) {
		fprintf(stderr, "picomdm-dep: %s: %s\n", path, strerror(errno));
		(void)unlink(tmp);
		return -1;
	}
	rc = 0;
	return rc;
}

static void
wipe_free(char *p, size_t n)
{
	if (p != NULL)
		freezero(p, n);
}

static int
days_left(uint64_t expiry_us)
{
	uint64_t now = time_now_us();

	if (expiry_us <= now)
		return -1;
	return (int)((expiry_us - now) / (86400ULL * 1000000));
}

static int
cmd_token_new(struct dep_tool *o, int argc, char *argv[])
{
	char	       *cert = NULL, *key = NULL;
	struct buf	both = {0};
	enum dep_status s;
	int		rc = EX_FAIL;

	if (argc != 1 || o->out == NULL || o->key_out == NULL)
		usage();
	if ((s = dep_token_new(argv[0], o->days, &cert, &key)) != DEP_OK) {
		fprintf(stderr, "picomdm-dep: token new %s: %s\n", argv[0],
		    s == DEP_ERR_KEY ? "NAME must be 1 to 64 printable "
				       "characters and --days 1 to 3650"
				     : dep_strerror(s));
		return s == DEP_ERR_KEY ? EX_USAGE : EX_FAIL;
	}
	/* The key file keeps the certificate too: decryption needs both. */
	if (buf_append(&both, key, strlen(key)) != 0 ||
	    buf_append(&both, cert, strlen(cert)) != 0)
		goto out;
	if (dep_file_write(o->key_out, both.p, both.len, 0600, 1) != 0)
		goto out;
	if (dep_file_write(o->out, cert, strlen(cert), 0644, 1) != 0) {
		(void)unlink(o->key_out);
		goto out;
	}
	printf("certificate %s (upload it to Apple Business Manager)\n"
	       "private key %s (keep it; it decrypts the server token)\n",
	    o->out, o->key_out);
	rc = 0;
out:
	if (both.p != NULL)
		freezero(both.p, both.cap);
	wipe_free(key, key ? strlen(key) : 0);
	free(cert);
	return rc;
}

/* Load a token file: regular, owned by us, mode without group/other
 * bits; unexpired. 0 or an exit status after a message. */
static int
token_load(const char *path, struct dep_oauth *oa)
{
	struct stat	st;
	char	       *s;
	size_t		n;
	enum dep_status ds;
	char		when[32];

	if (path == NULL) {
		fprintf(
		    stderr, "picomdm-dep: --token TOKEN.json is required\n");
		return EX_USAGE;
	}
	if (stat(path, &st) == -1) {
		fprintf(stderr, "picomdm-dep: %s: %s\n", path, strerror(errno));
		return EX_FAIL;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0 ||
	    st.st_uid != geteuid()) {
		fprintf(stderr,
		    "picomdm-dep: %s: a token file must be a regular file of "
		    "this user with mode 0600 (it is %04o)\n",
		    path, (unsigned)(st.st_mode & 07777));
		return EX_FAIL;
	}
	if ((s = dep_file_read(path, &n)) == NULL)
		return EX_FAIL;
	ds = dep_token_parse_json(s, n, oa);
	freezero(s, n);
	if (ds != DEP_OK) {
		fprintf(stderr, "picomdm-dep: %s: not a decrypted token file\n",
		    path);
		return EX_FAIL;
	}
	if (days_left(oa->expiry_us) < 0) {
		time_format(oa->expiry_us, when, sizeof(when));
		fprintf(stderr,
		    "picomdm-dep: %s: the token expired on %s; "
		    "download a new one\n",
		    path, when);
		dep_oauth_clear(oa);
		return EX_FAIL;
	}
	return 0;
}

static void
print_expiry(uint64_t expiry_us)
{
	char when[32];
	int  d = days_left(expiry_us);

	time_format(expiry_us, when, sizeof(when));
	printf("expiry %s\n", when);
	if (d >= 0 && d < WARN_DAYS)
		fprintf(stderr,
		    "picomdm-dep: warning: the token expires in "
		    "%d days; renew it in Apple Business Manager\n",
		    d);
}

static int
cmd_token_decrypt(struct dep_tool *o, int argc, char *argv[])
{
	char		*p7m = NULL, *key = NULL, *cert = NULL, *json = NULL;
	size_t		 pl = 0, kl = 0, cl = 0;
	struct dep_oauth oa = {0};
	enum dep_status	 s;
	char		 when[32];
	int		 rc = EX_FAIL;

	if (argc != 1 || o->key == NULL)
		usage();
	if ((p7m = dep_file_read(argv[0], &pl)) == NULL ||
	    (key = dep_file_read(o->key, &kl)) == NULL)
		goto out;
	if (o->cert != NULL && (cert = dep_file_read(o->cert, &cl)) == NULL)
		goto out;
	s = dep_token_decrypt(
	    p7m, pl, key, cert != NULL ? cert : key, time_now_us(), &oa);
	if (s == DEP_ERR_TOKEN_EXPIRED) {
		time_format(oa.expiry_us, when, sizeof(when));
		fprintf(stderr, "picomdm-dep: %s: the token expired on %s\n",
		    argv[0], when);
		goto out;
	}
	if (s != DEP_OK) {
		fprintf(stderr, "picomdm-dep: %s: %s\n", argv[0],
		    s == DEP_ERR_KEY ? "the key file holds no key with its "
				       "certificate (give --cert)"
				     : dep_strerror(s));
		goto out;
	}
	if (o->out != NULL) {
		if ((json = dep_token_to_json(&oa)) == NULL ||
		    dep_file_write(o->out, json, strlen(json), 0600, 1) != 0)
			goto out;
		printf("token %s\n", o->out);
	}
	print_expiry(oa.expiry_us);
	rc = 0;
out:
	dep_oauth_clear(&oa);
	wipe_free(json, json ? strlen(json) : 0);
	wipe_free(key, kl);
	free(p7m);
	free(cert);
	return rc;
}

/* Exit status for a failed call, after a message naming it. */
int
dep_call_failed(struct dep_client *c, const char *what, enum dep_status s)
{
	long	    st;
	const char *code = dep_client_error(c, &st);

	if (s == DEP_ERR_REQUEST || s == DEP_ERR_PROTOCOL)
		fprintf(stderr, "picomdm-dep: %s: %s (http %ld%s%s)\n", what,
		    dep_strerror(s), st, code[0] ? " " : "", code);
	else
		fprintf(stderr, "picomdm-dep: %s: %s\n", what, dep_strerror(s));
	if (s == DEP_ERR_TERMS || s == DEP_ERR_DENIED || s == DEP_ERR_AUTH)
		return EX_APPLE;
	return EX_FAIL;
}

static int
print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	if (s == NULL)
		return -1;
	printf("%s\n", s);
	free(s);
	return 0;
}

static int
cmd_account(struct dep_client *c, int argc)
{
	json_t	       *j;
	enum dep_status s;

	if (argc != 0)
		usage();
	if ((s = dep_account(c, &j)) != DEP_OK)
		return dep_call_failed(c, "account", s);
	print_json(j);
	json_decref(j);
	return 0;
}

static char *
cursor_load(const char *path)
{
	char  *s;
	size_t n;

	if (path == NULL || access(path, F_OK) == -1)
		return NULL;
	if ((s = dep_file_read(path, &n)) == NULL)
		exit(EX_FAIL);
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	if (n == 0 || n > CURSOR_MAX) {
		fprintf(stderr, "picomdm-dep: %s: not a cursor\n", path);
		exit(EX_FAIL);
	}
	return s;
}

/*
 * Fetch (no cursor, or a cursor from an unfinished fetch) until
 * more_to_follow is false, then sync; print every device as a JSON line
 * and store the cursor after every page. EXHAUSTED_CURSOR switches to
 * sync; EXPIRED_CURSOR and INVALID_CURSOR start a full fetch again
 * (once).
 */
static int
cmd_devices(struct dep_tool *o, struct dep_client *c, int argc)
{
	char	       *cursor;
	json_t	       *r, *d;
	enum dep_status s;
	size_t		i, fetched = 0, synced = 0;
	int		sync = 0, restarts = 0, more;
	const char     *nc;

	if (argc != 0)
		usage();
	cursor = cursor_load(o->cursor_file);
	for (;;) {
		s = sync ? dep_devices_sync(c, cursor, o->limit, &r)
			 : dep_devices_fetch(c, cursor, o->limit, &r);
		if (s == DEP_ERR_CURSOR_EXHAUSTED && !sync) {
			log_info("fetch complete: syncing");
			sync = 1;
			continue;
		}
		if ((s == DEP_ERR_CURSOR_EXPIRED ||
			s == DEP_ERR_CURSOR_INVALID) &&
		    cursor != NULL && restarts++ == 0) {
			fprintf(stderr,
			    "picomdm-dep: %s: fetching every "
			    "device again\n",
			    dep_strerror(s));
			free(cursor);
			cursor = NULL;
			sync = 0;
			continue;
		}
		if (s != DEP_OK) {
			free(cursor);
			return dep_call_failed(c, sync ? "sync" : "fetch", s);
		}
		d = json_object_get(r, "devices");
		for (i = 0; i < json_array_size(d); i++) {
			if (!json_is_object(json_array_get(d, i)) ||
			    !json_is_string(json_object_get(
				json_array_get(d, i), "serial_number"))) {
				log_warn("device entry without serial_number "
					 "skipped");
				continue;
			}
			print_json(json_array_get(d, i));
			if (sync)
				synced++;
			else
				fetched++;
		}
		if (fflush(stdout) != 0) {
			perror("picomdm-dep: stdout");
			json_decref(r);
			free(cursor);
			return EX_FAIL;
		}
		nc = json_string_value(json_object_get(r, "cursor"));
		free(cursor);
		if ((cursor = strdup(nc)) == NULL) {
			json_decref(r);
			return EX_FAIL;
		}
		if (o->cursor_file != NULL &&
		    dep_file_write(
			o->cursor_file, cursor, strlen(cursor), 0600, 0) != 0) {
			json_decref(r);
			free(cursor);
			return EX_FAIL;
		}
		more = json_is_true(json_object_get(r, "more_to_follow"));
		json_decref(r);
		if (more)
			continue;
		if (sync)
			break;
		sync = 1;
	}
	free(cursor);
	fprintf(stderr,
	    "picomdm-dep: %zu devices fetched, %zu changes "
	    "synced, %u sessions\n",
	    fetched, synced, dep_client_sessions(c));
	return 0;
}

static int
cmd_details(struct dep_client *c, int argc, char *argv[])
{
	json_t	       *r;
	enum dep_status s;

	if (argc < 1 || argc > 1000)
		usage();
	if ((s = dep_devices_details(
		 c, (const char *const *)argv, (size_t)argc, &r)) != DEP_OK)
		return dep_call_failed(c, "details", s);
	print_json(r);
	json_decref(r);
	return 0;
}

static int
cmd_profile(struct dep_client *c, int argc, char *argv[])
{
	json_t	       *r = NULL, *p, *url;
	json_error_t	e;
	enum dep_status s;
	int		i, n, rc = 0;

	if (argc < 2)
		usage();
	if (strcmp(argv[0], "define") == 0) {
		if (argc != 2)
			usage();
		if ((p = json_load_file(argv[1], JSON_REJECT_DUPLICATES, &e)) ==
		    NULL) {
			fprintf(stderr, "picomdm-dep: %s:%d: %s\n", argv[1],
			    e.line, e.text);
			return EX_FAIL;
		}
		url = json_object_get(p, "url");
		if (!json_is_object(p) ||
		    !json_is_string(json_object_get(p, "profile_name")) ||
		    !json_is_string(url)) {
			fprintf(stderr,
			    "picomdm-dep: %s: a profile needs "
			    "profile_name and url\n",
			    argv[1]);
			json_decref(p);
			return EX_FAIL;
		}
		s = dep_profile_define(c, p, &r);
		json_decref(p);
		if (s != DEP_OK)
			return dep_call_failed(c, "profile define", s);
		print_json(r);
	} else if (strcmp(argv[0], "show") == 0) {
		if (argc != 2)
			usage();
		if ((s = dep_profile_get(c, argv[1], &r)) != DEP_OK)
			return dep_call_failed(c, "profile show", s);
		print_json(r);
	} else if (strcmp(argv[0], "assign") == 0) {
		if (argc < 3)
			usage();
		/* Apple takes at most 1,000 serials per call. */
		for (i = 2; i < argc; i += n) {
			n = argc - i > 1000 ? 1000 : argc - i;
			s = dep_profile_assign(c, argv[1],
			    (const char *const *)argv + i, (size_t)n, &r);
			if (s != DEP_OK)
				return dep_call_failed(c, "profile assign", s);
			print_json(r);
			json_decref(r);
			r = NULL;
		}
	} else
		usage();
	json_decref(r);
	return rc;
}

/*
 * --config FILE: picomdm.conf(5)'s db, dep_url, dep_sync_interval and
 * dep_enroll_url (else https://HOST/mdm/enroll from server_url) for what
 * the command line does not give. 0, or -1 after a message. The strings
 * live until exit.
 */
static int
apply_config(struct dep_tool *o, const char *path)
{
	static struct config cfg;
	static char	     enroll[2048];
	const char	    *su, *host;
	size_t		     hl;

	config_defaults(&cfg);
	if (config_load(&cfg, path) == -1)
		return -1;
	if (o->db == NULL)
		o->db = cfg.db;
	if (o->cfg.url == NULL)
		o->cfg.url = cfg.dep_url;
	if (o->interval == 0)
		o->interval = cfg.dep_sync_interval;
	if (o->enroll_url == NULL)
		o->enroll_url = cfg.dep_enroll_url;
	su = cfg.enroll.server_url;
	if (o->enroll_url == NULL && su != NULL &&
	    strncmp(su, "https://", 8) == 0) {
		host = su + 8;
		hl = strcspn(host, "/?#");
		if (hl > 0 && snprintf(enroll, sizeof(enroll),
				  "https://%.*s/mdm/enroll", (int)hl,
				  host) < (int)sizeof(enroll))
			o->enroll_url = enroll;
	}
	return 0;
}

/* The commands on the store (dep_store.c). */
static int
db_command(struct dep_tool *o, int argc, char *argv[])
{
	int rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "picomdm-dep: libcurl initialisation failed\n");
		return EX_FAIL;
	}
	rc = -1;
	if (strcmp(argv[0], "token") == 0 && argc >= 2 && !o->daemon) {
		if (strcmp(argv[1], "new") == 0 && !o->purge)
			rc = dep_db_token_new(o, argc - 2, argv + 2);
		else if (strcmp(argv[1], "import") == 0 && !o->purge)
			rc = dep_db_token_import(o, argc - 2, argv + 2);
		else if (strcmp(argv[1], "list") == 0 && !o->purge)
			rc = dep_db_token_list(o, argc - 2, argv + 2);
		else if (strcmp(argv[1], "remove") == 0)
			rc = dep_db_token_remove(o, argc - 2, argv + 2);
		else if (strcmp(argv[1], "default") == 0 && !o->purge)
			rc = dep_db_token_default(o, argc - 2, argv + 2);
	} else if (strcmp(argv[0], "sync") == 0 && !o->purge)
		rc = dep_db_sync(o, argc - 1, argv + 1);
	else if (strcmp(argv[0], "profile") == 0 && !o->purge && !o->daemon)
		rc = dep_db_profile(o, argc - 1, argv + 1);
	else if (strcmp(argv[0], "details") == 0 && !o->purge && !o->daemon)
		rc = dep_db_details(o, argc - 1, argv + 1);
	else if (strcmp(argv[0], "prune") == 0 && !o->purge && !o->daemon)
		rc = dep_db_prune(o, argc - 1, argv + 1);
	curl_global_cleanup();
	if (rc == -1)
		usage();
	return rc;
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
	    {"url", required_argument, NULL, 'U'},
	    {"ca", required_argument, NULL, 'C'},
	    {"user-agent", required_argument, NULL, 'A'},
	    {"protocol-version", required_argument, NULL, 'P'},
	    {"max-wait", required_argument, NULL, 'W'},
	    {"key-out", required_argument, NULL, 'K'},
	    {"key", required_argument, NULL, 'k'},
	    {"cert", required_argument, NULL, 'c'},
	    {"token", required_argument, NULL, 't'},
	    {"cursor-file", required_argument, NULL, 'F'},
	    {"limit", required_argument, NULL, 'l'},
	    {"days", required_argument, NULL, 'D'},
	    {"db", required_argument, NULL, 'd'},
	    {"purge", no_argument, NULL, 'p'},
	    {"once", no_argument, NULL, '1'},
	    {"daemon", no_argument, NULL, 'B'},
	    {"interval", required_argument, NULL, 'I'},
	    {"auto-assign", no_argument, NULL, 'a'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"enroll-url", required_argument, NULL, 'E'},
	    {"default", no_argument, NULL, 'f'},
	    {"config", required_argument, NULL, 'g'},
	    {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	struct dep_tool	   o;
	struct dep_oauth   oa = {0};
	struct dep_client *c;
	long long	   v;
	const char	  *config_path = NULL;
	int		   days_given = 0;
	int		   ch, rc, once = 0;
	const char	  *cmd;

	memset(&o, 0, sizeof(o));
	o.days = 365;
	log_set_level(LOG_WARN);
	while ((ch = getopt_long(argc, argv, "o:v", lo, NULL)) != -1) {
		switch (ch) {
		case 'U':
			o.cfg.url = optarg;
			break;
		case 'C':
			o.cfg.ca_file = optarg;
			break;
		case 'A':
			if (optarg[0] == '\0' || strpbrk(optarg, "\r\n"))
				usage();
			o.cfg.user_agent = optarg;
			break;
		case 'P':
			if (num_parse(optarg, 1, 99, &v) == -1)
				usage();
			o.cfg.protocol_version = optarg;
			break;
		case 'W':
			if (num_parse(optarg, 1, 3600, &v) == -1)
				usage();
			o.cfg.max_wait = (unsigned)v;
			break;
		case 'l':
			if (num_parse(optarg, 1, 1000, &v) == -1)
				usage();
			o.limit = (unsigned)v;
			break;
		case 'D':
			/* token new: validity (1 to 3650); prune: age (0 up) */
			if (num_parse(optarg, 0, 36500, &v) == -1)
				usage();
			o.days = (int)v;
			o.prune_days = (int)v;
			days_given = 1;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'K':
			o.key_out = optarg;
			break;
		case 'k':
			o.key = optarg;
			break;
		case 'c':
			o.cert = optarg;
			break;
		case 't':
			o.token = optarg;
			break;
		case 'F':
			o.cursor_file = optarg;
			break;
		case 'v':
			log_set_level(LOG_INFO);
			break;
		case 'd':
			o.db = optarg;
			break;
		case 'p':
			o.purge = 1;
			break;
		case '1':
			once = 1;
			break;
		case 'B':
			o.daemon = 1;
			break;
		case 'I':
			if (num_parse(optarg, 1, 86400 * 7, &v) == -1)
				usage();
			o.interval = (unsigned)v;
			break;
		case 'a':
			o.auto_assign = 1;
			break;
		case 'q':
			o.quiet = 1;
			break;
		case 'E':
			if (strncmp(optarg, "https://", 8) != 0)
				usage();
			o.enroll_url = optarg;
			break;
		case 'f':
			o.make_default = 1;
			break;
		case 'g':
			config_path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	cmd = argv[0];
	if (once && o.daemon)
		usage();
	if (config_path != NULL && apply_config(&o, config_path) != 0)
		return EX_USAGE;
	if (!days_given)
		o.prune_days = 90;
	else if (strcmp(cmd, "prune") != 0 && (o.days < 1 || o.days > 3650))
		usage();
	if (o.interval == 0)
		o.interval = 3600;
	if (o.db != NULL)
		return db_command(&o, argc, argv);
	if (o.purge || o.daemon || once || o.auto_assign ||
	    o.enroll_url != NULL || o.make_default)
		usage();
	if (strcmp(cmd, "token") == 0) {
		if (argc < 2)
			usage();
		if (strcmp(argv[1], "new") == 0)
			return cmd_token_new(&o, argc - 2, argv + 2);
		if (strcmp(argv[1], "decrypt") == 0)
			return cmd_token_decrypt(&o, argc - 2, argv + 2);
		usage();
	}
	if (strcmp(cmd, "account") != 0 && strcmp(cmd, "devices") != 0 &&
	    strcmp(cmd, "details") != 0 && strcmp(cmd, "profile") != 0)
		usage();
	if ((rc = token_load(o.token, &oa)) != 0)
		return rc;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		dep_oauth_clear(&oa);
		fprintf(stderr, "picomdm-dep: libcurl initialisation failed\n");
		return EX_FAIL;
	}
	c = dep_client_new(&o.cfg, &oa);
	dep_oauth_clear(&oa);
	if (c == NULL) {
		fprintf(stderr, "picomdm-dep: bad --url or out of memory\n");
		return EX_USAGE;
	}
	if (strcmp(cmd, "account") == 0)
		rc = cmd_account(c, argc - 1);
	else if (strcmp(cmd, "devices") == 0)
		rc = cmd_devices(&o, c, argc - 1);
	else if (strcmp(cmd, "details") == 0)
		rc = cmd_details(c, argc - 1, argv + 1);
	else
		rc = cmd_profile(c, argc - 1, argv + 1);
	dep_client_free(c);
	curl_global_cleanup();
	return rc;
}
