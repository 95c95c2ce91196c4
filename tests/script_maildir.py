"""The scripted sessions against a Maildir (tests/script_case_maildir.sh):
a case's mbox turned into a Maildir holding the same messages, its expected
answers with the UIDLs a Maildir gives, and the check of mbox.after against
the messages left in the Maildir.

  script_maildir.py prepare CASE MAILDIR EXPECTED   (EXPECTED: written)
  script_maildir.py after CASE MAILDIR

The messages are the mbox's as the contract reads them (pop3lib.split_mbox:
no From_ line, no separator), one file each, named "<stamp>.<i>.pop3d-test"
with stamps that grow in the mbox's order; the stamps cross from 9 to 10
digits, so the order is right only if the server compares them as numbers.
Every third name carries ",S=<octets>,W=<octets with CRLF>"; every second
file is in cur/ with ":2,S" (seen), the others in new/. A Maildir's UIDL is
the name up to ':' (",S=" and ",W=" kept), so in the expected answers every
UIDL line ("N ID" of a listing, "+OK N ID") gets message N's name instead.
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import pop3lib as P  # noqa: E402

FIRST_STAMP = 999_999_990   # + 5 per message: the third has 10 digits
JOURNAL = ".pop3d-journal"
UIDL_LINE = re.compile(rb"^(\+OK )?([0-9]+) [0-9a-f]{32}(-[0-9]+)?$")


def vsize(msg):
    """Octets as sent: each LF not after a CR counted as CR LF (Dovecot's ,W=)."""
    return len(msg) + msg.count(b"\n") - msg.count(b"\r\n")


def layout(msgs):
    """(path below the Maildir, UIDL) of each message, in the mbox's order."""
    out = []
    for i, m in enumerate(msgs):
        base = f"{FIRST_STAMP + 5 * i}.{i}.pop3d-test"
        if i % 3 == 1:
            base += f",S={len(m)},W={vsize(m)}"
        path = f"cur/{base}:2,S" if i % 2 == 1 else f"new/{base}"
        out.append((path, base))
    return out


def case_messages(case, name):
    path = os.path.join(case, name)
    with open(path, "rb") as f:
        return P.split_mbox(f.read())


def prepare(case, maildir, expected):
    uidls = {}
    if os.path.exists(os.path.join(case, "mbox")):
        msgs = case_messages(case, "mbox")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(maildir, sub))
        for n, ((path, base), m) in enumerate(zip(layout(msgs), msgs), 1):
            with open(os.path.join(maildir, path), "wb") as f:
                f.write(m)
            uidls[n] = base.encode()
    # else: no Maildir at all (a missing Maildir is an empty maildrop)

    def uidl_of(m):
        n = int(m.group(2))
        assert n in uidls, f"expected answers a UIDL for message {n}, which is not there"
        return (m.group(1) or b"") + m.group(2) + b" " + uidls[n]
    with open(os.path.join(case, "expected"), "rb") as f:
        lines = f.read().split(b"\n")
    with open(expected, "wb") as f:
        f.write(b"\n".join(UIDL_LINE.sub(uidl_of, line) for line in lines))


def after(case, maildir):
    """The Maildir holds exactly mbox.after's messages, in order, under their
    first names (kept messages are not renamed), and no journal."""
    msgs = case_messages(case, "mbox")
    paths = [p for p, _ in layout(msgs)]
    left = []
    for sub in ("new", "cur"):
        d = os.path.join(maildir, sub)
        left += [f"{sub}/{n}" for n in os.listdir(d) if not n.startswith(".")]
    ok = True
    renamed = sorted(set(left) - set(paths))
    if renamed:
        print(f"files that were not in the Maildir before: {renamed}")
        ok = False
    kept = [m for p, m in zip(paths, msgs) if p in left]
    want = case_messages(case, "mbox.after")
    if kept != want:
        print(f"the Maildir holds {len(kept)} of the messages, in order: "
              f"{[p for p in paths if p in left]}; mbox.after has {len(want)}")
        for k, w in zip(kept, want):
            if k != w:
                print(f"first difference: {k[:200]!r} != {w[:200]!r}")
                break
        ok = False
    if os.path.exists(os.path.join(maildir, JOURNAL)):
        print(f"{JOURNAL} is left in the Maildir")
        ok = False
    return ok


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(*sys.argv[2:5])
    elif sys.argv[1] == "after":
        sys.exit(0 if after(*sys.argv[2:4]) else 1)
    else:
        sys.exit(f"usage: {sys.argv[0]} prepare|after CASE MAILDIR [EXPECTED]")
