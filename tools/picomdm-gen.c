/*
 * picomdm-gen - fill a store with synthetic devices, fast, through the
 * public store API (store_write, large transactions): for tests of the
 * tooling at scale and for the benchmark. Not installed.
 *
 * Device i (counting from --start) has UDID "00008101-" and 16 hex
 * digits of i, serial "GEN" and 9 decimal digits of i, a device record
 * with its certificate binding, a device-channel enrollment with push
 * token and topic, the raw Authenticate and TokenUpdate messages it
 * would have sent, --queue commands waiting in its queue, and --results
 * answered commands (every third an Error with an ErrorChain). Commands
 * are shared by all devices, as when an operator sends one command to a
 * fleet. With --topics K, device i uses topic number i mod K; --topic
 * gives all of them one topic.
 *
 * The store is opened without fsync (the data reach the file when the
 * program exits) unless --sync.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "picomdm/log.h"
#include "picomdm/message.h"
#include "picomdm/store.h"
#include "picomdm/util.h"

#define TOPIC_FMT "com.apple.mgmt.External.picomdm-gen-%u"

struct gen {
	struct store *store;
	uint64_t      start; /* first device number of the batch */
	uint64_t      count; /* devices in the batch */
	unsigned      queue;
	unsigned      results;
	unsigned      topics;
	const char   *topic; /* one topic for all, else numbered ones */
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: picomdm-gen --db DIR --devices N [--queue N] "
	    "[--results N] [--start N]\n"
	    "                   [--topics N | --topic TOPIC] [--batch N] "
	    "[--sync]\n");
	exit(2);
}

static void
ids_of(uint64_t i, char *udid, size_t un, char *serial, size_t sn)
{
	snprintf(udid, un, "00008101-%016llX", (unsigned long long)i);
	snprintf(serial, sn, "GEN%09llu", (unsigned long long)i);
}

static void
topic_of(const struct gen *g, uint64_t i, char *buf, size_t n)
{
	if (g->topic != NULL)
		snprintf(buf, n, "%s", g->topic);
	else
		snprintf(buf, n, TOPIC_FMT, (unsigned)(i % g->topics));
}

/* The command plists, and the commands themselves (once). */
static int
cmd_name(char *buf, size_t n, const char *kind, unsigned j)
{
	int r =
	    snprintf(buf, n, "GEN%s-%04u-0000-4000-8000-000000000000", kind, j);

	return r < 0 || (size_t)r >= n ? -1 : 0;
}

/* The shared commands, once (GENQ-n queued, GENR-n answered). */
static int
commands_op(struct store_txn *t, void *arg)
{
	const struct gen    *g = arg;
	struct store_command c;
	struct buf	     b;
	char		     uuid[64];
	unsigned	     j;
	int		     rc = 0;

	for (j = 0; j < g->queue + g->results && rc == 0; j++) {
		memset(&b, 0, sizeof(b));
		cmd_name(uuid, sizeof(uuid), j < g->queue ? "Q" : "R",
		    j < g->queue ? j : j - g->queue);
		if (buf_printf(&b,
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
			"\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
			"\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
			"<plist version=\"1.0\">\n<dict>\n\t<key>Command</key>\n"
			"\t<dict>\n\t\t<key>RequestType</key>\n\t\t<string>"
			"DeviceInformation</string>\n\t\t<key>Queries</key>\n"
			"\t\t<array>\n\t\t\t<string>OSVersion</string>\n\t\t"
			"</array>\n\t</dict>\n\t<key>CommandUUID</key>\n\t<string>"
			"%s</string>\n</dict>\n</plist>\n",
			uuid) == -1)
			return STORE_ENOMEM;
		memset(&c, 0, sizeof(c));
		c.uuid = uuid;
		c.request_type = (char *)(uintptr_t) "DeviceInformation";
		c.raw = b.p;
		c.raw_len = b.len;
		rc = store_command_put(t, &c);
		if (rc == STORE_EEXIST)
			rc = 0;
		buf_free(&b);
	}
	return rc;
}

