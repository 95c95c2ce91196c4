#!/usr/bin/env python3
"""Measure pop3d on a Maildir: first login (no index), second login (index),
download all, delete all, next to the floors (readdir + stat of every file,
cat of every file) and, when installed, Dovecot on a copy of the same
Maildir. Medians over --runs, as bench/run.py (whose helpers it uses).

    python3 bench/maildir.py                 # 100 000 messages, about 1 GiB, 3 runs
    python3 bench/maildir.py --quick         # 300 messages, 2 MB, one run: seconds
    python3 bench/maildir.py --names dovecot # names with ,S= and ,W= (sizes known)
    python3 bench/maildir.py --logins-only   # the floors and the logins only

The Maildir is generated once (bench/genmbox.py's messages, without the From_
line) into DATA/maildir-NAMES-MESSAGES-SIZE/pristine and copied for each server
and before each deleting run (cp -a, then sync: real files, not hard links,
so that a deletion frees the file's blocks as on a real host). Names are as Postfix writes them,
"<stamp>.V<dev>I<ino>M<usec>.<host>", with no ,W= size, so that a login
without an index reads every file; about 80% of them (the older ones) are in
cur/ with ":2,S" as an IMAP client leaves them, the rest in new/.

Run as root: pop3d is measured as inetd starts it (root, dropping to --user;
the Maildir belongs to the account), and Dovecot (dovecot-pop3d, run
pre-authenticated as the account, its binary straight, no service) can run.
"""
import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import genmbox as G  # noqa: E402  (the message generator)
import run as B  # noqa: E402  (time_once, measure, Result, write_commands, the cheap hash)

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import pop3lib as P  # noqa: E402  (the process model seen from /proc)

HOST = "mail.example.org"
DEV = 0xfe01                 # the device number in Postfix names (made up, fixed)
NEW_SHARE = 0.2              # the newest fifth is in new/, the rest in cur/ with ":2,S"
MEMORY_GOAL_MIB = 8.0

