/*
 * syncshim.c - an LD_PRELOAD library for test-promises.sh: it sees every
 * sync the responder's LMDB makes. Each call of fdatasync, fsync or msync
 * appends one byte to the file $SYNCSHIM_LOG and, with $SYNCSHIM_DELAY_MS,
 * first sleeps that long (a slow disk), then makes the real system call.
 * The test compiles it with cc when it runs; it is not built or installed
 * with picomdm.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void
syncshim_note(void)
{
	const char     *log = getenv("SYNCSHIM_LOG");
	const char     *delay = getenv("SYNCSHIM_DELAY_MS");
	struct timespec ts;
	long            ms;
	int             fd;

	if (log != NULL &&
	    (fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0600)) >= 0) {
		(void)write(fd, "s", 1);
		close(fd);
	}
	if (delay != NULL && (ms = strtol(delay, NULL, 10)) > 0) {
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
}

int
fdatasync(int fd)
{
	syncshim_note();
	return (int)syscall(SYS_fdatasync, fd);
}

int
fsync(int fd)
{
	syncshim_note();
	return (int)syscall(SYS_fsync, fd);
}

int
msync(void *addr, size_t len, int flags)
{
	syncshim_note();
	return (int)syscall(SYS_msync, addr, len, flags);
}
