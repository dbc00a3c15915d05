"""Gated delta rule kernels on a GPU: ours (Triton) against flash-linear-attention and PyTorch.

    python benchmarks/kernels.py --json kernels.json        # needs CUDA; fla optional (skipped if absent)

One process, the same bf16 inputs for every contender. It first checks every backend against the
fp32 recurrent reference (relative RMSE; our backward's gradients against autograd of it), then
times with CUDA events (triton.testing.do_bench, median): the chunked forward at three shapes (the
dispatcher's fused and split paths too), forward+backward at one (ours, autograd through the PyTorch
chunked form, fla), one training step of the captioner (ours against autograd through the PyTorch
form) and the one-step kernel at B ∈ {1, 64, 4096, 20000} streams (16 heads of 128×128), out of place
and in place; and block-sparse attention at 64k keys against dense ``scaled_dot_product_attention``.
``--only chunk|train|sparse|step`` runs one part; ``--only sparse-error`` (any device) gives the sparse
read's error against dense at 16k keys for two layouts of peaked queries. Achieved bandwidth is the minimum bytes a
kernel must move (inputs read once, outputs written once) over its time, next to a measured
device-to-device copy.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.headless import configure; configure()  # noqa: E402, E702  headless rendering, triton first
from kernels import gated_delta_rule, gated_delta_rule_step  # noqa: E402
from kernels.gated_delta_rule import naive_recurrent_gated_delta_rule  # noqa: E402
from kernels.gated_delta_rule.chunk_triton import chunk_gated_delta_rule_fwd, split_pays  # noqa: E402

try:
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule, fused_recurrent_gated_delta_rule
except ImportError:  # the comparison is skipped, not faked
    chunk_gated_delta_rule = fused_recurrent_gated_delta_rule = None

CHUNK_SHAPES = [(1, 4096, 16, 128, 128), (4, 8192, 16, 128, 128), (8, 16384, 8, 64, 64)]
FWDBWD_SHAPE = (1, 4096, 16, 128, 128)
STEP_BATCHES = [1, 64, 4096, 20000]
REFERENCE_UP_TO = 64  # the PyTorch step's temporaries at 20,000 streams would not fit beside the state


def inputs(B, T, H, K, V, dtype=torch.bfloat16, seed=0, still=False):
    """Random inputs; ``still``: as a still camera gives them (keys that barely change, almost no decay,
    β near 1), where the WY form's (I + A)⁻¹ is hardest to compute accurately."""
    gen = torch.Generator(device="cuda").manual_seed(seed)

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device="cuda", generator=gen)

    q, k = r(B, T, H, K), r(B, T, H, K)
    k = F.normalize(k[:, :1] + 0.05 * k if still else k, dim=-1)
    v = r(B, T, H, V)
    g = F.logsigmoid(r(B, T, H) + (8.0 if still else 4.0))  # mostly slow decay, some fast
    beta = torch.sigmoid(r(B, T, H) + (3.0 if still else 0.0))
    h0 = r(B, H, K, V) * 0.1
    return [x.to(dtype) for x in (q, k, v, g, beta)] + [h0]


def rel_rmse(ref, got):
    ref, got = ref.float(), got.float()
    if not torch.isfinite(got).all():
        return float("inf")
    return ((got - ref).pow(2).mean().sqrt() / ref.pow(2).mean().sqrt()).item()


def bench(fn) -> float:
    return triton.testing.do_bench(fn, warmup=50, rep=300, return_mode="median")


