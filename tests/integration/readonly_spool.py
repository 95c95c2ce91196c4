"""A spool directory the user cannot write in (Debian's /var/mail is
root:mail 2775): deleting everything is a truncate and works; a deletion that
must move mail needs a journal, so without --journal-dir it is refused with
-ERR [SYS/TEMP] and nothing changes, and with --journal-dir it works. Root only
(the spool must belong to someone else than the served account)."""
import os
import random
import sys

import pop3lib as P

if not P.as_root():
    print("skipped: needs root to make a spool that the served account cannot write")
    sys.exit(77)   # skipped: tests/run.sh says so instead of counting a pass

import pwd  # noqa: E402
import stat  # noqa: E402

nobody = pwd.getpwnam("nobody")
d = P.tmpdir("readonly-spool")
spool = os.path.join(d, "spool")
jdir = os.path.join(d, "journals")
os.makedirs(spool, exist_ok=True)
os.makedirs(jdir, exist_ok=True)
os.chmod(spool, 0o755)                          # root's, not writable by nobody
os.chown(jdir, nobody.pw_uid, nobody.pw_gid)
box = os.path.join(spool, "alice.mbox")
rng = random.Random(2775)
msgs = [P.message(rng, i) for i in range(6)]


def session(extra, dele):
    with open(box, "wb") as f:
        f.write(P.mbox_of(msgs))
    os.chown(box, nobody.pw_uid, nobody.pw_gid)
    s = P.Pop3Pipe(os.path.join(spool, "%u.mbox"), extra=extra)
    assert s.cmd("USER alice").startswith(b"+OK")
    assert s.cmd("PASS secret").startswith(b"+OK")
    for n in dele:
        assert s.cmd(f"DELE {n}").startswith(b"+OK")
    q = s.cmd("QUIT")
    s.close()
    with open(box, "rb") as f:
        return q, P.split_mbox(f.read())


# Pop3Pipe gives the template's directory to the served account: take it back.
P.give_to_server = lambda path: None

# Without --journal-dir the journal goes to the compiled-in directory
# (JOURNALDIR/UID, tests/security/debian_spool.py); where that is missing, as
# here unless the package is installed, the update is refused and the log says
# what to do.
DEFAULT_JOURNALS = "/var/lib/pop3d-journal"
if not os.path.isdir(DEFAULT_JOURNALS):
    q, after = session([], [1])
    assert q.startswith(b"-ERR [SYS/TEMP]"), q
    assert b"/" not in q.split(b"]", 1)[1], q  # no path for the client
    assert after == msgs, "a refused update changed the mailbox"
    with open(os.path.join(spool, "pop3d.log")) as f:
        said = f.read()
    assert f"create {DEFAULT_JOURNALS}" in said and "--journal-dir" in said, said
q, after = session([], range(1, 7))
assert q.startswith(b"+OK"), q                   # delete-all is a truncate: no journal
assert after == []
q, after = session(["--journal-dir", jdir], [1, 3])
assert q.startswith(b"+OK"), q
assert after == [m for i, m in enumerate(msgs, 1) if i not in (1, 3)]
# The journal went to the account's own directory, made by root (0700, nobody's).
own = os.path.join(jdir, str(nobody.pw_uid))
assert os.listdir(jdir) == [str(nobody.pw_uid)], os.listdir(jdir)
st = os.lstat(own)
assert st.st_uid == nobody.pw_uid and stat.S_IMODE(st.st_mode) == 0o700, st
assert os.listdir(own) == [], os.listdir(own)
print("ok: read-only spool: move refused without --journal-dir, works with it; "
      "delete-all truncates")

# A spool the served account cannot even enter: a permanent problem, said so.
os.chmod(spool, 0o700)
try:
    s = P.Pop3Pipe(os.path.join(spool, "%u.mbox"))
    assert s.cmd("USER alice").startswith(b"+OK")
    r = s.cmd("PASS secret")
    s.cmd("QUIT")
    s.close()
    assert r.startswith(b"-ERR [SYS/PERM]"), r
finally:
    os.chmod(spool, 0o755)
print("ok: an unreachable spool is -ERR [SYS/PERM]")
