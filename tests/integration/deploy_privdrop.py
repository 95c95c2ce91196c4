"""Privilege drop, as a front end runs pop3d: as root (skipped otherwise).

The test accounts live only in a private mount namespace: copies of
/etc/passwd, /etc/group and /etc/shadow with the test accounts added are
bind-mounted over the real ones for the front end (tcpserver) and the pop3d
processes it starts; the host's files are never changed.

- System accounts: before login the session runs as root; after login its
  real, effective, saved and file-system uid and gid are the user's, its
  supplementary groups exactly the user's groups (read from /proc), and it
  has no capabilities left. It serves the user's 0600 mailbox, and the update
  at QUIT leaves owner and mode as they were.
- root cannot log in, even with the right password.
- Virtual users with --user: the session runs as that account with its
  groups; a virtual user whose passwd line names another user's 0600 mailbox
  is refused at login, gets no message, and that mailbox is left untouched.
"""
import os
import poplib
import random
import shutil
import subprocess
import sys

import deploy_common as D
import pop3lib as P

if not P.as_root() or not shutil.which("unshare"):
    print("skipped: the privilege drop test needs root (and unshare)")
    sys.exit(77)   # skipped: tests/run.sh says so instead of counting a pass

d = D.fresh_dir("deploy-privdrop")
os.chmod(d, 0o755)
PASSWORD = "drop-test-pw"
UIDS = {"popalice": 61001, "popbob": 61002, "popvmail": 61003}
GROUPS = {"popshare": 61010, "popextra": 61011}
MEMBERS = {"popshare": ["popalice", "popvmail"], "popextra": ["popalice"]}


def make_hash(password):
    r = subprocess.run([D.POP3D, "--hash"], input=password + "\n", capture_output=True,
                       text=True, check=True)
    return r.stdout.strip()


def private_etc():
    """Copies of passwd, group, shadow with the test accounts (and a known
    root password, which must not help)."""
    etc = os.path.join(d, "etc")
    os.makedirs(etc)
    h = make_hash(PASSWORD)
    passwd = D.read("/etc/passwd").decode()
    group = D.read("/etc/group").decode()
    shadow = "".join(line + "\n" for line in D.read("/etc/shadow").decode().splitlines()
                     if not line.startswith("root:"))
    shadow = f"root:{h}:19000:0:99999:7:::\n" + shadow
    for name, uid in UIDS.items():
        passwd += f"{name}:x:{uid}:{uid}:pop3d test:{d}/home-{name}:/usr/sbin/nologin\n"
        group += f"{name}:x:{uid}:\n"
        shadow += f"{name}:{h}:19000:0:99999:7:::\n"
    for name, gid in GROUPS.items():
        group += f"{name}:x:{gid}:{','.join(MEMBERS[name])}\n"
    for name, text, mode in (("passwd", passwd, 0o644), ("group", group, 0o644),
                             ("shadow", shadow, 0o640)):
        D.write(os.path.join(etc, name), text, mode)
    return etc


def mailbox(path, owner, msgs):
    D.write(path, D.mbox_bytes(msgs), 0o600)
    os.chown(path, UIDS[owner], UIDS[owner])


def front_end(etc, pop3d_args, name):
    """tcpserver -> pop3d in a mount namespace that sees the private etc files."""
    port = P.free_port()
    mounts = " && ".join(f"mount --bind {etc}/{f} /etc/{f}" for f in ("passwd", "group", "shadow"))
    script = (f"mount --make-rprivate / && {mounts} && exec tcpserver -R -H -l localhost "
              f"127.0.0.1 {port} {D.POP3D} {D.no_spaces(pop3d_args)}")
    return D.FrontEnd(["unshare", "-m", "sh", "-c", script], port,
                      os.path.join(d, name + ".out"))


def session_pid(client):
    """The pop3d serving CLIENT: the process whose stdin is the server end of
    the client's TCP connection (tcpserver hands the socket over as fd 0)."""
    sock = client.sock if hasattr(client, "sock") else client
    lport = sock.getsockname()[1]
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[2] == f"0100007F:{lport:04X}":
                inodes.add(fields[9])
    holders = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            target = os.readlink(f"/proc/{pid}/fd/0")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            holders.append(int(pid))
    if not holders:
        raise AssertionError(f"no process serves the connection from port {lport}")
    return P.deepest(holders)   # the one that reads the client


def credentials(pid):
    """uid and gid lines (real, effective, saved, fs), groups, capabilities."""
    status = dict(line.split(":", 1) for line in D.read(f"/proc/{pid}/status").decode()
                  .splitlines() if ":" in line)
    return {"uid": status["Uid"].split(), "gid": status["Gid"].split(),
            "groups": sorted(int(g) for g in status["Groups"].split()),
            "capeff": int(status["CapEff"], 16), "capprm": int(status["CapPrm"], 16)}


