"""The model as lm-evaluation-harness sees it: lm-eval's HF model with calft's chat formatting and
PALOMA's strided perplexity windows.

* Chat rendering is the model's template with the config's template variables (pinned date, thinking
  switch) plus its generation prefix, exactly as in training and sampling, and so is tokenization:
  the model entry's `add_special_tokens` decides whether the tokenizer adds its own BOS before the
  rendered text (the reference's double BOS for Gemma and Llama), never lm-eval's BOS check.
* Answer choices are scored as `retention.choice_format` says: `reference`, the reference's token
  ids (prompt + continuation tokenized together and split after as many tokens as the prompt has on
  its own, so that a token merged across the boundary counts as context); `chat`, lm-eval's
  convention for chat models (the prompt's trailing whitespace moved into the continuation).
* What every row of a batch begins with (the chat template's opening, few-shot examples) is computed
  once for the batch, in scoring and in generation: the rows' cache continues from it.
* `loglikelihood_rolling` scores a document in windows of `context` tokens advancing by `stride`, so
  every token after the first is scored exactly once with at least context - stride tokens of left
  context; the document is tokenized without special tokens and exactly one BOS is prepended when
  the tokenizer adds one by default (then the first text token is scored too).
"""

from __future__ import annotations

import torch
from lm_eval.models import huggingface
from lm_eval.models.huggingface import HFLM

from calft.modeling.loader import LoadedModel
from calft.progress import progress


def evaluate_own_tasks(lm, configs: list[dict], **options) -> dict:
    """lm-eval's `simple_evaluate` over calft's own task configs; lm-eval's ~26,000 task files are
    never indexed (about 14 s a job)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    return simple_evaluate(model=lm, tasks=configs, task_manager=TaskManager(include_defaults=False), **options)


def strided_windows(length: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored position) of each window over a sequence of `length` tokens.
    Position t is scored as the prediction of token t from tokens < t; position 0 never is."""
    if not 0 < stride <= context:
        raise ValueError(f"stride {stride} must be in (0, context={context}]")
    windows, scored_until = [], 1
    for begin in range(0, max(length - 1, 0), stride):
        end = min(begin + context, length)
        windows.append((begin, end, max(scored_until, begin + 1)))
        scored_until = end
        if end == length:
            break
    return windows


def _common_prefix_length(rows: torch.Tensor) -> int:
    """How many leading columns of a (rows, length) tensor hold the same token in every row."""
    same = (rows == rows[:1]).all(dim=0)
    return int(same.long().cumprod(dim=0).sum())


