/*
 * apns-push - drive the push client (module/apns.c) and the push
 * certificate parser (module/pushcert.c) from the command line, for
 * tests/integration/test-apns.sh against tests/mock-apns.py. Not
 * installed: picomdm-notify will send what the store's outbox holds.
 *
 *	apns-push --url URL [--ca FILE] (--cert PEM --key PEM | --p12 FILE
 *	    [--password-file FILE]) [--topic TOPIC] [--expiration SECONDS]
 *	    [--retries N] [--backoff-ms MS] [--max-inflight N]
 *	    [--timeout-ms MS] [--file LIST] [TOKEN:MAGIC ...]
 *	apns-push --check (--cert PEM --key PEM | --p12 FILE ...)
 *
 * Each push is a TOKEN:MAGIC argument or a line of LIST. Pushes classified
 * "retry" are sent again, up to --retries times, after the backoff
 * apns_backoff_ms() computes (base --backoff-ms, cap 100 times that). One
 * line per push on stdout: "TOKEN RESULT STATUS REASON APNS-ID TIMESTAMP
 * ATTEMPTS" ("-" for an empty field, spaces in REASON as "_"; TIMESTAMP is
 * 410's, else 0); a summary line "pushes N delivered N
 * token-invalid N topic-stopped N retry N rejected N connections N" on
 * stderr. --topic sends another topic than the certificate's (to test
 * APNs' answer to that). --check prints the certificate's topic, end of
 * validity, state and days left.
 *
 * Exit status: 0 when every push got a result, 1 on a certificate or set-up
 * error, 2 on usage errors.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "picomdm/apns.h"
#include "picomdm/pushcert.h"
#include "picomdm/util.h"

#define FILE_MAX (64 * 1024 * 1024)

static void
usage(void)
{
	fprintf(stderr, "usage: apns-push --url URL [--ca FILE] "
	    "(--cert PEM --key PEM | --p12 FILE [--password-file FILE])\n"
	    "\t[--topic TOPIC] [--expiration SECONDS] [--retries N] "
	    "[--backoff-ms MS]\n\t[--max-inflight N] [--timeout-ms MS] "
	    "[--file LIST] [TOKEN:MAGIC ...]\n"
	    "       apns-push --check (--cert PEM --key PEM | --p12 FILE "
	    "[--password-file FILE])\n");
	exit(2);
}

/* A whole file, NUL-terminated; exits on failure. */
static char *
slurp(const char *path, size_t *len)
{
	struct buf b = {.max = FILE_MAX};
	char       tmp[65536];
	size_t     n;
	FILE      *f;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "apns-push: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		if (buf_append(&b, tmp, n) == -1) {
			fprintf(stderr, "apns-push: %s: too large\n", path);
			exit(1);
		}
	if (ferror(f) || buf_append(&b, "", 1) == -1) {
		fprintf(stderr, "apns-push: %s: read error\n", path);
		exit(1);
	}
	fclose(f);
	*len = b.len - 1;
	return (char *)b.p;
}

