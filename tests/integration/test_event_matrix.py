"""The event matrix (tools/event_matrix.py): a fixed list of scenarios recorded through the proxy
with normalised events. Two recordings of the same binary must be identical (otherwise the
normalisation hides too little, or a scenario races); with TLSTRACE_BEFORE_BIN set, a recording of
that binary must be identical to one of the binary under test (a behaviour-preserving change)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from harness import TLSTRACE

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "event_matrix.py")
TIMEOUT = 300  # seconds for one recording (about 10 s on an idle machine)


def tool(*args):
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True, timeout=TIMEOUT)


class EventMatrix(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="tlstrace-matrix-it-")
        cls.current = os.path.join(cls.tmp.name, "current")
        r = tool("record", "--bin", TLSTRACE, "--out", cls.current)
        cls.record_output = r.stdout + r.stderr
        cls.record_rc = r.returncode

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def record(self, binary, name):
        out = os.path.join(self.tmp.name, name)
        r = tool("record", "--bin", binary, "--out", out)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return out

    def compare(self, a, b):
        r = tool("compare", a, b)
        self.assertEqual(r.returncode, 0, "event matrix differs:\n" + r.stdout + r.stderr)

    def test_every_scenario_ran(self):
        self.assertEqual(self.record_rc, 0, self.record_output)
        names = [line.split()[0] for line in tool("list").stdout.splitlines()]
        self.assertGreaterEqual(len(names), 20)
        for name in names:
            with open(os.path.join(self.current, name + ".jsonl")) as f:
                self.assertTrue(f.read().strip(), f"{name}: no events")

    def test_same_binary_twice_is_identical(self):
        self.assertEqual(self.record_rc, 0, self.record_output)
        self.compare(self.current, self.record(TLSTRACE, "again"))

    def test_compare_reports_a_difference(self):
        self.assertEqual(self.record_rc, 0, self.record_output)
        changed = os.path.join(self.tmp.name, "changed")
        shutil.copytree(self.current, changed)
        path = os.path.join(changed, "tls13.jsonl")
        with open(path) as f:
            lines = f.readlines()
        with open(path, "w") as f:
            f.writelines(l.replace('"outcome":"ok"', '"outcome":"changed"') for l in lines)
        r = tool("compare", self.current, changed)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("tls13: DIFFERENT", r.stdout)
        self.assertIn('outcome: "ok" -> "changed"', r.stdout)

    @unittest.skipUnless(os.environ.get("TLSTRACE_BEFORE_BIN"), "TLSTRACE_BEFORE_BIN not set")
    def test_before_binary_is_identical(self):
        self.assertEqual(self.record_rc, 0, self.record_output)
        before = self.record(os.environ["TLSTRACE_BEFORE_BIN"], "before")
        self.compare(before, self.current)


if __name__ == "__main__":
    unittest.main()
