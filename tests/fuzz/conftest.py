"""Fuzzing (schemathesis on the OpenAPI document, hypothesis on every parser and validator).

Slow by design (a minute or two), so the default `pytest` run skips it; it runs when asked for:
`pytest tests/fuzz` or `pytest -m fuzz`. Example counts are set per test to keep the whole
suite within ~2 minutes; `HELPDESK_FUZZ_EXAMPLES` multiplies them for a longer hunt.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: property-based fuzzing (selected explicitly)")


def _asked_for(config) -> bool:
    if "fuzz" in (config.option.markexpr or ""):
        return True
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == HERE or HERE in path.parents:
            return True
    return False


def pytest_collection_modifyitems(config, items):
    if _asked_for(config):
        return
    skip = pytest.mark.skip(reason="fuzzing is slow: run `pytest tests/fuzz` or `pytest -m fuzz`")
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)


def examples(n: int) -> int:
    """A test's example count, scaled by HELPDESK_FUZZ_EXAMPLES (a multiplier, default 1)."""
    return max(1, int(n * float(os.environ.get("HELPDESK_FUZZ_EXAMPLES", "1"))))


def mostly(valid, bad):
    """`valid` four times in five, else `bad`: enough bad values to probe, enough good ones to
    get past validation. (one_of(valid, valid, ...) would not do: hypothesis drops repeats.)"""
    from hypothesis import strategies as st

    return st.sampled_from((0, 1, 2, 3, 4)).flatmap(lambda pick: bad if pick == 4 else valid)
