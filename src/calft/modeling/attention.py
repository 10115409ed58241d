"""Tree attention on every paper architecture: the mask each attention implementation honours.

A packed batch is one row whose tokens form a tree: token i sees token j when j is i or one of its
ancestors, and, in a sliding-window layer (Gemma-3's local layers, half of GPT-OSS's), when their
positions differ by less than the window. transformers hands a prepared 4D mask to the attention
functions unchanged, so its form must suit the implementation:
- SDPA takes booleans (True: attend);
- eager attention adds the mask to the scores, so it needs 0 where a token may attend and a large
  negative number elsewhere; a boolean mask there would add 0 or 1 and mask nothing.
Models with several layer types take one mask per type. Every other implementation (flash attention
ignores custom masks) is refused. SDPA is chosen wherever a model supports it; GPT-OSS, whose
attention sinks SDPA lacks, runs eager.
"""

from __future__ import annotations

import torch

from calft.errors import UserError

TREE_MASK_IMPLEMENTATIONS = ("sdpa", "eager")


def implementation_for(config) -> str:
    """The attention implementation calft loads a model with: SDPA where the model class supports it."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    return "sdpa" if model_class._supports_sdpa else "eager"


def tree_attention_mask(model, ancestors: torch.Tensor, positions: torch.Tensor):
    """The `attention_mask` argument of a forward over one packed row.

    ancestors (T, T) bool: row i is True at i and at i's ancestors; positions (T,): the tokens'
    positions in their own sequences (their depth in the tree)."""
    model = getattr(model, "module", model)  # under DDP
    config = model.config.get_text_config()
    implementation = config._attn_implementation
    if implementation not in TREE_MASK_IMPLEMENTATIONS:
        raise UserError(
            f"attention implementation '{implementation}' cannot honour a tree mask; calft needs one of "
            f"{', '.join(TREE_MASK_IMPLEMENTATIONS)}"
        )
    layer_types = getattr(config, "layer_types", None)
    window = getattr(config, "sliding_window", None)
    dtype = model.dtype

    def form(mask: torch.Tensor) -> torch.Tensor:
        mask = mask[None, None]
        if implementation == "eager":
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        return mask

    if not layer_types:
        return form(ancestors)
    masks = {}
    for layer_type in set(layer_types):
        mask = ancestors
        if layer_type == "sliding_attention" and window:
            mask = ancestors & (positions[:, None] - positions[None, :] < window)
        masks[layer_type] = form(mask)
    return masks
