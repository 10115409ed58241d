"""The report: tables from parquet files laid out as the workflow writes them, a missing input named,
and the figures' legends."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from score_frames import scores_frame

from calft import artifacts, layout
from calft.layout import report_inputs
from calft.report import tables as aggregate
from calft.report.settings import ReportSelection


def _artifact(frame: pd.DataFrame, path) -> None:
    """A frame written as the workflow writes artifacts (checksummed pages, provenance), the columns
    of its kind that the test leaves out empty."""
    kind = path.stem
    names = artifacts.KINDS[kind].schema.names
    frame = frame.assign(**{name: None for name in names if name not in frame})[names]
    artifacts.write_frame(frame, path, artifacts.provenance(kind, {}))


def test_table1_and_the_ssot_table_from_parquet(tmp_path):
    for method, unique in (("base", 0.2), ("soft", 0.6), ("hard", 0.5), ("ssot", 0.3)):
        folder = tmp_path / "m" / method / "transfer"
        folder.mkdir(parents=True)
        open_ended = pd.DataFrame(
            {
                "prompt_index": [0, 1],
                "support_size": [2.0, 4.0] if method != "ssot" else [None, None],
                "unique_fraction": [unique, unique + 0.2],
                "unique_fraction_insensitive": unique,
                "samples": 10,
                "empty": [2, 10] if method == "ssot" else 0,  # SSOT's second prompt got no answer
            }
        )
        _artifact(open_ended, folder / "open_ended.parquet")
        if method != "ssot":
            _artifact(
                pd.DataFrame(
                    {"parse_rate": [0.0 if method == "base" else 0.9], "tv": [np.nan if method == "base" else 0.1]}
                ),
                folder / "mcq.parquet",
            )
    selection = ReportSelection.from_dict(
        dict(
            models=["m"],
            methods=["base", "soft", "hard", "ssot"],
            prompt_sets=["ood"],
            evaluations=["open_ended", "mcq"],
        )
    )
    transfer_rows = aggregate.load_transfer(report_inputs(selection, tmp_path))
    table, columns = aggregate.transfer_table(transfer_rows, ["m"])
    assert [c.name for c in columns] == [
        "support_size",
        "unique_fraction",
        "unique_fraction_insensitive",
        "tv",
        "parse_rate",
    ]
    assert table.loc["m", ("unique_fraction", "soft")] == pytest.approx(0.7)
    markdown = aggregate.to_markdown(table, "Table 1", columns)
    assert "| — | 0.100 | 0.100 |" in markdown  # TV missing for base, not 0; no bold between equal values
    summary = pd.DataFrame(
        {
            "prompt_set": "ood",
            "model": "m",
            "method": ["base", "soft", "ssot"],
            "normalized_w1": [1.0, 0.2, np.nan],
            "valid_rate": [0.1, 0.9, 0.5],
        }
    )
    table, columns = aggregate.ssot_table(summary, transfer_rows, "ood", ["m"])
    assert list(table.columns.get_level_values(1)[:3]) == ["base", "soft", "ssot"]
    assert "| m | 1.000 | 0.200 | — | 0.100 | 0.900 | 0.500 | 0.300 | 0.700 | 0.300 |" in aggregate.to_markdown(
        table, "SSOT", columns
    )  # SSOT's unique rate over its one answered prompt, not (0.3 + 0.5) / 2; no intervals: no bold
    ssot = tmp_path / "m" / "ssot" / "transfer" / "open_ended.parquet"
    _artifact(pd.read_parquet(ssot).assign(empty=10, unique_fraction=0.0), ssot)  # no answer anywhere
    rows = aggregate.load_transfer(report_inputs(selection, tmp_path)).set_index("method")
    assert np.isnan(rows.loc["ssot", "unique_fraction"]) and rows.loc["soft", "unique_fraction"] == pytest.approx(0.7)


def test_table2_averages_gp_irt_over_the_task_rows_and_pools_perplexity(tmp_path):
    for method, shift in (("base", 0.0), ("soft", 0.1)):
        folder = tmp_path / "m" / method
        folder.mkdir(parents=True)
        tasks = pd.DataFrame(
            {
                "task": ["mmlu", "gsm8k", "gsm8k"],
                "kind": ["mmlu", "gsm8k", "gsm8k"],
                "metric": ["acc", "strict", "flexible"],
                "items": 100,
                "accuracy": [0.5, 0.2, 0.3],
                "irt": 0.0,
                "pirt": 0.0,
                "gpirt": [0.6 + shift, 0.1 + shift, 0.2 + shift],
            }
        )
        _artifact(tasks, folder / "retention.parquet")
        slices = pd.DataFrame(
            {
                "slice": ["a", "all"],
                "documents": 1,
                "tokens": 10,
                "bytes": 40,
                "nll": [20.0, 20.0 + shift],
                "perplexity": [np.exp(2.0), np.exp((20 + shift) / 10)],
                "bits_per_byte": 0.5,
            }
        )
        _artifact(slices, folder / "perplexity.parquet")
    inputs = report_inputs(
        ReportSelection.from_dict(
            dict(models=["m"], methods=["base", "soft"], prompt_sets=["ood"], evaluations=["retention", "perplexity"])
        ),
        tmp_path,
    )
    retention_rows = aggregate.load_retention(inputs)
    table, columns = aggregate.table2(retention_rows, aggregate.load_perplexity(inputs), ["m"])
    assert [c.label for c in columns] == ["gp-IRT", "PALOMA ppl"]
    assert table.loc["m", ("retention", "base")] == pytest.approx(0.3)
    assert table.loc["m", ("retention", "soft")] == pytest.approx(0.4)
    assert math.isnan(table.loc["m", ("retention", "hard")])
    markdown = aggregate.to_markdown(table, "Table 2", columns)
    # lm-eval's stderr sqrt(p(1-p)/(n-1)) of 0.5, 0.2, 0.3 on 100 items, x1.96, in quadrature over 3 tasks:
    # +-0.0517; the two methods' intervals overlap and perplexity has none, so nothing is bold
    assert r"| m | 0.300 \[0.248, 0.352\] | 0.400 \[0.348, 0.452\] | — | 7.389 | 7.463 | — |" in markdown
    tasks, columns = aggregate.task_table(retention_rows, ["m"])
    assert [c.label for c in columns] == ["gp-IRT", "accuracy"]
    assert list(tasks.index) == [("m", "mmlu"), ("m", "gsm8k strict"), ("m", "gsm8k flexible")]


def test_retention_one_item_apart_out_of_24_is_never_bold(tmp_path):
    """Two methods one item apart out of 24 (20/24 against 21/24): lm-eval's stderrs overlap."""
    for method, correct in (("base", 20), ("soft", 21)):
        folder = tmp_path / "m" / method
        folder.mkdir(parents=True)
        task = {"task": "mmlu", "kind": "mmlu", "metric": "acc", "items": 24, "accuracy": correct / 24}
        _artifact(pd.DataFrame([task]).assign(irt=np.nan, pirt=np.nan, gpirt=np.nan), folder / "retention.parquet")
    selection = dict(models=["m"], methods=["base", "soft"], prompt_sets=["ood"], evaluations=["retention"])
    retention = aggregate.load_retention(report_inputs(ReportSelection.from_dict(selection), tmp_path))
    half = 1.959964 * math.sqrt(21 / 24 * 3 / 24 / 23)
    assert retention.set_index("method").accuracy_low["soft"] == pytest.approx(21 / 24 - half)
    table, columns = aggregate.table2(retention, None, ["m"])
    assert "| **" not in aggregate.to_markdown(table, "Table 2", columns)
    table, columns = aggregate.task_table(retention, ["m"])
    assert "| **" not in aggregate.to_markdown(table, "Table 21", columns)
    far = retention.assign(accuracy_low=[0.1, 0.8], accuracy_high=[0.2, 0.9])  # separated: soft bold
    table, columns = aggregate.task_table(far, ["m"])
    assert "**0.875" in aggregate.to_markdown(table, "Table 21", columns)


