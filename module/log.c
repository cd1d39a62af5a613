/*
 * log.c - one line per event on stderr, written with a single write(2) so
 * that lines from concurrent worker threads never interleave.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "picomdm/log.h"

static enum log_level log_max = LOG_INFO;
static const char    *log_prog; /* plain "prog: message" lines when set */
static unsigned       log_nerr; /* error lines written */

static const char *const log_names[LOG__MAX] = {
	"error", "warn", "info", "debug"
};

void
log_set_level(enum log_level l)
{
	if (l < LOG__MAX)
		log_max = l;
}

void
log_set_plain(const char *prog)
{
	log_prog = prog;
}

unsigned
log_error_count(void)
{
	return __atomic_load_n(&log_nerr, __ATOMIC_RELAXED);
}

int
log_level_parse(const char *s)
{
	int i;

	for (i = 0; i < LOG__MAX; i++)
		if (strcmp(s, log_names[i]) == 0)
			return i;
	return -1;
}

int
log_enabled(enum log_level l)
{
	return l <= log_max;
}

/*
 * Format "2026-11-27T10:53:10.123456Z level message\n" into a stack buffer
 * (long lines are cut, never overflowed) and write it in one call.
 */
void
log_msg(enum log_level l, const char *fmt, ...)
{
	char            line[1024];
	struct timespec ts;
	struct tm       tm;
	va_list         ap;
	int             n, m;
	size_t          len;

	if (l > log_max || l >= LOG__MAX)
		return;
	/* Plain lines: the first error is the cause; the rest echo it. */
	if (l == LOG_ERROR &&
	    __atomic_fetch_add(&log_nerr, 1, __ATOMIC_RELAXED) > 0 &&
	    log_prog != NULL)
		return;
	if (log_prog != NULL)
		n = snprintf(line, sizeof(line), "%s: ", log_prog);
	else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
		    "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %s ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000, log_names[l]);
	}
	if (n < 0)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
}
