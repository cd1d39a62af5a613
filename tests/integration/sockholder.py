#!/usr/bin/python3
"""sockholder.py - hold a listening unix socket as systemd holds the one of
picomdm-fcgi.socket, and start a program on it again after it exits.

usage: sockholder.py PATH CMD [ARG...]

Binds and listens on PATH, then starts CMD with the socket as fd 3 and
LISTEN_FDS=1, LISTEN_PID=<its pid> (sd_listen_fds(3)). Each time CMD exits
the holder writes one line to standard error, "exit RC listening" when the
socket still accepts connections or "exit RC hup" when the program left it
shut down (systemd then fails the socket unit: POLLHUP), and starts CMD
again after a second: a connection made meanwhile waits in the backlog
for the new start, as under systemd. SIGTERM to the holder stops CMD and
the holder; the socket file is removed.
"""
import os
import select
import signal
import socket
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    path, cmd = sys.argv[1], sys.argv[2:]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(path)
    os.chmod(path, 0o666)
    ls.listen(128)
    child = 0
    stop = False

    def term(_sig, _frm):
        nonlocal stop
        stop = True
        if child:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, term)
    while not stop:
        child = os.fork()
        if child == 0:
            if ls.fileno() == 3:
                os.set_inheritable(3, True)
            else:
                os.dup2(ls.fileno(), 3, inheritable=True)
            os.environ["LISTEN_FDS"] = "1"
            os.environ["LISTEN_PID"] = str(os.getpid())
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.execvp(cmd[0], cmd)
        while True:
            try:
                _, st = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        child = 0
        p = select.poll()
        p.register(ls.fileno(), select.POLLIN)
        hup = any(ev & (select.POLLHUP | select.POLLERR)
                  for _, ev in p.poll(0))
        sys.stderr.write("sockholder: exit %d %s\n" % (
            os.waitstatus_to_exitcode(st), "hup" if hup else "listening"))
        sys.stderr.flush()
        if hup or stop:
            break
        time.sleep(1)
    ls.close()
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
