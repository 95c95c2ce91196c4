"""An administrator's first day on Debian (issue 20): every shipped example,
unedited, on a stock /var/mail with a system user. Run by debian_package.py
inside its throw-away root (throwaway_root.py), with the package it built
(one build for both), so nothing here touches the machine:

- /var/mail as Debian makes it (root:mail 2775); a system user made with
  useradd (not in group mail), a password set with chpasswd, mail delivered
  by procmail (the mailbox 0660 user:mail); a self-signed certificate in
  /etc/ssl/private/pop3d.pem;
- the examples as the package installs them (/usr/share/doc/pop3d/examples,
  /usr/sbin/pop3d), then, the package purged, as `make install` does
  (PREFIX=/usr/local, the pop3d account made as doc/administration.md says);
- for each: xinetd.d/pop3 started with /etc/init.d/xinetd (port 110),
  xinetd.d/pop3s + stunnel/inetd/pop3s.conf (995), xinetd.d/pop3-starttls +
  stunnel/inetd/pop3-starttls.conf (110, STLS); README.Debian's sysvinit
  steps: stunnel/pop3s.conf and pop3-starttls.conf in /etc/stunnel started
  with /etc/init.d/stunnel4 (the inetd-mode ones sit in /etc/stunnel/inetd
  meanwhile: the init script must neither start nor hang on them); the
  systemd units' command lines through systemd-socket-activate;
- last, xinetd purged and openbsd-inetd installed in its place (they
  conflict; tests/deps.sh fetches its .debs, never installs them on the
  machine, and without them this part is skipped, saying why): the
  /etc/inetd.conf line of pop3d(8), which README gives too (the same line in
  both, as installed), started with /etc/init.d/openbsd-inetd, as make
  install installed pop3d, then as the package does;
- each session: USER/PASS, RETR 2 (byte-identical), DELE 2, QUIT answered
  +OK, the mailbox then lacks exactly message 2, and nothing pop3d logged
  (syslog: /dev/log, served by the test) is a warning or worse.

All front ends are tried; the failures are listed together at the end.
"""

import glob
import grp
import gzip
import os
import poplib
import pwd
import re
import shutil
import ssl
import stat
import subprocess
import time

import deploy_common as D
import pop3lib as P

USER, PASSWORD = "carol", "first-day secret"
SPOOL = "/var/mail"
BOX = os.path.join(SPOOL, USER)
PEM = "/etc/ssl/private/pop3d.pem"
WAIT = 60          # seconds a daemon may take to listen, or to go
LOG_WARNING = 4    # syslog severities 0..4 are warnings or worse
# openbsd-inetd's .debs and the list of them ("debs"), as tests/deps.sh
# fetches them (the same directory is named there).
INETD_CACHE = os.environ.get("POP3D_INETD_CACHE", "/var/cache/pop3d-tests/openbsd-inetd")
INETD_LINE = re.compile(r"^\s*(pop3\s+stream\s+tcp\s.*)$", re.M)


