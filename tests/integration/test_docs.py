"""docs/events.md is the schema: its examples are valid events with only documented fields, and
every documented event has an example."""
import json
import re
import unittest

from harness import COMMON, DOCS, check_against_docs, documented_schema


class Docs(unittest.TestCase):
    def test_examples_match_the_documented_fields(self):
        events, bodies = documented_schema()
        self.assertGreaterEqual(len(events), 20)
        self.assertIn("ClientHello", bodies)
        with open(DOCS) as f:
            text = f.read()
        examples = [json.loads(m) for m in re.findall(r"```json\n(.*?)\n```", text, re.S)]
        self.assertEqual(check_against_docs(examples, (events, bodies)), [])
        have = {e["event"] for e in examples}
        self.assertEqual(set(events) - have, set())
        for e in examples:
            self.assertTrue(COMMON - {"leg"} <= set(e), e)

    def test_an_undocumented_field_is_caught(self):
        bad = [{"ts": "x", "conn": 1, "event": "tls.alert", "dir": "in", "level": "fatal", "description": "x",
                "code": 1, "surprise": True}]
        self.assertEqual(check_against_docs(bad), ["tls.alert.surprise is not documented"])
        self.assertEqual(check_against_docs([{"event": "made.up"}]), ["event 'made.up' is not documented in docs/events.md"])


if __name__ == "__main__":
    unittest.main()