def copy_bandwidth() -> float:
    src = torch.empty(2**30, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    ms = bench(lambda: dst.copy_(src))
    return 2 * src.numel() / ms / 1e6  # GB/s, read + write


def check(rows):
    """Every backend against the fp32 reference on a small odd shape: fp32 and bf16 random inputs, and fp32
    as a still camera gives them with TF32 on, as training runs."""
    cases = [(torch.float32, False, False), (torch.bfloat16, False, False), (torch.float32, True, True)]
    for dtype, still, tf32 in cases:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        print(f"-- {'still camera' if still else 'random'} inputs{', TF32 on' if tf32 else ''}")
        q, k, v, g, beta, h0 = inputs(2, 300, 4, 96, 80, dtype=dtype, seed=1, still=still)
        ref_o, ref_s = naive_recurrent_gated_delta_rule(q, k, v, g, beta, 96 ** -0.5, h0)
        results = {}
        for backend in ("chunked", "triton"):
            o, s = gated_delta_rule(q, k, v, g, beta, initial_state=h0, backend=backend)
            results[f"ours/{backend}"] = (rel_rmse(ref_o, o), rel_rmse(ref_s, s))
        state = h0
        outs = []
        for t in range(q.shape[1]):
            o_t, state = gated_delta_rule_step(q[:, t], k[:, t], v[:, t], g[:, t], beta[:, t], state,
                                               backend="triton")
            outs.append(o_t)
        results["ours/triton step×T"] = (rel_rmse(ref_o, torch.stack(outs, 1)), rel_rmse(ref_s, state))
        if chunk_gated_delta_rule is not None:
            o, s = chunk_gated_delta_rule(q, k, v, g, beta, initial_state=h0, output_final_state=True)
            results["fla/chunk"] = (rel_rmse(ref_o, o), rel_rmse(ref_s, s))
        for name, (eo, es) in results.items():
            rows.append({"check": name, "dtype": str(dtype).split(".")[-1], "still": still, "tf32": tf32,
                         "rel_rmse_o": eo, "rel_rmse_state": es})
            print(f"check {name:22s} {str(dtype):15s} o {eo:.2e}  state {es:.2e}")
        check_gradients(rows, q, k, v, g, beta, h0)
    torch.backends.cuda.matmul.allow_tf32 = False


def check_gradients(rows, q, k, v, g, beta, h0):
    """Our Triton backward against autograd of the fp32 reference: every input's gradient."""
    do = torch.randn(v.shape, device="cuda", generator=torch.Generator(device="cuda").manual_seed(2))
    dht = torch.randn(h0.shape, device="cuda", generator=torch.Generator(device="cuda").manual_seed(3))

    def grads(fn, cast):
        leaves = [x.detach().to(cast if i < 5 else torch.float32).requires_grad_(True)
                  for i, x in enumerate((q, k, v, g, beta, h0))]
        o, s = fn(*leaves)
        torch.autograd.backward((o, s), (do.to(o.dtype), dht))
        return [x.grad for x in leaves]

    scale = q.shape[-1] ** -0.5
    ref = grads(lambda *x: naive_recurrent_gated_delta_rule(*x[:5], scale, x[5]), torch.float32)
    got = grads(lambda *x: gated_delta_rule(*x[:5], initial_state=x[5], backend="triton"), q.dtype)
    errs = {n: rel_rmse(r, x) for n, r, x in zip(("dq", "dk", "dv", "dg", "dbeta", "dh0"), ref, got)}
    rows.append({"check": "ours/triton backward", "dtype": str(q.dtype).split(".")[-1], **errs})
    print(f"check {'ours/triton backward':22s} {str(q.dtype):15s} " + "  ".join(f"{n} {e:.2e}" for n, e in errs.items()))


def chunk_bytes(B, T, H, K, V, elem=2):
    return B * T * H * (2 * K + 2 * V + 2) * elem + B * H * K * V * 4  # q k v g beta, o, final state


def chunk_benchmarks(rows: list[dict], copy_gbs: float) -> None:
    """The chunked forward at CHUNK_SHAPES and forward+backward at FWDBWD_SHAPE."""
    for shape in CHUNK_SHAPES:
        q, k, v, g, beta, h0 = inputs(*shape)
        t = {"ours": bench(lambda: gated_delta_rule(q, k, v, g, beta, initial_state=h0, backend="triton"))}
        scale = shape[3] ** -0.5
        for split in (False, True):  # the dispatcher's two paths, to check its rule (split_pays)
            t["ours_split" if split else "ours_fused"] = bench(
                lambda: chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, True, split=split))
        for bv in (32, 64):  # the split state pass is lighter than the fused one: its V block may differ
            t[f"ours_split_bv{bv}"] = bench(
                lambda: chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, True, split=True, state_block=bv))
        if chunk_gated_delta_rule is not None:
            t["fla"] = bench(lambda: chunk_gated_delta_rule(q, k, v, g, beta, initial_state=h0,
                                                            output_final_state=True))
        gbs = chunk_bytes(*shape) / t["ours"] / 1e6
        rows.append({"bench": "chunk_fwd", "shape": shape, **{f"{n}_ms": x for n, x in t.items()},
                     "ours_gbs": gbs, "copy_gbs": copy_gbs, "split_chosen": split_pays(shape[0], shape[1], shape[2], shape[4], q.device)})
        ratio = f"{t['ours'] / t['fla']:.2f}x fla" if "fla" in t else "fla n/a"
        print(f"chunk fwd {shape}: " + "  ".join(f"{n} {x:.3f} ms" for n, x in t.items())
              + f"  | ours/fla {ratio} | ours {gbs:,.0f} GB/s ({gbs / copy_gbs:.0%} of copy)")

    q, k, v, g, beta, h0 = inputs(*FWDBWD_SHAPE)
    leaves = [x.detach().requires_grad_(True) for x in (q, k, v, g, beta)]
    do = torch.randn_like(v)

    def fwdbwd(fn):
        def run():
            o, _ = fn(*leaves)
            o.backward(do)
        return run

    t = {"ours": bench(fwdbwd(lambda *x: gated_delta_rule(*x, initial_state=h0, backend="triton"))),
         "torch_chunked": bench(fwdbwd(lambda *x: gated_delta_rule(*x, initial_state=h0, backend="chunked")))}
    with torch.no_grad():
        t["ours_fwd_only"] = bench(lambda: gated_delta_rule(*leaves, initial_state=h0, backend="triton"))
    note = ""
    if chunk_gated_delta_rule is not None:
        try:
            t["fla"] = bench(fwdbwd(lambda *x: chunk_gated_delta_rule(*x, initial_state=h0,
                                                                      output_final_state=True)))
        except RuntimeError as exc:  # fla refuses its backward on some Triton versions
            note = f"fla refused: {str(exc).splitlines()[0][:160]}"
    note += f" ours fwd+bwd / ours fwd {t['ours'] / t['ours_fwd_only']:.2f}x; autograd through PyTorch / ours {t['torch_chunked'] / t['ours']:.1f}x"
    rows.append({"bench": "chunk_fwd_bwd", "shape": FWDBWD_SHAPE, **{f"{n}_ms": x for n, x in t.items()},
                 "note": note})
    print(f"chunk fwd+bwd {FWDBWD_SHAPE}: " + "  ".join(f"{n} {x:.3f} ms" for n, x in t.items()) + f"  {note}")


