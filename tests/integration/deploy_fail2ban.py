"""contrib/fail2ban: the filter against real pop3d log lines (fail2ban-regex),
and the jail loading with it (fail2ban-client -d), both from a private copy of
the system's fail2ban configuration with our files installed in it.

The log lines come from real sessions through tcpserver (peer 127.0.0.1):
wrong passwords, an unknown user, AUTH PLAIN and AUTH LOGIN failures, hostile
user names (blanks and "peer=6.6.6.6 method=PLAIN", quotes, backslashes, UTF-8
logged as backslash-x escapes: none may get 6.6.6.6 banned, and each must be logged
quoted and escaped, on one line), names the greeter refuses unchecked (not
UTF-8, a CR or LF followed by a whole forged line: logged quoted by the
greeter, never matched), a good login, and a session closed after too many
failures. They
are read twice: as pop3d --log=FILE writes them, and as syslog writes them
(pop3d --log=syslog talking to a /dev/log that this test provides in a private
mount namespace, written out as rsyslog's traditional format; root only).
Every "authentication failed" line, and only those, must give 127.0.0.1.
"""
import ast
import base64
import os
import poplib
import re
import shutil
import socket
import subprocess
import threading
import time

import deploy_common as D
import pop3lib as P

d = D.fresh_dir("deploy-fail2ban")
maildir = os.path.join(d, "mail")
os.makedirs(maildir)
D.write_mailbox(os.path.join(maildir, "alice.mbox"), [])
INJECTED = "x peer=6.6.6.6 method=PLAIN"
# AUTH PLAIN takes any UTF-8 but control characters: names made to forge fields.
HOSTILE = [b'a" peer=6.6.6.6 method=PLAIN', b'b\\" peer=6.6.6.6 method=PLAIN', b"c\\",
           b"\xc3\xa9\xe6\x97\xa5 peer=6.6.6.6 method=PLAIN", b'"', b"-", b"peer=6.6.6.6",
           b"j\xc3\xbcrgen"]
# Refused by the greeter before any check (not UTF-8, control characters): not failed logins.
REFUSED = [b"\x80\xff\xc3\xa9 peer=6.6.6.6 method=PLAIN",
           b"d\rauthentication failed: user=e peer=6.6.6.6 method=PLAIN",
           b"f\nauthentication failed: user=g peer=6.6.6.6 method=USER"]
BARE = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@+/")


def logged(name):
    """name (bytes) as pop3d logs it (log.c log_quote): bare, or quoted and escaped."""
    if name and name != b"-" and all(c in BARE for c in name):
        return name.decode()
    out = ""
    for c in name:
        out += "\\" + chr(c) if c in b'"\\' else chr(c) if 0x20 <= c <= 0x7e else f"\\x{c:02x}"
    return f'"{out}"'


# The cross-session throttle logs the attempts it refuses unchecked, which the filter
# must NOT count (the address may be a NAT's): on for the --log=FILE part, where bob's
# fourth wrong password is refused; off (as in every test) for syslog.
THROTTLE = ["--throttle-account", "3/600", "--throttle-known", "0", "--throttle-source", "0"]


def expect_err(c, cmd):
    try:
        c._shortcmd(cmd)
    except poplib.error_proto as e:
        return str(e)
    raise AssertionError(f"{cmd!r} succeeded")


def auth_plain(user, password):
    if isinstance(user, str):
        user = user.encode()
    return "AUTH PLAIN " + base64.b64encode(b"\0" + user + b"\0" + password.encode()).decode()


def b64(text):
    return base64.b64encode(text.encode()).decode()


