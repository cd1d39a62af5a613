/*
 * listen.c - the listening socket picomdm-fcgi accepts FastCGI requests
 * on: a unix socket it makes itself (--socket PATH), a TCP one
 * (--socket HOST:PORT), or the one a process manager
 * hands over on file descriptor 0 (spawn-fcgi, systemd socket activation).
 *
 * Rules (picomdm-fcgi(8)):
 *  - a socket file another process accepts connections on is never taken
 *    over: start-up fails, and the file is left alone;
 *  - a socket file that refuses connections (its responder is gone) is
 *    stale and replaced;
 *  - anything at the path that is not a socket is left alone: start-up
 *    fails;
 *  - the socket file is removed at exit only when it is still the one this
 *    process made, also when start-up fails after it was made;
 *  - without --socket, fd 0 must be a listening socket.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <netdb.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "extern.h"
#include "listen.h"
#include "picomdm/log.h"
#include "picomdm/util.h"

/* The socket file this process made, removed by listen_cleanup(). */
static struct {
	char  path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev;
	ino_t ino;
	int   made;
} own;

/* Remove the socket file if it is still the one made here. */
void
listen_cleanup(void)
{
	struct stat st;

	if (!own.made)
		return;
	own.made = 0;
	if (lstat(own.path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == own.dev && st.st_ino == own.ino)
		unlink(own.path);
}

/* Is something accepting connections on the unix socket at path? */
static int
probe(const struct sockaddr_un *sa, int *err)
{
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1) {
		*err = errno;
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	*err = rc == 0 ? 0 : errno;
	close(fd);
	return rc == 0;
}

/* The directory part of path, for error messages. */
static void
dir_of(const char *path, char *out, size_t n)
{
	char *s;

	strlcpy(out, path, n);
	if ((s = strrchr(out, '/')) == NULL)
		strlcpy(out, ".", n);
	else if (s == out)
		out[1] = '\0';
	else
		*s = '\0';
}

/* Give the socket file its owner, group and mode. */
static int
set_access(const struct config *cfg, const char *path)
{
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	if (cfg->socket_owner != NULL) {
		struct passwd *pw = getpwnam(cfg->socket_owner);

		if (pw == NULL) {
			log_error("socket_owner: no such user \"%s\"",
			    cfg->socket_owner);
			return -1;
		}
		uid = pw->pw_uid;
	}
	if (cfg->socket_group != NULL) {
		struct group *gr = getgrnam(cfg->socket_group);

		if (gr == NULL) {
			log_error("socket_group: no such group \"%s\"",
			    cfg->socket_group);
			return -1;
		}
		gid = gr->gr_gid;
	}
	if ((uid != (uid_t)-1 || gid != (gid_t)-1) &&
	    chown(path, uid, gid) == -1) {
		int e = errno;

		log_error("socket %s: cannot give it to %s%s%s: %s%s", path,
		    cfg->socket_owner ? cfg->socket_owner : "",
		    cfg->socket_group ? ":" : "",
		    cfg->socket_group ? cfg->socket_group : "",
		    strerror(e), e != EPERM ? "" : cfg->socket_owner != NULL ?
		    " (socket_owner needs root)" :
		    " (the user must be a member of socket_group)");
		return -1;
	}
	if (chmod(path, (mode_t)cfg->socket_mode) == -1) {
		log_error("socket %s: chmod %04o: %s", path,
		    (unsigned)cfg->socket_mode, strerror(errno));
		return -1;
	}
	return 0;
}

/* Bind and listen on the unix socket path; see the rules above. */
static int
open_unix(const struct config *cfg, const char *path)
{
	struct sockaddr_un sa;
	struct stat        st, st2;
	char               dir[sizeof(sa.sun_path)];
	mode_t             old;
	int                fd, rc, err, tries;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlcpy(sa.sun_path, path, sizeof(sa.sun_path)) >=
	    sizeof(sa.sun_path)) {
		log_error("socket %s: path longer than %zu bytes", path,
		    sizeof(sa.sun_path) - 1);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1) {
		log_error("socket %s: %s", path, strerror(errno));
		return -1;
	}
	for (tries = 0;; tries++) {
		/* Nobody may connect before the mode is set. */
		old = umask(0177);
		rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
		err = errno;
		umask(old);
		/*
		 * Listen at once: another responder starting now probes a
		 * socket that accepts, not one it could take for stale.
		 */
		if (rc == 0 && listen(fd, 1024) == -1) {
			log_error("socket %s: cannot listen: %s", path,
			    strerror(errno));
			unlink(path);
			goto fail;
		}
		if (rc == 0)
			break;
		if (err == ENOENT) {
			dir_of(path, dir, sizeof(dir));
			log_error("socket %s: directory %s does not exist "
			    "(create it, owned by the service user)", path,
			    dir);
			goto fail;
		}
		if (err != EADDRINUSE || tries >= 3) {
			log_error("socket %s: cannot bind: %s", path,
			    strerror(err));
			goto fail;
		}
		/* Something is there already: what? */
		if (lstat(path, &st) == -1) {
			if (errno == ENOENT)
				continue; /* gone meanwhile: try again */
			log_error("socket %s: %s", path, strerror(errno));
			goto fail;
		}
		if (!S_ISSOCK(st.st_mode)) {
			log_error("socket %s: exists and is not a socket; "
			    "not replacing it", path);
			goto fail;
		}
		rc = probe(&sa, &err);
		if (rc == 1) {
			log_error("socket %s: another responder is serving "
			    "on it; stop it first or choose another path",
			    path);
			goto fail;
		}
		if (rc == -1 || (err != ECONNREFUSED && err != ENOENT)) {
			log_error("socket %s: cannot tell whether it is in "
			    "use: %s", path, strerror(err));
			goto fail;
		}
		log_warn("socket %s: replacing a stale socket (nothing "
		    "accepts on it)", path);
		/* Only the file probed: not one made since. */
		if (lstat(path, &st2) == -1 || st2.st_ino != st.st_ino ||
		    st2.st_dev != st.st_dev)
			continue;
		if (unlink(path) == -1 && errno != ENOENT) {
			log_error("socket %s: cannot remove the stale socket: "
			    "%s", path, strerror(errno));
			goto fail;
		}
	}
	if (lstat(path, &st) == -1) {
		log_error("socket %s: %s", path, strerror(errno));
		goto fail;
	}
	strlcpy(own.path, path, sizeof(own.path));
	own.dev = st.st_dev;
	own.ino = st.st_ino;
	own.made = 1;
	if (set_access(cfg, path) == -1)
		goto fail;
	return fd;
fail:
	close(fd);
	listen_cleanup();
	return -1;
}

