"""The report's registry: every table and figure calft writes, each with the paper item it reproduces.

An entry holds the item's label ("Figure 2"; empty for calft's own outputs), what it shows, the
files it writes in a selection (calft.report.settings.ReportSelection), the writer of
calft.report.writers that makes them, the kinds of input it reads (calft.layout.report_inputs), the
config keys that turn it on, and where `snakemake --report` files it. The aggregate rule's inputs and
outputs, the report captions, the aggregate command (a loop over the items) and the paper index
(results/tables/index.md) all read this list; adding a figure is one entry here
and its drawing function in calft.report.writers.

Cheap to import (the workflow reads it in every job): no pandas, no plotting; a writer is named here
and imported when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from calft import methods, metrics
from calft.evaluations import EVALUATIONS

TABLE_SUFFIXES = ("csv", "md", "tex")
ABLATION_TABLES = {methods.SOFT: 25, methods.HARD: 26}  # the paper's ablation table of each trained method
PAPER_SETS = ("ood", "unseen")  # the prompt sets the paper's items show
OTHER_SETS = "other"  # an item's prompt sets: those of the selection the paper has no item for
ALL_SETS = "all"  # an item's prompt sets: every one of the selection
PAPER_FIGURE_METRICS = ("normalized_w1", "logit_kl")  # the metrics of Figures 4-7


def tables(*names: str) -> list[str]:
    return [f"tables/{name}.{suffix}" for name in names for suffix in TABLE_SUFFIXES]


def figures(*names: str) -> list[str]:
    return [f"figures/{name}.png" for name in names]


def prompt_sets(selection, which: str) -> list[str]:
    """The selection's prompt sets that an item of `which` (a set, OTHER_SETS or ALL_SETS) covers."""
    if which == OTHER_SETS:
        return [name for name in selection.prompt_sets if name not in PAPER_SETS]
    if which == ALL_SETS:
        return list(selection.prompt_sets)
    return [which] if which in selection.prompt_sets else []


def figure_metrics(which: tuple[str, ...] | str) -> list[str]:
    """The metrics of a per-distribution item: those named, or, for "others", the metrics drawn per
    distribution (calft.metrics) that no paper figure shows."""
    if which != "others":
        return list(which)
    return [metric.name for metric in metrics.in_figures() if metric.name not in PAPER_FIGURE_METRICS]


def trained(selection) -> bool:
    return any(methods.METHODS[name].training for name in selection.methods)


@dataclass(frozen=True)
class Item:
    label: str  # the paper's name for it, "" for an output of calft's own
    shows: str
    files: Callable  # selection -> its files, "tables/<name>.<suffix>" or "figures/<name>.png"; [] when off
    writer: str | None  # the function of calft.report.writers that writes them; None: another item's does
    needs: str = ""  # the config keys that turn it on, for the index
    category: str = "structured sampling"  # its section in `snakemake --report`
    caption: str = ""  # workflow/report/<caption>.rst; by default each file's own stem
    options: dict = field(default_factory=dict)  # passed to the writer
    ablation: bool = False  # written by the ablations target from its own selection
    reads: tuple[str, ...] = ()  # the kinds of calft.layout.report_inputs its writer reads

    def write(self, report) -> None:
        from calft.report import writers

        getattr(writers, self.writer)(report, **self.options)


ROWS = ("scores", "logit_kl")  # the per-prompt rows of structured sampling
TRANSFER = ("open_ended", "mcq", "noveltybench")  # the columns of Table 1
NO_CONFIG = "the method's schematic, not a result"
OOD = "`ood` in prompts.evaluation"
UNSEEN = "`unseen` in prompts.evaluation"
WITH_TRAINED = "with soft or hard in methods"


def _per_family(label: str, shows: str, which: str, metrics: tuple[str, ...] | str, needs: str) -> Item:
    return Item(
        label,
        shows,
        lambda s: figures(*(f"per_family_{p}_{m}" for p in prompt_sets(s, which) for m in figure_metrics(metrics))),
        "per_family",
        needs,
        caption="per_family",
        options={"which": which, "metrics": metrics},
        reads=ROWS,
    )


