"""Training variants (the paper's Appendix E ablations): named changes of a trained method's
training-side settings, each trained and evaluated in its own results folder,
results/<model>/<method>~<variant>/, against the same fixed evaluation reference.

A variant leaves every key it does not name at the top-level setting; the top-level setting itself
is each method's final row (the variant without a name). Cheap to import: the workflow reads it in
every job.
"""

from __future__ import annotations

from dataclasses import dataclass

from calft.methods import METHODS, TRAINED

SEPARATOR = "~"  # between a method and its variant in a results folder name


@dataclass(frozen=True)
class Variant:
    name: str  # "" for the top-level (final) setting
    method: str
    decimals: int
    max_bins: int
    epochs: int
    draws_per_prompt: int  # samples (hard) or trie paths (soft) per prompt and epoch
    models: tuple[str, ...]
    evaluations: tuple[str, ...]  # per-model evaluations beyond structured sampling

    @property
    def suffix(self) -> str:
        """What follows the method in the results folder name."""
        return f"{SEPARATOR}{self.name}" if self.name else ""

    @property
    def grid(self) -> dict:
        """The settings the paper's ablation tables list."""
        return {
            "decimals": self.decimals,
            "max_bins": self.max_bins,
            "draws_per_prompt": self.draws_per_prompt,
            "epochs": self.epochs,
            "total_draws": self.draws_per_prompt * self.epochs,
        }

    def training(self, training: dict) -> dict:
        """The config's training section with this variant's epochs and draws."""
        spec = METHODS[self.method].training
        return training | {spec.key("epochs"): self.epochs, spec.draws_key: self.draws_per_prompt}


def final(config: dict, method: str) -> Variant:
    """The top-level setting of a trained method, with a validated and defaults-filled config."""
    spec = METHODS[method].training
    schedule = spec.schedule(config["training"])
    return Variant(
        "",
        method,
        config["targets"]["decimals"],
        config["targets"][spec.key("max_bins")],
        schedule["epochs"],
        schedule["draws_per_prompt"],
        (),
        (),
    )


def declared(config: dict) -> dict[str, Variant]:
    """The variants of `ablations.variants`, by name."""
    ablations = config["ablations"]
    run_models = config["run_models"] or list(config["models"])
    variants = {}
    for name, entry in ablations["variants"].items():
        base = final(config, entry["method"])
        variants[name] = Variant(
            name,
            entry["method"],
            entry.get("decimals", base.decimals),
            entry.get("max_bins", base.max_bins),
            entry.get("epochs", base.epochs),
            entry.get("samples_per_prompt_per_epoch", base.draws_per_prompt),
            tuple(entry.get("models") or ablations["models"] or run_models),
            tuple(entry.get("evaluations", ())),
        )
    return variants


def problems(config: dict) -> list[str]:
    """Variants must vary a method that is trained, on defined models, and change something that no
    other variant already changes the same way."""
    found, seen = [], {}
    ablations, variants = config["ablations"], declared(config)
    for name in ablations["models"]:
        if name not in config["models"]:
            found.append(f"ablations.models: unknown model '{name}'; defined models: {', '.join(config['models'])}")
    for name, entry in ablations["variants"].items():
        key = f"ablations.variants.{name}"
        if entry["method"] not in config["methods"]:
            found.append(
                f"{key}.method: '{entry['method']}' is not trained by this config (methods: "
                f"{', '.join(config['methods'])}); its final setting is the row the variant is compared with"
            )
            continue
        if "samples_per_prompt_per_epoch" in entry and not METHODS[entry["method"]].training.variant_draws:
            found.append(f"{key}.samples_per_prompt_per_epoch: only hard-target training samples completions")
        for model in entry.get("models", []):
            if model not in config["models"]:
                found.append(f"{key}.models: unknown model '{model}'")
        variant = variants[name]
        if variant.grid == final(config, variant.method).grid:
            found.append(f"{key}: changes nothing from the top-level {variant.method} setting")
        elif (variant.method, tuple(variant.grid.items())) in seen:
            found.append(f"{key}: the same setting as variant '{seen[variant.method, tuple(variant.grid.items())]}'")
        seen.setdefault((variant.method, tuple(variant.grid.items())), name)
    return found


def ablation_report(config: dict) -> dict:
    """What the ablations' report covers (calft.report.settings.AblationSelection): every declared
    variant, and the final setting of each varied method on the models its variants train."""
    declared_variants, runs = declared(config), []
    for method in TRAINED:
        varied = [variant for variant in declared_variants.values() if variant.method == method]
        if varied:
            models = [name for name in config["models"] if any(name in variant.models for variant in varied)]
            runs += [_report_run(final(config, method), models), *(_report_run(v, v.models) for v in varied)]
    models = [name for name in config["models"] if any(name in run["models"] for run in runs)]
    return {"models": models, "prompt_sets": config["prompts"]["evaluation"], "runs": runs}


def _report_run(variant: Variant, models) -> dict:
    grid = {key: value for key, value in variant.grid.items() if key != "total_draws"}
    return {"method": variant.method, "variant": variant.name, "models": list(models), **grid}
