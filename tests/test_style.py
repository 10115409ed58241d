"""The tree keeps its style: ruff's lint and format checks (configured in pyproject.toml) pass."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_lint_and_format_pass():
    for check in (["check", "."], ["format", "--check", "."]):
        result = subprocess.run([sys.executable, "-m", "ruff", *check], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_no_function_is_longer_than_sixty_lines_unless_its_docstring_says_it_is_vectorized():
    import ast

    for path in (ROOT / "src" / "calft").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > 60:
                assert "Vectorized" in (ast.get_docstring(node) or ""), f"{path.name}: {node.name}"
