/*
 * webhook_conf.c - the webhook keys of picomdm.conf and the writing of
 * webhook events (picomdm/webhook.h). In libpicomdm.a: the responder
 * writes events in the transaction of the check-in or report that
 * causes them and never sends them itself (ARCHITECTURE.md, section 7);
 * module/webhook.c delivers them.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "picomdm/command.h"
#include "picomdm/log.h"
#include "picomdm/message.h"
#include "picomdm/store.h"
#include "picomdm/store_event.h"
#include "picomdm/util.h"
#include "picomdm/webhook.h"

#define SECRET_MAX 4096

void
webhook_conf_defaults(struct webhook_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->max_events = WEBHOOK_MAX_EVENTS_DEFAULT;
	c->timeout = WEBHOOK_TIMEOUT_DEFAULT;
	c->retry_max = WEBHOOK_RETRY_MAX_DEFAULT;
	c->concurrency = WEBHOOK_CONCURRENCY_DEFAULT;
}

void
webhook_conf_free(struct webhook_conf *c)
{
	size_t i;

	for (i = 0; i < c->nurls; i++)
		free(c->urls[i]);
	free(c->urls);
	if (c->secret != NULL)
		explicit_bzero(c->secret, c->secret_len);
	free(c->secret);
	memset(c, 0, sizeof(*c));
}

/* An http or https URL with a host, and nothing a header could break on. */
static int
url_ok(const char *u)
{
	const char *h;
	size_t	    i;

	if (strncmp(u, "http://", 7) == 0)
		h = u + 7;
	else if (strncmp(u, "https://", 8) == 0)
		h = u + 8;
	else
		return 0;
	if (*h == '\0' || *h == '/')
		return 0;
	for (i = 0; u[i] != '\0'; i++)
		if ((unsigned char)u[i] <= ' ' || u[i] == 0x7f)
			return 0;
	return i < 2048;
}

static int
secret_set(struct webhook_conf *c, const char *p, size_t n)
{
	char *s;

	if (n == 0 || n > SECRET_MAX)
		return -1;
	if ((s = malloc(n + 1)) == NULL)
		return -2;
	memcpy(s, p, n);
	s[n] = '\0';
	if (c->secret != NULL)
		explicit_bzero(c->secret, c->secret_len);
	free(c->secret);
	c->secret = s;
	c->secret_len = n;
	return 0;
}

/* The secret from a file: its bytes, a final newline dropped. */
static int
secret_file(struct webhook_conf *c, const char *path)
{
	char   buf[SECRET_MAX + 2];
	size_t n;
	FILE  *f;
	int    rc;

	if ((f = fopen(path, "r")) == NULL) {
		log_error("config: webhook_secret_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	rc = secret_set(c, buf, n);
	explicit_bzero(buf, sizeof(buf));
	if (rc == -1)
		log_error("config: webhook_secret_file %s: empty, or longer "
		    "than %d bytes", path, SECRET_MAX);
	return rc;
}

/* See webhook.h. */
int
webhook_conf_set(struct webhook_conf *c, const char *k, const char *v)
{
	long long n;
	char    **u;

	if (strcmp(k, "webhook_url") == 0) {
		if (!url_ok(v))
			return -1;
		if ((u = realloc(c->urls, (c->nurls + 1) * sizeof(*u))) ==
		    NULL)
			return -2;
		c->urls = u;
		if ((u[c->nurls] = strdup(v)) == NULL)
			return -2;
		c->nurls++;
		return 0;
	}
	if (strcmp(k, "webhook_secret") == 0)
		return secret_set(c, v, strlen(v));
	if (strcmp(k, "webhook_secret_file") == 0)
		return secret_file(c, v);
	if (strcmp(k, "webhook_max_events") == 0) {
		if (num_parse(v, 1, 1000000000LL, &n) == -1)
			return -1;
		c->max_events = (uint64_t)n;
		return 0;
	}
	if (strcmp(k, "webhook_timeout") == 0) {
		if (num_parse(v, 1, 3600, &n) == -1)
			return -1;
		c->timeout = (unsigned)n;
		return 0;
	}
	if (strcmp(k, "webhook_retry_max") == 0) {
		if (num_parse(v, 1, 86400, &n) == -1)
			return -1;
		c->retry_max = (unsigned)n;
		return 0;
	}
	if (strcmp(k, "webhook_concurrency") == 0) {
		if (num_parse(v, 1, WEBHOOK_CONCURRENCY_MAX, &n) == -1)
			return -1;
		c->concurrency = (unsigned)n;
		return 0;
	}
	return 1;
}

/* See webhook.h. */
int
webhook_event_put(struct store_txn *t, const struct webhook_conf *c,
    const struct mdm_msg *m, const void *raw, size_t rawlen,
    const char *query)
{
	struct store_event	 ev;
	struct store_enrollment *e = NULL;
	char			 topic[64], id[37];
	uint64_t		 dropped;
	size_t			 i;
	int			 rc = 0;

	if (c == NULL || c->nurls == 0)
		return 0;
	memset(&ev, 0, sizeof(ev));
	snprintf(topic, sizeof(topic), "mdm.%s", msg_kind_name(m->kind));
	if (command_uuid_new(id) == -1)
		return STORE_ENOMEM;
	ev.enrollment_id = (char *)(uintptr_t)m->id;
	ev.topic = topic;
	ev.event_id = id;
	ev.raw = (unsigned char *)(uintptr_t)raw;
	ev.raw_len = rawlen;
	ev.udid = (char *)(uintptr_t)msg_str(m, "UDID");
	ev.msg_enrollment_id = (char *)(uintptr_t)msg_str(m, "EnrollmentID");
	ev.url_params = query != NULL && *query != '\0'
	    ? (char *)(uintptr_t)query : NULL;
	if (m->kind == MSG_CONNECT) {
		ev.status = (char *)(uintptr_t)msg_str(m, "Status");
		ev.command_uuid = (char *)(uintptr_t)m->command_uuid;
	} else if (m->kind == MSG_TOKEN_UPDATE) {
		if ((rc = store_enrollment_get(t, m->id, &e)) != 0)
			return rc;
		ev.token_update_tally = e->token_update_tally;
		store_enrollment_free(e);
	}
	for (i = 0; i < c->nurls && rc == 0; i++) {
		ev.url = c->urls[i];
		rc = store_event_put(t, &ev, c->max_events, &dropped);
	}
	return rc;
}
