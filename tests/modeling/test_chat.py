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


@pytest.mark.parametrize("name, printed", [("llama3", "Today Date: 01 Jan 2026"), ("gpt-oss", "Current date: 2026-01-01")])
def test_a_template_that_prints_today_renders_the_same_prompt_on_any_day(replica, monkeypatch, name, printed):
    folder, entry = replica(name)
    tokenizer = load_tokenizer(folder)
    pinned = ChatFormat(entry["terminator"], entry.get("chat_template_kwargs", {}), entry.get("generation_prefix"),
                        "2026-01-01")
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
    single, = prompt_ids(tokenizer, ["Hi"], ChatFormat(entry["terminator"]))
    double, = prompt_ids(tokenizer, ["Hi"], ChatFormat(entry["terminator"], add_special_tokens=True))
    bos = tokenizer.bos_token_id
    assert single[0] == bos and single[1] != bos
    assert double[:2] == [bos, bos] and double[1:] == single
