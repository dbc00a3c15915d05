"""int8 captioners by quantization-aware training (PyTorch's eager-mode ``torch.ao.quantization``).

``prepare_int8(model)`` turns a float captioner, in place, into one that trains with fake-quantized
weights and activations: the encoder's conv + BatchNorm + ReLU triples are fused and quantized end to
end (one quantize at its input, one dequantize after its projection), and every other linear layer
runs quantized between a quantize and a dequantize. The GRU cell of the decoder has no static int8
form in eager mode: it gets int8 weights (dynamic quantization) at conversion. LayerNorms, the gated
delta rule and its fp32 state stay float. ``convert_int8`` makes the integer model (x86/fbgemm
kernels, CPU only); ``int8_skeleton`` builds that structure again to load a saved one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.ao import quantization as tq

from agent.perception.captioner import Captioner

ENGINE = "x86"  # fbgemm/onednn kernels; what torch uses on x86 CPUs


class QuantizedEncoder(nn.Module):
    """The frame encoder with its input quantized once and its output dequantized once."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.quant, self.conv, self.proj, self.dequant = tq.QuantStub(), encoder.conv, encoder.proj, tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.proj(self.conv(self.quant(x)).flatten(1)))


class QuantizedLinear(nn.Module):
    """A linear layer that quantizes its input, runs in int8 and hands back float."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.quant, self.linear, self.dequant = tq.QuantStub(), linear, tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.linear(self.quant(x)))


def _wrap_linears(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, QuantizedLinear(child))
        elif not isinstance(child, (QuantizedEncoder, QuantizedLinear)):
            _wrap_linears(child)


def prepare_int8(model: Captioner) -> Captioner:
    """``model`` (float, any mode) → the same model, in train mode, with fake quantization inserted."""
    torch.backends.quantized.engine = ENGINE
    model.train()
    n = len(model.cfg.channels)
    tq.fuse_modules_qat(model.encoder.conv, [[str(3 * i), str(3 * i + 1), str(3 * i + 2)] for i in range(n)],
                        inplace=True)
    model.encoder = QuantizedEncoder(model.encoder)
    _wrap_linears(model.blocks)
    _wrap_linears(model.decoder)
    qconfig = tq.get_default_qat_qconfig(ENGINE)
    for module in model.modules():
        if isinstance(module, (QuantizedEncoder, QuantizedLinear)):
            module.qconfig = qconfig
    return tq.prepare_qat(model, inplace=True)


def convert_int8(model: Captioner) -> Captioner:
    """A prepared, trained model → the integer model (in place; eval mode, CPU)."""
    model.cpu().eval()
    tq.convert(model, inplace=True)
    model.decoder.cell = tq.quantize_dynamic(nn.Sequential(model.decoder.cell), {nn.GRUCell}, dtype=torch.qint8)[0]
    return model


def int8_skeleton(model: Captioner) -> Captioner:
    """A float captioner of the right config → the structure of its int8 form, ready to load weights into."""
    return convert_int8(prepare_int8(model))
