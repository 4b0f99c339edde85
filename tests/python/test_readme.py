"""The README's Python example runs as written."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_example_runs() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- python:begin -->", 1)[1].split("<!-- python:end -->", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "no ```python block between the python markers"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
