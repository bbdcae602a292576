"""docs/metrics.md shows the same segment table as the code."""

from __future__ import annotations

import re

from helpdesk.config import ROOT
from helpdesk.customer_context.metrics.definitions import SEGMENT_RULES, SEGMENTS

ROW = re.compile(r"^\| (\d+) \| `(\w+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$")


def _range(cell: str) -> tuple[int, int]:
    cell = cell.strip()
    if cell == "any":
        return (1, 5)
    lo, _, hi = cell.partition("–")
    return (int(lo), int(hi or lo))


def test_docs_segment_table_matches_code():
    text = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    rows = [m.groups() for line in text.splitlines() if (m := ROW.match(line))]
    assert len(rows) == len(SEGMENT_RULES)
    for (number, key, label, r, f, m, meaning), (i, rule) in zip(
        rows, enumerate(SEGMENT_RULES, start=1), strict=True
    ):
        assert int(number) == i
        assert key == rule.segment
        assert (_range(r), _range(f), _range(m)) == (rule.r, rule.f, rule.m), key
        assert label.strip() == SEGMENTS[key].label
        assert meaning.strip() == SEGMENTS[key].meaning