def captioner_step_benchmark(rows: list[dict]) -> None:
    """One training step as `thalamus train captioner` takes it (`train_step`: the shipped captioner's
    sizes, 32 streams × 32 frames, fused AdamW, TF32, clipped gradients), on frames already on the GPU so
    the data pipeline is left out: our Triton kernels, autograd through the PyTorch chunked form
    (THALAMUS_KERNEL_BACKEND=chunked), and ours replayed as one CUDA graph (what launching the step's
    kernels costs the host: reported as refused if the step cannot be captured)."""
    import os

    from agent.perception.captioner import Captioner
    from agent.perception.train import TrainConfig, tf32_on
    from agent.perception.train_steps import make_optimizer, train_step

    cfg, device = TrainConfig(), torch.device("cuda")
    gen = torch.Generator(device="cuda").manual_seed(0)
    model = Captioner(cfg.model).cuda()
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay)
    frames = torch.randint(0, 256, (cfg.streams, cfg.chunk, cfg.model.frame_size, cfg.model.frame_size, 3),
                           dtype=torch.uint8, device="cuda", generator=gen)
    target = torch.randint(1, cfg.model.vocab_size, (cfg.streams, cfg.chunk, cfg.model.max_len), device="cuda",
                           generator=gen)
    state = model.initial_state(cfg.streams, "cuda")
    t, note = {}, ""
    with tf32_on(device):
        for name, backend in (("ours", "auto"), ("torch_chunked", "chunked")):
            os.environ["THALAMUS_KERNEL_BACKEND"] = backend
            t[name] = bench(lambda: train_step(model, opt, frames, state, target))
        os.environ.pop("THALAMUS_KERNEL_BACKEND")
        try:
            t["ours_graph"] = bench(captured(model, cfg, frames, state, target).replay)
        except RuntimeError as exc:
            note = f"graph refused: {str(exc).splitlines()[0][:160]}"
    n = cfg.streams * cfg.chunk
    rows.append({"bench": "captioner_train_step", **{f"{k}_ms": x for k, x in t.items()},
                 "frames_per_s": {k: n / x * 1e3 for k, x in t.items()}, "note": note})
    print(f"captioner training step ({cfg.streams}x{cfg.chunk} frames): "
          + ", ".join(f"{k} {x:.2f} ms ({n / x * 1e3:,.0f} frames/s)" for k, x in t.items())
          + f"; autograd through PyTorch / ours {t['torch_chunked'] / t['ours']:.2f}x {note}")


