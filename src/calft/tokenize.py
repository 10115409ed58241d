"""Batch tokenization of canonical strings, tokenizer loading and tokenizer fingerprints.

Canonical strings are short and made of few characters ("-", digits, "."), and millions of them
must be tokenized. A Hugging Face tokenizer works in stages: normalize, split into pre-tokens, run
the model (BPE, Unigram, ...) on each pre-token. The pre-token boundaries of a canonical string
depend only on its shape (the string with every digit replaced by 0) for the pre-tokenizers in
use, so we pre-tokenize a few representatives per shape, run the model once per distinct piece,
and assemble every string's tokens with numpy. Each shape is checked: all its representatives
must split the same way, reproduce their own text piece by piece and match a full `encode`;
otherwise that shape falls back to encoding every string in one batch call.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np

from calft.ragged import ragged_positions

REPRESENTATIVES_PER_SHAPE = 64
DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
NUMBER_CHARS = set("0123456789-.")


def load_tokenizer(source: str):
    """A fast Hugging Face tokenizer (transformers) from a model folder, a tokenizer folder or a hub id."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if getattr(tokenizer, "backend_tokenizer", None) is None:
        raise ValueError(f"tokenizer at '{source}' has no fast (Rust) backend; calft needs one")
    return tokenizer


def load_backend(source: str):
    """The Rust tokenizer (`tokenizers.Tokenizer`) of a model folder or a hub id in the local cache.

    Reads tokenizer.json directly when there is one (0.2 s instead of 7 s through transformers); it
    is the same backend transformers builds, which the fingerprint check of later stages confirms.
    """
    from tokenizers import Tokenizer

    folder = Path(source)
    if (folder / "tokenizer.json").is_file():
        return Tokenizer.from_file(str(folder / "tokenizer.json"))
    if not folder.exists():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source, "tokenizer.json")
        if isinstance(cached, str):
            return Tokenizer.from_file(cached)
    return load_tokenizer(source).backend_tokenizer


def terminator_id(backend, terminator: str) -> int:
    """The id of the terminator token, which must be a single token of the vocabulary."""
    token_id = backend.token_to_id(terminator)
    if token_id is None:
        raise ValueError(f"terminator '{terminator}' is not a single token of this tokenizer")
    return int(token_id)


def fingerprint(backend, terminator: str) -> str:
    """A short hash of everything that decides canonical token sequences: the tokenizer's
    normalizer, pre-tokenizer, model, added tokens, and the terminator."""
    spec = json.loads(backend.to_str())
    for runtime_setting in ("padding", "truncation"):
        spec.pop(runtime_setting, None)
    text = json.dumps(spec, sort_keys=True) + f"\nterminator={terminator}:{terminator_id(backend, terminator)}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _PieceTable:
    """Token ids of every distinct piece seen so far, stored flat in numpy arrays. Pieces of up to 8
    bytes are looked up by a packed uint64 key with numpy; only new pieces reach the tokenizer model."""

    def __init__(self, model):
        self.model = model
        self.by_text: dict[str, int] = {}
        self.tokens = np.empty(0, dtype=np.int64)
        self.starts = np.empty(0, dtype=np.int64)
        self.lengths = np.empty(0, dtype=np.int64)
        self.keys = np.empty(0, dtype=np.uint64)
        self.key_ids = np.empty(0, dtype=np.int64)

    def _add(self, pieces: list[str]) -> None:
        ids = [[t.id for t in self.model.tokenize(piece)] for piece in pieces]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        self.by_text.update(zip(pieces, range(len(self.starts), len(self.starts) + len(pieces))))
        self.starts = np.r_[self.starts, len(self.tokens) + np.cumsum(lengths) - lengths]
        self.lengths = np.r_[self.lengths, lengths]
        self.tokens = np.r_[self.tokens, np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int64)]

    def ids_for_texts(self, pieces: list[str]) -> np.ndarray:
        self._add(list(dict.fromkeys(p for p in pieces if p not in self.by_text)))
        return np.array([self.by_text[p] for p in pieces], dtype=np.int64)

    def tokens_of(self, piece: int) -> list[int]:
        return self.tokens[self.starts[piece] : self.starts[piece] + self.lengths[piece]].tolist()

    def ids_for_column(self, chars: np.ndarray) -> np.ndarray:
        """Piece id of every row of a byte matrix (one piece per row)."""
        width = chars.shape[1]
        if width > 8:
            distinct, inverse = np.unique(chars.copy().view(f"V{width}").ravel(), return_inverse=True)
            return self.ids_for_texts([v.tobytes().decode() for v in distinct])[inverse]
        keys = chars.astype(np.uint64) @ (np.uint64(256) ** np.arange(width - 1, -1, -1, dtype=np.uint64))
        distinct, inverse = np.unique(keys, return_inverse=True)
        found = np.searchsorted(self.keys, distinct)
        known = np.zeros(len(distinct), dtype=bool)
        if len(self.keys):
            known = (found < len(self.keys)) & (self.keys[np.minimum(found, len(self.keys) - 1)] == distinct)
        new = distinct[~known]
        if len(new):
            new_ids = self.ids_for_texts([_key_text(k, width) for k in new])
            merged = np.argsort(np.r_[self.keys, new], kind="stable")
            self.keys = np.r_[self.keys, new][merged]
            self.key_ids = np.r_[self.key_ids, new_ids][merged]
            found = np.searchsorted(self.keys, distinct)
        return self.key_ids[found][inverse]


