"""Figures of the structured-sampling benchmark (paper Figures 2-7), from the per-prompt rows and
the samples. Matplotlib with the Agg backend, no display."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from calft.methods import MAIN, METHODS
from calft.report.tables import SET_TITLES


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _method_handles(methods, undefined: bool = False) -> list:
    """Legend entries: a patch per method, and the mark of an undefined value when one is drawn."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=METHODS[method].color, label=method) for method in methods]
    if undefined:
        handles.append(Line2D([], [], color="black", marker="x", linestyle="none",
                              label="undefined (a family has no finite value)"))
    return handles


def figure_family_median(summary_rows: pd.DataFrame, prompt_sets: list[str], path: Path) -> None:
    """Figure 2: family-median normalized W1 per model and method. An undefined value has no bar: a
    cross on the axis and the word 'undefined' mark it as missing, never as large."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(prompt_sets), figsize=(6 * len(prompt_sets), 4), squeeze=False)
    for ax, prompt_set in zip(axes[0], prompt_sets):
        subset = summary_rows[summary_rows.prompt_set == prompt_set]
        models = list(subset.model.unique())
        undefined = False
        for j, method in enumerate(MAIN):
            for i, model in enumerate(models):
                value = subset[(subset.model == model) & (subset.method == method)].normalized_w1
                x = i + (j - 1) * 0.27
                if value.empty:
                    continue
                if np.isfinite(value.iloc[0]):
                    ax.bar(x, value.iloc[0], 0.27, color=METHODS[method].color)
                else:
                    undefined = True
                    ax.plot(x, 0, marker="x", color=METHODS[method].color, markersize=8, clip_on=False)
                    ax.annotate("undefined", (x, 0), xytext=(0, 6), textcoords="offset points", rotation=90,
                                ha="center", va="bottom", fontsize=7, color=METHODS[method].color)
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
        ax.set_ylim(bottom=0)
        ax.set_ylabel("family-median normalized W1")
        ax.set_title(SET_TITLES.get(prompt_set, prompt_set))
        ax.legend(handles=_method_handles(MAIN, undefined), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, format="png")
    plt.close(fig)


def figure_per_family(per_prompt: pd.DataFrame, prompt_set: str, metric: str, path: Path) -> None:
    """Figures 4-7: per-family values (mean within family) for each model, one panel per model."""
    plt = _pyplot()

    subset = per_prompt[per_prompt.prompt_set == prompt_set]
    models = list(subset.model.unique())
    fig, axes = plt.subplots(len(models), 1, figsize=(12, 3 * len(models)), squeeze=False)
    for ax, model in zip(axes[:, 0], models):
        values = subset[subset.model == model].pivot_table(index="family", columns="method", values=metric,
                                                           aggfunc="mean", dropna=False)
        values = values.reindex(columns=[m for m in MAIN if m in values.columns])
        values.plot.bar(ax=ax, width=0.8, logy=metric != "valid_rate", color=[METHODS[m].color for m in values.columns])
        ax.set_title(f"{model}: {metric} per family, {SET_TITLES.get(prompt_set, prompt_set)}")
        ax.set_xlabel("")
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def figure_ood_samples(samples: dict[str, pd.DataFrame], targets: pd.DataFrame, title: str, path: Path,
                       colors: dict[str, str] | None = None, styles: dict[str, str] | None = None) -> None:
    """Figures 3 and 14: for each OOD prompt, histograms of the valid samples of each series (label ->
    samples; coloured by `colors`, else by method, with line `styles`) over the target law (density,
    or probability mass for integer families)."""
    from matplotlib.lines import Line2D

    colors = colors or {method: METHODS[method].color for method in samples}
    styles = styles or {}

    from calft.targets.families import get_family

    plt = _pyplot()
    prompts = targets.drop_duplicates("prompt_id")
    columns = 6
    rows = -(-len(prompts) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False)
    for ax, prompt in zip(axes.ravel(), prompts.itertuples()):
        family = get_family(prompt.family)
        law = family.frozen(json.loads(prompt.params))
        low, high = law.ppf(0.001), law.ppf(0.999)
        if family.integer:
            grid = np.arange(np.floor(low), np.ceil(high) + 1)
            target = law.pmf(grid)
            ax.plot(grid, target, "ko", ms=3)
        else:
            grid = np.linspace(low, high, 200)
            target = law.pdf(grid)
            ax.plot(grid, target, "k-", lw=1.2)
        top = np.percentile(target, 95)  # a density spike at the edge must not flatten the panel
        for method, frame in samples.items():
            values = frame[(frame.prompt_id == prompt.prompt_id) & frame.valid].value
            values = values[(values >= low) & (values <= high)]
            if len(values):
                bins = np.arange(np.floor(low) - 0.5, np.ceil(high) + 1) if family.integer else 30
                heights, _, _ = ax.hist(values, bins=bins, density=True, histtype="step", color=colors[method],
                                        linestyle=styles.get(method, "-"))
                top = max(top, float(np.percentile(heights, 95)))
        ax.set_ylim(0, 1.3 * top)
        ax.set_title(prompt.prompt_id, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(prompts):]:
        ax.axis("off")
    target = Line2D([], [], color="black", label="target law")
    series = [Line2D([], [], color=colors[label], linestyle=styles.get(label, "-"), label=label) for label in samples]
    fig.legend(handles=[target, *series], loc="upper right", ncols=min(6, 1 + len(series)), fontsize=8)
    fig.suptitle(title, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