def _scores(path, w1: list[float], reference=(5, 16384), loaded=None) -> None:
    """A scores artifact of two families (two prompts each) measured against `reference`, of samples
    of a model `loaded` from a hub snapshot (model id, commit) or a folder (None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = scores_frame(w1, samples=10)
    decimals, max_bins = reference
    artifacts.write_frame(
        frame,
        path,
        artifacts.provenance(
            "scores",
            {
                "reference": {"prompt_set": "ood", "decimals": decimals, "max_bins": max_bins},
                "samples": {
                    "model": {"loaded": dict(zip(["model_id", "commit"], loaded)) if loaded else {"folder": "m"}}
                },
            },
        ),
    )


def _train_log(path, decimals: int, max_bins: int = 1001, epochs: int = 3) -> None:
    """A soft run's training log of one step, recording the settings it was trained with."""
    artifacts.write_frame(
        pd.DataFrame({"step": [1], "epoch": [0], "loss": [1.0], "lr": [1e-4], "examples": [8], "tokens": [80],
                      "seconds": [0.5], "grad_norm": [0.1]}),
        path,
        artifacts.provenance(
            "train_log",
            {"method": "soft", "training": {"soft_epochs": epochs, "soft_paths_per_prompt_per_epoch": 1,
                                           "soft_group_size": 1, "soft_tau": 1.0, "soft_epsilon": 1e-8},
             "targets": {"prompt_set": "train", "decimals": decimals, "max_bins": max_bins}},
        ),
    )  # fmt: skip


