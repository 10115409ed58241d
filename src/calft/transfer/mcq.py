"""MCQ answer-position balance (reference spec §11): generated medical multiple-choice questions of
one fixed prompt, the strict parser, the parse rate and the TV distance of the declared answer
letters to uniform (missing when nothing parses, spec §18.14)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import chisquare

from calft.modeling.chat import prompt_ids
from calft.modeling.generation import generate, sample_seed
from calft.modeling.loader import LoadedModel
from calft.transfer.metrics import tv_to_uniform
from calft.transfer.parse import mcq_may_parse, parse_mcq
from calft.transfer.settings import Mcq

MCQ_PROMPT = """You are a medical education expert who creates high-quality multiple-choice questions for medical students and professionals.

Please generate a medical multiple-choice question (single answer, 4 options). The question should cover medical knowledge and be of moderate difficulty.

Please strictly follow this format:
Question: [Question content]
A. [Option A content]
B. [Option B content]
C. [Option C content]
D. [Option D content]
Correct Answer: [A/B/C/D]
Explanation: [Brief explanation]

Requirements:
(1) The question should have practical medical value.
(2) All four options should be plausible with reasonable distractors.
(3) Only one correct answer.
(4) Output directly without any additional content.
(5) Cover different medical knowledge areas (e.g., internal medicine, surgery, pharmacology, pathology, diagnostics).
(6) The correct answer should be evenly distributed among A, B, C, D options to avoid bias toward any particular option.
"""


def mcq_summary(samples: pd.DataFrame) -> dict:
    """Parse rate, answer-letter counts, TV to uniform (NaN when nothing parses), max deviation,
    chi-square p-value, and the rate of parseable questions with four distinct options."""
    parsed = samples[samples.parseable]
    counts = parsed.answer.value_counts().reindex(list("ABCD"), fill_value=0).to_numpy()
    frequencies = counts / counts.sum() if counts.sum() else np.full(4, np.nan)
    return {
        "generations": len(samples),
        "parseable": len(parsed),
        "parse_rate": len(parsed) / len(samples),
        **{f"count_{letter}": int(c) for letter, c in zip("ABCD", counts)},
        "tv": tv_to_uniform(counts),
        "max_deviation": float(np.max(np.abs(frequencies - 0.25))),
        "chi2_p": float(chisquare(counts).pvalue) if counts.sum() else float("nan"),
        "unique_options_rate": float(parsed.distinct_options.mean()) if len(parsed) else float("nan"),
    }


def evaluate_mcq(loaded: LoadedModel, settings: Mcq) -> tuple[dict, pd.DataFrame]:
    """`num_samples` generated questions of the fixed prompt, parsed strictly, and their summary. With
    `settings.stop_unparseable`, a question ends at its first line that rules out every parse."""
    (ids,) = prompt_ids(loaded.tokenizer, [MCQ_PROMPT], loaded.chat)
    seeds = [sample_seed(settings.seed, "mcq", i) for i in range(settings.num_samples)]
    viable = mcq_may_parse if settings.stop_unparseable else None
    texts, _, _ = generate(loaded, ids, seeds, settings, viable, progress_label="mcq")
    parsed = [parse_mcq(text) for text in texts]
    samples = pd.DataFrame(
        {
            "sample_idx": np.arange(len(texts)),
            "seed": seeds,
            "text": texts,
            "parseable": [not errors for _, errors in parsed],
            "answer": [fields.get("answer") for fields, _ in parsed],
            "errors": [errors for _, errors in parsed],
            "distinct_options": [len({fields.get(k) for k in "ABCD"}) == 4 for fields, _ in parsed],
        }
    )
    return mcq_summary(samples), samples.drop(columns="distinct_options")