static const char plist_head[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC "
    "\"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/"
    "PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n";
static const char plist_tail[] = "</dict>\n</plist>\n";

/* One device, its enrollment, messages, queue and results. */
static int
gen_device(struct store_txn *t, const struct gen *g, uint64_t i)
{
	struct store_device	d;
	struct store_enrollment e;
	struct buf		b;
	unsigned char		tok[32], hash[32];
	char			udid[40], serial[24], topic[80], uuid[64];
	char		       *tok64 = NULL;
	unsigned		j;
	int			rc, known;

	ids_of(i, udid, sizeof(udid), serial, sizeof(serial));
	topic_of(g, i, topic, sizeof(topic));
	sha256(udid, strlen(udid), hash);
	sha256(hash, sizeof(hash), tok);
	memset(&b, 0, sizeof(b));

	memset(&d, 0, sizeof(d));
	d.id = udid;
	d.udid = udid;
	d.serial = serial;
	d.model = (char *)(uintptr_t) "MLPF3LL/A";
	d.model_name = (char *)(uintptr_t) "iPhone";
	d.product_name = (char *)(uintptr_t) "iPhone14,5";
	d.device_name = (char *)(uintptr_t) "Synthetic iPhone";
	d.os_version = (char *)(uintptr_t) "17.5.1";
	d.build_version = (char *)(uintptr_t) "21F90";
	d.topic = topic;
	memcpy(d.cert_hash, hash, 32);
	d.has_cert = 1;
	d.unlock_token = tok;
	d.unlock_token_len = 24;
	d.unlock_token_at = store_txn_now(t);
	d.created_at = store_txn_now(t);
	d.authenticated_at = store_txn_now(t);
	if ((rc = store_device_put(t, &d)) != 0 ||
	    (rc = store_cert_put(t, hash, udid)) != 0)
		return rc;

	memset(&e, 0, sizeof(e));
	e.id = udid;
	e.device_id = udid;
	e.type = ENROLL_DEVICE;
	e.topic = topic;
	e.push_magic =
	    (char *)(uintptr_t) "8B0E2D3C-7A61-4F59-9E1C-4D2B6A8F0C13";
	e.token = tok;
	e.token_len = sizeof(tok);
	e.enabled = 1;
	e.token_update_tally = 1;
	e.created_at = store_txn_now(t);
	e.last_seen = store_txn_now(t);
	e.token_updated_at = store_txn_now(t);
	if ((rc = store_enrollment_put(t, &e)) != 0)
		return rc;

	/* The messages it sent. */
	if (buf_printf(&b,
		"%s\t<key>MessageType</key>\n\t<string>Authenticate"
		"</string>\n\t<key>Model</key>\n\t<string>MLPF3LL/A</string>\n"
		"\t<key>OSVersion</key>\n\t<string>17.5.1</string>\n"
		"\t<key>ProductName</key>\n\t<string>iPhone14,5</string>\n"
		"\t<key>SerialNumber</key>\n\t<string>%s</string>\n"
		"\t<key>Topic</key>\n\t<string>%s</string>\n\t<key>UDID</key>\n"
		"\t<string>%s</string>\n%s",
		plist_head, serial, topic, udid, plist_tail) == -1)
		return STORE_ENOMEM;
	rc = store_msg_put(t, udid, MSG_AUTHENTICATE, topic, b.p, b.len);
	b.len = 0;
	if (rc != 0)
		return rc;
	if ((tok64 = base64_encode(tok, sizeof(tok))) == NULL)
		return STORE_ENOMEM;
	rc = buf_printf(&b,
	    "%s\t<key>MessageType</key>\n\t<string>TokenUpdate"
	    "</string>\n\t<key>PushMagic</key>\n\t<string>%s</string>\n"
	    "\t<key>Token</key>\n\t<data>%s</data>\n\t<key>Topic</key>\n"
	    "\t<string>%s</string>\n\t<key>UDID</key>\n\t<string>%s</string>\n"
	    "%s",
	    plist_head, e.push_magic, tok64, topic, udid, plist_tail);
	free(tok64);
	if (rc == -1)
		rc = STORE_ENOMEM;
	else
		rc =
		    store_msg_put(t, udid, MSG_TOKEN_UPDATE, topic, b.p, b.len);
	if (rc != 0)
		goto out;

	for (j = 0; j < g->queue && rc == 0; j++) {
		cmd_name(uuid, sizeof(uuid), "Q", j);
		rc = store_queue_push(t, udid, uuid, 50, 0);
	}
	for (j = 0; j < g->results && rc == 0; j++) {
		cmd_name(uuid, sizeof(uuid), "R", j);
		if ((rc = store_queue_push(t, udid, uuid, 50, 0)) != 0)
			break;
		b.len = 0;
		if (buf_printf(&b,
			"%s\t<key>CommandUUID</key>\n\t<string>%s"
			"</string>\n%s\t<key>Status</key>\n\t<string>%s</string>\n"
			"\t<key>UDID</key>\n\t<string>%s</string>\n%s",
			plist_head, uuid,
			j % 3 == 2
			    ? "\t<key>ErrorChain</key>\n\t<array>\n"
			      "\t\t<dict>\n\t\t\t<key>ErrorCode</key>\n\t\t\t<integer>"
			      "12021</integer>\n\t\t\t<key>ErrorDomain</key>\n\t\t\t"
			      "<string>MCMDMErrorDomain</string>\n\t\t</dict>\n"
			      "\t</array>\n"
			    : "\t<key>QueryResponses</key>\n\t<dict>\n"
			      "\t\t<key>OSVersion</key>\n\t\t<string>17.5.1</string>\n"
			      "\t</dict>\n",
			j % 3 == 2 ? "Error" : "Acknowledged", udid,
			plist_tail) == -1) {
			rc = STORE_ENOMEM;
			break;
		}
		rc = store_result_put(t, udid, uuid,
		    j % 3 == 2 ? CMD_STATUS_ERROR : CMD_STATUS_ACKNOWLEDGED,
		    b.p, b.len, 1, &known);
	}
out:
	buf_free(&b);
	return rc;
}

static int
batch_op(struct store_txn *t, void *arg)
{
	const struct gen *g = arg;
	uint64_t	  i;
	int		  rc;

	for (i = 0; i < g->count; i++)
		if ((rc = gen_device(t, g, g->start + i)) != 0)
			return rc;
	return 0;
}

/* Open (nosync unless --sync), make the commands, then the devices in
 * transactions of --batch devices each. */
int
main(int argc, char *argv[])
{
	static const struct option lo[] = {{"db", required_argument, NULL, 'd'},
	    {"devices", required_argument, NULL, 'n'},
	    {"queue", required_argument, NULL, 'q'},
	    {"results", required_argument, NULL, 'r'},
	    {"start", required_argument, NULL, 's'},
	    {"topics", required_argument, NULL, 't'},
	    {"topic", required_argument, NULL, 'T'},
	    {"batch", required_argument, NULL, 'b'},
	    {"sync", no_argument, NULL, 'S'}, {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0}};
	struct store_opts	   so;
	struct gen		   g;
	const char		  *db = NULL, *topic = NULL;
	long long devices = -1, queue = 0, results = 0, start = 1, topics = 1,
		  batch = 1000, v;
	uint64_t t0, done;
	int	 ch, rc, sync = 0, tty = isatty(STDERR_FILENO);

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'd') {
			db = optarg;
			continue;
		}
		if (ch == 'T') {
			topic = optarg;
			continue;
		}
		if (ch == 'S') {
			sync = 1;
			continue;
		}
		if (ch == 'h' || ch == '?' ||
		    num_parse(optarg, 0, 100000000, &v) == -1)
			usage();
		switch (ch) {
		case 'n':
			devices = v;
			break;
		case 'q':
			queue = v;
			break;
		case 'r':
			results = v;
			break;
		case 's':
			start = v;
			break;
		case 't':
			topics = v > 0 ? v : 1;
			break;
		case 'b':
			batch = v > 0 ? v : 1;
			break;
		}
	}
	if (optind != argc || db == NULL || devices < 0 || queue > 1000 ||
	    results > 1000)
		usage();
	log_set_level(LOG_WARN);
	memset(&so, 0, sizeof(so));
	so.nosync = !sync;
	so.map_size = (size_t)256 << 20;
	memset(&g, 0, sizeof(g));
	if ((rc = store_open(db, &so, &g.store)) != 0) {
		fprintf(
		    stderr, "picomdm-gen: %s: %s\n", db, store_strerror(rc));
		return 1;
	}
	g.queue = (unsigned)queue;
	g.results = (unsigned)results;
	g.topics = (unsigned)topics;
	g.topic = topic;
	t0 = time_mono_us();
	if ((rc = store_write(g.store, commands_op, &g)) != 0)
		goto fail;
	for (done = 0; done < (uint64_t)devices; done += g.count) {
		g.start = (uint64_t)start + done;
		g.count = (uint64_t)devices - done < (uint64_t)batch
		    ? (uint64_t)devices - done
		    : (uint64_t)batch;
		if ((rc = store_write(g.store, batch_op, &g)) != 0)
			goto fail;
		if (tty)
			fprintf(stderr, "\rpicomdm-gen: %llu devices",
			    (unsigned long long)(done + g.count));
	}
	store_close(g.store);
	fprintf(stderr, "%spicomdm-gen: %lld devices in %.1f s\n",
	    tty ? "\r" : "", devices, (double)(time_mono_us() - t0) / 1e6);
	return 0;
fail:
	fprintf(stderr, "picomdm-gen: %s\n", store_strerror(rc));
	store_close(g.store);
	return 1;
}
