#!/usr/bin/env python3
"""The repository stands on its own: run by .ci/run before the build and by ctest (repo.check).

Over every tracked text file (git ls-files; a walk of the tree outside a git checkout)
it fails on
  1. an absolute path of one machine: under /work, /farm, /scratch or /mnt,
     /home/<user>/..., /root/..., /Users/<user>/..., and temporary directories that only
     existed on one machine (/tmp/tmp.XXXXXXXXXX of mktemp, /tmp/tmpXXXXXXXX of Python's
     tempfile, /tmp/<name>.<random> of mktemp templates, /tmp/bash_jobs..., /tmp/pytest-of-...).
     System paths (/usr, /etc, /proc, /dev, /opt) and a generic /tmp/<name> are fine;
  2. a reference to a repository file that does not exist:
     - a path that starts with a top-level folder of the repository (`docs/FOO.md`,
       scripts/foo.sh, configs/x/y.yml, ...), anywhere in a file;
     - a bare upper-case Markdown name (DESIGN.md, RESULTS.md), resolved against the
       referencing file's folder, the repository root and docs/;
     - the target of a Markdown link [text](path) in a .md file.
     In C++ files only comments count (a string there is a run-time path). A path is
     looked up relative to the repository root and to the referencing file's
     folder; one with a placeholder or a pattern in it (<x>, {a,b}, *, $VAR, ...) is skipped.
Prints file:line: what for each problem. Usage: check_repo.py [REPO_ROOT]
"""
import os
import re
import subprocess
import sys

# This file and its test spell the patterns out.
EXEMPT = {"scripts/check_repo.py", "tests/scripts/test_check_repo.py"}
# Top-level folders that references start with, besides those that hold tracked files.
KNOWN_TOP = {".ci", "bench", "cmake", "configs", "docs", "experiments", "fuzz", "scripts", "src", "tests", "tools"}

_NOT_PATH_BEFORE = r"(?<![\w.~/$-])"
MACHINE_PATHS = [
    (re.compile(_NOT_PATH_BEFORE + r"/(?:work|farm|scratch|mnt)/\S"), "a path of one machine"),
    (re.compile(_NOT_PATH_BEFORE + r"/(?:home|Users)/[A-Za-z_][\w.-]*/"), "a home directory of one machine"),
    (re.compile(_NOT_PATH_BEFORE + r"/root/\S"), "root's home directory on one machine"),
    (re.compile(_NOT_PATH_BEFORE + r"/tmp/(?:tmp[._]?[A-Za-z0-9_]{6,}|bash_jobs|pytest-of-|systemd-private-)"),
     "a temporary directory of one machine"),
    # mktemp's random suffix: 6+ letters and digits with at least one of each (not XXXXXX).
    (re.compile(_NOT_PATH_BEFORE + r"/tmp/[\w-]+\.(?=[A-Za-z]*\d)(?=\d*[A-Za-z])[A-Za-z0-9]{6,}\b"),
     "a temporary directory of one machine"),
]
PATH_CHARS = r"[\w./+-]"
BARE_MD = re.compile(r"(?<![\w./-])([A-Z][A-Z0-9_]*\.md)\b")
MD_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PLACEHOLDER = re.compile(r"[<>{}*?$\[\]]|\.\.\.")


def tracked_files(root):
    try:
        out = subprocess.run(["git", "-C", root, "ls-files", "-z"], capture_output=True, check=True).stdout
        return sorted(p for p in out.decode("utf-8").split("\0") if p)
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in (".git", "node_modules") and not x.startswith("build")]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names]
        return sorted(files)


def read_text(path):
    with open(path, "rb") as fh:
        data = fh.read()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def exists(root, rel_file, ref, bases=()):
    ref = ref.split("#")[0]
    if not ref:
        return True
    for base in ("", os.path.dirname(rel_file)) + tuple(bases):
        if os.path.exists(os.path.join(root, base, ref)):
            return True
    return False


def comment_of(line):
    """The comment part of a C++ line: strings in code are run-time paths, not references."""
    stripped = line.lstrip()
    if stripped.startswith(("//", "/*", "* ")) or stripped == "*":
        return line
    at = line.find("//")
    while at > 0 and line[at - 1] == ":":  # a URL scheme, not a comment
        at = line.find("//", at + 2)
    return line[at:] if at >= 0 else ""


def path_refs(line, top_pattern):
    """Repository paths in a line: tokens starting with a top-level folder."""
    for m in top_pattern.finditer(line):
        token = m.group(0)
        rest = line[m.end():m.end() + 1]
        if rest and PLACEHOLDER.match(rest):  # configs/<x>.yml, docs/*.md, scripts/$name
            continue
        token = token.rstrip(".,:;")
        if token.endswith("/") and token.count("/") == 1:
            continue  # a bare folder name ("tests/") says nothing about a file
        yield token


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))
    files = tracked_files(root)
    tops = sorted(KNOWN_TOP | {f.split("/")[0] for f in files if "/" in f})
    top_pattern = re.compile(r"(?:^|(?<=[\s`'\"(=,:]))(?:\./)?(?:" + "|".join(re.escape(t) for t in tops) + r")/" +
                             PATH_CHARS + "*")
    problems, checked = [], 0
    for rel in files:
        if rel in EXEMPT or not os.path.isfile(os.path.join(root, rel)):
            continue
        text = read_text(os.path.join(root, rel))
        if text is None:
            continue
        checked += 1
        for n, line in enumerate(text.splitlines(), 1):
            for pattern, what in MACHINE_PATHS:
                for m in pattern.finditer(line):
                    problems.append(f"{rel}:{n}: {what}: {line[m.start():].split()[0]}")
            prose = comment_of(line) if rel.endswith((".h", ".cc")) else line
            refs = [(r, ()) for r in path_refs(prose, top_pattern)]
            refs += [(m.group(1), ("docs",)) for m in BARE_MD.finditer(prose)]
            if rel.endswith(".md"):
                refs += [(m.group(1), ()) for m in MD_LINK.finditer(line)
                         if not re.match(r"[a-z]+:", m.group(1)) and not PLACEHOLDER.search(m.group(1))]
            for ref, bases in refs:
                if not exists(root, rel, ref, bases):
                    problems.append(f"{rel}:{n}: no such file in the repository: {ref}")
    problems = list(dict.fromkeys(problems))  # one line per finding, in order
    for p in problems:
        print(p)
    print(f"check_repo: {checked} tracked text files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
