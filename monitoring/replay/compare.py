"""Two runs compared: their steps aligned by role and name (a sequence alignment, difflib), and what
differs between aligned steps (status, tokens, cost, latency, input, output, tools called)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from django.utils.translation import gettext_lazy

from monitoring.replay.diff import text_diff
from monitoring.replay.steps import Run, Step


@dataclass
class Pair:
    a: Step | None
    b: Step | None
    changed: list[str] = field(default_factory=list)  # which of status/tokens/cost/latency/output/tools/input differ
    output_diff: list[tuple[str, str]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        if self.a is None:
            return "added"
        if self.b is None:
            return "removed"
        return "changed" if self.changed else "same"

    @property
    def kind_label(self) -> str:
        return str(PAIR_KINDS[self.kind])

    @property
    def changed_labels(self) -> list[str]:
        return [str(CHANGES.get(c, c)) for c in self.changed]


PAIR_KINDS = {
    "same": gettext_lazy("same"),
    "added": gettext_lazy("only in B"),
    "removed": gettext_lazy("only in A"),
    "changed": gettext_lazy("changed"),
}
CHANGES = {
    "name": gettext_lazy("name"),
    "status": gettext_lazy("status"),
    "tokens": gettext_lazy("tokens"),
    "cost": gettext_lazy("cost"),
    "latency": gettext_lazy("latency"),
    "input": gettext_lazy("input"),
    "output": gettext_lazy("output"),
    "tools": gettext_lazy("tools"),
}


LATENCY_TOLERANCE = 0.2  # a latency counts as changed beyond +-20 %


def _compare_steps(a: Step, b: Step) -> Pair:
    changed = []
    if a.span.status != b.span.status:
        changed.append("status")
    if (a.span.input_tokens, a.span.output_tokens) != (b.span.input_tokens, b.span.output_tokens):
        changed.append("tokens")
    if abs(a.cost_usd - b.cost_usd) > 1e-12:
        changed.append("cost")
    slow, fast = max(a.span.duration_ns, b.span.duration_ns), min(a.span.duration_ns, b.span.duration_ns)
    if slow and (slow - fast) / slow > LATENCY_TOLERANCE:
        changed.append("latency")
    if [m.content for m in a.input] != [m.content for m in b.input]:
        changed.append("input")
    if a.output_text != b.output_text:
        changed.append("output")
    if a.tools_called != b.tools_called:
        changed.append("tools")
    diff = text_diff(a.output_text, b.output_text) if "output" in changed else []
    return Pair(a, b, changed, diff)


def compare(run_a: Run, run_b: Run) -> list[Pair]:
    """Steps aligned by role and name in order (a sequence alignment), with what differs."""
    keys_a, keys_b = [s.key for s in run_a.steps], [s.key for s in run_b.steps]
    pairs: list[Pair] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=keys_a, b=keys_b, autojunk=False).get_opcodes():
        if op == "equal":
            pairs += [
                _compare_steps(run_a.steps[i], run_b.steps[j])
                for i, j in zip(range(i1, i2), range(j1, j2), strict=False)
            ]
            continue
        # replace/insert/delete: pair what lines up, the rest stands alone
        left, right = run_a.steps[i1:i2], run_b.steps[j1:j2]
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else None
            b = right[k] if k < len(right) else None
            if a is not None and b is not None and a.role == b.role:
                pair = _compare_steps(a, b)
                if a.span.name != b.span.name:
                    pair.changed.insert(0, "name")
                pairs.append(pair)
            else:
                if a is not None:
                    pairs.append(Pair(a, None))
                if b is not None:
                    pairs.append(Pair(None, b))
    return pairs
