"""Chat formatting of prompts, the same for training and evaluation (reference spec §2.2-2.4).

The prompt is the only user message; the model's chat template renders it with the generation
prompt and the configured template variables (Qwen3 `enable_thinking`, GPT-OSS
`reasoning_effort`), then the configured generation prefix is appended. Templates that print
today's date get the pinned `template_date` instead: through their date variables (Llama-3.x
`date_string`, GPT-OSS `current_date`) and by replacing every `strftime_now(...)` call with the
pinned date so formatted, so a prompt is the same on every day. The rendered text already holds
every special token the model expects (BOS included), so by default it is tokenized with
`add_special_tokens=False`: exactly one BOS. `add_special_tokens: true` in a model's entry
reproduces the reference, which adds them again (two BOS for Gemma-3 and Llama-3.2).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from dataclasses import dataclass, field

from calft.errors import UserError
from calft.modeling.settings import ModelEntry

STRFTIME_CALL = re.compile(r"""strftime_now\(\s*(['"])(.*?)\1\s*\)""")


@dataclass(frozen=True)
class ChatFormat:
    """How one model's prompts are rendered; built from the model's config entry."""

    terminator: str
    chat_template_kwargs: dict = field(default_factory=dict)
    generation_prefix: str | None = None
    template_date: str | None = None  # YYYY-MM-DD, pinned for templates that print a date
    add_special_tokens: bool = False  # the reference's tokenization (a second BOS where the template has one)
    terminator_is_eos: bool = False  # the terminator must be the tokenizer's eos_token
    chat_protocol: str = "plain"  # or "harmony" (GPT-OSS: developer instructions, analysis and final channels)

    @classmethod
    def from_entry(cls, model: ModelEntry) -> ChatFormat:
        return cls(
            terminator=model.terminator,
            chat_template_kwargs=dict(model.chat_template_kwargs),
            generation_prefix=model.generation_prefix,
            template_date=model.template_date,
            add_special_tokens=model.add_special_tokens,
            terminator_is_eos=model.terminator_is_eos,
            chat_protocol=model.chat_protocol,
        )

    @property
    def instruction_role(self) -> str:
        """The role of a system-level instruction: harmony gives it to the developer."""
        return "developer" if self.chat_protocol == "harmony" else "system"

    def template_variables(self) -> dict:
        variables = dict(self.chat_template_kwargs)
        if self.template_date:
            date = dt.date.fromisoformat(self.template_date)
            variables.setdefault("date_string", date.strftime("%d %b %Y"))  # Llama-3.x templates
            variables.setdefault("current_date", date.isoformat())  # GPT-OSS (harmony) templates
        return variables

    def pinned(self, template: str | None) -> str | None:
        """The chat template with each `strftime_now("<format>")` call replaced by the pinned date in
        that format. A template that prints today's date without a pinned one is refused."""
        if not template or "strftime_now" not in template:
            return template
        if not self.template_date:
            raise UserError(
                "the chat template prints today's date (strftime_now), so its prompts would change "
                "from day to day: set template_date in the model's entry"
            )
        date = dt.date.fromisoformat(self.template_date)
        pinned = STRFTIME_CALL.sub(lambda call: json.dumps(date.strftime(call.group(2))), template)
        if "strftime_now" in pinned:
            raise UserError(
                "the chat template calls strftime_now with a format that is not a literal string; "
                "calft cannot pin its date"
            )
        return pinned


def render(tokenizer, prompt: str, chat: ChatFormat, system: str | None = None) -> str:
    """The prompt as the model sees it: rendered chat text ending where the answer starts,
    after an optional system instruction."""
    if not tokenizer.chat_template:
        text = f"{system}\n\n{prompt}" if system else prompt
    else:
        messages = [{"role": chat.instruction_role, "content": system}] if system else []
        text = tokenizer.apply_chat_template(
            messages + [{"role": "user", "content": prompt}],
            chat_template=chat.pinned(tokenizer.chat_template),
            tokenize=False,
            add_generation_prompt=True,
            **chat.template_variables(),
        )
    return text + (chat.generation_prefix or "")


def prompt_ids(tokenizer, prompts: list[str], chat: ChatFormat, system: str | None = None) -> list[list[int]]:
    """Token ids of the rendered prompts: special tokens are not added a second time, unless the
    model's entry asks for the reference's tokenization."""
    texts = [render(tokenizer, prompt, chat, system) for prompt in prompts]
    return tokenizer(texts, add_special_tokens=chat.add_special_tokens).input_ids


def terminator_id(tokenizer, chat: ChatFormat) -> int:
    token_id = tokenizer.convert_tokens_to_ids(chat.terminator)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise UserError(f"terminator '{chat.terminator}' is not a single token of this tokenizer")
    if chat.terminator_is_eos and chat.terminator != tokenizer.eos_token:
        raise UserError(
            f"terminator '{chat.terminator}' is not the tokenizer's eos_token '{tokenizer.eos_token}', "
            "which terminator_is_eos requires (the reference appends the eos_token to every target)"
        )
    return int(token_id)


def ssot_format(chat: ChatFormat) -> ChatFormat:
    """String Seed of Thought needs room to reason (reference spec §9): thinking switched on where
    the template has the switch (Qwen3), no forced final-channel prefix (GPT-OSS)."""
    kwargs = dict(chat.chat_template_kwargs)
    if "enable_thinking" in kwargs:
        kwargs["enable_thinking"] = True
    return dataclasses.replace(chat, chat_template_kwargs=kwargs, generation_prefix=None)
