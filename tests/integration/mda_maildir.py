"""procmail delivering into a Maildir during POP3 sessions: it delivers a
stream of numbered messages (a trailing '/' in the procmailrc: Maildir,
through tmp/ into new/) while clients keep logging in, retrieving and
deleting everything, and quitting; some of them with --index-dir, so the
index meets the mail that arrived since. At the end every delivered message
was retrieved exactly once by a session whose QUIT succeeded, or is still in
the Maildir: nothing delivered during a session is lost or served twice.
Concurrent logins get [IN-USE]; delivery never waits for a session."""
import os
import random
import re
import subprocess
import threading
import time

import pop3lib as P

N_MESSAGES = int(os.environ.get("MDA_MESSAGES", "60"))
N_CLIENTS = 3
MARKER = re.compile(rb"^X-Marker: (m\d+)\r?$", re.M)

d = P.tmpdir("mda-maildir")
maildir = os.path.join(d, "alice") + "/"
index = os.path.join(d, "index")
for sub in ("new", "cur", "tmp"):
    os.makedirs(os.path.join(maildir, sub))
os.makedirs(index)
rc = os.path.join(d, "procmailrc")
with open(rc, "w") as f:
    f.write(f"DEFAULT={maildir}\nLOGFILE={d}/procmail.log\n:0\n{maildir}\n")
P.give_to_server(d)


def as_server_user():
    if P.as_root():
        import pwd
        pw = pwd.getpwnam("nobody")
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)


errors = []


def deliver_all(rng):
    try:
        for i in range(N_MESSAGES):
            body = P.message(rng, i, size=rng.choice([300, 3000, 20000]))
            msg = body.replace(b"Subject: ", f"X-Marker: m{i}\nSubject: ".encode(), 1)
            subprocess.run(["procmail", "-m", rc], input=msg, check=True,
                           preexec_fn=as_server_user, timeout=60, stderr=subprocess.DEVNULL,
                           env=dict(os.environ, HOME=d))
            time.sleep(rng.uniform(0, 0.01))   # spread the deliveries over the sessions
    except Exception as e:  # noqa: BLE001 - reported below
        errors.append(f"delivery: {e!r}")


retrieved = []          # markers from sessions whose QUIT succeeded
in_use = [0]
quit_failed = []        # QUIT answers other than +OK
sessions = [0]
lock = threading.Lock()
deliveries_done = threading.Event()


def client(k):
    rng = random.Random(k)
    extra = ["--index-dir", index] if k % 3 != 2 else []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        s = P.Pop3Pipe(os.path.join(d, "%u/"), extra=extra)
        try:
            assert s.cmd("USER alice").startswith(b"+OK")
            r = s.cmd("PASS secret")
            if b"[IN-USE]" in r:
                with lock:
                    in_use[0] += 1
                s.cmd("QUIT")
                time.sleep(rng.uniform(0.002, 0.01))
                continue
            assert r.startswith(b"+OK"), r
            done = deliveries_done.is_set()   # before LIST: all mail is in it then
            _, listing = s.multi("LIST")
            got = []
            for line in listing:
                n = int(line.split()[0])
                first, lines = s.multi(f"RETR {n}")
                assert first.startswith(b"+OK"), (n, first)
                m = MARKER.search(b"".join(lines))
                assert m, f"message {n} without marker"
                got.append(m.group(1).decode())
                assert s.cmd(f"DELE {n}").startswith(b"+OK")
            q = s.cmd("QUIT")
            with lock:
                if q.startswith(b"+OK"):
                    retrieved.extend(got)
                    sessions[0] += 1
                else:   # nothing deleted: the messages are fetched again
                    quit_failed.append(q.decode(errors="replace").strip())
                    continue
            if not listing and done:
                return
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {k}: {e!r}")
            return
        finally:
            try:
                s.close()
            except OSError:
                pass   # a server that hung up: the error above says why
    errors.append(f"client {k}: still finding mail after 120 s")


t0 = time.monotonic()
deliverer = threading.Thread(target=deliver_all, args=(random.Random(1),))
clients = [threading.Thread(target=client, args=(k,)) for k in range(N_CLIENTS)]
deliverer.start()
for c in clients:
    c.start()
deliverer.join()
deliveries_done.set()
for c in clients:
    c.join(timeout=150)
if errors or quit_failed:
    with open(os.path.join(d, "pop3d.log"), errors="replace") as f:
        log = f.read().splitlines()
    routine = re.compile(r"session end|login: |logged in|state file|no account|"
                         r": update .*removed|in use by another")
    print("pop3d.log, the lines that are not routine:",
          *[line for line in log if not routine.search(line)], sep="\n")
assert not errors, errors

remaining = []
for msg in P.maildir_messages_in_order(maildir):
    m = MARKER.search(msg)
    remaining.append(m.group(1).decode() if m else repr(msg[:80]))
everything = retrieved + remaining
missing = [f"m{i}" for i in range(N_MESSAGES) if f"m{i}" not in everything]
dups = sorted({m for m in everything if everything.count(m) > 1})
print(f"{N_MESSAGES} delivered by procmail, {len(retrieved)} retrieved and deleted in "
      f"{sessions[0]} sessions, {len(remaining)} left, {in_use[0]} logins answered [IN-USE], "
      f"{len(missing)} lost, {len(dups)} duplicated, {len(quit_failed)} QUITs failed, "
      f"{time.monotonic() - t0:.1f} s")
assert not missing, missing[:10]
assert not dups, dups[:10]
assert not quit_failed, f"{len(quit_failed)} QUITs failed: {quit_failed[:3]}"
assert not os.path.exists(os.path.join(maildir, ".pop3d-journal")), "a journal is left"
assert not os.listdir(os.path.join(maildir, "tmp")), "procmail left a file in tmp/"
assert in_use[0] > 0, "no concurrent login was refused: the test did not overlap sessions"
