"""Math on tensors, each op a PyTorch reference beside its Triton kernel behind one entry point.

This package imports nothing of the project (only torch and triton). Triton must load before MuJoCo's
EGL renderer in a process; envs/headless.py sees to that on every entry path.
"""

from kernels.gated_delta_rule import gated_delta_rule, gated_delta_rule_step

__all__ = ["gated_delta_rule", "gated_delta_rule_step"]
