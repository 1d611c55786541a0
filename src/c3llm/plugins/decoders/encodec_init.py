"""Data-dependent initialisation of EnCodec's SEANet convs (LSUV for weight-normed convs).

Why: transformers' ``EncodecPreTrainedModel._init_weights`` calls ``kaiming_normal_`` on
``conv.weight``, which for a weight-normalised conv is a tensor recomputed from the
parametrization (``g * v / ||v||``) on every access, so the call changes nothing; PyTorch's
default init then shrinks the signal ~1.7x per layer and a tiny codec's encoder starts with an
almost constant output (std ~0.003) that training never grows: every clip decodes alike
(docs/codec.md, "The collapse"). The fix, in order:

1. :func:`kaiming_weight_norm_`: kaiming-normal ``v`` (fan-in, ELU ~ ReLU gain) with
   ``g = ||v||`` (so ``weight == v`` at start) and zero biases — the init transformers meant;
2. :func:`lsuv_`: in forward order, rescale each conv (its ``g``, a scalar factor) so its output
   has unit standard deviation on a probe batch (Mishkin & Matas' LSUV; Salimans & Kingma's
   data-dependent init for weight norm);
3. the decoder's last conv is then scaled so the output matches the probe audio's std.

Convs without weight norm (``norm = "time_group_norm"``) get the same treatment on ``weight``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

_CONVS = (nn.Conv1d, nn.ConvTranspose1d)


def seanet_convs(module: nn.Module) -> list[nn.Module]:
    """The ``Conv1d`` / ``ConvTranspose1d`` modules of ``module``, in registration (= forward) order."""
    return [m for m in module.modules() if isinstance(m, _CONVS)]


def _weight_norm(conv: nn.Module) -> nn.Module | None:
    """The weight-norm parametrization of ``conv`` (``original0`` = g, ``original1`` = v), if any."""
    params = getattr(conv, "parametrizations", None)
    return params.weight if params is not None and "weight" in params else None


@torch.no_grad()
def scale_conv_(conv: nn.Module, factor: float) -> None:
    """Multiply ``conv``'s output by ``factor`` (``g`` for weight norm, else the weight) and its bias."""
    wn = _weight_norm(conv)
    if wn is not None:
        wn.original0.mul_(factor)
    else:
        conv.weight.mul_(factor)
    if conv.bias is not None:
        conv.bias.mul_(factor)


@torch.no_grad()
def kaiming_weight_norm_(module: nn.Module) -> int:
    """Kaiming-normal init of every conv of ``module`` written where it takes effect (``v``, with
    ``g = ||v||`` over the parametrization's norm axes); biases zeroed. Draws from torch's global
    generator. :return: the number of convs initialised."""
    convs = seanet_convs(module)
    for conv in convs:
        stride = conv.stride[0] if isinstance(conv, nn.ConvTranspose1d) else 1
        fan_in = conv.in_channels * conv.kernel_size[0] / conv.groups / stride  # taps reaching one output
        std = math.sqrt(2.0 / fan_in)
        wn = _weight_norm(conv)
        if wn is None:
            conv.weight.normal_(0.0, std)
        else:
            v, g = wn.original1, wn.original0
            v.normal_(0.0, std)
            axes = [d for d in range(v.dim()) if g.shape[d] == 1]
            g.copy_(v.pow(2).sum(dim=axes, keepdim=True).sqrt())
        if conv.bias is not None:
            conv.bias.zero_()
    return len(convs)


@torch.no_grad()
def lsuv_(convs: list[nn.Module], forward: Callable[[], object], *, passes: int = 2, eps: float = 1e-8) -> dict[int, float]:
    """Rescale each of ``convs`` (in forward order) to unit output std on the batch that
    ``forward()`` runs through the whole network. :return: each conv's std before its rescale
    (by index), for logging."""
    seen: dict[int, float] = {}
    before: dict[int, float] = {}
    for index, conv in enumerate(convs):
        handle = conv.register_forward_hook(lambda _m, _i, out: seen.__setitem__(0, float(out.float().std())))
        try:
            for _ in range(passes):
                seen.clear()
                forward()
                std = seen.get(0)
                if std is None or not math.isfinite(std) or std < eps:
                    break
                before.setdefault(index, std)
                scale_conv_(conv, 1.0 / std)
        finally:
            handle.remove()
    return before


@torch.no_grad()
def lsuv_encodec_(model: nn.Module, batch: torch.Tensor) -> dict[str, float]:
    """The full recipe on transformers' ``EncodecModel``: kaiming ``v``/``g``, LSUV over the
    encoder's then the decoder's convs on ``batch`` ``(B, C, T)`` (unquantised
    encoder -> decoder), then the decoder's last conv scaled to the batch's std.
    :return: latent std and output/input std ratio after the init (for the log)."""
    kaiming_weight_norm_(model.encoder)
    kaiming_weight_norm_(model.decoder)
    convs = seanet_convs(model.encoder) + seanet_convs(model.decoder)

    def forward() -> torch.Tensor:
        return model.decoder(model.encoder(batch))

    lsuv_(convs, forward)
    target = float(batch.float().std())
    out = forward()
    if target > 0 and float(out.std()) > 0:
        scale_conv_(convs[-1], target / float(out.std()))
    latent = model.encoder(batch)
    return {"latent_std": float(latent.std()), "output_std_ratio": float(forward().std()) / max(target, 1e-12)}
