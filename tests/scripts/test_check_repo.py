#!/usr/bin/env python3
"""scripts/check_repo.py on small made-up repositories (run by ctest as repo.check_rules):
what it must catch and what it must let through."""
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "check_repo.py")


def check(files):
    """(exit code, problem lines) of check_repo.py over a fresh git repository of files."""
    with tempfile.TemporaryDirectory() as root:
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w", encoding="utf-8") as fh:
                fh.write(text)
        subprocess.run(["git", "init", "-q", root], check=True)
        subprocess.run(["git", "-C", root, "add", "-A"], check=True)
        p = subprocess.run([sys.executable, SCRIPT, root], capture_output=True, text=True)
        return p.returncode, [line for line in p.stdout.splitlines() if not line.startswith("check_repo:")]


BASE = {"docs/RESULTS.md": "results\n", "scripts/build.sh": "#!/bin/sh\n", "configs/a/b.yml": "x: 1\n",
        "src/dualtune/util/x.h": "// see docs/RESULTS.md\n", "README.md": "readme\n"}


class CheckRepo(unittest.TestCase):
    def test_clean_tree_passes(self):
        files = dict(BASE)
        files["docs/GUIDE.md"] = (
            "Build with `scripts/build.sh` or ./scripts/build.sh, configs in `configs/a/b.yml` and\n"
            "`configs/a/`, results in [RESULTS](RESULTS.md), RESULTS.md and README.md, the web at\n"
            "[site](https://example.org/work/x). Pick `configs/<name>.yml`, docs/*.md, scripts/$X.\n"
            "Data in /usr/share/datasets/fashion-mnist, /etc/hosts, /proc/self/exe, /dev/null,\n"
            "scratch space /tmp/demo_gallery, mktemp -d /tmp/dualtune.XXXXXX, OUT/work/x, $HOME/work/y.\n")
        files["src/dualtune/util/y.cc"] = 'fs::path p = root / "src/configs";  // run-time path, not a reference\n'
        code, lines = check(files)
        self.assertEqual((code, lines), (0, []))

    def test_machine_paths_fail(self):
        # The workstation roots are joined at run time, so this file holds no such path itself.
        work, farm = "/" + "work", "/" + "farm"
        for text in ("data in " + work + "/data/openset\n", "`" + farm + "/u1/runs`\n", "cd /home/alice/dualtune\n",
                     "/root/.cache/x\n", "out=/tmp/tmp.Xa8Kq2LmZp/out\n", "/tmp/tmpab12cd34/f\n",
                     "/tmp/dualtune_api.a8Fk2Q\n", "(/Users/bob/src)\n"):
            files = dict(BASE)
            files["docs/NOTES.md"] = text
            code, lines = check(files)
            self.assertEqual(code, 1, text)
            self.assertEqual(len(lines), 1, (text, lines))
            self.assertTrue(lines[0].startswith("docs/NOTES.md:1: "), lines)

    def test_missing_references_fail(self):
        cases = {
            "docs/NOTES.md": ("see DESIGN.md\n", "DESIGN.md"),
            "scripts/x.sh": ("# runs scripts/missing.sh\n", "scripts/missing.sh"),
            "configs/c.yml": ("# like configs/a/nope.yml\n", "configs/a/nope.yml"),
            "src/dualtune/util/z.h": ("int x;  // layout in docs/FOO.md\n", "docs/FOO.md"),
            "README.md": ("[guide](docs/GUIDE.md)\n", "docs/GUIDE.md"),
        }
        for rel, (text, ref) in cases.items():
            files = dict(BASE)
            files[rel] = text
            code, lines = check(files)
            self.assertEqual(code, 1, rel)
            self.assertEqual(lines, [f"{rel}:1: no such file in the repository: {ref}"])

    def test_references_resolve_against_the_referencing_folder(self):
        files = dict(BASE)
        files["tools/x/README.md"] = "run `make_x.py` as in [the script](make_x.py) and NOTES.md\n"
        files["tools/x/make_x.py"] = "print(1)\n"
        files["tools/x/NOTES.md"] = "notes\n"
        self.assertEqual(check(files), (0, []))


if __name__ == "__main__":
    unittest.main()
