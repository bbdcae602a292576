"""Opt-in test suites (fuzzing, load): skipped by the default `pytest` run, run when asked for
by marker (`-m fuzz`) or by path (`pytest tests/fuzz`)."""

from __future__ import annotations

from pathlib import Path

import pytest


def asked_for(config, folder: Path, marker: str) -> bool:
    """True when the run selects `marker` or names `folder` (or a file in it)."""
    if marker in (config.option.markexpr or ""):
        return True
    for arg in config.args:
        path = Path(arg.split("::", 1)[0]).resolve()
        if path == folder or folder in path.parents:
            return True
    return False


def skip_unless_asked(config, items, folder: Path, marker: str, reason: str) -> None:
    """Mark every test under `folder` skipped unless the run asked for it."""
    if asked_for(config, folder, marker):
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if folder in Path(item.path).resolve().parents:
            item.add_marker(skip)