def _key_text(key: np.uint64, width: int) -> str:
    return int(key).to_bytes(width, "big").decode()


class CanonicalTokenizer:
    """Tokenizes canonical strings exactly as `backend.encode(s, add_special_tokens=False)` would."""

    def __init__(self, backend):
        self.backend = backend
        # Added tokens are matched before pre-tokenization; one made of number characters would
        # cut across our pieces, so such a vocabulary always takes the exact path.
        added = backend.get_added_tokens_decoder().values()
        self.piecewise = not any(token.content and set(token.content) <= NUMBER_CHARS for token in added)
        self.pieces = _PieceTable(self.backend.model)
        self.fallback_rows = 0

    def _encode_exact(self, strings: list[str]) -> list[list[int]]:
        return [e.ids for e in self.backend.encode_batch_fast(strings, add_special_tokens=False)]

    def _split(self, text: str):
        """Pre-token spans of `text`, or None when the normalizer changes it."""
        normalizer, pre_tokenizer = self.backend.normalizer, self.backend.pre_tokenizer
        if normalizer is not None and normalizer.normalize_str(text) != text:
            return None
        if pre_tokenizer is None:
            return [(0, len(text))]
        pieces = pre_tokenizer.pre_tokenize_str(text)
        if any(text[a:b] != piece for piece, (a, b) in pieces):
            return None
        return [span for _, span in pieces]

    def _shape_spans(self, chars: np.ndarray):
        """Shared pre-token spans of a shape's representatives, verified against full encodes.
        None when the shape must be encoded string by string."""
        if not self.piecewise or chars.max(initial=0) >= 128:  # spans count characters, not bytes
            return None
        picks = np.unique(np.linspace(0, len(chars) - 1, min(len(chars), REPRESENTATIVES_PER_SHAPE)).astype(int))
        texts = [chars[i].tobytes().decode() for i in picks]
        spans = {tuple(s) if s is not None else None for s in map(self._split, texts)}
        if len(spans) != 1 or None in spans:
            return None
        spans = next(iter(spans))
        expected = self._encode_exact(texts)
        for text, ids in zip(texts, expected):
            pieces = self.pieces.ids_for_texts([text[a:b] for a, b in spans])
            if [t for p in pieces for t in self.pieces.tokens_of(p)] != ids:
                return None
        return spans

    def _encode_shape(self, chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tokens (flat) and lengths for strings of one shape, given as a byte matrix."""
        spans = self._shape_spans(chars)
        if spans is None:
            self.fallback_rows += len(chars)
            ids = self._encode_exact([row.tobytes().decode() for row in chars])
            lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
            return np.fromiter((t for seq in ids for t in seq), dtype=np.int64, count=int(lengths.sum())), lengths
        piece_ids = np.empty((len(chars), len(spans)), dtype=np.int64)
        for column, (a, b) in enumerate(spans):
            piece_ids[:, column] = self.pieces.ids_for_column(chars[:, a:b])
        starts = self.pieces.starts[piece_ids].ravel()
        counts = self.pieces.lengths[piece_ids]
        tokens = self.pieces.tokens[ragged_positions(starts, counts.ravel())]
        return tokens, counts.sum(axis=1)

    def encode(self, offsets: np.ndarray, data: np.ndarray, terminator: int) -> tuple[np.ndarray, np.ndarray]:
        """Token ids of every string (Arrow layout: offsets, utf-8 bytes), each followed by the
        terminator. Returns (flat tokens int64, lengths int64)."""
        sizes = np.diff(offsets)
        lengths = np.zeros(len(sizes), dtype=np.int64)
        encoded = []
        for size in np.unique(sizes):
            rows = np.flatnonzero(sizes == size)
            chars = data[offsets[rows][:, None] + np.arange(size)]
            shapes = np.where(np.isin(chars, DIGITS), ord("0"), chars)
            _, shape_of = np.unique(shapes.view(f"V{size}").ravel(), return_inverse=True)
            for shape in np.unique(shape_of):
                shape_rows = rows[shape_of == shape]
                tokens, shape_lengths = self._encode_shape(chars[shape_of == shape])
                lengths[shape_rows] = shape_lengths
                encoded.append((shape_rows, tokens))
        lengths += 1
        out_offsets = np.cumsum(lengths) - lengths
        flat = np.full(int(lengths.sum()), terminator, dtype=np.int64)
        for rows, tokens in encoded:
            flat[ragged_positions(out_offsets[rows], lengths[rows] - 1)] = tokens
        return flat, lengths