def _ablation_selection(**changes):
    from calft.report.settings import AblationSelection

    run = dict(method="soft", models=["m1", "m2"], max_bins=1001, draws_per_prompt=1, epochs=3)
    return AblationSelection.from_dict(
        dict(
            models=["m1", "m2"],
            prompt_sets=["ood"],
            runs=[run | dict(variant="", decimals=5), run | dict(variant="d3", decimals=3)],
        )
        | changes
    )


def test_the_ablation_tables_mark_the_final_row_and_the_best_per_model_and_split(tmp_path):
    from calft.report.commands import aggregate_ablations

    results = tmp_path / "results"
    per_run = {
        ("m1", ""): [0.2, 0.4, 0.1, 0.1],
        ("m1", "d3"): [0.5, 0.5, 0.3, 0.3],  # family medians 0.2, 0.4
        ("m2", ""): [0.9, 0.9, 0.7, 0.7],
        ("m2", "d3"): [0.1, 0.1, 0.3, 0.3],
    }  # 0.8, 0.2
    for (model, variant), w1 in per_run.items():
        run = results / model / ("soft~" + variant if variant else "soft")
        _scores(run / "scores" / "ood.parquet", w1, reference=(5, 100))
        _train_log(run / "train_log.parquet", decimals=3 if variant else 5)
    calft = pd.DataFrame(
        {
            "algorithm": "calft",
            "decimals": [2, 2, 2, 5, 5, 5],
            "max_bins": 100,
            "prompt_id": ["p", "q", "r"] * 2,
            "family": "a",
            "outputs": [10, 20, 30, 30, 50, 70],
            "trie_nodes": [40, 60, 80, 90, 110, 130],
            "space_seconds": [0.001, 0.003, 0.008, 0.002, 0.004, 0.009],  # means 4 and 5 ms, medians 3 and 4
            "space_peak_bytes": [2**20, 2**21, 3 * 2**19, 2**20, 3 * 2**20, 2**21],
            "trie_seconds": 0.01,
            "trie_peak_bytes": 2**20,
        }
    )
    reference = calft.assign(
        algorithm="reference",
        trie_nodes=calft.trie_nodes - calft.outputs,
        space_seconds=[0.01, 0.05, 0.06, 0.5, 0.7, 1.8],
        space_peak_bytes=[2**21, 2**22, 3 * 2**20, 100 * 2**20, 300 * 2**20, 200 * 2**20],
        trie_seconds=0.04,
    )
    artifacts.write_frame(
        pd.concat([reference, calft], ignore_index=True),
        tmp_path / "cost.parquet",
        artifacts.provenance(
            "construction_cost",
            {
                "reference": {"decimals": 5, "max_bins": 100},
                "construction_cost": {"prompt_set": "probe", "tokenizer": "characters"},
            },
        ),
    )
    aggregate_ablations(
        _ablation_selection(), str(results), str(tmp_path / "cost.parquet"), None, str(tmp_path / "out")
    )

    table25 = pd.read_csv(tmp_path / "out" / "table25_soft_ablation.csv")
    assert list(table25.variant) == ["final", "d3"] and list(table25.d) == [5, 3]
    assert list(table25["m1 ood W1"]) == pytest.approx([0.2, 0.4]) and list(table25["m2 ood W1"]) == pytest.approx(
        [0.8, 0.2]
    )
    markdown = (tmp_path / "out" / "table25_soft_ablation.md").read_text()
    assert "| final ★ | 5 | 1001 | 1 | 3 | 3 | **0.2** | 0.8 |" in markdown
    assert "| d3 | 3 | 1001 | 1 | 3 | 3 | 0.4 | **0.2** |" in markdown
    assert "against the evaluation reference d=5, 100 bins" in markdown
    table24 = pd.read_csv(tmp_path / "out" / "table24_construction_cost.csv")
    assert list(table24["mean trie nodes"]) == [60, 110]  # calft's trie: the reference's prefixes and the leaves
    assert list(table24["output space ms/prompt: calft"]) == pytest.approx([4.0, 5.0])
    assert list(table24["output space ms/prompt: reference"]) == pytest.approx([40.0, 1000.0])
    assert list(table24["output space ms/prompt: reference/calft"]) == pytest.approx([10.0, 200.0])
    assert list(table24["output space peak MiB: calft"]) == pytest.approx([2.0, 3.0])  # the worst prompt
    assert list(table24["output space peak MiB: reference"]) == pytest.approx([4.0, 300.0])
    assert list(table24["trie ms/prompt: reference/calft"]) == pytest.approx([4.0, 4.0])
    assert (
        "the 'probe' prompts, one token per character"
        in (tmp_path / "out" / "table24_construction_cost.md").read_text()
    )
    assert list(table24.row.fillna("")) == ["", "evaluation reference"]
    assert not (tmp_path / "out" / "table26_hard_ablation.csv").exists()  # no hard variants, no Table 26


