"""The methods calft compares, in table order: what each one is and which evaluations it runs.

Every other place that knows a method reads it from here: the results layout, the workflow's rules
and wildcards, the command line, the tables and the figures. Adding a method is one entry (and, for
a trained one, its training in calft.training). A config's `adapters` (LoRA adapters that calft did
not train) join the registry at run time (`register_adapter`), after the built-in methods. Cheap to
import: the workflow reads it in every job.
"""

from __future__ import annotations

from dataclasses import dataclass

from calft.errors import UserError

# How a method prompts: the evaluation prompt as it is, or String Seed of Thought (calft.modeling.answers).
DIRECT, SEED_THEN_ANSWER = "direct", "ssot"


@dataclass(frozen=True)
class Training:
    """How a trained method learns, and where its settings live in the config's `training` section
    (`<prefix>_epochs`, `<prefix>_group_size`, its draws key) and `targets` (`<prefix>_max_bins`)."""

    prefix: str
    draws_key: str  # continuations drawn per prompt and epoch
    draws_label: str  # the same, as the tables head it
    tries: bool  # targets are the token tries' next-token distributions (soft) or sampled outputs (hard)
    smoothed: bool  # the loss takes the config's tau and epsilon (else tau 1, epsilon 0: cross-entropy)
    runtime: int  # minutes a training job asks of the cluster by default (a profile may set its own)
    variant_draws: bool = False  # an ablation variant may change its draws (samples_per_prompt_per_epoch)

    def key(self, setting: str) -> str:
        return f"{self.prefix}_{setting}"

    def schedule(self, training: dict) -> dict:
        """epochs, draws_per_prompt, group_size, tau and epsilon from a training section's values."""
        return {
            "epochs": training[self.key("epochs")],
            "draws_per_prompt": training[self.draws_key],
            "group_size": training[self.key("group_size")],
            "tau": training[self.key("tau")] if self.smoothed else 1.0,
            "epsilon": training[self.key("epsilon")] if self.smoothed else 0.0,
        }


@dataclass(frozen=True)
class Method:
    name: str
    adapter: bool  # a LoRA adapter trained by `calft train`, evaluated on top of the base model
    prompting: str  # DIRECT or SEED_THEN_ANSWER
    evaluations: tuple[str, ...] | None  # names in calft.evaluations that it runs; None: every one
    color: str  # in every figure
    baseline: bool = False  # compared against in its own tables, not in the main ones
    training: Training | None = None  # for a method with an adapter: how `calft train` trains it
    sizes: str | None = None  # the transfer section with its own sample counts and generation lengths
    model: str | None = None  # a declared adapter's base model: the one model it is evaluated on

    @property
    def main(self) -> bool:
        return not self.baseline

    def runs(self, evaluation: str) -> bool:
        return self.evaluations is None or evaluation in self.evaluations

    def applies_to(self, model: str) -> bool:
        """Whether the method runs on a model: every one, except a declared adapter (its base only)."""
        return self.model is None or self.model == model


METHODS = {
    method.name: method
    for method in (
        Method("base", adapter=False, prompting=DIRECT, evaluations=None, color="#9e9e9e"),
        Method(
            "soft",
            adapter=True,
            prompting=DIRECT,
            evaluations=None,
            color="#1f77b4",
            training=Training(
                "soft",
                "soft_paths_per_prompt_per_epoch",
                "paths/prompt/epoch",
                tries=True,
                smoothed=True,
                runtime=240,
            ),
        ),
        Method(
            "hard",
            adapter=True,
            prompting=DIRECT,
            evaluations=None,
            color="#ff7f0e",
            training=Training(
                "hard",
                "hard_samples_per_prompt_per_epoch",
                "samples/prompt/epoch",
                tries=False,
                smoothed=False,
                runtime=720,
                variant_draws=True,
            ),
        ),
        Method(
            "ssot",
            adapter=False,
            prompting=SEED_THEN_ANSWER,
            evaluations=("scores", "open_ended"),
            color="#2ca02c",
            baseline=True,
            sizes="ssot",
        ),
    )
}

MAIN = [name for name, method in METHODS.items() if method.main]  # grows with the declared adapters
TRAINED = tuple(name for name, method in METHODS.items() if method.training)
BASELINES = tuple(name for name, method in METHODS.items() if method.baseline)
# The roles the paper's items compare, found by what each method is, not by its name.
BASE = next(name for name, method in METHODS.items() if method.main and not method.adapter)  # as released
SOFT = next(name for name in TRAINED if METHODS[name].training.tries)  # trained on the tries' distributions
HARD = next(name for name in TRAINED if not METHODS[name].training.tries)  # trained on sampled outputs
SSOT_COMPARISON = (BASE, SOFT, *BASELINES)  # the columns of Tables 8-9: the base model, its soft adapter, SSOT

# Colours of declared adapters, in declaration order (after the built-in methods' colours).
ADAPTER_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")


def shown(present) -> list[str]:
    """The main methods a table or figure has a place for, in table order: every built-in one (a
    missing one is undefined there) and the declared adapters among `present`."""
    present = set(present)
    return [name for name in MAIN if METHODS[name].model is None or name in present]


def register_adapter(name: str, model: str) -> Method:
    """A declared adapter (the config's `adapters`) as a main method: evaluated like a trained one on
    its base model, never trained. Registering the same one again changes nothing."""
    method = Method(
        name,
        adapter=True,
        prompting=DIRECT,
        evaluations=None,
        color=ADAPTER_COLORS[sum(m.model is not None for m in METHODS.values()) % len(ADAPTER_COLORS)],
        model=model,
    )
    known = METHODS.get(name)
    if known is not None and known.model != model:
        raise UserError(f"method '{name}' is already registered ({'on ' + known.model if known.model else 'built in'})")
    if known is None:
        METHODS[name] = method
        MAIN.append(name)
    return METHODS[name]


def register_adapters(declared: dict[str, str]) -> None:
    """Declared adapters by name, each with its base model."""
    for name, model in declared.items():
        register_adapter(name, model)
