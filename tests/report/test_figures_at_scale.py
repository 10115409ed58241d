"""Every figure drawn for the twelve paper models (synthetic values, real figure code): at most about
2400 px wide, at most three times wider than high, legends over no data and no title, per-panel value
axes where the panels' scales differ, and Figure 9 coloured by model family with a marker per model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, discretize

from calft.cli import main
from calft.report import figures

PAPER_MODELS = yaml.safe_load((ROOT / "config.paper.yaml").read_text())["models"]
MODELS = list(PAPER_MODELS)
FAMILIES = {name: entry["tokenizer"] for name, entry in PAPER_MODELS.items()}
METHODS = ["base", "soft", "hard"]
DRAWN: dict[str, dict] = {}


@pytest.fixture(autouse=True)
def checked_figures(monkeypatch):
    """Every figure saved is measured (size, overlaps of its legends) before it is written."""
    from matplotlib.figure import Figure

    save = Figure.savefig

    def measured(fig, path, *args, **kwargs):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [legend.get_window_extent(renderer) for legend in fig.legends] + [
            ax.get_legend().get_window_extent(renderer) for ax in fig.axes if ax.get_legend()
        ]
        panels = [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible() and ax.axison]
        titles = [text.get_window_extent(renderer) for text in fig.texts]
        DRAWN[path.stem if hasattr(path, "stem") else str(path)] = {
            "pixels": (
                fig.get_figwidth() * kwargs.get("dpi", fig.dpi),
                fig.get_figheight() * kwargs.get("dpi", fig.dpi),
            ),
            "overlaps": [(a, b) for a in legends for b in panels + titles if a.overlaps(b)],
            "ylims": [ax.get_ylim() for ax in fig.axes if ax.axison],
            "styles": {
                (tuple(np.round(c.get_facecolor()[0][:3], 3)), c.get_paths()[0].vertices.shape[0])
                for ax in fig.axes
                for c in ax.collections
                if len(c.get_offsets())
            },
        }
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", measured)
    DRAWN.clear()


def _assert_readable(name: str) -> dict:
    drawn = DRAWN[name]
    width, height = drawn["pixels"]
    assert width <= 2450 and width / height <= 3.0, (name, width, height)
    assert drawn["overlaps"] == [], name
    return drawn


def _values(panels: list[str], scale: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        (panel, model, method, (scale or {}).get(panel, 1.0) * rng.uniform(0.2, 1.0))
        for panel in panels
        for model in MODELS
        for method in METHODS
    ]
    return pd.DataFrame(rows, columns=["panel", "model", "method", "value"])


@pytest.fixture(scope="module")
def ood_prompts(tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("ood")
    assert main(discretize(folder / "ood.parquet", "ood", 1, 20)) == 0
    return pd.read_parquet(folder / "ood.parquet", columns=["prompt_id", "family", "params"]).astype(str)


def test_figure2_and_the_per_distribution_figures_4_to_7(tmp_path, ood_prompts):
    rng = np.random.default_rng(1)
    families = ood_prompts.family.unique()
    per_prompt = pd.DataFrame(
        [
            dict(
                prompt_set="ood", model=m, method=k, family=f, prompt_id=f"{f}-{i}", normalized_w1=rng.uniform(0.01, 1)
            )
            for m in MODELS
            for k in METHODS
            for f in families
            for i in range(2)
        ]
    ).assign(logit_kl=lambda frame: frame.normalized_w1 * 3)
    summary = per_prompt.groupby(["prompt_set", "model", "method"], sort=False).normalized_w1.median().reset_index()
    figures.figure_family_median(summary, ["ood", "unseen"], tmp_path / "figure2.png")
    _assert_readable("figure2")
    for metric in ("normalized_w1", "logit_kl"):
        figures.figure_per_family(per_prompt, "ood", metric, tmp_path / f"per_family_{metric}.png")
        drawn = _assert_readable(f"per_family_{metric}")
        assert len(drawn["ylims"]) == len(families)


def test_figures_3_8_and_14_of_the_ood_samples(tmp_path, ood_prompts):
    rng = np.random.default_rng(2)
    samples = {
        method: pd.DataFrame(
            {
                "prompt_id": np.repeat(ood_prompts.prompt_id.unique(), 20),
                "valid": True,
                "value": rng.uniform(0, 5, 20 * ood_prompts.prompt_id.nunique()),
            }
        )
        for method in ["base", "ssot", "soft"]
    }
    figures.figure_ood_samples(samples, ood_prompts, "qwen3-14b: OOD samples", tmp_path / "figure8.png")
    _assert_readable("figure8")
    few = ood_prompts[ood_prompts.prompt_id.isin(ood_prompts.prompt_id.unique()[:2])]
    figures.figure_ood_samples(samples, few, "two prompts", tmp_path / "two.png")  # a short grid stays readable
    _assert_readable("two")


def test_figure9_colours_each_family_and_marks_each_model_within_it(tmp_path):
    rng = np.random.default_rng(3)
    rows = pd.DataFrame(
        [
            dict(
                model=m,
                family=FAMILIES[m],
                method=k,
                prompt_index=p,
                support_size=rng.integers(1, 50),
                unique_fraction=rng.uniform(),
            )
            for m in MODELS
            for k in METHODS
            for p in range(102)
        ]
    )
    figures.figure_open_ended_per_prompt(rows, tmp_path / "figure9.png")
    drawn = _assert_readable("figure9")
    colours = {colour for colour, _ in drawn["styles"]}
    assert len(colours) == len(set(FAMILIES.values())) == 4
    styles = figures.model_styles(FAMILIES)
    assert len(set(styles.values())) == 12  # every model told apart
    assert {styles[m][0] for m in MODELS if FAMILIES[m] == "qwen3"} == {styles["qwen3-0.6b"][0]}
    assert len({styles[m][1] for m in MODELS if FAMILIES[m] == "qwen3"}) == 5


def test_figure10_of_three_prompts(tmp_path):
    samples = {
        m: pd.DataFrame({"prompt_index": [0, 0, 1, 2], "normalized": ["paris", "rome", "cat", "monday"]})
        for m in METHODS
    }
    prompts = {0: "Name a random city.", 1: "Name a random mammal.", 2: "Name a random weekday."}
    figures.figure_open_ended_frequencies(samples, prompts, "qwen3-14b", tmp_path / "figure10.png")
    _assert_readable("figure10")


def test_figures_11_to_13_take_per_panel_axes_where_the_scales_differ(tmp_path):
    tasks = ["arc", "gsm8k", "hellaswag", "mmlu", "truthfulqa", "winogrande"]
    figures.figure_panels(_values(tasks), "accuracy", "Retention per task (Figure 11)", False, tmp_path / "f11.png")
    shared = _assert_readable("f11")["ylims"]
    assert len(set(shared)) == 1  # one scale: one axis
    slices = ["c4_en", "dolma_books", "ptb", "wikitext_103", "twitterAAE", "manosphere"]
    scale = dict(zip(slices, [10, 20, 40, 15, 300, 60]))
    figures.figure_panels(
        _values(slices, scale), "perplexity", "PALOMA perplexity (Figure 12)", False, tmp_path / "f12.png"
    )
    own = _assert_readable("f12")["ylims"]
    assert len(own) == len(slices) and own[slices.index("twitterAAE")][1] > 5 * own[slices.index("c4_en")][1]
