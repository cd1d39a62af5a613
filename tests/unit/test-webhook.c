/*
 * test-webhook - webhooks (README.md, "Webhooks"): the JSON of an event
 * as NanoMDM and MicroMDM consumers read it, the HMAC-SHA256 signature,
 * the backoff, the outbox (order, bound with oldest dropped and counted,
 * purge with its enrollment, check) and webhook_pass's delivery order
 * against a receiver in this process: a failing event holds back only
 * the later events of its own enrollment, and is delivered later.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "picomdm/message.h"
#include "picomdm/store.h"
#include "picomdm/store_event.h"
#include "picomdm/util.h"
#include "picomdm/webhook.h"
#include "regress.h"

/* A string constant where the API takes a char * it does not change. */
#define UC(s) ((char *)(uintptr_t)(s))

/* ---- JSON ---- */

static json_t *
event_json(const struct store_event *ev)
{
	char	*s = webhook_event_json(ev);
	json_t	*j;

	CHECK(s != NULL);
	j = json_loads(s, 0, NULL);
	CHECK(j != NULL);
	free(s);
	return j;
}

static void
test_json(void)
{
	static const char raw[] = "<?xml version=\"1.0\"?><plist><dict>"
	    "<key>MessageType</key><string>Authenticate</string></dict>"
	    "</plist>";
	struct store_event ev;
	json_t		  *j, *c;
	unsigned char	  *dec;
	size_t		   n;

	memset(&ev, 0, sizeof(ev));
	ev.topic = UC("mdm.Authenticate");
	ev.event_id = UC("5E3B1C1A-0000-4000-8000-000000000001");
	ev.created_at = 1764806400123456ULL; /* 2025-12-04T00:00:00.123456Z */
	ev.raw = (unsigned char *)(uintptr_t)raw;
	ev.raw_len = sizeof(raw) - 1;
	ev.udid = UC("UDID-1");
	ev.url_params = UC("a=1&b=x%20y&a=2&c=+z");
	j = event_json(&ev);
	CHECK_STR(json_string_value(json_object_get(j, "topic")),
	    "mdm.Authenticate");
	CHECK_STR(json_string_value(json_object_get(j, "event_id")),
	    "5E3B1C1A-0000-4000-8000-000000000001");
	CHECK_STR(json_string_value(json_object_get(j, "created_at")),
	    "2025-12-04T00:00:00.123456Z");
	CHECK(json_object_get(j, "acknowledge_event") == NULL);
	c = json_object_get(j, "checkin_event");
	CHECK(json_is_object(c));
	CHECK_STR(json_string_value(json_object_get(c, "udid")), "UDID-1");
	CHECK(json_object_get(c, "enrollment_id") == NULL);
	CHECK(json_object_get(c, "token_update_tally") == NULL);
	dec = base64_decode(json_string_value(json_object_get(c,
	    "raw_payload")), strlen(json_string_value(json_object_get(c,
	    "raw_payload"))), &n);
	CHECK(dec != NULL);
	CHECK_EQ(n, sizeof(raw) - 1);
	CHECK(memcmp(dec, raw, n) == 0);
	free(dec);
	/* url_params: decoded, the first value of a key kept */
	CHECK_STR(json_string_value(json_object_get(json_object_get(c,
	    "url_params"), "a")), "1");
	CHECK_STR(json_string_value(json_object_get(json_object_get(c,
	    "url_params"), "b")), "x y");
	CHECK_STR(json_string_value(json_object_get(json_object_get(c,
	    "url_params"), "c")), " z");
	json_decref(j);

	/* TokenUpdate: its tally; a User Enrollment: enrollment_id. */
	ev.topic = UC("mdm.TokenUpdate");
	ev.udid = NULL;
	ev.msg_enrollment_id = UC("UE-1");
	ev.token_update_tally = 3;
	ev.url_params = NULL;
	j = event_json(&ev);
	c = json_object_get(j, "checkin_event");
	CHECK_EQ(json_integer_value(json_object_get(c, "token_update_tally")),
	    3);
	CHECK_STR(json_string_value(json_object_get(c, "enrollment_id")),
	    "UE-1");
	CHECK(json_object_get(c, "udid") == NULL);
	CHECK(json_object_get(c, "url_params") == NULL);
	json_decref(j);

	/* A report: acknowledge_event with status and command_uuid. */
	ev.topic = UC("mdm.Connect");
	ev.udid = UC("UDID-1");
	ev.msg_enrollment_id = NULL;
	ev.status = UC("Acknowledged");
	ev.command_uuid = UC("CMD-1");
	j = event_json(&ev);
	CHECK(json_object_get(j, "checkin_event") == NULL);
	c = json_object_get(j, "acknowledge_event");
	CHECK(json_is_object(c));
	CHECK_STR(json_string_value(json_object_get(c, "status")),
	    "Acknowledged");
	CHECK_STR(json_string_value(json_object_get(c, "command_uuid")),
	    "CMD-1");
	CHECK_STR(json_string_value(json_object_get(c, "udid")), "UDID-1");
	CHECK(json_is_string(json_object_get(c, "raw_payload")));
	CHECK(json_object_get(c, "token_update_tally") == NULL);
	json_decref(j);
	/* Idle: an empty command_uuid, as NanoMDM sends it. */
	ev.status = UC("Idle");
	ev.command_uuid = NULL;
	j = event_json(&ev);
	CHECK_STR(json_string_value(json_object_get(json_object_get(j,
	    "acknowledge_event"), "command_uuid")), "");
	json_decref(j);
}

