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


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """Inputs a user might get wrong: small real targets, and artifacts and folders that are not what
    a command expects."""
    import pyarrow as pa

    from calft import artifacts

    folder = tmp_path_factory.mktemp("bad-inputs")
    assert main(["discretize", "--prompt-set", "ood", "--families", "poisson", "--decimals", "1", "--max-bins", "10",
                 "--output", str(folder / "targets.parquet")]) == 0
    info = artifacts.provenance("targets", {})
    with artifacts.parquet_writer(folder / "empty.parquet", artifacts.TARGETS_SCHEMA, info) as writer:
        writer.write_table(artifacts.TARGETS_SCHEMA.empty_table())
    no_canonical = pa.schema([field for field in artifacts.TARGETS_SCHEMA if field.name != "canonical"])
    with artifacts.parquet_writer(folder / "no-canonical.parquet", no_canonical, info) as writer:
        writer.write_table(no_canonical.empty_table())
    (folder / "garbage-tokenizer").mkdir()
    (folder / "garbage-tokenizer" / "tokenizer.json").write_text("not a tokenizer {")
    (folder / "a-file").write_text("")
    return folder


MODEL = '{{"source": "embedded", "tokenizer": "smollm2", "terminator": "<|im_end|>"}}'  # braces doubled: .format


@pytest.mark.parametrize("arguments, message", [
    (["build-tries", "--targets", "{d}/no-canonical.parquet", "--tokenizer", "{d}/garbage-tokenizer", "--terminator",
      "x", "--output", "{d}/out"], "is not a valid tokenizer file"),
    (["build-tries", "--targets", "{d}/no-canonical.parquet", "--tokenizer", "{smol}", "--terminator", "<|im_end|>",
      "--output", "{d}/out"], "is not laid out as a 'targets' artifact (no column 'canonical')"),
    (["sample", "--model-dir", "{d}/missing", "--model-config", MODEL, "--sampling", "{{}}", "--targets",
      "{d}/targets.parquet", "--output", "{d}/out"], "cannot load the tokenizer from '{d}/missing'"),
    (["sample", "--model-dir", "{smol}", "--model-config", MODEL, "--sampling", "{{}}", "--targets",
      "{d}/empty.parquet", "--output", "{d}/out"], "empty.parquet has no rows"),
    (["logit-kl", "--model-dir", "{smol}", "--model-config", MODEL, "--tries", "{d}/targets.parquet", "--targets",
      "{d}/empty.parquet", "--output", "{d}/out"], "is a 'targets' artifact where a 'tries' artifact is expected"),
    (["train", "--method", "hard", "--model-dir", "{smol}", "--model-config", MODEL, "--training", "{{}}",
      "--targets", "{d}/empty.parquet", "--adapter", "{d}/a", "--train-log", "{d}/l", "--checkpoints", "{d}/c"],
     "empty.parquet has no rows"),
    (["discretize", "--prompt-set", "ood", "--decimals", "1", "--max-bins", "10", "--output", "{d}/a-file/t.parquet"],
     "a-file is a file, not a folder"),
    (["discretize", "--prompt-set", "ood", "--decimals", "1", "--max-bins", "10", "--per-family", "0",
      "--output", "{d}/t"], "prompts.train_per_family: 0 is less than the minimum of 1"),
    (["sample", "--model-dir", "m", "--model-config", MODEL, "--sampling", '{{"temperature": 0}}', "--targets", "t",
      "--output", "o"], "sampling.temperature: 0 is less than the minimum of 0.001"),
    (["sample", "--model-dir", "m", "--model-config", MODEL, "--sampling", '{{"top_p": 0}}', "--targets", "t",
      "--output", "o"], "sampling.top_p: 0 is less than or equal to the minimum of 0"),
    (["sample", "--model-dir", "m", "--model-config", MODEL.replace("}}", ', "dtype": "float99"}}'), "--sampling", "{{}}",
      "--targets", "t", "--output", "o"], "model.dtype: 'float99' is not one of"),
])
def test_bad_inputs_get_one_line_naming_them_and_status_2(bad_inputs, smollm2_dir, capsys, arguments, message):
    fill = dict(d=bad_inputs, smol=smollm2_dir)
    assert main([argument.format(**fill) for argument in arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.format(**fill) in error and "Traceback" not in error