def sessions(port, throttled=False):
    """The client side: 8 failed logins (check_rows expects them), one good one;
    throttled: then one more for bob, refused without a check."""
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    c.user("alice")
    expect_err(c, "PASS wrong")
    c.user("nosuchuser")
    expect_err(c, "PASS whatever")
    c.quit()
    D.wait_sessions_gone(d)
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    assert c._shortcmd("AUTH LOGIN " + b64("zoe")) == b"+ UGFzc3dvcmQ6"
    expect_err(c, b64("wrong"))
    c.quit()
    D.wait_sessions_gone(d)
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    expect_err(c, auth_plain("alice", "wrong"))
    expect_err(c, auth_plain(INJECTED, "wrong"))
    c.user("alice")
    c.pass_("secret")
    c.quit()
    D.wait_sessions_gone(d)
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    for _ in range(3):
        c.user("bob")
        err = expect_err(c, "PASS wrong")
    assert "closing" in err, err
    c.close()
    D.wait_sessions_gone(d)
    for i in range(0, len(HOSTILE), 2):   # two a session: the third failure would close it
        c = poplib.POP3("127.0.0.1", port, timeout=30)
        for name in HOSTILE[i:i + 2]:
            expect_err(c, auth_plain(name, "wrong"))
        c.quit()
        D.wait_sessions_gone(d)
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    for name in REFUSED:
        assert "invalid user name" in expect_err(c, auth_plain(name, "wrong"))
    c.quit()
    D.wait_sessions_gone(d)
    if throttled:
        c = poplib.POP3("127.0.0.1", port, timeout=30)
        c.user("bob")
        err = expect_err(c, "PASS wrong")
        assert "[LOGIN-DELAY]" in err, err
        c.quit()
        D.wait_sessions_gone(d)


def fail2ban_config():
    """/etc/fail2ban with our filter and jail; only our jail enabled."""
    conf = os.path.join(d, "fail2ban")
    shutil.copytree("/etc/fail2ban", conf)
    for name in os.listdir(os.path.join(conf, "jail.d")):
        os.unlink(os.path.join(conf, "jail.d", name))
    shutil.copy(os.path.join(D.ROOT, "contrib", "fail2ban", "filter.d", "pop3d.conf"),
                os.path.join(conf, "filter.d"))
    shutil.copy(os.path.join(D.ROOT, "contrib", "fail2ban", "jail.d", "pop3d.conf"),
                os.path.join(conf, "jail.d"))
    return conf


