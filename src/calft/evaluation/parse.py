"""Parsing generations (pure Python and numpy). Junk never raises: it is simply invalid.

* Numbers (reference spec §2.3, §8.1): a generation is valid when, after removing reasoning blocks
  and surrounding whitespace, the whole text is exactly one decimal or scientific literal whose
  value is finite, in the family's support (inclusive bounds) and, for integer families,
  integer-valued.
"""

from __future__ import annotations

import math
import re

import numpy as np

from calft.modeling.answers import THINK_BLOCK, strip_reasoning
from calft.targets.families import get_family

THINK_OPENING = "<think>"
NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")  # ASCII digits only
NUMBER_PREFIX = re.compile(r"\s*[+-]?[0-9]*(\.[0-9]*)?([eE][+-]?[0-9]*)?\s*")  # admits every prefix of one
INTEGER_TOLERANCE = 1e-9


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


def in_support(values: np.ndarray, family_id: str, params: dict) -> np.ndarray:
    """Whether each value is finite, in the family's support (inclusive bounds) and, for integer
    families, integer-valued."""
    family = get_family(family_id)
    low, high = family.support(params)
    valid = np.isfinite(values)
    if low is not None:
        valid &= values >= low
    if high is not None:
        valid &= values <= high
    if family.integer:
        with np.errstate(invalid="ignore"):
            valid &= np.abs(values - np.round(values)) <= INTEGER_TOLERANCE
    return valid


def judge(texts: list[str], family_id: str, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(value, valid) for every generation: value NaN when it does not parse."""
    values = np.array([np.nan if (v := parse_number(t)) is None else v for t in texts], dtype=float)
    return values, in_support(values, family_id, params)
