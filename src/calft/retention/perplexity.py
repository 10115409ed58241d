"""PALOMA perplexity through lm-evaluation-harness (reference spec §14).

Each slice is lm-eval's PALOMA task definition (rolling log-likelihood of the `text` field) pointed
at local files in PALOMA's layout, `<data_dir>/<slice>/<split>/*.jsonl[.gz]`. The model's
`loglikelihood_rolling` (calft.retention.harness) scores 2048-token windows advancing by 1024 with exactly
one BOS where the model expects one. Per slice: documents, scored tokens, UTF-8 bytes, summed NLL;
perplexity = exp(nll / tokens) and bits per byte = nll / (ln 2 * bytes).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from calft import layout
from calft.errors import UserError
from calft.retention.scoring import with_pooled_measures


def _text(doc: dict) -> str:
    return doc["text"]


def _non_blank(dataset):
    return dataset.filter(lambda doc: bool(doc["text"] and doc["text"].strip()))


def task_config(slice_name: str, files: list[Path]) -> dict:
    return {
        "task": f"paloma_{slice_name}",
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": [str(f) for f in files]}},
        "test_split": "test",
        "process_docs": _non_blank,
        "output_type": "loglikelihood_rolling",
        "doc_to_text": "",
        "doc_to_target": _text,
        "metadata": {"version": 1},
        "metric_list": [
            {"metric": m, "aggregation": a, "higher_is_better": False}
            for m, a in (
                ("word_perplexity", "weighted_perplexity"),
                ("byte_perplexity", "weighted_perplexity"),
                ("bits_per_byte", "bits_per_byte"),
            )
        ],
    }


def slice_files(data_dir: Path, slice_name: str, split: str) -> list[Path]:
    files = layout.paloma_files(data_dir, slice_name, split)
    if not files:
        raise UserError(f"no *.jsonl or *.jsonl.gz files in {Path(data_dir) / slice_name / split}")
    return files


def evaluate_slices(lm, data_dir: Path, slices: list[str], split: str, max_documents: int | None) -> pd.DataFrame:
    """One row per slice, plus an 'all' row that pools NLL, tokens and bytes over the slices."""
    from calft.retention.harness import evaluate_own_tasks

    configs = [task_config(name, slice_files(data_dir, name, split)) for name in slices]
    output = evaluate_own_tasks(lm, configs, limit=max_documents, log_samples=True, bootstrap_iters=0)
    rows = []
    for name in slices:
        samples = output["samples"][f"paloma_{name}"]
        texts = [sample["doc"]["text"] for sample in samples]
        rows.append(
            {
                "slice": name,
                "documents": len(samples),
                "tokens": sum(max(len(lm.document_ids(text)) - 1, 0) for text in texts),
                "bytes": sum(len(text.encode("utf-8")) for text in texts),
                "nll": -sum(float(sample["filtered_resps"][0]) for sample in samples),
            }
        )
    return with_pooled_measures(pd.DataFrame(rows))
