"""Figures of the structured-sampling benchmark (paper Figures 2-7), from the per-prompt rows and
the samples. Matplotlib with the Agg backend, no display."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from calft.methods import BASE, MAIN, METHODS
from calft.methods import shown as shown_methods
from calft.metrics import METRICS
from calft.report.tables import SET_TITLES
from calft.targets.families import get_family


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain(texts) -> None:
    """Draw these texts as they are: generated text is data ('$x^$' is not math). Math stays on for
    the rest, which a log axis's tick labels need."""
    for text in texts:
        text.set_parse_math(False)


DPI = 100
MAX_WIDTH = 24.0  # inches: 2400 px at DPI
MAX_ASPECT = 3.0  # width / height


def grid(count: int, panel_width: float, panel_height: float, header: float, most_columns: int = 6):
    """(rows, columns, figure size) for `count` panels: as many columns as fit in MAX_WIDTH (at most
    `most_columns`), fewer where the figure would be more than MAX_ASPECT times wider than high."""
    panel_width = min(panel_width, MAX_WIDTH)
    columns = max(1, min(count, most_columns, int(MAX_WIDTH // panel_width)))
    while columns > 1 and columns * panel_width > MAX_ASPECT * (-(-count // columns) * panel_height + header):
        columns -= 1
    rows = -(-count // columns)
    return rows, columns, (columns * panel_width, rows * panel_height + header)


def header_height(handles: int, per_row: int = 6) -> float:
    """Inches above the panels for the title line and a legend of `handles` entries below it."""
    return 0.45 + 0.25 * -(-handles // per_row)


def finish(fig, path: Path, title: str, handles: list, per_row: int = 6) -> None:
    """The title on the first line, the legend below it, both above the panels (never over them), saved."""
    height = fig.get_figheight()
    fig.text(0.01, 1 - 0.08 / height, title, va="top", ha="left", fontsize=10)
    if handles:
        fig.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.01, 1 - 0.36 / height),
            ncols=min(per_row, len(handles)),
            fontsize=8,
            frameon=False,
        )
    fig.tight_layout(rect=(0, 0, 1, 1 - header_height(len(handles), per_row) / height))
    fig.savefig(path, dpi=DPI, format="png")
    _pyplot().close(fig)


def _method_handles(methods, undefined: bool = False) -> list:
    """Legend entries: a patch per method, and the mark of an undefined value when one is drawn."""
    from matplotlib.patches import Patch

    handles = [Patch(color=METHODS[method].color, label=method) for method in methods]
    if undefined:
        handles.append(
            Patch(facecolor="none", edgecolor="black", hatch=UNDEFINED_HATCH, label="undefined (no finite value)")
        )
    return handles


UNDEFINED_HATCH = "///"


METRIC_LABELS = {  # the measures of retention and perplexity; the per-prompt metrics' are calft.metrics'
    "perplexity": "perplexity (lower is better)",
    "bits_per_byte": "bits per byte (lower is better)",
}


def _mark_undefined(ax, x: float, width: float, color: str) -> None:
    """An undefined value, as the paper draws it: an empty hatched bar the height of the panel."""
    ax.bar(
        x,
        1,
        width,
        bottom=0,
        transform=ax.get_xaxis_transform(),
        fill=False,
        hatch=UNDEFINED_HATCH,
        edgecolor=color,
        linewidth=0.8,
    )


def _upright_label(ax, text: str, xy: tuple, va: str, fontsize: int, **where) -> None:
    """Black text on a white box, turned upright along a bar: readable on any bar colour."""
    box = {"boxstyle": "round,pad=0.12", "facecolor": "white", "edgecolor": "none", "alpha": 0.9}
    ax.annotate(text, xy, rotation=90, ha="center", va=va, fontsize=fontsize, color="black", bbox=box, **where)


def _mark_few(ax, x: float, text: str) -> None:
    """A bar resting on few valid samples: their count (or a dagger), at the foot of the panel."""
    _upright_label(ax, text, (x, 0.02), "bottom", 6, xycoords=ax.get_xaxis_transform())


def _whisker(ax, x: float, value: float, row: pd.DataFrame) -> None:
    """A bar's interval (normalized_w1_low to _high in `row`), where both bounds are finite."""
    low, high = (float(row.get(f"normalized_w1_{end}", pd.Series([np.nan])).iloc[0]) for end in ("low", "high"))
    if np.isfinite(low) and np.isfinite(high):
        ax.errorbar(x, value, yerr=[[value - low], [high - value]], fmt="none", ecolor="black", capsize=3, lw=1)


def few_note(min_valid_samples: int, dagger: bool = False) -> str:
    mark = "†" if dagger else "n=k"
    return f"{mark}: resting on fewer than {min_valid_samples} valid samples"


PAPER_PANEL_ORDER = ("ood", "unseen")  # Figure 2: held-out families left, unseen parameters right


def figure_family_median(
    summary_rows: pd.DataFrame, prompt_sets: list[str], path: Path, min_valid_samples: int = 1
) -> None:
    """Figure 2: family-median normalized W1 per model and method, OOD on the left as in the paper,
    the legend above the panels; a bar some family of which has fewer than `min_valid_samples` valid
    samples carries a dagger."""
    plt = _pyplot()
    models = summary_rows.model.nunique()
    shown = _shown(summary_rows)
    width = 0.8 / len(shown)
    header = header_height(len(shown) + 1)
    width_for_title = 9.6 / min(2, len(prompt_sets))  # the title is one line of about 9.5 inches
    rows, columns, size = grid(len(prompt_sets), max(6.0, 0.6 * models + 1, width_for_title), 4.8, header)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    undefined = False
    order = {name: position for position, name in enumerate(PAPER_PANEL_ORDER)}
    prompt_sets = sorted(prompt_sets, key=lambda name: order.get(name, len(order)))
    for ax, prompt_set in zip(axes.ravel(), prompt_sets):
        subset = summary_rows[summary_rows.prompt_set == prompt_set]
        models = list(subset.model.unique())
        for j, method in enumerate(shown):
            for i, model in enumerate(models):
                row = subset[(subset.model == model) & (subset.method == method)]
                x = i + (j - (len(shown) - 1) / 2) * width
                if row.empty:
                    continue
                value = row.normalized_w1
                if np.isfinite(value.iloc[0]):
                    ax.bar(x, value.iloc[0], width, color=METHODS[method].color)
                    _whisker(ax, x, value.iloc[0], row)
                    if row.get("fewest_family_valid_samples", pd.Series([np.inf])).iloc[0] < min_valid_samples:
                        _mark_few(ax, x, "†")
                else:
                    undefined = True
                    _mark_undefined(ax, x, width, METHODS[method].color)
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"family-median {METRICS['normalized_w1'].axis_label}")
        ax.set_title(SET_TITLES.get(prompt_set, prompt_set))
    for ax in axes.ravel()[len(prompt_sets) :]:
        ax.axis("off")
    title = (
        f"Family-median normalized W1 (Figure 2); whiskers: the tables' intervals; "
        f"{few_note(min_valid_samples, dagger=True)} in some family"
    )
    finish(fig, path, title, _method_handles(shown, undefined))


def _shown(rows: pd.DataFrame) -> list[str]:
    """The bars of a figure, in table order (calft.methods.shown)."""
    return shown_methods(rows.method)


def _tuned(rows: pd.DataFrame) -> pd.Series:
    """Which rows are of a method with an adapter (trained by calft or declared)."""
    return rows.method.map(lambda method: METHODS[method].adapter).astype(bool)


def per_family_values(per_prompt: pd.DataFrame, prompt_set: str, metric: str) -> pd.DataFrame:
    """The per-distribution value of Figures 4-7: for each (family, model, method), the median over
    the family's prompts of normalized W1 (the paper's captions), the mean of logit KL and valid
    rate (as in the tables); NaN where no prompt has a finite value."""
    subset = per_prompt[(per_prompt.prompt_set == prompt_set) & per_prompt.method.isin(MAIN)]
    grouped = subset.groupby(["family", "model", "method"], sort=False)
    values = grouped[metric].agg(METRICS[metric].per_distribution).reset_index()
    if METRICS[metric].on_valid_samples and "num_valid" in subset:
        values["valid"] = grouped.num_valid.sum().to_numpy()  # the valid samples each bar rests on
    return values


def _clipped_axis(values: pd.Series, fine_tuned: pd.Series, log: bool) -> tuple[float, float]:
    """The value axis. A linear one starts at 0 and holds every value; a log one covers the
    fine-tuned values (what the figure compares), widened a little: a base value of 1e30 would
    otherwise flatten every other bar, so the values beyond it are drawn to the edge and labelled."""
    if not log:
        finite = values[np.isfinite(values)]
        return 0.0, (1.15 * float(finite.max()) if len(finite) and finite.max() > 0 else 1.0)
    positive = fine_tuned[np.isfinite(fine_tuned) & (fine_tuned > 0)]
    if positive.empty:
        positive = values[np.isfinite(values) & (values > 0)]
    if positive.empty:
        return 1e-3, 1.0
    return float(positive.min()) / 3, float(positive.max()) * 3


def figure_per_family(
    per_prompt: pd.DataFrame, prompt_set: str, metric: str, path: Path, min_valid_samples: int = 1
) -> None:
    """Figures 4-7: one panel per distribution (family), base, soft and hard across the models; a bar
    of a metric computed from valid samples resting on fewer than `min_valid_samples` shows their count."""
    statistic = f"{METRICS[metric].per_distribution} over its prompts"
    title = f"Per distribution ({statistic}), {SET_TITLES.get(prompt_set, prompt_set)}"
    values = per_family_values(per_prompt, prompt_set, metric)
    if "valid" in values:
        values["few"] = values.valid.where(values.valid < min_valid_samples)
        title += f"; {few_note(min_valid_samples)}"
    figure_panels(
        values.assign(panel=values.family.map(lambda family: get_family(family).display)).rename(
            columns={metric: "value"}
        ),
        METRICS[metric].axis_label,
        title,
        METRICS[metric].log_axis,
        path,
    )


def figure_panels(values: pd.DataFrame, label: str, title: str, log: bool, path: Path) -> None:
    """One panel per `panel` value (a distribution, a task, a slice), base, soft and hard across the
    models. The value axis covers the fine-tuned values, one axis for every panel unless their scales
    differ (then each its own); a value beyond it reaches the edge with its number printed, an
    undefined one is a cross on the axis."""
    plt = _pyplot()
    panels, models = list(dict.fromkeys(values.panel)), list(dict.fromkeys(values.model))
    limits = {
        panel: _clipped_axis(group.value, group[_tuned(group)].value, log)
        for panel, group in values.groupby("panel", sort=False)
    }
    highs = [high for _, high in limits.values()]
    shared = max(highs) <= 3 * min(highs)
    if shared:
        common = _clipped_axis(values.value, values[_tuned(values)].value, log)
        limits = dict.fromkeys(panels, common)
    header = header_height(len(_shown(values)) + 1)
    rows, columns, size = grid(len(panels), max(2.6, 0.5 * len(models) + 0.8), 2.9, header)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False, sharey=shared)
    undefined = False
    for ax, panel in zip(axes.ravel(), panels):
        undefined |= _panel_bars(ax, values[values.panel == panel], models, limits[panel], log)
        ax.set_title(panel, fontsize=9)
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=7)
        ax.tick_params(axis="y", which="both", labelsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel(label, fontsize=8)
    axis = "one value axis" if shared else "each panel its own value axis"
    axis += "; a value beyond it is printed on its bar" if log else ""  # a linear axis holds every value
    finish(fig, path, f"{title}; {axis}", _method_handles(_shown(values), undefined))


def _panel_bars(ax, values: pd.DataFrame, models: list[str], limits: tuple[float, float], log: bool) -> bool:
    """One panel's bars (a group per model, a bar per method) on the axis `limits`; True when a value
    is undefined."""
    low, high = limits
    bars = _shown(values)
    width = 0.8 / len(bars)
    undefined = False
    for j, method in enumerate(bars):
        for i, model in enumerate(models):
            match = values[(values.model == model) & (values.method == method)].value
            if match.empty:
                continue
            x, value = i + (j - (len(bars) - 1) / 2) * width, float(match.iloc[0])
            if not np.isfinite(value):
                undefined = True
                _mark_undefined(ax, x, width, METHODS[method].color)
                continue
            shown = min(max(value, low), high)
            ax.bar(x, shown - (low if log else 0), width, bottom=low if log else 0, color=METHODS[method].color)
            few = values[(values.model == model) & (values.method == method)].get("few")
            if few is not None and np.isfinite(few.iloc[0]):
                _mark_few(ax, x, f"n={few.iloc[0]:.0f}")
            if value > high:
                _upright_label(ax, f"{value:.2g}", (x, high), "top", 7, xytext=(0, -2), textcoords="offset points")
    ax.set_yscale("log" if log else "linear")
    ax.set_ylim(low, high)
    return undefined


def figure_ood_samples(
    samples: dict[str, pd.DataFrame],
    targets: pd.DataFrame,
    title: str,
    path: Path,
    colors: dict[str, str] | None = None,
    styles: dict[str, str] | None = None,
) -> None:
    """Figures 3 and 14: for each OOD prompt, histograms of the valid samples of each series (label ->
    samples; coloured by `colors`, else by method, with line `styles`) over the target law (density,
    or probability mass for integer families)."""
    from matplotlib.lines import Line2D

    colors = colors or {method: METHODS[method].color for method in samples}
    styles = styles or {}

    plt = _pyplot()
    prompts = targets.drop_duplicates("prompt_id")
    target = Line2D([], [], color="black", label="target law")
    series = [Line2D([], [], color=colors[label], linestyle=styles.get(label, "-"), label=label) for label in samples]
    rows, columns, size = grid(len(prompts), 3.2, 2.6, header_height(1 + len(series)))
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for ax, prompt in zip(axes.ravel(), prompts.itertuples()):
        _ood_panel(ax, prompt, samples, colors, styles)
    for ax in axes.ravel()[len(prompts) :]:
        ax.axis("off")
    for ax in axes.ravel()[max(0, len(prompts) - columns) : len(prompts)]:  # the lowest panel of each column
        ax.set_xlabel("sampled value", fontsize=7)
    finish(fig, path, title, [target, *series])


def _ood_panel(ax, prompt, samples: dict[str, pd.DataFrame], colors: dict, styles: dict) -> None:
    """One prompt of Figures 3, 8 and 14: the target law and a histogram of each series' valid
    samples. The panel says how many valid samples each series drew and how many fall outside the
    plotted range; a bar cut by the value axis ends in a triangle."""
    family = get_family(prompt.family)
    params = json.loads(prompt.params)
    law = family.frozen(params)
    low, high = law.ppf(0.001), law.ppf(0.999)
    if family.integer:
        grid = np.arange(np.floor(low), np.ceil(high) + 1)
        target = law.pmf(grid)
        ax.plot(grid, target, "ko", ms=3)
    else:
        grid = np.linspace(low, high, 200)
        target = law.pdf(grid)
        ax.plot(grid, target, "k-", lw=1.2)
    # A density spike at the edge must not flatten the panel; a probability mass is always shown.
    top = float(target.max()) if family.integer else np.percentile(target, 95)
    drawn, counts = [], []
    for method, frame in samples.items():
        valid = frame[(frame.prompt_id == prompt.prompt_id) & frame.valid].value
        values = valid[(valid >= low) & (valid <= high)]
        outside = len(valid) - len(values)
        counts.append((method, f"{method}: {len(valid)} valid" + (f", {outside} off the axis" if outside else "")))
        if len(values):
            bins = np.arange(np.floor(low) - 0.5, np.ceil(high) + 1) if family.integer else 30
            style = {"color": colors[method], "linestyle": styles.get(method, "-")}
            heights, edges, _ = ax.hist(values, bins=bins, density=True, histtype="step", **style)
            drawn.append((method, heights, edges))
            top = max(top, float(np.percentile(heights, 95)))
    ceiling = 1.3 * top
    ax.set_ylim(0, ceiling)
    for method, heights, edges in drawn:
        cut = heights > ceiling
        centres = (edges[:-1] + edges[1:]) / 2
        ax.plot(centres[cut], np.full(cut.sum(), ceiling), "^", color=colors[method], ms=4, clip_on=False)
    for line, (method, text) in enumerate(counts):
        ax.text(
            0.98,
            0.97 - 0.09 * line,
            text,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=5.5,
            color=colors[method],
        )
    shown = ", ".join(f"{name}={value:g}" for name, value in params.items())
    ax.set_title(f"{family.display}({shown})", fontsize=7)
    ax.set_ylabel("probability" if family.integer else "density", fontsize=6)
    ax.tick_params(which="both", labelsize=6)


OPEN_ENDED_MEASURES = {
    "support_size": "top-90% first-token support (higher: broader)",
    "unique_fraction": "unique answers, fraction (higher: more diverse)",
}


FAMILY_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
SIZE_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def model_styles(families: dict[str, str]) -> dict[str, tuple[str, str]]:
    """model -> (colour, marker): a colour per model family, a marker per model within its family,
    in the given (table) order, as the paper's scatter plots."""
    names = list(dict.fromkeys(families.values()))
    seen: dict[str, int] = {}
    styles = {}
    for model, family in families.items():
        rank = seen[family] = seen.get(family, -1) + 1
        styles[model] = (
            FAMILY_COLORS[names.index(family) % len(FAMILY_COLORS)],
            SIZE_MARKERS[rank % len(SIZE_MARKERS)],
        )
    return styles


def figure_open_ended_per_prompt(rows: pd.DataFrame, path: Path) -> None:
    """Figure 9: one point per (prompt, model), base on x against a fine-tuned method on y, for the
    first-token support size and the unique-answer rate; above the diagonal, fine-tuning widened it.
    `rows` carry each model's `family`: a colour per family, a marker per model within it."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    trained = [m for m in MAIN if METHODS[m].adapter and m in set(rows.method)]
    base = rows[rows.method == BASE].set_index(["model", "prompt_index"])
    styles = model_styles(dict(zip(rows.model, rows.family)))
    handles = [
        Line2D([], [], color=color, marker=marker, linestyle="none", label=model)
        for model, (color, marker) in styles.items()
    ]
    _, _, size = grid(len(OPEN_ENDED_MEASURES) * len(trained), 5.0, 4.6, header_height(len(handles)), len(trained))
    fig, axes = plt.subplots(len(OPEN_ENDED_MEASURES), len(trained), figsize=size, squeeze=False)
    for row, (measure, label) in enumerate(OPEN_ENDED_MEASURES.items()):
        for column, method in enumerate(trained):
            ax = axes[row, column]
            tuned = rows[rows.method == method].set_index(["model", "prompt_index"])[measure]
            pairs = pd.concat([base[measure].rename("base"), tuned.rename("tuned")], axis=1, join="inner").dropna()
            for model, (color, marker) in styles.items():
                mine = pairs.xs(model, level="model") if model in pairs.index.get_level_values("model") else pairs[:0]
                ax.scatter(mine.base, mine.tuned, s=12, alpha=0.6, color=color, marker=marker, linewidths=0)
            top = max(1.0, float(pairs.max().max()) if len(pairs) else 1.0)
            bottom = 1 if measure == "support_size" else 0
            ax.plot([bottom, top], [bottom, top], "k--", lw=0.8)
            if measure == "support_size":
                ax.set_xscale("log")
                ax.set_yscale("log")
            ax.set_xlabel(f"base: {label}", fontsize=8)
            ax.set_ylabel(f"{method}: {label}", fontsize=8)
            higher = int((pairs.tuned > pairs.base).sum())
            ax.set_title(f"{method} vs base: {higher} of {len(pairs)} prompt/model pairs above", fontsize=9)
    title = "Open-ended generation per prompt (Figure 9); dashed: no change; colour: model family, marker: model"
    finish(fig, path, title, handles)


def displayed_answers(shares: dict[str, pd.Series], per_method: int = 10, shown: int = 15) -> list[str]:
    """Figure 10's labels, by the paper's rule: the top `per_method` answers of each method, their
    union ranked by peak, then total, share across the methods, the first `shown`. Ties (20 answers
    at 1/20 each) go round the methods, each one's next best in turn, so no method's answers are
    hidden behind another's."""
    rank = {}
    for method_shares in shares.values():
        ordered = method_shares.sort_values(ascending=False, kind="stable").index[:per_method]
        for position, answer in enumerate(a for a in ordered if a):  # an empty output is no answer
            rank[answer] = min(rank.get(answer, position), position)
    table = pd.DataFrame(shares).reindex(list(rank)).fillna(0.0)
    peak, total = table.max(axis=1), table.sum(axis=1)
    return sorted(rank, key=lambda answer: (-peak[answer], -total[answer], rank[answer]))[:shown]


def figure_open_ended_frequencies(
    samples: dict[str, pd.DataFrame], prompts: dict[int, str], model: str, path: Path
) -> None:
    """Figure 10: for each of `prompts` (index -> text), the shares of its most frequent answers
    under each method (method -> open_ended_samples rows), chosen by `displayed_answers`."""
    plt = _pyplot()
    prompts = prompts or {-1: "no open-ended prompt was sampled"}
    methods = [m for m in MAIN if m in samples]
    rows, columns, size = grid(len(prompts), 4.6, 4.6, header_height(len(methods)))
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for ax in axes.ravel()[len(prompts) :]:
        ax.axis("off")
    for ax, (index, text) in zip(axes.ravel(), prompts.items()):
        counts = {
            m: samples[m][samples[m].prompt_index == index].normalized.value_counts(normalize=True) for m in methods
        }
        answers = displayed_answers(counts)
        height = 0.8 / max(1, len(methods))
        for j, method in enumerate(methods):
            values = [float(counts[method].get(answer, 0.0)) for answer in answers]
            positions = np.arange(len(answers)) + (j - (len(methods) - 1) / 2) * height
            ax.barh(positions, values, height, color=METHODS[method].color, label=method)
        ax.set_yticks(range(len(answers)), [a if len(a) <= 24 else a[:23] + "…" for a in answers], fontsize=7)
        _plain(ax.get_yticklabels())
        ax.invert_yaxis()
        ax.set_xlabel("share of the samples", fontsize=8)
        _plain([ax.set_title(textwrap.fill(text, 48), fontsize=8)])
        if not answers:
            ax.text(0.5, 0.5, "no answers", transform=ax.transAxes, ha="center")
    title = f"{model}: most frequent answers of open-ended prompts (Figure 10; each method's top 10, the 15 highest)"
    finish(fig, path, title, _method_handles(methods))


CURVES = (("loss", "training loss", False), ("grad_norm", "gradient norm (before clipping; none is applied)", True))


def panel_curves(logs: dict[tuple[str, str], pd.DataFrame], method: str, measure: str) -> dict[str, pd.Series]:
    """model -> `measure` by optimizer step, for the logs of `method` that hold it (a log written before
    calft recorded gradient norms has none)."""
    return {
        model: rows.set_index("step")[measure]
        for (model, name), rows in logs.items()
        if name == method and measure in rows and rows[measure].notna().any()
    }


def figure_training_curves(
    logs: dict[tuple[str, str], pd.DataFrame],
    families: dict[str, str],
    path: Path,
    title: str = "Training curves from the training logs (calft's own figure)",
) -> None:
    """calft's training curves: a panel per (trained method, measure), loss and gradient norm against
    the optimizer step, a line per model (colour by family, marker by model, as Figure 9), smoothed
    over a fiftieth of the run with the raw steps faint behind. A log without gradient norms (written
    before calft recorded them) leaves its model out of that panel."""
    plt = _pyplot()
    trained = list(dict.fromkeys(method for _, method in logs))
    styles = model_styles(families)
    panels = [(method, curve) for method in trained for curve in CURVES]
    header = header_height(len(families))
    rows, columns, size = grid(len(panels), 5.5, 3.4, header, most_columns=2)
    fig, axes = plt.subplots(rows, columns, figsize=size, squeeze=False)
    for ax, (method, (measure, label, log)) in zip(axes.ravel(), panels):
        for model, values in panel_curves(logs, method, measure).items():
            color, marker = styles[model]
            smoothed = values.ewm(span=max(len(values) // 50, 1)).mean()
            ax.plot(values.index, values, color=color, alpha=0.15, linewidth=0.6)
            ax.plot(
                values.index,
                smoothed,
                color=color,
                linewidth=1.2,
                marker=marker,
                markevery=max(len(values) // 5, 1),
                markersize=4,
            )
        ax.set_yscale("log" if log else "linear")
        ax.set_title(f"{method}: {label}", fontsize=9)
        ax.set_xlabel("optimizer step", fontsize=8)
        ax.tick_params(axis="both", which="both", labelsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], color=color, marker=marker, linewidth=1.2, markersize=4, label=model)
        for model, (color, marker) in styles.items()
    ]
    finish(fig, path, title, handles)
