"""Stored captions back into words: the run's vocabulary (run.json's ``caption_vocab``) over the token ids."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def caption_decoder(vocab: Any) -> tuple[Callable[[np.ndarray], str], str | None]:
    """A function from a row of token ids to caption text, and why the words are unknown (None if known).

    Decodes as the captioner does (agent/perception/grammar.py, Vocab.decode): stop at <eos>, skip <pad>
    and <bos>. Without a vocabulary, the ids themselves as text, less the padding (token 0).
    """
    special = {"<pad>", "<bos>"}
    if not (isinstance(vocab, list) and vocab and all(isinstance(w, str) for w in vocab) and "<eos>" in vocab):
        note = ("run.json has no caption_vocab (the captioner's words): captions are shown as token ids"
                if vocab is None else "run.json's caption_vocab is not a list of words with <eos>: "
                                      "captions are shown as token ids")

        def ids(row: np.ndarray) -> str:
            return " ".join(str(i) for i in row.tolist() if i != 0)

        return ids, note

    def words(row: np.ndarray) -> str:
        out = []
        for i in row.tolist():
            word = vocab[i] if 0 <= i < len(vocab) else f"<{i}?>"
            if word == "<eos>":
                break
            if word not in special:
                out.append(word)
        return " ".join(out)

    return words, None
