"""A command run by hand with `--config FILE --model NAME ...` gets exactly the settings its rule
gives it: for every job of the micro run (with a declared hub adapter and families, its ablations
and its release) and of the paper run, the rule's `--settings` equal the hand-run derivation."""

from __future__ import annotations

import json
import re
import shlex
import sys

import pytest
import yaml
from conftest import ROOT, run_checked
from test_adapters import DECLARED

from calft.cli import derive_settings, parser

WILDCARD_OPTIONS = {
    "model": "--model",
    "hub_model": "--model",
    "embedded_model": "--model",
    "method": "--method",
    "adapter": "--method",
    "prompt_set": "--prompt-set",
    "evaluator": "--evaluator",
}


def planned_commands(config: str, *targets: str, cwd) -> list[tuple[str, dict, str, str]]:
    """(rule, wildcards, command, settings JSON) of every planned job that passes --settings."""
    result = run_checked(
        [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *targets, "-n", "-p", "--forceall",
         "--configfile", config],
        cwd=cwd,
    )  # fmt: skip
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", result.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        if not rule or not shell or "--settings" not in shell.group(1):
            continue
        wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
        pairs = dict(item.split("=", 1) for item in wildcards.group(1).split(", ")) if wildcards else {}
        words = shlex.split(shell.group(1))
        command = words[words.index("--settings") - 1]
        jobs.append((rule.group(1), pairs, command, words[words.index("--settings") + 1]))
    return jobs


def by_hand(command: str, config: str, options: list[str]):
    """The settings a hand-run `calft <command> --config <config> <options>` derives."""
    top = parser()
    subparsers = top._subparsers._group_actions[0].choices
    args = vars(top.parse_args([command, "--config", config, *options, *_paths(subparsers[command])]))
    args.pop("command")
    derive_settings(subparsers[command], args)
    return args["settings"]


def _paths(subparser) -> list[str]:
    """Placeholder values for the command's required path options (never read: nothing runs)."""
    return [
        value
        for action in subparser._actions
        if action.required and action.option_strings[0] != "--settings"
        for value in (action.option_strings[0], "x")
    ]


def options_of(rule: str, command: str, wildcards: dict, run) -> list[list[str]]:
    """The hand-run options that name this job (those its command takes), in the order to try
    (discretize: the training targets of each trained method and variant, or the evaluation reference)."""
    takes = {f"--{name.replace('_', '-')}" for name in parser()._subparsers._group_actions[0].choices[command]
             .get_default("job").options}  # fmt: skip
    options = []
    for key, value in wildcards.items():
        if key == "variant" and value:
            options += ["--variant", value.removeprefix("~")]
        elif key == "tokenizer":
            options += ["--model", run.tokenizer_users(value)[0]]
        elif key in WILDCARD_OPTIONS:
            options += [WILDCARD_OPTIONS[key], value]
    options = [word for pair in zip(options[::2], options[1::2]) if pair[0] in takes for word in pair]
    if rule != "discretize" or wildcards["prompt_set"] != "train":
        return [options]
    finals = [["--method", method] for method in ("soft", "hard")]
    named = [["--method", v.method, "--variant", name] for name, v in run.variants.items()]
    return [options + choice for choice in finals + named]


def check_every_job(config_path, jobs) -> set[str]:
    from calft.cli import load_run

    run = load_run(str(config_path))
    checked = set()
    for rule, wildcards, command, settings in jobs:
        expected = json.loads(settings)
        candidates = options_of(rule, command, wildcards, run)
        derived = [by_hand(command, str(config_path), options).to_dict() for options in candidates]
        section = by_hand(command, str(config_path), candidates[0]).__class__
        assert section.from_dict(expected).to_dict() in derived, (rule, wildcards)
        checked.add(rule)
    return checked


def test_every_rule_of_the_micro_run_and_its_extensions_derives_what_a_hand_run_derives(tmp_path, micro_config):
    config = micro_config(
        adapters={"hubby": {"model": "smol", "hub": "acme/tiny-lora", "revision": "1" * 40, "trust": True}},
        families=DECLARED,
        **{"tracking.trackers": ["tensorboard"]},
    )
    path = tmp_path / "micro.yaml"
    path.write_text(yaml.safe_dump(config))
    jobs = planned_commands("micro.yaml", "all", "ablations", "release", cwd=tmp_path)
    checked = check_every_job(path, jobs)
    assert checked >= {
        "prepare_embedded_model", "download_hub_adapter", "import_adapter", "discretize", "build_tries",
        "construction_cost", "train_soft", "train_hard", "sample", "logit_kl", "open_ended", "mcq", "retention",
        "perplexity", "retention_data", "perplexity_data_offline", "aggregate", "aggregate_ablations",
    }  # fmt: skip


@pytest.mark.slow
def test_every_rule_of_the_paper_run_derives_what_a_hand_run_derives(tmp_path):
    import shutil

    shutil.copy(ROOT / "config.paper.yaml", tmp_path / "paper.yaml")
    jobs = planned_commands("paper.yaml", "all", cwd=tmp_path)
    checked = check_every_job(tmp_path / "paper.yaml", jobs)
    assert checked >= {
        "download_hub_model", "fetch_paloma", "fetch_irt_parameters", "fetch_noveltybench_prompts",
        "download_noveltybench_model", "noveltybench", "retention_data",
    }  # fmt: skip


def test_settings_come_from_a_json_or_yaml_file(tmp_path):
    top = parser()
    values = {"prompt_set": "ood", "decimals": 2, "max_bins": 50}
    (tmp_path / "s.json").write_text(json.dumps(values))
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(values))
    for name in ("s.json", "s.yaml"):
        args = vars(top.parse_args(["discretize", "--settings", f"@{tmp_path / name}", "--output", "x"]))
        assert args["settings"].to_dict() | values == args["settings"].to_dict()


def test_a_hand_run_without_settings_or_config_is_refused_in_one_line(capsys):
    from calft.cli import main

    assert main(["mcq", "--model-dir", "m", "--samples", "s", "--output", "o"]) == 2
    assert capsys.readouterr().err.strip() == (
        "calft mcq: error: give --settings, or --config FILE with the job's options (see --help)"
    )
    assert (
        main(["mcq", "--config", str(ROOT / "config.yaml"), "--model-dir", "m", "--samples", "s", "--output", "o"]) == 2
    )
    assert "--config needs --model (a model of the config's `models`)" in capsys.readouterr().err
    assert main(["mcq", "--config", str(ROOT / "config.yaml"), "--model", "nope", "--model-dir", "m", "--samples",
                 "s", "--output", "o"]) == 2  # fmt: skip
    assert "unknown model 'nope'; defined models: smollm2-135m" in capsys.readouterr().err
