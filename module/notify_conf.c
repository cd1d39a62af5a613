/*
 * notify_conf.c - picomdm-notify's keys of picomdm.conf (notify.h),
 * parsed by config_set (config.c) for every program that reads the file.
 */
#include "config.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "picomdm/apns.h"
#include "picomdm/notify.h"
#include "picomdm/util.h"

void
notify_conf_defaults(struct notify_conf *n)
{
	memset(n, 0, sizeof(*n));
	n->apns_expiration = APNS_EXPIRATION_DEFAULT;
	n->poll_ms = 1000;
	n->max_attempts = 8;
	n->backoff_ms = 1000;
	n->backoff_max_ms = 600000;
	n->topic_retry = 300;
	n->repush_interval = 3600;
}

void
notify_conf_free(struct notify_conf *n)
{
	free(n->apns_url);
	free(n->apns_ca);
	memset(n, 0, sizeof(*n));
}

static const struct {
	const char *key;
	long long   min, max;
	size_t	    off;
	const char *valid;
} nums[] = {
	{"apns_expiration", 0, 365LL * 86400,
	    offsetof(struct notify_conf, apns_expiration),
	    "seconds, 0 to 31536000"},
	{"notify_poll_ms", 10, 3600000, offsetof(struct notify_conf, poll_ms),
	    "milliseconds, 10 to 3600000"},
	{"push_max_attempts", 1, 100,
	    offsetof(struct notify_conf, max_attempts), "1 to 100"},
	{"push_backoff_ms", 1, 3600000,
	    offsetof(struct notify_conf, backoff_ms),
	    "milliseconds, 1 to 3600000"},
	{"push_backoff_max_ms", 1, 86400000,
	    offsetof(struct notify_conf, backoff_max_ms),
	    "milliseconds, 1 to 86400000"},
	{"push_topic_retry", 1, 86400,
	    offsetof(struct notify_conf, topic_retry), "seconds, 1 to 86400"},
	{"repush_interval", 0, 30LL * 86400,
	    offsetof(struct notify_conf, repush_interval),
	    "seconds, 0 (off) to 2592000"},
};

const char *
notify_conf_valid(const char *key)
{
	size_t i;

	if (strcmp(key, "apns_url") == 0)
		return "an https:// URL";
	if (strcmp(key, "apns_ca") == 0)
		return "a PEM file";
	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (strcmp(nums[i].key, key) == 0)
			return nums[i].valid;
	return NULL;
}

static int
sset(char **dst, const char *v)
{
	char *p;

	if ((p = strdup(v)) == NULL)
		return -2;
	free(*dst);
	*dst = p;
	return 0;
}

int
notify_conf_set(struct notify_conf *n, const char *key, const char *val)
{
	long long v;
	size_t	  i;

	if (strcmp(key, "apns_url") == 0) {
		if (strncmp(val, "https://", 8) != 0 || val[8] == '\0')
			return -1;
		return sset(&n->apns_url, val);
	}
	if (strcmp(key, "apns_ca") == 0)
		return *val == '\0' ? -1 : sset(&n->apns_ca, val);
	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
		if (strcmp(nums[i].key, key) != 0)
			continue;
		if (num_parse(val, nums[i].min, nums[i].max, &v) == -1)
			return -1;
		*(long long *)(void *)((char *)n + nums[i].off) = v;
		return 0;
	}
	return 1;
}
