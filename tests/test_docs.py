"""The Python recipes of docs/recurrent.md run as written (each block in a fresh
namespace; a block checks its own claims with assert). hardening.md's blocks show
failures on purpose and are not recipes."""
import pathlib
import re

import pytest

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "recurrent.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_doc_has_its_two_recipes():
    assert len(BLOCKS) == 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_recipe_runs(index):
    exec(compile(BLOCKS[index], f"recurrent.md block {index}", "exec"), {})
