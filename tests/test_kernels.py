"""Gated delta rule backends against the fp32 recurrent reference, on odd shapes, by relative RMSE.

Triton runs on the CPU here (TRITON_INTERPRET=1, set in conftest before triton is imported).
"""

import pytest
import torch
import torch.nn.functional as F

from kernels import gated_delta_rule, gated_delta_rule_step
from kernels.gated_delta_rule import naive_recurrent_gated_delta_rule

FP32_TOL, BF16_TOL = 1e-4, 1e-2


def assert_close(name: str, ref: torch.Tensor, got: torch.Tensor, tol: float) -> None:
    """Relative RMSE ‖got − ref‖ / ‖ref‖ ≤ tol; NaN or inf never passes."""
    assert torch.isfinite(got).all(), f"{name}: non-finite values"
    err = (got.float() - ref.float()).pow(2).mean().sqrt() / ref.float().pow(2).mean().sqrt().clamp_min(1e-12)
    assert err <= tol, f"{name}: relative RMSE {err:.2e} > {tol:.0e}"


def make_inputs(B, T, H, K, V, decay="mixed", seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen)
    k = torch.randn(B, T, H, K, generator=gen)
    if decay == "still":  # a still camera: keys that barely change, almost no decay, β near 1
        k = k[:, :1] + 0.05 * k
    k = F.normalize(k, dim=-1)  # callers normalize keys
    v = torch.randn(B, T, H, V, generator=gen)
    u = torch.rand(B, T, H, generator=gen)
    # strong: most steps forget almost everything; mixed: from none to strong on random steps
    g = {"strong": -(u * 20.0), "still": -0.01 * u}.get(decay, -(u ** 4) * torch.where(u > 0.9, 30.0, 1.0))
    beta = torch.rand(B, T, H, generator=gen).clamp(0.02, 0.98)
    if decay == "still":
        beta = 0.9 + 0.09 * beta
    h0 = torch.randn(B, H, K, V, generator=gen) * 0.5
    return tuple(x.to(dtype) for x in (q, k, v, g, beta)) + (h0,)


SHAPES = [  # (B, T, H, K, V): every T with K, V not powers of two among them
    (2, 1, 2, 16, 16), (1, 1, 3, 24, 32), (2, 7, 2, 32, 24), (1, 7, 1, 24, 16),
    (1, 63, 2, 16, 24), (2, 63, 1, 32, 32), (1, 100, 2, 24, 24), (2, 100, 1, 16, 32),
]


