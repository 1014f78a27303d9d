"""Shared by the Python tests: where the build tree's pieces are (ctest
passes them in the environment), scratch directories and the CLI."""

import os
import shutil
import subprocess
import tempfile
import unittest

CLI = os.environ.get("CNF_CLI", "")
FIT_REF = os.environ.get("CNF_FIT_REF", "")
DATA = os.environ.get("CNF_TEST_DATA", os.path.join(os.path.dirname(__file__), "..", "data"))


class ScratchCase(unittest.TestCase):
    """A test case with a private temporary directory, self.dir."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="cnf-py-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def cli(self, *args):
        """Run the `cnf` tool; returns (exit status, stdout, stderr)."""
        if not CLI:
            self.fail("CNF_CLI is not set (run the tests through ctest)")
        p = subprocess.run([CLI] + [str(a) for a in args], capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    def cli_ok(self, *args):
        rc, out, err = self.cli(*args)
        self.assertEqual(rc, 0, "cnf %s failed: %s" % (" ".join(map(str, args)), err))
        return out
