"""The command line: every subcommand documents its options, dispatch is lazy, bad options fail
with one line and status 2."""

import json
import subprocess
import sys

import pytest

from calft.cli import main, parser


def test_help_explains_every_option():
    for command, options in [
        (
            "discretize",
            [
                "--settings",
                "--output",
                "--workers",
                "prompt_set",
                "decimals",
                "max_bins",
                "number_format",
                "families",
                "per_family",
            ],
        ),
        ("build-tries", ["--settings", "--targets", "--tokenizer", "--output", "--workers", "terminator"]),
    ]:
        text = subprocess.run(
            [sys.executable, "-m", "calft.cli", command, "--help"], capture_output=True, text=True, check=True
        ).stdout
        for option in options:
            assert option in text
        assert text.count("\n  --") >= len([option for option in options if option.startswith("--")])


def test_every_subcommand_names_a_function_that_takes_exactly_its_options():
    import importlib
    import inspect

    commands = parser()._subparsers._group_actions[0].choices
    for name, subparser in commands.items():
        module, function = subparser.get_default("target").split(":")
        parameters = set(inspect.signature(getattr(importlib.import_module(module), function)).parameters)
        job = subparser.get_default("job")
        derived = {"config", *job.options} if job else set()  # calft.command.derive_settings takes them
        options = {
            action.dest for action in subparser._actions if action.dest not in {"help", "target", "offline", *derived}
        }
        assert parameters == options, name


def test_help_imports_only_the_stages_declarations_and_no_torch():
    code = (
        "import sys; from calft.cli import parser; parser(); "
        "print(sorted(m for m in sys.modules if m.startswith(('torch', 'pandas', 'calft.'))))"
    )
    loaded = eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert not [name for name in loaded if name.startswith(("torch", "pandas"))]
    stage_modules = [name for name in loaded if name.count(".") == 2]
    assert stage_modules and all(name.endswith((".cli", ".settings", ".suites")) for name in stage_modules), (
        stage_modules
    )


def _discretize(**settings):
    return ["discretize", "--settings", json.dumps({"prompt_set": "ood", "decimals": 1, "max_bins": 10} | settings)]


SMOL = {"source": "embedded", "tokenizer": "smollm2", "terminator": "<|im_end|>"}


def _model_settings(model=SMOL, **sections):
    return json.dumps({"model": model, **sections})


@pytest.mark.parametrize(
    "arguments, message",
    [
        ([*_discretize(decimals=9), "--output", "x"], "settings.decimals: 9 is greater than the maximum of 8"),
        ([*_discretize(decimals=2.5), "--output", "x"], "settings.decimals: 2.5 is not of type 'integer'"),
        ([*_discretize(max_bins=1), "--output", "x"], "settings.max_bins: 1 is less than the minimum of 2"),
        ([*_discretize(prompt_set="nope"), "--output", "x"], "settings.prompt_set: 'nope' is not one of"),
        (["discretize", "--settings", "{}", "--output", "x"], "settings: 'prompt_set' is a required property"),
        (["discretize", "--settings", "[1]", "--output", "x"], "settings: expected a JSON object, got list"),
        (["score", "--samples", "s", "--targets", "t", "--output", "o", "--bogus"], "unrecognized arguments: --bogus"),
        (
            [
                "sample",
                "--settings",
                _model_settings({"source": "embedded"}),
                "--model-dir",
                "m",
                "--targets",
                "t",
                "--output",
                "o",
            ],
            "settings.model: 'tokenizer' is a required property",
        ),
        (
            [
                "sample",
                "--settings",
                _model_settings(sampling={"num_samples": 100.0}),
                "--model-dir",
                "m",
                "--targets",
                "t",
                "--output",
                "o",
            ],
            "settings.sampling.num_samples: 100.0 is not of type 'integer'",
        ),
        (
            [
                "sample",
                "--settings",
                _model_settings(prompting="loud"),
                "--model-dir",
                "m",
                "--targets",
                "t",
                "--output",
                "o",
            ],
            "settings.prompting: 'loud' is not one of",
        ),
        (
            [
                "train",
                "--settings",
                _model_settings(method="base"),
                "--model-dir",
                "m",
                "--targets",
                "t",
                "--adapter",
                "a",
                "--train-log",
                "l",
                "--checkpoints",
                "c",
            ],
            "settings.method: 'base' is not a trained method (soft, hard)",
        ),
        (
            [
                "train",
                "--settings",
                _model_settings(method="soft", training={"soft_group_size": 3}),
                "--model-dir",
                "m",
                "--targets",
                "t",
                "--adapter",
                "a",
                "--train-log",
                "l",
                "--checkpoints",
                "c",
            ],
            "training.soft_group_size: 3 does not divide",
        ),
        (
            [
                "aggregate",
                "--settings",
                json.dumps({"models": ["m"], "prompt_sets": ["ood"], "methods": ["base", "x"]}),
            ],
            "settings.methods: unknown method 'x'",
        ),
    ],
)
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
    assert main([*_discretize(families=["poisson"]), "--output", str(folder / "targets.parquet")]) == 0
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


