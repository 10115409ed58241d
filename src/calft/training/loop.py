"""The Calibration Fine-Tuning training loop: soft or hard targets, LoRA, one file read top to bottom.

Runs on CPU, on one GPU, or on several GPUs of one node under torchrun: DDP (each rank takes every
W-th item of a global batch), or FSDP2 sharding for models too large to hold once per GPU. The global
batch size is the configured quantity, so the optimizer step count is the paper's whatever the number
of devices. Checkpoints (adapter, optimizer, scheduler, RNG, log) are written every `checkpoint_every`
steps and when SIGTERM arrives (SLURM's warning before a time limit or preemption); a rerun resumes
from the last one and ends with the same adapter as an uninterrupted run. Knows nothing of Snakemake.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyarrow as pa
import torch

from calft import artifacts
from calft.artifacts.kinds import TRAIN_LOG_SCHEMA
from calft.errors import RunError, UserError
from calft.methods import METHODS
from calft.modeling.chat import ChatFormat, prompt_ids, terminator_id
from calft.modeling.loader import load_base, load_tokenizer, model_record, record_adapter
from calft.modeling.settings import ModelEntry
from calft.modeling.trees import PackedBatch, SoftTargets, example_losses, pack
from calft.progress import progress
from calft.tracking import Tracking, open_tracking
from calft.training import card, checkpoint
from calft.training.balance import ORDERS
from calft.training.data import HardTargets, batches, epoch_items
from calft.training.schedule import steps_per_epoch, warmup_steps
from calft.training.settings import Training

log = logging.getLogger(__name__).info


class Interrupted(Exception):
    """Training stopped on SIGTERM after writing a checkpoint; rerun to resume."""


@dataclass
class Run:
    method: str  # soft | hard
    model_dir: Path
    model: ModelEntry
    settings: Training
    targets: Path  # training targets (prompt texts and families; the hard-target bins)
    tries: Path | None  # soft: the tries of the soft-bin targets (targets.soft_max_bins)
    adapter: Path  # output: peft adapter folder
    train_log: Path  # output: parquet log
    checkpoints: Path  # the resumable state: a checkpoint folder, replaced at every save
    threads: int = 0  # CPU threads (0: every CPU of this process, shared among the ranks of a node)
    restart: bool = False  # ignore the checkpoint and train from the first step
    tracking: dict | None = None  # the tracker run of its curves (calft.tracking)


def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device), joining the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if world > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return int(os.environ.get("RANK", "0")), world, device


def _prompts(targets: Path) -> tuple[list[str], list[str], list[str]]:
    """(prompt ids, families, prompt texts) of the training targets, in file order."""
    prompts = artifacts.read_prompts(targets, ["family", "prompt"])
    return list(prompts.prompt_id), list(prompts.family), list(prompts.prompt)


def language_model_targets(model, names: list[str]) -> list[str]:
    """The full names of the modules called `names` inside the language model. Multimodal
    checkpoints (Gemma-3 4B and up) have the same projection names in their vision tower, which
    never gets a gradient from text: LoRA there would only stall DDP."""
    decoder = {id(module) for module in model.get_decoder().modules()}
    targets = [
        name for name, module in model.named_modules() if name.rsplit(".", 1)[-1] in names and id(module) in decoder
    ]
    if not targets:
        raise UserError(f"training.lora_target_modules: no module named {', '.join(names)} in the language model")
    return targets


def lora_model(run: Run, device: torch.device):
    """The base model with fresh LoRA adapters on the language model's projections (float32, on a
    bf16 base), on the device."""
    from peft import LoraConfig, get_peft_model

    s = run.settings
    model = load_base(run.model_dir, run.model)
    lora = LoraConfig(
        r=s.lora_r,
        lora_alpha=s.lora_alpha,
        lora_dropout=s.lora_dropout,
        target_modules=language_model_targets(model, list(s.lora_target_modules)),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora).to(device)


def _shard(model, world: int, device: torch.device) -> None:
    """FSDP2 over the ranks: each LoRA matrix in its own (float32) group, then every decoder layer
    (the bf16 base weights), then the root. In place; the model keeps its interface."""
    from peft.tuners.lora import LoraLayer
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (world,))
    for module in model.modules():
        if isinstance(module, LoraLayer):
            for adapter in module.active_adapters:
                fully_shard(module.lora_A[adapter], mesh=mesh)
                fully_shard(module.lora_B[adapter], mesh=mesh)
    layer_classes = set(model.base_model.model._no_split_modules or [])
    for module in model.modules():
        if type(module).__name__ in layer_classes:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _training_state(model, optimizer, sharded: bool) -> tuple[dict, dict]:
    """(LoRA weights, optimizer state), whole on every rank (a collective under FSDP)."""
    if not sharded:
        weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if "lora_" in k}
        return weights, optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = {k: v for k, v in get_model_state_dict(model, options=options).items() if "lora_" in k}
    return weights, get_optimizer_state_dict(model, optimizer, options=options)


def _restore_training_state(model, optimizer, weights: dict, optimizer_state: dict, sharded: bool) -> None:
    if not sharded:
        missing = set(weights) - set(model.state_dict())
        if missing:
            raise ValueError(f"checkpoint has unknown adapter weights: {sorted(missing)[:3]}")
        model.load_state_dict(weights, strict=False)
        optimizer.load_state_dict(optimizer_state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, strict=False)
    set_model_state_dict(model, weights, options=options)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)


def _gradient_norm(loss: torch.Tensor, parameters: list, world: int, sharded: bool) -> torch.Tensor:
    """The total L2 norm of the step's gradients, before any clipping (calft clips nothing, as the
    paper); under FSDP each rank holds a shard, so the shards' squared norms are summed."""
    grads = [getattr(p.grad, "_local_tensor", p.grad) for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads) if grads else torch.zeros((), device=loss.device)
    if sharded and world > 1:
        squared = norm.square()
        torch.distributed.all_reduce(squared)
        norm = squared.sqrt()
    return norm


