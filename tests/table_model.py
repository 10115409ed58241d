"""A stand-in language model for known-answer tests of token trees and logit KL, small enough that its
logits are a formula numpy evaluates without calft: at each position, the row of the current token in
a fixed table, plus the mean embedding of the tokens the position attends to, plus its position id
times a slope. A wrong attention mask, position id or parent changes its output, as it would a real
model's."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch


class TokenTableModel(torch.nn.Module):
    def __init__(self, vocabulary: int, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        table, embedding, slope = (
            torch.randn(*shape, generator=generator, dtype=torch.float64)
            for shape in ((vocabulary, vocabulary), (vocabulary, vocabulary), (vocabulary,))
        )
        self.table = torch.nn.Parameter(table.float(), requires_grad=False)
        self.embedding = torch.nn.Parameter(embedding.float(), requires_grad=False)
        self.slope = torch.nn.Parameter(0.3 * slope.float(), requires_grad=False)
        text_config = SimpleNamespace(_attn_implementation="sdpa", layer_types=None, sliding_window=None)
        self.config = SimpleNamespace(get_text_config=lambda: text_config)

    @property
    def dtype(self):
        return self.table.dtype

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep=slice(None), **_):
        rows, length = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(length, device=input_ids.device).expand(rows, -1)
        if attention_mask is None or attention_mask.dim() == 2:  # padding mask: causal attention
            sees = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()[None]
            if attention_mask is not None:
                sees = sees & attention_mask[:, None, :].bool()
        else:  # a tree mask (rows, 1, length, length)
            sees = attention_mask[:, 0].bool()
        context = sees.float() @ self.embedding[input_ids] / sees.sum(-1, keepdim=True)
        logits = self.table[input_ids] + context + position_ids[..., None] * self.slope
        return SimpleNamespace(logits=logits[:, logits_to_keep])

    def kl(self, sequence: list[int], children: dict[int, float], tau: float = 1.0) -> float:
        """KL(q || softmax(z / tau)) over the children's tokens, z the logits after `sequence` (the
        prompt and the prefix), in float64."""
        table, embedding, slope = (p.double().numpy() for p in (self.table, self.embedding, self.slope))
        row = (table[sequence[-1]] + embedding[sequence].mean(axis=0) + (len(sequence) - 1) * slope) / tau
        log_pi = row - np.log(np.exp(row).sum())
        return sum(q * (math.log(q) - log_pi[child]) for child, q in children.items())
