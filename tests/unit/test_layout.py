"""The package keeps the promises of ARCHITECTURE.md and STYLE.md about its shape."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import driftloop

ROOT = Path(driftloop.__file__).parent
REPO = ROOT.parent.parent
# A part may import the parts before it in this list, never the ones after it.
ORDER = [
    "core",
    "compute",
    "data",
    "stats",
    "features",
    "registry",
    "audit",
    "quality",
    "training",
    "recsys",
    "monitoring",
    "serving",
    "loop",
    "ui",
    "cli",
]


def part_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "driftloop" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ORDER else None


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> list[Path]:
    return sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_one_way(path: Path) -> None:
    own = part_of("driftloop." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
    if own is None:
        return
    for module in imports(path):
        other = part_of(module)
        if other is not None:
            assert ORDER.index(other) <= ORDER.index(own), (
                f"{path.relative_to(ROOT)} ({own}) imports {module} ({other}), which comes after it"
            )


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small_and_use_future_annotations(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 600, "split modules past 600 lines (STYLE.md)"
    if text.strip():
        assert "from __future__ import annotations" in text


def _isort_style(name: str) -> tuple[int, str]:
    """ruff's order (RUF022): CONSTANTS, then Classes, then functions, each alphabetical."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_public_faces_export_a_sorted_all() -> None:
    for init in ROOT.rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                names = ast.literal_eval(node.value)
                assert names == sorted(names, key=_isort_style), f"{init}: __all__ is not sorted"


def test_readme_test_command_is_the_one_ci_runs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in ci.splitlines() if line.startswith("python3 -m venv")]
    assert len(commands) == 2
    for command in commands:
        assert command in readme
