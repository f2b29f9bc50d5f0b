#!/usr/bin/env python3
"""experiments/centroid_queries.py against centroids computed by hand (run by ctest)."""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "experiments", "centroid_queries.py")


def write_features(d, features, labels):
    os.makedirs(d)
    np.save(os.path.join(d, "features.npy"), np.asarray(features, dtype=np.float32))
    np.save(os.path.join(d, "labels.npy"), np.asarray(labels, dtype=np.int64))
    with open(os.path.join(d, "paths.txt"), "w") as f:
        f.write("".join(f"img{i}.png\n" for i in range(len(labels))))


def run(src, dst, *options):
    return subprocess.run([sys.executable, SCRIPT, *options, src, dst], capture_output=True, text=True)


class CentroidQueries(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = os.path.join(self.tmp.name, "old")
        self.dst = os.path.join(self.tmp.name, "centroid")

    def tearDown(self):
        self.tmp.cleanup()

    def test_leave_one_out_centroids_of_unit_vectors(self):
        # class 0: (3,0), (0,2), (1,1); class 1: (0,-5), (4,0). Normalised: (1,0), (0,1),
        # (r,r) with r = 1/sqrt(2); (0,-1), (1,0).
        write_features(self.src, [[3, 0], [0, 2], [1, 1], [0, -5], [4, 0]], [0, 0, 0, 1, 1])
        p = run(self.src, self.dst)
        self.assertEqual(p.returncode, 0, p.stderr)
        q = np.load(os.path.join(self.dst, "features.npy"))
        r = 2 ** -0.5
        expected = [[r / 2, (1 + r) / 2],   # item 0: mean of (0,1) and (r,r)
                    [(1 + r) / 2, r / 2],   # item 1: mean of (1,0) and (r,r)
                    [0.5, 0.5],             # item 2: mean of (1,0) and (0,1)
                    [1, 0],                 # item 3: the other item of class 1
                    [0, -1]]                # item 4
        np.testing.assert_allclose(q, expected, atol=1e-6)
        self.assertEqual(q.dtype, np.float32)
        np.testing.assert_array_equal(np.load(os.path.join(self.dst, "labels.npy")), [0, 0, 0, 1, 1])
        with open(os.path.join(self.dst, "paths.txt")) as f:
            self.assertEqual(f.read().split(), [f"img{i}.png" for i in range(5)])
        self.assertEqual(sorted(n for n in os.listdir(self.tmp.name) if n.startswith(".")), [])

    def test_components_crops_before_normalising(self):
        # First component only: class 0 is (3), (-1), (2) -> units 1, -1, 1.
        write_features(self.src, [[3, 9], [-1, 0], [2, -4]], [0, 0, 0])
        p = run(self.src, self.dst, "--components", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        np.testing.assert_allclose(np.load(os.path.join(self.dst, "features.npy")), [[0], [1], [0]], atol=1e-6)
        p = run(self.src, self.dst, "--components", "3")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("--components 3 asked for, the features have 2", p.stderr)

    def test_a_class_of_one_item_is_an_error_and_writes_nothing(self):
        write_features(self.src, [[1, 0], [0, 1], [1, 1]], [0, 0, 1])
        p = run(self.src, self.dst)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("at least 2 items", p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        self.assertFalse(os.path.exists(self.dst))

    def test_mismatched_labels_are_an_error(self):
        write_features(self.src, [[1, 0], [0, 1], [1, 1]], [0, 0])
        p = run(self.src, self.dst)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("expected features N x D and N labels", p.stderr)
        self.assertFalse(os.path.exists(self.dst))


if __name__ == "__main__":
    unittest.main()
