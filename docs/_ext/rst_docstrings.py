"""A griffe extension: render the package's reST-flavoured docstrings as Markdown.

The docstrings are written for ``help()`` and doctest: ``>>>`` examples in running text,
``:class:`Name``` roles, ``::`` before literal blocks. mkdocstrings reads docstrings as
Markdown, where ``>>>`` starts a nested block quote, ``x["a"]["b"]`` looks like a
reference link, and roles show up verbatim. This turns them into what they mean, at
docs build time only (the source is untouched):

* a run of doctest lines in running text (``>>>``/``...`` at the start of a line, and the
  output up to the next blank line) becomes a fenced ``pycon`` block;
* ``:role:`target``` becomes ```target``` (``~a.b.C`` becomes ```C```);
* a paragraph ending in ``::`` ends in ``:`` (the indented block after it is already a
  Markdown code block).

Text already inside a fenced block is left alone.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|exc|obj|const):`(~?)([^`]+)`")
_PROMPT = re.compile(r"^(\s*)(>>>|\.\.\.)( |$)")


def _role(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def convert(text: str) -> str:
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    in_fence = False
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            out.append(line)
            i += 1
            continue
        prompt = None if in_fence else _PROMPT.match(line)
        # Only examples in running text (column 0): indented ones sit in a literal block or in an
        # "Examples:" section, which are code already.
        if prompt and prompt.group(2) == ">>>" and not prompt.group(1):
            block: list[str] = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += ["```pycon", *block, "```"]
            continue
        if not in_fence:
            line = _ROLE.sub(_role, line)
            if line.rstrip().endswith("::") and line.strip() != "::":
                line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


class RstDocstrings(griffe.Extension):
    """Convert every docstring of a package once it is loaded (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        stack: list[griffe.Object] = [pkg]
        while stack:
            obj = stack.pop()
            if obj.docstring is not None:
                obj.docstring.value = convert(obj.docstring.value)
            # Aliases point at objects converted where they are defined.
            stack.extend(member for member in obj.members.values() if not member.is_alias)
