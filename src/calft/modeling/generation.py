"""Generation: N independent single-sample continuations of one rendered prompt (reference spec
§8.1, §15), shared by the evaluation and transfer stages.

The prompt is prefilled once and its key/value cache shared by every continuation; what all prompts
of a set begin with (system prompt, instruction) is prefilled once for the set. On CPU, rows with
equal generations so far share their forward and rows that emit a stop token leave the batch; on an
accelerator all rows of a chunk run as one batch that stays on the device. Each
sample has its own seed, from which a stream of uniforms drives inverse-CDF sampling (over token
ids, after temperature and top-p), so a sample depends on its seed only, never on the batch size or
on the other rows (the reference seeds a whole batch with its first seed, spec §18.4).
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Callable

import numpy as np
import torch
from transformers.cache_utils import Cache, DynamicLayer

from calft.errors import RunError
from calft.modeling.loader import LoadedModel
from calft.modeling.settings import Generation
from calft.progress import progress


def sample_seed(base_seed: int, prompt_id: str, index: int) -> int:
    """The seed of sample `index` of a prompt: independent across prompts and samples, the same for
    every model and method (common random numbers make their comparison sharper)."""
    digest = hashlib.sha256(f"{base_seed}/{prompt_id}/{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _draw(
    logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_p: float, rows: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens by inverse CDF over token ids (the first id whose cumulative probability exceeds u),
    and whether every row's probabilities were finite (a device flag: the caller decides when to
    look). With `rows`, uniform i draws from logits row rows[i]: each row's distribution and CDF are
    computed once, however many draws share it."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        ordered, order = probs.sort(dim=-1, descending=True)
        outside = ordered.cumsum(dim=-1) - ordered >= top_p  # keep the smallest set reaching top_p
        probs = probs.scatter(-1, order, ordered.masked_fill(outside, 0.0))
    cdf = probs.cumsum(dim=-1, dtype=torch.float64)
    total = cdf[:, -1]
    finite = torch.isfinite(total).all()  # probabilities are never negative: a NaN or inf reaches the total
    if rows is None:
        drawn = torch.searchsorted(cdf, (uniforms.to(cdf) * total)[:, None], right=True).squeeze(1)
    else:
        drawn = _search_in_rows(cdf, uniforms.to(cdf) * total[rows], rows)
    return drawn.clamp_max(logits.shape[-1] - 1), finite


def _search_in_rows(cdf: torch.Tensor, targets: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """For each target, the first index of its row of `cdf` (rows[i]) holding a larger value. The
    targets are laid out as a (rows of cdf, most targets of one row) matrix, so that no row of
    `cdf` is copied once per target."""
    counts = torch.bincount(rows, minlength=len(cdf))
    order = torch.argsort(rows, stable=True)
    rank = torch.empty_like(rows)
    rank[order] = torch.arange(len(rows), device=rows.device) - (counts.cumsum(0) - counts)[rows[order]]
    laid_out = targets.new_zeros((len(cdf), int(counts.max())))
    laid_out[rows, rank] = targets
    return torch.searchsorted(cdf, laid_out, right=True)[rows, rank]


def _refuse_non_finite(step: int) -> None:
    raise RunError(
        f"the model's next-token probabilities are not finite (NaN or inf) at generated token {step + 1}: "
        "its weights, its adapter or the temperature produce garbage; no sample was written"
    )


class PreallocatedLayer(DynamicLayer):
    """One layer's keys and values in buffers of `capacity` positions, written in place: a step writes
    its position and attention reads a view of the positions filled so far, where a growing cache
    copies itself whole at every step. Every position is kept, in sliding-window layers too: their
    masks cut the window over absolute positions, as a forward without a cache does."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        rows, heads = key_states.shape[:2]
        self.key_buffer = key_states.new_empty((rows, heads, self.capacity, key_states.shape[-1]))
        self.value_buffer = value_states.new_empty((rows, heads, self.capacity, value_states.shape[-1]))
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, self.length = self.length, self.length + key_states.shape[-2]
        if self.length > self.capacity:
            raise RuntimeError(f"the preallocated cache holds {self.capacity} positions, not {self.length}")
        self.key_buffer[:, :, start : self.length] = key_states
        self.value_buffer[:, :, start : self.length] = value_states
        return self._filled()

    def _filled(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.keys, self.values = self.key_buffer[:, :, : self.length], self.value_buffer[:, :, : self.length]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def _keep_rows(self, rows: torch.Tensor) -> None:
        """New buffers holding the batch rows `rows` (repeats allowed), copied in one pass."""
        self.key_buffer = self.key_buffer.index_select(0, rows)
        self.value_buffer = self.value_buffer.index_select(0, rows)
        self._filled()

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            self._keep_rows(torch.arange(self.key_buffer.shape[0], device=self.device).repeat_interleave(repeats))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized:
            self._keep_rows(indices)

    def extended(self, capacity: int) -> PreallocatedLayer:
        """A copy of this (filled) layer in buffers of `capacity` positions."""
        layer = PreallocatedLayer(capacity)
        layer.device, layer.length, layer.is_initialized = self.device, self.length, True
        for name in ("key_buffer", "value_buffer"):
            old = getattr(self, name)
            new = old.new_empty((old.shape[0], old.shape[1], capacity, old.shape[3]))
            new[:, :, : self.length] = old[:, :, : self.length]
            setattr(layer, name, new)
        layer._filled()
        return layer


def preallocated_cache(model, capacity: int) -> Cache:
    """A key/value cache of `capacity` positions per row for every layer of the model."""
    layers = model.config.get_text_config(decoder=True).num_hidden_layers
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(layers)])


