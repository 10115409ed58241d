"""Reading a chat model's reply: reasoning blocks stripped, the SSOT answer as the reference
extracts it (spec §9)."""

from __future__ import annotations

import pytest

from calft.modeling.answers import extract_ssot_answer, strip_reasoning


def test_reasoning_blocks_are_stripped_an_unclosed_one_to_the_end():
    assert strip_reasoning("<think>a</think> <think>b</think> 1 ") == "1"
    assert strip_reasoning(" 2 <think>never closed 5") == "2"


@pytest.mark.parametrize(
    "text, strict, loose",
    [
        ("<random_string>x9Q</random_string><thinking>...</thinking><answer> 4.2 </answer>", "4.2", "4.2"),
        ("<ANSWER>7</ANSWER> and <answer>8</answer>", "7", "7"),
        ("<think>plan</think><answer>3</answer>", "3", "3"),
        ("<random_string>abc</random_string>\n<answer>12", "", "12"),
        ("<random_string>abc</random_string>\n<thinking>t</thinking>\n9.5\n", "", "9.5"),
        ("nothing at all", "", "nothing at all"),
        ("assistantfinal 5", "", "assistantfinal 5"),  # channel residue is the harmony protocol's alone
    ],
)
def test_ssot_answer_extraction(text, strict, loose):
    assert extract_ssot_answer(text) == strict
    assert extract_ssot_answer(text, strict=False) == loose


@pytest.mark.parametrize(
    "text, strict, loose",
    [
        ("assistantfinal<answer>5</answer>", "5", "5"),
        ("assistantFinal  <answer>5</answer>", "5", "5"),
        ("assistantanswer>6</answer>", "6", "6"),
        ("analysis: seed kq81 -> pick\nassistantfinal 7.25", "7.25", "7.25"),  # the answer in the final channel
        ("assistantanswer 8\nmore", "8", "8"),
        ("  4.5  ", "4.5", "4.5"),  # a bare one-line answer, as the developer message asks
        ("two\nlines", "", "lines"),
        ("<answer>3", "", "3"),
    ],
)
def test_ssot_answer_extraction_for_the_harmony_protocol(text, strict, loose):
    assert extract_ssot_answer(text, harmony=True) == strict
    assert extract_ssot_answer(text, strict=False, harmony=True) == loose


def test_loose_extraction_drops_protocol_blocks_and_tags_and_gives_empty_for_nothing():
    assert extract_ssot_answer("9.5\n<thinking>t</thinking>", strict=False) == "9.5"
    assert extract_ssot_answer("<note>7</note>", strict=False) == "7"
    assert extract_ssot_answer("", strict=False) == ""


def test_harmony_residue_and_mentions_of_the_assistant_are_no_answer():
    assert extract_ssot_answer("assistantfinal<note>", strict=False, harmony=True) == ""
    assert extract_ssot_answer("the assistant says 5", harmony=True) == ""
