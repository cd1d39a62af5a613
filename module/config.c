/*
 * config.c - picomdm.conf: "key = value" lines, '#' comments (on a line of
 * their own, or after a value following white space), blank lines.
 * Every key is also a long command-line option of picomdm-fcgi (the same
 * name with '_' as '-'); the command line wins over the file.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"
#include "picomdm/log.h"
#include "picomdm/notify.h"
#include "picomdm/util.h"
#include "picomdm/webhook.h"

/*
 * The default worker count: four per online CPU, at least 8 and at most
 * 64. More threads than that only take turns on the same cores: on the
 * 2-core bench machine 16 workers cost 54 us of responder CPU per TLS
 * TokenUpdate where 8 cost 45, and 8 answered 14% more (BENCHMARKS.md,
 * worker table). At least 8, because an operator API request holds its
 * worker until it is answered. scripts/bench computes the same figure.
 */
int
config_default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 2) /* also -1: not known */
		n = 2;
	if (n > 16)
		n = 16;
	return (int)n * 4;
}

void
config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	c->workers = config_default_workers();
	c->worker_nice = 5;
	c->max_inflight = 256;
	c->commit_delay = 200;
	c->checkin_max = 64 * 1024;
	c->connect_max = 4 * 1024 * 1024;
	c->api_max = 8 * 1024 * 1024;
	c->map_size = (size_t)64 << 20;
	c->map_max = (size_t)16 << 30;
	c->retention_days = 90;
	c->socket_mode = 0660;
	enroll_conf_defaults(&c->enroll);
	c->health_stall = 30;
	webhook_conf_defaults(&c->webhook);
	notify_conf_defaults(&c->notify);
}

void
config_free(struct config *c)
{
	free(c->db);
	free(c->socket);
	free(c->device_ca);
	free(c->api_key_file);
	free(c->log_level);
	free(c->user_auth);
	free(c->digest_challenge);
	enroll_conf_free(&c->enroll);
	free(c->socket_owner);
	free(c->socket_group);
	free(c->dep_url);
	free(c->dep_enroll_url);
	free(c->vpp_url);
	webhook_conf_free(&c->webhook);
	notify_conf_free(&c->notify);
	memset(c, 0, sizeof(*c));
}

/* A size: digits with an optional k, m or g suffix (powers of 1024). */
static int
size_parse(const char *s, size_t *out)
{
	char      num[32];
	size_t    n = strlen(s), mul = 1;
	long long v;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'k': case 'K':
		mul = 1024;
		break;
	case 'm': case 'M':
		mul = 1024 * 1024;
		break;
	case 'g': case 'G':
		mul = (size_t)1024 * 1024 * 1024;
		break;
	default:
		break;
	}
	if (mul != 1)
		num[n - 1] = '\0';
	if (num_parse(num, 1, (long long)(SIZE_MAX / 2 / mul), &v) == -1)
		return -1;
	*out = (size_t)v * mul;
	return 0;
}

static int
str_set(char **dst, const char *v)
{
	char *s;

	if ((s = strdup(v)) == NULL)
		return -1;
	free(*dst);
	*dst = s;
	return 0;
}

/* See extern.h. */
int
config_bool(const char *v, int *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 ||
	    strcmp(v, "1") == 0 || strcmp(v, "on") == 0)
		*out = 1;
	else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 ||
	    strcmp(v, "0") == 0 || strcmp(v, "off") == 0)
		*out = 0;
	else
		return -1;
	return 0;
}

/* "config: FILE:LINE: " while a file is read, else "config: ". */
static char where[1100] = "config: ";

