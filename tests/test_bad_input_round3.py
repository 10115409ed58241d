"""Bad input, third round: the report states what the artifacts record and refuses a file in another
cell, writers refuse what readers refuse, validation bounds what a job cannot do, a resumed run checks
its state, and generated text stays data. Each test is a row of the third hostile campaign, written
to fail on the code before it."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import cli_settings, discretize, run_snakemake
from test_bad_input import REPORT, SAMPLE, _error, _rewrite, _set, _train, _tree
from test_workflow import dry_run_jobs

from calft import artifacts, variants
from calft.cli import main
from calft.config import ConfigError, validate
from calft.errors import UserError

# ---------------------------------------------------------------------------------------------
# 1-2, 15-16: the report states what was run, and every file fills its own cell


def _ablation_settings(config: dict) -> str:
    validate(config)
    return json.dumps(variants.ablation_report(config))


def _aggregate_ablations(work: Path, settings: str, output: Path, cost: Path | None = None) -> int:
    return main(
        [
            "aggregate-ablations",
            "--settings",
            settings,
            "--results",
            str(work / "results"),
            "--construction-cost",
            str(cost or work / "results" / "targets" / "construction_cost.parquet"),
            "--output",
            str(output),
        ]
    )


@pytest.mark.slow
def test_a_variant_edited_after_training_stops_the_ablation_report_and_reruns_in_the_workflow(
    tmp_path, capsys, local_micro_run
):
    _, work = local_micro_run
    config = yaml.safe_load((work / "micro.yaml").read_text())
    assert _aggregate_ablations(work, _ablation_settings(config), tmp_path / "as-run") == 0  # as trained: fine
    table = pd.read_csv(tmp_path / "as-run" / "table25_soft_ablation.csv")
    assert list(table.d) == [2, 3]

    edited = yaml.safe_load((work / "micro.yaml").read_text())
    edited["ablations"]["variants"]["soft-d3"] = {"method": "soft", "decimals": 4, "max_bins": 100}
    assert _aggregate_ablations(work, _ablation_settings(edited), tmp_path / "edited") == 2
    message = _error(capsys)
    assert "variant 'soft-d3' of soft on smol was trained with decimals 3, max_bins 50" in message
    assert "the config now says decimals 4, max_bins 100" in message and "snakemake --cores all ablations" in message
    assert not (tmp_path / "edited").exists()

    epochs = yaml.safe_load((work / "micro.yaml").read_text())
    epochs["ablations"]["variants"]["soft-d3"]["epochs"] = 2  # no new input: only its settings changed
    (tmp_path / "epochs.yaml").write_text(yaml.safe_dump(epochs))
    (tmp_path / "same.yaml").write_text((work / "micro.yaml").read_text())
    retrained = {}
    for name in ("epochs", "same"):
        planned = run_snakemake(
            "ablations", "-n", "--directory", str(work), "--configfile", str(tmp_path / f"{name}.yaml")
        )
        jobs = dry_run_jobs(planned.stdout + planned.stderr)
        retrained[name] = [job for job in jobs if job["rule"] == "train_soft" and job["wildcards"]["variant"]]
    assert [job["wildcards"]["variant"] for job in retrained["epochs"]] == ["~soft-d3"] and not retrained["same"]


@pytest.mark.slow
def test_a_results_file_of_another_method_or_model_is_refused_naming_both(tmp_path, capsys, local_micro_run):
    _, work = local_micro_run
    results = tmp_path / "results"
    shutil.copytree(work / "results", results, ignore=shutil.ignore_patterns("adapter", "checkpoints"))
    config = yaml.safe_load((work / "micro.yaml").read_text())
    validate(config)
    report = {"models": ["smol"], "methods": ["base", "soft", "hard"], "prompt_sets": ["ood"]}
    aggregate = [
        "aggregate",
        *cli_settings(**report),
        "--results",
        str(results),
        "--tables",
        str(tmp_path / "tables"),
        "--figures",
        str(tmp_path / "figures"),
    ]
    shutil.copy(
        results / "smol" / "hard" / "scores" / "ood.parquet", results / "smol" / "soft" / "scores" / "ood.parquet"
    )
    assert main(aggregate) == 2
    message = _error(capsys)
    assert "soft/scores/ood.parquet fills the cell smol/soft (ood) but records a hard adapter" in message
    assert not (tmp_path / "tables").exists()

    variant = results / "smol" / "soft~soft-d3" / "scores" / "ood.parquet"
    shutil.copy(variant, results / "smol" / "soft" / "scores" / "ood.parquet")  # the d=3 variant's as the final's
    assert main(aggregate) == 2
    assert "records an adapter trained on d=3, 50 bins with other settings than the training log of smol/soft" in (
        _error(capsys)
    )

    shutil.copy(work / "results" / "smol" / "soft" / "scores" / "ood.parquet", results / "smol" / "soft" / "scores")
    shutil.copytree(results / "smol", results / "other")
    assert main([*aggregate[:1], *cli_settings(**report | {"models": ["other"]}), *aggregate[3:]]) == 2
    assert "fills the cell other/base (ood) but records model 'smol'" in _error(capsys)


@pytest.mark.slow
def test_a_construction_cost_of_another_reference_is_refused(tmp_path, capsys, local_micro_run):
    _, work = local_micro_run
    cost = work / "results" / "targets" / "construction_cost.parquet"
    info = artifacts.read_provenance(cost)
    info["config"]["reference"] = {"decimals": 5, "max_bins": 16384}
    changed = tmp_path / "cost.parquet"
    artifacts.write_frame(artifacts.read_table(cost, "construction_cost").to_pandas(), changed, info)
    config = yaml.safe_load((work / "micro.yaml").read_text())
    assert _aggregate_ablations(work, _ablation_settings(config), tmp_path / "out", changed) == 2
    message = _error(capsys)
    assert "marks the evaluation reference d=5, 16384 bins" in message and "against d=2, 100 bins" in message


@pytest.mark.parametrize(
    "change, message",
    [
        ({"models": ["m/../../../esc/m"]}, "settings.models.0: 'm/../../../esc/m' does not match"),
        ({"models": ["a|b"]}, "settings.models.0: 'a|b' does not match"),
        ({"models": ["a&b"]}, "settings.models.0: 'a&b' does not match"),
        (
            {"runs": [{"method": "soft", "variant": "", "models": ["m"], "decimals": 2, "max_bins": 50,
                       "draws_per_prompt": 1, "epochs": 1}] * 2},
            "run soft~ is listed twice",
        ),
    ],
)  # fmt: skip
def test_hand_written_ablation_settings_with_unsafe_names_or_duplicate_rows_are_refused(
    tmp_path, capsys, change, message
):
    settings = {"models": ["m"], "prompt_sets": ["ood"], "runs": []} | change
    arguments = ["aggregate-ablations", "--settings", json.dumps(settings), "--results", str(tmp_path)]
    arguments += ["--construction-cost", str(tmp_path / "c.parquet"), "--output", str(tmp_path / "out")]
    assert main(arguments) == 2 and message in capsys.readouterr().err
    assert not list(tmp_path.parent.glob("esc"))


# ---------------------------------------------------------------------------------------------
# 3, 12, 13: writers refuse what readers refuse


def test_a_folder_of_parts_of_different_artifacts_is_not_replaced(tmp_path, capsys):
    for name, bins in (("a", 20), ("b", 30)):
        assert main(discretize(tmp_path / f"{name}.parquet", "ood", 1, bins, families=["poisson"])) == 0
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(artifacts.parts(tmp_path / "a.parquet")[0], folder / "part-0.parquet")
    shutil.copy(artifacts.parts(tmp_path / "b.parquet")[0], folder / "part-1.parquet")
    before = _tree(folder)
    assert main(discretize(folder, "ood", 1, 20, families=["poisson"])) == 2
    assert "is not a calft artifact" in _error(capsys) and _tree(folder) == before


def _write_tables(folder: str, writer: int, count: int) -> None:
    for index in range(count):
        with artifacts.atomic_path(Path(folder) / f"w{writer}-{index}.md", "report") as path:
            path.write_text("table")


def test_concurrent_writers_to_one_folder_keep_every_entry_of_its_manifest(tmp_path):
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_tables, args=(str(tmp_path), w, 60)) for w in range(4)]
    for process in writers:
        process.start()
    for process in writers:
        process.join()
    assert all(process.exitcode == 0 for process in writers)
    listed = json.loads((tmp_path / ".calft-files.json").read_text())
    assert len(listed) == 240 and set(listed.values()) == {"report"}
    artifacts.check_output(tmp_path / "w3-59.md", "report")  # a listed file may be rewritten


def test_overlapping_outputs_are_refused_before_any_work(tmp_path, capsys, work, tiny_model_dir):
    arguments = _train(tiny_model_dir, work / "train.parquet", tmp_path)
    arguments[arguments.index("--checkpoints") + 1] = str(tmp_path / "adapter" / "ckpt")
    assert main(arguments) == 2
    message = _error(capsys)
    assert "--adapter" in message and "--checkpoints" in message and "overlap" in message
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# 4, 5, 8, 11, 19: validation bounds what a job cannot do


@pytest.mark.parametrize(
    "change, message",
    [
        ({"perplexity.slices": ["pydoc_topics", "stdlib_docstrings", "pydoc_topics"]}, "has non-unique elements"),
        ({"perplexity.slices": ["../etc"]}, "perplexity.slices.0: '../etc' does not match"),
        ({"perplexity.slices": ["a/b"]}, "perplexity.slices.0: 'a/b' does not match"),
        ({"perplexity.offline_max_chars": 200}, "perplexity.offline_max_chars: 200 is less than the minimum of 1000"),
        ({"sampling.num_samples": 10**12}, "sampling.num_samples: 1000000000000 is greater than the maximum"),
        ({"sampling.max_new_tokens": 10**9}, "sampling.max_new_tokens: 1000000000 is greater than the maximum"),
        ({"training.hard_epochs": 10**9}, "training.hard_epochs: 1000000000 is greater than the maximum"),
        ({"retention.probe_items": 10**9}, "retention.probe_items: 1000000000 is greater than the maximum"),
        ({"run_models": []}, "run_models: []"),
        ({"ablations.variants": {"d" * 20: {"method": "soft", "decimals": 3}}}, "ends in 20 or more repeats of 'd'"),
        ({"models.smol.tokenizer": "t" * 300}, "is too long"),
        ({"retention.irt_url": "not a url"}, "retention.irt_url: 'not a url' does not match"),
        ({"models.smol.name": "other"}, "models.smol.name: 'other' is not the model's key"),
    ],
)
def test_config_values_no_job_can_run_are_refused_naming_the_key(micro_config, change, message):
    with pytest.raises(ConfigError) as refused:
        validate(micro_config(**change))
    assert message in str(refused.value)


def test_a_model_name_too_long_for_a_file_name_is_refused(micro_config):
    config = micro_config()
    config["models"]["m" * 300] = config["models"]["smol"]
    with pytest.raises(ConfigError, match="is too long"):
        validate(config)


def test_a_duplicate_yaml_key_is_refused_before_any_job(tmp_path, micro_config):
    from calft.config import duplicate_keys

    text = yaml.safe_dump(micro_config(**{"ablations.variants": {"soft-d3": {"method": "soft", "decimals": 3}}}))
    text = text.replace("    soft-d3:\n", "    soft-d3:\n      decimals: 4\n    soft-d3:\n", 1)
    (tmp_path / "config.yaml").write_text(text)
    assert (
        duplicate_keys([tmp_path / "config.yaml"]) and "appears twice" in duplicate_keys([tmp_path / "config.yaml"])[0]
    )
    planned = run_snakemake(
        "-n", "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml"), check=False
    )
    assert (
        planned.returncode != 0 and "the key 'soft-d3' appears twice in one mapping" in planned.stdout + planned.stderr
    )
    assert not (tmp_path / "results").exists()


def test_deep_settings_json_and_non_ascii_digits_are_one_line(tmp_path, capsys):
    deep = '{"model":' + "[" * 3000 + "]" * 3000 + "}"
    assert main(["sample", "--settings", deep, "--model-dir", str(tmp_path), "--targets", "t", "--output", "o"]) == 2
    assert "nested too deeply" in capsys.readouterr().err
    assert (
        main(["build-tries", "--settings", '{"terminator": "x"}', "--targets", "t", "--tokenizer", "k", "--output", "o",
              "--workers", "١٠"])
        == 2
    )  # fmt: skip
    assert "'١٠' is not an integer" in capsys.readouterr().err


def test_a_degenerate_gsm8k_answer_scores_without_an_error():
    from calft.retention.scoring import gsm8k_flexible, normalize_number

    assert normalize_number("1" * 4301) == "1" * 4301
    assert gsm8k_flexible("so the answer is " + "7" * 5000) == "7" * 5000
    assert (
        normalize_number("1,000.50") == "1000.5" and normalize_number("-0") == "0" and normalize_number("2e3") == "2000"
    )


# ---------------------------------------------------------------------------------------------
# 7, 10: a resumed run checks its state


def _tree_value(tree: dict, key: str):
    return next(node for name, node in tree["dict"] if name == key)


def _set_step(state: dict, step) -> None:
    _tree_value(state, "step")["value"] = step


def _drop(key: str):
    def change(state: dict) -> None:
        state["dict"] = [[name, node] for name, node in state["dict"] if name != key]

    return change


def _not_a_tensor(key: str):
    def change(state: dict) -> None:
        node = _tree_value(state, key)
        node.clear()
        node["value"] = 1.5

    return change


def _scheduler_at(step: int):
    def change(state: dict) -> None:
        scheduler = _tree_value(state, "scheduler")
        _tree_value(scheduler, "last_epoch")["value"] = step

    return change


def _tensors(change):
    """A change of the checkpoint's tensors file: `change(tensors)` on its dict of tensors."""

    def apply(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(folder / "tensors.safetensors")
        change(tensors)
        save_file(tensors, folder / "tensors.safetensors")

    return apply


def _adapter_tensor_names(folder: Path) -> list[str]:
    state = json.loads((folder / "state.json").read_text())
    return [node["tensor"] for _, node in _tree_value(state, "adapter")["dict"]]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: _set_step(s, 2), "its training log does not hold exactly steps 1..2"),
        (lambda s: _set_step(s, 10**6), "is at step 1000000, not one of this run's steps 1..2"),
        (lambda s: _set_step(s, -1), "is at step -1"),
        (lambda s: _set_step(s, "1"), "is at step '1'"),
        (_drop("optimizer"), "lacks part of the training state"),
        (_scheduler_at(5), "its learning-rate schedule is not"),
        (_not_a_tensor("rng"), "has no random-generator state"),
        ("nan", "non-finite adapter weights"),
        ("shape", "that this model does not have in that shape"),
        ("optimizer shape", "has optimizer state exp_avg of shape (2, 2)"),
    ],
)  # fmt: skip
def test_a_checkpoint_inconsistent_with_itself_or_the_run_is_one_line_with_the_way_out(
    tmp_path, capsys, work, tiny_model_dir, edit, message
):
    import torch

    run = tmp_path / "run"
    shutil.copytree(work / "trained" / "checkpoints", run / "checkpoints")
    folder = run / "checkpoints"
    if callable(edit):
        state = json.loads((folder / "state.json").read_text())
        edit(state)
        (folder / "state.json").write_text(json.dumps(state))
    elif edit == "nan":
        first = _adapter_tensor_names(folder)[-1]
        _tensors(lambda tensors: tensors[first].fill_(float("nan")))(folder)
    elif edit == "shape":
        first = _adapter_tensor_names(folder)[0]
        _tensors(lambda tensors: tensors.update({first: torch.zeros(3, 3)}))(folder)
    else:
        state = json.loads((folder / "state.json").read_text())
        first_weight = _tree_value(_tree_value(state, "optimizer"), "state")["dict"][0][1]
        moment = _tree_value(first_weight, "exp_avg")["tensor"]
        _tensors(lambda tensors: tensors.update({moment: torch.zeros(2, 2)}))(folder)
    assert main(_train(tiny_model_dir, work / "train.parquet", run)) == 2
    line = _error(capsys)
    assert message in line and "--restart" in line, line
    assert not (run / "adapter").exists()