class SharedPrefix:
    """The tokens every prompt of a set begins with (a chat template's system prompt, an
    instruction), prefilled once: each prompt's prefill then computes its own tokens only."""

    def __init__(self, model, prompts: list[list[int]]):
        common = os.path.commonprefix(prompts) if len(prompts) > 1 else []
        self.ids = list(common[: min(map(len, prompts)) - 1])  # every prompt keeps a token of its own
        self.cache = None
        if self.ids:
            device = next(model.parameters()).device
            with torch.no_grad():
                self.cache = model(
                    input_ids=torch.tensor([self.ids], device=device),
                    use_cache=True,
                    logits_to_keep=1,
                    cache=preallocated_cache(model, len(self.ids)),
                ).cache

    def split(self, prompt_ids: list[int], capacity: int) -> tuple[Cache | None, list[int]]:
        """(a cache of `capacity` positions holding the shared prefix, the prompt's own tokens), or
        (None, the whole prompt) for a prompt that does not begin with the prefix."""
        if self.cache is None or len(prompt_ids) <= len(self.ids) or prompt_ids[: len(self.ids)] != self.ids:
            return None, prompt_ids
        return Cache(layers=[layer.extended(capacity) for layer in self.cache.layers]), prompt_ids[len(self.ids) :]


def free_memory(device: torch.device) -> int:
    """Bytes free on the device: the accelerator's free memory, or the host's available RAM."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def rows_that_fit(model, tokens: int, rows: int, free_bytes: int) -> int:
    """The most rows, up to `rows`, whose key/value cache of `tokens` positions and next-token
    probabilities take at most half of `free_bytes` (the other half: activations, allocator slack)."""
    config = model.config.get_text_config()
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    cache = 2 * config.num_hidden_layers * kv_heads * head_dim * next(model.parameters()).element_size() * tokens
    probabilities = 24 * config.vocab_size  # float32 probabilities, their float64 CDF, the logits
    return max(1, min(rows, free_bytes // 2 // (cache + probabilities)))


@torch.no_grad()
def sample(
    model,
    prompt_ids: list[int],
    seeds: list[int],
    max_new_tokens: int,
    stop_ids: set[int],
    temperature: float = 1.0,
    top_p: float = 1.0,
    chunk_size: int | None = None,
    strategy: str | None = None,
    hopeless: Callable[[list[int]], bool] | None = None,
    prefix: SharedPrefix | None = None,
    progress_label: str | None = None,
) -> list[tuple[list[int], bool]]:
    """For each seed: (generated token ids without the stop token, whether a stop token ended it).

    The prompt is prefilled once. `strategy` "shared" (the default on CPU) runs one row per distinct
    history, which saves most forwards where many rows share their first tokens; "batched" (the
    default on accelerators) keeps every row of a chunk in one fixed batch on the device, with no
    host synchronisation per step. Rows are decoded `chunk_size` at a time; None: as many as fit in
    the device's free memory (every row when they fit). No sample depends on it. A row for which
    `hopeless(tokens)` is True ends there, unstopped, at the shortest such prefix of its tokens.
    With `prefix` (of the prompt set), only the prompt's tokens after it are prefilled. With
    `progress_label`, the decoding steps report progress lines (calft.progress).
    """
    device = next(model.parameters()).device
    strategy = strategy or ("shared" if device.type == "cpu" else "batched")
    capacity = len(prompt_ids) + max_new_tokens
    if chunk_size is None:
        chunk_size = rows_that_fit(model, capacity, len(seeds), free_memory(device))
    cache, own_ids = prefix.split(prompt_ids, capacity) if prefix is not None else (None, prompt_ids)
    prefill = model(
        input_ids=torch.tensor([own_ids], device=device),
        use_cache=True,
        logits_to_keep=1,
        cache=cache if cache is not None else preallocated_cache(model, capacity),
    )
    uniforms = torch.tensor(np.stack([np.random.default_rng(s).random(max_new_tokens) for s in seeds]))
    stops = torch.tensor(sorted(stop_ids), device=device)
    run_chunk = {"shared": _sample_shared, "batched": _sample_batched}[strategy]
    results: list[tuple[list[int], bool]] = []
    starts = range(0, len(seeds), chunk_size)
    bar = progress(total=len(starts) * max_new_tokens, label=progress_label, unit="step", quiet=not progress_label)
    for position, start in enumerate(starts):
        chunk_uniforms = uniforms[start : start + chunk_size].to(device)
        results.extend(run_chunk(model, prefill, chunk_uniforms, stops, temperature, top_p, hopeless, bar.update))
        bar.update((position + 1) * max_new_tokens - bar.n)  # a chunk whose rows all stopped early
    bar.close()
    return results


def _sample_shared(
    model, prefill, uniforms: torch.Tensor, stops: torch.Tensor, temperature: float, top_p: float, hopeless, tick
) -> list[tuple[list[int], bool]]:
    """Rows whose generations so far are equal share one forward (and one cache row): all rows share
    the prompt, and many share their first tokens, so each step runs one row per distinct history."""
    rows, max_new_tokens = uniforms.shape
    device = stops.device
    vocabulary = prefill.logits.shape[-1]
    cache = copy.deepcopy(prefill.cache)
    logits = prefill.logits[0, -1:]  # one distinct history: the prompt
    history = torch.zeros(rows, dtype=torch.long, device=device)  # each alive row's distinct history
    alive = torch.arange(rows, device=device)
    tokens = [[] for _ in range(rows)]
    stopped = [False] * rows
    for step in range(max_new_tokens):
        tick()
        chosen, finite = _draw(logits, uniforms[alive, step], temperature, top_p, rows=history)
        if not finite:
            _refuse_non_finite(step)
        ended = torch.isin(chosen, stops)
        given_up = []
        for row, token, end in zip(alive.tolist(), chosen.tolist(), ended.tolist()):
            if end:
                stopped[row] = True
            else:
                tokens[row].append(token)
            given_up.append(not end and hopeless is not None and hopeless(tokens[row]))
        keep = ~(ended | torch.tensor(given_up, device=device))
        if step == max_new_tokens - 1 or not keep.any():
            break
        alive = alive[keep]
        distinct, history = torch.unique(history[keep] * vocabulary + chosen[keep], return_inverse=True)
        source = distinct // vocabulary  # the cache row each new history extends
        if len(source) != len(logits) or not torch.equal(source, torch.arange(len(logits), device=device)):
            cache.batch_select_indices(source)  # a copy of the whole cache: skipped when rows stay put
        logits = model(input_ids=(distinct % vocabulary)[:, None], cache=cache, use_cache=True).logits[:, -1]
    return list(zip(tokens, stopped))


COMPACT_EVERY = 8  # batched sampler: steps between looks at which rows have stopped


def _sample_batched(
    model, prefill, uniforms: torch.Tensor, stops: torch.Tensor, temperature: float, top_p: float, hopeless, tick
) -> list[tuple[list[int], bool]]:
    """Every row of the chunk in one batch on the device: draws, stop masks and the generated tokens
    stay there. Every COMPACT_EVERY steps the host looks once: it cuts the rows that became hopeless,
    ends the chunk when all rows have stopped, and drops stopped rows from the batch (and cache)
    when they are at least half of it."""
    rows, max_new_tokens = uniforms.shape
    device = stops.device
    cache = copy.deepcopy(prefill.cache)
    cache.batch_repeat_interleave(rows)
    logits = prefill.logits[0, -1:].expand(rows, -1)
    generated = torch.zeros((rows, max_new_tokens), dtype=torch.long, device=device)
    length = torch.full((rows,), max_new_tokens, dtype=torch.long, device=device)  # tokens before the stop
    alive = torch.arange(rows, device=device)  # the chunk row of each batch row
    running = torch.ones(rows, dtype=torch.bool, device=device)  # per batch row: no stop token yet
    finite = torch.ones((), dtype=torch.bool, device=device)  # every draw so far from finite probabilities
    cut_at: dict[int, int] = {}  # chunk row -> tokens kept, for rows cut as hopeless
    checked = 0  # tokens of every row known not to be hopeless
    for step in range(max_new_tokens):
        tick()
        chosen, finite_now = _draw(logits, uniforms[alive, step], temperature, top_p)
        finite &= finite_now
        ended = running & torch.isin(chosen, stops)
        generated[alive, step] = chosen
        length[alive] = torch.where(ended, step, length[alive])
        running &= ~ended
        if step == max_new_tokens - 1:
            break
        if step % COMPACT_EVERY == COMPACT_EVERY - 1:
            if hopeless is not None:
                _cut_hopeless(generated, length, alive, running, hopeless, checked, step + 1, cut_at)
                checked = step + 1
            remaining, all_finite = torch.stack([running.sum(), finite.long()]).tolist()  # the host looks
            if not all_finite:
                _refuse_non_finite(step)
            if remaining == 0:
                break
            if remaining <= len(alive) // 2:
                kept = running.nonzero().squeeze(1)
                cache.batch_select_indices(kept)
                alive, running, chosen = alive[kept], running[kept], chosen[kept]
        logits = model(input_ids=chosen[:, None], cache=cache, use_cache=True).logits[:, -1]
    if not finite:
        _refuse_non_finite(step)
    if hopeless is not None:
        _cut_hopeless(generated, length, alive, running, hopeless, checked, step + 1, cut_at)
    generated, length = generated.cpu(), length.cpu().tolist()
    return [
        (generated[row, : cut_at[row]].tolist(), False)
        if row in cut_at
        else (generated[row, :n].tolist(), n < max_new_tokens)
        for row, n in enumerate(length)
    ]


def _cut_hopeless(
    generated: torch.Tensor,
    length: torch.Tensor,
    alive: torch.Tensor,
    running: torch.Tensor,
    hopeless,
    checked: int,
    steps: int,
    cut_at: dict[int, int],
) -> None:
    """Batched sampler: each row of the batch with tokens past `checked` (running, or stopped since)
    is cut at its shortest hopeless prefix longer than `checked`, as the shared sampler cuts it."""
    rows = alive.tolist()
    ends = length[alive].clamp_max(steps).tolist()  # tokens generated: up to the stop, or so far
    tokens = generated[alive, :steps].tolist()
    cut = []
    for batch_row, (row, end, row_tokens) in enumerate(zip(rows, ends, tokens)):
        if row in cut_at:
            continue
        kept = next((n for n in range(checked + 1, end + 1) if hopeless(row_tokens[:n])), None)
        if kept is not None:
            cut_at[row] = kept
            cut.append(batch_row)
    if cut:
        running[torch.tensor(cut, device=running.device)] = False


def generate(
    loaded: LoadedModel,
    ids: list[int],
    seeds: list[int],
    settings: Generation,
    viable: Callable[[str], bool] | None = None,
    prefix: SharedPrefix | None = None,
    progress_label: str | None = None,
):
    """For each seed of a rendered prompt: the decoded answer (special tokens skipped), its number of
    tokens, and whether a stop token ended it. Returns the three lists. With `viable`, an answer ends
    at its first token after which `viable(text)` is False; `prefix`: the prompt set's shared prefix;
    `progress_label`: report the decoding steps (a job of one prompt and many samples)."""
    hopeless = None
    if viable is not None:

        def hopeless(tokens: list[int]) -> bool:
            return not viable(loaded.tokenizer.decode(tokens, skip_special_tokens=True))

    generated = sample(
        loaded.model,
        ids,
        seeds,
        settings.max_new_tokens,
        loaded.stop_ids,
        settings.temperature,
        settings.top_p,
        settings.chunk_size,
        hopeless=hopeless,
        prefix=prefix,
        progress_label=progress_label,
    )
    texts = loaded.tokenizer.batch_decode([tokens for tokens, _ in generated], skip_special_tokens=True)
    return texts, [len(tokens) for tokens, _ in generated], [stopped for _, stopped in generated]
