"""A Maildir user's worker reaches its own Maildir and nothing else (issue
22). As root, with the test build (tests/pop3d-fault):

- virtual users alice and bob share one uid (--user nobody), their Maildirs
  side by side in one directory (--mailbox DIR/%u/), and a file beside them
  in that directory. Just after its sandbox, alice's keeper tries to open
  bob's message, the file beside the Maildirs (which an mbox keeper, whose
  Landlock covers its mailbox's directory, could reach) and her own message
  (POP3D_TEST_KEEPER_PROBE): only her own may open;
- her session process, which opens no path at all, still gets each message
  from the keeper (RETR answers its octets), and its own attempt to open
  bob's message fails;
- on this kernel's Landlock and on ABI 2 (Debian 12's 6.1), emulated by
  tests/landlock-shim.so. Bob's Maildir is unchanged afterwards.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import pop3lib as P  # noqa: E402

if not P.as_root():
    print("skipped: needs root (virtual users sharing one uid with --user)")
    sys.exit(77)

FAULT = os.path.join(P.ROOT, "tests", "pop3d-fault")
SHIM = os.path.join(P.ROOT, "tests", "landlock-shim.so")
if not os.path.exists(SHIM):
    subprocess.run(["make", "-C", P.ROOT, "--no-print-directory", "tests/landlock-shim.so"],
                   check=True, stdout=subprocess.DEVNULL)
top = P.tmpdir("security-maildir-isolation")
shutil.rmtree(top)
d = os.path.join(top, "mail")
log = os.path.join(top, "pop3d.log")
MESSAGE = b"From: x@example.org\nSubject: %s\n\nbody of %s\n"
NAME = "1765000000.M1P1.host,S=%d:2,S"
failures = []


def check(cond, what):
    print(("ok      " if cond else "FAILED  ") + what)
    if not cond:
        failures.append(what)


def fresh_maildirs():
    """alice's and bob's Maildirs, one message each in cur/; a file beside them."""
    shutil.rmtree(d, ignore_errors=True)
    paths = {}
    for user in ("alice", "bob"):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(d, user, sub))
        body = MESSAGE % (user.encode(), user.encode())
        paths[user] = os.path.join(d, user, "cur", NAME % len(body))
        with open(paths[user], "wb") as f:
            f.write(body)
    with open(os.path.join(d, "beside"), "w") as f:
        f.write("not alice's\n")
    P.give_to_server(d)
    return paths


def tree(path):
    out = []
    for dirpath, dirnames, filenames in os.walk(path):
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out.append((p, fh.read(), os.lstat(p).st_mode))
    return sorted(out)


def run(name, env):
    paths = fresh_maildirs()
    before = tree(os.path.join(d, "bob"))
    beside = os.path.join(d, "beside")
    env = dict(env, POP3D_TEST_KEEPER_PROBE="\n".join([paths["bob"], beside, paths["alice"]]))
    if os.path.exists(log):
        os.unlink(log)
    script = ("USER alice\r\nPASS secret\r\nRETR 1\r\nXTEST OPEN %s\r\n"
              "XTEST OPENMSG 0\r\nXTEST OPENMSG 2\r\nXTEST OPENMSG 4294967297\r\n"
              "XTEST OPENMSG 1\r\nQUIT\r\n" % paths["bob"]).encode()
    p = subprocess.run(
        [FAULT, "--passwd", P.PASSWD, "--mailbox", os.path.join(d, "%u") + "/", "--log", log,
         "--login-delay", "0", *P.root_args(), *P.state_args()],
        input=script, stdout=subprocess.PIPE, env=env, timeout=60)
    out = p.stdout.decode(errors="replace")
    with open(log) as f:
        text = f.read()
    check(f"keeper probe {paths['bob']}: refused" in text,
          f"{name}: alice's keeper cannot open bob's message")
    check(f"keeper probe {beside}: refused" in text,
          f"{name}: alice's keeper cannot open a file beside the Maildirs")
    check(f"keeper probe {paths['alice']}: opened" in text,
          f"{name}: alice's keeper opens her own message")
    lines = out.split("\r\n")
    check(len(lines) > 3 and lines[2].startswith("+OK") and "body of alice" in out,
          f"{name}: RETR serves alice's message through the keeper ({lines[:4]})")
    check("-ERR EACCES" in out or "-ERR ENOENT" in out,
          f"{name}: alice's session process cannot open bob's message")
    asked = [l for l in lines if l.startswith(("+OK a descriptor", "-ERR no such message"))]
    check(asked == ["-ERR no such message"] * 3 + ["+OK a descriptor"],
          f"{name}: the keeper opens only the messages of its list for the session ({asked})")
    check(tree(os.path.join(d, "bob")) == before, f"{name}: bob's Maildir unchanged")
    if failures:
        print("transcript:", out, "log:", text, sep="\n")


run("this kernel's Landlock", dict(os.environ))
run("Landlock ABI 2", dict(os.environ, LD_PRELOAD=SHIM, POP3D_LANDLOCK_ABI="2"))

print(f"{len(failures)} failed")
sys.exit(1 if failures else 0)
