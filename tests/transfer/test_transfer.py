"""Transfer evaluations: metrics and parsers on constructed inputs, real runs on small real models."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import cli_settings, tiny_evaluators
from hypothesis import given, settings
from hypothesis import strategies as st

from calft import artifacts
from calft.cli import main
from calft.transfer import mcq, metrics, noveltybench
from calft.transfer.parse import mcq_may_parse, normalize_open_answer, parse_mcq
from calft.transfer.prompts import open_ended_prompts, prompt_subset

MODEL_CONFIG = {"source": "embedded", "tokenizer": "smollm2", "terminator": "<|im_end|>", "dtype": "float32"}


# ---------------------------------------------------------------------------------------------
# Open-ended generation


def test_top_p_support_counts_the_most_probable_tokens():
    probabilities = np.array([[0.2, 0.5, 0.3, 0.0], [0.25, 0.25, 0.25, 0.25]])
    sizes = metrics.top_p_support(probabilities, np.array([0.5, 0.8, 0.9, 1.5]))
    np.testing.assert_array_equal(sizes, [[1, 2, 3, 4], [2, 4, 4, 4]])  # 1.5 is never reached: all tokens


@pytest.mark.parametrize(
    "text, reference, insensitive",
    [
        ("Paris", "Paris", "paris"),
        ("  Paris.\nThe capital of France", "Paris.", "paris"),
        ('"New   York"', "New York", "new york"),
        ("<think>hmm</think>\n\n'Rome'", "Rome", "rome"),
        ("</think> Oslo", "Oslo", "oslo"),
        ("", "", ""),
    ],
)
def test_open_ended_normalizations(text, reference, insensitive):
    assert normalize_open_answer(text) == reference
    assert normalize_open_answer(text, insensitive=True) == insensitive


def test_unique_fraction_counts_empties_in_the_denominator_only():
    answers = ["Paris", "Paris.", "paris", "", "Paris"]
    assert metrics.unique_fraction([normalize_open_answer(a) for a in answers]) == 3 / 5
    assert metrics.unique_fraction([normalize_open_answer(a, insensitive=True) for a in answers]) == 1 / 5


def test_open_ended_prompts_follow_the_paper_template():
    prompts = open_ended_prompts()
    assert len(prompts) == 102 and len(set(prompts)) == 102
    assert prompts[0] == "Think of a random word. Output ONLY the answer."
    assert prompts[5] == "Choose a random food. Output ONLY the answer."
    assert prompts[101] == "Choose a random programming language. Output ONLY the answer."
    assert prompt_subset(None) == list(range(102))
    assert prompt_subset(3) == [0, 50, 101]


# ---------------------------------------------------------------------------------------------
# MCQ balance

WELL_FORMED = """Question: Which vitamin deficiency causes scurvy?
A. Vitamin A
B. Vitamin C
C. Vitamin D
D. Vitamin K
Correct Answer: B
Explanation: Vitamin C is needed for collagen synthesis."""


def test_mcq_parser_accepts_the_format():
    fields, errors = parse_mcq(WELL_FORMED)
    assert errors == [] and fields["answer"] == "B" and fields["C"] == "Vitamin D"
    assert parse_mcq("\n\n" + WELL_FORMED.replace("\n", "\n\n") + "\n")[1] == []  # blank lines are fine


@pytest.mark.parametrize(
    "text, error",
    [
        (WELL_FORMED.replace("Question:", "**Question:**"), "unexpected_line"),
        ("Sure! Here is a question.\n" + WELL_FORMED, "unexpected_line"),
        (WELL_FORMED + "\nIt also helps wound healing.", "unexpected_line"),
        (WELL_FORMED.replace("Correct Answer: B", "Correct Answer: B."), "invalid_answer"),
        (WELL_FORMED.replace("Correct Answer: B", "Correct Answer: B) Vitamin C"), "invalid_answer"),
        (WELL_FORMED.replace("D. Vitamin K", "D."), "empty_D"),
        (WELL_FORMED.replace("D. Vitamin K\n", ""), "missing_D"),
        (WELL_FORMED + "\nA. Vitamin E", "duplicate_A"),
        ("", "missing_question"),
    ],
)
def test_mcq_parser_rejects_malformed_questions(text, error):
    assert error in parse_mcq(text)[1]


@pytest.mark.parametrize(
    "text, possible",
    [
        ("", True),
        ("Quest", True),
        ("  A", True),
        ("<thi", True),
        ("Question: why?\nA. x\nB", True),
        ("<think>Sure! Here is one\n", True),
        ("<think>a</think>Question: q\n", True),
        ("Correct Answer: B\n\n", True),
        ("Sure", False),
        ("Sure! Here is a question.\n", False),
        ("**Question:**", False),
        ("Question: q\nA. x\nA. y\n", False),
        ("Question: q\nIt is\n", False),
    ],
)
def test_a_question_may_parse_until_a_finished_line_rules_it_out(text, possible):
    assert mcq_may_parse(text) == possible


MCQ_PIECES = [
    "Question: q",
    "A. a",
    "B. b",
    "C. c",
    "D. d",
    "Correct Answer: B",
    "Explanation: e",
    "\n",
    "\n\n",
    "  ",
    "Qu",
    "<think>",
    "</think>",
    "<",
    "Sure",
    "\r\n",
]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(MCQ_PIECES), max_size=12), st.text(max_size=6))
def test_no_prefix_of_a_parseable_question_is_given_up(pieces, junk):
    text = "".join(pieces)
    if not parse_mcq(text)[1]:
        assert all(mcq_may_parse(text[:end]) for end in range(len(text) + 1))
    if not mcq_may_parse(text):
        assert parse_mcq(text + junk)[1] and parse_mcq(text + "\n" + WELL_FORMED)[1]


def test_every_prefix_of_the_well_formed_question_may_parse():
    assert all(mcq_may_parse(WELL_FORMED[:end]) for end in range(len(WELL_FORMED) + 1))


def test_mcq_tv_is_missing_when_nothing_parses():
    assert metrics.tv_to_uniform([10, 0, 0, 0]) == pytest.approx(0.75)
    assert metrics.tv_to_uniform([5, 5, 5, 5]) == 0.0
    samples = pd.DataFrame({"parseable": [False, False], "answer": [None, "B"], "distinct_options": [False, True]})
    summary = mcq.mcq_summary(samples)
    assert summary["parse_rate"] == 0 and math.isnan(summary["tv"]) and math.isnan(summary["chi2_p"])
    samples = pd.DataFrame(
        {
            "parseable": [True, True, True, False],
            "answer": ["A", "A", "C", None],
            "distinct_options": [True, False, True, True],
        }
    )
    summary = mcq.mcq_summary(samples)
    # frequencies 2/3, 0, 1/3, 0: TV = (5/12 + 1/4 + 1/12 + 1/4) / 2
    assert summary["parse_rate"] == 0.75 and summary["tv"] == pytest.approx(0.5)
    assert (
        summary["count_A"] == 2 and summary["count_B"] == 0 and summary["unique_options_rate"] == pytest.approx(2 / 3)
    )


# ---------------------------------------------------------------------------------------------
# NoveltyBench


def test_lexical_short_circuit_and_greedy_partition():
    assert metrics.lexically_equivalent("New York", "new york city") is True  # 2*2 >= 3
    assert metrics.lexically_equivalent("a cat", "the dog") is False
    assert metrics.lexically_equivalent("one two three four five six", "one") is None  # classifier decides
    texts = ["Paris", "paris", "Rome", "PARIS", "Rome Italy"]
    ids = metrics.partition(
        len(texts), lambda i, later: [metrics.lexically_equivalent(texts[i], texts[j]) for j in later]
    )
    assert ids == [0, 0, 1, 0, 1]


def test_utility_with_patience_by_hand():
    # earned ratings 5, 0 (repeats partition 0), 3; discounts 1, 0.8, 0.64
    assert metrics.novelty_utility(np.array([5, 5, 3]), [0, 0, 1]) == pytest.approx((5 + 0.64 * 3) / 2.44)
    assert metrics.novelty_utility(np.array([4, 4]), [0, 1], patience=0.5) == pytest.approx(4.0)


def test_reward_ratings_count_the_thresholds_strictly_below():
    assert noveltybench.rating(-8.0) == 1
    assert noveltybench.rating(-6.0) == 3  # -7.71875 and -6.28125 are below, -6.0 is not
    assert noveltybench.rating(0.0) == 10


# ---------------------------------------------------------------------------------------------
# Real runs


def test_open_ended_and_mcq_cli_on_a_tiny_model(tiny_model_dir, tmp_path, capsys):
    model = ["--model-dir", str(tiny_model_dir)]
    settings = {"num_samples": 6, "max_new_tokens": 5, "max_prompts": 3, "temperature": 1.0, "top_p": 1.0, "seed": 11}
    instruction = tmp_path / "open_ended.txt"
    instruction.write_text("Seed, think, then <answer>your answer</answer>.\n")
    for ssot in (False, True):
        prompting = "ssot" if ssot else "direct"
        assert (
            main(
                [
                    "open-ended",
                    *cli_settings(model=MODEL_CONFIG, open_ended=settings, prompting=prompting),
                    *model,
                    *(["--ssot-instruction", str(instruction)] if ssot else []),
                    "--samples",
                    str(tmp_path / f"s{ssot}.parquet"),
                    "--output",
                    str(tmp_path / f"o{ssot}.parquet"),
                ]
            )
            == 0
        )
    direct, ssot = pd.read_parquet(tmp_path / "oFalse.parquet"), pd.read_parquet(tmp_path / "oTrue.parquet")
    assert direct.prompt_index.tolist() == [0, 50, 101] and (direct.samples == 6).all()
    for sizes, primary in zip(direct.support_sizes, direct.support_size):
        assert len(sizes) == 21 and (np.diff(sizes) >= 0).all() and sizes[-3] == primary  # index of 0.9
    assert direct.unique_fraction.between(0, 1).all() and ssot.support_size.isna().all()
    recorded = artifacts.read_provenance(tmp_path / "oTrue.parquet")["config"]["ssot_instruction"]
    assert (
        recorded["role"] == "open_ended"
        and recorded["sha256"] == hashlib.sha256(b"Seed, think, then <answer>your answer</answer>.").hexdigest()
    )
    samples = pd.read_parquet(tmp_path / "sFalse.parquet")
    assert len(samples) == 18 and samples.seed.nunique() == 18

    mcq_settings = {"num_samples": 4, "max_new_tokens": 8, "temperature": 1.0, "top_p": 1.0, "seed": 11}
    assert (
        main(
            [
                "mcq",
                *cli_settings(model=MODEL_CONFIG, mcq=mcq_settings),
                *model,
                "--samples",
                str(tmp_path / "m.parquet"),
                "--output",
                str(tmp_path / "mcq.parquet"),
            ]
        )
        == 0
    )
    logged = capsys.readouterr().err
    assert "open-ended: 3/3 prompt (100%)" in logged  # each job's closing progress line, with the ETA
    assert "mcq: 8/8 step (100%)" in logged and "ETA" in logged  # one chunk of 8 decoding steps
    summary = pd.read_parquet(tmp_path / "mcq.parquet")
    generations = pd.read_parquet(tmp_path / "m.parquet")
    assert summary.generations.item() == 4 and summary.parse_rate.item() == generations.parseable.mean()
    assert (
        main(
            [
                "mcq",
                *cli_settings(model=MODEL_CONFIG, mcq=mcq_settings | {"stop_unparseable": True}),
                *model,
                "--samples",
                str(tmp_path / "m_cut.parquet"),
                "--output",
                str(tmp_path / "mcq_cut.parquet"),
            ]
        )
        == 0
    )
    cut = pd.read_parquet(tmp_path / "m_cut.parquet")  # random text: each question ends once a line rules it out
    assert cut.parseable.tolist() == generations.parseable.tolist()
    assert all(full.startswith(text) for full, text in zip(generations.text, cut.text))
    assert (cut.text.str.len() < generations.text.str.len()).any()


def test_the_similarity_input_is_built_from_token_ids_each_side_cut_at_128(tmp_path, smollm2_dir):
    from transformers import AutoTokenizer

    similarity, _ = tiny_evaluators(tmp_path, smollm2_dir)
    tokenizer = AutoTokenizer.from_pretrained(similarity)
    long_text, short_text = "the " * 200 + "story", "a story"
    first = tokenizer(long_text, add_special_tokens=False).input_ids[: noveltybench.SIDE_TOKENS]
    second = tokenizer(short_text, add_special_tokens=False).input_ids
    batch = noveltybench.pair_inputs(tokenizer, first, [second, first], "cpu")
    ids, types, mask = (batch[key].tolist() for key in ("input_ids", "token_type_ids", "attention_mask"))
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert ids[0][: len(first) + 2] == [cls, *first, sep] and ids[0][len(first) + 2 : len(first) + 3 + len(second)] == [
        *second,
        sep,
    ]
    assert types[0] == [0] * (len(first) + 2) + [1] * (len(second) + 1) + [0] * (
        len(ids[0]) - len(first) - len(second) - 3
    )
    assert len(first) == 128 and sum(mask[0]) == 128 + len(second) + 3 and sum(mask[1]) == 2 * 128 + 3


def test_noveltybench_cli_generates_partitions_and_rates(tiny_model_dir, smollm2_dir, tmp_path):
    similarity, reward = tiny_evaluators(tmp_path, smollm2_dir)
    data = tmp_path / "prompts"
    data.mkdir()
    for name, count in (("curated.jsonl", 100), ("wildchat_1k.jsonl", 1000)):
        category = {"category": "Creativity"} if name == "curated.jsonl" else {}
        (data / name).write_text(
            "".join(json.dumps({"id": i, "prompt": f" Tell me a story {i}. ", **category}) + "\n" for i in range(count))
        )
    settings = {
        "splits": ["curated", "wildchat"],
        "prompts_limit": 2,
        "generations": 4,
        "max_new_tokens": 12,
        "seed": 11,
        "similarity_model": str(similarity),
        "similarity_tokenizer": str(similarity),
        "similarity_threshold": 0.102,
        "reward_model": str(reward),
        "reward_dtype": "float32",
        "patience": 0.8,
        "trust_data_dir": True,
    }
    assert (
        main(
            [
                "noveltybench",
                *cli_settings(model=MODEL_CONFIG, noveltybench=settings),
                "--model-dir",
                str(tiny_model_dir),
                "--data-dir",
                str(data),
                "--generations",
                str(tmp_path / "g.parquet"),
                "--output",
                str(tmp_path / "n.parquet"),
            ]
        )
        == 0
    )
    summary = pd.read_parquet(tmp_path / "n.parquet").set_index("split")
    generations = pd.read_parquet(tmp_path / "g.parquet")
    assert list(summary.index) == ["curated", "wildchat", "all"] and (summary.prompts == [2, 2, 4]).all()
    assert len(generations) == 16 and generations.rating.between(1, 10).all()
    curated = generations.split == "curated"
    assert (generations.category[curated] == "Creativity").all() and generations.category[~curated].isna().all()
    assert generations.prompt.tolist() == [
        f"Tell me a story {j}." for _ in range(2) for j in range(2) for _ in range(4)
    ]
    first_of_partition = ~generations.duplicated(["split", "prompt_index", "partition"])
    assert (generations.representative == first_of_partition).all()
    for _, group in generations.groupby(["split", "prompt_index"]):
        ids = group.partition.tolist()
        assert ids[0] == 0 and all(i <= max(ids[:k], default=-1) + 1 for k, i in enumerate(ids))
        expected = metrics.novelty_utility(group.rating.to_numpy(), ids)
        assert 1 <= expected <= 10
    per_prompt = generations.groupby(["split", "prompt_index"]).apply(
        lambda g: metrics.novelty_utility(g.rating.to_numpy(), g.partition.tolist()), include_groups=False
    )
    assert summary.loc["all", "mean_utility"] == pytest.approx(per_prompt.mean())

    (data / "curated.jsonl").write_text('{"prompt": "only one"}\n')
    assert (
        main(
            [
                "noveltybench",
                *cli_settings(model=MODEL_CONFIG, noveltybench=settings),
                "--model-dir",
                str(tiny_model_dir),
                "--data-dir",
                str(data),
                "--generations",
                str(tmp_path / "g2.parquet"),
                "--output",
                str(tmp_path / "n2.parquet"),
            ]
        )
        == 2
    )


def test_noveltybench_prompts_are_fetched_under_calfts_names_and_verified(tmp_path, capsys):
    from calft import artifacts

    upstream = tmp_path / "upstream"
    upstream.mkdir()
    for name, count in (("curated.jsonl", 100), ("wildchat-1k.jsonl", 1000)):
        (upstream / name).write_text("".join(json.dumps({"prompt": f"Story {i}"}) + "\n" for i in range(count)))
    settings = json.dumps({"prompts_url": upstream.as_uri() + "/"})
    output = tmp_path / "prompts"
    assert main(["fetch-noveltybench", "--settings", settings, "--output", str(output)]) == 0
    assert sorted(json.loads((output / artifacts.RECORD).read_text())["files"]) == [
        "curated.jsonl",
        "wildchat_1k.jsonl",
    ]
    assert len(noveltybench.read_prompt_files(output, ["curated", "wildchat"], None)["wildchat"]) == 1000
    (upstream / "curated.jsonl").write_text('{"prompt": "only one"}\n')
    assert main(["fetch-noveltybench", "--settings", settings, "--output", str(tmp_path / "short")]) == 2
    assert "NoveltyBench's curated has 100" in capsys.readouterr().err and not (tmp_path / "short").exists()
