"""Fuzzing (schemathesis on the OpenAPI document, hypothesis on every parser and validator).

Slow by design (a minute or two), so the default `pytest` run skips it; it runs when asked for:
`pytest tests/fuzz` or `pytest -m fuzz`. Example counts are set per test to keep the whole
suite within ~2 minutes; `HELPDESK_FUZZ_EXAMPLES` multiplies them for a longer hunt.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.opt_in import skip_unless_asked

HERE = Path(__file__).resolve().parent


def pytest_configure(config):
    config.addinivalue_line("markers", "fuzz: property-based fuzzing (selected explicitly)")


def pytest_collection_modifyitems(config, items):
    skip_unless_asked(
        config, items, HERE, "fuzz", "fuzzing is slow: run `pytest tests/fuzz` or `pytest -m fuzz`"
    )


def examples(n: int) -> int:
    """A test's example count, scaled by HELPDESK_FUZZ_EXAMPLES (a multiplier, default 1)."""
    return max(1, int(n * float(os.environ.get("HELPDESK_FUZZ_EXAMPLES", "1"))))


def mostly(valid, bad):
    """`valid` four times in five, else `bad`: enough bad values to probe, enough good ones to
    get past validation. (one_of(valid, valid, ...) would not do: hypothesis drops repeats.)"""
    from hypothesis import strategies as st

    return st.sampled_from((0, 1, 2, 3, 4)).flatmap(lambda pick: bad if pick == 4 else valid)
