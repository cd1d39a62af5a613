/*
 * log.h - one line per event to stderr (nginx/systemd collect it).
 *
 * Lines are "LEVEL message"; lowercase, no final period, never a token,
 * key, UnlockToken or BootstrapToken value.
 */
#ifndef PICOMDM_LOG_H
#define PICOMDM_LOG_H

enum log_level {
	LOG_ERROR = 0,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG,
	LOG__MAX
};

/* Set the most verbose level printed; parse one from its name (-1 if bad). */
void log_set_level(enum log_level);
/*
 * Lines as "prog: message", no time or level, and of the errors only the
 * first, which names the cause (command-line tools without --verbose).
 */
void log_set_plain(const char *prog);
/* How many error lines were logged (or dropped as echoes) so far. */
unsigned log_error_count(void);
int  log_level_parse(const char *);
int  log_enabled(enum log_level);

/* printf-style; thread-safe (one write(2) per line). */
void log_msg(enum log_level, const char *, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