def _all_finite(loss: torch.Tensor, norm: torch.Tensor, world: int) -> torch.Tensor:
    """1.0 when the loss and the gradient norm are finite on every rank, else 0.0; a device tensor, so
    the caller decides when to synchronise."""
    finite = (torch.isfinite(loss) & torch.isfinite(norm)).float()
    if world > 1:
        torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
    return finite


def _fingerprint(run: Run) -> str:
    """What a checkpoint must match to be resumed: method, settings, model, input provenance, code."""
    inputs = [artifacts.read_provenance(run.targets)] + ([artifacts.read_provenance(run.tries)] if run.tries else [])
    inputs = [{k: v for k, v in info.items() if k != "created"} for info in inputs]
    text = json.dumps(
        [run.method, run.settings.to_dict(), run.model.to_dict(), str(run.model_dir), inputs, artifacts.code_version()],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _micro_batches(
    global_batch: list, rank: int, world: int, items_per_micro: int, rendered: list[list[int]]
) -> list[tuple[PackedBatch, float]]:
    """This rank's share of a global batch, packed per micro-batch, each with its loss weight: every
    rank runs the same number of micro-batches, and one with fewer items runs zero-weight ones."""
    mine = global_batch[rank::world]
    count = math.ceil(math.ceil(len(global_batch) / world) / items_per_micro)
    chunks = [mine[index * items_per_micro : (index + 1) * items_per_micro] for index in range(count)]
    return [(pack(chunk or global_batch[:1], rendered), 1.0 if chunk else 0.0) for chunk in chunks]


def _set_threads(threads: int) -> None:
    """`threads` torch threads (0: all the CPUs this rank's share allows; the ranks of a node share its CPUs)."""
    available = len(os.sched_getaffinity(0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(max(1, min(threads or available, available // local_world)))


def _parallel_model(run: Run, targets, world: int, device: torch.device):
    """(the LoRA model, what the loop calls: DDP around it or the model itself, whether FSDP2 shards it
    for models too large for one device)."""
    model = lora_model(run, device)
    if METHODS[run.method].training.tries:
        targets.check_tokens(model.config.get_text_config().vocab_size)
    sharded = world > 1 and run.settings.distributed == "fsdp"
    if sharded:
        _shard(model, world, device)
    engine = torch.nn.parallel.DistributedDataParallel(model) if world > 1 and not sharded else model
    return model, engine, sharded


def _training_data(run: Run, tokenizer) -> tuple[list[str], list[str], object, list[list[int]]]:
    """Prompt ids, families, the method's targets and the prompts rendered with the chat template."""
    chat = ChatFormat.from_entry(run.model)
    ids, families, texts = _prompts(run.targets)
    if METHODS[run.method].training.tries:
        targets = SoftTargets(run.tries)
    else:
        targets = HardTargets(run.targets, tokenizer, terminator_id(tokenizer, chat))
    if targets.prompt_ids != ids:
        raise UserError(f"{run.tries} and {run.targets} list different prompts: they do not belong together")
    return ids, families, targets, prompt_ids(tokenizer, texts, chat)


def _resume(
    run: Run, fingerprint: str, model, optimizer, scheduler, sharded: bool, device: torch.device, total_steps: int
) -> tuple[int, list, int | None]:
    """(step, log rows, last saved step) of the checkpoint of this very run, restored into the model,
    optimizer, schedule and generators; (0, [], None) to start afresh."""
    if run.restart or not run.checkpoints.is_dir() or not any(run.checkpoints.iterdir()):
        return 0, [], None
    recorded, state = checkpoint.load(run.checkpoints)
    if recorded != fingerprint:
        log(f"ignoring {run.checkpoints}: it belongs to another configuration")
        return 0, [], None
    weights = model.state_dict() if not sharded else None  # FSDP checks shapes as it restores
    problem = checkpoint.state_problem(state, total_steps, weights)
    if problem is None:
        try:
            _restore_training_state(model, optimizer, state["adapter"], state["optimizer"], sharded)
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            if device.type == "cuda" and state["cuda_rng"] is not None:
                torch.cuda.set_rng_state(state["cuda_rng"], device)
            problem = checkpoint.optimizer_problem(optimizer)
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
            problem = (
                f"does not fit this run ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            )
    if problem:
        raise UserError(f"the checkpoint {run.checkpoints} {problem}: {checkpoint.way_out(run.checkpoints)}")
    return state["step"], state["rows"], state["step"]


def _accumulate_gradients(
    engine,
    model,
    micro_batches: list[tuple[PackedBatch, float]],
    schedule,
    world: int,
    sequences: int,
    sharded: bool,
    device: torch.device,
) -> tuple[torch.Tensor, int]:
    """Backward over this rank's micro-batches of one step, gradients synchronized at the last one;
    returns the sum of the step's losses on this rank and the tokens computed."""
    loss_sum, tokens = torch.zeros((), device=device), 0
    for index, (batch, weight) in enumerate(micro_batches):
        losses = example_losses(engine, batch, schedule.tau, schedule.epsilon)
        # sum over the global batch's sequences / their number; DDP averages over ranks
        loss = weight * losses.sum() * world / sequences
        last = index == len(micro_batches) - 1
        if sharded:
            model.set_requires_gradient_sync(last)
            loss.backward()
        elif world > 1 and not last:
            with engine.no_sync():
                loss.backward()
        else:
            loss.backward()
        loss_sum += weight * losses.detach().sum()
        tokens += batch.tokens if weight else 0
    return loss_sum, tokens


def _optimizer(model, settings: Training, total_steps: int) -> tuple[list, torch.optim.Optimizer, object]:
    """AdamW over the trainable (LoRA) weights and HF's cosine schedule with linear warmup."""
    from transformers import get_cosine_schedule_with_warmup

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, warmup_steps(settings.warmup_ratio, total_steps), total_steps
    )
    return trainable, optimizer, scheduler


def _save_checkpoint(
    run: Run,
    fingerprint: str,
    step: int,
    rows: list,
    model,
    optimizer,
    scheduler,
    sharded: bool,
    device: torch.device,
    rank: int,
) -> None:
    weights, optimizer_state = _training_state(model, optimizer, sharded)  # every rank takes part
    if rank == 0:
        checkpoint.save(
            run.checkpoints,
            {
                "step": step,
                "rows": rows,
                "adapter": weights,
                "optimizer": optimizer_state,
                "scheduler": scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            },
            fingerprint,
        )


def _stop_non_finite(run: Run, step: int, epoch: int, saved: int | None) -> None:
    kept = f"the checkpoint of step {saved} in {run.checkpoints} is kept" if saved else "no checkpoint yet"
    raise RunError(
        f"non-finite loss or gradient at step {step} (epoch {epoch}), training stopped ({kept}); "
        f"training.learning_rate {run.settings.learning_rate} may be too high"
    )


def _any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """Whether `flag` is set on any rank (every rank takes part)."""
    flags = torch.tensor(float(flag), device=device)
    if world > 1:
        torch.distributed.all_reduce(flags)
    return bool(flags.item())


def _device_record(device: torch.device, world: int) -> dict:
    """What the run trained on, for the cost report: the device's name and how many processes."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"type": device.type, "name": name, "processes": world}


@dataclass
class _Watch:
    """How a run reports as it goes (rank 0's): a line per step, a progress bar with the ETA, the
    tracker run (calft.tracking); and, at the end, what the log's record says of its optimization."""

    bar: object
    tracking: Tracking
    settings: Training
    longest_prompt: int
    examples: int | None = None  # seen so far, resumed steps included

    def step(self, rows: list, total_steps: int) -> None:
        row = rows[-1]
        log(
            f"step {row['step']}/{total_steps} epoch {row['epoch']} loss {row['loss']:.4f} lr {row['lr']:.2e} "
            f"grad norm {row['grad_norm']:.3g} {row['seconds']:.2f}s"
        )
        self.bar.set_postfix_str(f"loss {row['loss']:.4f}", refresh=False)
        self.bar.update()
        self.examples = (self.examples or sum(r["examples"] for r in rows[:-1])) + row["examples"]
        tracked = {"loss": row["loss"], "lr": row["lr"], "grad_norm": row["grad_norm"], "examples": self.examples}
        tracked["tokens_per_second"] = row["tokens"] / max(row["seconds"], 1e-9)
        self.tracking.log(row["step"], {f"train/{name}": value for name, value in tracked.items()})
        if row["step"] == total_steps:
            self.bar.close()

    def records(self, total_steps: int) -> dict:
        """The optimizer, its schedule and steps, the longest rendered prompt (calft truncates nothing;
        an answer adds its few tokens), and the trackers that took the curves (closed here)."""
        self.tracking.close()
        return {
            "optimization": {
                "optimizer": "AdamW",
                "schedule": "cosine with linear warm-up",
                "total_steps": total_steps,
                "warmup_steps": warmup_steps(self.settings.warmup_ratio, total_steps),
                "longest_prompt_tokens": self.longest_prompt,
            },
            "tracking": self.tracking.ran,
        }


def _write_outputs(
    run: Run, model, weights: dict, tokenizer, rows: list, fingerprint: str, device: dict, watch
) -> None:
    if not all(torch.isfinite(tensor).all() for tensor in weights.values()):
        raise RunError(f"the adapter's weights are not finite after step {len(rows)}: nothing was written")
    config = {
        "method": run.method,
        "model": model_record(run.model, run.model_dir),
        "training": run.settings.to_dict(),
        "targets": artifacts.read_provenance(run.targets)["config"],
        "device": device,
        **watch.records(len(rows)),  # a row per step
        "fingerprint": fingerprint,
    }
    with artifacts.atomic_path(run.adapter, "adapter") as folder:
        model.save_pretrained(folder, state_dict=weights)
        tokenizer.save_pretrained(folder)
        record_adapter(folder, model.get_base_model(), config)
        card.publish(folder)
    with artifacts.parquet_writer(run.train_log, TRAIN_LOG_SCHEMA, artifacts.provenance("train_log", config)) as writer:
        writer.write_table(pa.Table.from_pylist(rows, schema=TRAIN_LOG_SCHEMA))


def _prefetched(pack, steps: list):
    """Each step's batch with the future of its micro-batches; a thread packs the next step's while
    the device computes this one."""
    with ThreadPoolExecutor(max_workers=1) as packer:
        pending = packer.submit(pack, steps[0]) if steps else None
        for position, batch in enumerate(steps):
            current = pending
            if position + 1 < len(steps):
                pending = packer.submit(pack, steps[position + 1])
            yield batch, current


def _log_plan(run: Run, rendered: list, schedule, step: int, total_steps: int, world: int, device, sharded: bool):
    """Log the run's plan; how it reports as it goes (_Watch: rank 0's bar and tracker run)."""
    prompts = len(rendered)
    if step:
        log(f"resuming from step {step} of {total_steps}")
    parallel = f" ({'fsdp' if sharded else 'ddp'})" if world > 1 else ""
    log(
        f"{run.method}: {prompts} prompts x {schedule.draws_per_prompt} per epoch in groups of {schedule.group_size}, "
        f"{schedule.epochs} epochs, {total_steps} steps of {run.settings.global_batch_size} sequences on {world} x "
        f"{device.type}{parallel}"
    )
    reporting = int(os.environ.get("RANK", "0")) == 0
    bar = progress(total=total_steps, initial=step, label=f"train {run.method}", unit="step", quiet=not reporting)
    tracking = open_tracking(run.tracking if reporting else None)
    return _Watch(bar, tracking, run.settings, max(map(len, rendered), default=0))


def _stop_on_sigterm() -> dict:
    """A flag that SIGTERM raises: the loop checkpoints and stops after the step it is in."""
    stop = {"requested": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True))
    return stop


def _step_row(step: int, epoch: int, reduced: dict, lr: float, examples: int, tokens: int, started: float) -> dict:
    """The training log's row of one optimizer step (its loss is the mean over the step's examples)."""
    return {
        "step": step,
        "epoch": epoch,
        "loss": reduced["loss_sum"] / examples,
        "lr": lr,
        "examples": examples,
        "tokens": tokens,
        "seconds": time.perf_counter() - started,
        "grad_norm": reduced["grad_norm"],
    }


def _reduced(loss_sum: torch.Tensor, trainable: list, world: int, sharded: bool) -> tuple[dict, bool]:
    """The step's summed loss over every rank and its total gradient norm, and whether both are
    finite on every rank (one synchronisation)."""
    if world > 1:
        torch.distributed.all_reduce(loss_sum)
    norm = _gradient_norm(loss_sum, trainable, world, sharded)
    loss_value, finite, norm_value = torch.stack([loss_sum, _all_finite(loss_sum, norm, world), norm]).tolist()
    return {"loss_sum": loss_value, "grad_norm": norm_value}, bool(finite)


def _optimizer_step(optimizer, scheduler) -> float:
    """Apply the accumulated gradients; the learning rate they were applied with."""
    lr = scheduler.get_last_lr()[0]
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return lr


def _leave_process_group(world: int) -> None:
    if world > 1:
        torch.distributed.destroy_process_group()


def run_training(run: Run) -> None:
    rank, world, device = _distributed()
    _set_threads(run.threads)
    s = run.settings
    torch.manual_seed(s.seed)

    # -- data: prompts rendered with the model's chat template, targets per method
    tokenizer = load_tokenizer(run.model_dir)
    ids, families, targets, rendered = _training_data(run, tokenizer)
    schedule = s.schedule(run.method)
    epochs, samples, group = schedule.epochs, schedule.draws_per_prompt, schedule.group_size
    epoch_steps = steps_per_epoch(len(ids), schedule, s.global_batch_size)
    total_steps = epoch_steps * epochs

    # -- model (DDP, or FSDP2 for models too large for one device), optimizer, schedule
    model, engine, sharded = _parallel_model(run, targets, world, device)
    trainable, optimizer, scheduler = _optimizer(model, s, total_steps)

    # -- resume
    fingerprint = _fingerprint(run)
    step, rows, saved = _resume(run, fingerprint, model, optimizer, scheduler, sharded, device, total_steps)
    save_checkpoint = partial(
        _save_checkpoint, run, fingerprint, model=model, optimizer=optimizer, scheduler=scheduler, sharded=sharded,
        device=device, rank=rank,
    )  # fmt: skip
    stop = _stop_on_sigterm()
    watch = _log_plan(run, rendered, schedule, step, total_steps, world, device, sharded)

    # -- the loop (a thread packs the next step's micro-batches while the device computes)
    model.train()
    micro = s.per_device_batch_size // group
    pack = partial(_micro_batches, rank=rank, world=world, items_per_micro=micro, rendered=rendered)
    for epoch in range(step // epoch_steps, epochs):
        items = epoch_items(targets, families, samples, group, s.seed, epoch, ORDERS[s.order])
        remaining = batches(items, s.global_batch_size // group)[step - epoch * epoch_steps :]
        for global_batch, packing in _prefetched(pack, remaining):
            started = time.perf_counter()
            micro_batches = packing.result()
            loss_sum, tokens = _accumulate_gradients(
                engine, model, micro_batches, schedule, world, len(global_batch) * group, sharded, device
            )
            reduced, finite = _reduced(loss_sum, trainable, world, sharded)
            if not finite:
                _stop_non_finite(run, step + 1, epoch, saved)
            lr = _optimizer_step(optimizer, scheduler)
            step += 1
            rows.append(_step_row(step, epoch, reduced, lr, len(global_batch) * group, tokens * world, started))
            watch.step(rows, total_steps)
            if _any_rank(stop["requested"], world, device):
                save_checkpoint(step=step, rows=rows)
                raise Interrupted(f"stopped by SIGTERM at step {step}; rerun to resume from the checkpoint")
            if step % s.checkpoint_every == 0 and step < total_steps:
                save_checkpoint(step=step, rows=rows)
                saved = step

    # -- outputs: the peft adapter folder and the training log, each written atomically
    weights, _ = _training_state(model, optimizer, sharded)  # every rank takes part
    if rank == 0:
        _write_outputs(run, model, weights, tokenizer, rows, fingerprint, _device_record(device, world), watch)
    _leave_process_group(world)