def regex_rows(conf, logfile):
    """fail2ban-regex's matches: (address, user) for each matched line."""
    r = subprocess.run(["fail2ban-regex", "--raw", "-c", conf, "-o", "row", logfile, "pop3d"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = []
    for line in r.stdout.splitlines():
        try:
            addr, _, fields = ast.literal_eval(line.rstrip(","))
        except (ValueError, SyntaxError):
            raise AssertionError(f"unexpected fail2ban-regex output: {line!r}") from None
        rows.append((addr, fields["user"]))
    return rows


def check_rows(rows, text, what):
    """Every failed login matched, and no attempt the throttle refused unchecked."""
    want = 8 + len(HOSTILE)
    failed = len(re.findall(r"\]: authentication failed: ", text))   # not the names' copies
    assert failed == want, f"{what}: pop3d logged {failed} failed logins, {want} expected:\n{text}"
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    assert "6.6.6.6" in text and "6.6.6.6" not in unquoted, \
        f"{what}: 6.6.6.6 outside a quoted user name:\n{text}"
    lines = re.findall(r"authentication (failed): user=(.*) peer=127\.0\.0\.1 "
                       r"method=(?:USER|PLAIN|LOGIN)$", text, re.M)
    assert [a for a, _ in rows] == ["127.0.0.1"] * len(lines), f"{what}: {rows}"
    assert [u for _, u in rows] == [u for _, u in lines], (rows, lines)
    failed_users = [u for kind, u in lines if kind == "failed"]
    assert failed_users == ["alice", "nosuchuser", "zoe", "alice", logged(INJECTED.encode()),
                            "bob", "bob", "bob"] + [logged(n) for n in HOSTILE], lines
    for name in REFUSED:   # logged by the greeter, quoted, one line each
        assert re.search(r"greeter: user name refused: user=" + re.escape(logged(name)) +
                         r" peer=127\.0\.0\.1 ", text), (name, text)
    assert "method=LOGIN" in text, text


conf = fail2ban_config()

# 1. pop3d --log=FILE
log = os.path.join(d, "pop3d.log")
with D.tcpserver(d, D.pop3d_test_args(maildir, log, THROTTLE)) as fe:
    sessions(fe.port, throttled=True)
    text = D.wait_log(log, "session end:", 4)
assert "authentication throttled: user=bob peer=127.0.0.1 wait=" in text, text
check_rows(regex_rows(conf, log), text, "--log file")
assert "login: user=alice peer=127.0.0.1" in text  # present, and not matched above

# The jail loads with the filter and the log file.
jail = os.path.join(conf, "jail.d", "pop3d.conf")
D.write(jail, re.sub(r"(?m)^logpath\s*=.*$", f"logpath  = {log}", D.read(jail).decode()))
r = subprocess.run(["fail2ban-client", "-c", conf, "-d"], capture_output=True, text=True,
                   timeout=60)
assert r.returncode == 0, r.stdout + r.stderr
assert "['add', 'pop3d', 'auto']" in r.stdout, r.stdout
assert f"['set', 'pop3d', 'addlogpath', '{log}', 'head']" in r.stdout, r.stdout
assert "authentication failed: user=<F-USER>" in r.stdout, r.stdout
assert "['start', 'pop3d']" in r.stdout, r.stdout
bad = [line for line in r.stderr.splitlines() if "pop3d" in line]
assert not bad, bad


# 2. pop3d --log=syslog, as rsyslog would write facility mail to a file.
def syslog_receiver(sock, out, stop, problems):
    """Datagrams from syslog(3): "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG"; written
    as rsyslog's RSYSLOG_TraditionalFileFormat: "Mmm dd hh:mm:ss HOST TAG[PID]: MSG".
    What is wrong goes to problems, asserted by the main thread (an assert
    here would only end this thread)."""
    host = socket.gethostname().split(".")[0]
    with open(out, "w") as f:
        while not stop.is_set():
            try:
                data = sock.recv(4096).decode(errors="replace")
            except socket.timeout:
                continue
            m = re.match(r"<(\d+)>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (.*)", data, re.S)
            if not m or int(m.group(1)) >> 3 != 2:
                problems.append(f"not a facility mail syslog datagram: {data!r}")
                continue
            f.write(f"{m.group(2)} {host} {m.group(3).rstrip()}\n")
            f.flush()


if not P.as_root() or not shutil.which("unshare"):
    print("skipped the syslog part: needs root (a private /dev/log)")
else:
    sockpath = os.path.join(d, "devlog.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sockpath)
    os.chmod(sockpath, 0o666)
    sock.settimeout(0.2)
    syslog = os.path.join(d, "mail.log")
    stop = threading.Event()
    problems = []
    t = threading.Thread(target=syslog_receiver, args=(sock, syslog, stop, problems), daemon=True)
    t.start()
    olddev = os.path.join(d, "olddev")
    os.makedirs(olddev)
    args = D.pop3d_test_args(maildir, "syslog")
    port = P.free_port()
    # A private mount namespace: a fresh /dev with the few device nodes pop3d
    # may use, and /dev/log pointing at our receiver. The host's /dev is untouched.
    script = (f"mount --make-rprivate / && mount --bind /dev {olddev} && "
              f"mount -t tmpfs -o mode=755 tmpfs /dev && "
              f"for n in null zero random urandom; do touch /dev/$n && "
              f"mount --bind {olddev}/$n /dev/$n || exit 1; done && "
              f"ln -s {sockpath} /dev/log && "
              f"exec tcpserver -R -H -l localhost 127.0.0.1 {port} {D.POP3D} "
              + " ".join(args))
    fe = D.FrontEnd(["unshare", "-m", "sh", "-c", script], port,
                    os.path.join(d, "unshare.out"))
    try:
        sessions(port)
        deadline = time.time() + 15
        while D.read(syslog).decode().count("session end:") < 3 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        fe.__exit__(None, None, None)
        stop.set()
        t.join(timeout=5)
    assert not problems, problems
    text = D.read(syslog).decode()
    # The summary line comes from a child: relayed after its role.
    assert re.search(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ pop3d\[\d+\]: "
                     r"(?:greeter|worker): session end:", text, re.M), text
    check_rows(regex_rows(conf, syslog), text, "syslog")

print("ok: fail2ban filter on real log lines (file and syslog), jail loads")
