"""The command line: every subcommand documents its options, dispatch is lazy, bad options fail
with one line and status 2."""

import subprocess
import sys

import pytest

from calft.cli import main, parser


def test_help_explains_every_option():
    for command, options in [("discretize", ["--prompt-set", "--decimals", "--max-bins", "--output",
                                             "--number-format", "--families", "--per-family"]),
                             ("build-tries", ["--targets", "--tokenizer", "--terminator", "--output", "--workers"])]:
        text = subprocess.run([sys.executable, "-m", "calft.cli", command, "--help"],
                              capture_output=True, text=True, check=True).stdout
        for option in options:
            assert option in text
        assert text.count("\n  --") >= len(options)


def test_every_subcommand_names_a_function_that_takes_exactly_its_options():
    import importlib
    import inspect

    commands = parser()._subparsers._group_actions[0].choices
    for name, subparser in commands.items():
        module, function = subparser.get_default("target").split(":")
        parameters = set(inspect.signature(getattr(importlib.import_module(module), function)).parameters)
        options = {action.dest for action in subparser._actions if action.dest not in ("help", "target")}
        assert parameters == options, name


def test_help_imports_no_stage_and_no_torch():
    code = "import sys; from calft.cli import parser; parser(); print(sorted(m for m in sys.modules if m.startswith(('torch', 'pandas', 'calft.'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "torch" not in loaded and "pandas" not in loaded
    assert "calft.training" not in loaded and "calft.evaluation" not in loaded


@pytest.mark.parametrize("arguments, message", [
    (["discretize", "--prompt-set", "ood", "--decimals", "9", "--max-bins", "10", "--output", "x"],
     "targets.decimals: 9 is greater than the maximum of 8"),
    (["discretize", "--prompt-set", "ood", "--decimals", "2.5", "--max-bins", "10", "--output", "x"],
     "'2.5' is not an integer"),
    (["discretize", "--prompt-set", "ood", "--decimals", "2", "--max-bins", "1", "--output", "x"],
     "max_bins: 1 is less than the minimum of 2"),
    (["score", "--samples", "s", "--targets", "t", "--output", "o", "--bogus"], "unrecognized arguments: --bogus"),
    (["sample", "--model-dir", "m", "--model-config", '{"source": "embedded"}', "--sampling", "{}",
      "--targets", "t", "--output", "o"], "model: 'tokenizer' is a required property"),
    (["sample", "--model-dir", "m", "--model-config",
      '{"source": "embedded", "tokenizer": "t", "terminator": "x"}', "--sampling", '{"num_samples": 100.0}',
      "--targets", "t", "--output", "o"], "sampling.num_samples: 100.0 is not of type 'integer'"),
])
def test_bad_options_fail_with_one_line_naming_the_key(tmp_path, capsys, arguments, message):
    assert main(arguments) == 2
    assert message in capsys.readouterr().err