# The readdir floors, timed inside Python so that the interpreter's start
# (30-50 ms) is not counted; they print wall, user and system seconds and
# VmHWM. "stat": os.scandir + os.stat(dir_fd=) on every name of new/ and cur/
# (getdents64 a buffer at a time, one newfstatat per file: what a scanner
# that trusts ,W= or an index needs). "read": openat, read until the end into
# one 1 MiB buffer, close (what a scanner needs that counts the LFs itself).
SCAN = ("import os,sys,time,resource\n"
        "t=time.perf_counter();r=resource.getrusage(resource.RUSAGE_SELF);n=0\n"
        "buf=bytearray(1<<20)\n"
        "for sub in ('new','cur'):\n"
        "    fd=os.open(os.path.join(sys.argv[1],sub),os.O_RDONLY|os.O_DIRECTORY)\n"
        "    for e in os.scandir(fd):\n"
        "        if sys.argv[2]=='stat':\n"
        "            n+=os.stat(e.name,dir_fd=fd,follow_symlinks=False).st_size\n"
        "            continue\n"
        "        f=os.open(e.name,os.O_RDONLY|os.O_NOFOLLOW,dir_fd=fd)\n"
        "        while os.readv(f,[buf])==len(buf):\n"
        "            pass\n"
        "        os.close(f)\n"
        "    os.close(fd)\n"
        "e=resource.getrusage(resource.RUSAGE_SELF)\n"
        "m=[l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "print(time.perf_counter()-t,e.ru_utime-r.ru_utime,e.ru_stime-r.ru_stime,m[0])\n")


# ---- the Maildir ------------------------------------------------------------

def message_bytes(rng, pool, n, size):
    """genmbox's message n without its From_ line, as Postfix stores it
    (Return-Path and Delivered-To on top), ending in LF."""
    head = G.header(rng, n).split(b"\n", 1)[1]
    head = head.replace(b"\n", b"\nDelivered-To: user@example.org\n", 1)
    body = G.attachment_body(rng, pool, size) if size >= G.BIG_MIN else G.text_body(rng, pool, size)
    return head + body


def file_name(n, style, data):
    """Message n's base name: Postfix's or Dovecot's form."""
    stamp = 1262304000 + n * 613 + (n * 7919) % 600
    usec = (n * 104729) % 1000000
    if style == "postfix":
        return "%d.V%xI%xM%d.%s" % (stamp, DEV, 0x100000 + 3 * n, usec, HOST), stamp
    crlf = len(data) + data.count(b"\n")
    return "%d.M%dP%dQ%d.%s,S=%d,W=%d" % (stamp, usec, 4000 + n % 30000, n % 97 + 1, HOST,
                                          len(data), crlf), stamp


def generate(path, messages, total, style, owner):
    """Write the Maildir; returns (messages, octets with CRLF line ends)."""
    rng = random.Random(1)
    pool = G.make_line_pool(rng)
    sizes = G.plan_sizes(rng, messages, total)
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(tmp, sub), mode=0o700)
    first_new = int(messages * (1 - NEW_SHARE))
    crlf_total = 0
    for n, size in enumerate(sizes):
        data = message_bytes(rng, pool, n, size)
        name, stamp = file_name(n, style, data)
        where = "new/" + name if n >= first_new else "cur/%s:2,%s" % (name, "RS" if n % 9 == 0 else "S")
        fd = os.open(os.path.join(tmp, where), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.utime(fd, (stamp, stamp))
            if owner:
                os.fchown(fd, *owner)
        finally:
            os.close(fd)
        crlf_total += len(data) + data.count(b"\n")
    if owner:
        for d in (tmp, *(os.path.join(tmp, s) for s in ("cur", "new", "tmp"))):
            os.chown(d, *owner)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(tmp, path)
    return messages, crlf_total


def copy_maildir(src, dst):
    """A fresh copy (cp -a: owner, modes, mtimes; real files, not links),
    written back to disk so that no writeback runs during a timed run."""
    if os.path.lexists(dst):
        shutil.rmtree(dst)
    B.sh("cp -a %s %s && sync" % (src, dst))


def files_left(maildir):
    return sum(len(os.listdir(os.path.join(maildir, s))) for s in ("new", "cur"))


# ---- the bench --------------------------------------------------------------

class Bench(B.Bench):
    """bench/run.py's Bench for its report rows and account; Maildir workloads."""

    def generate(self):
        a = self.args
        os.makedirs(self.data, exist_ok=True)
        if self.root:
            self.ensure_account()
            os.chmod(self.data, 0o755)
        base = os.path.join(self.data, "maildir-%s-%d-%s" % (a.names, a.messages, a.size))
        os.makedirs(base, exist_ok=True)
        os.chmod(base, 0o755)
        self.pristine = os.path.join(base, "pristine")
        stamp = os.path.join(base, "pristine.done")
        if not (os.path.isdir(self.pristine) and os.path.exists(stamp)):
            B.log("generating %s (%d messages, %s, %s names)" % (self.pristine, a.messages,
                                                               a.size, a.names))
            start = time.perf_counter()
            n, octets = generate(self.pristine, a.messages, G.parse_size(a.size), a.names,
                                 self.owner)
            with open(stamp, "w") as f:
                f.write("%d %d\n" % (n, octets))
            B.log("generated in %.0f s" % (time.perf_counter() - start))
        self.n, self.octets = map(int, open(stamp).read().split())
        self.disk = sum(e.stat().st_size for s in ("new", "cur")
                        for e in os.scandir(os.path.join(self.pristine, s)))
        self.base = base
        self.run = os.path.join(base, "run")

    def setup_pop3d(self):
        r = self.run
        shutil.rmtree(r, ignore_errors=True)
        os.makedirs(r)
        self.big = os.path.join(r, "big")
        self.dele = os.path.join(r, "dele")
        copy_maildir(self.pristine, self.big)
        with open(os.path.join(r, "passwd"), "w") as f:
            for user in ("big", "dele"):
                f.write("%s:%s\n" % (user, B.CHEAP_HASH))
        for script, kind in (("stat.txt", ("stat", "big")), ("all.txt", ("all", "big")),
                             ("dele.txt", ("dele", "dele")), ("stat-dele.txt", ("stat", "dele"))):
            B.write_commands(os.path.join(r, script), self.n, kind)
        if self.owner:
            os.chown(r, *self.owner)
            for name in os.listdir(r):
                if name.endswith(".txt") or name == "passwd":
                    os.chown(os.path.join(r, name), *self.owner)
        self.pop3d = os.path.abspath(self.args.pop3d)

    def argv(self, index=False):
        r = self.run
        a = [self.pop3d, "-P", r + "/passwd", "-m", r + "/%u/", "-d", "0", "-L", r + "/pop3d.log",
             "--state-dir=%s/state" % r]
        if index:
            a.append("--index-dir=%s/index-%%u" % r)
        if self.root:
            a += ["-u", B.ACCOUNT]
        return a

    def cmd(self, script, index=False, out="> /dev/null"):
        return "%s < %s/%s %s" % (" ".join(self.argv(index)), self.run, script, out)

    # ---- is it served at all? ------------------------------------------------

    def check_served(self):
        """pop3d's STAT and its download must be right before any timing means anything."""
        script = open(os.path.join(self.run, "stat.txt"), "rb").read()
        out = subprocess.run(self.argv(), input=script, capture_output=True).stdout
        lines = out.split(b"\r\n")
        stat = [l for l in lines if l.startswith(b"+OK ") and len(l.split()) == 3
                and l.split()[1].isdigit()]
        want = b"+OK %d %d" % (self.n, self.octets)
        if not stat or stat[0] != want:
            sys.exit("bench: pop3d does not serve the Maildir right: STAT gave %r, want %r\n%s"
                     % (stat[:1], want, out[:400].decode(errors="replace")))
        ends = octets = 0
        tail = b""
        with open(os.path.join(self.run, "all.txt"), "rb") as f:
            p = subprocess.Popen(self.argv(), stdin=f, stdout=subprocess.PIPE)
            for block in iter(lambda: p.stdout.read(1 << 20), b""):   # 1 GiB: never all held
                ends += (tail + block).count(b"\r\n.\r\n") - tail.count(b"\r\n.\r\n")
                octets += len(block)
                tail = block[-4:]
            p.wait()
        # UIDL, LIST and every RETR end in a lone dot
        if ends < self.n + 2 or octets < self.octets:
            sys.exit("bench: UIDL + LIST + RETR all gave %d multi-line ends and %d octets, want "
                     "%d and at least %d" % (ends, octets, self.n + 2, self.octets))

    # ---- the measurements ----------------------------------------------------

    def floors(self):
        runs = self.args.runs
        d = self.big
        for mode, label in (("stat", "readdir + stat every file (python)"),
                            ("read", "readdir + open + read every file (python)")):
            argv = [sys.executable, "-c", SCAN, d, mode]
            samples = [tuple(float(x) for x in subprocess.run(argv, capture_output=True,
                                                              check=True).stdout.split())
                       for _ in range(runs)]
            self.add("floor", label, "python3 -c \"$SCAN\" %s %s  # SCAN in bench/maildir.py"
                     % (d, mode), B.Result(samples))
        cmd = "find %s/new %s/cur -type f -printf '%%s\\n' > /dev/null" % (d, d)
        self.add("floor", "readdir + stat every file (find -printf)", cmd, B.measure(cmd, runs))
        cmd = "cd %s && find new cur -type f -print0 | xargs -0 cat > /dev/null" % d
        self.add("floor", "cat every file > /dev/null", cmd, B.measure(cmd, runs))
        cmd = "cd %s && find new cur -type f -print0 | xargs -0 cat | cat > /dev/null" % d
        self.add("floor", "cat every file | cat > /dev/null", cmd, B.measure(cmd, runs))
        if self.args.logins_only:
            return
        cmd = "find %s/new %s/cur -type f -delete" % (self.dele, self.dele)
        self.add("floor", "unlink every file (find -delete)", cmd,
                 B.measure(cmd, runs, setup=lambda: copy_maildir(self.pristine, self.dele)))

    def bench_pop3d(self):
        runs = self.args.runs
        idx_big = os.path.join(self.run, "index-big")
        cmd = self.cmd("stat.txt")
        self.add("pop3d", "first login + STAT + QUIT, no index", cmd, B.measure(cmd, runs))
        cmd = self.cmd("stat.txt", index=True)
        self.add("pop3d", "first login + STAT + QUIT, writes the index", cmd,
                 B.measure(cmd, runs, setup=lambda: shutil.rmtree(idx_big, ignore_errors=True)))
        B.time_once(cmd)
        self.add("pop3d", "second login + STAT + QUIT, index", cmd, B.measure(cmd, runs))
        if self.args.logins_only:
            return
        cmd = self.cmd("all.txt", out="| cat > /dev/null")
        self.add("pop3d", "UIDL + LIST + RETR all, to a pipe", cmd, B.measure(cmd, runs))
        cmd = self.cmd("all.txt", index=True, out="| cat > /dev/null")
        self.add("pop3d", "UIDL + LIST + RETR all, pipe, index", cmd, B.measure(cmd, runs))
        cmd = self.cmd("dele.txt", out="| cat > /dev/null")
        self.add("pop3d", "RETR + DELE all + QUIT", cmd,
                 B.measure(cmd, runs, setup=lambda: copy_maildir(self.pristine, self.dele)))
        if files_left(self.dele):
            sys.exit("bench: RETR + DELE all + QUIT left %d files" % files_left(self.dele))
        stat_dele = self.cmd("stat-dele.txt", index=True)

        def fresh_and_indexed():   # an untimed first login writes the index
            copy_maildir(self.pristine, self.dele)
            B.time_once(stat_dele)
        cmd = self.cmd("dele.txt", index=True, out="| cat > /dev/null")
        self.add("pop3d", "RETR + DELE all + QUIT, index", cmd,
                 B.measure(cmd, runs, setup=fresh_and_indexed))
        if files_left(self.dele):
            sys.exit("bench: RETR + DELE all + QUIT (index) left %d files" % files_left(self.dele))

    def worker_rss(self):
        """VmHWM of each process of a session on the big Maildir after login,
        STAT, UIDL, LIST and RETR of every message, read just before QUIT."""
        p = subprocess.Popen(self.argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        P.client_of(p.pid)   # before the handoff replaces the authenticator's stdin
        out = p.stdout

        def send(line):
            p.stdin.write(line.encode() + b"\r\n")
            p.stdin.flush()
            return out.readline()

        def multiline():
            while out.readline() != b".\r\n":
                pass
        out.readline()
        send("USER big")
        if not send("PASS " + B.PASSWORD).startswith(b"+OK"):
            sys.exit("bench: login refused")
        session = P.reader_of(p.pid)
        keeper = P.parent_of(session)
        send("STAT")
        for cmd in ["UIDL", "LIST"] + ["RETR %d" % i for i in range(1, self.n + 1)]:
            send(cmd)
            multiline()
        peaks = {"authenticator": vmhwm(p.pid), "keeper": vmhwm(keeper),
                 "session process": vmhwm(session)}
        # Pss: the pages the keeper and the session process share (the message
        # list, copied on write at the fork) counted half in each.
        self.pss = {"keeper": pss(keeper), "session process": pss(session)}
        send("QUIT")
        p.communicate(timeout=120)
        self.peaks = peaks
        B.log("VmHWM before QUIT: " + ", ".join("%s %.1f MiB" % kv for kv in peaks.items()))

    def bench_dovecot(self):
        exe = self.args.dovecot or "/usr/lib/dovecot/pop3"
        if not os.access(exe, os.X_OK):
            return "Dovecot: not installed (apt-get install dovecot-core dovecot-pop3d)"
        if not self.root:
            return "Dovecot: run as root (it is run pre-authenticated as %s)" % B.ACCOUNT
        w = os.path.join(self.base, "dovecot")
        shutil.rmtree(w, ignore_errors=True)
        os.makedirs(os.path.join(w, "base"))
        with open(os.path.join(w, "dovecot.conf"), "w") as f:
            f.write("protocols = pop3\nssl = no\nbase_dir = %(w)s/base\nstate_dir = %(w)s/base\n"
                                        "mail_location = maildir:%(w)s/Maildir:INDEX=%(w)s/index:CONTROL=%(w)s/control\n"
                    "pop3_uidl_format = %%f\n" % {"w": w})
        for name in ("stat", "all", "dele"):
            B.write_commands(os.path.join(w, name + ".txt"), self.n, (name, B.ACCOUNT), login=False)
        for dirpath, dirs, files in os.walk(w):
            for name in dirs + files:
                os.chown(os.path.join(dirpath, name), *self.owner)
        os.chown(w, *self.owner)
        env = {"USER": B.ACCOUNT, "HOME": w, "PATH": "/usr/bin:/bin"}
        base = "setpriv --reuid=%s --regid=%s --clear-groups %s -c %s/dovecot.conf" % (
            B.ACCOUNT, B.ACCOUNT, exe, w)
        state = ("Maildir", "index", "control")
        saved = os.path.join(w, "saved")

        def cold():   # the pristine Maildir, no index, no uidlist
            B.sh("cd %s && rm -rf %s" % (w, " ".join(state)))
            copy_maildir(self.pristine, os.path.join(w, "Maildir"))

        def restore():   # the Maildir and Dovecot's files as its first login left them
            B.sh("cd %s && rm -rf %s && cp -a %s . && sync" % (
                w, " ".join(state), " ".join(os.path.join(saved, s) for s in state)))
        runs = self.args.runs
        stat = "cat %s/stat.txt | %s > /dev/null" % (w, base)   # Dovecot wants a pipe on stdin
        self.add("dovecot", "first login + STAT + QUIT, cold", stat,
                 B.measure(stat, runs, setup=cold, env=env))
        got = subprocess.run(stat.replace(" > /dev/null", ""), shell=True, env=env,
                             capture_output=True).stdout.split(b"\r\n")[0]
        if got != b"+OK %d %d" % (self.n, self.octets):
            return "Dovecot: its STAT says %r, want %d %d: not compared" % (got, self.n, self.octets)
        os.makedirs(saved)
        B.sh("cd %s && cp -a %s %s/" % (w, " ".join(state), saved))
        self.add("dovecot", "second login + STAT + QUIT, warm", stat, B.measure(stat, runs, env=env))
        if self.args.logins_only:
            return None
        cmd = "cat %s/all.txt | %s | cat > /dev/null" % (w, base)
        self.add("dovecot", "UIDL + LIST + RETR all, to a pipe", cmd,
                 B.measure(cmd, runs, setup=restore, env=env))
        cmd = "cat %s/dele.txt | %s | cat > /dev/null" % (w, base)
        self.add("dovecot", "RETR + DELE all + QUIT", cmd, B.measure(cmd, runs, setup=restore, env=env))
        left = files_left(os.path.join(w, "Maildir"))
        if left:
            return "Dovecot: RETR + DELE all left %d files in %s/Maildir" % (left, w)
        return None

    # ---- the report -----------------------------------------------------------

    def report(self, notes):
        print()
        print("Maildir: %s, %d messages (%s names), %.1f MiB on disk, %.1f MiB as sent (CRLF); "
              "%d runs, medians, page cache warm" % (self.pristine, self.n, self.args.names,
                                                      self.disk / 2**20, self.octets / 2**20,
                                                      self.args.runs))
        print("machine: %d CPUs; load average (1 min) %.2f at the start, %.2f at the end" % (
            os.cpu_count() or 0, self.load_start, os.getloadavg()[0]))
        print()
        print("%-8s %-44s %8s %8s %8s %8s %10s" % ("server", "workload", "wall s", "cpu s",
                                                     "user s", "sys s", "peak RSS"))
        for server, workload, r, note in self.rows:
            user = statistics.median(x[1] for x in r.samples)
            system = statistics.median(x[2] for x in r.samples)
            print("%-8s %-44s %8.3f %8.3f %8.3f %8.3f %6.2f MiB %s" % (
                server, workload, r.wall, r.cpu, user, system, r.rss / 1024, note))
        print("peak RSS: the largest process /usr/bin/time waited for (for pop3d: the "
              "authenticator, the greeter, the keeper or the session process)")
        if getattr(self, "peaks", None):
            print("pop3d VmHWM after STAT, UIDL, LIST, RETR all (before QUIT): " +
                  ", ".join("%s %.2f MiB" % kv for kv in self.peaks.items()))
            print("  Pss then (shared pages counted half in each): keeper %.2f MiB, session "
                  "process %.2f MiB, the worker %.2f MiB" % (
                      self.pss["keeper"], self.pss["session process"], sum(self.pss.values())))
        print()
        self.goals()
        for n in notes:
            if n:
                print("note: " + n)
        if self.args.show_commands:
            print()
            for label, cmd in self.commands:
                print("%s:\n    %s" % (label, cmd))

    def goals(self):
        def wall(server, prefix):
            r = self.get(server, prefix)
            return r.wall if r else None
        floor = wall("floor", "readdir + stat every file (python)")
        pipe = wall("floor", "cat every file | cat")
        warm = wall("dovecot", "second login + STAT + QUIT, warm")
        checks = [
            ("first login, no index <= 1.5 x readdir+stat (%.3f s)" % floor,
             wall("pop3d", "first login + STAT + QUIT, no index"), 1.5 * floor),
            ("  the same, writing the index",
             wall("pop3d", "first login + STAT + QUIT, writes"), 1.5 * floor),
            ("second login, index <= Dovecot warm (%s)" % ("%.3f s" % warm if warm else "not run"),
             wall("pop3d", "second login"), warm),
            ("download all <= 1.3 x cat every file | cat (%.3f s)" % pipe,
             wall("pop3d", "UIDL + LIST + RETR all, to a pipe"), 1.3 * pipe),
            ("  the same with the index",
             wall("pop3d", "UIDL + LIST + RETR all, pipe, index"), 1.3 * pipe)]
        rss = max(r.rss for s, w, r, _ in self.rows if s == "pop3d") / 1024
        checks.append(("memory: largest pop3d process, every workload <= %g MiB" % MEMORY_GOAL_MIB,
                       rss, MEMORY_GOAL_MIB))
        if getattr(self, "peaks", None):
            worker = max(self.peaks["keeper"], self.peaks["session process"])
            checks.append(("memory: worker (keeper, session process) <= %g MiB" % MEMORY_GOAL_MIB,
                           worker, MEMORY_GOAL_MIB))
        print("%-58s %10s %10s" % ("goal", "measured", "limit"))
        for label, got, limit in checks:
            if got is None or limit is None:
                print("%-58s %10s %10s  not checked (not run)" % (label, "-", "-"))
                continue
            print("%-58s %10.4f %10.4f  %s (%.2f of the limit)" % (
                label, got, limit, "met" if got <= limit else "MISSED", got / limit))


def vmhwm(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss(pid):
    for line in open("/proc/%d/smaps_rollup" % pid):
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main():
    if not os.access("/usr/bin/time", os.X_OK):
        sys.exit("bench: /usr/bin/time is missing (apt-get install time)")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="Maildirs and scratch (default bench/data, "
                    "bench/data/quick with --quick)")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--size", default="1G", help="about this many octets in all (K/M/G)")
    ap.add_argument("--names", choices=("postfix", "dovecot"), default="postfix",
                    help="postfix: no sizes in the names (default); dovecot: ,S= and ,W=")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pop3d", default=os.path.join(ROOT, "pop3d"))
    ap.add_argument("--dovecot", help="Dovecot's pop3 binary (default /usr/lib/dovecot/pop3)")
    ap.add_argument("--no-peers", action="store_true", help="pop3d and the floors only")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 300 messages, 2 MB, 1 run, no Dovecot")
    ap.add_argument("--logins-only", action="store_true",
                    help="the floors and the logins only (no download, no deletion)")
    ap.add_argument("--show-commands", action="store_true", help="print every timed command")
    ap.add_argument("--account", default=B.ACCOUNT,
                    help="root: the account to serve as (created when missing; default %(default)s)")
    args = ap.parse_args()
    B.ACCOUNT = args.account
    if args.quick:
        args.messages, args.size, args.runs, args.no_peers = 300, "2M", 1, True
    if not args.data:
        args.data = os.path.join(HERE, "data", "quick") if args.quick else os.path.join(HERE, "data")
    if not os.access(args.pop3d, os.X_OK):
        sys.exit("bench: %s is missing (make pop3d)" % args.pop3d)
    b = Bench(args)
    b.generate()
    b.setup_pop3d()
    B.sh("cd %s && find new cur -type f -print0 | xargs -0 cat > /dev/null" % b.big)   # warm the cache
    b.check_served()
    notes = []
    b.floors()
    b.bench_pop3d()
    if not args.logins_only:
        b.worker_rss()
    if args.no_peers:
        notes.append("Dovecot not run (--no-peers or --quick)")
    else:
        notes.append(b.bench_dovecot())
    b.report(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
