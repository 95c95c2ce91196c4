"""`make install` and `make uninstall` with DESTDIR and PREFIX, and the
pop3d(8) manual page.

- PREFIX=/usr into a DESTDIR: pop3d in usr/sbin (mode 755, the built
  binary), pop3d.8 in usr/share/man/man8 (644), README, doc/*.md (README's
  links) and every example
  configuration under usr/share/doc/pop3d/examples (644), each naming
  /usr/sbin/pop3d and nothing under /usr/local; uninstall leaves no file.
- Every file in xinetd.d/, stunnel/ and systemd/ is an installed example.
- /var/lib/pop3d-journal (the default journal directory) is made root's,
  0755, when missing; uninstall leaves it.
- The default PREFIX (/usr/local): the examples are installed unchanged.
- The manual page: groff finds nothing to warn about; it has the sections a
  pop3d(8) needs; every option of `pop3d --help` is an entry of OPTIONS; the
  exit statuses are the ones --help gives; man(1) renders it.
"""
import os
import re
import stat
import subprocess

import deploy_common as D

ROOT = D.ROOT
EXAMPLES = {  # source in the repository: path under share/doc/pop3d/examples
    "xinetd.d/pop3": "xinetd.d/pop3", "xinetd.d/pop3s": "xinetd.d/pop3s",
    "stunnel/pop3s.conf": "stunnel/pop3s.conf",
    "stunnel/inetd/pop3s.conf": "stunnel/inetd/pop3s.conf",
    "systemd/pop3d.socket": "systemd/pop3d.socket",
    "systemd/pop3d@.service": "systemd/pop3d@.service",
    "systemd/pop3s.socket": "systemd/pop3s.socket",
    "systemd/pop3s@.service": "systemd/pop3s@.service",
    "stunnel/pop3-starttls.conf": "stunnel/pop3-starttls.conf",
    "stunnel/inetd/pop3-starttls.conf": "stunnel/inetd/pop3-starttls.conf",
    "xinetd.d/pop3-starttls": "xinetd.d/pop3-starttls",
    "systemd/pop3-starttls.socket": "systemd/pop3-starttls.socket",
    "systemd/pop3-starttls@.service": "systemd/pop3-starttls@.service",
    "contrib/fail2ban/filter.d/pop3d.conf": "fail2ban/filter.d/pop3d.conf",
    "contrib/fail2ban/jail.d/pop3d.conf": "fail2ban/jail.d/pop3d.conf",
}

d = D.fresh_dir("deploy-install")
shipped_examples = sorted(os.path.relpath(os.path.join(p, f), ROOT)
                          for top in ("xinetd.d", "stunnel", "systemd")
                          for p, _, fs in os.walk(os.path.join(ROOT, top)) for f in fs)
missing = sorted(set(shipped_examples) - set(EXAMPLES))
assert not missing, f"shipped examples make install does not install: {missing}"


