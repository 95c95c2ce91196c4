"""A throw-away root for the tests that install packages, add users and start
system daemons (debian_package.py, first_day.py): nothing they do reaches the
machine.

- unshare: a mount, pid and network namespace of the test's own; the test
  runs under its pid 1 (which reaps orphans as init does), so every daemon
  it started dies with it, and only its own loopback interface exists
  (ports 110 and 995 are free there);
- an overlay whose lower layer is the machine's / (read only through it) and
  whose upper layer is a tmpfs: dpkg -i/--purge, useradd, files in /etc and
  /var/mail all land in the tmpfs and vanish with the namespace;
- fresh /proc (the namespace's processes), /sys, a private /dev (tmpfs with
  null, zero, full, random, urandom and tty bound from the machine's, and
  /dev/log, which the test serves as syslog), /tmp and /run fresh tmpfs;
- the directories the test names (its work directory, the source tree) bound
  at the same paths, read-write, so the results stay after the root is gone;
- then chroot into it.

An overlay of / shows the root file system only: a machine with /usr or /var
on file systems of their own gets a skip (77), as does one without overlayfs
or namespaces.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ENV_INSIDE = "POP3D_THROWAWAY_ROOT"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def skip(why):
    print(f"skipped: {why}")
    sys.exit(77)


def mount(*args):
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {r.stderr.strip()}")


def separate_mounts():
    """Mount points under / (other than the pseudo file systems we replace)
    that hold part of the system: an overlay of / would not show them."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point in ("/usr", "/var", "/etc", "/lib", "/bin", "/sbin", "/var/lib"):
                out.append(point)
    return out


def inside():
    return os.environ.get(ENV_INSIDE) == "1"


def reexec(script, args, binds):
    """From the machine: run SCRIPT ARGS again as pid 1 of new namespaces (it
    then calls enter()). Returns its exit status; 77 when that cannot be."""
    if os.geteuid() != 0:
        skip("a throw-away root needs root (namespaces, mounts)")
    for tool in ("unshare", "mount", "ip"):
        if not any(os.access(os.path.join(p, tool), os.X_OK)
                   for p in os.environ.get("PATH", "/usr/bin:/bin").split(":")):
            skip(f"{tool} is not installed: no throw-away root")
    sep = separate_mounts()
    if sep:
        skip(f"{', '.join(sep)} is a file system of its own: an overlay of / would not show it")
    top = tempfile.mkdtemp(prefix="pop3d-throwaway.")   # a mount point only
    env = dict(os.environ, **{ENV_INSIDE: "1", "POP3D_THROWAWAY_TOP": top,
                              "POP3D_THROWAWAY_BINDS": ":".join(binds)})
    try:
        r = subprocess.run(["unshare", "--mount", "--pid", "--net", "--fork", "--kill-child",
                            "--propagation", "private", "--", sys.executable, script, *args],
                           env=env)
    finally:
        os.rmdir(top)
    return r.returncode


def _prepare(top):
    """The overlay and its pseudo file systems under TOP (a fresh tmpfs)."""
    mount("-t", "tmpfs", "-o", "mode=0755", "throwaway", top)
    for d in ("upper", "work", "root"):
        os.mkdir(os.path.join(top, d))
    root = os.path.join(top, "root")
    mount("-t", "overlay", "overlay", "-o",
          f"lowerdir=/,upperdir={top}/upper,workdir={top}/work", root)
    mount("-t", "proc", "proc", os.path.join(root, "proc"))
    mount("--rbind", "/sys", os.path.join(root, "sys"))
    dev = os.path.join(root, "dev")
    mount("-t", "tmpfs", "-o", "mode=0755,nosuid", "dev", dev)
    for name in DEVICES:
        open(os.path.join(dev, name), "w").close()
        mount("--bind", os.path.join("/dev", name), os.path.join(dev, name))
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{i}", os.path.join(dev, name))
    os.symlink("/proc/self/fd", os.path.join(dev, "fd"))
    os.mkdir(os.path.join(dev, "shm"), 0o1777)
    os.mkdir(os.path.join(dev, "pts"))
    mount("-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", "tmp", os.path.join(root, "tmp"))
    mount("-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "run", os.path.join(root, "run"))
    os.mkdir(os.path.join(root, "run", "lock"))
    os.chmod(os.path.join(root, "run", "lock"), 0o1777)
    for path in filter(None, os.environ.get("POP3D_THROWAWAY_BINDS", "").split(":")):
        target = root + path
        os.makedirs(target, exist_ok=True)
        mount("--bind", path, target)
    return root


class Syslog:
    """/dev/log served by the test: every datagram kept as (priority, text)."""

    def __init__(self, path="/dev/log"):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            data = self.sock.recv(65536).decode(errors="replace").rstrip("\n\0")
            pri = 13
            if data.startswith("<") and ">" in data[:5]:
                pri, data = int(data[1:data.index(">")]), data[data.index(">") + 1:]
            with self.lock:
                self.lines.append((pri, data))

    def mark(self):
        with self.lock:
            return len(self.lines)

    def since(self, mark, tag=None):
        """Lines logged after MARK, by TAG (e.g. 'pop3d') if given."""
        with self.lock:
            got = self.lines[mark:]
        return [(p, t) for p, t in got if tag is None or f" {tag}[" in f" {t}" or
                t.startswith(f"{tag}:") or f" {tag}:" in t]

    def wait(self, mark, needle, timeout=30, tag=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(needle in t for _, t in self.since(mark, tag)):
                return
            time.sleep(0.05)
        raise AssertionError(f"no syslog line with {needle!r} within {timeout} s:\n" +
                             "\n".join(t for _, t in self.since(mark)))


def _init():
    """Pid 1 of the namespace stays behind as its init: it reaps every process
    whose parent is gone (a daemon's, after its init script stopped it;
    start-stop-daemon waits for a zombie to vanish) until the test, its
    child, ends, and exits with the test's status; the kernel then kills
    whatever is left in the namespace. The test goes on in the child."""
    test = os.fork()
    if test == 0:
        return
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if pid == test:
            os._exit(os.waitstatus_to_exitcode(status) % 256 if os.WIFEXITED(status)
                     else 128 + os.WTERMSIG(status))


def enter():
    """Inside the namespaces: build the root, chroot into it, bring up
    loopback and serve /dev/log. Returns the Syslog. Exits 77 if overlayfs
    or a mount is refused (the machine cannot give a throw-away root)."""
    assert inside() and os.getpid() == 1, "enter() runs as pid 1 of reexec()'s namespaces"
    _init()
    top = os.environ["POP3D_THROWAWAY_TOP"]
    try:
        root = _prepare(top)
    except OSError as e:
        skip(f"no throw-away root on this machine: {e}")
    os.chroot(root)
    os.chdir("/")
    r = subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    assert r.returncode == 0, f"ip link set lo up: {r.stderr}"
    os.environ["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return Syslog()