/* Every key, with what it takes (for error messages). */
static const struct {
	const char *key;
	const char *valid;
} keys[] = {
	{ "db", "a directory" },
	{ "socket", "a unix socket path, or HOST:PORT" },
	{ "device_ca", "a PEM file" },
	{ "api_key_file", "a file" },
	{ "log_level", "error, warn, info or debug" },
	{ "workers", "1 to 256" },
	{ "worker_nice", "0 to 19" },
	{ "max_inflight", "1 to 65536" },
	{ "commit_delay", "microseconds, 0 to 100000" },
	{ "checkin_max", "a size up to 2g, e.g. 64k" },
	{ "connect_max", "a size up to 2g, e.g. 4m" },
	{ "api_max", "a size up to 2g, e.g. 8m" },
	{ "map_size", "a size with k, m or g, e.g. 64m" },
	{ "map_max", "a size with k, m or g, e.g. 16g" },
	{ "nosync", "yes or no" },
	{ "allow_retro", "yes or no" },
	{ "user_authenticate", "decline or challenge" },
	{ "digest_challenge", "a string" },
	{ "retention_days", "0 to 36500" },
	{ "socket_mode", "octal, 0 to 0777, e.g. 0660" },
	{ "socket_owner", "a user name" },
	{ "socket_group", "a group name" },
	{ "metrics_public", "yes or no" },
	{ "health_stall", "seconds, 1 or more" },
	{ "enroll_access", "off or open" },
	{ "server_url", "a URL" },
	{ "checkin_url", "a URL" },
	{ "push_topic", "com.apple.mgmt.…" },
	{ "push_cert", "a PEM file" },
	{ "scep_url", "a URL" },
	{ "scep_challenge", "a string" },
	{ "scep_name", "a string" },
	{ "scep_organization", "a string" },
	{ "scep_key_size", "1024, 2048 or 4096" },
	{ "scep_key_usage", "1, 4 or 5" },
	{ "profile_identifier", "a reverse-DNS string" },
	{ "profile_organization", "a string" },
	{ "profile_display_name", "a string" },
	{ "profile_sign_cert", "a PEM file" },
	{ "profile_sign_key", "a PEM file" },
	{ "machineinfo_ca", "a PEM file" },
	{ "sign_message", "yes or no" },
	{ "check_out_when_removed", "yes or no" },
	{ "access_rights", "1 to 8191" },
	{ "dep_url", "an https URL" },
	{ "dep_sync_interval", "seconds, 60 to 604800" },
	{ "dep_enroll_url", "an https URL" },
	{ "vpp_url", "an https URL" },
	{ "webhook_url", "an http:// or https:// URL" },
	{ "webhook_secret", "a string of 1 to 4096 bytes" },
	{ "webhook_secret_file", "a readable file of 1 to 4096 bytes" },
	{ "webhook_max_events", "1 to 1000000000" },
	{ "webhook_timeout", "seconds, 1 to 3600" },
	{ "webhook_retry_max", "seconds, 1 to 86400" },
	{ "webhook_concurrency", "1 to 64" },
	/* picomdm-notify's (notify_conf.c) */
	{ "apns_url", "an https:// URL" },
	{ "apns_ca", "a PEM file" },
	{ "apns_expiration", "seconds, 0 to 31536000" },
	{ "notify_poll_ms", "milliseconds, 10 to 3600000" },
	{ "push_max_attempts", "1 to 100" },
	{ "push_backoff_ms", "milliseconds, 1 to 3600000" },
	{ "push_backoff_max_ms", "milliseconds, 1 to 86400000" },
	{ "push_topic_retry", "seconds, 1 to 86400" },
	{ "repush_interval", "seconds, 0 (off) to 2592000" },
};

static const char *
config_valid(const char *k)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].key, k) == 0)
			return keys[i].valid;
	return "?";
}

/* Levenshtein distance of two short strings (64 bytes at most). */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, prev, cur, tmp;
	size_t row[65];

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			cur = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < cur)
				cur = row[j] + 1;
			if (row[j - 1] + 1 < cur)
				cur = row[j - 1] + 1;
			tmp = row[j];
			row[j] = cur;
			prev = tmp;
		}
	}
	return row[lb];
}