def make(*args):
    # -o pop3d: install the binary the test suite was built with, never rebuild here.
    r = subprocess.run(["make", "--no-print-directory", "-o", "pop3d", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"make {' '.join(args)}:\n{r.stdout}{r.stderr}"


def files_under(top):
    return sorted(os.path.relpath(os.path.join(p, f), top)
                  for p, _, fs in os.walk(top) for f in fs)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---- PREFIX=/usr ----
dest = os.path.join(d, "root")
make("install", f"DESTDIR={dest}", "PREFIX=/usr")
doc = "usr/share/doc/pop3d"
DOCS = sorted(f"doc/{n}" for n in os.listdir(os.path.join(ROOT, "doc")) if n.endswith(".md"))
want = sorted(["usr/sbin/pop3d", "usr/share/man/man8/pop3d.8", f"{doc}/README"] +
              [f"{doc}/{f}" for f in DOCS] +
              [f"{doc}/examples/{v}" for v in EXAMPLES.values()])
assert files_under(dest) == want, files_under(dest)
readme = D.read(os.path.join(dest, doc, "README")).decode()
assert "/usr/share/doc/pop3d/doc" in readme and "/usr/local" not in readme, \
    "the installed README does not say where doc/ is installed"
journal_dir = os.path.join(dest, "var/lib/pop3d-journal")
assert os.path.isdir(journal_dir) and mode(journal_dir) == 0o755, \
    "make install did not make /var/lib/pop3d-journal 0755"
binary = os.path.join(dest, "usr/sbin/pop3d")
assert mode(binary) == 0o755 and D.read(binary) == D.read(D.POP3D)
out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
assert out.startswith("pop3d "), out
for f in want[1:]:
    assert mode(os.path.join(dest, f)) == 0o644, f
for src, rel in EXAMPLES.items():
    text = D.read(os.path.join(dest, doc, "examples", rel)).decode()
    assert "/usr/local" not in text, f"{rel} still names /usr/local"
    shipped = D.read(os.path.join(ROOT, src)).decode()
    assert text == shipped.replace(D.INSTALLED_POP3D, "/usr/sbin/pop3d"), rel
xinetd = D.read(os.path.join(dest, doc, "examples/xinetd.d/pop3")).decode()
assert D.get_option(xinetd, "server") == "/usr/sbin/pop3d"
unit = os.path.join(dest, doc, "examples/systemd/pop3d@.service")
assert D.unit_command(unit)[0] == "/usr/sbin/pop3d"
man = D.read(os.path.join(dest, "usr/share/man/man8/pop3d.8")).decode()
assert "/usr/sbin/pop3d" in man and "/usr/share/doc/pop3d/examples" in man
assert "/usr/local" not in man

make("uninstall", f"DESTDIR={dest}", "PREFIX=/usr")
assert files_under(dest) == [], files_under(dest)
assert os.path.isdir(journal_dir), "uninstall removed the journal directory"

# ---- default PREFIX: the shipped files as they are ----
dest = os.path.join(d, "default")
make("install", f"DESTDIR={dest}")
for src, rel in EXAMPLES.items():
    got = D.read(os.path.join(dest, "usr/local/share/doc/pop3d/examples", rel))
    assert got == D.read(os.path.join(ROOT, src)), rel
assert os.access(os.path.join(dest, "usr/local/sbin/pop3d"), os.X_OK)
make("uninstall", f"DESTDIR={dest}")
assert files_under(dest) == []

# ---- the manual page ----
page = os.path.join(ROOT, "pop3d.8")
r = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True)
assert r.returncode == 0 and not r.stderr, f"groff warnings:\n{r.stderr}"
src = D.read(page).decode()
sections = re.findall(r"^\.SH (.+)$", src, re.M)
for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "VIRTUAL USERS", "PRIVILEGES",
          "MAILBOXES", "TLS", "LOGGING", "EXIT STATUS", "ENVIRONMENT", "FILES",
          "EXAMPLES", "SEE ALSO"):
    assert s in sections, f"pop3d.8 has no {s} section"
options = src.split(".SH OPTIONS", 1)[1].split("\n.SH ", 1)[0]
entries = re.findall(r"^\.TP\n\.BR? (.+)$", options, re.M)
help_text = subprocess.run([D.POP3D, "--help"], capture_output=True, text=True,
                           check=True).stdout
# "  -P, --passwd=FILE" or "      --max-messages=N" (not the wrapped lines)
help_opts = re.findall(r"^  (?:-(\w), |    )--([a-z-]+)", help_text, re.M)
assert len(help_opts) >= 12, help_opts
for short, long in help_opts:
    # roff writes each '-' of an option as '\-'
    man_long = re.escape(long.replace("-", "\\-"))
    want_entry = rf"\\-\\-{man_long}(?![\w\\])"
    if short:
        want_entry = rf"\\-{short}\b.*" + want_entry
    assert any(re.search(want_entry, e) for e in entries), \
        f"--{long} (-{short}) has no entry in OPTIONS of pop3d.8"
help_status = set(re.findall(r"\b(\d+) (?:for|when|otherwise)", help_text))
exit_section = src.split(".SH EXIT STATUS", 1)[1].split("\n.SH ", 1)[0]
man_status = set(re.findall(r"^\.TP\n\.B (\d+)$", exit_section, re.M))
assert help_status <= man_status, (help_status, man_status)
rendered = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                          env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
assert rendered.returncode == 0 and "--tls-only" in rendered.stdout.replace("\u2010", "-")
print("ok: make install/uninstall (DESTDIR, PREFIX) and pop3d(8)")
