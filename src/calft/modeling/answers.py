"""What a chat model's reply holds, shared by every stage that reads replies (pure Python):
reasoning blocks to strip, and the String Seed of Thought answer (reference spec §9): the content of
the first <answer> tag, with the reference's fallbacks."""

from __future__ import annotations

import re

THINK_BLOCK = re.compile(r"<think>.*?(</think>|$)", re.S)


def strip_reasoning(text: str) -> str:
    """The text without <think>...</think> blocks (an unclosed one runs to the end), stripped."""
    return THINK_BLOCK.sub("", text).strip()


ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
OPEN_ANSWER_TAG = re.compile(r"<answer>(.*)$", re.S | re.I)
PROTOCOL_BLOCK = re.compile(r"<(random_string|thinking)>.*?</\1>", re.S | re.I)
ANY_TAG = re.compile(r"</?\w+>")
HARMONY_TAG_RESIDUE = re.compile(r"assistant(?:final|commentary)\s*(?=<)", re.I)
HARMONY_ANSWER_OPEN = re.compile(r"assistantanswer>", re.I)
HARMONY_INLINE_ANSWERS = (
    re.compile(r"assistantanswer\s*([^\n<][^\n<]*)", re.I),
    re.compile(r"assistantfinal\s*([^\n<][^\n<]*)", re.I),
)


def extract_ssot_answer(text: str, strict: bool = True, harmony: bool = False) -> str:
    """The SSOT answer, as the reference extracts it (spec §9): the first <answer>...</answer>;
    not strict, an unclosed <answer> to the end; for the harmony protocol (GPT-OSS, whose channel
    names survive decoding as 'assistantfinal'), an inline 'assistantanswer X' or 'assistantfinal X',
    or a bare one-line answer; then '' when strict, else the last non-empty line outside the
    protocol's tags."""
    cleaned = strip_reasoning(text)
    if harmony:
        cleaned = HARMONY_ANSWER_OPEN.sub("<answer>", HARMONY_TAG_RESIDUE.sub("", cleaned))
    if match := ANSWER_TAG.search(cleaned):
        return match.group(1).strip()
    if not strict and (match := OPEN_ANSWER_TAG.search(cleaned)):
        return match.group(1).strip()
    if harmony:
        for pattern in HARMONY_INLINE_ANSWERS:
            if match := pattern.search(cleaned):
                return match.group(1).strip()
        if cleaned and "\n" not in cleaned and "<" not in cleaned and "assistant" not in cleaned.lower():
            return cleaned
    if strict:
        return ""
    lines = [line.strip() for line in ANY_TAG.sub("", PROTOCOL_BLOCK.sub("", cleaned)).splitlines() if line.strip()]
    return lines[-1] if lines else ""