def sh(argv, timeout=120, input=None):
    r = subprocess.run(argv, capture_output=True, timeout=timeout, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    out = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, f"{' '.join(argv)}: exit {r.returncode}\n{out}"
    return out


def listening(port):
    """Something listens on PORT, IPv4 or IPv6, any address."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            if any(r.split()[1].endswith(f":{port:04X}") and r.split()[3] == "0A"
                   for r in f.readlines()[1:]):
                return True
    return False


def wait_until(cond, what, timeout=WAIT):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)


def inetd_lines(path):
    """The /etc/inetd.conf lines a document gives (pop3d(8) or README, gzipped
    or not), as an administrator copies them: roff's \\- as -."""
    data = D.read(path)
    text = (gzip.decompress(data) if path.endswith(".gz") else data).decode()
    return [ln.replace("\\-", "-") for ln in INETD_LINE.findall(text)]


def installed(path):
    """PATH, or PATH.gz where dh_compress put it."""
    return path if os.path.exists(path) else path + ".gz"


def copy(src, dst):
    """cp, as the administrator does: the file as shipped."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copyfile(src, dst)


class FirstDay:
    def __init__(self, syslog, work):
        self.syslog = syslog
        self.work = work
        self.failures = []
        self.sessions = 0
        self.t0 = time.time()

    # ---- the machine as Debian leaves it, and one user ----

    def setup(self):
        # The root is a copy of the machine: none of its own front ends for
        # port 110 or 995 (the init scripts would start every one of them).
        for path in glob.glob("/etc/stunnel/*.conf") + glob.glob("/etc/xinetd.d/pop3*"):
            os.unlink(path)
        mail = grp.getgrnam("mail")
        os.makedirs(SPOOL, exist_ok=True)
        os.chown(SPOOL, 0, mail.gr_gid)   # Debian's, whatever the host's spool is
        os.chmod(SPOOL, 0o2775)
        sh(["useradd", "--create-home", USER])
        sh(["chpasswd"], input=f"{USER}:{PASSWORD}\n".encode())
        pw = pwd.getpwnam(USER)
        assert mail.gr_gid not in os.getgrouplist(USER, pw.pw_gid), "the user is in group mail"
        for n in range(1, 5):
            msg = (f"From: sender{n}@example.org\nTo: {USER}@localhost\n"
                   f"Subject: first day {n}\nMessage-ID: <first-day-{n}@example.org>\n\n"
                   f"Message {n} for {USER}.\n.a line with a dot\n").encode()
            sh(["procmail", "-d", USER], input=msg)
        st = os.stat(BOX)
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, mail.gr_gid), f"procmail made {st}"
        os.chmod(BOX, 0o660)   # Debian's mailbox mode (procmail's umask may give 0600)
        self.mailbox = D.read(BOX)
        self.msgs = D.mailbox_messages(BOX)
        assert len(self.msgs) == 4, self.msgs
        os.makedirs("/etc/ssl/private", exist_ok=True)
        pem, self.cert = D.make_certificate(self.work)
        copy(pem, PEM)
        os.chmod(PEM, 0o600)
        self.ctx = ssl.create_default_context(cafile=self.cert)

    # ---- one session, and what it must leave ----

    def plain(self, port):
        return lambda: poplib.POP3("127.0.0.1", port, timeout=30)

    def pop3s(self, port):
        return lambda: poplib.POP3_SSL("127.0.0.1", port, context=self.ctx, timeout=30)

    def starttls(self, port):
        def connect():
            c = poplib.POP3("127.0.0.1", port, timeout=30)
            c.stls(context=self.ctx)
            return c
        return connect

    def session(self, label, connect):
        """Log in, RETR 2, DELE 2, QUIT; the mailbox and the log checked, then
        the mailbox put back for the next front end."""
        self.sessions += 1
        mark = self.syslog.mark()
        problems = []
        try:
            c = connect()
            c.user(USER)
            c.pass_(PASSWORD)
            assert c.stat()[0] == 4, c.stat()
            _, lines, _ = c.retr(2)
            got = b"".join(line + b"\r\n" for line in lines)
            assert got == P.wire_form(self.msgs[1]), "RETR 2 is not message 2"
            c.dele(2)
            try:
                c.quit()
            except poplib.error_proto as e:
                problems.append(f"QUIT after DELE: {e}")
            got = D.mailbox_messages(BOX)
            if got != [self.msgs[0], *self.msgs[2:]]:
                problems.append(f"the mailbox does not lack exactly message 2 "
                                f"({len(got)} messages)")
            self.syslog.wait(mark, "session end:", tag="pop3d")
        except Exception as e:  # the session itself failed: say where
            problems.append(f"session: {type(e).__name__}: {e}")
        bad = [t for p, t in self.syslog.since(mark, "pop3d") if p & 7 <= LOG_WARNING]
        if bad:
            problems.append("pop3d logged warnings or errors:\n      " + "\n      ".join(bad))
        with open(BOX, "r+b") as f:   # the same file, owner and mode: as delivered
            f.write(self.mailbox)
            f.truncate()
        for p in problems:
            self.failures.append(f"{label}: {p}")
        print(f"{'ok  ' if not problems else 'FAIL'}  {label} "
              f"[{time.time() - self.t0:.0f} s]", flush=True)

    # ---- the front ends ----

    def xinetd(self, ex, services, stunnel_confs, sessions):
        for name, dst in services:
            copy(os.path.join(ex, "xinetd.d", name), f"/etc/xinetd.d/{dst}")
        for name in stunnel_confs:
            copy(os.path.join(ex, "stunnel", "inetd", name), f"/etc/stunnel/inetd/{name}")
        sh(["/etc/init.d/xinetd", "start"], timeout=WAIT)
        try:
            for label, port, connect in sessions:
                wait_until(lambda: listening(port), f"xinetd on port {port}")
                self.session(label, connect(port))
        finally:
            sh(["/etc/init.d/xinetd", "stop"], timeout=WAIT)
            wait_until(lambda: not any(listening(p) for _, p, _ in sessions), "xinetd stops")
            for _, dst in services:
                os.unlink(f"/etc/xinetd.d/{dst}")

    def stunnel_daemons(self, ex, label):
        """README.Debian's sysvinit steps, with the inetd-mode configurations
        in /etc/stunnel/inetd as its TLS section has them copied."""
        for name in ("pop3s.conf", "pop3-starttls.conf"):
            copy(os.path.join(ex, "stunnel", "inetd", name), f"/etc/stunnel/inetd/{name}")
            copy(os.path.join(ex, "stunnel", name), f"/etc/stunnel/{name}")
        out = sh(["/etc/init.d/stunnel4", "start"], timeout=WAIT)
        try:
            wait_until(lambda: listening(995) and listening(110), "stunnel4 listens")
            self.session(f"{label}: stunnel/pop3s.conf (/etc/init.d/stunnel4), port 995",
                         self.pop3s(995))
            self.session(f"{label}: stunnel/pop3-starttls.conf (/etc/init.d/stunnel4), STLS",
                         self.starttls(110))
        finally:
            sh(["/etc/init.d/stunnel4", "stop"], timeout=WAIT)
            wait_until(lambda: not listening(995) and not listening(110), "stunnel4 stops")
            for name in ("pop3s.conf", "pop3-starttls.conf"):
                os.unlink(f"/etc/stunnel/{name}")
        assert "inetd" not in out, f"/etc/init.d/stunnel4 started an inetd-mode file:\n{out}"

    def systemd(self, ex, label):
        units = os.path.join(ex, "systemd")
        for name in ("pop3s.conf", "pop3-starttls.conf"):
            copy(os.path.join(ex, "stunnel", "inetd", name), f"/etc/stunnel/inetd/{name}")
        for unit, connect in (("pop3d", self.plain), ("pop3s", self.pop3s),
                              ("pop3-starttls", self.starttls)):
            port = int(D.unit_value(os.path.join(units, f"{unit}.socket"), "ListenStream"))
            cmd = D.unit_command(os.path.join(units, f"{unit}@.service"))
            log = os.path.join(self.work, f"socket-activate-{unit}.out")
            proc = D.spawn(["systemd-socket-activate", "--listen", str(port), "--accept",
                            "--inetd", *cmd], log)
            try:
                wait_until(lambda: listening(port), f"{unit}.socket's port {port}")
                self.session(f"{label}: systemd/{unit}.socket + {unit}@.service", connect(port))
            finally:
                D.stop(proc)

    def inetd(self, man_page, readme, label):
        """The one inetd line of pop3d(8), which README must give the same."""
        lines = inetd_lines(man_page)
        assert len(lines) == 1, f"{man_page}: {len(lines)} inetd lines: {lines}"
        if inetd_lines(readme) != lines:
            self.failures.append(f"{label}: {readme}'s inetd line is not pop3d(8)'s:\n    "
                                 f"{inetd_lines(readme)}\n    {lines}")
            print(f"FAIL  {label}: README's inetd line", flush=True)
        conf = D.read("/etc/inetd.conf") if os.path.exists("/etc/inetd.conf") else b""
        D.write("/etc/inetd.conf", conf + lines[0].encode() + b"\n")
        sh(["/etc/init.d/openbsd-inetd", "restart"], timeout=WAIT)
        try:
            wait_until(lambda: listening(110), "inetd on port 110")
            self.session(f"{label}: pop3d(8)'s /etc/inetd.conf line (/etc/init.d/openbsd-inetd)",
                         self.plain(110))
        finally:
            sh(["/etc/init.d/openbsd-inetd", "stop"], timeout=WAIT)
            D.write("/etc/inetd.conf", conf)
            wait_until(lambda: not listening(110), "inetd stops")

    def every_example(self, ex, label):
        self.xinetd(ex, [("pop3", "pop3")], [],
                    [(f"{label}: xinetd.d/pop3 (/etc/init.d/xinetd), port 110", 110, self.plain)])
        self.xinetd(ex, [("pop3s", "pop3s"), ("pop3-starttls", "pop3")],
                    ["pop3s.conf", "pop3-starttls.conf"],
                    [(f"{label}: xinetd.d/pop3s + stunnel/inetd/pop3s.conf, port 995", 995,
                      self.pop3s),
                     (f"{label}: xinetd.d/pop3-starttls + stunnel/inetd/pop3-starttls.conf, "
                      "STLS", 110, self.starttls)])
        self.stunnel_daemons(ex, label)
        self.systemd(ex, label)


def purge_pop3_servers():
    """The throw-away root starts as a copy of the machine: take out any POP3
    server there (they conflict with the package, or hold the ports)."""
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Provides}\t${db:Status-Status}\n"],
                       capture_output=True, text=True)
    names = [p for p, provides, status in (ln.split("\t") for ln in r.stdout.splitlines())
             if status != "not-installed" and
             (p == "pop3d" or re.search(r"(^|[ ,])pop3-server\b", provides))]
    if names:
        print(f"purged in the throw-away root first: {' '.join(names)}")
        sh(["dpkg", "--purge", *names], timeout=300)


def inetd_instead_of_xinetd():
    """xinetd purged, openbsd-inetd installed from tests/deps.sh's .debs (with
    what it needs that the machine lacks): None, or why that cannot be."""
    if shutil.which("inetd") and os.path.exists("/etc/init.d/openbsd-inetd"):
        return None   # the machine has it
    how = "tests/deps.sh check, as root, fetches it"
    try:
        names = D.read(os.path.join(INETD_CACHE, "debs")).decode().split()
    except FileNotFoundError:
        return f"openbsd-inetd's .deb is not in {INETD_CACHE} ({how}; it could not)"
    debs = [os.path.join(INETD_CACHE, n) for n in names]
    gone = [d for d in debs if not os.path.isfile(d)]
    if not debs or gone:
        return f"{INETD_CACHE} lacks {gone or 'openbsd-inetd'} ({how})"
    sh(["dpkg", "--purge", "xinetd"], timeout=300)
    try:
        sh(["dpkg", "-i", *debs], timeout=300)
    except AssertionError as e:
        raise AssertionError(f"{e}\n(a dependency missing? tests/deps.sh check fetches "
                             "what this machine lacks)") from None
    assert shutil.which("inetd") and os.path.exists("/etc/init.d/openbsd-inetd"), names
    return None


def run(syslog, work, deb, root):
    """The first day, with the package DEB and the source tree ROOT (make install)."""
    day = FirstDay(syslog, work)
    day.setup()
    sh(["dpkg", "-i", deb], timeout=300)
    day.every_example("/usr/share/doc/pop3d/examples", "package")
    sh(["dpkg", "--purge", "pop3d"], timeout=300)
    # make install's way: the pre-login account as doc/administration.md has it made.
    sh(["adduser", "--system", "--group", "--no-create-home", "--home", "/nonexistent", "pop3d"])
    sh(["make", "--no-print-directory", "-C", root, "-o", "pop3d", "install"], timeout=300)
    st = os.stat("/var/lib/pop3d-journal")
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_uid == 0, "make install's journal directory"
    day.every_example("/usr/local/share/doc/pop3d/examples", "make install")
    # The inetd line, last: openbsd-inetd replaces xinetd.
    want = inetd_lines(os.path.join(root, "pop3d.8"))
    for doc in ("README", "doc/administration.md"):
        if inetd_lines(os.path.join(root, doc)) != want:
            day.failures.append(f"{doc} and pop3d(8) give different inetd lines:\n    "
                                f"{inetd_lines(os.path.join(root, doc))}\n    {want}")
    why = inetd_instead_of_xinetd()
    if why:
        print(f"skip  the inetd line of pop3d(8) and README: {why}")
    else:
        day.inetd("/usr/local/share/man/man8/pop3d.8", "/usr/local/share/doc/pop3d/README",
                  "make install")
        # The package's line, on a machine where only the package was installed.
        sh(["make", "--no-print-directory", "-C", root, "uninstall"], timeout=300)
        sh(["deluser", "--quiet", "--system", "pop3d"])
        if subprocess.run(["getent", "group", "pop3d"], capture_output=True).returncode == 0:
            sh(["delgroup", "--quiet", "--system", "pop3d"])
        for path in ("/var/lib/pop3d", "/var/lib/pop3d-journal"):
            shutil.rmtree(path)
        sh(["dpkg", "-i", deb], timeout=300)
        day.inetd("/usr/share/man/man8/pop3d.8.gz", installed("/usr/share/doc/pop3d/README"),
                  "package")
    assert not day.failures, f"{len(day.failures)} of {day.sessions} first-day sessions " \
        "failed:\n  " + "\n  ".join(day.failures)
    print(f"ok: the first day: {day.sessions} sessions through every shipped example, "
          "as packaged and as make install installs them")