def test_numbers_measured_against_different_references_never_share_a_table(tmp_path):
    from calft.errors import UserError

    results = tmp_path / "results"
    _scores(results / "m1" / "soft" / "scores" / "ood.parquet", [0.1] * 4)
    _scores(results / "m1" / "soft~d3" / "scores" / "ood.parquet", [0.1] * 4, reference=(3, 1001))
    inputs = layout.ablation_inputs(
        _ablation_selection(
            models=["m1"],
            runs=[
                dict(method="soft", variant=v, models=["m1"], decimals=d, max_bins=1001, draws_per_prompt=1, epochs=3)
                for v, d in (("", 5), ("d3", 3))
            ],
        ),
        results,
    )
    with pytest.raises(UserError, match="measured against the reference d=5, 16384 bins but .* against d=3, 1001 bins"):
        aggregate.load(inputs)


def test_results_of_two_snapshots_of_one_model_never_share_a_table(tmp_path):
    from calft.errors import UserError

    results = tmp_path / "results"
    selection = ReportSelection.from_dict(dict(models=["m1", "m2"], methods=["base", "soft"], prompt_sets=["ood"]))
    commits = {("m1", "base"): "a" * 40, ("m1", "soft"): "a" * 40, ("m2", "base"): "c" * 40, ("m2", "soft"): "c" * 40}
    for (model, method), commit in commits.items():
        _scores(results / model / method / "scores" / "ood.parquet", [0.1] * 4, loaded=(f"acme/{model}", commit))
    scores = {"scores": report_inputs(selection, results)["scores"]}
    aggregate.check_one_snapshot(scores)  # one commit per model: fine
    _scores(results / "m1" / "soft" / "scores" / "ood.parquet", [0.1] * 4, loaded=("acme/m1", "b" * 40))
    with pytest.raises(UserError, match=f"computed with acme/m1 at commit {'a' * 40} but .*soft.* at {'b' * 40}"):
        aggregate.check_one_snapshot(scores)


def test_table10_noveltybench_per_split_and_the_model_means_of_tables_21_and_23(tmp_path):
    for model, shift in (("m1", 0.0), ("m2", 1.0)):
        for method in ("base", "soft"):
            folder = tmp_path / model / method / "transfer"
            folder.mkdir(parents=True)
            gain = 1.0 if method == "soft" else 0.0
            _artifact(
                pd.DataFrame(
                    {
                        "split": ["curated", "wildchat", "all"],
                        "prompts": [10, 20, 30],
                        "mean_distinct": [2 + shift + gain, 3 + shift, 2.5 + shift],
                        "mean_utility": [0.1, 0.2, 0.15],
                    }
                ),
                folder / "noveltybench.parquet",
            )
    selection = ReportSelection.from_dict(
        dict(models=["m1", "m2"], methods=["base", "soft"], prompt_sets=["ood"], evaluations=["noveltybench"])
    )
    novelty = aggregate.load_noveltybench(report_inputs(selection, tmp_path))
    table, columns = aggregate.noveltybench_split_table(novelty, ["m1", "m2"])
    assert list(table.index)[:3] == [("all models", "curated"), ("all models", "wildchat"), ("all models", "all")]
    assert table.loc[("all models", "curated"), ("mean_distinct", "soft")] == pytest.approx(3.5)  # (3 + 4) / 2
    assert table.loc[("m2", "curated"), ("mean_distinct", "base")] == pytest.approx(3.0)
    assert math.isnan(table.loc[("m1", "all"), ("mean_distinct", "hard")])
    slices = pd.DataFrame(
        {
            "slice": ["a", "a", "all", "a"],
            "model": ["m1", "m2", "m1", "m1"],
            "method": ["base", "base", "base", "soft"],
            "perplexity": [10.0, 20.0, 12.0, 8.0],
            "bits_per_byte": [1.0, 2.0, 1.2, 0.8],
        }
    )
    table, _ = aggregate.model_mean_table(slices, "slice", [aggregate.Column("perplexity", "perplexity", "min")])
    assert (
        table.loc["a", ("perplexity", "base")] == pytest.approx(15.0) and table.loc["a", ("perplexity", "soft")] == 8.0
    )


