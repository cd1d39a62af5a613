/*
 * notify.h - picomdm-notify's keys of picomdm.conf (picomdm.conf(5),
 * picomdm-notify(8)). picomdm-fcgi reads the same file and accepts them
 * (config.c); only picomdm-notify uses them. Owned strings.
 */
#ifndef PICOMDM_NOTIFY_H
#define PICOMDM_NOTIFY_H

struct notify_conf {
	char	 *apns_url;	      /* NULL: APNs production */
	char	 *apns_ca;	      /* NULL: the system's trust store */
	long long apns_expiration;    /* seconds; apns-expiration = now + */
	long long poll_ms;	      /* notify_poll_ms: outbox polled */
	long long max_attempts;	      /* push_max_attempts */
	long long backoff_ms;	      /* push_backoff_ms: first retry */
	long long backoff_max_ms;     /* push_backoff_max_ms */
	long long topic_retry;	      /* push_topic_retry, seconds */
	long long repush_interval;    /* seconds, 0: no re-push pass */
};

void notify_conf_defaults(struct notify_conf *);
void notify_conf_free(struct notify_conf *);
/*
 * Set key to val: 0, 1 when the key is not one of these, -1 for a bad
 * value, -2 out of memory. Logs nothing. The valid values are in
 * notify_conf_valid (NULL for another key).
 */
int	    notify_conf_set(struct notify_conf *, const char *key,
	       const char *val);
const char *notify_conf_valid(const char *key);

#endif
