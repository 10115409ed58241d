"""Parsing generations (pure Python and numpy). Junk never raises: it is simply invalid.

* Numbers (reference spec §2.3, §8.1): a generation is valid when, after removing reasoning blocks
  and surrounding whitespace, the whole text is exactly one decimal or scientific literal whose
  value is finite, in the family's support (inclusive bounds) and, for integer families,
  integer-valued.
* SSOT answers (§9): the content of the first <answer> tag, with the reference's fallbacks.
"""

from __future__ import annotations

import math
import re

import numpy as np

from calft.targets.families import get_family

THINK_OPENING = "<think>"
THINK_BLOCK = re.compile(r"<think>.*?(</think>|$)", re.S)
NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")  # ASCII digits only
NUMBER_PREFIX = re.compile(r"\s*[+-]?[0-9]*(\.[0-9]*)?([eE][+-]?[0-9]*)?\s*")  # admits every prefix of one
INTEGER_TOLERANCE = 1e-9


def strip_reasoning(text: str) -> str:
    """The text without <think>...</think> blocks (an unclosed one runs to the end), stripped."""
    return THINK_BLOCK.sub("", text).strip()


def parse_number(text: str) -> float | None:
    """The value of a text that is exactly one finite number literal, else None."""
    cleaned = strip_reasoning(text)
    if not NUMBER.fullmatch(cleaned):
        return None
    value = float(cleaned)
    return value if math.isfinite(value) else None


def may_become_number(text: str) -> bool:
    """Whether some continuation of `text` could still parse as a number: False once a character
    outside reasoning blocks rules out every literal. Undecided endings (a partial character, a
    partial <think> tag) count as possible; so do a few texts that cannot become one (e.g. 'e5')."""
    if text.endswith("\ufffd"):  # a character whose bytes have not all been generated yet
        return True
    cleaned = THINK_BLOCK.sub("", text)  # an unclosed block runs to the end
    for length in range(len(THINK_OPENING) - 1, 0, -1):
        if cleaned.endswith(THINK_OPENING[:length]):
            cleaned = cleaned[:-length]
            break
    return NUMBER_PREFIX.fullmatch(cleaned) is not None


def judge(texts: list[str], family_id: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(value, valid) for every generation: value NaN when it does not parse."""
    family = get_family(family_id)
    values = np.array([np.nan if (v := parse_number(t)) is None else v for t in texts], dtype=float)
    low, high = family.support(params)
    valid = np.isfinite(values)
    if low is not None:
        valid &= values >= low
    if high is not None:
        valid &= values <= high
    if family.integer:
        with np.errstate(invalid="ignore"):
            valid &= np.abs(values - np.round(values)) <= INTEGER_TOLERANCE
    return values, valid


ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
OPEN_ANSWER_TAG = re.compile(r"<answer>(.*)$", re.S | re.I)
PROTOCOL_BLOCK = re.compile(r"<(random_string|thinking)>.*?</\1>", re.S | re.I)
ANY_TAG = re.compile(r"</?\w+>")
HARMONY_TAG_RESIDUE = re.compile(r"assistant(?:final|commentary)\s*(?=<)", re.I)
HARMONY_ANSWER_OPEN = re.compile(r"assistantanswer>", re.I)
HARMONY_INLINE_ANSWERS = (re.compile(r"assistantanswer\s*([^\n<][^\n<]*)", re.I),
                          re.compile(r"assistantfinal\s*([^\n<][^\n<]*)", re.I))


def extract_ssot_answer(text: str, strict: bool = True, harmony: bool = False) -> str:
    """The SSOT answer, as the reference extracts it (spec §9): the first <answer>...</answer>;
    not strict, an unclosed <answer> to the end; for the harmony protocol (GPT-OSS, whose channel
    names survive decoding as 'assistantfinal'), an inline 'assistantanswer X' or 'assistantfinal X',
    or a bare one-line answer; then '' when strict, else the last non-empty line outside the
    protocol's tags."""
    cleaned = strip_reasoning(text)
    if harmony:
        cleaned = HARMONY_ANSWER_OPEN.sub("<answer>", HARMONY_TAG_RESIDUE.sub("", cleaned))
    if match := ANSWER_TAG.search(cleaned):
        return match.group(1).strip()
    if not strict and (match := OPEN_ANSWER_TAG.search(cleaned)):
        return match.group(1).strip()
    if harmony:
        for pattern in HARMONY_INLINE_ANSWERS:
            if match := pattern.search(cleaned):
                return match.group(1).strip()
        if cleaned and "\n" not in cleaned and "<" not in cleaned and "assistant" not in cleaned.lower():
            return cleaned
    if strict:
        return ""
    lines = [line.strip() for line in ANY_TAG.sub("", PROTOCOL_BLOCK.sub("", cleaned)).splitlines() if line.strip()]
    return lines[-1] if lines else ""
