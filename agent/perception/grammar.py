"""The caption vocabulary: words ↔ token ids, one :class:`Vocab` per checkpoint.

Captions are short word sequences ended by ``<eos>``; which sequences are *valid* depends on the
source (the synthetic scenes, an environment, a folder of captioned clips) and is enforced at
decoding time by a trie built from the source's caption list (``kernels/trie.py``).

Every vocabulary starts with the built-in ``VOCAB``; a source with other words (a user's clips) gets
``Vocab.for_captions``: ``VOCAB`` followed by its new words in sorted order, so a built-in word has
the same id in every checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

VOCAB: tuple[str, ...] = (
    "<pad>", "<bos>", "<eos>",
    "a", "and", "the",
    "red", "green", "blue", "yellow", "white",
    "circle", "square", "triangle",
    "moves", "stays", "leans", "left", "right", "up", "down", "still", "upright",
    "pole", "cart",
)
PAD, BOS, EOS = 0, 1, 2
SPECIALS = VOCAB[:3]


@dataclass(frozen=True)
class Vocab:
    """Caption words ↔ token ids; ``words[i]`` is token ``i``, the first three are ``SPECIALS``."""

    words: tuple[str, ...] = VOCAB
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(self.words))  # a checkpoint may hold a list
        if self.words[:3] != SPECIALS:
            raise ValueError(f"a vocabulary starts with {SPECIALS}, got {self.words[:3]}")
        if len(set(self.words)) != len(self.words):
            raise ValueError("a vocabulary lists each word once")
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def for_captions(cls, captions: Iterable[str]) -> Vocab:
        """``VOCAB`` plus every other word of ``captions``, sorted (built-in ids never change)."""
        words = {w for text in captions for w in text.split()}
        bad = sorted(words & set(SPECIALS))
        if bad:
            raise ValueError(f"caption word {bad[0]!r} is reserved")
        return cls(VOCAB + tuple(sorted(words - set(VOCAB))))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        """Word ids of ``text`` (without ``<bos>``/``<eos>``); an unknown word is a ValueError naming it."""
        try:
            return [self.index[w] for w in text.split()]
        except KeyError as exc:
            raise ValueError(f"caption word {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        """The caption text of token ids, stopping at the first ``<eos>`` (``<bos>``/``<pad>`` skipped)."""
        words = []
        for i in ids:
            if i == EOS:
                break
            if i not in (PAD, BOS):
                words.append(self.words[i])
        return " ".join(words)

    def table(self, captions: Sequence[str], max_len: int) -> list[list[int]]:
        """Token rows for a caption list, each ended by ``<eos>`` and padded to ``max_len``."""
        rows = []
        for text in captions:
            ids = self.encode(text) + [EOS]
            if len(ids) > max_len:
                raise ValueError(f"caption {text!r} has {len(ids)} tokens with <eos>, more than {max_len}")
            rows.append(ids + [PAD] * (max_len - len(ids)))
        return rows
