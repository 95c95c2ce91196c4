#!/usr/bin/env python3
"""What the three-process model costs, measured (doc/performance.md).

    bench/privsep.py OLD_POP3D NEW_POP3D [--sessions 100] [--rounds 7]

1. Workload d of bench/run.py (a small session: login, LIST, RETR of each of
   100 messages, 400 KiB in all, QUIT) with a sha512crypt hash, so that the
   hash costs little next to the processes: OLD and NEW run in interleaved
   rounds of --sessions sessions each; prints the median wall time per
   session of each and the difference.
2. Peak RSS (VmHWM) on the 1 GiB / 100 000-message mailbox with a yescrypt
   hash, of every process of NEW's session: after login, STAT, UIDL, LIST and
   RETR of every message, read from /proc just before QUIT.

As root the sessions are served as the bench account (--account, made by
bench/run.py: pop3bench), as pop3d runs under inetd; the mailboxes are
generated once into bench/data/privsep (about 1 GiB).
"""
import argparse
import os
import pwd
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as B  # noqa: E402  (bench/run.py: its mailbox and command helpers)

sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import pop3lib as P  # noqa: E402

DATA = os.path.join(HERE, "data", "privsep")
# The new binary counts failed logins in a state directory (issue 11): its own here.
NEW_ARGS = ["--state-dir", os.path.join(DATA, "state")]


def prepare(account):
    os.makedirs(DATA, exist_ok=True)
    gen = os.path.join(HERE, "genmbox.py")
    for name, args in (("small.mbox", ["--small", "--messages", "100", "--size", "400K",
                                       "--seed", "2"]),
                       ("big.mbox", ["--messages", "100000", "--size", "1G", "--seed", "1"])):
        path = os.path.join(DATA, name)
        if not os.path.exists(path):
            B.log("generating %s" % path)
            subprocess.run([sys.executable, gen, *args, path], check=True)
    with open(os.path.join(DATA, "passwd"), "w") as f:
        sha512 = subprocess.run(["openssl", "passwd", "-6", B.PASSWORD], capture_output=True,
                                text=True, check=True).stdout.strip()
        f.write("small:%s\n" % sha512)
        # yescrypt: libxcrypt's default, what pop3d --hash makes
        h = subprocess.run([os.path.join(HERE, "..", "pop3d"), "--hash"], input=B.PASSWORD + "\n",
                           capture_output=True, text=True, check=True).stdout.strip()
        assert h.startswith("$y$"), h
        f.write("big:%s\n" % h)
    B.write_commands(os.path.join(DATA, "small.txt"), 100, ("small", "small"))
    if account:
        pw = pwd.getpwnam(account)
        for name in ("small.mbox", "big.mbox"):
            os.chown(os.path.join(DATA, name), pw.pw_uid, pw.pw_gid)
        os.chown(DATA, pw.pw_uid, pw.pw_gid)


def argv(binary, account, extra=()):
    a = [binary, "-P", os.path.join(DATA, "passwd"), "-m", os.path.join(DATA, "%u.mbox"),
         "-d", "0", "-L", os.path.join(DATA, "bench.log"), *extra]
    return a + (["-u", account] if account else [])


def sessions(binary, account, n, extra=()):
    """Wall seconds per session over n small sessions."""
    with open(os.path.join(DATA, "small.txt"), "rb") as f:
        script = f.read()
    cmd = argv(binary, account, extra)
    start = time.perf_counter()
    for _ in range(n):
        r = subprocess.run(cmd, input=script, stdout=subprocess.DEVNULL)
        assert r.returncode == 0, r.returncode
    return (time.perf_counter() - start) / n


def small_overhead(old, new, account, n, rounds):
    a, b = [], []
    for _ in range(rounds):
        a.append(sessions(old, account, n))
        b.append(sessions(new, account, n, NEW_ARGS))
    ma, mb = statistics.median(a), statistics.median(b)
    print("small session (100 x 4 KB, sha512crypt), %d rounds of %d, interleaved: "
          "old %.2f ms, new %.2f ms, +%.2f ms per session"
          % (rounds, n, ma * 1000, mb * 1000, (mb - ma) * 1000))


def vmhwm(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def big_rss(new, account):
    p = subprocess.Popen(argv(new, account, NEW_ARGS), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out = p.stdout

    def send(line):
        p.stdin.write(line.encode() + b"\r\n")
        p.stdin.flush()

    def multiline():
        while out.readline() != b".\r\n":
            pass
    out.readline()
    send("USER big")
    out.readline()
    send("PASS " + B.PASSWORD)
    first = out.readline()
    assert first.startswith(b"+OK big has"), first
    n = int(first.split()[3])
    session = P.reader_of(p.pid)
    keeper = P.parent_of(session)
    send("STAT")
    out.readline()
    for cmd in ("UIDL", "LIST"):
        send(cmd)
        out.readline()
        multiline()
    for i in range(1, n + 1):
        send("RETR %d" % i)
        out.readline()
        multiline()
    peaks = {"authenticator": vmhwm(p.pid), "keeper": vmhwm(keeper), "session": vmhwm(session)}
    send("QUIT")
    p.communicate(timeout=60)
    print("peak RSS on 1 GiB / %d messages, yescrypt, after STAT, UIDL, LIST, RETR all: %s"
          % (n, ", ".join("%s %.1f MiB" % kv for kv in peaks.items())))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--account", default=B.ACCOUNT)
    args = ap.parse_args()
    account = args.account if os.geteuid() == 0 else None
    if account:
        try:
            pwd.getpwnam(account)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", account], check=True)
    prepare(account)
    small_overhead(os.path.abspath(args.old), os.path.abspath(args.new), account,
                   args.sessions, args.rounds)
    big_rss(os.path.abspath(args.new), account)


if __name__ == "__main__":
    main()