NOVELTY_RUNS = {  # (model, split, prompt): method -> (partition ids, ratings) of its four generations
    ("m1", "curated", 0): {
        "base": ([0, 0, 0, 0], [5] * 4),
        "soft": ([0, 1, 2, 3], [3, 9, 9, 5]),
        "hard": ([0, 1, 1, 1], [5] * 4),
    },
    ("m1", "curated", 1): {
        "base": ([0, 1, 2, 3], [8] * 4),
        "soft": ([0, 0, 0, 0], [8] * 4),
        "hard": ([0, 0, 1, 1], [8] * 4),
    },
    ("m2", "curated", 0): {
        "base": ([0, 0, 0, 0], [4] * 4),
        "soft": ([0, 1, 0, 1], [4] * 4),
        "hard": ([0, 1, 2, 3], [6] * 4),
    },
    ("m2", "curated", 1): {method: ([0, 1, 2, 3], [5] * 4) for method in ("base", "soft", "hard")},
    ("m1", "wildchat", 0): {
        "base": ([0, 0, 0, 0], [1] * 4),
        "soft": ([0, 1, 2, 3], [10] * 4),
        "hard": ([0, 0, 0, 0], [1] * 4),
    },
}


def test_tables_11_to_19_rank_curated_prompts_by_utility_deltas_and_show_the_best_partitions(tmp_path):
    from calft.report import items, novelty_cases, writers
    from calft.transfer.metrics import novelty_utility

    frames = {}
    for (model, split, index), runs in NOVELTY_RUNS.items():
        for method, (partitions, ratings) in runs.items():
            frames.setdefault((model, method), []).append(
                pd.DataFrame(
                    {
                        "split": split,
                        "prompt_index": index,
                        "category": "Creativity" if split == "curated" else None,
                        "prompt": f"Name a {split} thing {index} | with a pipe",
                        "generation": range(4),
                        "text": [f"{model} {method} answer {g}" for g in range(4)],
                        "partition": partitions,
                        "representative": ~pd.Series(partitions).duplicated(),
                        "rating": ratings,
                    }
                )
            )
    selection = ReportSelection.from_dict(
        dict(models=["m1", "m2"], methods=["base", "soft", "hard"], prompt_sets=["ood"], evaluations=["noveltybench"])
    )
    inputs = report_inputs(selection, tmp_path)
    for key, path in inputs["noveltybench_generations"].items():
        path.parent.mkdir(parents=True)
        frame = pd.concat(frames[key], ignore_index=True)
        names = artifacts.KINDS["noveltybench_generations"].schema.names
        frame = frame.assign(**{name: 0 for name in names if name not in frame})[names]
        artifacts.write_frame(
            frame,
            path,
            artifacts.provenance("noveltybench", {"settings": {"patience": 0.8}})
            | {"artifact": "noveltybench_generations"},
        )

    report = writers.Report(selection, tmp_path, None, tmp_path, tmp_path)
    for item in items.ITEMS:
        if item.writer == "novelty_cases" and item.files(selection):
            item.write(report)
    generations = pd.concat([pd.concat(f).assign(model=m, method=k) for (m, k), f in frames.items()])
    scores = novelty_cases.prompt_scores(generations, {key: 0.8 for key in frames})
    soft = scores.set_index(["model", "method", "split", "prompt_index"]).utility
    assert soft["m1", "soft", "curated", 0] == pytest.approx(novelty_utility(np.array([3, 9, 9, 5]), [0, 1, 2, 3]))
    assert novelty_cases.choose_cases(scores, "soft_helps") == [("m1", "curated", 0), ("m2", "curated", 0)]
    assert novelty_cases.choose_cases(scores, "hard_best") == [
        ("m2", "curated", 0),
        ("m2", "curated", 1),
    ]  # a tie counts
    assert novelty_cases.choose_cases(scores, "failures") == [("m1", "curated", 1)]  # wildchat's gap is not curated

    cases = pd.read_csv(tmp_path / "table11_13_noveltybench_soft_helps.csv")
    first = cases[(cases.case == 1) & (cases.method == "soft")]
    assert first["representative"].tolist() == [f"m1 soft answer {g}" for g in (1, 2, 3, 0)]  # by rating, then order
    assert first.rating.tolist() == [9, 9, 5, 3] and (first.distinct == 4).all()
    base = cases[(cases.case == 1) & (cases.method == "base")]
    assert base.partition_size.tolist() == [4] and base["rank"].tolist() == [1]
    markdown = (tmp_path / "table11_13_noveltybench_soft_helps.md").read_text()
    assert "*Table 11: m1 (Creativity), curated prompt 0. Prompt: Name a curated thing 0 \\| with a pipe*" in markdown
    assert "Table 12: m2" in markdown and "Table 13" not in markdown
    assert "| 1 | m1 base answer 0 (rating 5, ×4) | m1 soft answer 1 (rating 9, ×1) |" in markdown
    latex = (tmp_path / "table14_16_noveltybench_hard_best.tex").read_text()
    assert r"Name a curated thing 0 | with a pipe" in latex and latex.count(r"\begin{table}") == 2
    assert "Table 17: m1" in (tmp_path / "table17_19_noveltybench_failures.md").read_text()
    assert {path.name for path in items.report_outputs(selection, "tables", "figures")} >= {
        f"{name}.{suffix}"
        for name in items.novelty_case_tables(selection.methods).values()
        for suffix in ("csv", "md", "tex")
    }