# ---------------------------------------------------------------------------------------------
# 9, 17, 20: one line instead of a traceback


def test_a_half_copied_weights_file_is_one_line(tmp_path, capsys, work, tiny_model_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    arguments = ["sample", *SAMPLE, "--model-dir", str(model), "--targets", str(work / "ood.parquet")]
    assert main([*arguments, "--output", str(tmp_path / "samples.parquet")]) == 2
    assert "damaged or incomplete" in _error(capsys) and not (tmp_path / "samples.parquet").exists()


def test_fetch_errors_name_the_url_and_the_key(tmp_path, capsys):
    from calft.retention.data import fetch_irt_parameters

    with pytest.raises(UserError, match=r"cannot fetch retention.irt_url not a url"):
        fetch_irt_parameters("not a url", tmp_path / "irt.npz", None)
    with pytest.raises(UserError, match=r"cannot fetch retention.irt_url file:///nowhere/irt.pkl"):
        fetch_irt_parameters("file:///nowhere/irt.pkl", tmp_path / "irt.npz", None)

    upstream = tmp_path / "upstream"
    upstream.mkdir()
    for name in ("curated.jsonl", "wildchat-1k.jsonl"):
        (upstream / name).write_text('{"prompt": "a"}\n' * 5)
    settings = cli_settings(prompts_url=f"file://{upstream}/")
    assert main(["fetch-noveltybench", *settings, "--output", str(tmp_path / "prompts")]) == 2
    line = _error(capsys)
    assert f"file://{upstream}/curated.jsonl has 5 prompts" in line and ".calft-" not in line


def test_provenance_without_config_and_targets_without_a_prompt_id_are_one_line(tmp_path, capsys, work):
    targets = tmp_path / "ood.parquet"
    shutil.copytree(work / "ood.parquet", targets)
    _rewrite(targets, lambda t: t.set_column(0, t.schema.field(0), pa.nulls(t.num_rows, t.schema.field(0).type)))
    arguments = [
        "sample",
        *SAMPLE,
        "--model-dir",
        str(work),
        "--targets",
        str(targets),
        "--output",
        str(tmp_path / "s.parquet"),
    ]
    assert main(arguments) == 2 and "rows without a prompt_id" in _error(capsys)

    scores = tmp_path / "scores.parquet"
    table = pq.read_table(work / "scores.parquet")
    info = json.loads(table.schema.metadata[b"calft"])
    info.pop("config")
    pq.write_table(table.replace_schema_metadata({b"calft": json.dumps(info).encode()}), scores)
    results = tmp_path / "results" / "m" / "base" / "scores"
    results.mkdir(parents=True)
    shutil.copy(scores, results / "ood.parquet")
    for kind in ("logit_kl", "samples"):
        (tmp_path / "results" / "m" / "base" / kind).mkdir()
        shutil.copy(work / f"{kind}.parquet", tmp_path / "results" / "m" / "base" / kind / "ood.parquet")
    report = ["aggregate", *REPORT, "--results", str(tmp_path / "results")]
    assert main([*report, "--tables", str(tmp_path / "t"), "--figures", str(tmp_path / "f")]) == 2
    assert "is not a calft artifact (no readable provenance record)" in _error(capsys)


# ---------------------------------------------------------------------------------------------
# 18: tries and samples keep their invariants


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda t: _set(t, "mass", np.where(t["node"].to_numpy() == 0, 1.0, 0.0)), "do not sum to its own"),
        (lambda t: _set(t, "q", np.where(t["node"].to_numpy() == 0, 1.0, t["q"].to_numpy() * 0 + _first_level_q(t))),
         "not the node's mass over its parent's"),
        (lambda t: _set(t, "token", _same_sibling_tokens(t)), "two children of one node with the same token"),
    ],
)  # fmt: skip
def test_tries_whose_masses_q_or_tokens_contradict_each_other_are_refused(tmp_path, capsys, work, damage, message):
    tries = tmp_path / "tries.parquet"
    shutil.copytree(work / "ood-tries.parquet", tries)
    _rewrite(tries, damage)
    with pytest.raises(UserError, match=message):
        artifacts.read_table(tries, "tries")


