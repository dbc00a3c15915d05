"""Math on tensors, each op a PyTorch reference beside its Triton kernel behind one entry point.

This package imports nothing of the project (only torch and triton). Triton must load before MuJoCo's
EGL renderer in a process; envs/headless.py sees to that on every entry path.
"""

from kernels.gated_delta_rule import gated_delta_rule, gated_delta_rule_step
from kernels.sparse_attention import key_blocks, sparse_attention

__all__ = ["gated_delta_rule", "gated_delta_rule_step", "key_blocks", "sparse_attention"]
