/*
 * webhook-drain - deliver the store's webhook outbox (module/webhook.c),
 * for tests/integration/test-webhook.sh against tests/mock-webhook.py,
 * until picomdm-notify runs webhook_pass() in its loop. Not installed.
 *
 *	webhook-drain --db DIR --config FILE [--follow] [--until-empty SECONDS]
 *	webhook-drain --db DIR --config FILE --fill N [--enrollments M]
 *
 * Reads the webhook_* keys (and map_size, map_max, nosync) of FILE
 * (picomdm.conf(5)), then calls webhook_pass() until nothing is due now
 * (the default), until the outbox is empty or SECONDS have passed
 * (--until-empty: waits out retries), or for ever (--follow: as the
 * daemon will). Prints "delivered N waiting N" on stdout at the end.
 *
 * --fill writes N events instead (tests/bench-webhook.sh): command
 * reports of M made-up enrollments (default 100) in turn, each for every
 * configured webhook_url, as the responder would store them, in
 * transactions of 1,000, and delivers nothing.
 *
 * Exit status: 0 done (with --until-empty: the outbox is empty), 1 a
 * store or set-up error, or events still waiting after --until-empty,
 * 2 usage.
 */
#include "config.h"

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "extern.h"
#include "picomdm/log.h"
#include "picomdm/store.h"
#include "picomdm/store_event.h"
#include "picomdm/util.h"
#include "picomdm/webhook.h"

static void
usage(void)
{
	fprintf(stderr, "usage: webhook-drain --db DIR --config FILE "
	    "[--follow] [--until-empty SECONDS] | --fill N [--enrollments M]\n");
	exit(2);
}

static int
count_op(struct store_txn *t, void *arg)
{
	return store_event_count(t, arg);
}

/* --fill: n events of m enrollments, from the i-th on. */
struct fill {
	const struct webhook_conf *c;
	uint64_t		   i, n, m;
};

static int
fill_op(struct store_txn *t, void *arg)
{
	static const char body[] =
	    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	    "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
	    "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
	    "<plist version=\"1.0\">\n<dict>\n"
	    "\t<key>CommandUUID</key>\n\t<string>%s</string>\n"
	    "\t<key>Status</key>\n\t<string>Acknowledged</string>\n"
	    "\t<key>UDID</key>\n\t<string>%s</string>\n"
	    "</dict>\n</plist>\n";
	struct fill	  *f = arg;
	struct store_event ev;
	char		   id[64], uuid[64], raw[512];
	uint64_t	   k;
	size_t		   u;
	int		   rc;

	for (k = 0; k < 1000 && f->i + k < f->n; k++) {
		snprintf(id, sizeof(id), "BENCH-WEBHOOK-%06llu",
		    (unsigned long long)((f->i + k) % f->m));
		snprintf(uuid, sizeof(uuid), "CMD-%08llu",
		    (unsigned long long)(f->i + k));
		snprintf(raw, sizeof(raw), body, uuid, id);
		for (u = 0; u < f->c->nurls; u++) {
			memset(&ev, 0, sizeof(ev));
			ev.enrollment_id = id;
			ev.topic = (char *)(uintptr_t)"mdm.Connect";
			ev.created_at = time_now_us();
			ev.raw = (unsigned char *)raw;
			ev.raw_len = strlen(raw);
			ev.command_uuid = uuid;
			ev.status = (char *)(uintptr_t)"Acknowledged";
			ev.udid = id;
			ev.url = f->c->urls[u];
			ev.event_id = uuid;
			if ((rc = store_event_put(t, &ev, 0, NULL)) != 0)
				return rc;
		}
	}
	return 0;
}

static void
nap(int64_t us)
{
	struct timespec ts;

	if (us > 500000)
		us = 500000;
	if (us < 1000)
		us = 1000;
	ts.tv_sec = (time_t)(us / 1000000);
	ts.tv_nsec = (long)(us % 1000000) * 1000;
	nanosleep(&ts, NULL);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"db", required_argument, NULL, 'd'},
		{"config", required_argument, NULL, 'c'},
		{"follow", no_argument, NULL, 'f'},
		{"until-empty", required_argument, NULL, 'u'},
		{"fill", required_argument, NULL, 'F'},
		{"enrollments", required_argument, NULL, 'M'},
		{NULL, 0, NULL, 0}};
	struct fill	  fl;
	long long	  fill_n = -1, fill_m = 100;
	struct config	  cfg;
	struct store_opts so;
	struct store	 *s = NULL;
	struct webhook	 *w;
	const char	 *db = NULL, *conf = NULL;
	long long	  wait_s = -1;
	int64_t		  now, next, end = 0;
	uint64_t	  total = 0, left = 0;
	int		  c, follow = 0, n, rc;

	log_set_plain("webhook-drain");
	config_defaults(&cfg);
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1)
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'c':
			conf = optarg;
			break;
		case 'f':
			follow = 1;
			break;
		case 'u':
			if (num_parse(optarg, 0, 86400, &wait_s) == -1)
				usage();
			break;
		case 'F':
			if (num_parse(optarg, 1, 100000000, &fill_n) == -1)
				usage();
			break;
		case 'M':
			if (num_parse(optarg, 1, 1000000, &fill_m) == -1)
				usage();
			break;
		default:
			usage();
		}
	if (db == NULL || conf == NULL || optind != argc)
		usage();
	if (config_load(&cfg, conf) == -1)
		return 1;
	memset(&so, 0, sizeof(so));
	so.map_size = cfg.map_size;
	so.map_max = cfg.map_max;
	so.nosync = cfg.nosync;
	if ((rc = store_open(db, &so, &s)) != 0) {
		fprintf(stderr, "webhook-drain: %s: %s\n", db,
		    store_strerror(rc));
		return 1;
	}
	if (fill_n > 0) {
		fl.c = &cfg.webhook;
		fl.n = (uint64_t)fill_n;
		fl.m = (uint64_t)fill_m;
		for (fl.i = 0, rc = 0; fl.i < fl.n && rc == 0; fl.i += 1000)
			rc = store_write(s, fill_op, &fl);
		if (rc != 0)
			fprintf(stderr, "webhook-drain: --fill: %s\n",
			    store_strerror(rc));
		store_close(s);
		config_free(&cfg);
		return rc != 0;
	}
	if ((w = webhook_new(&cfg.webhook)) == NULL) {
		store_close(s);
		return 1;
	}
	if (wait_s >= 0)
		end = (int64_t)time_now_us() + wait_s * 1000000;
	for (;;) {
		now = (int64_t)time_now_us();
		if ((n = webhook_pass(w, s, now, &next)) < 0) {
			fprintf(stderr, "webhook-drain: %s\n",
			    store_strerror(n));
			rc = 1;
			break;
		}
		total += (uint64_t)n;
		if (next != 0 && next <= now)
			continue; /* more is due at once */
		if (follow || (wait_s >= 0 && next != 0 && now < end)) {
			nap(next == 0 ? 200000 : next - now);
			continue;
		}
		break;
	}
	if ((c = store_read(s, count_op, &left)) != 0 && rc == 0)
		rc = 1;
	printf("delivered %llu waiting %llu\n", (unsigned long long)total,
	    (unsigned long long)left);
	if (rc == 0 && wait_s >= 0 && left > 0)
		rc = 1;
	webhook_free(w);
	store_close(s);
	config_free(&cfg);
	return rc;
}