@pytest.mark.parametrize("backend", ["chunked", "triton"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}T{}H{}K{}V{}".format(*s))
@pytest.mark.parametrize("decay", ["mixed", "strong", "still"])
def test_forward_matches_reference_fp32(backend, shape, decay):
    q, k, v, g, beta, h0 = make_inputs(*shape, decay=decay)
    for init in (None, h0):
        ref_o, ref_s = naive_recurrent_gated_delta_rule(q, k, v, g, beta, shape[3] ** -0.5, init)
        o, s = gated_delta_rule(q, k, v, g, beta, initial_state=init, backend=backend)
        assert o.dtype == torch.float32 and s.dtype == torch.float32
        assert_close("o", ref_o, o, FP32_TOL)
        assert_close("final state", ref_s, s, FP32_TOL)


@pytest.mark.parametrize("shape", [(2, 100, 3, 24, 40), (1, 7, 2, 32, 24)], ids=lambda s: "B{}T{}H{}K{}V{}".format(*s))
def test_split_forward_equals_the_fused_one_and_the_reference(shape):
    """The split forward (state pass, then every chunk's outputs at once) against the reference and the
    fused pass; V 40 gives two V blocks a head and masked lanes."""
    from kernels.gated_delta_rule.chunk_triton import chunk_gated_delta_rule_fwd

    q, k, v, g, beta, h0 = make_inputs(*shape)
    ref_o, ref_s = naive_recurrent_gated_delta_rule(q, k, v, g, beta, shape[3] ** -0.5, h0)
    fused = chunk_gated_delta_rule_fwd(q, k, v, g, beta, shape[3] ** -0.5, h0, True, split=False)
    split = chunk_gated_delta_rule_fwd(q, k, v, g, beta, shape[3] ** -0.5, h0, True, split=True)
    for name, r, f, x in zip(("o", "final state"), (ref_o, ref_s), fused, split):
        assert_close(name, r, x, FP32_TOL)
        assert_close(name + " (fused)", f, x, FP32_TOL)


def test_split_forward_in_half_precision_keeps_the_fused_numbers():
    """The split pass keeps chunk states and new values in the inputs' 16-bit dtype, which is the
    precision the fused pass multiplies them in: its outputs are the fused ones."""
    from kernels.gated_delta_rule.chunk_triton import chunk_gated_delta_rule_fwd

    q, k, v, g, beta, h0 = make_inputs(2, 100, 3, 24, 40, dtype=torch.float16)
    args = (q, k, v, g, beta, 24 ** -0.5, h0, True)
    fused, split = chunk_gated_delta_rule_fwd(*args, split=False), chunk_gated_delta_rule_fwd(*args, split=True)
    assert split[0].dtype == torch.float16
    assert_close("o", fused[0].float(), split[0].float(), 1e-6)
    assert_close("final state", fused[1], split[1], 1e-6)


# Triton's CPU interpreter multiplies bf16 blocks as raw bits (numpy has no bf16), so the Triton
# bf16 path is checked on the GPU by benchmarks/kernels.py; fp16 goes through the same code here.
@pytest.mark.parametrize("backend, dtype", [("chunked", torch.bfloat16), ("chunked", torch.float16),
                                            ("triton", torch.float16)])
def test_forward_half_precision(backend, dtype):
    q, k, v, g, beta, h0 = make_inputs(2, 100, 2, 24, 32, dtype=dtype)
    ref_o, ref_s = naive_recurrent_gated_delta_rule(q, k, v, g, beta, 24 ** -0.5, h0)
    o, s = gated_delta_rule(q, k, v, g, beta, initial_state=h0, backend=backend)
    assert o.dtype == dtype and s.dtype == torch.float32
    assert_close("o", ref_o, o, BF16_TOL)
    assert_close("final state", ref_s, s, BF16_TOL)


GRAD_SHAPES = [(2, 63, 2, 24, 16), (1, 100, 1, 16, 32), (1, 7, 2, 32, 24), (2, 150, 2, 20, 40), (1, 5, 1, 32, 130)]


def reference_and_backend_grads(shape, backend, decay="mixed", dtype=torch.float32, carried=True):
    """Gradients of o and the final state (``carried``: also an initial state in and the final state's
    gradient) by autograd of the fp32 reference, and by ``backend`` on the inputs cast to ``dtype``."""
    inputs = make_inputs(*shape, decay=decay)
    gen = torch.Generator().manual_seed(1)
    do = torch.randn(*shape[:3], shape[4], generator=gen)
    dht = torch.randn(shape[0], shape[2], shape[3], shape[4], generator=gen)

    def grads(fn, cast):
        leaves = [x.detach().to(cast if i < 5 else torch.float32).requires_grad_(True) for i, x in enumerate(inputs)]
        o, s = fn(*leaves[:5], leaves[5] if carried else None)
        torch.autograd.backward((o, s) if carried else (o,), (do.to(o.dtype), dht) if carried else (do.to(o.dtype),))
        return [x.grad for x in leaves[: 6 if carried else 5]]

    ref = grads(lambda q, k, v, g, b, h: naive_recurrent_gated_delta_rule(q, k, v, g, b, shape[3] ** -0.5, h),
                torch.float32)
    got = grads(lambda q, k, v, g, b, h: gated_delta_rule(q, k, v, g, b, initial_state=h, backend=backend), dtype)
    return ref, got


@pytest.mark.parametrize("backend", ["chunked", "triton"])
@pytest.mark.parametrize("shape", GRAD_SHAPES, ids=lambda s: "B{}T{}H{}K{}V{}".format(*s))
def test_gradients_match_autograd_of_reference(backend, shape):
    ref, got = reference_and_backend_grads(shape, backend, decay="strong" if shape[1] == 150 else "mixed")
    for name, r, x in zip(("dq", "dk", "dv", "dg", "dbeta", "dh0"), ref, got):
        assert_close(name, r, x, FP32_TOL)


@pytest.mark.parametrize("backend", ["chunked", "triton"])
def test_gradients_on_a_still_camera(backend):
    """Keys that barely change over 100 steps (two chunks): T = (I + A)⁻¹ is well defined, but a
    product of A's powers (the Triton forward before 2026-12-05) cancels into garbage and trained to NaN."""
    ref, got = reference_and_backend_grads((1, 100, 2, 24, 16), backend, decay="still")
    for name, r, x in zip(("dq", "dk", "dv", "dg", "dbeta", "dh0"), ref, got):
        assert_close(name, r, x, FP32_TOL)


def test_triton_gradients_without_a_carried_state():
    """Three chunks, K 100 (masked lanes), only o used: no initial state, no final state's gradient."""
    ref, got = reference_and_backend_grads((1, 130, 3, 100, 24), "triton", carried=False)
    for name, r, x in zip(("dq", "dk", "dv", "dg", "dbeta"), ref, got):
        assert_close(name, r, x, FP32_TOL)


def test_triton_gradients_half_precision():
    ref, got = reference_and_backend_grads((2, 100, 2, 24, 32), "triton", dtype=torch.float16)
    for name, r, x in zip(("dq", "dk", "dv", "dg", "dbeta", "dh0"), ref, got):
        assert x.dtype == (torch.float32 if name == "dh0" else torch.float16)
        assert_close(name, r, x, BF16_TOL)


def test_triton_backward_16_bit_build_matches_the_widened_one():
    """The 16-bit build (``widen=False``, what the sweep tries on other stacks) computes the same
    gradients as the shipped one that widens to fp32, to 16-bit accuracy, in the inputs' dtypes."""
    from kernels.gated_delta_rule.chunk_triton import chunk_gated_delta_rule_fwd
    from kernels.gated_delta_rule.chunk_triton_backward import chunk_gated_delta_rule_bwd

    q, k, v, g, beta, h0 = make_inputs(1, 90, 2, 24, 40)
    q, k, v, g, beta = (x.half() for x in (q, k, v, g, beta))
    _, _, *saved = chunk_gated_delta_rule_fwd(q, k, v, g, beta, 24 ** -0.5, h0, True, save=True)
    gen = torch.Generator().manual_seed(4)
    do, dht = torch.randn(v.shape, generator=gen).half(), torch.randn(h0.shape, generator=gen)
    wide = chunk_gated_delta_rule_bwd(q, k, v, g, beta, 24 ** -0.5, h0, tuple(saved), do, dht)
    narrow = chunk_gated_delta_rule_bwd(q, k, v, g, beta, 24 ** -0.5, h0, tuple(saved), do, dht, widen=False)
    for name, r, x in zip(("dq", "dk", "dv", "dg", "dbeta", "dh0"), wide, narrow):
        assert x.dtype == r.dtype
        assert_close(name, r, x, BF16_TOL)
    assert not torch.equal(wide[5], narrow[5])  # two builds: the 16-bit one rounds its operands


@pytest.mark.parametrize("shape", GRAD_SHAPES[:3] + [(1, 130, 3, 100, 24)], ids=lambda s: "B{}T{}H{}K{}V{}".format(*s))
def test_triton_backward_with_the_local_dv_pass_first_matches_the_shipped_one(shape):
    """``BackwardLaunch(local_dv=True)`` (every chunk's Pᵀ dO in a parallel kernel before the state
    pass, which then only adds K_d dS) gives the shipped backward's gradients to fp32 rounding, with
    and without a carried state."""
    from kernels.gated_delta_rule.chunk_triton import chunk_gated_delta_rule_fwd
    from kernels.gated_delta_rule.chunk_triton_backward import BackwardLaunch, chunk_gated_delta_rule_bwd

    q, k, v, g, beta, h0 = make_inputs(*shape)
    scale = shape[3] ** -0.5
    gen = torch.Generator().manual_seed(6)
    do, dht = torch.randn(v.shape, generator=gen), torch.randn(h0.shape, generator=gen)
    for state, final in ((h0, dht), (None, None)):
        _, _, *saved = chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, state, True, save=True)
        shipped = chunk_gated_delta_rule_bwd(q, k, v, g, beta, scale, state, tuple(saved), do, final)
        local = chunk_gated_delta_rule_bwd(q, k, v, g, beta, scale, state, tuple(saved), do, final,
                                           BackwardLaunch(local_dv=True))
        for name, r, x in zip(("dq", "dk", "dv", "dg", "dbeta", "dh0"), shipped, local):
            if r is not None:
                assert_close(name, r, x, FP32_TOL)


