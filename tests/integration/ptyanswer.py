#!/usr/bin/python3
"""ptyanswer.py - answer a program's question on a terminal, as an operator
at it would, with something done between the question and the answer.

usage: ptyanswer.py ANSWER BETWEEN CMD [ARG...]

Starts CMD with a pseudo-terminal as its standard input, output and
error (picomdmctl purge asks only on a terminal), waits for the question
(a line ending in "[y/N] ", at most 60 s), runs the shell command
BETWEEN ("" for none), then types ANSWER and a newline. Everything CMD
wrote goes to standard output (with "\\r\\n" as "\\n"); the exit status is
CMD's, or 125 when no question came.
"""
import os
import pty
import select
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    answer, between, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    out = b""
    asked = False
    deadline = time.monotonic() + 60
    while True:
        if not asked and out.rstrip(b" ").endswith(b"[y/N]"):
            asked = True
            if between:
                subprocess.run(between, shell=True, check=False)
            os.write(fd, answer.encode() + b"\n")
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        try:
            data = os.read(fd, 4096)
        except OSError:  # EIO: the program closed the terminal
            break
        if not data:
            break
        out += data
    if not asked:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.replace(b"\r\n", b"\n").decode("utf-8", "replace"))
    sys.stdout.flush()
    if not asked:
        return 125
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