/*
 * HOST:PORT, or :PORT for every address: TCP, as libfcgi's
 * FCGX_OpenSocket would (which exits with errno as status on failure).
 */
static int
open_tcp(const char *spec)
{
	struct addrinfo hints, *res = NULL;
	char            host[256];
	const char     *port = strrchr(spec, ':') + 1;
	size_t          hl = (size_t)(port - 1 - spec);
	int             fd = -1, on = 1, gai;

	if (hl >= sizeof(host) || *port == '\0') {
		log_error("socket %s: want PATH, HOST:PORT or :PORT", spec);
		return -1;
	}
	memcpy(host, spec, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	if ((gai = getaddrinfo(hl ? host : NULL, port, &hints, &res)) != 0) {
		log_error("socket %s: %s", spec, gai_strerror(gai));
		return -1;
	}
	if ((fd = socket(res->ai_family, res->ai_socktype, 0)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 1024) == -1) {
		log_error("socket %s: cannot listen: %s", spec,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* Is fd a listening stream socket? */
static int
is_listening(int fd)
{
	struct stat st;
	int         v = 0;
	socklen_t   len = sizeof(v);

	if (fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode))
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == -1)
		return 0;
	return v != 0;
}

int
listen_open(const struct config *cfg)
{
	const char *s = cfg->socket;

	if (s == NULL) {
		if (!is_listening(0)) {
			log_error("no --socket given and file descriptor 0 is "
			    "not a listening socket: give --socket PATH, or "
			    "start picomdm-fcgi under spawn-fcgi or systemd "
			    "socket activation");
			return -1;
		}
		return 0;
	}
	if (strchr(s, '/') == NULL && strrchr(s, ':') != NULL)
		return open_tcp(s);
	return open_unix(cfg, s);
}
