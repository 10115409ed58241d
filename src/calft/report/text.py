"""Text in tables is data: a model's generation, a prompt or a name is shown as it is and never acts
as markup in a markdown viewer or a LaTeX document, or as a formula in a spreadsheet opened from a
csv file."""

from __future__ import annotations

import html
import re

import pandas as pd

MARKDOWN_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")  # an inner '_' is plain text
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as the start of a formula
LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "—": "---",
    "∞": r"$\infty$",
    "\n": " ",
    "\r": " ",
}


def markdown(text: str) -> str:
    """Text for a markdown table cell: HTML escaped, markdown's own characters backslashed, one line."""
    escaped = MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(text), quote=False))
    return re.sub(r"[\r\n]+", " ", escaped)


def latex(text: str) -> str:
    """Text for a LaTeX table cell or caption: every special character as itself, one line."""
    return "".join(LATEX_SPECIAL.get(character, character) for character in str(text))


def spreadsheet_safe(value):
    """A csv cell that no spreadsheet evaluates: text starting like a formula gets a leading quote."""
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_START) else value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with every text cell (and text index label) spreadsheet-safe."""
    frame = frame.copy()
    for column in frame.select_dtypes(exclude=["number", "bool"]).columns:
        frame[column] = frame[column].map(spreadsheet_safe)
    if not isinstance(frame.index, pd.MultiIndex) and not pd.api.types.is_numeric_dtype(frame.index):
        frame.index = frame.index.map(spreadsheet_safe)
    return frame
