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

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

from calft.retention.settings import Retention
from calft.retention.suites import IRT_SCENARIOS, SUITES

GSM8K_STOP = ["Question:", "</s>", "<|im_end|>"]
NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?")



# ---------------------------------------------------------------------------------------------
# Answer extraction and per-document scoring (called by lm-eval)


def normalize_number(text: str) -> str | None:
    """Commas dropped, exact decimal value; integers without a fractional part."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def gsm8k_gold(answer: str) -> str | None:
    return normalize_number(answer.rsplit("####", 1)[-1].strip())


def gsm8k_strict(generation: str) -> str | None:
    """The only number after the first '####' on its line; None when absent or ambiguous."""
    if "####" not in generation:
        return None
    numbers = NUMBER.findall(generation.split("####", 1)[1].split("\n", 1)[0])
    return normalize_number(numbers[0]) if len(numbers) == 1 else None


def gsm8k_flexible(generation: str) -> str | None:
    """The last number anywhere in the generation."""
    numbers = NUMBER.findall(generation)
    return normalize_number(numbers[-1]) if numbers else None


def _gsm8k_results(doc: dict, results: list[str]) -> dict:
    gold = gsm8k_gold(doc["answer"])
    return {"strict": float(gsm8k_strict(results[0]) == gold), "flexible": float(gsm8k_flexible(results[0]) == gold)}


SPACING = (" ", "\n", "\t")  # the whitespace the reference's rule looks for, and no other


def spaced(prompt: str, continuation: str) -> str:
    """The reference's continuation: a space first, unless the prompt ends in a space, newline or
    tab, or the continuation starts with one."""
    return continuation if prompt.endswith(SPACING) or continuation.startswith(SPACING) else " " + continuation


def _clean_hellaswag(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag_docs(dataset):
    return dataset.map(lambda doc: {"gold": int(doc["label"])})


def _hellaswag_results(doc: dict, results: list) -> dict:
    """acc_norm: the choice of highest log-likelihood per character of its cleaned ending."""
    lengths = np.array([max(len(_clean_hellaswag(e)), 1) for e in doc["endings"]], dtype=float)
    scores = np.array([ll for ll, _ in results]) / lengths
    return {"acc_norm": float(np.argmax(scores) == doc["gold"])}


def _truthfulqa_mc2(doc: dict, results: list) -> dict:
    loglikelihoods = np.array([ll for ll, _ in results])
    probabilities = np.exp(loglikelihoods - loglikelihoods.max())
    probabilities /= probabilities.sum()
    return {"acc": float(probabilities[np.array(doc["mc2_targets"]["labels"]) == 1].sum())}


def _winogrande_options(doc: dict) -> list[str]:
    """Contexts: the prompt with the option it ends with cut off (the longer option tried first),
    followed by each option; the sentence before its blank when the prompt ends with neither."""
    options = [doc["option1"], doc["option2"]]
    prompt = doc["input_formatted"]
    ending = next((option for option in sorted(options, key=len, reverse=True) if prompt.endswith(option)), None)
    prefix = prompt[: -len(ending)] if ending else doc["sentence"].split("_", 1)[0]
    return [prefix + option for option in options]


def _winogrande_continuation(doc: dict) -> str:
    return doc["sentence"].split("_", 1)[1].strip()


def _choices(kind: str, choice_format: str):
    """doc -> the answer choices (winogrande: the continuation) as `choice_format` scores them; None
    for a kind without choices."""
    bare = {
        "mmlu": lambda doc: ["A", "B", "C", "D"],
        "hellaswag": lambda doc: [_clean_hellaswag(e) for e in doc["endings"]],
        "truthfulqa": lambda doc: list(doc["mc2_targets"]["choices"]),
        "winogrande": _winogrande_continuation,
    }.get(kind)
    if bare is None or choice_format == "chat":
        return bare
    if kind == "winogrande":
        return lambda doc: spaced(_winogrande_options(doc)[0], bare(doc))
    return lambda doc: [spaced(doc["input_formatted"], choice) for choice in bare(doc)]


def _winogrande_gold(doc: dict) -> int:
    return int(doc["answer"]) - 1


# ---------------------------------------------------------------------------------------------
# Task declarations


def task_config(name: str, kind: str, data_file: Path, max_gen_toks: int, choice_format: str = "reference") -> dict:
    """The lm-eval task config of one task of the given kind over a local parquet file."""
    common = {"task": f"calft_{name}", "dataset_path": "parquet",
              "dataset_kwargs": {"data_files": {"test": str(data_file)}}, "test_split": "test",
              "num_fewshot": 0, "doc_to_text": "{{input_formatted}}", "metadata": {"version": 1}}
    accuracy = [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]
    kinds = {
        "mmlu": {"output_type": "multiple_choice", "doc_to_choice": _choices(kind, choice_format),
                 "doc_to_target": "answer", "metric_list": accuracy},
        "hellaswag": {"output_type": "multiple_choice", "process_docs": _hellaswag_docs,
                      "doc_to_choice": _choices(kind, choice_format), "doc_to_target": "gold",
                      "process_results": _hellaswag_results,
                      "metric_list": [{"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}]},
        "truthfulqa": {"output_type": "multiple_choice", "doc_to_choice": _choices(kind, choice_format),
                       "doc_to_target": 0, "process_results": _truthfulqa_mc2, "metric_list": accuracy},
        "winogrande": {"output_type": "multiple_choice", "doc_to_text": _winogrande_gold,
                       "doc_to_choice": _winogrande_options, "doc_to_target": _choices(kind, choice_format),
                       "metric_list": accuracy},
        "gsm8k": {"output_type": "generate_until", "doc_to_target": "{{answer}}",
                  "generation_kwargs": {"until": GSM8K_STOP, "do_sample": False, "temperature": 0.0,
                                        "max_gen_toks": max_gen_toks},
                  "process_results": _gsm8k_results,
                  "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                                  for m in ("strict", "flexible")]},
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
    configs = [task_config(name, kind, Path(data_dir) / f"{name}.parquet", settings.max_gen_toks,
                           settings.choice_format) for name, kind in tasks.items()]
    output = evaluate_own_tasks(lm, configs, limit=settings.limit, log_samples=True,
                                apply_chat_template=settings.apply_chat_template, bootstrap_iters=0,
                                random_seed=settings.seed, numpy_random_seed=settings.seed,
                                torch_random_seed=settings.seed, fewshot_random_seed=settings.seed)
    rows = []
    for name, kind in tasks.items():
        for sample in output["samples"][f"calft_{name}"]:
            response = sample["filtered_resps"]
            generation = response[0] if kind == "gsm8k" else None
            loglikelihoods = None if kind == "gsm8k" else [float(r[0]) for r in response]
            for metric in metric_names(kind):
                rows.append({"task": name, "kind": kind, "metric": metric, "doc_id": int(sample["doc_id"]),
                             "score": float(sample[metric]), "generation": generation,
                             "loglikelihoods": loglikelihoods})
    return pd.DataFrame(rows).sort_values(["task", "metric", "doc_id"], ignore_index=True)


def summarize(examples: pd.DataFrame, bundles: dict) -> pd.DataFrame:
    """One row per (task, metric): accuracy, and irt/pirt/gpirt when the kind has IRT parameters in
    `bundles` (bundle name -> irt.Bundle) and all of the scenario's 100 items were evaluated."""
    from calft.retention import irt

    rows = []
    for (task, kind, metric), group in examples.groupby(["task", "kind", "metric"], sort=False):
        row = {"task": task, "kind": kind, "metric": metric, "items": len(group), "accuracy": group.score.mean(),
               "irt": np.nan, "pirt": np.nan, "gpirt": np.nan}
        bundle_name, scenario = IRT_SCENARIOS.get(task, (None, None))
        if bundle_name in bundles and len(group) == 100:
            row |= irt.estimate(bundles[bundle_name], scenario, group.sort_values("doc_id").score.to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)
