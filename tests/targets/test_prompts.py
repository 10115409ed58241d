import re

import pytest

from calft.targets.families import SEEN
from calft.targets.prompts import make_prompt, prompt_set, render_number

COUNTS = {"train": 1988, "unseen": 24, "ood": 18, "unseen-full": 591, "ood-full": 92}


@pytest.mark.parametrize("name, count", COUNTS.items())
@pytest.mark.parametrize("number_format", ["clean", "reference"])
def test_prompt_set_sizes_and_unique_ids(name, count, number_format):
    prompts = prompt_set(name, number_format)
    assert len(prompts) == count
    assert len({p.prompt_id for p in prompts}) == count


def test_paper_selection_covers_families():
    assert [p.family for p in prompt_set("unseen")] == list(SEEN)
    ood = [p.family for p in prompt_set("ood")]
    assert {f: ood.count(f) for f in set(ood)} == dict.fromkeys(
        ["bernoulli", "poisson", "maxwell", "truncnorm", "chi", "weibull"], 3
    )


@pytest.mark.parametrize("number_format", ["clean", "reference"])
def test_training_and_unseen_parameters_are_disjoint(number_format):
    def laws(name):
        return {(p.family, tuple(p.params.items())) for p in prompt_set(name, number_format)}

    train = laws("train")
    assert not train & laws("unseen-full")
    assert not train & laws("unseen")
    assert {p.family for p in prompt_set("train")}.isdisjoint({p.family for p in prompt_set("ood-full")})


def test_ids_are_stable_across_renderings():
    clean = [p.prompt_id for p in prompt_set("unseen")]
    assert clean == [p.prompt_id for p in prompt_set("unseen", "reference")]
    assert "uniform_a_3p5_b_10p5" in clean and "hypergeometric_M_100_K_50_N_20" in clean
    assert "truncnorm_mu_0_sigma_1_lower_m1_upper_1" in [p.prompt_id for p in prompt_set("ood")]


def test_prompt_text_follows_the_paper_template():
    gaussian = next(p for p in prompt_set("unseen") if p.family == "gaussian")
    assert gaussian.text == (
        "Generate exactly ONE random number from a Gaussian distribution with "
        "parameters mu=3.5, sigma=3. Output ONLY the number."
    )
    triangular = next(p for p in prompt_set("unseen") if p.family == "triangular")
    assert "parameters a=2.5, c=6, b=9.5." in triangular.text


def test_reference_rendering_reproduces_the_raw_floats():
    texts = [p.text for p in prompt_set("train", "reference")]
    assert (
        "Generate exactly ONE random number from a Uniform distribution with parameters "
        "a=-2.9000000000000004, b=-1.9000000000000004. Output ONLY the number."
    ) in texts
    assert any("sigma=0.5743491774985174" in t for t in texts)
    unseen = [p.text for p in prompt_set("unseen", "reference")]
    assert any("M=100.0, K=50.0, N=20.0" in t for t in unseen)
    assert any("n=25.0, p=0.5" in t for t in unseen)


NUMBER = re.compile(r"(\w+)=(-?\d+(?:\.\d+)?)")


def test_clean_rendering_has_no_float_artefacts():
    for prompt in prompt_set("train") + prompt_set("unseen-full") + prompt_set("ood-full"):
        for _, text in NUMBER.findall(prompt.text):
            assert not text.endswith(".0"), prompt.text
            assert len(text.lstrip("-").replace(".", "").lstrip("0")) <= 4, prompt.text


def test_law_uses_the_printed_values():
    for prompt in prompt_set("train"):
        printed = dict(NUMBER.findall(prompt.text))
        assert {k: float(v) for k, v in printed.items()} == prompt.params


@pytest.mark.parametrize(
    "value, clean, reference",
    [
        (25.0, "25", "25.0"),
        (-2.9000000000000004, "-2.9", "-2.9000000000000004"),
        (0.5743491774985174, "0.5743", "0.5743491774985174"),
        (0.0, "0", "0.0"),
        (1e-5, "0.00001", "1e-05"),
    ],
)
def test_render_number(value, clean, reference):
    assert render_number(value, "clean") == clean
    assert render_number(value, "reference") == reference


def test_thinning_and_family_filter():
    prompts = prompt_set("train", families=["gaussian", "binomial"], per_family=3)
    assert [p.family for p in prompts] == ["binomial"] * 3 + ["gaussian"] * 3 or [p.family for p in prompts] == [
        "gaussian"
    ] * 3 + ["binomial"] * 3
    full = [p.prompt_id for p in prompt_set("train", families=["gaussian"])]
    thinned = [p.prompt_id for p in prompts if p.family == "gaussian"]
    assert thinned == [full[0], full[60], full[120]]


def test_make_prompt_for_custom_law():
    prompt = make_prompt("poisson", {"lambda": 2.5}, "custom")
    assert prompt.prompt_id == "poisson_lambda_2p5" and "lambda=2.5" in prompt.text
