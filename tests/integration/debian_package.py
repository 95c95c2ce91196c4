"""The Debian package (debian/), built, linted, installed, used and purged,
without touching the machine it runs on:

- `dpkg-buildpackage -us -uc -b` in a copy of the sources under a fresh
  0700 directory (the build must not depend on the directories above the
  tree), unit tests included; lintian on the .changes: no error, no warning;
- everything else inside a throw-away root (throwaway_root.py: namespaces,
  an overlay of / on a tmpfs, chroot): any pop3d or pop3-server package in it
  is purged first; afterwards the machine's package set (dpkg -l), its
  /etc/passwd, group and shadow files are checked to be unchanged;
- `dpkg -i`: the pop3d system account (system uid, home /nonexistent,
  shell /usr/sbin/nologin, its own group), /var/lib/pop3d root 0700,
  /var/lib/pop3d-journal root 0755, /run/pop3d 0755 and /run/pop3d/empty
  0555 (tmpfiles.d); `/usr/sbin/pop3d --version`; nothing enabled and
  nothing new listening; the installed files are what `make install
  PREFIX=/usr` lays out (same contents) plus the listed Debian files, the
  units are the examples, unchanged, and pass `systemd-analyze verify`;
- one real session through the installed pop3d@.service command line, run
  as systemd runs it (systemd-socket-activate), on a spool the user cannot
  write in (like /var/mail): deleting a middle message needs the journal in
  /var/lib/pop3d-journal/UID (made by pop3d, the account's, 0700), and the
  mailbox afterwards lacks exactly it;
- `dpkg --purge`: everything it created is gone;
- again with a pop3d group, a /var/lib/pop3d-journal (with a file in it) and
  a 1733 /var/lib/pop3d made beforehand: the package uses them, leaves them
  as they were (and says so for /var/lib/pop3d), and purge removes the
  account it created but not those;
- and with a journal left in the package's own journal directory: purge
  keeps the directory and the journal, and says so; an upgrade from the
  1777 directory of older versions makes it 0755 and keeps the journals
  there (pop3d moves each into its account's directory at the next login);
- then, in the same root and with the same package, an administrator's
  first day with every shipped example (first_day.py).

Without a throw-away root (no namespaces or overlayfs, /usr on a file
system of its own) the test is skipped: it never installs on the machine.
"""
import grp
import gzip
import os
import poplib
import pwd
import random
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback

import deploy_common as D
import first_day
import pop3lib as P
import throwaway_root as T

ROOT = D.ROOT
if os.geteuid() != 0:
    print("skipped: installs a package in a throw-away root (needs root)")
    sys.exit(77)
if os.environ.get("POP3D_NESTED"):
    print("skipped: the package is built from the sources, not from $POP3D")
    sys.exit(77)
for tool in ("dpkg-buildpackage", "dh", "lintian", "fakeroot", "systemd-socket-activate",
             "xinetd", "stunnel4", "procmail", "useradd"):
    if not shutil.which(tool):
        print(f"skipped: {tool} is not installed (tests/deps.sh check installs it)")
        sys.exit(77)


