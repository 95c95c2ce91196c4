"""A small Maildir MDA, as Postfix's local(8) delivers: the message written to
tmp/NAME and fsync'd, renamed to new/NAME, then (what makes the rename
durable, which Postfix leaves to the file system) new/ fsync'd, unless
--no-fsync (then nothing is fsync'd). No lock: a Maildir needs none.
Exit 0 when the message is in new/ (and, with fsync, every fsync returned
success), 1 when anything failed (a power cut refuses every change).

    mda_maildir.py [--no-fsync] MAILDIR NAME < message
"""
import os
import sys


def main():
    args = sys.argv[1:]
    do_fsync = True
    if args and args[0] == "--no-fsync":
        do_fsync = False
        args = args[1:]
    maildir, name = args
    msg = sys.stdin.buffer.read()
    tmp = os.path.join(maildir, "tmp", name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(msg)
        while view:
            view = view[os.write(fd, view):]
        if do_fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(maildir, "new", name))
    if do_fsync:
        dfd = os.open(os.path.join(maildir, "new"), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


if __name__ == "__main__":
    try:
        main()
    except OSError as e:
        sys.exit(f"mda_maildir: {e}")
