"""Chat formatting: dates pinned for every template that prints one, on any day; the reference's
special-token handling as an option."""

import datetime as real_datetime

import pytest

from calft.errors import UserError
from calft.modeling.chat import ChatFormat, prompt_ids, render
from calft.modeling.loader import load_tokenizer


def _on_day(monkeypatch, day: real_datetime.date) -> None:
    """Fake the clock of transformers' chat templates (their strftime_now reads datetime.now())."""
    import transformers.utils.chat_template_utils as templates

    class Frozen(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(day.year, day.month, day.day, 12, 0)

    monkeypatch.setattr(templates, "datetime", Frozen)


@pytest.mark.parametrize(
    "name, printed", [("llama3", "Today Date: 01 Jan 2026"), ("gpt-oss", "Current date: 2026-01-01")]
)
def test_a_template_that_prints_today_renders_the_same_prompt_on_any_day(replica, monkeypatch, name, printed):
    folder, entry = replica(name)
    tokenizer = load_tokenizer(folder)
    pinned = ChatFormat(
        entry["terminator"], entry.get("chat_template_kwargs", {}), entry.get("generation_prefix"), "2026-01-01"
    )
    unpinned = [{"role": "user", "content": "Hi"}]
    renders, raw = [], []
    for day in (real_datetime.date(2026, 11, 28), real_datetime.date(2027, 3, 4)):
        _on_day(monkeypatch, day)
        renders.append(render(tokenizer, "Generate a number.", pinned))
        if name == "gpt-oss":  # strftime_now is called unconditionally: the raw template follows the clock
            raw.append(tokenizer.apply_chat_template(unpinned, tokenize=False, add_generation_prompt=True))
    assert renders[0] == renders[1] and printed in renders[0]
    assert not raw or raw[0] != raw[1]
    with pytest.raises(UserError, match="set template_date"):
        render(tokenizer, "Generate a number.", ChatFormat(entry["terminator"]))


def test_the_reference_tokenization_adds_a_second_bos(replica):
    folder, entry = replica("gemma3-text")
    tokenizer = load_tokenizer(folder)
    (single,) = prompt_ids(tokenizer, ["Hi"], ChatFormat(entry["terminator"]))
    (double,) = prompt_ids(tokenizer, ["Hi"], ChatFormat(entry["terminator"], add_special_tokens=True))
    bos = tokenizer.bos_token_id
    assert single[0] == bos and single[1] != bos
    assert double[:2] == [bos, bos] and double[1:] == single


@pytest.mark.parametrize("name", ["qwen3", "gemma3-text", "llama3", "gpt-oss"])
def test_the_paper_settings_terminate_with_the_eos_token_and_count_bos_as_the_reference(replica, name):
    from conftest import PAPER_SETTINGS

    from calft.modeling.chat import terminator_id
    from calft.modeling.settings import ModelEntry

    folder, entry = replica(name)
    tokenizer = load_tokenizer(folder)
    paper = ChatFormat.from_entry(ModelEntry.from_dict(entry | PAPER_SETTINGS[name]))
    assert tokenizer.convert_ids_to_tokens(terminator_id(tokenizer, paper)) == tokenizer.eos_token
    (ids,) = prompt_ids(tokenizer, ["Hi"], paper)
    bos = tokenizer.bos_token_id
    assert (ids[:2] == [bos, bos]) == (name in ("gemma3-text", "llama3"))  # the template's BOS and the tokenizer's
    if name == "gemma3-text":  # calft's own terminator ends the chat turn, which is not the eos_token
        calft = ChatFormat.from_entry(ModelEntry.from_dict(entry | {"terminator_is_eos": True}))
        with pytest.raises(UserError, match="is not the tokenizer's eos_token '<eos>'"):
            terminator_id(tokenizer, calft)


@pytest.mark.parametrize("name, role, thinking", [("qwen3", "system", True), ("gpt-oss", "developer", None)])
def test_ssot_instructs_in_each_protocols_own_message(replica, name, role, thinking):
    from conftest import PAPER_SETTINGS

    from calft.modeling import ssot
    from calft.modeling.chat import ssot_format
    from calft.modeling.settings import ModelEntry

    folder, entry = replica(name)
    tokenizer = load_tokenizer(folder)
    chat = ssot_format(ChatFormat.from_entry(ModelEntry.from_dict(entry | PAPER_SETTINGS[name])))
    which = ssot.role(chat.chat_protocol)
    assert which == ("numeric_harmony" if name == "gpt-oss" else "numeric")
    instruction = ssot.read(ssot.instruction_file({}, which), which).text  # calft's wording, the default
    text = render(tokenizer, "Sample from N(0, 1).", chat, instruction)
    assert text.index(role) < text.index(instruction) < text.index("Sample from N(0, 1).")
    assert chat.chat_template_kwargs.get("enable_thinking") is thinking and chat.generation_prefix is None
    assert "<think>" not in text  # Qwen3 thinks: no empty think block closes it off
    if name == "qwen3":  # the steps, and the format example last
        assert "1. Write the seed" in instruction and "3. Give your final answer" in instruction
        assert instruction.endswith(
            "<random_string>\n...\n</random_string>\n<thinking>\n...\n</thinking>\n<answer>\n...\n</answer>"
        )
