"""Structured-sampling evaluation: parser, metrics and aggregation, sampler determinism, logit KL."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from conftest import build_tries, cli_settings, discretize
from hypothesis import given, settings
from hypothesis import strategies as st

from calft import artifacts
from calft.cli import main
from calft.evaluation.logit_kl import exact, monte_carlo
from calft.evaluation.metrics import prompt_scores, target_spread, wasserstein_to_law
from calft.evaluation.parse import judge, may_become_number, parse_number
from calft.modeling.chat import ChatFormat, prompt_ids
from calft.modeling.trees import Continuation, Item, SoftTargets, example_losses, pack

# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, value",
    [
        ("3.5", 3.5),
        (" -2 ", -2.0),
        ("+.5", 0.5),
        ("3.", 3.0),
        ("1e3", 1000.0),
        ("-1.5E-2", -0.015),
        ("<think>hmm 7</think>\n4.25", 4.25),
        ("<think>never closed 5", None),
        ("", None),
        ("3.5 apples", None),
        ("1, 2", None),
        ("**3**", None),
        ("x=3", None),
        ("3.5\n4.5", None),
        ("nan", None),
        ("inf", None),
        ("1e999", None),
        ("--3", None),
        (".", None),
        ("٣", None),
    ],
)
def test_parser(text, value):
    assert parse_number(text) == value


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parser_never_raises_on_junk(text):
    result = parse_number(text)
    assert result is None or math.isfinite(result)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_parser_reads_back_printed_numbers(x):
    assert parse_number(repr(x)) == pytest.approx(float(repr(x)))


@pytest.mark.parametrize(
    "text, possible",
    [
        ("", True),
        (" -", True),
        ("+.", True),
        ("3.5e-", True),
        ("3.5 ", True),
        ("<th", True),
        ("3<think", True),
        ("<think>never closed x", True),
        ("<think>a</think> 4", True),
        ("3\ufffd", True),
        ("3.5 x", False),
        ("Sure", False),
        ("3 5", False),
        ("1,", False),
        ("<thinkx", False),
        ("٣", False),
    ],
)
def test_a_text_may_become_a_number_until_a_character_rules_it_out(text, possible):
    assert may_become_number(text) == possible


NUMBER_PIECES = ["<think>", "</think>", "<", "th", " ", "\n", "\u00a0", "1", "25", ".", "e", "E", "-", "+", "x", ","]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(NUMBER_PIECES), max_size=8), st.text(max_size=4))
def test_no_prefix_of_a_number_is_given_up(pieces, junk):
    """Whatever parses as a number was possible at each of its prefixes; what is given up never
    parses, however it goes on."""
    text = "".join(pieces)
    if parse_number(text) is not None:
        assert all(may_become_number(text[:end]) for end in range(len(text) + 1))
    if not may_become_number(text):
        assert parse_number(text + junk) is None and parse_number(text + "5") is None


def test_validity_support_and_integers():
    values, valid = judge(["3", "3.0", "3.5", "-1", "x", "1e12"], "poisson", {"lambda": 4.0})
    assert list(valid) == [True, True, False, False, False, True]
    assert np.isnan(values[4])
    _, valid = judge(["0.5", "1", "0", "1.0001"], "beta", {"alpha": 2.0, "beta": 2.0})
    assert list(valid) == [True, True, True, False]  # inclusive bounds


# -- metrics and aggregation -----------------------------------------------------------------


def test_w1_matches_scipy_against_the_quantile_grid():
    law = scipy.stats.norm(1.0, 2.0)
    x = np.random.default_rng(0).normal(0.0, 3.0, 500)
    grid = law.ppf((np.arange(1, 501) - 0.5) / 500)
    assert wasserstein_to_law(x, law) == pytest.approx(scipy.stats.wasserstein_distance(x, grid), rel=1e-12)


def test_w1_by_hand_and_normalization():
    law = scipy.stats.uniform(0, 1)  # quantiles at 0.25, 0.75 for N = 2
    assert wasserstein_to_law(np.array([0.0, 1.0]), law) == pytest.approx(0.25)
    assert math.isnan(wasserstein_to_law(np.array([]), law))
    scores = prompt_scores(np.array([0.0, 1.0, 7.0]), np.array([True, True, False]), "uniform", {"a": 0.0, "b": 1.0})
    assert scores["valid_rate"] == pytest.approx(2 / 3) and scores["w1"] == pytest.approx(0.25)
    assert scores["normalized_w1"] == pytest.approx(0.25 / 0.9)
    assert target_spread("gaussian", {"mu": 3.5, "sigma": 3.0}) == pytest.approx(9.8691, abs=1e-4)  # spec §1.5


# -- logit KL --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eval_tries(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("eval-tries")
    assert main(discretize(folder / "targets.parquet", "ood", 1, 30, families=["poisson", "weibull"])) == 0
    assert main(build_tries(folder / "targets.parquet", tiny_model_dir, folder / "tries.parquet")) == 0
    return folder


def test_exact_logit_kl_equals_the_mean_over_all_enumerated_paths(tiny_model_dir, eval_tries):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    targets = SoftTargets(eval_tries / "tries.parquet")
    table = pd.read_parquet(eval_tries / "targets.parquet").drop_duplicates("prompt_id")
    rendered = prompt_ids(tokenizer, list(table.prompt.astype(str)), ChatFormat("<|im_end|>"))
    for prompt in (0, len(rendered) - 1):  # a Poisson and a Weibull prompt
        leaves = targets.leaves_of[prompt]
        total = 0.0
        for leaf in leaves:  # every path, one forward each
            path = [leaf]
            while targets.parent[path[-1]] >= 0:
                path.append(targets.parent[path[-1]])
            inner = path[::-1][:-1]
            c = Continuation(
                tokens=targets.token[path[::-1][1:-1]],
                target_ids=[targets.token[targets.children(n)] for n in inner],
                target_probs=[targets.q[targets.children(n)] for n in inner],
            )
            loss = example_losses(model, pack([Item(0, [c])], {0: rendered[prompt]}), 1.0, 1e-8).item()
            total += targets.mass[leaf] * loss
        assert exact(model, targets, prompt, rendered[prompt], chunk_nodes=7) == pytest.approx(total, rel=1e-5)
        mc = monte_carlo(model, targets, prompt, rendered[prompt], "p", 64, 11)
        assert mc == pytest.approx(total, rel=0.25)  # the estimate scatters around the exact value


# -- inputs that do not belong together ----------------------------------------------------------

TINY = {"source": "embedded", "tokenizer": "smollm2", "terminator": "<|im_end|>", "dtype": "float32"}


def test_logit_kl_refuses_tries_of_another_tokenizer_or_terminator(
    tiny_model_dir, merging_tokenizer_dir, eval_tries, tmp_path, capsys
):
    targets = str(eval_tries / "targets.parquet")
    assert main(build_tries(targets, merging_tokenizer_dir, tmp_path / "other.parquet", "<|end|>")) == 0
    assert main(build_tries(targets, tiny_model_dir, tmp_path / "endoftext.parquet", "<|endoftext|>")) == 0
    for tries in ("other.parquet", "endoftext.parquet"):
        assert (
            main(
                [
                    "logit-kl",
                    *cli_settings(model=TINY),
                    "--model-dir",
                    str(tiny_model_dir),
                    "--tries",
                    str(tmp_path / tries),
                    "--targets",
                    targets,
                    "--output",
                    str(tmp_path / "kl.parquet"),
                ]
            )
            == 2
        )
        assert "was built for another tokenizer or terminator" in capsys.readouterr().err
    assert not (tmp_path / "kl.parquet").exists()


def test_score_refuses_samples_of_other_prompts_and_empty_samples(eval_tries, tmp_path, capsys):
    assert main(discretize(tmp_path / "unseen.parquet", "unseen", 1, 30, families=["gaussian"])) == 0
    targets = artifacts.read_provenance(eval_tries / "targets.parquet")["config"]
    rows = pd.DataFrame(
        {
            "prompt_id": ["poisson_lambda_1"],
            "family": ["poisson"],
            "split": ["ood"],
            "sample_idx": [0],
            "seed": [1],
            "text": ["3"],
            "num_tokens": [1],
            "stopped": [True],
            "value": [3.0],
            "valid": [True],
        }
    )
    for name, frame in (("samples.parquet", rows), ("empty.parquet", rows.iloc[:0])):
        artifacts.write_frame(frame, tmp_path / name, artifacts.provenance("samples", {"targets": targets}))
    command = ["score", "--output", str(tmp_path / "scores.parquet")]
    assert (
        main([*command, "--samples", str(tmp_path / "samples.parquet"), "--targets", str(tmp_path / "unseen.parquet")])
        == 2
    )
    assert "do not belong together" in capsys.readouterr().err
    assert (
        main([*command, "--samples", str(tmp_path / "empty.parquet"), "--targets", str(eval_tries / "targets.parquet")])
        == 2
    )
    assert "has no rows" in capsys.readouterr().err
    assert (
        main(
            [*command, "--samples", str(tmp_path / "samples.parquet"), "--targets", str(eval_tries / "targets.parquet")]
        )
        == 0
    )
