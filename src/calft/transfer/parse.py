"""Parsing transfer generations (pure Python). Junk never raises.

* Open-ended answers (reference spec §10): the reference normalization, and a case- and
  punctuation-insensitive one.
* Generated multiple-choice questions (§11): the strict line parser.
"""

from __future__ import annotations

import re
import unicodedata

from calft.modeling.answers import THINK_BLOCK, strip_reasoning

STRAY_THINK_TAG = re.compile(r"</?think>")
WRAPPING_QUOTES = re.compile(r'^(["\'])(.*)\1$', re.S)


def normalize_open_answer(text: str, insensitive: bool = False) -> str:
    """The first non-empty line without reasoning, whitespace collapsed, wrapping quotes removed
    (the reference's normalization); `insensitive` also case-folds and drops punctuation."""
    lines = [line.strip() for line in STRAY_THINK_TAG.sub("", strip_reasoning(text)).splitlines()]
    answer = " ".join(next((line for line in lines if line), "").split())
    answer = WRAPPING_QUOTES.sub(r"\2", answer)
    if insensitive:
        answer = "".join(c for c in answer.casefold() if not unicodedata.category(c).startswith("P"))
        answer = " ".join(answer.split())
    return answer


MCQ_MARKERS = {
    "Question:": "question",
    "A.": "A",
    "B.": "B",
    "C.": "C",
    "D.": "D",
    "Correct Answer:": "answer",
    "Explanation:": "explanation",
}


def _marker(line: str) -> str | None:
    """The marker a stripped line starts with, if any."""
    return next((marker for marker in MCQ_MARKERS if line.startswith(marker)), None)


def parse_mcq(text: str) -> tuple[dict[str, str], list[str]]:
    """(fields, errors) of a generated multiple-choice question. Every non-empty line must start
    with one of the seven markers, each exactly once and non-empty, and the correct answer must be
    exactly one of A-D; parseable means no errors."""
    fields, errors = {}, []
    for line in STRAY_THINK_TAG.sub("", strip_reasoning(text)).splitlines():
        line = line.strip()
        if not line:
            continue
        marker = _marker(line)
        if marker is None:
            errors.append("unexpected_line")
            continue
        name = MCQ_MARKERS[marker]
        if name in fields:
            errors.append(f"duplicate_{name}")
        fields[name] = " ".join(line[len(marker) :].split())
    for name in MCQ_MARKERS.values():
        if name not in fields:
            errors.append(f"missing_{name}")
        elif not fields[name]:
            errors.append(f"empty_{name}")
    if fields.get("answer") and fields["answer"] not in ("A", "B", "C", "D"):
        errors.append("invalid_answer")
    return fields, errors


def mcq_may_parse(text: str) -> bool:
    """Whether some continuation of `text` could still parse as a question: False once a finished
    line starts with no marker or repeats one. An unfinished last line that may still begin with a
    marker (or with a tag, or a partial character) counts as possible."""
    if text.endswith("\ufffd"):
        return True
    lines = STRAY_THINK_TAG.sub("", THINK_BLOCK.sub("", text)).splitlines(keepends=True)
    unfinished = lines.pop().strip() if lines and lines[-1] == lines[-1].splitlines()[0] else ""
    seen = set()
    for line in filter(None, (line.strip() for line in lines)):
        marker = _marker(line)
        if marker is None or MCQ_MARKERS[marker] in seen:
            return False
        seen.add(MCQ_MARKERS[marker])
    return (
        not unfinished
        or unfinished.startswith("<")
        or any(marker.startswith(unfinished) or unfinished.startswith(marker) for marker in MCQ_MARKERS)
    )
