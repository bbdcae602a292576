"""The README and docs stay true to the code they describe."""

from __future__ import annotations

import re

from helpdesk.config import ROOT, SETTINGS

README = (ROOT / "README.md").read_text()


def test_readme_documents_every_setting_with_its_default():
    rows = dict(re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README, flags=re.MULTILINE))
    assert set(rows) == set(SETTINGS), "README configuration table and config.SETTINGS differ"
    for name, (_parse, default) in SETTINGS.items():
        if isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, list):
            shown = ",".join(map(str, default))
        elif default in (None, ""):
            continue  # described in words ("empty", "random per process")
        else:
            shown = str(default)
        assert f"`{shown}`" in rows[name], f"{name}: README says {rows[name]!r}, code {shown!r}"


def test_readme_names_the_two_commands_the_makefile_provides():
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}: ", makefile, flags=re.MULTILINE)


def test_architecture_map_names_every_module():
    architecture = (ROOT / "docs" / "architecture.md").read_text()
    package = ROOT / "helpdesk"
    missing = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if path.name == "__init__.py":
            relative = path.parent.relative_to(ROOT).as_posix() + "/"
        if relative not in architecture:
            missing.append(relative)
    assert not missing, f"docs/architecture.md does not mention: {missing}"
