""".npy files on the command line (cnf_npy_read / cnf_npy_write through
src/cli/common.c): what `cnf sample --out s.npy` writes is what numpy
reads, the same numbers as the CSV output; `cnf logp --in X.npy` equals
the CSV path exactly; `cnf train --data X.npy` trains as from the CSV;
malformed files exit 2 naming the file and write no output."""

import os
import unittest

import numpy as np

from support import ScratchCase


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def read_csv(path):
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


class TestNpyCli(ScratchCase):
    def setUp(self):
        super().setUp()
        self.model = self.path("m.cnf")
        self.cli_ok("init", "--dim", 3, "--hidden", "8-8", "--seed", 2, "--out", self.model)

    def test_sample_and_logp_round_trip(self):
        self.cli_ok("sample", "--model", self.model, "-n", 40, "--seed", 3, "--out",
                    self.path("s.npy"))
        self.cli_ok("sample", "--model", self.model, "-n", 40, "--seed", 3, "--out",
                    self.path("s.csv"))
        s = np.load(self.path("s.npy"))
        self.assertEqual((s.dtype, s.shape, s.flags.c_contiguous), (np.float64, (40, 4), True))
        # 17 significant digits in the CSV: the same doubles
        self.assertTrue(np.array_equal(s, read_csv(self.path("s.csv"))))
        # the points of the sample, as .npy and as CSV, into logp
        np.save(self.path("x.npy"), np.ascontiguousarray(s[:, :3]))
        with open(self.path("x.csv"), "w") as f:
            f.write("x1,x2,x3\n")
            for row in s[:, :3]:
                f.write(",".join(repr(float(v)) for v in row) + "\n")
        self.cli_ok("logp", "--model", self.model, "--in", self.path("x.npy"), "--out",
                    self.path("lp_npy.npy"))
        self.cli_ok("logp", "--model", self.model, "--in", self.path("x.csv"), "--out",
                    self.path("lp_csv.csv"))
        a = np.load(self.path("lp_npy.npy"))
        b = read_csv(self.path("lp_csv.csv"))
        self.assertEqual(a.shape, (40, 1))
        self.assertTrue(np.array_equal(a, b))
        # and log p from sampling agrees with the density path
        np.testing.assert_allclose(a[:, 0], s[:, 3], atol=1e-3)
        # numpy's own files (any header padding numpy chooses) read too
        np.save(self.path("np.npy"), np.ascontiguousarray(s[:, :3]) * 1.0)
        out = self.cli_ok("logp", "--model", self.model, "--in", self.path("np.npy"))
        self.assertTrue(np.array_equal(np.array(out.split()[1:], dtype=float), b[:, 0]))

    def test_train_from_npy(self):
        x = np.random.default_rng(1).normal(size=(64, 2))
        np.save(self.path("d.npy"), x)
        with open(self.path("d.csv"), "w") as f:
            f.write("a,b\n" + "".join("%r,%r\n" % (float(u), float(v)) for u, v in x))
        for ext in ("npy", "csv"):
            self.cli_ok("train", "--data", self.path("d." + ext), "--out",
                        self.path("t_%s.cnf" % ext), "--iters", 3, "--batch", 16, "--hidden",
                        "8", "--val", self.path("d." + ext))
        with open(self.path("t_npy.cnf"), "rb") as f1, open(self.path("t_csv.cnf"), "rb") as f2:
            self.assertEqual(f1.read(), f2.read())

    def test_malformed_exit_2_no_output(self):
        x = np.arange(12, dtype=np.float64).reshape(4, 3)
        good = self.path("good.npy")
        np.save(good, x)
        with open(good, "rb") as f:
            raw = f.read()
        cases = {
            "f4.npy": (lambda p: np.save(p, x.astype(np.float32)), "dtype '<f4', expected '<f8'"),
            "fortran.npy": (lambda p: np.save(p, np.asfortranarray(x)), "Fortran"),
            "one_d.npy": (lambda p: np.save(p, x[:, 0].copy()), "a 1-D array, expected 2-D"),
            "object.npy": (lambda p: np.save(p, np.array([[1.0, None, 2.0]], dtype=object),
                                             allow_pickle=True), "dtype '|O'"),
            "big_endian.npy": (lambda p: np.save(p, x.astype(">f8")), "dtype '>f8'"),
            "truncated.npy": (lambda p: write_bytes(p, raw[:-5]), "truncated"),
            "header_cut.npy": (lambda p: write_bytes(p, raw[:20]), "truncated .npy header"),
            "bad_header.npy": (lambda p: write_bytes(p, raw.replace(b"'descr'", b"'desc' ")),
                               "bad .npy header"),
            "not_npy.npy": (lambda p: write_bytes(p, b"1,2,3\n"), "not a .npy file"),
            "columns.npy": (lambda p: np.save(p, np.zeros((4, 2))), "2 columns, expected 3"),
        }
        for name, (make, msg) in cases.items():
            p = self.path(name)
            make(p)
            out = self.path("out.npy")
            rc, stdout, err = self.cli("logp", "--model", self.model, "--in", p, "--out", out)
            self.assertEqual(rc, 2, "%s: exit %d, %s" % (name, rc, err))
            self.assertIn(p, err)
            self.assertIn(msg, err, name)
            self.assertFalse(os.path.exists(out), name)
            self.assertEqual(stdout, "")
        # no temporary files left behind either
        self.assertEqual(sorted(f for f in os.listdir(self.dir) if ".tmp" in f), [])


if __name__ == "__main__":
    unittest.main()