def _per_set(label: str, shows: str, prefix: str, writer: str, which: str, needs: str, baselines: bool = False) -> Item:
    """A table per prompt set (`<prefix><set>`); with `baselines`, only when the selection has one."""
    return Item(
        label,
        shows,
        lambda s: tables(*(f"{prefix}{p}" for p in prompt_sets(s, which))) if s.baselines or not baselines else [],
        writer,
        needs,
        "transfer" if baselines else "structured sampling",
        prefix.rstrip("_"),
        {"which": which},
        reads=ROWS + TRANSFER if baselines else ROWS,  # Tables 8-9 show the open-ended unique rate
    )


ITEMS = (
    Item(
        "",
        "every prompt's scores, and the family aggregates of each model, method and prompt set",
        lambda s: ["tables/summary.csv", "tables/per_prompt.csv"],
        "summary",
        reads=ROWS,
    ),
    Item("Figure 1", "the Calibration Fine-Tuning pipeline", lambda s: [], None, NO_CONFIG),
    Item(
        "Figure 2",
        "family-median normalized W1 per model and method",
        lambda s: figures("figure2_family_median_w1"),
        "figure2",
        reads=ROWS,
    ),
    Item(
        "Figure 3",
        "OOD samples against the target",
        lambda s: figures(*(f"figure3_ood_samples_{m}" for m in s.models)) if "ood" in s.prompt_sets else [],
        "figure3",
        OOD,
        caption="figure3_ood_samples",
        reads=("ood_samples",),
    ),
    _per_family("Figure 4", "per-distribution median W1, held-out families", "ood", ("normalized_w1",), OOD),
    _per_family("Figure 5", "per-distribution logit KL, held-out families", "ood", ("logit_kl",), OOD),
    _per_family("Figure 6", "per-distribution logit KL, unseen parameters", "unseen", ("logit_kl",), UNSEEN),
    _per_family("Figure 7", "per-distribution median W1, unseen parameters", "unseen", ("normalized_w1",), UNSEEN),
    _per_family("", "per-distribution W1 and logit KL, the other prompt sets", OTHER_SETS, PAPER_FIGURE_METRICS, ""),
    _per_family("", "per-distribution figures of the metrics the paper draws none of", ALL_SETS, "others", ""),
    Item(
        "Figure 8",
        "OOD samples: base, SSOT and soft",
        lambda s: (
            figures(*(f"figure8_ood_samples_ssot_{m}" for m in s.models))
            if "ood" in s.prompt_sets and s.baselines
            else []
        ),
        "figure8",
        f"transfer.ssot.enabled and {OOD}",
        caption="figure8_ood_samples_ssot",
        reads=("ood_samples",),
    ),
    Item(
        "Figure 9",
        "open-ended support and unique rate per prompt, base against fine-tuned",
        lambda s: figures("figure9_open_ended_per_prompt") if s.runs("open_ended") and trained(s) else [],
        "figure9",
        f"transfer.open_ended.enabled, {WITH_TRAINED}",
        "transfer",
        reads=("open_ended", "open_ended_samples"),  # and the Appendix D.4 tables
    ),
    Item(
        "Figure 10",
        "open-ended answer frequencies (the city, mammal and weekday prompts where sampled, else the first three)",
        lambda s: figures(*(f"figure10_open_ended_frequencies_{m}" for m in s.models)) if s.runs("open_ended") else [],
        "figure10",
        "transfer.open_ended.enabled",
        "transfer",
        "figure10_open_ended_frequencies",
        reads=("open_ended", "open_ended_samples"),
    ),
    Item(
        "Figure 11",
        "retention per TinyBenchmarks task",
        lambda s: figures("figure11_retention_per_task") if s.runs("retention") else [],
        "figure11",
        "retention.enabled",
        "retention and perplexity",
        reads=("retention",),
    ),
    Item(
        "Figure 12",
        "PALOMA perplexity per slice",
        lambda s: figures("figure12_paloma_perplexity") if s.runs("perplexity") else [],
        "perplexity_figure",
        "perplexity.enabled",
        "retention and perplexity",
        options={"number": 12, "measure": "perplexity"},
        reads=("perplexity",),
    ),
    Item(
        "Figure 13",
        "PALOMA bits per byte per slice",
        lambda s: figures("figure13_paloma_bits_per_byte") if s.runs("perplexity") else [],
        "perplexity_figure",
        "perplexity.enabled",
        "retention and perplexity",
        options={"number": 13, "measure": "bits_per_byte"},
        reads=("perplexity",),
    ),
    Item(
        "Figure 14",
        "OOD samples of the soft decimals ablation",
        lambda s: (
            [f"figure14_ood_samples_by_decimals_{m}.png" for m in s.soft_models] if "ood" in s.prompt_sets else []
        ),
        None,
        f"a soft variant in ablations.variants, {OOD}",
        "ablations",
        "figure14_ood_samples_by_decimals",
        ablation=True,
    ),
    Item(
        "Table 1",
        "transfer summary: open-ended support and unique rate, MCQ TV, NoveltyBench utility",
        lambda s: tables("transfer") if s.transfer else [],
        "table1",
        "transfer.open_ended.enabled, transfer.mcq.enabled or transfer.noveltybench.enabled",
        "transfer",
        reads=TRANSFER,
    ),
    Item(
        "Table 2",
        "retention (gp-IRT) and PALOMA perplexity",
        lambda s: tables("retention_perplexity") if s.runs("retention") or s.runs("perplexity") else [],
        "table2",
        "retention.enabled or perplexity.enabled",
        "retention and perplexity",
        reads=("retention", "perplexity"),
    ),
    Item(
        "Table 3",
        "shared training and data-construction settings",
        lambda s: tables("table3_shared_hyperparameters") if trained(s) else [],
        "tables3_4",
        "soft or hard in methods",
        "settings and cost",
        reads=("train_log",),
    ),
    Item(
        "Table 4",
        "method-specific hyperparameters",
        lambda s: tables("table4_method_hyperparameters") if trained(s) else [],
        None,  # written with Table 3, from the same training logs
        "soft or hard in methods",
        "settings and cost",
    ),
    Item(
        "Table 5",
        "the 30 distribution families",
        lambda s: tables("table5_families"),
        "table5",
        category="settings and cost",
    ),
    _per_set("Table 6", "structured sampling, held-out families", "structured_", "structured", "ood", OOD),
    _per_set("Table 7", "structured sampling, unseen parameters", "structured_", "structured", "unseen", UNSEEN),
    _per_set("", "structured sampling, the other prompt sets", "structured_", "structured", OTHER_SETS, ""),
    _per_set(
        "Table 8",
        "base, soft and SSOT, held-out families",
        "ssot_",
        "ssot",
        "ood",
        f"transfer.ssot.enabled and {OOD}",
        baselines=True,
    ),
    _per_set(
        "Table 9",
        "base, soft and SSOT, unseen parameters",
        "ssot_",
        "ssot",
        "unseen",
        f"transfer.ssot.enabled and {UNSEEN}",
        baselines=True,
    ),
    _per_set(
        "",
        "base, soft and SSOT, the other prompt sets",
        "ssot_",
        "ssot",
        OTHER_SETS,
        "",
        baselines=True,
    ),
    Item(
        "Table 10",
        "NoveltyBench distinct and utility per split",
        lambda s: tables("table10_noveltybench_splits") if s.runs("noveltybench") else [],
        "table10",
        "transfer.noveltybench.enabled",
        "transfer",
        reads=("noveltybench",),
    ),
    *(
        Item(
            label,
            shows,
            lambda s, regime=regime: (
                tables(novelty_case_tables(s.methods)[regime])
                if s.runs("noveltybench") and regime in novelty_case_tables(s.methods)
                else []
            ),
            "novelty_cases",
            f"transfer.noveltybench.enabled, with base and {pair} in methods",
            "transfer",
            options={"regime": regime},
            reads=("noveltybench_generations",),
        )
        for label, shows, regime, pair in (
            ("Tables 11-13", "NoveltyBench cases where soft helps", "soft_helps", "soft"),
            ("Tables 14-16", "NoveltyBench cases where hard is competitive or best", "hard_best", "hard"),
            ("Tables 17-19", "NoveltyBench cases where fine-tuning hurts", "failures", "soft or hard"),
        )
    ),
    Item(
        "Table 20",
        "MCQ parse rate and answer-position TV (the MCQ columns)",
        lambda s: tables("transfer") if s.runs("mcq") else [],
        None,  # the MCQ columns of Table 1's file
        "transfer.mcq.enabled",
        "transfer",
    ),
    Item(
        "Table 21",
        "retention per task and model, and per task over the models (the right half); the left half, per "
        "model over the tasks, is Table 2's retention column",
        lambda s: tables("retention_tasks", "table21_retention_tasks_model_mean") if s.runs("retention") else [],
        "table21",
        "retention.enabled",
        "retention and perplexity",
        reads=("retention",),
    ),
    Item(
        "Table 22",
        "PALOMA per model (the `all` rows) and slice",
        lambda s: tables("perplexity_slices") if s.runs("perplexity") else [],
        "table22",
        "perplexity.enabled",
        "retention and perplexity",
        reads=("perplexity",),
    ),
    Item(
        "Table 23",
        "PALOMA per slice, over the models",
        lambda s: tables("table23_perplexity_slices_model_mean") if s.runs("perplexity") else [],
        "table23",
        "perplexity.enabled",
        "retention and perplexity",
        reads=("perplexity",),
    ),
    Item(
        "Table 24",
        "construction cost over the precision grid",
        lambda s: [f"table24_construction_cost.{suffix}" for suffix in TABLE_SUFFIXES],
        None,
        "ablations.construction_cost",
        "ablations",
        ablation=True,
    ),
    *(
        Item(
            f"Table {ABLATION_TABLES[method]}",
            shows,
            lambda s, method=method: (
                [f"table{ABLATION_TABLES[method]}_{method}_ablation.{suffix}" for suffix in TABLE_SUFFIXES]
                if method in s.methods
                else []
            ),
            None,
            f"a {method} variant in ablations.variants",
            "ablations",
            ablation=True,
        )
        for method, shows in (
            (methods.SOFT, "soft ablation: decimals and bin cap"),
            (methods.HARD, "hard ablation: draws and epochs"),
        )
    ),
    Item(
        "Appendix B.1",
        "training cost and wall-clock per stage",
        lambda s: tables(*(["appendix_b1_training_cost"] if trained(s) else []), "appendix_b1_stage_wallclock"),
        "appendix_b1",
        category="settings and cost",
        reads=("train_log",),
    ),
    Item(
        "Appendix D.4",
        "open-ended prompts widened, kept or narrowed by fine-tuning",
        lambda s: (
            tables("appendix_d4_open_ended_counts", "appendix_d4_concentration")
            if s.runs("open_ended") and trained(s)
            else []
        ),
        None,  # written with Figure 9, from the same rows
        f"transfer.open_ended.enabled, {WITH_TRAINED}",
        "transfer",
    ),
    Item(
        "",
        "training curves of the ablation variants: loss and gradient norm against the step",
        lambda s: ["training_curves_ablations.png"] if s.methods else [],
        None,  # written by the ablations target with Tables 24-26
        "a variant in ablations.variants",
        "ablations",
        ablation=True,
    ),
    Item(
        "",
        "training curves: loss and gradient norm against the optimizer step, per model and trained method",
        lambda s: figures("training_curves") if trained(s) else [],
        "training_curves",
        WITH_TRAINED,
        "settings and cost",
        reads=("train_log",),
    ),
    Item(
        "Printed numbers",
        "the numbers the paper prints (Table 26, Appendices B.1 and D.4, §4-5) beside calft's, or the config "
        "keys that make them not comparable",
        lambda s: tables("paper_comparison"),
        "paper_comparison",
        category="paper comparison",
        reads=(*ROWS, *TRANSFER, "open_ended_samples", "train_log"),
    ),
)
INDEX = "tables/index.md"  # the paper index, written after every item (calft.report.index)


