"""Math on tensors, each op a PyTorch reference beside its Triton kernel behind one entry point.

This package imports nothing of the project (only torch and triton). A process that also renders
with MuJoCo's EGL (Mesa llvmpipe) must import triton before the first frame is rendered: triton's
bundled LLVM segfaults when it loads after Mesa's.
"""

from kernels.gated_delta_rule import gated_delta_rule, gated_delta_rule_step

__all__ = ["gated_delta_rule", "gated_delta_rule_step"]
