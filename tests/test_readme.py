"""The README's example is code a newcomer will paste: it must run as printed."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.slow
def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README should show nnlab in use"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    accuracy = float(capsys.readouterr().out.split()[-1])
    assert accuracy > 0.9, f"the README's run should reach a good validation accuracy, got {accuracy}"