def captured(model, cfg, frames, state, target) -> "torch.cuda.CUDAGraph":
    """``train_step`` captured whole (PyTorch's whole-network capture: warm-up on a side stream, AdamW
    capturable), to replay on the same tensors."""
    from agent.perception.train_steps import train_step

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True, capturable=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            train_step(model, opt, frames, state, target)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        train_step(model, opt, frames, state, target)
    return graph


SPARSE_SHAPE = (1, 16, 65536, 128)  # B, H, T (queries = keys), D
SPARSE_BLOCK, SPARSE_KEEP = 64, 0.05
SPARSE_LAUNCHES = [(4, 2), (4, 3), (4, 4), (8, 2), (8, 3)]  # (warps, stages) of the kernel, timed beside the default


def sparse_inputs(B, H, T, D, peaked: bool, seed=0, device="cuda", query_blocks=True):
    """bf16 q, k, v (fp32 off the GPU). ``peaked``: keys come in 64 topics, a topic a key block, and
    queries point at one topic each (a query's score for a key of its topic is ~√D·scale ≈ 11 above
    the rest), so ~99% of a query's attention falls on its topic's ~16 of 1,024 blocks, as a sharp real
    attention does; the queries of one query block share a topic (``query_blocks``), as neighbouring
    frames attend alike: a block's 64 queries on 64 different topics need ~1,000 key blocks between
    them, which no choice of 5% per query block can cover. Else plain normal (near-uniform attention:
    no 5% of the blocks can stand for it)."""
    gen = torch.Generator(device=device).manual_seed(seed)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device, generator=gen)

    if not peaked:
        return [r(B, H, T, D).to(dtype) for _ in range(3)]
    topics = F.normalize(r(H, 64, D), dim=-1) * D ** 0.5

    def topic_of(n: int) -> torch.Tensor:
        return torch.randint(0, 64, (n,), device=device, generator=gen)

    key_topic = topic_of(T // SPARSE_BLOCK).repeat_interleave(SPARSE_BLOCK)
    query_topic = topic_of(T // SPARSE_BLOCK).repeat_interleave(SPARSE_BLOCK) if query_blocks else topic_of(T)
    k = topics[:, key_topic] + r(B, H, T, D)
    q = topics[:, query_topic] + r(B, H, T, D)
    return [x.to(dtype) for x in (q, k, r(B, H, T, D))]


def sparse_error(rows: list[dict], device: str) -> None:
    """How far block-sparse attention (5% of key blocks) is from dense at 16k keys, on peaked inputs whose
    query blocks share a topic and on ones whose every query has its own: error only, no timing."""
    from kernels import sparse_attention

    B, H, T, D = 1, 2, 16384, 128
    top_k = round(SPARSE_KEEP * T / SPARSE_BLOCK)
    for query_blocks in (True, False):
        q, k, v = sparse_inputs(B, H, T, D, True, device=device, query_blocks=query_blocks)
        err = rel_rmse(F.scaled_dot_product_attention(q, k, v), sparse_attention(q, k, v, top_k, 1.0, SPARSE_BLOCK))
        rows.append({"bench": "sparse_error", "shape": (B, H, T, D), "query_blocks_share_topic": query_blocks,
                     "top_k": top_k, "device": device, "rel_rmse_vs_dense": err})
        print(f"sparse attention error {(B, H, T, D)} on {device}, "
              f"{'query blocks share a topic' if query_blocks else 'every query its own topic'}: {err:.3f}")


def sparse_benchmark(rows: list[dict]) -> None:
    """Block-sparse attention (ours, 95% of key blocks skipped) against dense
    ``scaled_dot_product_attention`` at 64k keys: time, and the output's error against dense."""
    from kernels import key_blocks, sparse_attention
    from kernels.sparse_attention.attention_triton import sparse_attention_fwd

    B, H, T, D = SPARSE_SHAPE
    top_k = round(SPARSE_KEEP * T / SPARSE_BLOCK)
    for peaked in (False, True):
        q, k, v = sparse_inputs(B, H, T, D, peaked)
        lut, counts = key_blocks(q, k, top_k, 1.0, SPARSE_BLOCK)
        lut_torch, counts_torch = key_blocks(q, k, top_k, 1.0, SPARSE_BLOCK, backend="torch")
        same = ((lut == lut_torch).all(-1) & (counts == counts_torch)).float().mean().item()
        t = {"dense_sdpa": bench(lambda: F.scaled_dot_product_attention(q, k, v)),
             "ours_kernel": bench(lambda: sparse_attention_fwd(q, k, v, lut, counts, SPARSE_BLOCK, False, D ** -0.5)),
             "ours_with_selection": bench(lambda: sparse_attention(q, k, v, top_k, 1.0, SPARSE_BLOCK)),
             "choice_triton": bench(lambda: key_blocks(q, k, top_k, 1.0, SPARSE_BLOCK)),
             "choice_torch": bench(lambda: key_blocks(q, k, top_k, 1.0, SPARSE_BLOCK, backend="torch"))}
        dense = F.scaled_dot_product_attention(q, k, v)
        err = rel_rmse(dense, sparse_attention(q, k, v, top_k, 1.0, SPARSE_BLOCK))
        kept = counts.float().mean().item() / (T / SPARSE_BLOCK)
        launches = {f"{w}w{st}s": bench(lambda: sparse_attention_fwd(q, k, v, lut, counts, SPARSE_BLOCK, False,
                                                                      D ** -0.5, (w, st)))
                    for w, st in SPARSE_LAUNCHES}
        print("kernel alone by (warps, stages): " + ", ".join(f"{n} {x:.3f} ms" for n, x in launches.items()))
        print(f"block choice: Triton {t['choice_triton']:.3f} ms, PyTorch {t['choice_torch']:.3f} ms "
              f"({t['choice_torch'] / t['choice_triton']:.1f}x); the same table in {same:.2%} of rows")
        rows.append({"bench": "sparse_attention", "shape": SPARSE_SHAPE, "peaked": peaked, "block": SPARSE_BLOCK,
                     "top_k": top_k, "kept": kept, **{f"{n}_ms": x for n, x in t.items()}, "rel_rmse_vs_dense": err,
                     "choice_rows_identical": same, "kernel_by_launch_ms": launches})
        print(f"sparse attention {SPARSE_SHAPE} {'peaked' if peaked else 'normal'} inputs, {kept:.1%} of blocks kept: "
              + "  ".join(f"{n} {x:.3f} ms" for n, x in t.items())
              + f"  | dense / ours {t['dense_sdpa'] / t['ours_with_selection']:.1f}x (kernel alone "
              f"{t['dense_sdpa'] / t['ours_kernel']:.1f}x) | error vs dense {err:.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path)
    p.add_argument("--only", choices=["all", "chunk", "step", "train", "sparse", "sparse-error"], default="all",
                   help="what to check and time (default: %(default)s); sparse-error also runs without a GPU")
    args = p.parse_args()
    if args.only == "sparse-error":
        rows: list[dict] = []
        sparse_error(rows, "cuda" if torch.cuda.is_available() else "cpu")
        if args.json:
            args.json.write_text(json.dumps({"rows": rows}, indent=1))
        return
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    torch.backends.cuda.matmul.allow_tf32 = False
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
            "fla": None}
    if chunk_gated_delta_rule is not None:
        import fla

        info["fla"] = getattr(fla, "__version__", "present")
    print(info)
    rows: list[dict] = []
    if args.only in ("all", "chunk"):
        check(rows)
    copy_gbs = copy_bandwidth()
    print(f"device-to-device copy: {copy_gbs:,.0f} GB/s")

    if args.only in ("all", "chunk"):
        chunk_benchmarks(rows, copy_gbs)
    if args.only in ("all", "train"):
        captioner_step_benchmark(rows)
    if args.only in ("all", "sparse"):
        sparse_benchmark(rows)
    for B in STEP_BATCHES if args.only in ("all", "step") else []:
        q, k, v, g, beta, h0 = inputs(B, 1, 16, 128, 128)
        q1, k1, v1, g1, b1 = q[:, 0], k[:, 0], v[:, 0], g[:, 0], beta[:, 0]
        q1, k1, v1, g1, b1 = (x.contiguous() for x in (q1, k1, v1, g1, b1))
        t = {"ours": bench(lambda: gated_delta_rule_step(q1, k1, v1, g1, b1, h0, backend="triton")),
             "ours_in_place": bench(lambda: gated_delta_rule_step(q1, k1, v1, g1, b1, h0, backend="triton",
                                                                  in_place=True))}
        if B <= REFERENCE_UP_TO:
            t["torch_ref"] = bench(lambda: gated_delta_rule_step(q1, k1, v1, g1, b1, h0, backend="torch"))
        if fused_recurrent_gated_delta_rule is not None:
            t["fla"] = bench(lambda: fused_recurrent_gated_delta_rule(q, k, v, g, beta, initial_state=h0,
                                                                      output_final_state=True))
        nbytes = B * 16 * 128 * 128 * 4 * 2 + B * 16 * (2 * 128 + 2 * 128 + 2) * 2
        gbs, gbs_in_place = (nbytes / t[n] / 1e6 for n in ("ours", "ours_in_place"))
        rows.append({"bench": "step", "shape": (B, 1, 16, 128, 128), **{f"{n}_ms": x for n, x in t.items()},
                     "ours_gbs": gbs, "ours_in_place_gbs": gbs_in_place, "copy_gbs": copy_gbs})
        del q, k, v, g, beta, h0, q1, k1, v1, g1, b1
        torch.cuda.empty_cache()
        ratio = f"{t['ours'] / t['fla']:.2f}x fla" if "fla" in t else "fla n/a"
        print(f"step B={B}: " + "  ".join(f"{n} {x * 1000:.1f} us" for n, x in t.items())
              + f"  | ours/fla {ratio} | ours {gbs:,.0f} GB/s ({gbs / copy_gbs:.0%} of copy), in place "
              f"{gbs_in_place:,.0f} GB/s ({gbs_in_place / copy_gbs:.0%})")
    if args.json:
        args.json.write_text(json.dumps({"info": info, "copy_gbs": copy_gbs, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