def run(argv, timeout=300, ok=(0,), **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode in ok, f"{' '.join(argv)}: exit {r.returncode}\n{r.stdout}{r.stderr}"
    return r


def package_status():
    r = subprocess.run(["dpkg-query", "-W", "-f", "${db:Status-Status}", "pop3d"],
                       capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "not-installed"


def dpkg(*args):
    """dpkg, waiting (bounded) while another dpkg or apt holds its lock."""
    deadline = time.time() + 180
    while True:
        r = subprocess.run(["dpkg", *args], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        locked = "lock" in r.stderr and ("locked" in r.stderr or "held" in r.stderr)
        if r.returncode == 0 or not locked or time.time() > deadline:
            assert r.returncode == 0, f"dpkg {' '.join(args)}: exit {r.returncode}\n" \
                                      f"{r.stdout}{r.stderr}"
            return r
        time.sleep(2)



def copy_sources(src):
    """The tracked (and new, not ignored) files of the tree into SRC."""
    os.makedirs(src)
    git = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], capture_output=True)
    if git.returncode == 0:
        names = [n for n in git.stdout.decode().split("\0") if n]
    else:  # not a git checkout: everything but what builds and tests make
        names = []
        for top, dirs, files in os.walk(ROOT):
            rel = os.path.relpath(top, ROOT)
            dirs[:] = [x for x in dirs if os.path.normpath(os.path.join(rel, x)) not in
                       (".git", "build", "tests/tmp", "bench/data", "__pycache__")]
            names += [os.path.normpath(os.path.join(rel, f)) for f in files
                      if not f.endswith(".o")]
    for n in names:
        if os.path.isfile(os.path.join(ROOT, n)):  # not a deleted file git still lists
            os.makedirs(os.path.dirname(os.path.join(src, n)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, n), os.path.join(src, n))


class Build:
    """dpkg-buildpackage -us -uc -b in a fresh copy of the sources, SRC, in
    the background: as root, or as USER (Rules-Requires-Root: no; fakeroot
    named as an administrator would) in that user's 0700 home."""

    def __init__(self, src, log, user=None):
        copy_sources(src)
        as_user = ["runuser", "-u", user, "--"] if user else []
        if user:
            run(["chown", "-R", f"{user}:{user}", src])
        # A build from a clean tree: the objects of the repository's ./pop3d stay there.
        run([*as_user, "make", "-C", src, "clean"])
        self.log, self.what = log, f"the build as {user or 'root'}"
        self.t0 = time.time()
        with open(log, "w") as out:
            self.proc = subprocess.Popen([*as_user, "dpkg-buildpackage", "-us", "-uc", "-b",
                                          *(["-rfakeroot"] if user else [])],
                                         cwd=src, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)

    def finish(self):
        """Wait (bounded) and check it: the seconds it took."""
        try:
            self.proc.wait(timeout=900)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"{self.what} took more than 15 minutes")
        out = D.read(self.log).decode(errors="replace")
        assert self.proc.returncode == 0, f"{self.what} failed:\n{out[-4000:]}"
        assert out.count("[  PASSED  ]") >= 8 and "[  FAILED  ]" not in out, \
            f"{self.what} did not run the unit tests"
        return time.time() - self.t0