/* RFC 4231, test case 2. */
static void
test_sign(void)
{
	char out[80];

	CHECK_EQ(webhook_sign("Jefe", 4, "what do ya want for nothing?", 28,
	    out, sizeof(out)), 0);
	CHECK_STR(out, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d"
	    "2739839dec58b964ec3843");
	CHECK_EQ(webhook_sign("k", 1, "b", 1, out, 40), -1);
}

static void
test_backoff(void)
{
	CHECK_EQ(webhook_backoff_us(1, 600, 0), 1000000);
	CHECK_EQ(webhook_backoff_us(2, 600, 0), 2000000);
	CHECK_EQ(webhook_backoff_us(5, 600, 0), 16000000);
	CHECK_EQ(webhook_backoff_us(5, 600, 0.999), 16000000 + 7992000);
	CHECK_EQ(webhook_backoff_us(40, 600, 0), 600000000);
	CHECK_EQ(webhook_backoff_us(40, 600, 0.5), 750000000);
	CHECK_EQ(webhook_backoff_us(5, 10, 0), 10000000);
}

/* ---- the outbox ---- */

static char dir[1024];

static struct store *
fresh_store(const char *name)
{
	const char	 *tmp = getenv("PICOMDM_TEST_TMP");
	char		  cmd[2200];
	struct store_opts o;
	struct store	 *s = NULL;

	snprintf(dir, sizeof(dir), "%s/webhook-%s-%d", tmp ? tmp : "/tmp",
	    name, (int)getpid());
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
	CHECK(system(cmd) == 0); /* test code only */
	memset(&o, 0, sizeof(o));
	o.nosync = 1;
	CHECK_EQ(store_open(dir, &o, &s), 0);
	return s;
}

