"""The caption vocabulary: words ↔ token ids, shared by every caption source.

Captions are short word sequences ended by ``<eos>``; which sequences are *valid* depends on the
source (the synthetic scenes, an environment) and is enforced at decoding time by a trie built from
the source's caption list (``kernels/trie.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

VOCAB: tuple[str, ...] = (
    "<pad>", "<bos>", "<eos>",
    "a", "and", "the",
    "red", "green", "blue", "yellow", "white",
    "circle", "square", "triangle",
    "moves", "stays", "leans", "left", "right", "up", "down", "still", "upright",
    "pole", "cart",
)
PAD, BOS, EOS = 0, 1, 2
TOKEN = {word: i for i, word in enumerate(VOCAB)}


def encode_caption(text: str) -> list[int]:
    """Word ids of ``text`` (without ``<bos>``/``<eos>``); an unknown word is a ValueError naming it."""
    try:
        return [TOKEN[w] for w in text.split()]
    except KeyError as exc:
        raise ValueError(f"caption word {exc.args[0]!r} is not in the vocabulary") from None


def decode_tokens(ids: Iterable[int]) -> str:
    """The caption text of token ids, stopping at the first ``<eos>`` (``<bos>``/``<pad>`` skipped)."""
    words = []
    for i in ids:
        if i == EOS:
            break
        if i not in (PAD, BOS):
            words.append(VOCAB[i])
    return " ".join(words)


def caption_table(captions: Sequence[str], max_len: int) -> list[list[int]]:
    """Token rows for a caption list, each ended by ``<eos>`` and padded to ``max_len``."""
    rows = []
    for text in captions:
        ids = encode_caption(text) + [EOS]
        if len(ids) > max_len:
            raise ValueError(f"caption {text!r} has {len(ids)} tokens with <eos>, more than {max_len}")
        rows.append(ids + [PAD] * (max_len - len(ids)))
    return rows
