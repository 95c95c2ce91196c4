#!/usr/bin/env python3
"""Measure pop3d on the workloads of doc/performance.md, next to the floors
(cat to /dev/null, cat through a pipe) and, when they are there, popa3d and
Dovecot on the same mailbox. Prints wall time, CPU time (user + system) and
peak RSS of each (/usr/bin/time; wall and CPU with finer clocks), medians
over --runs, with ratios to the floors.

    python3 bench/run.py                 # 1 GiB / 100 000 messages, 3 runs
    python3 bench/run.py --quick         # 2 MB smoke run, seconds

Run as root to compare with popa3d (it needs the system account pop3bench,
created here, and /var/mail/pop3bench) and so that pop3d is measured as
inetd starts it (root, dropping to --user). Dovecot runs pre-authenticated
as pop3bench. popa3d and dovecot-pop3d conflict in Debian (both provide
pop3-server): install dovecot-pop3d, and give popa3d with --popa3d=PATH or
--fetch-popa3d (apt-get download + dpkg -x into bench/data/peers, no install).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PASSWORD = "bench"
# The same cheap sha256crypt hash for every server that authenticates, so that
# password hashing (deliberately slow) does not hide the server's own cost.
CHEAP_HASH = "$5$rounds=1000$benchsalt$2o1TnpfQSDn4yUehweMTd7sOqE.3WU5Jm2WuPxkLvq5"
ACCOUNT = "pop3bench"   # the system account mailboxes are served as (root only)

# Published in the issue (1 GiB / 100 000 messages, page cache warm, one run),
# used when a peer is not installed here.
PUBLISHED = {
    ("popa3d", "stat"): 0.40, ("popa3d", "all"): 2.1, ("popa3d", "dele"): 2.8,
    ("dovecot", "stat"): 0.056, ("dovecot", "all"): 7.8, ("dovecot", "dele"): 9.5,
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, check=True, **kw)


class Result:
    def __init__(self, samples):
        self.samples = samples                      # (wall, user, sys, rss KiB)
        self.wall = statistics.median(s[0] for s in samples)
        self.cpu = statistics.median(s[1] + s[2] for s in samples)
        self.rss = max(s[3] for s in samples)


def time_once(cmd, env=None):
    """Run cmd (a shell line) under /usr/bin/time. Returns (wall s, user s,
    system s, peak RSS KiB): wall from a fine clock around it, CPU from wait4(2)
    (microseconds, where /usr/bin/time prints hundredths), the peak RSS as
    /usr/bin/time reports it (%M: the largest process it waited for)."""
    line = cmd if "|" in cmd or ";" in cmd else "exec " + cmd   # no shell left running
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        start = time.perf_counter()
        p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", t.name, "sh", "-c", line],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise RuntimeError("failed (%d): %s\n%s" % (code, cmd, err.decode()[-2000:]))
        rss = int(t.read().split()[-1])
    return wall, ru.ru_utime, ru.ru_stime, rss


def measure(cmd, runs, setup=None, env=None):
    samples = []
    for _ in range(runs):
        if setup:
            setup()
        samples.append(time_once(cmd, env))
    return Result(samples)


def write_commands(path, n, kind, login=True):
    lines = ["USER %s" % kind[1], "PASS " + PASSWORD] if login else []
    what = kind[0]
    if what == "stat":
        lines += ["STAT"]
    elif what == "all":
        lines += ["UIDL", "LIST"] + ["RETR %d" % i for i in range(1, n + 1)]
    elif what == "dele":
        for i in range(1, n + 1):
            lines += ["RETR %d" % i, "DELE %d" % i]
    elif what == "small":
        lines += ["LIST"] + ["RETR %d" % i for i in range(1, n + 1)]
    lines.append("QUIT")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def count_messages(path):
    n = 0
    prev_empty = True
    with open(path, "rb") as f:
        for line in f:
            if prev_empty and line.startswith(b"From "):
                n += 1
            prev_empty = line in (b"\n", b"\r\n")
    return n


def copy_fresh(src, dst, owner=None):
    tmp = dst + ".copy"
    shutil.copyfile(src, tmp)
    if owner:
        os.chown(tmp, owner[0], owner[1])
    os.replace(tmp, dst)


def fresh_copy(src, dst):
    """A copy, never a hard link: pop3d refuses a mailbox with two names."""
    if os.path.lexists(dst):
        os.unlink(dst)
    shutil.copyfile(src, dst)


class Bench:
    def __init__(self, args):
        self.args = args
        self.data = os.path.abspath(args.data)
        self.run = os.path.join(self.data, "run")
        self.root = os.geteuid() == 0
        self.rows = []        # (server, workload, Result, note)
        self.commands = []    # (label, command line)
        self.owner = None
        self.load_start = os.getloadavg()[0]

    # ---- set-up ------------------------------------------------------------

    def generate(self):
        os.makedirs(self.data, exist_ok=True)
        gen = os.path.join(HERE, "genmbox.py")
        specs = [("big.mbox", ["--messages", str(self.args.messages), "--size", self.args.size,
                               "--seed", "1"]),
                 ("small.mbox", ["--small", "--messages", "100", "--size", "400K", "--seed", "2"])]
        for name, spec in specs:
            path = os.path.join(self.data, name)
            stamp = path + ".args"
            want = " ".join(spec)
            if os.path.exists(path) and os.path.exists(stamp) and open(stamp).read() == want:
                continue
            log("generating %s (%s)" % (path, want))
            subprocess.run([sys.executable, gen, *spec, path], check=True)
            with open(stamp, "w") as f:
                f.write(want)
        self.big = os.path.join(self.data, "big.mbox")
        self.small = os.path.join(self.data, "small.mbox")
        self.n_big = count_messages(self.big)
        self.n_small = count_messages(self.small)

    def ensure_account(self):
        """root: the system account pop3d serves as (--user) and popa3d logs in to."""
        import pwd
        try:
            pw = pwd.getpwnam(ACCOUNT)
        except KeyError:
            sh("useradd --system --no-create-home --home-dir /nonexistent "
               "--shell /usr/sbin/nologin " + ACCOUNT)
            pw = pwd.getpwnam(ACCOUNT)
        self.owner = (pw.pw_uid, pw.pw_gid)

    def setup_pop3d(self):
        shutil.rmtree(self.run, ignore_errors=True)
        os.makedirs(self.run)
        if self.root:
            self.ensure_account()
            os.chmod(self.data, 0o755)
        fresh_copy(self.big, os.path.join(self.run, "big.mbox"))
        fresh_copy(self.small, os.path.join(self.run, "small.mbox"))
        with open(os.path.join(self.run, "passwd"), "w") as f:
            for user in ("big", "small", "dele"):
                f.write("%s:%s\n" % (user, CHEAP_HASH))
        write_commands(os.path.join(self.run, "stat.txt"), self.n_big, ("stat", "big"))
        write_commands(os.path.join(self.run, "all.txt"), self.n_big, ("all", "big"))
        write_commands(os.path.join(self.run, "dele.txt"), self.n_big, ("dele", "dele"))
        write_commands(os.path.join(self.run, "stat-dele.txt"), self.n_big, ("stat", "dele"))
        write_commands(os.path.join(self.run, "small.txt"), self.n_small, ("small", "small"))
        if self.owner:
            for dirpath, dirs, files in os.walk(self.run):
                for name in dirs + files:
                    os.chown(os.path.join(dirpath, name), *self.owner)
            os.chown(self.run, *self.owner)
        self.pop3d = os.path.abspath(self.args.pop3d)

    def as_owner_prefix(self):
        return "setpriv --reuid=%d --regid=%d --clear-groups " % self.owner

    def pop3d_cmd(self, script, index=False, as_owner=False, prefix=None):
        """pop3d as inetd starts it (root, dropping to --user), or, as_owner,
        started as the mailbox owner itself (no --user: no NSS group lookup)."""
        r = self.run
        user = " -u " + ACCOUNT if self.root and not as_owner else ""
        idx = " --index-dir=%s/index-%%u" % r if index else ""
        log = "pop3d-owner.log" if as_owner else "pop3d.log"
        if prefix is None:
            prefix = self.as_owner_prefix() if as_owner else ""
        # Failed-login accounting in a state directory of the bench's own, as in production.
        state = " --state-dir=%s/state-%s" % (r, "owner" if as_owner else "root")
        return "%s%s -P %s/passwd%s -m %s/%%u.mbox -d 0 -L %s/%s%s%s < %s/%s" % (
            prefix, self.pop3d, r, user, r, r, log, idx, state, r, script)

    # ---- the measurements --------------------------------------------------

    def add(self, server, workload, cmd, res, note=""):
        self.rows.append((server, workload, res, note))
        self.commands.append(("%s / %s" % (server, workload), cmd))
        log("%-8s %-40s %7.3f s wall %7.3f s cpu %8d KiB  (load %.1f)" % (
            server, workload, res.wall, res.cpu, res.rss, os.getloadavg()[0]))

    def floors(self):
        runs = self.args.runs
        cmd = "cat %s > /dev/null" % self.big
        self.add("floor", "cat mbox > /dev/null", cmd, measure(cmd, runs))
        cmd = "cat %s | cat > /dev/null" % self.big
        self.add("floor", "cat mbox | cat > /dev/null", cmd, measure(cmd, runs))

    def bench_pop3d(self):
        runs = self.args.runs
        dele = os.path.join(self.run, "dele.mbox")
        cmd = self.pop3d_cmd("stat.txt")
        self.add("pop3d", "login + STAT + QUIT, no index", cmd, measure(cmd, runs))
        owner = self.root and shutil.which("setpriv")
        if owner:
            cmd = self.pop3d_cmd("stat.txt", as_owner=True)
            self.add("owner", "login + STAT + QUIT, no index", cmd, measure(cmd, runs))
        cmd = self.pop3d_cmd("stat.txt", index=True)
        time_once(cmd)   # the first login writes the index
        self.add("pop3d", "login + STAT + QUIT, index valid", cmd, measure(cmd, runs))
        cmd = self.pop3d_cmd("all.txt") + " | cat > /dev/null"
        self.add("pop3d", "UIDL + LIST + RETR all, to a pipe", cmd, measure(cmd, runs))
        cmd = self.pop3d_cmd("all.txt", index=True) + " | cat > /dev/null"
        self.add("pop3d", "UIDL + LIST + RETR all, pipe, index", cmd, measure(cmd, runs))
        cmd = self.pop3d_cmd("dele.txt") + " | cat > /dev/null"
        self.add("pop3d", "RETR + DELE all + QUIT", cmd,
                 measure(cmd, runs, setup=lambda: copy_fresh(self.big, dele, self.owner)))
        stat_dele = self.pop3d_cmd("stat-dele.txt", index=True)

        def fresh_and_indexed():   # an untimed first login writes the index
            copy_fresh(self.big, dele, self.owner)
            time_once(stat_dele)
        cmd = self.pop3d_cmd("dele.txt", index=True) + " | cat > /dev/null"
        self.add("pop3d", "RETR + DELE all + QUIT, index valid", cmd,
                 measure(cmd, runs, setup=fresh_and_indexed))
        self.small_sessions("pop3d", self.pop3d_cmd("small.txt") + " > /dev/null")
        if owner:   # the whole loop as the owner: no setpriv in each session's time
            one = self.pop3d_cmd("small.txt", as_owner=True, prefix="") + " > /dev/null"
            self.small_sessions("owner", one, wrap=self.as_owner_prefix())

    def small_sessions(self, server, one, env=None, wrap=None):
        k = self.args.sessions
        cmd = "i=0; while [ $i -lt %d ]; do %s || exit 1; i=$((i + 1)); done" % (k, one)
        if wrap:
            cmd = "%ssh -c '%s'" % (wrap, cmd)
        res = measure(cmd, self.args.runs, env=env)
        per = Result([(s[0] / k, s[1] / k, s[2] / k, s[3]) for s in res.samples])
        self.add(server, "small session (100 x 4 KB), per session", cmd, per,
                 "%d sessions a run" % k)

    # ---- peers -------------------------------------------------------------

    def find_popa3d(self):
        if self.args.popa3d:
            return self.args.popa3d
        for path in ("/usr/sbin/popa3d",
                     os.path.join(self.data, "peers", "popa3d", "usr", "sbin", "popa3d")):
            if os.access(path, os.X_OK):
                return path
        if self.args.fetch_popa3d and self.root:
            dest = os.path.join(self.data, "peers")
            os.makedirs(dest, exist_ok=True)
            sh("cd %s && apt-get download popa3d" % dest)
            debs = [f for f in os.listdir(dest) if f.startswith("popa3d_") and f.endswith(".deb")]
            sh("dpkg -x %s/%s %s/popa3d" % (dest, sorted(debs)[-1], dest))
            return os.path.join(dest, "popa3d", "usr", "sbin", "popa3d")
        return None

    def bench_popa3d(self):
        exe = self.find_popa3d()
        if not exe:
            return "popa3d: not installed (--popa3d=PATH or --fetch-popa3d as root)"
        if not self.root:
            return "popa3d: needs root (system accounts, /var/mail)"
        import pwd
        try:
            pwd.getpwnam("popa3d")
        except KeyError:
            sh("useradd --system --no-create-home --home-dir /var/lib/popa3d "
               "--shell /usr/sbin/nologin popa3d")
        os.makedirs("/var/lib/popa3d", exist_ok=True)
        sh("usermod -p '%s' %s" % (CHEAP_HASH, ACCOUNT))
        spool = "/var/mail/" + ACCOUNT
        work = os.path.join(self.data, "popa3d")
        os.makedirs(work, exist_ok=True)
        runs = self.args.runs
        kinds = [("stat", "login + STAT + QUIT", self.n_big), ("all", "UIDL + LIST + RETR all, to a pipe",
                 self.n_big), ("dele", "RETR + DELE all + QUIT", self.n_big)]
        mail_gid = self.owner[1]
        try:
            import grp
            mail_gid = grp.getgrnam("mail").gr_gid
        except KeyError:
            pass
        box = (self.owner[0], mail_gid)
        for kind, label, n in kinds:
            script = os.path.join(work, kind + ".txt")
            write_commands(script, n, (kind, ACCOUNT))
            cmd = "%s < %s" % (exe, script) + (" | cat > /dev/null" if kind != "stat" else " > /dev/null")
            if kind == "dele":
                res = measure(cmd, runs, setup=lambda: copy_fresh(self.big, spool, box))
            else:
                copy_fresh(self.big, spool, box)
                res = measure(cmd, runs)
            self.add("popa3d", label, cmd, res)
        copy_fresh(self.small, spool, box)
        script = os.path.join(work, "small.txt")
        write_commands(script, self.n_small, ("small", ACCOUNT))
        self.small_sessions("popa3d", "%s < %s > /dev/null" % (exe, script))
        os.unlink(spool)
        return None

    def bench_dovecot(self):
        exe = self.args.dovecot or "/usr/lib/dovecot/pop3"
        if not os.access(exe, os.X_OK):
            return "Dovecot: not installed (apt-get install dovecot-pop3d)"
        if not self.root:
            return "Dovecot: run as root (it is run pre-authenticated as %s)" % ACCOUNT
        work = os.path.join(self.data, "dovecot")
        shutil.rmtree(work, ignore_errors=True)
        for sub in ("mail", "index", "state", "base"):
            os.makedirs(os.path.join(work, sub))
        conf = os.path.join(work, "dovecot.conf")
        inbox = os.path.join(work, "inbox.mbox")
        with open(conf, "w") as f:
            f.write("protocols = pop3\nssl = no\nbase_dir = %(w)s/base\nstate_dir = %(w)s/state\n"
                    "log_path = %(w)s/dovecot.log\n"
                    "mail_location = mbox:%(w)s/mail:INBOX=%(w)s/inbox.mbox:INDEX=%(w)s/index\n"
                    "pop3_uidl_format = %%08Xu%%08Xv\n" % {"w": work})
        env = {"USER": ACCOUNT, "HOME": work, "PATH": "/usr/bin:/bin"}
        run_as = "setpriv --reuid=%s --regid=%s --clear-groups " % (ACCOUNT, ACCOUNT)
        base = "%s%s -c %s" % (run_as, exe, conf)
        for name in ("stat", "all", "dele", "small"):
            n = self.n_small if name == "small" else self.n_big
            write_commands(os.path.join(work, name + ".txt"), n, (name, ACCOUNT), login=False)
        copy_fresh(self.big, inbox, self.owner)
        for dirpath, dirs, files in os.walk(work):
            for name in dirs + files:
                os.chown(os.path.join(dirpath, name), *self.owner)
        runs = self.args.runs
        # Dovecot wants a pipe or socket on stdin (epoll), not a file.
        stat = "cat %s/stat.txt | %s > /dev/null" % (work, base)
        log("dovecot: building its index (cold)")
        cold = time_once(stat, env)
        self.add("dovecot", "login + STAT + QUIT, cold index", stat, Result([cold]))
        self.add("dovecot", "login + STAT + QUIT, warm index", stat, measure(stat, runs, env=env))
        cmd = "cat %s/all.txt | %s | cat > /dev/null" % (work, base)
        self.add("dovecot", "UIDL + LIST + RETR all, to a pipe", cmd, measure(cmd, runs, env=env))
        # RETR + DELE on a copy of the synced mailbox and its index.
        saved = os.path.join(work, "saved")
        os.makedirs(saved, exist_ok=True)
        sh("cp -a %s %s/index %s/" % (inbox, work, saved))

        def restore():
            sh("rm -rf %s/index && cp -a %s/index %s/ && cp -a %s/inbox.mbox %s" % (
                work, saved, work, saved, inbox))
        cmd = "cat %s/dele.txt | %s | cat > /dev/null" % (work, base)
        self.add("dovecot", "RETR + DELE all + QUIT", cmd, measure(cmd, runs, setup=restore, env=env))
        copy_fresh(self.small, inbox, self.owner)
        time_once(stat, env)
        self.small_sessions("dovecot", "cat %s/small.txt | %s > /dev/null" % (work, base), env=env)
        return None

    # ---- the report ---------------------------------------------------------

    def get(self, server, prefix):
        for s, w, r, _ in self.rows:
            if s == server and w.startswith(prefix):
                return r
        return None

    def report(self, notes):
        cat = self.get("floor", "cat mbox > /dev/null")
        pipe = self.get("floor", "cat mbox | cat")
        print()
        print("mailbox: %s, %d messages, %.1f MiB; small: %d messages, %.0f KiB; "
              "%d runs, medians" % (self.big, self.n_big, os.path.getsize(self.big) / 2**20,
                                    self.n_small, os.path.getsize(self.small) / 1024, self.args.runs))
        print("machine: %d CPUs; load average (1 min) %.1f at the start, %.1f at the end "
              "(other work inflates wall times; CPU times are steadier)" % (
                  os.cpu_count() or 0, self.load_start, os.getloadavg()[0]))
        print()
        print("%-8s %-42s %9s %9s %10s %9s" % ("server", "workload", "wall s", "cpu s", "peak RSS",
                                             "vs floor"))
        for server, workload, r, note in self.rows:
            floor = None
            if workload.startswith("login + STAT"):
                floor = cat
            elif "RETR" in workload and "small" not in workload:
                floor = pipe
            ratio = "%8.2fx" % (r.wall / floor.wall) if floor and floor.wall > 0 else ""
            print("%-8s %-42s %9.4f %9.4f %7.2f MiB %9s %s" % (
                server, workload, r.wall, r.cpu, r.rss / 1024, ratio, note))
        print()
        self.targets()
        if any(server == "owner" for server, _, _, _ in self.rows):
            print("note: owner = pop3d started as the mailbox owner instead of root with --user: "
                  "no initgroups(), so no NSS modules loaded")
        for n in notes:
            if n:
                print("note: " + n)
        if self.args.show_commands:
            print()
            for label, cmd in self.commands:
                print("%s:\n    %s" % (label, cmd))

    def peer(self, server, workload_prefix, key):
        r = self.get(server, workload_prefix)
        if r:
            return r.wall, "measured"
        if key in PUBLISHED:
            return PUBLISHED[key], "published"
        return None, ""

    def targets(self):
        cat = self.get("floor", "cat mbox > /dev/null").wall
        pipe = self.get("floor", "cat mbox | cat").wall
        me = lambda prefix: self.get("pop3d", prefix)
        popa_stat, popa_src = self.peer("popa3d", "login + STAT", ("popa3d", "stat"))
        dove_stat, dove_src = self.peer("dovecot", "login + STAT + QUIT, warm", ("dovecot", "stat"))
        popa_small, small_src = self.peer("popa3d", "small session", ("popa3d", "small"))
        checks = []
        stat = me("login + STAT + QUIT, no index").wall
        if popa_stat:
            checks.append(("login+STAT, no index <= 1/3 popa3d (%s %.3f s)" % (popa_src, popa_stat),
                           stat, popa_stat / 3))
        checks.append(("login+STAT, no index <= 2 x cat (%.3f s)" % cat, stat, 2 * cat))
        if dove_stat:
            checks.append(("login+STAT, index <= 1/10 Dovecot warm (%s %.4f s)" % (dove_src, dove_stat),
                           me("login + STAT + QUIT, index").wall, dove_stat / 10))
        checks.append(("UIDL+LIST+RETR all <= 1.3 x cat|cat (%.3f s)" % pipe,
                       me("UIDL + LIST + RETR all, to a pipe").wall, 1.3 * pipe))
        checks.append(("  the same with a valid index", me("UIDL + LIST + RETR all, pipe, index").wall,
                       1.3 * pipe))
        checks.append(("RETR+DELE all <= 1.4 x cat|cat", me("RETR + DELE all + QUIT").wall,
                       1.4 * pipe))
        checks.append(("  the same with a valid index", me("RETR + DELE all + QUIT, index").wall,
                       1.4 * pipe))
        if popa_small:
            checks.append(("small session <= 1/2 popa3d (%s %.4f s)" % (small_src, popa_small),
                           me("small session").wall, popa_small / 2))
        big_rss = max(r.rss for s, w, r, _ in self.rows if s == "pop3d" and "small" not in w)
        checks.append(("peak RSS, big mailbox <= 8 MiB", big_rss / 1024, 8.0))
        checks.append(("peak RSS, 100 messages <= 2 MiB", me("small session").rss / 1024, 2.0))
        print("%-58s %10s %10s  %s" % ("target", "measured", "limit", ""))
        for label, got, limit in checks:
            print("%-58s %10.4f %10.4f  %s (%.2f of the limit)" % (
                label, got, limit, "met" if got <= limit else "MISSED", got / limit if limit else 0))


def main():
    if not os.access("/usr/bin/time", os.X_OK):
        sys.exit("bench: /usr/bin/time is missing (apt-get install time)")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="mailboxes and scratch (default bench/data, "
                    "bench/data/quick with --quick, so that it never replaces the 1 GiB mailbox)")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sessions", type=int, default=200, help="small sessions per run")
    ap.add_argument("--pop3d", default=os.path.join(ROOT, "pop3d"))
    ap.add_argument("--popa3d", help="popa3d binary (default: /usr/sbin/popa3d if present)")
    ap.add_argument("--fetch-popa3d", action="store_true",
                    help="root: apt-get download popa3d and unpack it under DATA/peers")
    ap.add_argument("--dovecot", help="Dovecot's pop3 binary (default /usr/lib/dovecot/pop3)")
    ap.add_argument("--no-peers", action="store_true", help="pop3d and the floors only")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 MB, 300 messages, 1 run, no peers")
    ap.add_argument("--show-commands", action="store_true", help="print every timed command")
    ap.add_argument("--account", default=ACCOUNT,
                    help="root: the account to serve as (created when missing; default %(default)s)")
    args = ap.parse_args()
    globals()["ACCOUNT"] = args.account
    if args.quick:
        args.messages, args.size, args.runs, args.sessions, args.no_peers = 300, "2M", 1, 3, True
    if not args.data:
        args.data = os.path.join(HERE, "data", "quick") if args.quick else os.path.join(HERE, "data")
    if not os.access(args.pop3d, os.X_OK):
        sys.exit("bench: %s is missing (make pop3d)" % args.pop3d)
    b = Bench(args)
    b.generate()
    b.setup_pop3d()
    sh("cat %s %s > /dev/null" % (b.big, b.small))   # warm the page cache
    notes = []
    b.floors()
    b.bench_pop3d()
    if args.no_peers:
        notes.append("peers not run (--no-peers); targets use the issue's published figures")
    else:
        notes.append(b.bench_popa3d())
        notes.append(b.bench_dovecot())
    b.report(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
