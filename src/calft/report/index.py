"""The paper index (results/tables/index.md): every table and figure of the paper, with the file
that reproduces it in this configuration or why it is absent, naming the config key that turns it
on. Pure: it reads no file, it names those the report and the ablations target write."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Item:
    """A paper item: the stems of the files that reproduce it (a stem ending in "_" is a prefix: one
    file per model), and the config keys that turn it on when it is absent."""

    label: str
    shows: str
    stems: tuple[str, ...]
    needs: str
    mcq_only: bool = False  # Table 20 lives in the transfer table, but only with the MCQ columns


NO_CONFIG = "the method's schematic, not a result"
ABLATIONS_TARGET = "made by `snakemake ablations` (not part of `all`)"

ITEMS = (
    Item("Figure 1", "the Calibration Fine-Tuning pipeline", (), NO_CONFIG),
    Item("Figure 2", "family-median normalized W1 per model and method", ("figure2_family_median_w1",), ""),
    Item("Figure 3", "OOD samples against the target", ("figure3_ood_samples_",), "`ood` in prompts.evaluation"),
    Item(
        "Figure 4",
        "per-distribution median W1, held-out families",
        ("per_family_ood_normalized_w1",),
        "`ood` in prompts.evaluation",
    ),
    Item(
        "Figure 5",
        "per-distribution logit KL, held-out families",
        ("per_family_ood_logit_kl",),
        "`ood` in prompts.evaluation",
    ),
    Item(
        "Figure 6",
        "per-distribution logit KL, unseen parameters",
        ("per_family_unseen_logit_kl",),
        "`unseen` in prompts.evaluation",
    ),
    Item(
        "Figure 7",
        "per-distribution median W1, unseen parameters",
        ("per_family_unseen_normalized_w1",),
        "`unseen` in prompts.evaluation",
    ),
    Item(
        "Figure 8",
        "OOD samples: base, SSOT and soft",
        ("figure8_ood_samples_ssot_",),
        "transfer.ssot.enabled and `ood` in prompts.evaluation",
    ),
    Item(
        "Figure 9",
        "open-ended support and unique rate per prompt, base against fine-tuned",
        ("figure9_open_ended_per_prompt",),
        "transfer.open_ended.enabled, with soft or hard in methods",
    ),
    Item(
        "Figure 10",
        "open-ended answer frequencies (city, mammal, weekday)",
        ("figure10_open_ended_frequencies_",),
        "transfer.open_ended.enabled",
    ),
    Item("Figure 11", "retention per TinyBenchmarks task", ("figure11_retention_per_task",), "retention.enabled"),
    Item("Figure 12", "PALOMA perplexity per slice", ("figure12_paloma_perplexity",), "perplexity.enabled"),
    Item("Figure 13", "PALOMA bits per byte per slice", ("figure13_paloma_bits_per_byte",), "perplexity.enabled"),
    Item(
        "Figure 14",
        "OOD samples of the soft decimals ablation",
        ("figure14_ood_samples_by_decimals_",),
        "a soft variant in ablations.variants, `ood` in prompts.evaluation",
    ),
    Item(
        "Table 1",
        "transfer summary: open-ended support and unique rate, MCQ TV, NoveltyBench utility",
        ("transfer",),
        "transfer.open_ended.enabled, transfer.mcq.enabled or transfer.noveltybench.enabled",
    ),
    Item(
        "Table 2",
        "retention (gp-IRT) and PALOMA perplexity",
        ("retention_perplexity",),
        "retention.enabled or perplexity.enabled",
    ),
    Item(
        "Table 3",
        "shared training and data-construction settings",
        ("table3_shared_hyperparameters",),
        "soft or hard in methods",
    ),
    Item("Table 4", "method-specific hyperparameters", ("table4_method_hyperparameters",), "soft or hard in methods"),
    Item("Table 5", "the 30 distribution families", ("table5_families",), ""),
    Item("Table 6", "structured sampling, held-out families", ("structured_ood",), "`ood` in prompts.evaluation"),
    Item("Table 7", "structured sampling, unseen parameters", ("structured_unseen",), "`unseen` in prompts.evaluation"),
    Item(
        "Table 8",
        "base, soft and SSOT, held-out families",
        ("ssot_ood",),
        "transfer.ssot.enabled and `ood` in prompts.evaluation",
    ),
    Item(
        "Table 9",
        "base, soft and SSOT, unseen parameters",
        ("ssot_unseen",),
        "transfer.ssot.enabled and `unseen` in prompts.evaluation",
    ),
    Item(
        "Table 10",
        "NoveltyBench distinct and utility per split",
        ("table10_noveltybench_splits",),
        "transfer.noveltybench.enabled",
    ),
    Item(
        "Tables 11-13",
        "NoveltyBench cases where soft helps",
        ("table11_13_noveltybench_soft_helps",),
        "transfer.noveltybench.enabled, with base and soft in methods",
    ),
    Item(
        "Tables 14-16",
        "NoveltyBench cases where hard is competitive or best",
        ("table14_16_noveltybench_hard_best",),
        "transfer.noveltybench.enabled, with base and hard in methods",
    ),
    Item(
        "Tables 17-19",
        "NoveltyBench cases where fine-tuning hurts",
        ("table17_19_noveltybench_failures",),
        "transfer.noveltybench.enabled, with base and soft or hard in methods",
    ),
    Item(
        "Table 20",
        "MCQ parse rate and answer-position TV (the MCQ columns)",
        ("transfer",),
        "transfer.mcq.enabled",
        mcq_only=True,
    ),
    Item(
        "Table 21",
        "retention per task, per model (left) and over the models (right)",
        ("retention_tasks", "table21_retention_tasks_model_mean"),
        "retention.enabled",
    ),
    Item("Table 22", "PALOMA per model (the `all` rows) and slice", ("perplexity_slices",), "perplexity.enabled"),
    Item(
        "Table 23", "PALOMA per slice, over the models", ("table23_perplexity_slices_model_mean",), "perplexity.enabled"
    ),
    Item(
        "Table 24",
        "construction cost over the precision grid",
        ("table24_construction_cost",),
        "ablations.construction_cost",
    ),
    Item(
        "Table 25",
        "soft ablation: decimals and bin cap",
        ("table25_soft_ablation",),
        "a soft variant in ablations.variants",
    ),
    Item(
        "Table 26",
        "hard ablation: draws and epochs",
        ("table26_hard_ablation",),
        "a hard variant in ablations.variants",
    ),
    Item(
        "Appendix B.1",
        "training cost and wall-clock per stage",
        ("appendix_b1_training_cost", "appendix_b1_stage_wallclock"),
        "",
    ),
    Item(
        "Appendix D.4",
        "open-ended prompts widened, kept or narrowed by fine-tuning",
        ("appendix_d4_open_ended_counts",),
        "transfer.open_ended.enabled, with soft or hard in methods",
    ),
)


def _matches(stem: str, path: Path) -> bool:
    return path.stem.startswith(stem) if stem.endswith("_") else path.stem == stem


def entries(outputs: list[Path], ablation_outputs: list[Path], mcq: bool) -> list[dict]:
    """A row per paper item: its readable files (markdown tables, png figures) among the outputs,
    and, when it has none, why (the keys that turn it on)."""
    readable = [path for path in [*outputs, *ablation_outputs] if path.suffix in (".md", ".png")]
    rows = []
    for item in ITEMS:
        files = [path for stem in item.stems for path in readable if _matches(stem, path)]
        if item.mcq_only and not mcq:
            files = []
        if files:
            note = ABLATIONS_TARGET if set(files) <= set(ablation_outputs) else ""
            rows.append({"item": item.label, "shows": item.shows, "files": files, "note": note})
        else:
            why = NO_CONFIG if item.needs == NO_CONFIG else f"off in this configuration; turn on: {item.needs}"
            rows.append({"item": item.label, "shows": item.shows, "files": [], "note": why})
    return rows


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "**The paper's tables and figures, and the files that reproduce them** (paths from the workflow "
        "directory; an absent item names the config key that turns it on)",
        "",
        "| paper item | what it shows | file | note |",
        "|---|---|---|---|",
    ]
    for row in rows:
        files = "<br>".join(f"`{path}`" for path in row["files"]) or "—"
        lines.append(f"| {row['item']} | {row['shows']} | {files} | {row['note']} |")
    return "\n".join(lines) + "\n"
