"""A real MDA and many POP3 sessions at once: procmail delivers hundreds of
messages (dotlock + fcntl, as on Debian) while several clients keep logging in
to the same mailbox, downloading and deleting everything. At the end every
delivered message was retrieved exactly once by a session whose QUIT
succeeded, or is still in the mailbox; concurrent logins got [IN-USE]."""
import os
import random
import re
import subprocess
import threading
import time

import pop3lib as P

N_MESSAGES = int(os.environ.get("MDA_MESSAGES", "300"))
N_CLIENTS = 4

d = P.tmpdir("mda-concurrency")
for f in os.listdir(d):
    os.unlink(os.path.join(d, f))
box = os.path.join(d, "alice.mbox")
rc = os.path.join(d, "procmailrc")
with open(rc, "w") as f:
    # LOCKSLEEP: procmail retries a busy dotlock every 8 s by default.
    f.write(f"DEFAULT={box}\nLOGFILE={d}/procmail.log\nLOCKSLEEP=1\n:0:\n{box}\n")
P.give_to_server(d)


def as_server_user():
    if P.as_root():
        import pwd
        pw = pwd.getpwnam("nobody")
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)


def deliver_all(rng):
    for i in range(N_MESSAGES):
        body = P.message(rng, i, size=rng.choice([300, 3000, 20000]))
        msg = body.replace(b"Subject: ", f"X-Marker: m{i}\nSubject: ".encode(), 1)
        # As an MTA hands it over: with its From_ line (procmail -m adds none).
        msg = b"From sender@example.org Mon Nov  2 09:14:07 2026\n" + msg
        subprocess.run(["procmail", "-m", rc], input=msg, check=True,
                       preexec_fn=as_server_user, timeout=60, stderr=subprocess.DEVNULL,
                       env=dict(os.environ, HOME=d))
        if i % 10 == 0:
            time.sleep(rng.uniform(0, 0.02))


retrieved = []          # markers from sessions whose QUIT succeeded
in_use = [0]
lock = threading.Lock()
deliveries_done = threading.Event()
errors = []


def client(k):
    rng = random.Random(k)
    while True:
        s = P.Pop3Pipe(os.path.join(d, "%u.mbox"))
        try:
            assert s.cmd("USER alice").startswith(b"+OK")
            r = s.cmd("PASS secret")
            if b"[IN-USE]" in r:
                with lock:
                    in_use[0] += 1
                s.cmd("QUIT")
                time.sleep(rng.uniform(0.005, 0.02))
                continue
            assert r.startswith(b"+OK"), r
            _, listing = s.multi("LIST")
            got = []
            for line in listing:
                n = int(line.split()[0])
                _, lines = s.multi(f"RETR {n}")
                m = re.search(rb"^X-Marker: (m\d+)\r$", b"".join(lines).replace(b"\n", b"\n"),
                              re.M)
                assert m, "message without marker"
                got.append(m.group(1).decode())
                assert s.cmd(f"DELE {n}").startswith(b"+OK")
            q = s.cmd("QUIT")
            if q.startswith(b"+OK"):
                with lock:
                    retrieved.extend(got)
            if not listing and deliveries_done.is_set():
                return
            time.sleep(rng.uniform(0, 0.01))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))
            return
        finally:
            s.close()


deliverer = threading.Thread(target=deliver_all, args=(random.Random(1),))
clients = [threading.Thread(target=client, args=(k,)) for k in range(N_CLIENTS)]
deliverer.start()
for c in clients:
    c.start()
deliverer.join()
deliveries_done.set()
for c in clients:
    c.join(timeout=300)
assert not errors, errors

with open(box, "rb") as f:
    remaining = [re.search(rb"^X-Marker: (m\d+)$", m, re.M).group(1).decode()
                 for m in P.split_mbox(f.read())]
everything = retrieved + remaining
missing = [f"m{i}" for i in range(N_MESSAGES) if f"m{i}" not in everything]
dups = sorted({m for m in everything if everything.count(m) > 1})
print(f"{N_MESSAGES} delivered by procmail, {len(retrieved)} retrieved and deleted, "
      f"{len(remaining)} left, {in_use[0]} logins answered [IN-USE], "
      f"{len(missing)} lost, {len(dups)} duplicated")
assert not missing, missing[:10]
assert not dups, dups[:10]
assert in_use[0] > 0, "no concurrent login was refused: the test did not overlap sessions"
