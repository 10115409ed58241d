"""Retention: TinyBenchmarks through lm-evaluation-harness, with gp-IRT (reference spec §13).

Tasks are declared below as lm-eval task configs, one per task kind, and pointed at local parquet
files (`<data_dir>/<task>.parquet`, the test split). Every kind prompts with the dataset's
`input_formatted` field (tinyBenchmarks' few-shot leaderboard prompt), rendered through the chat
template. The suites and their tasks are declared in `calft.retention.suites`.

Answer choices (`choice_format`): `reference` scores them as the reference does, with a space before
each one unless the prompt already ends in whitespace (" A", " " + ending); `chat` scores them bare,
as a chat model begins its answer (lm-eval's convention under chat templates).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from calft.retention.scoring import (
    clean_hellaswag,
    gsm8k_scores,
    hellaswag_scores,
    spaced,
    truthfulqa_mc2,
    winogrande_continuation,
    winogrande_gold,
    winogrande_options,
)
from calft.retention.settings import Retention
from calft.retention.suites import SUITES

GSM8K_STOP = ["Question:", "</s>", "<|im_end|>"]


# ---------------------------------------------------------------------------------------------
# lm-eval's view of the documents (the scores are in calft.retention.scoring)


def _hellaswag_docs(dataset):
    return dataset.map(lambda doc: {"gold": int(doc["label"])})


def _choices(kind: str, choice_format: str):
    """doc -> the answer choices (winogrande: the continuation) as `choice_format` scores them; None
    for a kind without choices."""
    bare = {
        "mmlu": lambda doc: ["A", "B", "C", "D"],
        "hellaswag": lambda doc: [clean_hellaswag(e) for e in doc["endings"]],
        "truthfulqa": lambda doc: list(doc["mc2_targets"]["choices"]),
        "winogrande": winogrande_continuation,
    }.get(kind)
    if bare is None or choice_format == "chat":
        return bare
    if kind == "winogrande":
        return lambda doc: spaced(winogrande_options(doc)[0], bare(doc))
    return lambda doc: [spaced(doc["input_formatted"], choice) for choice in bare(doc)]


# ---------------------------------------------------------------------------------------------
# Task declarations


def task_config(name: str, kind: str, data_file: Path, max_gen_toks: int, choice_format: str = "reference") -> dict:
    """The lm-eval task config of one task of the given kind over a local parquet file."""
    common = {
        "task": f"calft_{name}",
        "dataset_path": "parquet",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        "test_split": "test",
        "num_fewshot": 0,
        "doc_to_text": "{{input_formatted}}",
        "metadata": {"version": 1},
    }
    accuracy = [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]
    kinds = {
        "mmlu": {
            "output_type": "multiple_choice",
            "doc_to_choice": _choices(kind, choice_format),
            "doc_to_target": "answer",
            "metric_list": accuracy,
        },
        "hellaswag": {
            "output_type": "multiple_choice",
            "process_docs": _hellaswag_docs,
            "doc_to_choice": _choices(kind, choice_format),
            "doc_to_target": "gold",
            "process_results": hellaswag_scores,
            "metric_list": [{"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        },
        "truthfulqa": {
            "output_type": "multiple_choice",
            "doc_to_choice": _choices(kind, choice_format),
            "doc_to_target": 0,
            "process_results": truthfulqa_mc2,
            "metric_list": accuracy,
        },
        "winogrande": {
            "output_type": "multiple_choice",
            "doc_to_text": winogrande_gold,
            "doc_to_choice": winogrande_options,
            "doc_to_target": _choices(kind, choice_format),
            "metric_list": accuracy,
        },
        "gsm8k": {
            "output_type": "generate_until",
            "doc_to_target": "{{answer}}",
            "generation_kwargs": {
                "until": GSM8K_STOP,
                "do_sample": False,
                "temperature": 0.0,
                "max_gen_toks": max_gen_toks,
            },
            "process_results": gsm8k_scores,
            "metric_list": [
                {"metric": m, "aggregation": "mean", "higher_is_better": True} for m in ("strict", "flexible")
            ],
        },
    }
    return common | kinds[kind]


def metric_names(kind: str) -> list[str]:
    return {"hellaswag": ["acc_norm"], "gsm8k": ["strict", "flexible"]}.get(kind, ["acc"])


# ---------------------------------------------------------------------------------------------
# Running


def evaluate_tasks(lm, data_dir: Path, settings: Retention) -> pd.DataFrame:
    """Per-example scores of every task of the suite: task, kind, metric, doc_id, score, and the
    model's answer (generated text, or the choice log-likelihoods)."""
    from calft.retention.harness import evaluate_own_tasks

    tasks = SUITES[settings.suite]
    configs = [
        task_config(name, kind, Path(data_dir) / f"{name}.parquet", settings.max_gen_toks, settings.choice_format)
        for name, kind in tasks.items()
    ]
    output = evaluate_own_tasks(
        lm,
        configs,
        limit=settings.limit,
        log_samples=True,
        apply_chat_template=settings.apply_chat_template,
        bootstrap_iters=0,
        random_seed=settings.seed,
        numpy_random_seed=settings.seed,
        torch_random_seed=settings.seed,
        fewshot_random_seed=settings.seed,
    )
    rows = []
    for name, kind in tasks.items():
        for sample in output["samples"][f"calft_{name}"]:
            response = sample["filtered_resps"]
            generation = response[0] if kind == "gsm8k" else None
            loglikelihoods = None if kind == "gsm8k" else [float(r[0]) for r in response]
            for metric in metric_names(kind):
                rows.append(
                    {
                        "task": name,
                        "kind": kind,
                        "metric": metric,
                        "doc_id": int(sample["doc_id"]),
                        "score": float(sample[metric]),
                        "generation": generation,
                        "loglikelihoods": loglikelihoods,
                    }
                )
    return pd.DataFrame(rows).sort_values(["task", "metric", "doc_id"], ignore_index=True)
