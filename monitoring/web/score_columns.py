"""Which scores a list shows as columns (Agent runs, LLM Call, a session's and an end user's runs).

A person chooses them in the URL, `scores=<name>,<name>` (the picker's checkboxes send the same
names as repeated `scores=`; both spellings mix), shown in that order; without `scores` a list
shows the project's most used names, as before there was a choice. `scores=,` (no name) chooses
none. The choice is kept in every link of the dashboard like the filter bar
(monitoring/web/views/dashboard.py), so it survives sorting, paging and a visit to another tab.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from django.utils.translation import gettext as _

from monitoring.queries import scores as scores_q

PARAM = "scores"
DEFAULT_SHOWN = 4  # without a choice: the project's most used score names
MOST_SHOWN = 12  # a choice of more would not fit a table


class BadChoice(ValueError):
    """A `scores=` the person can fix (a 400 with this translated message)."""


@dataclass(frozen=True)
class ScoreColumns:
    """The score columns of a list: `shown` in order, the project's `available` names (most used
    first, scores_q.names) and whether `shown` is the person's choice or the default."""

    shown: tuple[str, ...]
    available: tuple[str, ...]
    chosen: bool

    @property
    def param(self) -> str:
        """The choice as links keep it: '' (the default), 'a,b', or ',' (none)."""
        if not self.chosen:
            return ""
        return ",".join(self.shown) or ","

    def checkboxes(self) -> list[dict]:
        """The picker's checkboxes: every available name, then chosen names not (yet) used."""
        names = [*self.available, *(n for n in self.shown if n not in self.available)]
        return [{"name": n, "shown": n in self.shown} for n in names]


def choose(query, available: list[str]) -> ScoreColumns:
    """The score columns a request asks for (a QueryDict's `scores`), given the project's score
    names, most used first. Raises BadChoice for more than MOST_SHOWN names or a name longer than
    a score name may be (scores_q.NAME_CHARS)."""
    values = query.getlist(PARAM)
    if not values:
        return ScoreColumns(tuple(available[:DEFAULT_SHOWN]), tuple(available), chosen=False)
    names: list[str] = []
    for value in values:
        for name in (part.strip() for part in value.split(",")):
            if name and name not in names:
                names.append(name)
    if len(names) > MOST_SHOWN:
        raise BadChoice(_("Choose at most %(n)d score columns.") % {"n": MOST_SHOWN})
    if any(len(name) > scores_q.NAME_CHARS for name in names):
        raise BadChoice(_("A score name is at most %(n)d characters.") % {"n": scores_q.NAME_CHARS})
    return ScoreColumns(tuple(names), tuple(available), chosen=True)


def picker(request, columns: ScoreColumns) -> dict:
    """The template's `score_picker`: the checkboxes, the request's other parameters as hidden
    fields (a new choice starts at the first page: no `cursor`), and the link back to the default."""
    others = [
        (key, value)
        for key in request.GET
        if key not in (PARAM, "cursor")
        for value in request.GET.getlist(key)
        if value
    ]
    return {
        "names": columns.checkboxes(),
        "hidden": others,
        "chosen": columns.chosen,
        "default_url": request.path + (f"?{urlencode(others)}" if others else ""),
    }
