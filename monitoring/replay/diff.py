"""A word-level diff of two texts (a recorded answer and its re-run, or two runs' outputs)."""

from __future__ import annotations

import difflib
import re

MAX_DIFF_TOKENS = 4000  # words and spaces per side: the matcher is quadratic in the worst case


def text_diff(before: str, after: str) -> list[tuple[str, str]]:
    """Word-level diff as (op, text) with op "equal", "delete" or "insert"; long texts are compared
    on their first MAX_DIFF_TOKENS tokens and the rest is shown as a whole."""
    a, b = re.findall(r"\S+|\s+", before), re.findall(r"\S+|\s+", after)
    rest_a, rest_b = "".join(a[MAX_DIFF_TOKENS:]), "".join(b[MAX_DIFF_TOKENS:])
    a, b = a[:MAX_DIFF_TOKENS], b[:MAX_DIFF_TOKENS]
    out: list[tuple[str, str]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            out.append(("equal", "".join(a[i1:i2])))
        if op in ("delete", "replace"):
            out.append(("delete", "".join(a[i1:i2])))
        if op in ("insert", "replace"):
            out.append(("insert", "".join(b[j1:j2])))
    if rest_a != rest_b:
        out += [("delete", rest_a)] * bool(rest_a) + [("insert", rest_b)] * bool(rest_b)
    elif rest_a:
        out.append(("equal", rest_a))
    return out