def _braced(arguments: list[str]) -> list[str]:
    """Arguments to fill with str.format: the braces of JSON doubled."""
    return [
        argument.replace("{", "{{").replace("}", "}}") if argument.startswith('{"') else argument
        for argument in arguments
    ]


TERMINATOR = json.dumps({"terminator": "<|im_end|>"})


@pytest.mark.parametrize(
    "arguments, message",
    [
        (
            [
                "build-tries",
                "--settings",
                json.dumps({"terminator": "x"}),
                "--targets",
                "{d}/no-canonical.parquet",
                "--tokenizer",
                "{d}/garbage-tokenizer",
                "--output",
                "{d}/out",
            ],
            "is not a valid tokenizer file",
        ),
        (
            [
                "build-tries",
                "--settings",
                TERMINATOR,
                "--targets",
                "{d}/no-canonical.parquet",
                "--tokenizer",
                "{smol}",
                "--output",
                "{d}/out",
            ],
            "is not laid out as a 'targets' artifact (no column 'canonical')",
        ),
        (
            [
                "sample",
                "--settings",
                _model_settings(),
                "--model-dir",
                "{d}/missing",
                "--targets",
                "{d}/targets.parquet",
                "--output",
                "{d}/out",
            ],
            "'{d}/missing' is neither a model folder nor the download marker of a hub model",
        ),
        (
            [
                "sample",
                "--settings",
                _model_settings(),
                "--model-dir",
                "{smol}",
                "--targets",
                "{d}/empty.parquet",
                "--output",
                "{d}/out",
            ],
            "empty.parquet has no rows",
        ),
        (
            [
                "logit-kl",
                "--settings",
                _model_settings(),
                "--model-dir",
                "{smol}",
                "--tries",
                "{d}/targets.parquet",
                "--targets",
                "{d}/empty.parquet",
                "--output",
                "{d}/out",
            ],
            "is a 'targets' artifact where a 'tries' artifact is expected",
        ),
        (
            [
                "train",
                "--settings",
                _model_settings(method="hard"),
                "--model-dir",
                "{smol}",
                "--targets",
                "{d}/empty.parquet",
                "--adapter",
                "{d}/a",
                "--train-log",
                "{d}/l",
                "--checkpoints",
                "{d}/c",
            ],
            "empty.parquet has no rows",
        ),
        ([*_discretize(), "--output", "{d}/a-file/t.parquet"], "a-file is a file, not a folder"),
        ([*_discretize(per_family=0), "--output", "{d}/t"], "settings.per_family: 0 is less than the minimum of 1"),
        (
            [
                "sample",
                "--settings",
                _model_settings(sampling={"temperature": 0}),
                "--model-dir",
                "m",
                "--targets",
                "t",
                "--output",
                "o",
            ],
            "settings.sampling.temperature: 0 is less than the minimum of 0.001",
        ),
        (
            [
                "sample",
                "--settings",
                _model_settings(sampling={"top_p": 0}),
                "--model-dir",
                "m",
                "--targets",
                "t",
                "--output",
                "o",
            ],
            "settings.sampling.top_p: 0 is less than or equal to the minimum of 0",
        ),
        (
            [
                "sample",
                "--settings",
                _model_settings(SMOL | {"dtype": "float99"}),
                "--model-dir",
                "m",
                "--targets",
                "t",
                "--output",
                "o",
            ],
            "settings.model.dtype: 'float99' is not one of",
        ),
    ],
)
def test_bad_inputs_get_one_line_naming_them_and_status_2(bad_inputs, smollm2_dir, capsys, arguments, message):
    fill = dict(d=bad_inputs, smol=smollm2_dir)
    assert main([argument.format(**fill) for argument in _braced(arguments)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.format(**fill) in error and "Traceback" not in error


def test_version_names_the_package_version_and_the_source_commit(capsys):
    from importlib.metadata import version

    from calft.artifacts import code_version

    assert main(["--version"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed == f"calft {code_version()}" and printed.startswith(f"calft {version('calft')}")


def test_the_license_and_the_citation_are_the_ones_the_package_names():
    from importlib.metadata import metadata
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    assert metadata("calft")["License-Expression"] == "MIT"
    assert (root / "LICENSE").read_text().startswith("MIT License")
    citation = yaml.safe_load((root / "CITATION.cff").read_text())
    paper = citation["preferred-citation"]
    assert paper["title"] == "Probabilistic Calibration Is a Trainable Capability in Language Models"
    assert paper["identifiers"][0]["value"] == "arXiv:2605.11845"
    assert citation["version"] == version_of_pyproject(root) and citation["license"] == "MIT"


def version_of_pyproject(root) -> str:
    import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
