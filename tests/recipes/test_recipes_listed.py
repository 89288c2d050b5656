"""Every recipe script is listed, with what it needs, in the README and in docs/recipes.md."""

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("recipes/*/*.sh"))


def listed(doc: Path) -> dict[str, str]:
    """``script -> what it needs`` from the doc's recipes table."""
    rows = re.findall(r"^\| [^|]+ \| `(recipes/[^`]+\.sh)` \| ([^|]+) \|$", doc.read_text(), re.M)
    return dict(rows)


@pytest.mark.parametrize("doc", ["README.md", "docs/recipes.md"])
def test_every_recipe_script_has_a_row_saying_what_it_needs(doc):
    rows = listed(REPO / doc)
    assert len(SCRIPTS) == 18
    assert sorted(rows) == SCRIPTS
    assert all(needs.strip() for needs in rows.values())
