"""Whether a report file is well formed, judged without the writers' code. A markdown pipe table has
its header's number of cells on every row. A LaTeX file parses strictly (pylatexenc), has no bare
brace group (text braces that LaTeX would swallow), and every tabular body row has the columns its
specification declares."""

from __future__ import annotations

import re
from pathlib import Path

from pylatexenc import macrospec
from pylatexenc.latexwalker import (
    LatexEnvironmentNode,
    LatexGroupNode,
    LatexMacroNode,
    LatexWalker,
    LatexWalkerError,
    get_default_latex_context_db,
)

PIPE = re.compile(r"(?<!\\)\|")
AMPERSAND = re.compile(r"(?<!\\)&")
MACROS = {
    "toprule": "",
    "midrule": "",
    "bottomrule": "",
    "textbf": "{",
    "rowcolor": "{",
    "multicolumn": "{{{",
    "caption": "{",
    "textbackslash": "{",
    "textasciitilde": "{",
    "textasciicircum": "{",
    "linewidth": "",
}


def _context():
    context = get_default_latex_context_db().filter_context(keep_categories=["latex-base", "latex-ethuebung"])
    context.add_context_category(
        "calft-report",
        macros=[macrospec.std_macro(name, args) for name, args in MACROS.items()],
        environments=[
            macrospec.std_environment("tabular", "{"),
            macrospec.std_environment("table", "["),
        ],
    )
    return context


def markdown_problems(text: str) -> list[str]:
    problems, header = [], None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.startswith("|"):
            header = None
            continue
        cells = len(PIPE.findall(line)) - 1
        if header is None:
            header = cells
        elif cells != header:
            problems.append(f"line {number}: {cells} cells under a header of {header}: {line[:80]}")
    return problems


def _bare_groups(nodes, inside_argument=False) -> list[str]:
    found = []
    for node in nodes or []:
        if isinstance(node, LatexGroupNode):
            if not inside_argument:
                found.append(node.latex_verbatim()[:60])
            found += _bare_groups(node.nodelist)
        elif isinstance(node, (LatexMacroNode, LatexEnvironmentNode)):
            arguments = node.nodeargd.argnlist if node.nodeargd else []
            for argument in arguments:
                if isinstance(argument, LatexGroupNode):
                    found += _bare_groups(argument.nodelist)
            found += _bare_groups(getattr(node, "nodelist", None))
    return found


def latex_problems(text: str) -> list[str]:
    try:
        nodes, _, _ = LatexWalker(text, latex_context=_context(), tolerant_parsing=False).get_latex_nodes()
    except LatexWalkerError as error:
        return [str(error).splitlines()[0]]
    problems = [f"a bare brace group (its braces vanish): {group}" for group in _bare_groups(nodes)]
    for spec, body in re.findall(r"\\begin\{tabular\}\{([^}]*)\}.*?\\midrule\n(.*?)\\bottomrule", text, re.S):
        columns = len(re.findall(r"[lcr]|p\{", spec))
        for row in body.strip().split("\n"):
            if len(AMPERSAND.findall(row)) != columns - 1:
                problems.append(f"{len(AMPERSAND.findall(row)) + 1} cells in a tabular of {columns}: {row[:80]}")
    return problems


def file_problems(folder: Path) -> dict[str, list[str]]:
    """Every md and tex file below `folder` with what is wrong with it (well-formed files left out)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        check = {".md": markdown_problems, ".tex": latex_problems}.get(path.suffix)
        if check and (problems := check(path.read_text())):
            found[str(path.relative_to(folder))] = problems
    return found