@pytest.mark.parametrize("backend", ["chunked", "triton"])
def test_streaming_split_equals_one_pass(backend):
    q, k, v, g, beta, h0 = make_inputs(2, 100, 2, 24, 16)
    o, s = gated_delta_rule(q, k, v, g, beta, initial_state=h0, backend=backend)
    cut = 37
    o1, s1 = gated_delta_rule(q[:, :cut], k[:, :cut], v[:, :cut], g[:, :cut], beta[:, :cut],
                              initial_state=h0, backend=backend)
    o2, s2 = gated_delta_rule(q[:, cut:], k[:, cut:], v[:, cut:], g[:, cut:], beta[:, cut:],
                              initial_state=s1, backend=backend)
    assert_close("o", o, torch.cat([o1, o2], dim=1), FP32_TOL)
    assert_close("final state", s, s2, FP32_TOL)


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("shape", [(3, 63, 2, 24, 32), (1, 7, 3, 32, 24)], ids=lambda s: "B{}T{}H{}K{}V{}".format(*s))
def test_steps_equal_one_chunked_pass(backend, shape):
    q, k, v, g, beta, h0 = make_inputs(*shape)
    o, s = gated_delta_rule(q, k, v, g, beta, initial_state=h0, backend="chunked")
    state, outs = h0, []
    for t in range(shape[1]):
        o_t, state = gated_delta_rule_step(q[:, t], k[:, t], v[:, t], g[:, t], beta[:, t], state, backend=backend)
        outs.append(o_t)
    assert state.dtype == torch.float32
    assert_close("o", o, torch.stack(outs, dim=1), FP32_TOL)
    assert_close("final state", s, state, FP32_TOL)


