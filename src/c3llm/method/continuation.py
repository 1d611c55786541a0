"""Audio longer than the model's window, by windowed continuation (as audiocraft does).

The LLM generates the first window as usual. Each next window starts its audio span with
the last ``context`` codebook-1 tokens of what is already there, and generates the rest;
for video the features slide with the window, so a window's prompt shows the video of
exactly the time its audio span covers. The refiner runs per window on the same spans
(keeping what each window adds), and the codec decodes the stitched codes chunk by chunk
with a short cross-fade. Cost and memory grow with the window, not with the clip: the
total cost is linear in the duration.

::

    window 0   [ generated ................ ]
    window 1                   [ context | generated ......... ]
    window 2                                        [ context | generated .... ]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import torch

from c3llm.core.errors import InputError
from c3llm.method.generation import SamplingConfig, generate_acoustic
from c3llm.method.sequence import Example, Segment


@attrs.frozen(kw_only=True)
class Windows:
    """Window geometry in code frames: ``size`` frames per window, the first ``context`` of
    every window after the first being the previous window's last frames."""

    size: int
    context: int

    def __attrs_post_init__(self) -> None:
        if self.size < 2 or not 0 < self.context < self.size:
            raise InputError(f"windowed generation needs 0 < context < window frames, got context "
                             f"{self.context} and window {self.size}; lower generate.context_seconds")

    def spans(self, total: int) -> list[tuple[int, int, int]]:
        """``(start, keep_from, end)`` per window over ``total`` frames: the window covers
        ``[start, end)`` and adds ``[keep_from, end)``."""
        spans, done = [], 0
        while done < total:
            start = max(0, done - self.context) if done else 0
            end = min(total, start + self.size)
            spans.append((start, done, end))
            done = end
        return spans


def continue_audio(example: Example, codes: torch.Tensor, acoustic_offset: int) -> Example:
    """``example`` (an audio-generation prompt ending in ``<Audio>``) with ``codes`` ``(S,)``
    already in its audio span, so the LLM continues after them."""
    if codes.numel() == 0:
        return example
    return attrs.evolve(example, prompt=(*example.prompt, Segment(ids=codes.long().cpu() + acoustic_offset)))


def windowed_codes(
    model,
    prompt_for: Callable[[int, int, int], Example],
    total_frames: Sequence[int],
    windows: Windows,
    *,
    sampling: SamplingConfig,
    generator: torch.Generator | Sequence[torch.Generator | None] | None = None,
    guided: bool = False,
) -> list[torch.Tensor]:
    """Codebook-1 codes of ``total_frames[i]`` frames per item, window by window.

    :param prompt_for: ``(item, start_frame, end_frame) -> Example``: the item's prompt for a
        window covering those frames (a caption prompt ignores them; a video prompt slices
        its features to them).
    :return: per item, ``(total_frames[i],)`` codes.
    """
    special = model.backbone.special
    plans = [windows.spans(n) for n in total_frames]
    codes = [torch.zeros(0, dtype=torch.long, device=model.device) for _ in total_frames]
    for k in range(max(len(p) for p in plans)):
        active = [i for i, p in enumerate(plans) if k < len(p)]
        prompts, uncond, frames = [], [], []
        for i in active:
            start, keep_from, end = plans[i][k]
            context = codes[i][start:keep_from]
            prompts.append(continue_audio(prompt_for(i, start, end), context, special.acoustic_offset))
            uncond.append(continue_audio(model.sequences.unconditional_audio(), context, special.acoustic_offset))
            frames.append(end - keep_from)
        gen = generator if not isinstance(generator, (list, tuple)) else [generator[i] for i in active]
        new = generate_acoustic(model, prompts, num_frames=frames, sampling=sampling, generator=gen,
                                unconditional=uncond if guided else None)
        for i, piece in zip(active, new):
            codes[i] = torch.cat([codes[i], piece])
    return codes


@torch.no_grad()
def refine_windowed(model, coarse: torch.Tensor, condition_for: Callable[[int, int], tuple], windows: Windows) -> torch.Tensor:
    """The refiner over one item's ``(S,)`` coarse codes, window by window: ``(Q, S)`` codes.

    :param condition_for: ``(start_frame, end_frame) -> (caption, video_features)`` of a window.
    """
    full = coarse.new_zeros(model.refiner.num_codebooks, coarse.shape[0])  # (Q, S)
    full[0] = coarse
    for start, keep_from, end in windows.spans(coarse.shape[0]):
        caption, video = condition_for(start, end)
        cond, cond_mask = model.condition([caption], [video])
        piece = coarse[None, None, start:end]  # (1, 1, W)
        mask = torch.ones(1, end - start, dtype=torch.bool, device=coarse.device)
        refined = model.refiner.refine(cond, cond_mask, piece, mask)[0]  # (Q, W)
        full[1:, keep_from:end] = refined[1:, keep_from - start:]
    return full


@torch.no_grad()
def decode_chunked(codec, codes: torch.Tensor, chunk: int, overlap: int) -> torch.Tensor:
    """``codec.decode`` of ``(Q, S)`` codes in chunks of ``chunk`` frames that overlap by
    ``overlap`` frames, cross-faded linearly: ``(C, T)``. Memory follows the chunk."""
    frames = codes.shape[-1]
    if frames <= chunk:
        return codec.decode(codes[None])[0]
    hop = round(codec.sample_rate / codec.frame_rate)  # samples per code frame
    out = None
    start = 0
    while start < frames:
        begin = max(0, start - overlap)
        end = min(frames, start + chunk)
        wav = codec.decode(codes[None, :, begin:end])[0]  # (C, (end - begin) * hop)
        if out is None:
            out = wav
        else:
            fade = min((start - begin) * hop, out.shape[-1], wav.shape[-1])
            ramp = torch.linspace(0.0, 1.0, fade, device=wav.device)
            head = out[:, -fade:] * (1 - ramp) + wav[:, :fade] * ramp
            out = torch.cat([out[:, :-fade], head, wav[:, fade:]], dim=-1)
        start = end
    return out
