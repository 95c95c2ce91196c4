"""The documentation a newcomer reads agrees with the binary (issue 21):

- README is at most README_MAX_LINES lines (the developers' guide);
- every option `pop3d --help` prints is in README's options table and in the
  OPTIONS section of pop3d(8), each --sandbox=VALUE too;
- every exit status --help names is in README and in pop3d(8)'s EXIT STATUS;
- every doc/*.md README names exists, README names every doc/*.md, and every
  .md file a doc/ file names exists;
- doc/development.md's fuzzing section describes every target of the
  Makefile's FUZZ_NAMES, counts them right, and its table of the last run
  has one row for each.

Cheap: one `pop3d --help` and a few file reads."""
import os
import re
import subprocess

import pop3lib as P

README_MAX_LINES = 200
problems = []


def read(rel):
    with open(os.path.join(P.ROOT, rel), encoding="utf-8") as f:
        return f.read()


def section(text, start, end):
    """TEXT from the first match of START up to the next match of END after it."""
    m = re.search(start, text, re.M)
    assert m, f"no section {start!r}"
    rest = text[m.end():]
    n = re.search(end, rest, re.M)
    return rest[:n.start()] if n else rest


help_text = subprocess.run([P.POP3D, "--help"], capture_output=True, text=True,
                           timeout=60, check=True).stdout
# An option line: "  -P, --passwd=FILE ..." or "      --state-dir=DIR ...".
options = []
for m in re.finditer(r"^\s+(?:-\w, )?(--[a-z][a-z-]*)(=\S+)?", help_text, re.M):
    name, arg = m.group(1), m.group(2) or ""
    # --sandbox=strict and --sandbox=no-landlock: a value, not a placeholder.
    options.append(name + arg if arg[1:].islower() else name)
options = sorted(set(options))
assert len(options) >= 20, f"--help lists only {options}"
statuses = re.findall(r"\b(\d+)\b", section(help_text, r"^Exit status", r"^\S*$"))
assert "0" in statuses and "64" in statuses, f"--help's exit statuses: {statuses}"

# ---- README ----
readme = read("README")
n = readme.count("\n")
if n > README_MAX_LINES:
    problems.append(f"README has {n} lines, more than {README_MAX_LINES}")
table = section(readme, r"^Options\n---", r"^\S.*\n---")
for opt in options:
    if not re.search(re.escape(opt) + r"(?![a-z-])", table):
        problems.append(f"README's options table lacks {opt}")
for st in statuses:
    if not re.search(rf"\b{st}\b", table):
        problems.append(f"README's options section does not give exit status {st}")

# ---- pop3d(8) ----
man = read("pop3d.8").replace("\\-", "-")
man = re.sub(r"\\f[BIRP]", "", man)
man_options = section(man, r"^\.SH OPTIONS", r"^\.SH ")
for opt in options:
    if not re.search(re.escape(opt) + r"(?![a-z-])", man_options):
        problems.append(f"pop3d.8's OPTIONS lacks {opt}")
man_exit = section(man, r"^\.SH EXIT STATUS", r"^\.SH ")
for st in statuses:
    if not re.search(rf"^\.B {st}\b|^{st}\b", man_exit, re.M):
        problems.append(f"pop3d.8's EXIT STATUS lacks {st}")

# ---- links ----
docs = sorted(f for f in os.listdir(os.path.join(P.ROOT, "doc")) if f.endswith(".md"))
named = set(re.findall(r"\bdoc/([A-Za-z0-9_.-]+\.md)\b", readme))
for f in sorted(named - set(docs)):
    problems.append(f"README names doc/{f}, which does not exist")
for f in sorted(set(docs) - named):
    problems.append(f"README does not name doc/{f}")
for f in docs:
    text = read(os.path.join("doc", f))
    # doc/x.md, ](x.md), ](x.md#anchor), or a bare x.md
    for target in sorted(set(re.findall(r"(?<![\w/.-])(?:doc/)?([A-Za-z0-9_-]+\.md)\b", text))):
        if target not in docs:
            problems.append(f"doc/{f} names {target}, which is not in doc/")

# ---- the fuzz targets (the count and the table once disagreed) ----
fuzz_names = re.search(r"^FUZZ_NAMES\s*:=\s*(.*)$", read("Makefile"), re.M).group(1).split()
fuzzing = section(read("doc/development.md"), r"^## Fuzzing", r"^## ")
words = "one two three four five six seven eight nine ten eleven twelve".split()
m = re.search(r"\b(\w+) libFuzzer targets", fuzzing)
if not m or m.group(1) not in words or words.index(m.group(1)) + 1 != len(fuzz_names):
    problems.append(f"doc/development.md does not say the Makefile's {len(fuzz_names)} fuzz "
                    f"targets: {m.group(0) if m else 'no count'}")
rows = re.findall(r"^\s+([a-z_]+)\s+\d+\s+\d+\s+\d+\s*$", fuzzing, re.M)
for t in fuzz_names:
    if f"fuzz_{t}" not in fuzzing:
        problems.append(f"doc/development.md does not describe fuzz_{t}")
if sorted(rows) != sorted(fuzz_names):
    problems.append(f"doc/development.md's fuzzing table has {sorted(rows)}, "
                    f"the Makefile {sorted(fuzz_names)}")

assert not problems, f"{len(problems)} problems:\n  " + "\n  ".join(problems)
print(f"README: {n} lines; {len(options)} options in README and pop3d(8); "
      f"exit statuses {' '.join(statuses)}; {len(docs)} doc files linked")
