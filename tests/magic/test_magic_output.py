"""Pure helpers of the magic: prompt interpolation and reply formats."""

from __future__ import annotations

import pytest

from holynb.notebook.output import final_bundle
from holynb.notebook.prompt import interpolate
from holynb.notebook.safe_markdown import extract_code


class Boom:
    @property
    def bad(self) -> str:
        raise RuntimeError("no")

    def __str__(self) -> str:
        raise RuntimeError("no str either")


NS = {
    "name": "Ada",
    "n": 3,
    "items": [1, 2],
    "obj": Boom(),
    "In": ["", "a = 1", "print(a)"],
    "Out": {2: 42},
    "print": print,
    "pytest": pytest,
}


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("hi {name}", "hi Ada"),
        ("{n}{n}", "33"),
        ("{{name}}", "{name}"),
        ("{ name }", "{ name }"),
        ("{x + 1} {0} {} {nope} {name!r} {name:>9}", "{x + 1} {0} {} {nope} {name!r} {name:>9}"),
        ('{"a": {"b": [1, 2]}}', '{"a": {"b": [1, 2]}}'),
        ("{{ jinja }} }} {{", "{{ jinja }} }} {{"),
        ('f"{name}"', 'f"Ada"'),
        (
            "def f(): return {k: v for k, v in d.items()}",
            "def f(): return {k: v for k, v in d.items()}",
        ),
        ("{In[1]} / {In[-1]} / {Out[2]}", "a = 1 / print(a) / 42"),
        ("{In[9]} {Out[7]} {Out[-1]}", "{In[9]} {Out[7]} {Out[-1]}"),
        ("{items}", "[1, 2]"),
        ("{obj.bad} {obj} {obj._private}", "{obj.bad} {obj} {obj._private}"),
        ("{print} {pytest}", "{print} {pytest}"),
        ("{name.upper}", "{name.upper}"),
        ("unbalanced { and } and {name", "unbalanced { and } and {name"),
    ],
)
def test_interpolation_edge_cases(prompt: str, expected: str) -> None:
    assert interpolate(prompt, NS) == expected


def test_interpolation_without_in_out_never_raises() -> None:
    assert interpolate("{In[1]} {Out[1]} {a.b.c}", {}) == "{In[1]} {Out[1]} {a.b.c}"


@pytest.mark.parametrize(
    ("text", "lang", "code"),
    [
        ("Here:\n\n```python\nx = 1\n```\nthen\n```js\ny\n```", None, "x = 1"),
        ("~~~~\nraw ``` inside\n~~~~\n", None, "raw ``` inside"),
        ("no fences at all\n", None, "no fences at all"),
        ('```text\na\n```\n```json\n{"k": 1}\n```', "json", '{"k": 1}'),
        ('```\n{"k": 2}\n```', "json", '{"k": 2}'),
    ],
)
def test_extract_code(text: str, lang: str | None, code: str) -> None:
    assert extract_code(text, lang) == code


def test_final_bundles() -> None:
    data, value, problem = final_bundle("json", 'Sure:\n```json\n{"a": [1, 2]}\n```')
    assert value == {"a": [1, 2]} and problem is None
    assert data["application/json"] == {"a": [1, 2]}
    data, value, problem = final_bundle("json", "not json")
    assert value == "not json" and data == {"text/plain": "not json"}
    assert problem and "line 1, column 1" in problem
    data, value, _ = final_bundle("html", '<b onclick="x()">hi</b><script>alert(1)</script>')
    assert data["text/html"] == "<b>hi</b>"
    assert value == '<b onclick="x()">hi</b><script>alert(1)</script>'
    data, value, _ = final_bundle("code", "```py\nprint(1)\n```")
    assert value == "print(1)" and data["text/markdown"].startswith("```py")
    assert final_bundle("text", "t")[0] == {"text/plain": "t"}
