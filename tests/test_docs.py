"""The Python recipes of docs/recurrent.md and docs/transformers.md run as written
(each block in a fresh namespace; a block checks its own claims with assert).
hardening.md's blocks show failures on purpose and are not recipes."""
import pathlib
import re

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
RECIPES = {"recurrent.md": 2, "transformers.md": 2}  # the recipes each doc holds
BLOCKS = [(name, i, block) for name in RECIPES
          for i, block in enumerate(re.findall(r"```python\n(.*?)```",
                                               (DOCS / name).read_text(), re.S))]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_the_doc_has_its_recipes(name):
    assert sum(1 for doc, _, _ in BLOCKS if doc == name) == RECIPES[name]


@pytest.mark.parametrize("name,index,block", BLOCKS, ids=[f"{n}-{i}" for n, i, _ in BLOCKS])
def test_recipe_runs(name, index, block):
    exec(compile(block, f"{name} block {index}", "exec"), {})
