"""The training stage's settings: the config's `training` section and `calft train`'s settings."""

from __future__ import annotations

from dataclasses import dataclass

from calft import methods
from calft.modeling.settings import ModelEntry
from calft.settings import Section


@dataclass(frozen=True)
class MethodSchedule:
    """What one training method draws per epoch and how it weighs its targets."""

    epochs: int
    draws_per_prompt: int  # continuations per prompt and epoch
    group_size: int  # continuations of one prompt that share its forward
    tau: float
    epsilon: float


@dataclass(frozen=True)
class Training(Section):
    SCHEMA_PATH = ("properties", "training")
    LABEL = "training"
    seed: int
    global_batch_size: int
    per_device_batch_size: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    lora_r: int
    lora_alpha: float
    lora_dropout: float
    lora_target_modules: list
    soft_epochs: int
    soft_tau: float
    soft_epsilon: float
    hard_epochs: int
    hard_samples_per_prompt_per_epoch: int
    soft_paths_per_prompt_per_epoch: int
    soft_group_size: int
    hard_group_size: int
    order: str
    checkpoint_every: int
    distributed: str
    gpus: int

    def schedule(self, method: str) -> MethodSchedule:
        return MethodSchedule(**methods.METHODS[method].training.schedule(vars(self)))

    def problems(self) -> list[str]:
        problems = []
        for method in methods.TRAINED:
            schedule, draws = self.schedule(method), methods.METHODS[method].training.draws_key
            for key, value in (
                (draws, schedule.draws_per_prompt),
                ("global_batch_size", self.global_batch_size),
                ("per_device_batch_size", self.per_device_batch_size),
            ):
                if value % schedule.group_size:
                    problems.append(
                        f"training.{method}_group_size: {schedule.group_size} does not divide training.{key} ({value})"
                    )
        if self.global_batch_size % self.per_device_batch_size:
            problems.append(
                f"training.per_device_batch_size: {self.per_device_batch_size} does not divide "
                f"training.global_batch_size ({self.global_batch_size})"
            )
        return problems


@dataclass(frozen=True)
class TrainSettings(Section):
    """calft train: which adapter, of which model, trained how."""

    SCHEMA_PATH = ("$defs", "train_settings")
    LABEL = "settings"
    method: str
    model: ModelEntry
    training: Training
    tracking: dict | None  # the tracker run (calft.tracking) of its curves

    def problems(self) -> list[str]:
        if self.method not in methods.TRAINED:
            return [f"settings.method: '{self.method}' is not a trained method ({', '.join(methods.TRAINED)})"]
        return super().problems()