static long long
num_arg(const char *s, long long min, long long max, const char *what)
{
	long long v;

	if (num_parse(s, min, max, &v) == -1) {
		fprintf(stderr, "apns-push: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

/* Split "TOKEN:MAGIC" in place into a push. */
static int
push_parse(char *s, struct apns_push *p)
{
	char *c = strchr(s, ':');

	if (c == NULL)
		return -1;
	*c = '\0';
	memset(p, 0, sizeof(*p));
	p->token_hex = s;
	p->magic = c + 1;
	return 0;
}

/* One output field: "-" when empty, spaces as "_". */
static void
print_field(const char *s)
{
	putchar(' ');
	if (s == NULL || s[0] == '\0') {
		putchar('-');
		return;
	}
	for (; *s != '\0'; s++)
		putchar(*s == ' ' ? '_' : *s);
}

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{"url", required_argument, NULL, 'u'},
		{"ca", required_argument, NULL, 'a'},
		{"cert", required_argument, NULL, 'c'},
		{"key", required_argument, NULL, 'k'},
		{"p12", required_argument, NULL, 'p'},
		{"password-file", required_argument, NULL, 'w'},
		{"topic", required_argument, NULL, 't'},
		{"expiration", required_argument, NULL, 'e'},
		{"retries", required_argument, NULL, 'r'},
		{"backoff-ms", required_argument, NULL, 'b'},
		{"max-inflight", required_argument, NULL, 'm'},
		{"timeout-ms", required_argument, NULL, 'T'},
		{"file", required_argument, NULL, 'f'},
		{"check", no_argument, NULL, 'C'},
		{NULL, 0, NULL, 0},
	};
	struct apns_config cfg = {.expiration_s = -1};
	const char        *certf = NULL, *keyf = NULL, *p12f = NULL;
	const char        *passf = NULL, *topic = NULL, *listf = NULL;
	char               err[256], pass[1024], *cert, *key = NULL, *list;
	char              *line, *save;
	size_t             certlen, keylen = 0, listlen, n = 0, cap = 0, i;
	long long          retries = 0, backoff = 100, wait;
	unsigned           attempt, counts[APNS__MAX] = {0};
	unsigned          *attempts = NULL;
	int                ch, check = 0;
	struct pushcert   *pc;
	struct apns_push  *pushes = NULL, **todo = NULL, *batch = NULL;
	struct apns       *a;
	uint64_t           seed = (uint64_t)time(NULL);
	size_t             ntodo, total;

	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (ch) {
		case 'u': cfg.url = optarg; break;
		case 'a': cfg.ca_file = optarg; break;
		case 'c': certf = optarg; break;
		case 'k': keyf = optarg; break;
		case 'p': p12f = optarg; break;
		case 'w': passf = optarg; break;
		case 't': topic = optarg; break;
		case 'e':
			cfg.expiration_s = num_arg(optarg, 0, 365LL * 86400,
			    "expiration");
			break;
		case 'r': retries = num_arg(optarg, 0, 20, "retries"); break;
		case 'b':
			backoff = num_arg(optarg, 1, 60000, "backoff");
			break;
		case 'm':
			cfg.max_inflight = (unsigned)num_arg(optarg, 1, 10000,
			    "max-inflight");
			break;
		case 'T':
			cfg.timeout_ms = (long)num_arg(optarg, 1, 600000,
			    "timeout-ms");
			break;
		case 'f': listf = optarg; break;
		case 'C': check = 1; break;
		default: usage();
		}
	}
	argc -= optind;
	argv += optind;
	if ((p12f == NULL) == (certf == NULL) || (certf != NULL &&
	    keyf == NULL) || (p12f == NULL && passf != NULL) ||
	    (!check && cfg.url == NULL))
		usage();

	if (p12f != NULL) {
		cert = slurp(p12f, &certlen);
		if (passf != NULL && pushcert_password_read(passf, pass,
		    sizeof(pass), err, sizeof(err)) == -1) {
			fprintf(stderr, "apns-push: %s\n", err);
			return 1;
		}
		pc = pushcert_from_p12(cert, certlen, passf ? pass : NULL, err,
		    sizeof(err));
		explicit_bzero(pass, sizeof(pass));
	} else {
		cert = slurp(certf, &certlen);
		key = slurp(keyf, &keylen);
		pc = pushcert_from_pem(cert, certlen, key, keylen, err,
		    sizeof(err));
		freezero(key, keylen);
	}
	free(cert);
	if (pc == NULL) {
		fprintf(stderr, "apns-push: %s\n", err);
		return 1;
	}
	if (check) {
		char when[32];

		time_format((uint64_t)pc->not_after * 1000000, when,
		    sizeof(when));
		printf("topic %s\nnot_after %s\nstate %s\ndays_left %lld\n",
		    pc->topic, when, pushcert_state_name(pushcert_state(pc,
		    time(NULL))), pushcert_days_left(pc, time(NULL)));
		pushcert_free(pc);
		return 0;
	}

	list = listf != NULL ? slurp(listf, &listlen) : NULL;
	for (line = list ? strtok_r(list, "\n", &save) : NULL; line != NULL;
	    line = strtok_r(NULL, "\n", &save), n++) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((pushes = reallocarray(pushes, cap,
			    sizeof(*pushes))) == NULL)
				return 1;
		}
		if (push_parse(line, &pushes[n]) == -1) {
			fprintf(stderr, "apns-push: %s: not TOKEN:MAGIC\n",
			    listf);
			return 2;
		}
	}
	for (i = 0; i < (size_t)argc; i++, n++) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((pushes = reallocarray(pushes, cap,
			    sizeof(*pushes))) == NULL)
				return 1;
		}
		if (push_parse(argv[i], &pushes[n]) == -1)
			usage();
	}
	if (n == 0)
		usage();

	a = apns_new(&cfg, topic != NULL ? topic : pc->topic, pc->cert_pem,
	    pc->cert_pem_len, pc->key_pem, pc->key_pem_len, err, sizeof(err));
	pushcert_free(pc);
	if (a == NULL) {
		fprintf(stderr, "apns-push: %s\n", err);
		return 1;
	}
	if ((todo = calloc(n, sizeof(*todo))) == NULL ||
	    (batch = calloc(n, sizeof(*batch))) == NULL ||
	    (attempts = calloc(n, sizeof(*attempts))) == NULL)
		return 1;
	for (i = 0; i < n; i++)
		todo[i] = &pushes[i];
	ntodo = total = n;
	for (attempt = 0;; attempt++) {
		/* Send what is left as one batch, then copy results back. */
		for (i = 0; i < ntodo; i++) {
			batch[i] = *todo[i];
			attempts[todo[i] - pushes]++;
		}
		if (apns_send(a, batch, ntodo) == -1)
			fprintf(stderr, "apns-push: the client failed\n");
		for (i = 0; i < ntodo; i++)
			*todo[i] = batch[i];
		n = 0;
		for (i = 0; i < ntodo; i++)
			if (todo[i]->result == APNS_RETRY)
				todo[n++] = todo[i];
		ntodo = n;
		if (ntodo == 0 || attempt >= (unsigned)retries)
			break;
		wait = apns_backoff_ms(attempt + 1, (unsigned)retries, backoff,
		    backoff * 100, &seed);
		if (wait > 0) {
			struct timespec ts = {wait / 1000,
				(wait % 1000) * 1000000};

			while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
				;
		}
	}
	for (i = 0; i < total; i++) {
		struct apns_push *p = &pushes[i];

		counts[p->result]++;
		printf("%s %s %d", p->token_hex, apns_result_name(p->result),
		    p->status);
		print_field(p->reason);
		print_field(p->apns_id);
		printf(" %llu %u\n", (unsigned long long)p->timestamp_ms,
		    attempts[i]);
	}
	fprintf(stderr, "pushes %zu delivered %u token-invalid %u "
	    "topic-stopped %u retry %u rejected %u connections %lu\n",
	    total, counts[APNS_DELIVERED], counts[APNS_TOKEN_INVALID],
	    counts[APNS_TOPIC_STOPPED], counts[APNS_RETRY],
	    counts[APNS_REJECTED], apns_connections(a));
	apns_free(a);
	free(todo);
	free(batch);
	free(attempts);
	free(pushes);
	free(list);
	return fflush(stdout) == 0 ? 0 : 1;
}