def _first_level_q(table: pa.Table) -> np.ndarray:
    """q that still sums to one over every node's children but is no longer mass over parent mass:
    the children of each node share it equally."""
    frame = table.select(["prompt_id", "parent"]).to_pandas().astype({"prompt_id": str})
    return 1.0 / frame.groupby(["prompt_id", "parent"]).parent.transform("size").to_numpy()


def _same_sibling_tokens(table: pa.Table) -> np.ndarray:
    """Every child of a node given its first sibling's token."""
    frame = table.select(["prompt_id", "parent", "token"]).to_pandas()
    frame["prompt_id"] = frame.prompt_id.astype(str)
    first = frame.groupby(["prompt_id", "parent"]).token.transform("first")
    return np.where(frame.parent.to_numpy() >= 0, first.to_numpy(), -1)


def test_samples_marked_valid_outside_their_familys_support_are_refused(tmp_path, capsys, work):
    samples = tmp_path / "samples.parquet"
    shutil.copy(work / "samples.parquet", samples)
    _rewrite(samples, lambda t: _set(_set(t, "valid", np.ones(t.num_rows, bool)), "value", np.full(t.num_rows, -5.0)))
    arguments = ["score", "--samples", str(samples), "--targets", str(work / "ood.parquet")]
    assert main([*arguments, "--output", str(tmp_path / "scores.parquet")]) == 2
    assert "cannot take: the file was changed after sampling" in _error(capsys)


