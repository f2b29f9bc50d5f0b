#!/usr/bin/env python3
"""tools/openset/make_glyphs.py on a tiny benchmark (run by ctest as tools.make_glyphs).

Three faces of fonts-baekmuk, 3 train-old / 6 train-new / 4 test classes, generated twice
(1 and 2 workers) into temporary folders: the layout, counts and index.csv rows, the
class order of the spec (numpy default_rng(seed).permutation of the KS X 1001 syllables),
byte-identical runs, and the C++ completeness check (data/glyph_benchmark.h) accepting it
when its checker binary is given: test_make_glyphs.py [path/to/glyph_benchmark_check].
Exits 77 (ctest: skipped) when Debian's python3-pil, python3-fonttools or fonts-baekmuk
are missing, except under CI=true, where that fails (scripts/install_deps.sh installs them).
"""
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = os.path.join(HERE, "..", "..", "tools", "openset", "make_glyphs.py")
FACES = ["baekmuk-batang", "baekmuk-gulim", "baekmuk-headline"]
FONT_FILES = ["/usr/share/fonts/truetype/baekmuk/" + f for f in ("batang.ttf", "gulim.ttf", "hline.ttf")]
N_OLD, N_NEW, N_TEST, AUG_TRAIN, AUG_TEST, SEED = 3, 6, 4, 2, 1, 5
SPLITS = ("train-old", "train-new", "test")
CHECKER = None  # set from argv


def missing_requirements():
    missing = [f for f in FONT_FILES if not os.path.exists(f)]
    for module in ("PIL", "fontTools", "numpy"):
        try:
            __import__(module)
        except ImportError:
            missing.append("python module " + module)
    return missing


def generate(out, workers):
    cmd = [sys.executable, GENERATOR, "--out", out, "--faces", ",".join(FACES), "--min-faces", "2",
           "--n-old", str(N_OLD), "--n-new", str(N_NEW), "--n-test", str(N_TEST), "--seed", str(SEED),
           "--workers", str(workers)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")


def tree_digest(root):
    """{relative path: sha256} of every file under root."""
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            path = os.path.join(d, n)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


class MakeGlyphs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="dt_make_glyphs_")
        cls.a = os.path.join(cls.tmp.name, "a")
        cls.b = os.path.join(cls.tmp.name, "b")
        generate(cls.a, 1)
        generate(cls.b, 2)
        with open(os.path.join(cls.a, "manifest.json"), encoding="utf-8") as fh:
            cls.manifest = json.load(fh)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_layout_counts_and_index(self):
        m = self.manifest
        self.assertEqual([f["id"] for f in m["faces"]], FACES)
        self.assertTrue(os.path.isfile(os.path.join(self.a, "contact.png")))
        per_class = {"train-old": len(FACES) * AUG_TRAIN, "train-new": len(FACES) * AUG_TRAIN,
                     "test": len(FACES) * AUG_TEST}
        for split, n in zip(SPLITS, (N_OLD, N_NEW, N_TEST)):
            root = os.path.join(self.a, split)
            classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
            self.assertEqual(classes, sorted(m["splits"][split]), split)
            self.assertEqual(m["counts"][split]["classes"], n)
            with open(os.path.join(root, "index.csv"), newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            self.assertEqual(rows[0], ["path", "class", "char", "face", "aug", "scale", "angle", "dx", "dy", "blur",
                                       "noise"])
            rows = rows[1:]
            # Every image is in index.csv once, named 0..k-1.png in its class folder.
            images = sorted(f"{c}/{f}" for c in classes for f in os.listdir(os.path.join(root, c)))
            self.assertEqual(sorted(r[0] for r in rows), images)
            self.assertEqual(m["counts"][split]["images"], len(images))
            for c in classes:
                names = sorted(os.listdir(os.path.join(root, c)), key=lambda f: int(f.split(".")[0]))
                # Every face draws every class here: of the syllables, baekmuk-headline leaves only
                # U+C3C0 empty, which seed 5 puts in no split.
                self.assertEqual(names, [f"{i}.png" for i in range(per_class[split])], f"{split}/{c}")
            for r in rows:
                self.assertEqual(r[0].split("/")[0], r[1])
                self.assertEqual(f"{ord(r[2]):04x}", r[1])
                self.assertIn(r[3], FACES)
            with open(os.path.join(root, rows[0][0]), "rb") as fh:
                png = fh.read()
            # PNG IHDR: width, height (big-endian), bit depth 8, colour type 0 (grayscale)
            self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
            self.assertEqual((int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"), png[24], png[25]),
                             (32, 32, 8, 0))

    def test_splits_follow_the_spec(self):
        import numpy as np
        syllables = []
        for row in range(0xB0, 0xC9):
            for col in range(0xA1, 0xFF):
                try:
                    ch = bytes((row, col)).decode("euc_kr")
                except UnicodeDecodeError:
                    continue
                if 0xAC00 <= ord(ch) <= 0xD7A3:
                    syllables.append(ch)
        self.assertEqual(len(syllables), 2350)
        # Two of the three faces draw every syllable, so --min-faces 2 keeps all 2350.
        self.assertEqual(self.manifest["candidates"], {"ksx1001_hangul": 2350, "eligible": 2350})
        order = [f"{ord(syllables[i]):04x}" for i in np.random.default_rng(SEED).permutation(len(syllables))]
        s = self.manifest["splits"]
        self.assertEqual(s["train-old"], order[:N_OLD])
        self.assertEqual(s["train-new"], order[:N_NEW])
        self.assertEqual(s["test"], order[N_NEW:N_NEW + N_TEST])
        for c in s["train-old"]:  # train-old's files are train-new's
            for f in os.listdir(os.path.join(self.a, "train-old", c)):
                with open(os.path.join(self.a, "train-old", c, f), "rb") as x, \
                        open(os.path.join(self.a, "train-new", c, f), "rb") as y:
                    self.assertEqual(x.read(), y.read(), f"{c}/{f}")

    def test_runs_are_byte_identical(self):
        a, b = tree_digest(self.a), tree_digest(self.b)
        self.assertEqual(sorted(a), sorted(b))
        self.assertEqual([f for f in a if a[f] != b[f]], [])

    def test_the_cpp_check_accepts_it(self):
        if not CHECKER:
            self.skipTest("no glyph_benchmark_check binary given")
        p = subprocess.run([CHECKER, self.a], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout.split(), ["train-old", str(N_OLD), str(N_OLD * len(FACES) * AUG_TRAIN),
                                            "train-new", str(N_NEW), str(N_NEW * len(FACES) * AUG_TRAIN),
                                            "test", str(N_TEST), str(N_TEST * len(FACES) * AUG_TEST)])


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        CHECKER = sys.argv.pop(1)
    missing = missing_requirements()
    if missing:
        print("missing: " + ", ".join(missing) + " (scripts/install_deps.sh installs them)")
        sys.exit(1 if os.environ.get("CI") == "true" else 77)
    unittest.main()