def lintian(changes, d):
    r = subprocess.run(["lintian", "--fail-on", "error,warning", "--info", changes],
                       capture_output=True, text=True, timeout=300)
    D.write(os.path.join(d, "lintian.log"), r.stdout + r.stderr)
    tags = [line for line in r.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert r.returncode == 0 and not tags, f"lintian (exit {r.returncode}):\n{r.stdout}{r.stderr}"
    return r.stdout.strip() or "no tags"


def user_build(d):
    """The build as an ordinary user: the unit tests' paths for a caller
    that is not root, in a directory no other account may enter."""
    run(["useradd", "--create-home", "--shell", "/bin/sh", "builder"])
    home = pwd.getpwnam("builder").pw_dir
    os.chmod(home, 0o700)
    return Build(os.path.join(home, "src"), os.path.join(d, "build-as-user.log"), "builder")


# Every account the test (or the package) makes, in the throw-away root only.
TEST_ACCOUNTS = ("pop3d", "builder", first_day.USER)
# One of them as a field of an account line: a name, or a group's member.
TEST_ACCOUNT_FIELD = rf"(^|[:,])({'|'.join(TEST_ACCOUNTS)})([:,]|$)"


def host_state():
    """What the test must leave on the machine as it found it: the package set
    (dpkg -l), the account files, and a few paths, as sets of lines."""
    pkgs = run(["dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"]).stdout
    state = {"packages": set(pkgs.splitlines())}
    for path in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"):
        state[path] = set(D.read(path).decode().splitlines()) if os.path.exists(path) else set()
    state["paths"] = {p for p in ("/var/lib/pop3d", "/var/lib/pop3d-journal",
                                  "/usr/local/sbin/pop3d", "/etc/xinetd.d/pop3",
                                  "/etc/stunnel/pop3s.conf", "/var/mail/" + first_day.USER)
                      if os.path.lexists(p)}
    return state


def machine_changes(before, after):
    """(changes the test may have made, other changes): an account line that
    names none of the test's accounts was changed by something else running
    on the machine meanwhile (another test suite's temporary user)."""
    ours, others = [], []
    for key in before:
        for sign, lines in (("-", before[key] - after[key]), ("+", after[key] - before[key])):
            for line in sorted(lines):
                other = key.startswith("/etc/") and not re.search(TEST_ACCOUNT_FIELD, line)
                (others if other else ours).append(f"{key}: {sign}{line}")
    return ours, others


def clean_slate():
    """In the throw-away root: no POP3 server package, and nothing a pop3d
    left (the root starts as a copy of the machine, whose tests run pop3d)."""
    first_day.purge_pop3_servers()
    for path in ("/var/lib/pop3d", "/var/lib/pop3d-journal", "/run/pop3d"):
        shutil.rmtree(path, ignore_errors=True)
    if subprocess.run(["getent", "passwd", "pop3d"], capture_output=True).returncode == 0:
        run(["deluser", "--quiet", "--system", "pop3d"])
    if subprocess.run(["getent", "group", "pop3d"], capture_output=True).returncode == 0:
        run(["delgroup", "--quiet", "--system", "pop3d"])


def package_checks(deb, version, d):
    """Inside the throw-away root: install, use, purge, three times over."""
    # ---- the layout: make install PREFIX=/usr, and the Debian files ----
    mi = os.path.join(d, "make-install")
    run(["make", "--no-print-directory", "-o", "pop3d", "install", f"DESTDIR={mi}",
         "PREFIX=/usr"], cwd=ROOT)
    make_files = sorted(os.path.relpath(os.path.join(p, f), mi)
                        for p, _, fs in os.walk(mi) for f in fs)
    # dh_compress gzips manual pages and the documents over 4 KiB outside
    # examples/: names are compared without that .gz, contents gunzipped.
    def uncompressed(name):
        compressible = name.startswith("usr/share/man/") or (
            name.startswith("usr/share/doc/pop3d/") and "/examples/" not in name)
        return name[:-3] if compressible and name.endswith(".gz") else name

    def installed_content(name):
        for path, unpack in (("/" + name, False), ("/" + name + ".gz", True)):
            if os.path.isfile(path):
                return gzip.decompress(D.read(path)) if unpack else D.read(path)
        raise AssertionError(f"/{name} is not installed")

    DEBIAN_FILES = sorted([
        "etc/fail2ban/filter.d/pop3d.conf",
        "lib/systemd/system/pop3d.socket", "lib/systemd/system/pop3d@.service",
        "lib/systemd/system/pop3s.socket", "lib/systemd/system/pop3s@.service",
        "lib/systemd/system/pop3-starttls.socket",
        "lib/systemd/system/pop3-starttls@.service",
        "usr/lib/tmpfiles.d/pop3d.conf",
        "usr/share/doc/pop3d/README.Debian", "usr/share/doc/pop3d/changelog",
        "usr/share/doc/pop3d/copyright",
    ])
    want_files = sorted(make_files + DEBIAN_FILES)

    # ---- the state before: only what was not there may be created ----
    def exists_user(name):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            return None

    def exists_group(name):
        try:
            return grp.getgrnam(name)
        except KeyError:
            return None

    PATHS = ["/var/lib/pop3d", "/var/lib/pop3d-journal", "/run/pop3d"]
    def listening_any(port):
        """Something listens on PORT, on any address (IPv4 or IPv6)."""
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as f:
                    rows = [line.split() for line in f.readlines()[1:]]
            except FileNotFoundError:
                continue
            if any(r[1].endswith(f":{port:04X}") and r[3] == "0A" for r in rows):
                return True
        return False

    listening_before = {p for p in (110, 995) if listening_any(p)}

    def config_files():
        """What enables a unit or configures a front end: every entry under
        these directories, with where a symlink points."""
        out = set()
        for top in ("/etc/systemd/system", "/etc/xinetd.d", "/etc/stunnel"):
            for p, dirs, fs in os.walk(top):
                for f in fs + dirs:
                    path = os.path.join(p, f)
                    out.add((path, os.path.realpath(path)))
        if os.path.isfile("/etc/inetd.conf"):
            out.add(("/etc/inetd.conf", D.read("/etc/inetd.conf")))
        return out

    config_before = config_files()

    def state():
        return {"user": bool(exists_user("pop3d")), "group": bool(exists_group("pop3d")),
                **{p: os.path.lexists(p) for p in PATHS}}

    def check_mode(path, mode, kind=stat.S_ISDIR):
        st = os.lstat(path)
        assert kind(st.st_mode) and st.st_uid == 0 and st.st_gid == 0 and \
            stat.S_IMODE(st.st_mode) == mode, \
            f"{path}: mode {stat.S_IMODE(st.st_mode):o} owner {st.st_uid}:{st.st_gid}, " \
            f"want root:root {mode:o}"

    def installed_files():
        out = run(["dpkg-query", "-L", "pop3d"]).stdout.split()
        return sorted(os.path.relpath(p, "/") for p in out
                      if os.path.isfile(p) and not os.path.islink(p))

    def purge_and_check(before):
        dpkg("--purge", "pop3d")
        assert package_status() == "not-installed", package_status()
        after = state()
        for what, was in before.items():
            if not was and what != "/run/pop3d":
                assert not after[what], f"purge left {what}, which the package created"
        # /run/pop3d: pop3d itself makes it when missing; check it only if
        # nothing but the package can have made it.
        if not before["/run/pop3d"]:
            assert not after["/run/pop3d"], "purge left /run/pop3d"
        for f in files:
            assert not os.path.lexists("/" + f), f"purge left /{f}"
        helper = "/var/lib/systemd/deb-systemd-helper-enabled"
        if os.path.isdir(helper):
            left = [os.path.join(p, f) for p, _, fs in os.walk(helper) for f in fs
                    if "pop3" in f]
            assert not left, f"systemd state left: {left}"
        return after

    # ---- install ----
    before = state()
    files = []
    dpkg("-i", deb)
    try:
        assert package_status() == "installed", package_status()
        files = installed_files()
        assert sorted(map(uncompressed, files)) == want_files, \
            f"package files differ from make install + Debian files:\n" \
            f"missing {sorted(set(want_files) - set(map(uncompressed, files)))}\n" \
            f"extra {sorted(set(map(uncompressed, files)) - set(want_files))}"
        for f in make_files:
            if f == "usr/sbin/pop3d":
                continue  # the package's own build, stripped: compared by --version
            assert installed_content(f) == D.read(os.path.join(mi, f)), \
                f"/{f} differs from make install's"
        assert installed_content("usr/share/doc/pop3d/README.Debian") == \
            D.read(os.path.join(ROOT, "debian", "README.Debian"))
        version_out = run(["/usr/sbin/pop3d", "--version"]).stdout
        assert version_out == run([D.POP3D, "--version"]).stdout, version_out
        assert version_out.startswith(f"pop3d {version}"), (version_out, version)

        # The account: a system account with nothing to log in with (unless
        # one was there before: then it is used as it is).
        pw = exists_user("pop3d")
        gr = exists_group("pop3d")
        assert pw and gr, "no pop3d user or group after installation"
        if not before["user"]:
            assert 100 <= pw.pw_uid < 1000 and pw.pw_gid == gr.gr_gid, (pw, gr)
            assert pw.pw_dir == "/nonexistent" and not os.path.exists("/nonexistent"), pw
            assert pw.pw_shell == "/usr/sbin/nologin", pw
        if not before["/var/lib/pop3d"]:
            check_mode("/var/lib/pop3d", 0o700)
        if not before["/var/lib/pop3d-journal"]:
            check_mode("/var/lib/pop3d-journal", 0o755)
        check_mode("/run/pop3d", 0o755)
        check_mode("/run/pop3d/empty", 0o555)
        assert os.listdir("/run/pop3d/empty") == []

        # Installed means inactive: nothing enabled, configured or listening.
        new = config_files() - config_before
        assert not new, f"installation enabled or configured {sorted(new)}"
        assert {p for p in (110, 995) if listening_any(p)} == listening_before

        # The units as installed, as systemd would load them.
        system = "/lib/systemd/system"
        r = run(["systemd-analyze", "verify",
                 *(os.path.join(system, u) for u in ("pop3d.socket", "pop3d@.service",
                                                     "pop3s.socket", "pop3s@.service",
                                                     "pop3-starttls.socket",
                                                     "pop3-starttls@.service"))], timeout=60)
        assert not r.stdout and not r.stderr, r.stdout + r.stderr
        # The units are the examples as make install writes them, unchanged.
        examples = os.path.join(mi, "usr/share/doc/pop3d/examples/systemd")
        for u in os.listdir(examples):
            assert D.read(os.path.join(system, u)) == D.read(os.path.join(examples, u)), u
        cmd = D.unit_command(os.path.join(system, "pop3d@.service"))
        assert D.read("/etc/fail2ban/filter.d/pop3d.conf") == \
            D.read(os.path.join(ROOT, "contrib/fail2ban/filter.d/pop3d.conf"))

        # ---- one session through the installed unit's command line ----
        # A spool like Debian's /var/mail: the directory is root's, the
        # mailbox the user's; the journal can only go to /var/lib/pop3d-journal.
        spool = os.path.join(d, "spool")
        os.makedirs(spool)
        msgs = D.generated_messages(random.Random(1313), 4)
        box = os.path.join(spool, "alice.mbox")
        D.write(box, D.mbox_bytes(msgs), 0o600)
        nobody = pwd.getpwnam("nobody")
        os.chown(box, nobody.pw_uid, nobody.pw_gid)
        os.chmod(spool, 0o755)
        log = os.path.join(d, "pop3d.log")
        D.write(log, b"", 0o666)  # pop3d opens its log before it drops to the user
        args = ["--passwd", P.PASSWD, "--mailbox", os.path.join(spool, "%u.mbox"),
                "--log", log, "--login-delay", "0", "--user", "nobody"]
        with D.socket_activated(d, [*cmd, *args]) as fe:
            c = poplib.POP3("127.0.0.1", fe.port, timeout=30)
            c.user("alice")
            c.pass_("secret")
            assert c.stat() == (4, sum(len(P.wire_form(m)) for m in msgs))
            _, lines, _ = c.retr(2)
            assert b"".join(line + b"\r\n" for line in lines) == P.wire_form(msgs[1])
            c.dele(2)
            assert c.quit().startswith(b"+OK")
            text = D.wait_log(log, "session end:")
        assert "session end: user=alice peer=127.0.0.1 " in text and "end=quit" in text, text
        assert "deleted=1/" in text, text
        assert D.mailbox_messages(box) == [msgs[0], msgs[2], msgs[3]], \
            "the update through /var/lib/pop3d-journal did not remove exactly message 2"
        own = os.path.join("/var/lib/pop3d-journal", str(nobody.pw_uid))
        assert os.listdir("/var/lib/pop3d-journal") == [str(nobody.pw_uid)], \
            os.listdir("/var/lib/pop3d-journal")
        st = os.lstat(own)
        assert stat.S_ISDIR(st.st_mode) and st.st_uid == nobody.pw_uid and \
            stat.S_IMODE(st.st_mode) == 0o700, f"{own}: {st}"
        assert os.listdir(own) == [], "a journal was left behind"
    finally:
        if package_status() != "not-installed":
            after = purge_and_check(before)
    print("ok: built, lintian clean, installed, one session, purged without a trace")

    # ---- again, with a group and the directories there before: a journal
    # directory with a file in it, and /var/lib/pop3d made 1733 as the README
    # once suggested for journals ----
    # (/run/pop3d does not count: any pop3d run as root makes it, e.g. a
    # test running meanwhile, and purge_and_check allows for it)
    assert not any(v for k, v in state().items() if k != "/run/pop3d"), state()
    run(["addgroup", "--quiet", "--system", "pop3d"])
    os.makedirs("/var/lib/pop3d-journal", mode=0o700)
    keep = "/var/lib/pop3d-journal/admin-file"
    D.write(keep, "not the package's\n")
    os.makedirs("/var/lib/pop3d")
    os.chmod("/var/lib/pop3d", 0o1733)
    try:
        before = state()
        r = dpkg("-i", deb)
        assert "/var/lib/pop3d is not a root:root 0700 directory" in r.stderr, r.stderr
        try:
            pw, gr = exists_user("pop3d"), exists_group("pop3d")
            assert pw and pw.pw_gid == gr.gr_gid, "the user is not in the existing pop3d group"
            check_mode("/var/lib/pop3d-journal", 0o700)  # as it was made, not changed
            check_mode("/var/lib/pop3d", 0o1733)
        finally:
            after = purge_and_check(before)
        assert after["group"] and os.path.exists(keep), "purge removed what was there before"
        check_mode("/var/lib/pop3d", 0o1733)
        assert os.listdir("/var/lib/pop3d") == [], "purge left its record of what it created"
        assert not after["user"], "purge left the user it created"
    finally:
        shutil.rmtree("/var/lib/pop3d-journal", ignore_errors=True)
        shutil.rmtree("/var/lib/pop3d", ignore_errors=True)
        if exists_group("pop3d"):
            run(["delgroup", "--quiet", "--system", "pop3d"])
    print("ok: an existing group and directories were used and left alone")

    # ---- the 1777 directory of older versions: an upgrade makes it 0755 and
    # keeps the journals in it; a journal left there survives purge ----
    dpkg("-i", deb)
    journal = "/var/lib/pop3d-journal/alice.mbox.0123456789abcdef.pop3d-journal"
    try:
        os.chmod("/var/lib/pop3d-journal", 0o1777)
        D.write(journal, "an interrupted update's mail\n")
        os.makedirs("/var/lib/pop3d-journal/65534", mode=0o700)   # an account's, empty
        dpkg("-i", deb)   # the upgrade
        check_mode("/var/lib/pop3d-journal", 0o755)
        assert D.read(journal) == b"an interrupted update's mail\n", "the upgrade lost a journal"
    finally:
        r = dpkg("--purge", "pop3d")
    try:
        assert os.path.exists(journal), "purge removed a journal (mail still to put back)"
        assert not os.path.exists("/var/lib/pop3d-journal/65534"), "an empty account directory was kept"
        assert "/var/lib/pop3d-journal is not empty" in r.stderr, r.stderr
        assert not os.path.exists("/var/lib/pop3d") and not exists_user("pop3d")
    finally:
        shutil.rmtree("/var/lib/pop3d-journal", ignore_errors=True)
    print("ok: purge keeps a journal directory that still holds a journal")


if not T.inside():
    work = tempfile.mkdtemp(prefix="pop3d-deb.")   # 0700: only root may enter
    try:
        t0 = time.time()
        before = host_state()
        # openbsd-inetd's .debs (tests/deps.sh): seen in the root wherever they are.
        cache = [first_day.INETD_CACHE] if os.path.isdir(first_day.INETD_CACHE) else []
        status = T.reexec(__file__, [work], [work, ROOT, *cache])
        ours, others = machine_changes(before, host_state())
        if others:
            print("changed on the machine meanwhile, not by this test:\n  " + "\n  ".join(others))
        assert not ours, "the test changed the machine:\n  " + "\n  ".join(ours)
        print(f"{time.time() - t0:.0f} s in all")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(status)

# In the throw-away root: both builds at once (one core each), then the rest.
work = sys.argv[1]
syslog = T.enter()
d = D.fresh_dir("debian-package")
clean_slate()
src = os.path.join(work, "src")
as_root = Build(src, os.path.join(d, "build.log"))
as_user = user_build(d)
took = as_root.finish()
with open(os.path.join(src, "debian", "changelog")) as f:
    version = f.readline().split("(")[1].split(")")[0]
arch = run(["dpkg", "--print-architecture"]).stdout.strip()
deb = os.path.join(work, f"pop3d_{version}_{arch}.deb")
changes = os.path.join(work, f"pop3d_{version}_{arch}.changes")
assert os.path.isfile(deb) and os.path.isfile(changes), os.listdir(work)
print(f"built in {took:.0f} s; lintian: {lintian(changes, d)}")
failed = False
try:
    t0 = time.time()
    package_checks(deb, version, d)
    print(f"package checks {time.time() - t0:.0f} s")
except Exception:  # reported; the first day still runs, from a clean slate
    traceback.print_exc()
    failed = True
    clean_slate()
t0 = time.time()
try:
    first_day.run(syslog, D.fresh_dir("first-day"), deb, ROOT)
except Exception:
    traceback.print_exc()
    failed = True
print(f"first day {time.time() - t0:.0f} s")
print(f"built as an ordinary user too ({as_user.finish():.0f} s)")
sys.exit(1 if failed else 0)
