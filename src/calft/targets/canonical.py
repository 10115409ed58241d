"""Batch tokenization of canonical strings.

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

import itertools

import numpy as np

from calft.targets.tries import PAD

REPRESENTATIVES_PER_SHAPE = 64
MAX_DENSE_DIGITS = 6  # digit-only pieces up to this width use a lookup table of 10**width entries
DIGITS = np.frombuffer(b"0123456789", dtype=np.uint8)
NUMBER_CHARS = set("0123456789-.")


class _PieceTable:
    """Token ids of every distinct piece seen so far, stored flat in numpy arrays. A column of pieces
    is mapped to piece ids with numpy (a dense lookup table for short or digit-only pieces, a sort
    otherwise); only new pieces reach the tokenizer model."""

    def __init__(self, model):
        self.model = model
        self.by_text: dict[str, int] = {}
        self.tokens = np.empty(0, dtype=np.int32)
        self.starts = np.empty(0, dtype=np.int64)
        self.lengths = np.empty(0, dtype=np.int64)
        self.dense: dict[tuple[int, int], np.ndarray] = {}  # (base, width) -> piece id per key, -1 unknown

    def _add(self, pieces: list[str]) -> None:
        ids = [[t.id for t in self.model.tokenize(piece)] for piece in pieces]
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
        self.by_text.update(zip(pieces, range(len(self.starts), len(self.starts) + len(pieces))))
        self.starts = np.r_[self.starts, len(self.tokens) + np.cumsum(lengths) - lengths]
        self.lengths = np.r_[self.lengths, lengths]
        self.tokens = np.r_[self.tokens, np.fromiter(itertools.chain.from_iterable(ids), dtype=np.int32)]

    def ids_for_texts(self, pieces: list[str]) -> np.ndarray:
        self._add(list(dict.fromkeys(p for p in pieces if p not in self.by_text)))
        return np.array([self.by_text[p] for p in pieces], dtype=np.int64)

    def ids_for_column(self, chars: np.ndarray) -> np.ndarray:
        """Piece id of every row of a byte matrix (one piece per row)."""
        width = chars.shape[1]
        digits_only = 2 < width <= MAX_DENSE_DIGITS and _is_digit(chars).all()
        if width <= 2 or digits_only:
            base = 10 if digits_only else 256
            keys = (chars - DIGITS[0] if digits_only else chars).astype(np.int64) @ (
                base ** np.arange(width - 1, -1, -1, dtype=np.int64)
            )
            table = self.dense.setdefault((base, width), np.full(base**width, -1, dtype=np.int64))
            ids = table[keys]
            if (ids < 0).any():
                new = np.unique(keys[ids < 0])
                table[new] = self.ids_for_texts([_key_text(k, width, base) for k in new])
                ids = table[keys]
            return ids
        distinct, inverse = np.unique(chars.copy().view(f"V{width}").ravel(), return_inverse=True)
        return self.ids_for_texts([v.tobytes().decode() for v in distinct])[inverse]


def _is_digit(chars: np.ndarray) -> np.ndarray:
    return (chars >= DIGITS[0]) & (chars <= DIGITS[-1])


def _shape_codes(chars: np.ndarray) -> np.ndarray:
    """One code per row for its shape (the string with every digit replaced by 0)."""
    shapes = np.where(_is_digit(chars), DIGITS[0], chars)
    if chars.shape[1] <= 8:  # the bytes of a shape fit one uint64
        padded = np.zeros((len(chars), 8), dtype=np.uint8)
        padded[:, : chars.shape[1]] = shapes
        return np.unique(padded.view(np.uint64).ravel(), return_inverse=True)[1]
    return np.unique(shapes.view(f"V{chars.shape[1]}").ravel(), return_inverse=True)[1]


def _key_text(key: int, width: int, base: int) -> str:
    return f"{key:0{width}d}" if base == 10 else int(key).to_bytes(width, "big").decode()


def _atomic_digit_tokens(backend) -> np.ndarray | None:
    """The token of each digit 0-9 when the model is a plain BPE with no vocabulary entry of two or
    more digits: no merge can then join digits, so a run of digits is one token per digit."""
    from tokenizers.models import BPE

    model = backend.model
    if not isinstance(model, BPE) or model.continuing_subword_prefix or model.end_of_word_suffix:
        return None
    if any(len(token) > 1 and set(token) <= set("0123456789") for token in backend.get_vocab()):
        return None
    ids = [model.token_to_id(digit) for digit in "0123456789"]
    return None if None in ids else np.array(ids, dtype=np.int32)


def _padded(sequences: list[list[int]]) -> np.ndarray:
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    matrix = np.full((len(sequences), int(lengths.max(initial=0))), PAD, dtype=np.int32)
    matrix[np.arange(matrix.shape[1]) < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(sequences), dtype=np.int32, count=int(lengths.sum())
    )
    return matrix


def sequence_lengths(matrix: np.ndarray) -> np.ndarray:
    """Tokens per row of a right-padded token matrix."""
    return (matrix != PAD).sum(axis=1)


class CanonicalTokenizer:
    """Tokenizes canonical strings exactly as `backend.encode(s, add_special_tokens=False)` would."""

    def __init__(self, backend):
        self.backend = backend
        # Added tokens are matched before pre-tokenization; one made of number characters would
        # cut across our pieces, so such a vocabulary always takes the exact path.
        added = backend.get_added_tokens_decoder().values()
        self.piecewise = not any(token.content and set(token.content) <= NUMBER_CHARS for token in added)
        self.pieces = _PieceTable(self.backend.model)
        self.digit_tokens = _atomic_digit_tokens(self.backend)
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

    def _encode_shape(self, chars: np.ndarray) -> np.ndarray:
        """Right-padded token matrix for strings of one shape, given as a byte matrix."""
        matrix = self._piecewise(chars)
        if matrix is None:
            self.fallback_rows += len(chars)
            return _padded(self._encode_exact([row.tobytes().decode() for row in chars]))
        return matrix

    def _piecewise(self, chars: np.ndarray) -> np.ndarray | None:
        """The shape assembled piece by piece, checked on its representatives: they must share their
        pre-token spans, and their assembled rows must equal full encodes. None when the shape must
        be encoded string by string."""
        if not self.piecewise or chars.max(initial=0) >= 128:  # spans count characters, not bytes
            return None
        picks = np.unique(np.linspace(0, len(chars) - 1, min(len(chars), REPRESENTATIVES_PER_SHAPE)).astype(int))
        texts = [chars[i].tobytes().decode() for i in picks]
        spans = {tuple(s) if s is not None else None for s in map(self._split, texts)}
        if len(spans) != 1 or None in spans:
            return None
        matrix = self._assemble(chars, next(iter(spans)))
        exact = [row[row != PAD].tolist() for row in matrix[picks]] == self._encode_exact(texts)
        return matrix if exact else None

    def _assemble(self, chars: np.ndarray, spans) -> np.ndarray:
        """Token matrix of strings that split at `spans`: digit runs by the digit tokens where that is
        exact, other pieces by the piece table."""
        blocks, ragged = [], False
        for a, b in spans:
            if self.digit_tokens is not None and _is_digit(chars[:, a:b]).all():
                blocks.append(self.digit_tokens[chars[:, a:b] - DIGITS[0]])
                continue
            ids = self.pieces.ids_for_column(chars[:, a:b])
            counts = self.pieces.lengths[ids]
            width = int(counts.max())
            position = np.minimum(self.pieces.starts[ids][:, None] + np.arange(width), len(self.pieces.tokens) - 1)
            block = self.pieces.tokens[position]
            if (counts != width).any():
                ragged = True
                block[np.arange(width) >= counts[:, None]] = PAD
            blocks.append(block)
        matrix = np.hstack(blocks)
        if ragged:  # move the padding inside a row to its end
            matrix = np.take_along_axis(matrix, np.argsort(matrix == PAD, axis=1, kind="stable"), axis=1)
        return matrix

    def encode_text(self, text: str) -> list[int]:
        """One string's token ids, one `encode` call (the reference's way)."""
        return self.backend.encode(text, add_special_tokens=False).ids

    def encode(self, offsets: np.ndarray, data: np.ndarray, terminator: int) -> np.ndarray:
        """Token ids of every string (Arrow layout: offsets, utf-8 bytes), each followed by the
        terminator, as a right-padded int32 matrix (PAD = -1)."""
        sizes = np.diff(offsets)
        encoded = []
        for size in np.unique(sizes):
            rows = np.flatnonzero(sizes == size)
            chars = data[offsets[rows][:, None] + np.arange(size)]
            shape_of = _shape_codes(chars)
            for shape in np.unique(shape_of):
                encoded.append((rows[shape_of == shape], self._encode_shape(chars[shape_of == shape])))
        width = 1 + max((m.shape[1] for _, m in encoded), default=0)
        matrix = np.full((len(sizes), width), PAD, dtype=np.int32)
        for rows, tokens in encoded:
            matrix[rows, : tokens.shape[1]] = tokens
            matrix[rows, sequence_lengths(tokens)] = terminator
        return matrix


class CharacterTokenizer:
    """One token per character ('-' 1, '.' 2, digits 3-12) and the terminator 0: the stand-in
    tokenizer the reference's granularity probe uses unless given a model's, so Table 24 can be
    measured as the paper measured it and without any model."""

    ALPHABET = "-.0123456789"
    TERMINATOR = 0

    def __init__(self):
        self.ids = np.zeros(256, dtype=np.int32)
        self.ids[np.frombuffer(self.ALPHABET.encode(), dtype=np.uint8)] = np.arange(1, len(self.ALPHABET) + 1)

    def encode_text(self, text: str) -> list[int]:
        return [self.ALPHABET.index(char) + 1 for char in text]

    def encode(self, offsets: np.ndarray, data: np.ndarray, terminator: int) -> np.ndarray:
        """As CanonicalTokenizer.encode: each string's characters, then the terminator, right-padded."""
        sizes = np.diff(offsets)
        matrix = np.full((len(sizes), int(sizes.max(initial=0)) + 1), PAD, dtype=np.int32)
        inside = np.arange(matrix.shape[1]) < sizes[:, None]
        matrix[inside] = self.ids[data]
        matrix[np.arange(len(sizes)), sizes] = terminator
        return matrix
