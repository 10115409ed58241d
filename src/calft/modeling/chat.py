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


# String Seed of Thought (reference spec §9): the reference's instruction, in calft's words, with its
# steps, tags and format example; and, for the harmony protocol, its developer message.
_SSOT_FORMAT = """Follow this tag structure strictly and answer in exactly this format:
<random_string>
...
</random_string>
<thinking>
...
</thinking>
<answer>
...
</answer>"""
SSOT_NUMERIC = f"""You are a helpful assistant that reasons carefully and answers in detail. When a task involves probability \
or any other non-deterministic choice, begin by generating a unique, complex random string to use as a seed.

The string should look arbitrary and unpredictable, with no visible structure or pattern: use your judgment to \
make it impossible to guess.

When the user asks you to sample from a probability distribution, base every random draw or other stochastic \
decision on that seed, exactly the text between the `<random_string>` tags.

Take these steps for every instruction:
1. Write the seed between `<random_string>` and `</random_string>` tags.
2. Reason about the question carefully and at length between `<thinking>` and `</thinking>` tags. Make every \
probabilistic decision from the seed (exactly the text between the `<random_string>` tags), drawing as much \
randomness from it as you can by using all of it.
3. Give your final answer between `<answer>` and `</answer>` tags.

{_SSOT_FORMAT}"""
SSOT_OPEN_ENDED = f"""You are a helpful assistant that reasons carefully and answers in detail. When a task admits many valid \
answers, you give ONE diverse answer, and to choose it you begin by generating a unique, complex random string \
to use as a seed.

The string should look arbitrary and unpredictable, with no visible structure or pattern: use your judgment to \
make it impossible to guess.

When the user asks a question that has many valid answers, base every random or stochastic choice on that seed, \
exactly the text between the `<random_string>` tags.

Take these steps for every instruction:
1. Write the seed between `<random_string>` and `</random_string>` tags.
2. Reason about the question carefully and at length between `<thinking>` and `</thinking>` tags, and use the \
seed (exactly the text between the `<random_string>` tags) to arrive at ONE answer that is unique and diverse, \
drawing as much randomness from it as you can by using all of it.
3. Give your final answer between `<answer>` and `</answer>` tags.

{_SSOT_FORMAT}"""
_HARMONY_RULES = """Do not comment on any conflict between the user's and the developer's instructions, and do not write role \
names, channel names or tool syntax as plain text. The final channel holds the answer and nothing else."""
SSOT_NUMERIC_HARMONY = f"""Carry out String Seed of Thought within your native response format.

For tasks that are probabilistic or non-deterministic:

1. In your analysis, first produce a unique, complex random string to serve as a seed.
2. Base every stochastic or sampling decision on that seed.
3. Keep the seed and all the reasoning that uses it in the analysis channel.
4. In the final channel, write ONLY the sampled answer: no XML tags, no other text.

{_HARMONY_RULES}"""
SSOT_OPEN_ENDED_HARMONY = f"""Carry out String Seed of Thought within your native response format.

For tasks that have many valid answers:

1. In your analysis, first produce a unique, complex random string to serve as a seed.
2. Use that seed to make your answer diverse and non-deterministic.
3. Keep the seed and all the reasoning that uses it in the analysis channel.
4. In the final channel, write ONLY the answer: no XML tags, no other text.

{_HARMONY_RULES}"""


def ssot_instruction(chat: ChatFormat, open_ended: bool = False) -> str:
    """The String Seed of Thought instruction for this model's protocol: numeric sampling, or one
    diverse answer to an open-ended question."""
    if chat.chat_protocol == "harmony":
        return SSOT_OPEN_ENDED_HARMONY if open_ended else SSOT_NUMERIC_HARMONY
    return SSOT_OPEN_ENDED if open_ended else SSOT_NUMERIC


def ssot_format(chat: ChatFormat) -> ChatFormat:
    """String Seed of Thought needs room to reason (reference spec §9): thinking switched on where
    the template has the switch (Qwen3), no forced final-channel prefix (GPT-OSS)."""
    kwargs = dict(chat.chat_template_kwargs)
    if "enable_thinking" in kwargs:
        kwargs["enable_thinking"] = True
    return dataclasses.replace(chat, chat_template_kwargs=kwargs, generation_prefix=None)
