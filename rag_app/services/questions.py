"""The form of a question (who, when, how many, what, why-how, open): what kind of reply fits it.

The answer service explains (several cited sentences) for open and why/how questions; the evaluation breaks its
figures down by the same forms.
"""

from __future__ import annotations

import re

_HOW_MANY = re.compile(r"\bhow\s+(many|much|long|old|far|big|large|tall|high|fast|often)\b|"
                       r"\b(what|which)\s+(percentage|percent|proportion|number|amount)\b", re.I)
_WHEN = re.compile(r"^\W*when\b|\b(what|which|in\s+what|in\s+which)\s+(year|years|century|decade|date|month|day)\b",
                   re.I)
_WHO = re.compile(r"^\W*(who|whom|whose)\b|\b(who|whom|whose)\s+(was|is|were|did|had|has)\b", re.I)
_OPEN = re.compile(r"^\W*(explain|describe|compare|contrast|discuss|summari[sz]e|outline|list|tell|give)\b|"
                   r"\b(difference|differences|differ|compare|pros\s+and\s+cons|advantages|trade-?offs?)\b", re.I)
_WHY_HOW = re.compile(r"^\W*(why|how)\b|\b(why|how)\s+(does|do|did|is|are|was|were|can|could|would)\b", re.I)
_WHAT = re.compile(r"^\W*(what|which|where)\b|\b(what|which|where)\b", re.I)
QUESTION_TYPES = ("who", "when", "how many", "what", "why-how", "open", "other")


def question_type(question: str) -> str:
    """The form of a question, for the per-type breakdown (first match of how many, when, who, open, why-how, what)."""
    for name, pattern in (("how many", _HOW_MANY), ("when", _WHEN), ("who", _WHO), ("open", _OPEN),
                          ("why-how", _WHY_HOW), ("what", _WHAT)):
        if pattern.search(question):
            return name
    return "other"


def wants_explanation(question: str) -> bool:
    """Open ("explain", "compare", "what is the difference") and why/how questions want more than one fact."""
    return question_type(question) in {"open", "why-how"}