def test_per_distribution_figures_take_the_median_and_keep_a_huge_base_value_off_the_axis(tmp_path):
    from calft.report import figures

    rows = pd.DataFrame(
        {
            "prompt_set": "ood",
            "model": "m",
            "family": "skellam",
            "prompt_id": ["p1", "p2", "p3"] * 3,
            "method": ["base"] * 3 + ["soft"] * 3 + ["hard"] * 3,
            "normalized_w1": [1e30, 2e30, 3e30, 0.1, 0.2, 0.9, 0.05, np.nan, np.nan],
        }
    )
    values = figures.per_family_values(rows, "ood", "normalized_w1").set_index("method").normalized_w1
    assert values["soft"] == pytest.approx(0.2) and values["hard"] == pytest.approx(0.05)  # NaN prompts skipped
    low, high = figures._clipped_axis(values, values.drop("base"), log=True)
    assert low < 0.05 and 0.2 < high < 10  # the axis is the fine-tuned range, not 1e-2 to 1e30
    figures.figure_per_family(rows, "ood", "normalized_w1", tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 5000


def test_panel_figures_name_families_as_the_paper_does_and_promise_labels_only_on_log_axes(monkeypatch, tmp_path):
    from calft.report import figures

    drawn = []
    monkeypatch.setattr(figures, "finish", lambda fig, path, title, handles: drawn.append((fig, title)))
    rows = pd.DataFrame(
        {
            "prompt_set": "ood",
            "model": "m",
            "family": ["f_distribution", "negative_binomial"] * 3,
            "prompt_id": ["p1", "p2"] * 3,
            "method": ["base"] * 2 + ["soft"] * 2 + ["hard"] * 2,
            "normalized_w1": [3.0, 2.0, 0.1, 0.2, 0.3, 0.4],
        }
    )
    figures.figure_per_family(rows, "ood", "normalized_w1", tmp_path / "f.png")
    values = pd.DataFrame({"panel": "mmlu", "model": "m", "method": ["base", "soft", "hard"], "value": [0.2, 0.3, 9]})
    figures.figure_panels(values, "accuracy", "Retention per task", False, tmp_path / "g.png")
    (per_family, per_family_title), (_, linear_title) = drawn
    assert [ax.get_title() for ax in per_family.axes[:2]] == ["F-Distribution", "Negative Binomial"]
    assert "printed on its bar" in per_family_title and "printed on its bar" not in linear_title


def test_hyperparameter_and_cost_tables_come_from_the_training_records_and_benchmark_files(tmp_path):
    from calft.report import appendix

    def record(lora_r: int, device: dict | None) -> dict:
        training = {key: 1 for key in appendix.SHARED} | {
            "lora_r": lora_r,
            "lora_target_modules": ["q_proj", "v_proj"],
            "soft_epochs": 3,
            "hard_epochs": 2,
            "soft_group_size": 1,
            "hard_group_size": 4,
            "soft_paths_per_prompt_per_epoch": 1,
            "hard_samples_per_prompt_per_epoch": 16,
            "soft_tau": 1.0,
            "soft_epsilon": 1e-8,
        }
        targets = {"decimals": 5, "max_bins": 1001, "quantile_low": 0.001, "quantile_high": 0.999, "per_family": None}
        optimization = {"optimizer": "AdamW", "schedule": "cosine with linear warm-up", "longest_prompt_tokens": 41}
        optimization["warmup_steps"] = 59 if lora_r == 16 and device is None else 5
        return {"training": training, "targets": targets, "model": {"dtype": "bfloat16"}} | (
            {"device": device, "optimization": optimization} if device else {"optimization": optimization}
        )

    a100 = {"type": "cuda", "name": "NVIDIA A100", "processes": 4}
    records = {("m1", "soft"): record(16, a100), ("m2", "soft"): record(8, a100), ("m1", "hard"): record(16, None)}
    steps = {("m1", "soft"): 189, ("m2", "soft"): 189, ("m1", "hard"): 1988}
    shared, specific = appendix.hyperparameter_tables(records, steps)
    shared = shared.set_index("hyperparameter").value
    assert shared["lora_r"] == "16 / 8" and shared["lora_target_modules"] == "q_proj, v_proj"  # the models differ
    assert shared["quantile interval"] == "[0.001, 0.999]" and shared["precision"] == "bfloat16"
    assert shared["hardware"] == "4 x NVIDIA A100 / not recorded"
    assert shared["training prompts per family"] == "all (the paper's grid)"
    assert specific.set_index("hyperparameter").loc["epochs"].to_dict() == {"soft": "3", "hard": "2"}
    assert specific.set_index("hyperparameter").loc["optimizer steps"].to_dict() == {"soft": "189", "hard": "1988"}
    assert specific.set_index("hyperparameter").loc["warm-up steps"].to_dict() == {"soft": "5", "hard": "59"}
    assert (shared["optimizer"], shared["learning-rate schedule"]) == ("AdamW", "cosine with linear warm-up")
    assert shared["maximum length"] == "no truncation (longest prompt 41 tokens)"
    logs = {key: (pd.DataFrame({"seconds": [30.0, 90.0 * (i + 1)]}), r) for i, (key, r) in enumerate(records.items())}
    cost = appendix.training_cost(logs).set_index("method")
    assert cost.loc["soft", "min_minutes"] == 2.0 and cost.loc["soft", "max_minutes"] == 3.5
    assert cost.loc["soft", "gpu_hours"] == pytest.approx((2.0 + 3.5) * 4 / 60, abs=1e-3)
    assert np.isnan(cost.loc["hard", "gpu_hours"]) and "not recorded" in cost.loc["hard", "devices"]  # not 0
    for rule, seconds in (("sample/m/base/ood", 10.0), ("sample/m/soft/ood", 26.0), ("score/m/base/ood", 1.0)):
        path = tmp_path / "benchmarks" / f"{rule}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\tcpu_time\n{seconds}\t0:00:10\t1.0\t{seconds / 2}\n")
    stages = appendix.stage_wallclock(tmp_path / "benchmarks").set_index("stage")
    assert stages.loc["sample", "jobs"] == 2 and stages.loc["sample", "wall_hours"] == pytest.approx(
        36 / 3600, abs=1e-4
    )


