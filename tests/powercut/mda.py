"""A small MDA, as Debian's deliver: dotlock (link method, our pid inside;
a lock of a dead pid or older than 5 minutes is broken, as liblockfile does),
fcntl lock, append one message, fsync (unless --no-fsync), unlock.
Exit 0 when the message was appended and (with fsync) fsync returned
success, 1 when anything failed (a power cut refuses every change).

    mda.py [--no-fsync] MAILBOX < message
"""
import fcntl
import os
import socket
import sys
import time


def main():
    args = sys.argv[1:]
    do_fsync = True
    if args and args[0] == "--no-fsync":
        do_fsync = False
        args = args[1:]
    box = args[0]
    msg = sys.stdin.buffer.read()
    lock = box + ".lock"
    tmp = f"{os.path.dirname(box)}/.lk.mda.{os.getpid()}.{socket.gethostname()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    deadline = time.time() + 20
    while True:
        try:
            os.link(tmp, lock)
        except FileExistsError:
            pass
        if os.stat(tmp).st_nlink == 2:
            break
        try:   # a lock whose holder is gone, or older than 5 minutes, is stale
            if time.time() - os.stat(lock).st_mtime > 300:
                os.unlink(lock)
                continue
            pid = int(open(lock).read().strip() or "0")
            if pid > 0:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    os.unlink(lock)
                    continue
        except (OSError, ValueError):
            pass
        if time.time() > deadline:
            os.unlink(tmp)
            sys.exit("mda: mailbox locked")
        time.sleep(0.02)
    os.unlink(tmp)
    try:
        with open(box, "ab") as f:
            fcntl.lockf(f, fcntl.LOCK_EX)
            f.write(msg)
            f.flush()
            if do_fsync:
                os.fsync(f.fileno())
            fcntl.lockf(f, fcntl.LOCK_UN)
    finally:
        os.unlink(lock)


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        sys.exit(f"mda: {e}")
