"""Privilege separation, seen from outside the processes (as root only).

- Before login the client is read by the greeter: an unprivileged account, no
  supplementary groups, no capabilities, NoNewPrivs, a seccomp filter, and the
  empty root-owned directory as its root; neither it nor the authenticator
  holds the mailbox open.
- After login the session process runs as the --user account and nothing
  else: every uid and gid in /proc/PID/status is that account's, the
  supplementary groups are exactly its groups, no capability is left (so
  setuid(0) cannot work), NoNewPrivs and seccomp; so does its keeper.
- A virtual user cannot get at another account's mailbox through the passwd
  file's mailbox field: not one it cannot open, and not one it could open but
  does not own. The files stay untouched.
- pop3d refuses to serve mailboxes as root (--user root).
"""
import os
import pwd
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

if not P.as_root():
    print("skipped: the privilege checks need root")
    sys.exit(77)   # skipped: tests/run.sh says so instead of counting a pass

ALICE_HASH = "$5$alicesalt$253S664qOSUqLg/EE6Y0v3qyl4ZXt6nKjXbvqFPamx5"  # "secret"
SERVED = pwd.getpwnam("nobody")
OTHER = pwd.getpwnam("daemon")   # owns the mailbox a virtual user must not get at

top = P.tmpdir("security-privileges")
subprocess.run(["rm", "-rf", top], check=True)
d = os.path.join(top, "served")      # given to the --user account by Pop3Pipe
other = os.path.join(top, "other")   # another account's files
os.makedirs(d)
os.makedirs(other)
box = os.path.join(d, "alice.mbox")
with open(os.path.join(P.ROOT, "examples", "demo.mbox"), "rb") as f:
    demo = f.read()
with open(box, "wb") as f:
    f.write(demo)
passwd = os.path.join(top, "passwd")
with open(passwd, "w") as f:
    f.write(f"alice:{ALICE_HASH}\n"
            f"mallory:{ALICE_HASH}:{other}/closed/victim.mbox\n"
            f"trudy:{ALICE_HASH}:{other}/open.mbox\n")


def open_files(pid):
    names = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            names.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return names


# ---- before and after login ----
s = P.Pop3Pipe(os.path.join(d, "%u.mbox"), extra=["--passwd", passwd])
pid = s.p.pid
assert s.cmd("USER alice").startswith(b"+OK")
greeter = P.reader_of(pid)
assert greeter != pid, "the client is read by the authenticator itself"
before = P.proc_status(greeter)
# The greeter: an unprivileged account, no groups, no capabilities, no new
# privileges, a seccomp filter, the empty directory as its root.
assert before["Uid"][0] != "0" and len(set(before["Uid"])) == 1, before["Uid"]
assert before["Gid"][0] != "0" and len(set(before["Gid"])) == 1, before["Gid"]
assert before.get("Groups", []) == [], before.get("Groups")
for cap in ("CapPrm", "CapEff", "CapAmb"):
    assert int(before[cap][0], 16) == 0, f"greeter {cap} {before[cap][0]}"
assert before["NoNewPrivs"] == ["1"], before["NoNewPrivs"]
assert before["Seccomp"] == ["2"], before["Seccomp"]
assert os.readlink(f"/proc/{greeter}/root") == "/run/pop3d/empty"
st = os.stat("/run/pop3d/empty")
assert st.st_uid == 0 and st.st_mode & 0o222 == 0 and os.listdir("/run/pop3d/empty") == []
for p in (pid, greeter):
    assert box not in open_files(p), open_files(p)
assert s.cmd("PASS secret").startswith(b"+OK"), "login failed"
session = P.reader_of(pid)
assert session not in (pid, greeter), "the session after login is not the worker's"
after = P.proc_status(session)
uid, gid = str(SERVED.pw_uid), str(SERVED.pw_gid)
assert after["Uid"] == [uid] * 4, after["Uid"]
assert after["Gid"] == [gid] * 4, after["Gid"]
groups = sorted(int(g) for g in after.get("Groups", []))
want = sorted(set(os.getgrouplist(SERVED.pw_name, SERVED.pw_gid)))
assert groups == want, f"supplementary groups {groups}, expected {want}"
for cap in ("CapPrm", "CapEff", "CapAmb"):
    assert int(after[cap][0], 16) == 0, f"{cap} {after[cap][0]}"
assert after["NoNewPrivs"] == ["1"], after["NoNewPrivs"]
assert after["Seccomp"] == ["2"], after["Seccomp"]
assert box in open_files(session), "the mailbox is not open after login"
# The keeper, between the authenticator and the session process: the same account.
keeper = P.parent_of(session)
kst = P.proc_status(keeper)
assert keeper != pid and kst["Uid"] == [uid] * 4 and kst["Seccomp"] == ["2"], kst["Uid"]
assert s.cmd("QUIT").startswith(b"+OK")
rc, _ = s.close()
assert rc == 0, rc

# ---- another account's mailboxes ----
closed = os.path.join(other, "closed")
os.makedirs(closed)
victim = os.path.join(closed, "victim.mbox")
exposed = os.path.join(other, "open.mbox")
for path in (victim, exposed):
    with open(path, "wb") as f:
        f.write(demo)
os.chmod(other, 0o1777)   # a shared spool directory: anyone may create files
os.chown(closed, OTHER.pw_uid, OTHER.pw_gid)
os.chmod(closed, 0o700)
for path, mode in ((victim, 0o600), (exposed, 0o666)):
    os.chown(path, OTHER.pw_uid, OTHER.pw_gid)
    os.chmod(path, mode)
stamps = {p: (os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in (victim, exposed)}
# mallory's is in a directory nobody may enter (refused before the mailbox is
# even looked at: the check for an interrupted update's journal fails first);
# trudy's could be opened, but belongs to someone else.
for user, refusal in (("mallory", b"-ERR [SYS/"),
                      ("trudy", b"-ERR [SYS/PERM] mailbox is not owned by the user it is served as")):
    s = P.Pop3Pipe(os.path.join(d, "%u.mbox"), extra=["--passwd", passwd])
    assert s.cmd(f"USER {user}").startswith(b"+OK")
    answer = s.cmd("PASS secret")
    assert answer.startswith(refusal), (user, answer)
    assert s.cmd("QUIT").startswith(b"+OK")
    s.close()
for path, stamp in stamps.items():
    with open(path, "rb") as f:
        assert f.read() == demo, f"{path} changed"
    assert (os.stat(path).st_mtime_ns, os.stat(path).st_size) == stamp, f"{path} touched"
leftovers = [n for n in os.listdir(other) if n.endswith((".lock", ".pop3d-journal"))]
assert not leftovers, leftovers

# ---- never as root ----
r = subprocess.run([P.POP3D, "--passwd", passwd, "--mailbox", os.path.join(d, "%u.mbox"),
                    "--user", "root", "--log", os.path.join(top, "root.log"), *P.state_args()],
                   input=b"QUIT\r\n", capture_output=True, timeout=30)
assert r.returncode == 78 and r.stdout.startswith(b"-ERR [SYS/TEMP] ") and \
    r.stdout.count(b"\n") == 1, (r.returncode, r.stdout)
print("ok: greeter unprivileged, chrooted and filtered; no mailbox before login, only the --user account's ids and groups after, "
      "no capabilities; other accounts' mailboxes refused; never as root")