def assert_runs_as(pid, uid, gid, groups):
    c = credentials(pid)
    assert c["uid"] == [str(uid)] * 4, f"uids {c['uid']}, expected {uid}"
    assert c["gid"] == [str(gid)] * 4, f"gids {c['gid']}, expected {gid}"
    assert c["groups"] == sorted(groups), f"groups {c['groups']}, expected {sorted(groups)}"
    assert c["capeff"] == 0 and c["capprm"] == 0, "capabilities left after the drop"


def login(port, user):
    c = poplib.POP3("127.0.0.1", port, timeout=30)
    c.user(user)
    return c


def refused(c, password):
    try:
        c.pass_(password)
    except poplib.error_proto as e:
        return str(e)
    raise AssertionError("the login was accepted")


etc = private_etc()
mail = os.path.join(d, "mail")
os.makedirs(mail)
os.chmod(mail, 0o1777)  # like /tmp: every user can make its dotlock, not touch others' files
rng = random.Random(8)
alice_msgs = D.generated_messages(rng, 20)
bob_msgs = D.generated_messages(rng, 5, first=101)
mailbox(os.path.join(mail, "popalice"), "popalice", alice_msgs)
bob_box = os.path.join(mail, "popbob")
mailbox(bob_box, "popbob", bob_msgs)
log = os.path.join(d, "pop3d.log")
sys_args = ["--mailbox", os.path.join(mail, "%u"), "--log", log, "--login-delay", "0",
            *P.state_args()]

with front_end(etc, sys_args, "system") as fe:
    # Before login the client is read by the greeter, not by root (the
    # authenticator, which reads the shadow file, never reads the client).
    c = poplib.POP3("127.0.0.1", fe.port, timeout=30)
    greeter = credentials(session_pid(c))
    assert greeter["uid"][0] != "0" and greeter["capeff"] == 0, greeter
    c.user("popalice")
    c.pass_(PASSWORD)
    assert_runs_as(session_pid(c), 61001, 61001, [61001, 61010, 61011])
    assert c.stat()[0] == 20
    for n, m in enumerate(alice_msgs, 1):
        _, lines, _ = c.retr(n)
        assert b"".join(line + b"\r\n" for line in lines) == P.wire_form(m), f"RETR {n}"
    c.dele(1)
    c.quit()
    assert D.mailbox_messages(os.path.join(mail, "popalice")) == alice_msgs[1:]
    st = os.stat(os.path.join(mail, "popalice"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (61001, 61001, 0o600), st

    c = login(fe.port, "popbob")
    c.pass_(PASSWORD)
    assert_runs_as(session_pid(c), 61002, 61002, [61002])
    c.quit()

    c = login(fe.port, "root")
    assert refused(c, PASSWORD).startswith("b'-ERR [AUTH]")
    c.quit()
    text = D.wait_log(log, "session end:", 3)
assert "login: user=root" not in text, text
assert text.count("login: user=pop") == 2, text

# Virtual users served as popvmail.
vdir = os.path.join(d, "vmail")
os.makedirs(vdir, mode=0o700)
os.chown(vdir, 61003, 61003)
vera_msgs = D.generated_messages(rng, 3, first=201)
mailbox(os.path.join(vdir, "vera.mbox"), "popvmail", vera_msgs)
vpasswd = os.path.join(d, "vpasswd")
vh = make_hash(PASSWORD)
D.write(vpasswd, f"vera:{vh}\neve:{vh}:{bob_box}\n", 0o600)
bob_before = (D.read(bob_box), os.stat(bob_box))
vlog = os.path.join(d, "pop3d-virtual.log")
virt_args = ["--passwd", vpasswd, "--user", "popvmail", "--mailbox",
             os.path.join(vdir, "%u.mbox"), "--log", vlog, "--login-delay", "0", *P.state_args()]

with front_end(etc, virt_args, "virtual") as fe:
    c = login(fe.port, "vera")
    c.pass_(PASSWORD)
    assert_runs_as(session_pid(c), 61003, 61003, [61003, 61010])
    assert c.stat()[0] == 3
    c.quit()

    c = login(fe.port, "eve")
    err = refused(c, PASSWORD)
    assert err.startswith("b'-ERR [SYS/"), err
    try:
        c.stat()
        raise AssertionError("STAT answered after a refused login")
    except poplib.error_proto:
        pass
    c.quit()
    text = D.wait_log(vlog, "session end:", 2)
assert "login: user=eve" not in text and "login refused: user=eve" in text, text
# Who owns it and who was expected, not a bare "Permission denied" (issue 20).
assert "not owned by the user it is served as" in text and "(popbob)" in text and \
    "(popvmail)" in text and "Permission denied" not in text, text
after = os.stat(bob_box)
assert D.read(bob_box) == bob_before[0], "the other user's mailbox changed"
assert (after.st_uid, after.st_mode, after.st_mtime_ns) == \
    (bob_before[1].st_uid, bob_before[1].st_mode, bob_before[1].st_mtime_ns)
print("ok: privileges dropped to the user (uid, gid, groups) after login; "
      "a virtual user cannot open another user's mailbox")
