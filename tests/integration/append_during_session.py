"""A session deletes messages while an MDA appends mail (dotlockfile + append,
as procmail and Postfix do): afterwards the mailbox holds exactly the kept
messages and every appended one, byte for byte."""
import os
import random
import subprocess
import sys

import pop3lib as P

rng = random.Random(1939)
d = P.tmpdir("append-during-session")
box = os.path.join(d, "alice.mbox")
original = [P.message(rng, i) for i in range(40)]
with open(box, "wb") as f:
    f.write(P.mbox_of(original))

s = P.Pop3Pipe(os.path.join(d, "%u.mbox"))
assert s.cmd("USER alice").startswith(b"+OK")
assert s.cmd("PASS secret").startswith(b"+OK")
first, listing = s.multi("LIST")
assert len(listing) == 40, listing
deleted = set(range(1, 41, 3)) | {2, 40}
for n in sorted(deleted):
    first, lines = s.multi(f"RETR {n}")
    assert P.unstuff(lines) == P.wire_form(original[n - 1]), f"RETR {n} differs"
    assert s.cmd(f"DELE {n}").startswith(b"+OK")

# Deliveries during the session, each under the MDA's dotlock.
appended = [P.message(rng, 100 + i) for i in range(25)]
for m in appended:
    subprocess.run(["dotlockfile", "-l", "-r", "3", box + ".lock"], check=True)
    with open(box, "ab") as f:
        f.write(P.mbox_of([m], sender="mda@example.org"))
    subprocess.run(["dotlockfile", "-u", box + ".lock"], check=True)

assert s.cmd("QUIT").startswith(b"+OK"), "QUIT failed"
rc, rest = s.close()
assert rc == 0, f"exit status {rc}"

with open(box, "rb") as f:
    after = P.split_mbox(f.read())
want = [m for i, m in enumerate(original, 1) if i not in deleted] + appended
assert after == want, f"mailbox after the session: {len(after)} messages, expected {len(want)}"
print(f"ok: {len(deleted)} deleted, {len(appended)} appended during the session, "
      f"{len(after)} kept byte-identical")
