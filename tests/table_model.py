"""A stand-in language model for known-answer tests of token trees and logit KL: its next-token logits
depend on the current token alone (row t of a fixed table), whatever the attention mask, so every
KL it is scored with is a sum numpy computes without calft."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch


class TokenTableModel(torch.nn.Module):
    def __init__(self, vocabulary: int, seed: int = 0):
        super().__init__()
        table = torch.randn(vocabulary, vocabulary, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        self.table = torch.nn.Parameter(table.float(), requires_grad=False)
        text_config = SimpleNamespace(_attn_implementation="sdpa", layer_types=None, sliding_window=None)
        self.config = SimpleNamespace(get_text_config=lambda: text_config)

    @property
    def dtype(self):
        return self.table.dtype

    def forward(self, input_ids, logits_to_keep=slice(None), **_):
        return SimpleNamespace(logits=self.table[input_ids][:, logits_to_keep])

    def kl(self, token: int, children: dict[int, float], tau: float = 1.0) -> float:
        """KL(q || softmax(table[token] / tau)) over the children's tokens, in float64."""
        row = self.table[token].double().numpy() / tau
        log_pi = row - np.log(np.exp(row).sum())
        return sum(q * (math.log(q) - log_pi[child]) for child, q in children.items())