static void
remove_store(struct store *s)
{
	char cmd[2200];

	store_close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

struct put_op {
	const char *id;
	const char *url;
	int	    n;	 /* events to add */
	uint64_t    max;
	uint64_t    dropped;
	int	    first; /* the number of the first, in its command_uuid */
};

static int
op_enroll(struct store_txn *t, void *arg)
{
	struct store_enrollment e;
	struct store_device	d;
	int			rc;

	memset(&d, 0, sizeof(d));
	d.id = arg;
	d.udid = arg;
	if ((rc = store_device_put(t, &d)) != 0)
		return rc;
	memset(&e, 0, sizeof(e));
	e.id = (char *)arg;
	e.device_id = (char *)arg;
	e.type = ENROLL_DEVICE;
	e.enabled = 1;
	return store_enrollment_put(t, &e);
}

static int
op_put(struct store_txn *t, void *arg)
{
	struct put_op	  *p = arg;
	struct store_event ev;
	char		   raw[64];
	uint64_t	   d;
	int		   i, rc;

	p->dropped = 0;
	for (i = 0; i < p->n; i++) {
		memset(&ev, 0, sizeof(ev));
		snprintf(raw, sizeof(raw), "%s#%d", p->id, p->first + i);
		ev.enrollment_id = UC(p->id);
		ev.topic = UC("mdm.Connect");
		ev.status = UC("Acknowledged");
		ev.command_uuid = raw;
		ev.raw = (unsigned char *)raw;
		ev.raw_len = strlen(raw);
		ev.udid = UC(p->id);
		ev.url = UC(p->url);
		ev.event_id = raw;
		if ((rc = store_event_put(t, &ev, p->max, &d)) != 0)
			return rc;
		p->dropped += d;
	}
	return 0;
}

struct list {
	char	 item[64][64];
	uint64_t seq[64];
	int	 n;
};

static int
list_one(const struct store_event *ev, void *arg)
{
	struct list *l = arg;

	CHECK(ev->raw == NULL); /* a scan reads no body */
	if (l->n < 64) {
		snprintf(l->item[l->n], 64, "%s", ev->enrollment_id);
		l->seq[l->n++] = ev->seq;
	}
	return 0;
}

static int
op_list(struct store_txn *t, void *arg)
{
	((struct list *)arg)->n = 0;
	return store_event_scan(t, 0, list_one, arg);
}

static int
op_counts(struct store_txn *t, void *arg)
{
	return store_event_counts(t, arg);
}

static int
op_purge(struct store_txn *t, void *arg)
{
	struct store_purge_report r;
	const char		 *ids[1] = {arg};
	int			  rc;

	memset(&r, 0, sizeof(r));
	rc = store_purge_enrollments(t, ids, 1, &r);
	store_purge_report_free(&r);
	return rc;
}

static int
show_problem(const struct store_problem *p, void *arg)
{
	(void)arg;
	fprintf(stderr, "check: %s %s: %s\n", p->db, p->key, p->what);
	return 0;
}

static void
test_outbox(void)
{
	struct store		 *s = fresh_store("outbox");
	struct put_op		  p = {"A", "http://127.0.0.1:9/", 3, 5, 0, 0};
	struct store_event_counts c;
	struct store_check_count  cc;
	struct list		  l;
	int			  i;

	CHECK_EQ(store_write(s, op_enroll, UC("A")), 0);
	CHECK_EQ(store_write(s, op_enroll, UC("B")), 0);
	CHECK_EQ(store_write(s, op_put, &p), 0);
	CHECK_EQ(p.dropped, 0);
	p.id = "B";
	CHECK_EQ(store_write(s, op_put, &p), 0);
	/* 6 events, bound 5: the oldest (A's first) dropped. */
	CHECK_EQ(p.dropped, 1);
	CHECK_EQ(store_read(s, op_list, &l), 0);
	CHECK_EQ(l.n, 5);
	CHECK_STR(l.item[0], "A");
	CHECK_STR(l.item[1], "A");
	CHECK_STR(l.item[2], "B");
	for (i = 1; i < l.n; i++)
		CHECK(l.seq[i] > l.seq[i - 1]);
	CHECK_EQ(store_read(s, op_counts, &c), 0);
	CHECK_EQ(c.queued, 6);
	CHECK_EQ(c.dropped, 1);
	CHECK_EQ(c.delivered, 0);
	/* check finds nothing wrong with them */
	CHECK_EQ(store_check(s, 0, NULL, show_problem, NULL, &cc), 0);
	CHECK_EQ(cc.problems, 0);
	/* purging B removes B's events only */
	CHECK_EQ(store_write(s, op_purge, UC("B")), 0);
	CHECK_EQ(store_read(s, op_list, &l), 0);
	CHECK_EQ(l.n, 2);
	CHECK_STR(l.item[0], "A");
	CHECK_STR(l.item[1], "A");
	/* an event of an enrollment that does not exist: check says so */
	p.id = "GONE";
	p.n = 1;
	CHECK_EQ(store_write(s, op_put, &p), 0);
	CHECK_EQ(store_check(s, 0, NULL, show_problem, NULL, &cc), 0);
	CHECK_EQ(cc.problems, 1);
	remove_store(s);
}

static int
op_count(struct store_txn *t, void *arg)
{
	return store_event_count(t, arg);
}

/* ---- writing events: nothing without a URL, one per URL ---- */

struct wput {
	const struct webhook_conf *c;
	struct mdm_msg		  *m;
	const char		  *body;
};

static int
op_wput(struct store_txn *t, void *arg)
{
	struct wput *w = arg;

	return webhook_event_put(t, w->c, w->m, w->body, strlen(w->body),
	    "tenant=acme");
}

struct ids {
	char id[4][64];
	char url[4][64];
	int  n;
};

static int
op_ids(struct store_txn *t, void *arg)
{
	struct ids	   *x = arg;
	struct store_event *e;
	uint64_t	    seq;
	int		    rc;

	x->n = 0;
	for (seq = 1; seq < 64 && x->n < 4; seq++) {
		if ((rc = store_event_get(t, seq, &e)) == STORE_ENOTFOUND)
			continue;
		if (rc != 0)
			return rc;
		snprintf(x->id[x->n], 64, "%s", e->event_id);
		snprintf(x->url[x->n], 64, "%s", e->url);
		CHECK_STR(e->topic, "mdm.Authenticate");
		CHECK_STR(e->udid, "0000FEED-0000-0000-0000-000000000001");
		CHECK_STR(e->url_params, "tenant=acme");
		CHECK(e->raw_len > 100 && memcmp(e->raw, "<?xml", 5) == 0);
		x->n++;
		store_event_free(e);
	}
	return 0;
}

static void
test_event_put(void)
{
	static const char body[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	    "<plist version=\"1.0\"><dict><key>MessageType</key>"
	    "<string>Authenticate</string><key>Topic</key>"
	    "<string>com.apple.mgmt.test</string><key>UDID</key>"
	    "<string>0000FEED-0000-0000-0000-000000000001</string>"
	    "</dict></plist>";
	struct store	   *s = fresh_store("put");
	struct webhook_conf c;
	struct mdm_msg	   *m = NULL;
	struct wput	    w;
	struct ids	    x;
	const char	   *why = NULL;
	uint64_t	    n = 99;

	CHECK_EQ(msg_parse_checkin(body, strlen(body), &m, &why), 0);
	webhook_conf_defaults(&c);
	w.c = &c;
	w.m = m;
	w.body = body;
	/* No URL: nothing written. */
	CHECK_EQ(store_write(s, op_wput, &w), 0);
	CHECK_EQ(store_read(s, op_count, &n), 0);
	CHECK_EQ(n, 0);
	/* Two URLs: two events, one event_id. */
	CHECK_EQ(webhook_conf_set(&c, "webhook_url", "http://127.0.0.1:1/a"), 0);
	CHECK_EQ(webhook_conf_set(&c, "webhook_url", "https://h.example/b"), 0);
	CHECK_EQ(store_write(s, op_wput, &w), 0);
	CHECK_EQ(store_read(s, op_ids, &x), 0);
	CHECK_EQ(x.n, 2);
	CHECK_STR(x.id[0], x.id[1]);
	CHECK_STR(x.url[0], "http://127.0.0.1:1/a");
	CHECK_STR(x.url[1], "https://h.example/b");
	CHECK_EQ(webhook_conf_set(&c, "webhook_max_events", "0"), -1);
	CHECK_EQ(webhook_conf_set(&c, "webhook_timeout", "x"), -1);
	CHECK_EQ(webhook_conf_set(&c, "webhook_url", "http://"), -1);
	CHECK_EQ(webhook_conf_set(&c, "webhook_url", "http://a b/"), -1);
	CHECK_EQ(webhook_conf_set(&c, "webhook_secret", ""), -1);
	CHECK_EQ(c.nurls, 2);
	webhook_conf_free(&c);
	msg_free(m);
	remove_store(s);
}

/* ---- delivery, against a receiver in this process ---- */

struct recv {
	int		fd;
	int		port;
	pthread_mutex_t mu;
	char		got[256][64]; /* command_uuid of each POST, in order */
	int		status[256];
	int		n;
	const char     *fail;	 /* fail POSTs whose body holds this */
	int		fail_n;	 /* this many times */
	char		sig[128];
	int		sig_ok; /* POSTs whose signature verified */
};

static void *
recv_main(void *arg)
{
	struct recv *r = arg;
	char	     buf[65536], *b, *h, resp[128], want[80];
	int	     c, st;
	ssize_t	     k;
	size_t	     len, cl;

	for (;;) {
		if ((c = accept(r->fd, NULL, NULL)) == -1)
			return NULL;
		len = 0;
		cl = 0;
		b = NULL;
		while (len < sizeof(buf) - 1 &&
		    (k = read(c, buf + len, sizeof(buf) - 1 - len)) > 0) {
			len += (size_t)k;
			buf[len] = '\0';
			if (b == NULL && (b = strstr(buf, "\r\n\r\n")) != NULL) {
				b += 4;
				h = strcasestr(buf, "\r\nContent-Length:");
				cl = h != NULL ? strtoul(h + 17, NULL, 10) : 0;
			}
			if (b != NULL && len - (size_t)(b - buf) >= cl)
				break;
		}
		if (b == NULL) {
			close(c);
			continue;
		}
		pthread_mutex_lock(&r->mu);
		st = 200;
		if (r->fail != NULL && strstr(b, r->fail) != NULL &&
		    r->fail_n > 0) {
			r->fail_n--;
			st = 503;
		}
		/* The signature: HMAC-SHA256 of this body, the secret
		 * "Jefe". */
		if ((h = strcasestr(buf, "\r\nX-Hub-Signature-256: ")) != NULL) {
			snprintf(r->sig, sizeof(r->sig), "%.*s",
			    (int)strcspn(h + 23, "\r"), h + 23);
			CHECK_EQ(webhook_sign("Jefe", 4, b, cl, want,
			    sizeof(want)), 0);
			if (strcmp(want, r->sig) == 0)
				r->sig_ok++;
		}
		if (r->n < 256) {
			json_t *j = json_loads(b, 0, NULL);

			snprintf(r->got[r->n], 64, "%s",
			    json_string_value(json_object_get(
				json_object_get(j, "acknowledge_event"),
				"command_uuid")));
			r->status[r->n++] = st;
			json_decref(j);
		}
		pthread_mutex_unlock(&r->mu);
		snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\nContent-Length: "
		    "0\r\nConnection: close\r\n\r\n", st);
		if (write(c, resp, strlen(resp)) < 0)
			perror("write");
		close(c);
	}
}

static void
recv_start(struct recv *r, pthread_t *th)
{
	struct sockaddr_in a;
	socklen_t	   al = sizeof(a);
	int		   one = 1;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK((r->fd = socket(AF_INET, SOCK_STREAM, 0)) != -1);
	setsockopt(r->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	CHECK(bind(r->fd, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(listen(r->fd, 16) == 0);
	CHECK(getsockname(r->fd, (struct sockaddr *)&a, &al) == 0);
	r->port = ntohs(a.sin_port);
	pthread_mutex_init(&r->mu, NULL);
	CHECK(pthread_create(th, NULL, recv_main, r) == 0);
}

static void
test_delivery(void)
{
	static struct recv	  r;
	struct store		 *s = fresh_store("deliver");
	struct webhook_conf	  conf;
	struct webhook		 *w;
	struct store_event_counts c;
	struct put_op		  p;
	struct list		  l;
	pthread_t		  th;
	char			  url[64], want[80];
	int64_t			  now = 1000000000000000LL, next;
	int			  i, a, b;

	recv_start(&r, &th);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", r.port);
	webhook_conf_defaults(&conf);
	CHECK_EQ(webhook_conf_set(&conf, "webhook_url", url), 0);
	CHECK_EQ(webhook_conf_set(&conf, "webhook_url", "ftp://x/"), -1);
	CHECK_EQ(webhook_conf_set(&conf, "webhook_secret", "Jefe"), 0);
	CHECK_EQ(webhook_conf_set(&conf, "webhook_nonsense", "1"), 1);
	/* One at a time, so that the order of arrival across enrollments
	 * is fixed too (test_many_pairs has them in parallel). */
	CHECK_EQ(webhook_conf_set(&conf, "webhook_concurrency", "1"), 0);
	CHECK_EQ(webhook_conf_set(&conf, "webhook_concurrency", "0"), -1);
	CHECK_EQ(webhook_conf_set(&conf, "webhook_concurrency", "65"), -1);
	CHECK_EQ(store_write(s, op_enroll, UC("A")), 0);
	CHECK_EQ(store_write(s, op_enroll, UC("B")), 0);
	/* Interleaved: A#0 B#0 A#1 B#1 A#2 B#2. */
	for (i = 0; i < 3; i++) {
		p = (struct put_op){"A", url, 1, 0, 0, i};
		CHECK_EQ(store_write(s, op_put, &p), 0);
		p.id = "B";
		CHECK_EQ(store_write(s, op_put, &p), 0);
	}
	CHECK((w = webhook_new(&conf)) != NULL);
	r.fail = "\"B#0\"";
	r.fail_n = 1;
	/* First pass: B's first event fails; A's go through, B's later
	 * ones wait. */
	CHECK_EQ(webhook_pass(w, s, now, &next), 3);
	CHECK_EQ(r.n, 4);
	CHECK_STR(r.got[0], "A#0");
	CHECK_STR(r.got[1], "B#0");
	CHECK_EQ(r.status[1], 503);
	CHECK_STR(r.got[2], "A#1");
	CHECK_STR(r.got[3], "A#2");
	CHECK(next >= now + 1000000 && next <= now + 1500000);
	CHECK_EQ(store_read(s, op_list, &l), 0);
	CHECK_EQ(l.n, 3);
	for (i = 0; i < 3; i++)
		CHECK_STR(l.item[i], "B");
	/* Before the backoff is over nothing is sent. */
	CHECK_EQ(webhook_pass(w, s, now + 500000, &next), 0);
	CHECK_EQ(r.n, 4);
	/* After it, B's three go, in order. */
	CHECK_EQ(webhook_pass(w, s, now + 2000000, &next), 3);
	CHECK_EQ(r.n, 7);
	for (i = 4; i < 7; i++) {
		snprintf(want, sizeof(want), "B#%d", i - 4);
		CHECK_STR(r.got[i], want);
		CHECK_EQ(r.status[i], 200);
	}
	CHECK_EQ(webhook_pass(w, s, now + 2000000, &next), 0);
	CHECK_EQ(next, 0);
	/* Signed with the secret over the body. */
	CHECK(strncmp(r.sig, "sha256=", 7) == 0 && strlen(r.sig) == 71);
	CHECK_EQ(r.sig_ok, r.n);
	CHECK_EQ(store_read(s, op_counts, &c), 0);
	CHECK_EQ(c.delivered, 6);
	CHECK_EQ(c.failed, 1);
	CHECK_EQ(c.queued, 6);
	/* Order: each enrollment's events arrived in the order stored. */
	for (a = b = 0, i = 0; i < r.n; i++) {
		if (r.status[i] != 200)
			continue;
		snprintf(want, sizeof(want), "%c#%d", r.got[i][0],
		    r.got[i][0] == 'A' ? a++ : b++);
		CHECK_STR(r.got[i], want);
	}
	CHECK_EQ(a, 3);
	CHECK_EQ(b, 3);
	webhook_free(w);
	webhook_conf_free(&conf);
	shutdown(r.fd, SHUT_RDWR);
	close(r.fd);
	pthread_join(th, NULL);
	remove_store(s);
}

/*
 * 100 enrollments, two events each, in parallel (webhook_concurrency 8):
 * every event delivered once in one pass, each enrollment's in order.
 * More pairs than the pass's table starts with (32), so it grows while
 * the pass holds pointers to its pairs.
 */
static void
test_many_pairs(void)
{
	static struct recv r;
	struct store	  *s = fresh_store("many");
	struct webhook_conf conf;
	struct webhook	  *w;
	struct put_op	   p;
	pthread_t	   th;
	char		   url[64], id[16], want[24];
	int64_t		   now = 1000000000000000LL, next;
	int		   i, j, seen[100];

	recv_start(&r, &th);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", r.port);
	webhook_conf_defaults(&conf);
	CHECK_EQ(conf.concurrency, 8);
	for (j = 0; j < 2; j++)
		for (i = 0; i < 100; i++) {
			snprintf(id, sizeof(id), "E%02d", i);
			if (j == 0)
				CHECK_EQ(store_write(s, op_enroll, id), 0);
			p = (struct put_op){id, url, 1, 0, 0, j};
			CHECK_EQ(store_write(s, op_put, &p), 0);
		}
	CHECK((w = webhook_new(&conf)) != NULL);
	CHECK_EQ(webhook_pass(w, s, now, &next), 200);
	CHECK_EQ(next, 0);
	CHECK_EQ(r.n, 200);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < r.n && i < 200; i++) {
		j = atoi(r.got[i] + 1);
		CHECK(j >= 0 && j < 100);
		if (j < 0 || j >= 100)
			continue;
		snprintf(want, sizeof(want), "E%02d#%d", j, seen[j]++);
		CHECK_STR(r.got[i], want);
	}
	for (i = 0; i < 100; i++)
		CHECK_EQ(seen[i], 2);
	webhook_free(w);
	webhook_conf_free(&conf);
	shutdown(r.fd, SHUT_RDWR);
	close(r.fd);
	pthread_join(th, NULL);
	remove_store(s);
}

/* Two URLs, one dead (nothing listens): the live one gets every event;
 * the dead one is tried once and then waits as a whole. */
static void
test_dead_url(void)
{
	static struct recv	  r2;
	struct store		 *s = fresh_store("dead");
	struct webhook_conf	  conf;
	struct webhook		 *w;
	struct store_event_counts c;
	struct put_op		  p;
	pthread_t		  th;
	char			  live[64];
	int64_t			  now = 1000000000000000LL, next;
	int			  i;

	recv_start(&r2, &th);
	snprintf(live, sizeof(live), "http://127.0.0.1:%d/hook", r2.port);
	webhook_conf_defaults(&conf);
	CHECK_EQ(webhook_conf_set(&conf, "webhook_timeout", "2"), 0);
	CHECK_EQ(store_write(s, op_enroll, UC("A")), 0);
	CHECK_EQ(store_write(s, op_enroll, UC("B")), 0);
	for (i = 0; i < 2; i++) {
		p = (struct put_op){i ? "B" : "A", "http://127.0.0.1:1/", 2, 0,
		    0, 0};
		CHECK_EQ(store_write(s, op_put, &p), 0);
		p.url = live;
		CHECK_EQ(store_write(s, op_put, &p), 0);
	}
	CHECK((w = webhook_new(&conf)) != NULL);
	CHECK_EQ(webhook_pass(w, s, now, &next), 4);
	CHECK_EQ(r2.n, 4);
	CHECK_EQ(store_read(s, op_counts, &c), 0);
	CHECK_EQ(c.failed, 1); /* one try at the dead URL, not four */
	CHECK(next > now);
	webhook_free(w);
	webhook_conf_free(&conf);
	shutdown(r2.fd, SHUT_RDWR);
	close(r2.fd);
	pthread_join(th, NULL);
	remove_store(s);
}

int
main(void)
{
	test_json();
	test_sign();
	test_backoff();
	test_outbox();
	test_event_put();
	test_delivery();
	test_many_pairs();
	test_dead_url();
	REGRESS_DONE();
}
