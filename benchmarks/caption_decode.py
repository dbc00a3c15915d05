"""The grammar-constrained caption decode on one CPU core: the trie as STATIC lays it out (dense root
levels, CSR rows below) against one dense table of every node (what `CaptionDecoding` builds for a
grammar of up to 4M (node, token) pairs), side by side in one process, on each shipped captioner; and
the decode as it was until 2026-12-05 (``cell``: each token through ``nn.GRUCell``, the feature's input
projection made again at every token) against today's, which makes it once a caption.

    python -P benchmarks/caption_decode.py --json out.json

A call decodes N temporal features (random, the captioner's width) to the end of their captions, as
`thalamus run`'s CaptionActor does for 8 envs a step. Both layouts must give the same token ids.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.perception.decode import CaptionDecoding  # noqa: E402
from agent.perception.captioner import Captioner, CaptionDecoder  # noqa: E402
from agent.perception.grammar import EOS  # noqa: E402
from agent.perception.live import CHECKPOINTS  # noqa: E402
from agent.perception.train import checkpoint_grammar, load_checkpoint  # noqa: E402
from kernels.trie import build_trie  # noqa: E402


class CellStep:
    """A decoder whose every token goes through its ``nn.GRUCell``, the feature's input projection made
    again at each: the decode before 2026-12-05, kept here as the baseline."""

    def __init__(self, decoder: CaptionDecoder) -> None:
        self.decoder = decoder

    def start(self, feature: torch.Tensor) -> torch.Tensor:
        return self.decoder.start(feature)

    def shared(self, feature: torch.Tensor) -> torch.Tensor:
        return feature

    def step(self, hidden: torch.Tensor, token: torch.Tensor, feature: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        dec = self.decoder
        hidden = dec.cell(torch.cat([dec.embed(token), feature], -1), hidden)
        return dec.head(hidden), hidden


def cell_decoding(model: Captioner, grammar: list[str]) -> CaptionDecoding:
    """``CaptionDecoding``'s own loop and trie over a model whose decoder steps through its GRU cell."""
    decoding = CaptionDecoding(model, grammar, "cpu")
    decoding.model = SimpleNamespace(decoder=CellStep(model.decoder), cfg=model.cfg)
    return decoding


def per_call_ms(decoding: CaptionDecoding, features: torch.Tensor, seconds: float) -> float:
    """Median over 5 timings of the mean time of a call, each timing ``seconds / 5`` long."""
    for _ in range(10):
        decoding.tokens(features)
    times = []
    for _ in range(5):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            decoding.tokens(features)
            calls += 1
        times.append((time.perf_counter() - start) / calls * 1e3)
    return sorted(times)[2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, nargs="+", default=sorted(CHECKPOINTS.glob("captioner*.pt")),
                   help="captioners to decode with (default: the shipped ones)")
    p.add_argument("--batch", type=int, nargs="+", default=[8, 64], help="features a call (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=2.0, help="timing per layout and size (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the rows here")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for path in args.checkpoints:
        model = load_checkpoint(path).eval()
        grammar = checkpoint_grammar(path)
        dense = CaptionDecoding(model, grammar, "cpu")
        csr = CaptionDecoding(model, grammar, "cpu")
        csr.trie = build_trie([model.vocab.encode(c) for c in grammar], len(model.vocab), EOS)  # STATIC's layout
        cell = cell_decoding(model, grammar)
        for n in args.batch:
            features = torch.randn(n, model.cfg.d_model, generator=torch.Generator().manual_seed(n))
            want = dense.tokens(features)
            same = torch.equal(want, csr.tokens(features)) and torch.equal(want, cell.tokens(features))
            ms = {name: per_call_ms(d, features, args.seconds) for name, d in (("csr", csr), ("cell", cell), ("dense", dense))}
            row = {"checkpoint": path.name, "captions": len(grammar), "nodes": dense.trie.n_nodes, "batch": n,
                   "csr_ms": ms["csr"], "cell_ms": ms["cell"], "dense_ms": ms["dense"],
                   "speedup": ms["csr"] / ms["dense"], "speedup_over_cell": ms["cell"] / ms["dense"], "same_tokens": same}
            rows.append(row)
            print(f"{path.name} ({len(grammar)} captions, {dense.trie.n_nodes} nodes), {n} a call: CSR "
                  f"{ms['csr']:.2f} ms, dense with GRUCell {ms['cell']:.2f} ms, dense {ms['dense']:.2f} ms "
                  f"({row['speedup']:.2f}x CSR, {row['speedup_over_cell']:.2f}x GRUCell); same tokens: {same}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1))


if __name__ == "__main__":
    main()