# ---------------------------------------------------------------------------------------------
# 6, 14: text is data


def test_generated_text_is_drawn_as_plain_text(tmp_path):
    from calft.report.figures import figure_open_ended_frequencies

    answers = pd.DataFrame({"prompt_index": [0, 0, 0, 0], "normalized": ["$x^$", "$\\foo$", "$x^$", "a_b"]})
    figure_open_ended_frequencies({"base": answers}, {0: "a $broken^ prompt"}, "m", tmp_path / "figure10.png")
    assert (tmp_path / "figure10.png").stat().st_size > 1000
    import matplotlib.pyplot as plt

    assert plt.rcParams["text.parse_math"]  # only the generated text is plain: a log axis's 10^k labels are math


def test_generated_text_is_escaped_in_markdown_and_neutralized_in_csv(tmp_path):
    from calft.report import novelty_cases
    from calft.report.writers import write_flat_table

    hostile = '<script>alert(1)</script> <img src=x onerror="y"> [link](javascript:z) | *b*'
    table = pd.DataFrame({"variant": ['=HYPERLINK("http://x")', hostile], "smol ood W1": [0.5, 0.25]})
    write_flat_table(tmp_path, "t", table, "title")
    markdown = (tmp_path / "t.md").read_text()
    assert "<script>" not in markdown and "<img" not in markdown and "[link](javascript:" not in markdown
    assert "&lt;script&gt;" in markdown and r"\| \*b\*" in markdown
    cells = pd.read_csv(tmp_path / "t.csv").variant.tolist()
    assert cells[0] == '\'=HYPERLINK("http://x")' and cells[1] == hostile

    case = pd.DataFrame(
        {"case": [1], "method": ["base"], "distinct": [1], "utility": [0.5], "rank": [1], "representative": [hostile],
         "rating": [3], "partition_size": [1], "model": ["m"], "category": [None], "split": ["curated"],
         "prompt_index": [0], "prompt": ["<b>bold</b>"]}
    )  # fmt: skip
    text = novelty_cases.to_markdown(case, next(iter(novelty_cases.REGIMES)))
    assert "<script>" not in text and "<b>" not in text and "&lt;img" in text