def test_step_does_not_modify_its_input_state():
    q, k, v, g, beta, h0 = make_inputs(2, 1, 2, 16, 16)
    before = h0.clone()
    gated_delta_rule_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], beta[:, 0], h0, backend="triton")
    assert torch.equal(h0, before)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_an_in_place_step_writes_the_new_state_into_the_given_one(backend):
    """Odd sizes (K 100, V 40: masked lanes, two V blocks a head): in place gives the out-of-place
    step's output and state, in the very tensor it was given."""
    q, k, v, g, beta, h0 = make_inputs(3, 2, 5, 100, 40)
    state = h0.clone()
    for t in range(2):
        o_ref, h0 = gated_delta_rule_step(q[:, t], k[:, t], v[:, t], g[:, t], beta[:, t], h0, backend=backend)
        o, out = gated_delta_rule_step(q[:, t], k[:, t], v[:, t], g[:, t], beta[:, t], state, backend=backend,
                                       in_place=True)
        assert out is state
        assert_close("o", o_ref, o, FP32_TOL)
        assert_close("state", h0, state, FP32_TOL)
    with pytest.raises(ValueError, match="in_place needs a contiguous fp32 state"):
        gated_delta_rule_step(q[:, 0], k[:, 0], v[:, 0], g[:, 0], beta[:, 0], state.half(), in_place=True)


def test_bad_shapes_and_backends_are_named():
    q, k, v, g, beta, h0 = make_inputs(1, 7, 2, 16, 16)
    with pytest.raises(ValueError, match=r"g must have shape \(1, 7, 2\), got \(1, 7\)"):
        gated_delta_rule(q, k, v, g[..., 0], beta)
    with pytest.raises(ValueError, match=r"state must have shape \(1, 2, 16, 16\)"):
        gated_delta_rule(q, k, v, g, beta, initial_state=h0[:, :1])
    with pytest.raises(ValueError, match="backend must be one of"):
        gated_delta_rule(q, k, v, g, beta, backend="cuda")


COMPILE_WY = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from kernels.gated_delta_rule.chunk_triton import _wy_kernel

dtype, ieee = sys.argv[1], sys.argv[2] == "ieee"
names = ("k", "v", "g", "beta", "w", "u", "gcum", "tm", "T", "H", "K", "V", "BT", "BK", "BV", "LOG_BT", "SAVE_T", "IEEE")
kinds = [f"*{dtype}"] * 6 + ["*fp32", "*fp32", "i32"] + ["constexpr"] * 9
consts = {"H": 16, "K": 128, "V": 128, "BT": 64, "BK": 128, "BV": 128, "LOG_BT": 6, "SAVE_T": True, "IEEE": ieee}
compiled = triton.compile(ASTSource(fn=_wy_kernel, signature=dict(zip(names, kinds)), constexprs=consts),
                          target=GPUTarget("cuda", 90, 32), options={"num_warps": 4})
print(len(compiled.asm["cubin"]))
"""


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("ieee", ["ieee", "tf32"])
def test_the_wy_kernel_compiles_for_hopper(dtype, ieee, tmp_path):
    """The interpreter runs what the GPU compiler may still reject: the WY kernel (where the inverse is
    built) goes through Triton's whole sm_90 pipeline, ptxas included, at the benchmark's sizes (in a
    process of its own: this one's Triton interprets)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"} | {"TRITON_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", COMPILE_WY, dtype, ieee], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 0  # a Hopper binary came out