def test_figure_14_colours_decimals_apart_from_every_method_colour():
    """Figure 14's series sit beside base, soft, hard and SSOT in the reader's mind: no decimals colour
    may pass for a method's (at least 85 apart in RGB)."""
    from calft.methods import METHODS
    from calft.report.commands import DECIMALS_PALETTE

    def rgb(colour: str) -> np.ndarray:
        return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)

    gaps = [np.linalg.norm(rgb(a) - rgb(m.color)) for a in DECIMALS_PALETTE for m in METHODS.values()]
    assert min(gaps) >= 85


def test_ood_sample_panels_name_the_law_and_count_each_series_samples(monkeypatch, tmp_path):
    from calft.report import figures

    drawn = []
    monkeypatch.setattr(figures, "finish", lambda fig, path, title, handles: drawn.append(fig))
    targets = pd.DataFrame({"prompt_id": ["g"], "family": ["gaussian"], "params": ['{"mu": 0, "sigma": 1}']})
    soft = pd.DataFrame({"prompt_id": "g", "valid": [True] * 4 + [False], "value": [0.1, -0.5, 0.3, 40.0, np.nan]})
    ssot = soft.assign(valid=False)
    figures.figure_ood_samples({"soft": soft, "ssot": ssot}, targets, "t", tmp_path / "f.png")
    (ax, *_) = drawn[0].axes
    assert ax.get_title() == "Gaussian(mu=0, sigma=1)" and ax.get_ylabel() == "density"
    assert [text.get_text() for text in ax.texts] == ["soft: 4 valid, 1 off the axis", "ssot: 0 valid"]