def evaluation_items() -> list[Item]:
    """A table for each registered evaluation that names its columns (calft.evaluations): per model and
    method, each column's mean over prompts."""
    return [
        Item(
            "",
            f"{evaluation.name}: per model and method, the means over prompts",
            lambda s, name=evaluation.name: tables(name) if s.runs(name) else [],
            "evaluation_table",
            f"{evaluation.switch}.enabled",
            "further evaluations",
            "evaluation_table",
            {"evaluation": evaluation.name},
            reads=(evaluation.name,),
        )
        for evaluation in EVALUATIONS.values()
        if evaluation.table_columns
    ]


def all_items() -> tuple[Item, ...]:
    """The paper's items and calft's own, then a table per further evaluation."""
    return (*ITEMS, *evaluation_items())


def novelty_case_tables(selected: list[str]) -> dict[str, str]:
    """Tables 11-19 (Appendix D.5): the file of each regime of NoveltyBench cases the methods allow."""
    tables = {}
    if methods.BASE in selected and methods.SOFT in selected:
        tables["soft_helps"] = "table11_13_noveltybench_soft_helps"
    if methods.BASE in selected and methods.HARD in selected:
        tables["hard_best"] = "table14_16_noveltybench_hard_best"
    if methods.BASE in selected and (methods.SOFT in selected or methods.HARD in selected):
        tables["failures"] = "table17_19_noveltybench_failures"
    return tables


