"""Math on tensors, each op a PyTorch reference beside its Triton kernel behind one entry point.

This package imports nothing of the project (only torch and triton).
"""

from kernels.gated_delta_rule import gated_delta_rule, gated_delta_rule_step

__all__ = ["gated_delta_rule", "gated_delta_rule_step"]
