"""Every md and tex table is well formed whatever its text holds: LaTeX's and markdown's special
characters in column names, row labels, method names and cells come out as themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd
from pylatexenc.latex2text import LatexNodes2Text
from well_formed import latex_problems, markdown_problems

from calft.report import flat_tables, text
from calft.report import tables as report_tables
from calft.report.intervals import Bootstrap

HOSTILE = r'top-90% {"a": 1} a|b x_y &#$~^\ end'


def test_the_checks_catch_what_lost_cells_and_braces_look_like():
    assert latex_problems(r"\begin{tabular}{lc}" + "\n\\toprule\na & {top-90% support} \\\\\n\\end{tabular}\n")
    assert latex_problems(
        '\\begin{tabular}{lc}\n\\toprule\nx \\\\\n\\midrule\na & {"a": 1} \\\\\n\\bottomrule\n\\end{tabular}'
    )
    assert latex_problems(
        "\\begin{tabular}{lc}\n\\toprule\nx \\\\\n\\midrule\na & b & c \\\\\n\\bottomrule\n\\end{tabular}"
    )
    assert markdown_problems("| a | b |\n|---|---|\n| x | y | z |\n")
    assert not markdown_problems("| a | b |\n|---|---|\n| x \\| y | z |\n")


def test_a_flat_table_of_special_characters_is_well_formed():
    table = pd.DataFrame({HOSTILE: [HOSTILE, "plain"], "value W1": [0.5, np.nan], "row": ["evaluation reference", ""]})
    assert not latex_problems(flat_tables.to_latex(table, "a title", "a note"))
    assert not markdown_problems(flat_tables.to_markdown(table, "a title", "a note"))
    shown = LatexNodes2Text().latex_to_text(text.latex(HOSTILE))
    assert shown == HOSTILE.replace("^", "ˆ")  # what LaTeX prints: the text itself (a circumflex accent for ^)


def test_a_method_table_of_special_characters_is_well_formed():
    columns = pd.MultiIndex.from_product([["support", "support_low", "support_high", "support_few"], ["base", "so_ft"]])
    values = [[1.0, 2.0, 0.5, 1.9, 1.5, np.inf, False, True], [np.nan, 3.0, np.nan, 2.0, np.nan, 4.0, False, False]]
    table = pd.DataFrame(values, index=pd.Index([HOSTILE, "m|2"], name="model"), columns=columns)
    metrics = [report_tables.Column("support", "top-90% support", "max")]
    latex = report_tables.to_latex(table, "Table 1", metrics, report_tables.legend(Bootstrap(), 10))
    assert r"\infty" in latex and r"$^\dagger$" in latex and not latex_problems(latex)
    markdown = report_tables.to_markdown(table, "Table 1", metrics, report_tables.legend(Bootstrap(), 10))
    assert "∞" in markdown and "†" in markdown and not markdown_problems(markdown)