def _placed(files: list[str], tables: str | Path, figures: str | Path) -> list[Path]:
    folders = {"tables": Path(tables), "figures": Path(figures)}
    return [folders[name.split("/")[0]] / name.split("/", 1)[1] for name in files]


def report_inputs(selection, results: str | Path) -> dict[str, dict[tuple, Path]]:
    """The files the aggregate command reads (calft.layout.report_inputs), of the kinds that the items
    the selection turns on read; every other kind is empty."""
    from calft import layout

    read = {kind for item in all_items() if not item.ablation and item.files(selection) for kind in item.reads}
    return {kind: paths if kind in read else {} for kind, paths in layout.report_inputs(selection, results).items()}


def report_outputs(selection, tables: str | Path, figures: str | Path) -> list[Path]:
    """Every table and figure the aggregate command writes for a selection, the index last."""
    files = [name for item in all_items() if not item.ablation for name in item.files(selection)]
    return _placed([*dict.fromkeys(files), INDEX], tables, figures)


def ablation_outputs(selection, folder: str | Path) -> list[Path]:
    """Every table and figure the ablation report writes."""
    return [Path(folder) / name for item in all_items() if item.ablation for name in item.files(selection)]


def item_files(item: Item, selection, tables: str | Path, figures: str | Path, ablations: str | Path) -> list[Path]:
    """One item's files where this run writes them; an ablation item's come from the selection's
    ablation selection (none without one)."""
    if item.ablation:
        chosen = selection.ablation_selection
        return [Path(ablations) / name for name in item.files(chosen)] if chosen else []
    return _placed(item.files(selection), tables, figures)


def report_entry(name: str, selection) -> tuple[str, str]:
    """(caption, category) of an output file called `name` for `snakemake --report`: those of the first
    item that lists it."""
    if name == Path(INDEX).name:
        return "index", "index"
    for item in all_items():
        chosen = selection.ablation_selection if item.ablation else selection
        if chosen is not None and any(Path(file).name == name for file in item.files(chosen)):
            return item.caption or Path(name).stem, item.category
    raise KeyError(f"no report item writes {name}")
