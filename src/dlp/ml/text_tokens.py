"""Word tokenising and stable n-gram hashing for text models.

A text is lower-cased; every run of letters, digits and underscores is a word, and
every other non-space character is a token of its own. One precompiled ``re``
pattern splits each text (about 6 us a snippet, so a single prediction costs
little; Arrow's regex kernel compiles its pattern on every call, about 2 ms);
everything after that, vocabulary lookup and hashing included, runs over whole
arrays, once per distinct token.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray: TypeAlias = npt.NDArray[np.int64]
HashArray: TypeAlias = npt.NDArray[np.uint64]
Texts: TypeAlias = Sequence[str | None] | pa.Array | pa.ChunkedArray

MAX_TOKEN_CHARS: Final = 64
"""Longer tokens (URLs, encoded blobs) are cut to their first 64 characters."""

_TOKEN: Final = re.compile(r"\w+|[^\w\s]")
_FNV_OFFSET: Final = np.uint64(0xCBF29CE484222325)
_FNV_PRIME: Final = np.uint64(0x100000001B3)
_MIX_1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2: Final = np.uint64(0x94D049BB133111EB)


@dataclass(frozen=True)
class Tokens:
    """The tokens of N texts, flattened: text ``i`` owns ``words[offsets[i]:offsets[i + 1]]``."""

    words: pa.Array
    offsets: IntArray

    @property
    def lengths(self) -> IntArray:
        """Tokens per text."""
        return np.diff(self.offsets)

    @property
    def positions(self) -> IntArray:
        """Each token's position within its own text."""
        lengths = self.lengths
        return np.arange(len(self.words), dtype=np.int64) - np.repeat(self.offsets[:-1], lengths)


def tokenize(texts: Texts, *, max_tokens: int) -> Tokens:
    """Split each text (None counts as empty) into at most ``max_tokens`` lower-cased tokens."""
    if isinstance(texts, pa.Array | pa.ChunkedArray):
        texts = texts.to_pylist()
    find = _TOKEN.findall
    lists = [find(text.lower())[:max_tokens] if text else [] for text in texts]
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    words = pa.array(list(itertools.chain.from_iterable(lists)), type=pa.string())
    if len(words):
        # Bounds the hashing loop, which makes one pass per byte of the longest token.
        words = pc.utf8_slice_codeunits(words, 0, MAX_TOKEN_CHARS)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Tokens(words=words, offsets=offsets)


def distinct(words: pa.Array) -> tuple[pa.Array, IntArray]:
    """The distinct tokens, and each token's index among them."""
    encoded = pc.dictionary_encode(words)
    indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return encoded.dictionary, indices


def fnv1a(strings: pa.Array) -> HashArray:
    """64-bit FNV-1a of each string's UTF-8 bytes, one numpy pass per byte position."""
    strings = strings.cast(pa.large_string())
    _, offsets_buffer, data_buffer = strings.buffers()
    n = len(strings)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[strings.offset : strings.offset + n + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    hashes = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    active = np.flatnonzero(lengths)
    byte = 0
    while active.size:
        values = data[starts[active] + byte].astype(np.uint64)
        hashes[active] = (hashes[active] ^ values) * _FNV_PRIME
        byte += 1
        active = active[lengths[active] > byte]
    return hashes


def ngram_buckets(
    hashes: HashArray, positions: IntArray, *, n: int, buckets: int
) -> tuple[IntArray, IntArray]:
    """Word n-grams as (index of the token ending each, its bucket in 0..buckets-1)."""
    ends = np.flatnonzero(positions >= n - 1)
    combined = np.full(len(ends), _FNV_OFFSET ^ np.uint64(n), dtype=np.uint64)
    for back in range(n - 1, -1, -1):
        combined = (combined ^ hashes[ends - back]) * _FNV_PRIME
    # FNV's low bits mix poorly, and the bucket is taken from them: finish with splitmix64.
    combined ^= combined >> np.uint64(30)
    combined *= _MIX_1
    combined ^= combined >> np.uint64(27)
    combined *= _MIX_2
    combined ^= combined >> np.uint64(31)
    bucket: IntArray = (combined % np.uint64(buckets)).astype(np.int64)
    return ends.astype(np.int64), bucket
