"""Dependencies point one way: the composition root -> the fronts (rest, realtime, web) and
jobs -> crdt, media -> core. The fronts never import each other, and nothing imports the root."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pocdojo"
ROOT = {"pocdojo.app", "pocdojo.cli", "pocdojo.server"}
FRONTS = {"rest", "realtime", "web"}
# What each layer may import besides itself and what lies below it.
BELOW = {
    "core": set(),
    "crdt": {"core"},
    "media": {"core"},
    "jobs": {"core", "crdt", "media"},
    **{front: {"core", "crdt", "media", "jobs"} for front in FRONTS},
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("pocdojo.")}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if len(parts) > 1:
            out.append((parts[0], path))
    return out


@pytest.mark.parametrize(
    ("layer", "path"),
    _modules(),
    ids=lambda v: str(v.relative_to(PACKAGE)) if isinstance(v, Path) else v,
)
def test_imports_point_down(layer: str, path: Path) -> None:
    allowed = BELOW[layer] | {layer}
    wrong = sorted(
        name
        for name in _imports(path)
        if name in ROOT or name.split(".")[1] not in allowed | {"__version__"}
    )
    assert not wrong, f"{path.relative_to(PACKAGE)} imports {wrong}"
