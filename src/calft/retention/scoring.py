"""Retention's numbers (reference spec §13-14): the per-document scores lm-eval calls (GSM8K's strict
and flexible answers, HellaSwag's length-normalized choice, TruthfulQA's mc2, Winogrande's contexts,
the reference's continuation spacing), each task's accuracy and gp-IRT estimates, and PALOMA's
perplexity and bits per byte per slice and pooled. Pure Python, numpy and pandas."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext

import numpy as np
import pandas as pd

from calft.retention import irt
from calft.retention.suites import IRT_SCENARIOS

# A number: a sign, then thousands groups ('1,234') or plain digits ('1234'; '1234,567' reads as 1234 and 567),
# then decimals; the strict answer: what follows the first '####' and any whitespace, newlines included, up to
# the end of that line (the reference's rules).
NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
STRICT_ANSWER = re.compile(r"####\s*([^\n\r]+)")


def normalize_number(text: str) -> str | None:
    """Commas dropped, exact decimal value; integers without a fractional part."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    if value.is_zero():
        return "0"
    with localcontext(prec=max(28, len(text))):  # exact, however many digits a degenerate answer has
        return format(value.normalize(), "f")  # integers without a fractional part


def gsm8k_gold(answer: str) -> str | None:
    return normalize_number(answer.rsplit("####", 1)[-1].strip())


def gsm8k_strict(generation: str) -> str | None:
    """The only number of the line that follows the first '####' (on its own line or the next);
    None when absent or ambiguous."""
    answer = STRICT_ANSWER.search(generation)
    numbers = NUMBER.findall(answer.group(1)) if answer else []
    return normalize_number(numbers[0]) if len(numbers) == 1 else None


def gsm8k_flexible(generation: str) -> str | None:
    """The last number anywhere in the generation."""
    numbers = NUMBER.findall(generation)
    return normalize_number(numbers[-1]) if numbers else None


def gsm8k_scores(doc: dict, results: list[str]) -> dict:
    gold = gsm8k_gold(doc["answer"])
    return {"strict": float(gsm8k_strict(results[0]) == gold), "flexible": float(gsm8k_flexible(results[0]) == gold)}


SPACING = (" ", "\n", "\t")  # the whitespace the reference's rule looks for, and no other


def spaced(prompt: str, continuation: str) -> str:
    """The reference's continuation: a space first, unless the prompt ends in a space, newline or
    tab, or the continuation starts with one."""
    return continuation if prompt.endswith(SPACING) or continuation.startswith(SPACING) else " " + continuation


def clean_hellaswag(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text, flags=re.DOTALL)  # a marker may span lines
    return text.replace("  ", " ")


def hellaswag_scores(doc: dict, results: list) -> dict:
    """acc_norm: the choice of highest log-likelihood per character of its cleaned ending."""
    lengths = np.array([max(len(clean_hellaswag(e)), 1) for e in doc["endings"]], dtype=float)
    scores = np.array([ll for ll, _ in results]) / lengths
    return {"acc_norm": float(np.argmax(scores) == doc["gold"])}


def truthfulqa_mc2(doc: dict, results: list) -> dict:
    loglikelihoods = np.array([ll for ll, _ in results])
    probabilities = np.exp(loglikelihoods - loglikelihoods.max())
    probabilities /= probabilities.sum()
    return {"acc": float(probabilities[np.array(doc["mc2_targets"]["labels"]) == 1].sum())}


def winogrande_options(doc: dict) -> list[str]:
    """Contexts: the prompt with the option it ends with cut off (the longer option tried first),
    followed by each option; the sentence before its blank when the prompt ends with neither."""
    options = [doc["option1"], doc["option2"]]
    prompt = doc["input_formatted"]
    ending = next((option for option in sorted(options, key=len, reverse=True) if prompt.endswith(option)), None)
    prefix = prompt[: -len(ending)] if ending else doc["sentence"].split("_", 1)[0]
    return [prefix + option for option in options]


def winogrande_continuation(doc: dict) -> str:
    return doc["sentence"].split("_", 1)[1].strip()


def winogrande_gold(doc: dict) -> int:
    return int(doc["answer"]) - 1


def summarize(examples: pd.DataFrame, bundles: dict) -> pd.DataFrame:
    """One row per (task, metric): accuracy, and irt/pirt/gpirt when the kind has IRT parameters in
    `bundles` (bundle name -> irt.Bundle) and all of the scenario's 100 items were evaluated."""
    rows = []
    for (task, kind, metric), group in examples.groupby(["task", "kind", "metric"], sort=False):
        row = {
            "task": task,
            "kind": kind,
            "metric": metric,
            "items": len(group),
            "accuracy": group.score.mean(),
            "irt": np.nan,
            "pirt": np.nan,
            "gpirt": np.nan,
        }
        bundle_name, scenario = IRT_SCENARIOS.get(task, (None, None))
        if bundle_name in bundles and len(group) == 100:
            row |= irt.estimate(bundles[bundle_name], scenario, group.sort_values("doc_id").score.to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def with_pooled_measures(table: pd.DataFrame) -> pd.DataFrame:
    """Per-slice counts (documents, tokens, bytes, summed NLL) with an 'all' row that pools them, and
    each row's perplexity exp(nll / tokens) and bits per byte nll / (ln 2 x bytes)."""
    pooled = {"slice": "all", **table[["documents", "tokens", "bytes", "nll"]].sum().to_dict()}
    table = pd.concat([table, pd.DataFrame([pooled])], ignore_index=True)
    table = table.astype({"documents": "int64", "tokens": "int64", "bytes": "int64"})
    table["perplexity"] = np.exp(table.nll / table.tokens)
    table["bits_per_byte"] = table.nll / (np.log(2) * table.bytes)
    return table