/* The known key nearest to k, when it is near enough to be a typo. */
static const char *
config_nearest(const char *k)
{
	size_t i, d, best = SIZE_MAX;
	const char *near = NULL;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		d = edit_distance(k, keys[i].key);
		if (d < best) {
			best = d;
			near = keys[i].key;
		}
	}
	return best <= 1 + strlen(k) / 4 ? near : NULL;
}

/*
 * Set one key. Returns 0, or -1 (logged) for an unknown key or a value out
 * of range. Keys use '_' or '-' interchangeably.
 */
int
config_set(struct config *c, const char *key, const char *val)
{
	char      k[64];
	size_t    i;
	long long n;
	int       rc = 0;
	const char *near;

	if (strlcpy(k, key, sizeof(k)) >= sizeof(k))
		goto bad_key;
	for (i = 0; k[i] != '\0'; i++)
		if (k[i] == '-')
			k[i] = '_';
	if (strcmp(k, "db") == 0)
		rc = str_set(&c->db, val);
	else if (strcmp(k, "socket") == 0)
		rc = str_set(&c->socket, val);
	else if (strcmp(k, "device_ca") == 0)
		rc = str_set(&c->device_ca, val);
	else if (strcmp(k, "api_key_file") == 0)
		rc = str_set(&c->api_key_file, val);
	else if (strcmp(k, "log_level") == 0) {
		if (log_level_parse(val) < 0)
			goto bad_val;
		rc = str_set(&c->log_level, val);
	} else if (strcmp(k, "workers") == 0) {
		if (num_parse(val, 1, 256, &n) == -1)
			goto bad_val;
		c->workers = (int)n;
	} else if (strcmp(k, "worker_nice") == 0) {
		if (num_parse(val, 0, 19, &n) == -1)
			goto bad_val;
		c->worker_nice = (int)n;
	} else if (strcmp(k, "max_inflight") == 0) {
		if (num_parse(val, 1, 65536, &n) == -1)
			goto bad_val;
		c->max_inflight = (int)n;
	} else if (strcmp(k, "commit_delay") == 0) {
		if (num_parse(val, 0, 100000, &n) == -1)
			goto bad_val;
		c->commit_delay = (unsigned)n;
	} else if (strcmp(k, "checkin_max") == 0) {
		if (size_parse(val, &c->checkin_max) == -1 ||
		    c->checkin_max > 0x7fffffff)
			goto bad_val;
	} else if (strcmp(k, "connect_max") == 0) {
		if (size_parse(val, &c->connect_max) == -1 ||
		    c->connect_max > 0x7fffffff)
			goto bad_val;
	} else if (strcmp(k, "api_max") == 0) {
		if (size_parse(val, &c->api_max) == -1 ||
		    c->api_max > 0x7fffffff)
			goto bad_val;
	} else if (strcmp(k, "map_size") == 0) {
		if (size_parse(val, &c->map_size) == -1)
			goto bad_val;
	} else if (strcmp(k, "map_max") == 0) {
		if (size_parse(val, &c->map_max) == -1)
			goto bad_val;
	} else if (strcmp(k, "nosync") == 0) {
		if (config_bool(val, &c->nosync) == -1)
			goto bad_val;
	} else if (strcmp(k, "allow_retro") == 0) {
		if (config_bool(val, &c->allow_retro) == -1)
			goto bad_val;
	} else if (strcmp(k, "user_authenticate") == 0) {
		if (strcmp(val, "decline") != 0 &&
		    strcmp(val, "challenge") != 0)
			goto bad_val;
		rc = str_set(&c->user_auth, val);
	} else if (strcmp(k, "digest_challenge") == 0)
		rc = str_set(&c->digest_challenge, val);
	else if (strcmp(k, "retention_days") == 0) {
		if (num_parse(val, 0, 36500, &n) == -1)
			goto bad_val;
		c->retention_days = (uint64_t)n;
	} else if (strcmp(k, "metrics_public") == 0) {
		if (config_bool(val, &c->metrics_public) == -1)
			goto bad_val;
	} else if (strcmp(k, "health_stall") == 0) {
		if (num_parse(val, 1, 86400, &n) == -1)
			goto bad_val;
		c->health_stall = (unsigned)n;
	} else if (strcmp(k, "socket_mode") == 0) {
		char *end;
		long  m;

		errno = 0;
		m = strtol(val, &end, 8);
		if (errno != 0 || *end != '\0' || *val == '\0' || m < 0 ||
		    m > 0777)
			goto bad_val;
		c->socket_mode = (int)m;
	} else if (strcmp(k, "socket_owner") == 0)
		rc = str_set(&c->socket_owner, val);
	else if (strcmp(k, "socket_group") == 0)
		rc = str_set(&c->socket_group, val);
	else if (strcmp(k, "dep_url") == 0 || strcmp(k, "dep_enroll_url") == 0) {
		if (strncmp(val, "https://", 8) != 0 || val[8] == '\0')
			goto bad_val;
		rc = str_set(k[4] == 'u' ? &c->dep_url : &c->dep_enroll_url,
		    val);
	} else if (strcmp(k, "vpp_url") == 0) {
		if (strncmp(val, "https://", 8) != 0 || val[8] == '\0')
			goto bad_val;
		rc = str_set(&c->vpp_url, val);
	} else if (strcmp(k, "dep_sync_interval") == 0) {
		if (num_parse(val, 60, 604800, &n) == -1)
			goto bad_val;
		c->dep_sync_interval = (unsigned)n;
	} else if (strncmp(k, "webhook_", 8) == 0 &&
	    (rc = webhook_conf_set(&c->webhook, k, val)) != 1) {
		if (rc == -1 && strcmp(k, "webhook_secret") == 0) {
			/* Never the value: it is a secret. */
			log_error("%s%s: bad value (%s)", where, key,
			    config_valid(k));
			return -1;
		}
		if (rc == -1)
			goto bad_val;
		if (rc == -2)
			rc = -1;
	} else if ((rc = enroll_conf_set(&c->enroll, k, val)) == 1 &&
	    (rc = notify_conf_set(&c->notify, k, val)) == 1)
		goto bad_key;
	else if (rc == -1)
		goto bad_val;
	else if (rc == -2)
		rc = -1;
	if (rc == -1)
		log_error("config: out of memory");
	return rc;
bad_key:
	if ((near = config_nearest(k)) != NULL)
		log_error("%sunknown key %s (did you mean %s?)", where, key,
		    near);
	else
		log_error("%sunknown key %s", where, key);
	return -1;
bad_val:
	log_error("%s%s: bad value \"%s\" (%s)", where, key, val,
	    config_valid(k));
	return -1;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
	    e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int
config_load(struct config *c, const char *path)
{
	FILE  *f;
	char   line[1024], *k, *v, *eq, *e;
	size_t lineno = 0;
	int    rc = 0;

	if ((f = fopen(path, "r")) == NULL) {
		log_error("config: %s: %s", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			log_error("config: %s:%zu: line too long", path,
			    lineno);
			rc = -1;
			break;
		}
		k = trim(line);
		if (*k == '\0' || *k == '#')
			continue;
		if ((eq = strchr(k, '=')) == NULL) {
			log_error("config: %s:%zu: expected key = value", path,
			    lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		k = trim(k);
		v = eq + 1;
		/* A '#' after white space starts a comment. */
		for (e = v; *e != '\0'; e++)
			if (*e == '#' && e > v && (e[-1] == ' ' ||
			    e[-1] == '\t')) {
				*e = '\0';
				break;
			}
		v = trim(v);
		snprintf(where, sizeof(where), "config: %s:%zu: ", path,
		    lineno);
		rc = config_set(c, k, v);
		strlcpy(where, "config: ", sizeof(where));
		if (rc == -1)
			break;
	}
	fclose(f);
	return rc;
}