def expects_bos(tokenizer) -> bool:
    """Whether the tokenizer starts every encoding with its BOS token (Llama, Gemma: yes)."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a").input_ids[:1] == [bos]


def _request_progress(iterable=None, total: int | None = None, disable: bool = False, desc: str = "requests"):
    """lm-eval's request loops (its bars would fill a log with carriage returns) as calft's progress lines."""
    return progress(iterable, total=total, label=desc, unit="request", quiet=disable)


huggingface.tqdm = _request_progress  # the name HFLM's loops call


class CalftLM(HFLM):
    """lm-eval's HFLM around a calft-loaded model (base, or base plus an unmerged LoRA adapter)."""

    def __init__(
        self,
        loaded: LoadedModel,
        batch_size: int,
        context: int = 2048,
        stride: int = 1024,
        max_gen_toks: int = 256,
        prepend_bos: bool = True,
        choice_format: str = "reference",
    ):
        self.chat, self.choice_format = loaded.chat, choice_format
        loaded.tokenizer.chat_template = self.chat.pinned(loaded.tokenizer.chat_template)
        super().__init__(
            pretrained=loaded.model,
            tokenizer=loaded.tokenizer,
            batch_size=batch_size,
            chat_template_args=self.chat.template_variables(),
        )
        self.context, self.stride, self._max_gen_toks = context, stride, max_gen_toks
        self.bos = loaded.tokenizer.bos_token_id if prepend_bos and expects_bos(loaded.tokenizer) else None

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        text = super().apply_chat_template(chat_history, add_generation_prompt)
        return text + (self.chat.generation_prefix or "") if add_generation_prompt else text

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None, **kwargs
    ) -> list[int]:
        if add_special_tokens is None:
            add_special_tokens = self.chat.add_special_tokens
        return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)

    def tok_batch_encode(
        self,
        strings: list[str],
        padding_side: str = "left",
        left_truncate_len: int | None = None,
        truncation: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Generation prompts, tokenized as every other prompt (see tok_encode), left-padded."""
        old_side, self.tokenizer.padding_side = self.tokenizer.padding_side, padding_side
        try:
            encoding = self.tokenizer(
                strings,
                truncation=truncation,
                padding="longest",
                return_tensors="pt",
                add_special_tokens=self.chat.add_special_tokens,
            )
        finally:
            self.tokenizer.padding_side = old_side
        ids, mask = encoding["input_ids"], encoding["attention_mask"]
        if left_truncate_len:
            ids, mask = ids[:, -left_truncate_len:], mask[:, -left_truncate_len:]
        return ids, mask

    @torch.no_grad()
    def _shared_prefix_cache(self, prefix: torch.Tensor, rows: int):
        """The key/value cache of `prefix` (1D), computed once and repeated for `rows` rows, with the
        prefix's logits."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        logits = self.model(input_ids=prefix[None], cache=cache, use_cache=True).logits
        cache.batch_repeat_interleave(rows)
        return cache, logits

    def _model_call(self, inps: torch.Tensor, attn_mask=None, labels=None) -> torch.Tensor:
        """Logits of right-padded rows; the rows' common prefix is computed once."""
        shared = min(_common_prefix_length(inps), inps.shape[1] - 1)
        if attn_mask is not None or labels is not None or len(inps) < 2 or shared < 1:
            return super()._model_call(inps, attn_mask, labels)
        cache, head = self._shared_prefix_cache(inps[0, :shared], len(inps))
        with torch.no_grad():
            tail = self.model(input_ids=inps[:, shared:], cache=cache, use_cache=True).logits
        return torch.cat([head.expand(len(inps), -1, -1), tail], dim=1)

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs):
        """lm-eval's batched generation from left-padded contexts, with the rows' common prefix
        prefilled once: the batch becomes the prefix followed by each row's own tokens, left-padded
        (the mask's positions leave every token where it was)."""
        mask = generation_kwargs.pop("attention_mask", None)
        if mask is None or len(context) < 2:
            return super()._model_generate(context, max_length, stop, attention_mask=mask, **generation_kwargs)
        lengths = mask.sum(dim=1)
        starts = (context.shape[1] - lengths).tolist()
        shortest = int(lengths.min())
        aligned = torch.stack([row[start : start + shortest] for row, start in zip(context, starts)])
        shared = min(_common_prefix_length(aligned), shortest - 1)
        if shared < 1:
            return super()._model_generate(context, max_length, stop, attention_mask=mask, **generation_kwargs)
        own = [row[start + shared :] for row, start in zip(context, starts)]
        width = max(len(tokens) for tokens in own)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        rows = torch.full((len(own), shared + width), pad, dtype=context.dtype, device=context.device)
        rows_mask = torch.zeros_like(rows, dtype=mask.dtype)
        rows[:, :shared], rows_mask[:, :shared] = aligned[0, :shared], 1
        for row, tokens in enumerate(own):
            rows[row, rows.shape[1] - len(tokens) :], rows_mask[row, rows.shape[1] - len(tokens) :] = tokens, 1
        cache, _ = self._shared_prefix_cache(aligned[0, :shared], len(own))
        generated = super()._model_generate(
            rows,
            max_length - context.shape[1] + rows.shape[1],
            stop,
            attention_mask=rows_mask,
            cache=cache,
            **generation_kwargs,
        )
        return torch.cat([context, generated[:, rows.shape[1] :]], dim=1)

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        if self.choice_format == "chat":
            return super()._encode_pair(context, continuation)
        whole, split = self.tok_encode(context + continuation), len(self.tok_encode(context))
        return whole[:split], whole[split:]  # a token merged across the boundary stays in the context

    def document_ids(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False).input_ids
        return ([self.bos] if self.bos is not None else []) + ids

    @torch.no_grad()
    def document_nll(self, ids: list[int]) -> float:
        """Summed natural-log NLL of a token sequence's scored positions (float32 softmax)."""
        tokens = torch.tensor(ids, device=self.device)
        total = 0.0
        for begin, end, first in strided_windows(len(ids), self.context, self.stride):
            kept = self.model(tokens[None, begin:end], logits_to_keep=end - first + 1).logits[0, :-1]
            total += torch.nn.functional.cross_entropy(kept.float(), tokens[first:end], reduction="sum").item()
        return total

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        results = []
        for request in progress(requests, total=len(requests), label="perplexity", unit="document"):
            (text,) = request.args
            ids = self.document_ids(text)
            results.append(-self.document_nll(ids) if len(ids) > 1 else 0.0)
        return results