def test_figure_2_puts_the_held_out_families_left_and_hatches_an_undefined_value(monkeypatch, tmp_path):
    from calft.report import figures
    from calft.report.tables import SET_TITLES

    drawn = []
    monkeypatch.setattr(figures, "finish", lambda fig, path, title, handles: drawn.append((fig, handles)))
    summary = pd.DataFrame(
        {
            "prompt_set": ["unseen"] * 3 + ["ood"] * 3,
            "model": "m",
            "method": ["base", "soft", "hard"] * 2,
            "normalized_w1": [0.5, 0.2, 0.3, np.nan, 0.4, 0.6],
        }
    )
    figures.figure_family_median(summary, ["unseen", "ood"], tmp_path / "f.png")
    fig, handles = drawn[0]
    ood, unseen = fig.axes[:2]
    assert [ood.get_title(), unseen.get_title()] == [SET_TITLES["ood"], SET_TITLES["unseen"]]
    assert [bar.get_hatch() for bar in ood.patches] == [figures.UNDEFINED_HATCH, None, None]  # base, soft, hard
    assert [bar.get_hatch() for bar in unseen.patches] == [None, None, None]
    assert handles[-1].get_label() == "undefined (no finite value)"


def test_figure_10_shows_the_paper_s_labels_and_every_method_s_answers_under_ties():
    """The paper: each state's top 10, their union ranked by peak then total share, the top 15."""
    from calft.report.figures import displayed_answers

    base = pd.Series({"a": 0.8, "b": 0.1, "c": 0.1})
    soft = pd.Series({"d": 0.4, "a": 0.3, "e": 0.3})
    assert displayed_answers({"base": base, "soft": soft}) == ["a", "d", "e", "b", "c"]
    assert displayed_answers({"base": base, "soft": soft}, per_method=2) == ["a", "d", "b"]  # e is not soft's top 2
    assert displayed_answers({"base": base, "soft": soft}, shown=2) == ["a", "d"]
    tied = {m: pd.Series({f"{m}{i}": 1 / 3 for i in range(3)} | {"": 0.0}) for m in ("base", "soft", "hard")}
    assert displayed_answers(tied, shown=4) == ["base0", "soft0", "hard0", "base1"]  # round the methods, no ''


def test_table_5_gives_each_family_its_tier_and_marks_the_held_out_ones():
    from calft.report.appendix import families_table

    table = families_table().set_index("id")
    assert set(table.index[table.tier == "I"]) == {"uniform", "gaussian", "bernoulli"}  # the reference's tier I
    assert table.loc["cauchy", "tier"] == "III" and table.loc["poisson", "split"] == "held out (OOD)"


def test_the_training_curves_draw_each_log_and_leave_a_log_without_gradient_norms_out_of_that_panel(tmp_path):
    from calft.report.figures import figure_training_curves, panel_curves

    logs = {
        ("a", "soft"): pd.DataFrame({"step": [1, 2, 3], "loss": [2.0, 1.5, 1.0], "grad_norm": [3.0, 2.0, 1.0]}),
        ("b", "soft"): pd.DataFrame({"step": [1, 2, 3], "loss": [2.5, 2.0, 1.8], "grad_norm": np.nan}),  # logged before
        ("a", "hard"): pd.DataFrame({"step": [1, 2], "loss": [3.0, 2.0], "grad_norm": [1.0, 0.5]}),
    }
    assert list(panel_curves(logs, "soft", "loss")) == ["a", "b"]
    assert list(panel_curves(logs, "soft", "grad_norm")) == ["a"]
    assert panel_curves(logs, "hard", "grad_norm")["a"].to_dict() == {1: 1.0, 2: 0.5}  # by optimizer step
    figure_training_curves(logs, {"a": "fa", "b": "fb"}, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
