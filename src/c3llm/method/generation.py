"""Decoding: cached, constrained generation of acoustic tokens and of captions.

Audio: the prompt is run once with a KV cache; each step scores only the acoustic rows
of the head plus ``</Audio>`` (the sliced head), optionally mixes conditional and
unconditional logits (classifier-free guidance), and samples (temperature, top-k, top-p).
Text: greedy, sampling, or beam search over the text vocabulary (acoustic tokens and
modality markers excluded).
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

from c3llm.core.config import field, in_range, one_of
from c3llm.core.errors import InputError
from c3llm.method.sequence import Example, collate

#: Upper bounds of a generation request (docs/limits.md): seconds of audio, caption tokens,
#: beams, and the sampling knobs (values past these are typos, not settings).
MAX_SECONDS = 120.0
MAX_CAPTION_TOKENS = 256
MAX_BEAMS = 16
MAX_TEMPERATURE = 100.0
MAX_GUIDANCE = 100.0


@attrs.frozen(kw_only=True)
class SamplingConfig:
    """How tokens are drawn. ``temperature = 0`` is greedy."""

    temperature: float = field(1.0, validator=in_range(0.0, MAX_TEMPERATURE), help="0 = greedy")
    top_k: int = field(0, validator=in_range(0), help="keep the k best tokens (0 = all)")
    top_p: float = field(1.0, validator=in_range(0.0, 1.0, low_open=True), help="nucleus mass")
    guidance_scale: float = field(1.0, validator=in_range(0.0, MAX_GUIDANCE), help="classifier-free guidance; 1 = off")
    max_seconds: float = field(10.0, validator=in_range(0.0, MAX_SECONDS, low_open=True),
                               help=f"longest audio when no duration is asked for (at most {MAX_SECONDS:g})")


@attrs.frozen(kw_only=True)
class TextDecodingConfig:
    """Caption decoding strategy."""

    strategy: str = field("greedy", validator=one_of("greedy", "beam", "sample"))
    num_beams: int = field(4, validator=in_range(1, MAX_BEAMS))
    max_tokens: int = field(40, validator=in_range(1, MAX_CAPTION_TOKENS))
    temperature: float = field(1.0, validator=in_range(0.0, MAX_TEMPERATURE, low_open=True))
    top_k: int = field(0, validator=in_range(0))
    top_p: float = field(1.0, validator=in_range(0.0, 1.0, low_open=True))
    length_penalty: float = field(1.0, validator=in_range(-100.0, 100.0))


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Set logits outside the top-k / nucleus to ``-inf``. ``(B, V) -> (B, V)``.

    With ``top_k`` the nucleus is found among the k best (``torch.topk``, already sorted):
    no sort of the whole row."""
    k = top_k if top_k and top_k < logits.shape[-1] else 0
    if not k and top_p >= 1.0:
        return logits
    if k:
        values, order = torch.topk(logits, k, dim=-1)  # (B, k), descending
        kth = values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
        if top_p >= 1.0:
            return logits
        if bool((logits > float("-inf")).sum(-1).gt(k).any()):  # ties at the k-th value: keep them all
            values, order = torch.sort(logits, descending=True, dim=-1)
    else:
        values, order = torch.sort(logits, descending=True, dim=-1)
    probs = values.softmax(-1)
    cum = probs.cumsum(-1)
    remove = cum - probs >= top_p - 1e-6  # keep the smallest prefix whose mass reaches top_p
    remove[..., 0] = False
    dropped = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, remove)
    return logits.masked_fill(dropped, float("-inf"))


def _sample_rows(probs: torch.Tensor, generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """One draw per row of ``(B, V)`` probabilities, row ``i`` from ``generators[i]``: the
    draw ``torch.multinomial(probs[i:i+1], 1, generator=g)`` makes (it divides by
    exponential noise and takes the argmax), with the noise per row and one argmax for all."""
    noise = torch.empty_like(probs)
    for i, g in enumerate(generators):
        noise[i].exponential_(1, generator=g)
    return (probs / noise).argmax(-1)


def draw(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
         generator: torch.Generator | Sequence[torch.Generator | None] | None) -> torch.Tensor:
    """Pick one token per row of ``(B, V)`` logits. ``generator``: one for the batch, or one
    per row (then a row's draw does not depend on the rows batched with it)."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = logits.softmax(-1)
    if isinstance(generator, (list, tuple)):
        return _sample_rows(probs, generator)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _step_input(model, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embed one new token per row and extend mask/positions (beam search, whose rows
    change parents each step). ``ids (B,) -> (B, 1, D)``."""
    embeds = model.backbone.embed(ids[:, None])
    mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    pos = (mask.sum(-1, keepdim=True) - 1)  # (B, 1)
    return embeds, mask, pos


@attrs.define
class _Decoder:
    """A batch's cached decoding state: the prompt runs once into a KV cache preallocated for
    ``steps`` more positions (when the backbone offers one), then :meth:`step` feeds one token
    per row. The mask is one preallocated buffer read through a growing view and positions
    count up: nothing is concatenated per step."""

    backbone: object
    mask: torch.Tensor  # (B, P + steps): the prompt's mask, then ones
    length: int  # positions the cache holds
    position: torch.Tensor  # (B, 1) the next token's position per row
    past: object = None

    @classmethod
    def start(cls, model, prompts: Sequence[Example], steps: int) -> tuple[_Decoder, torch.Tensor]:
        """Run the prompts; returns the decoder and the last hidden state ``(B, 1, D)``."""
        backbone = model.backbone
        batch = collate(list(prompts), model, with_targets=False)
        prompt_mask = batch.mask
        rows, width = prompt_mask.shape
        past = backbone.new_cache(rows, width + steps)
        out = backbone(batch.embeds, prompt_mask, position_ids=(prompt_mask.cumsum(-1) - 1).clamp(min=0),
                       past=past, use_cache=True)
        mask = prompt_mask.new_ones(rows, width + steps)
        mask[:, :width] = prompt_mask
        state = cls(backbone, mask, width, prompt_mask.sum(-1, keepdim=True), out.past)
        return state, out.hidden[:, -1:]

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per row ``(B,)``; returns the new hidden state ``(B, 1, D)``."""
        self.length += 1
        out = self.backbone(self.backbone.embed(ids[:, None]), self.mask[:, : self.length],
                            position_ids=self.position, past=self.past, use_cache=True)
        self.position = self.position + 1
        self.past = out.past
        return out.hidden


@torch.no_grad()
def generate_acoustic(
    model,
    prompts: Sequence[Example],
    *,
    num_frames: Sequence[int | None],
    sampling: SamplingConfig = SamplingConfig(),
    generator: torch.Generator | Sequence[torch.Generator | None] | None = None,
    unconditional: Sequence[Example] | None = None,
) -> list[torch.Tensor]:
    """Generate codebook-1 codes for each prompt.

    :param num_frames: per prompt, the exact number of frames to produce (``</Audio>`` is
        disallowed before it), or ``None``: stop at ``</Audio>`` or at ``sampling.max_seconds``.
    :param unconditional: condition-free prompts, required when ``guidance_scale != 1``.
    :return: per prompt, ``(S_i,)`` codes in ``[0, K)``.
    """
    backbone, special = model.backbone, model.backbone.special
    B = len(prompts)
    K, offset, end = special.acoustic_size, special.acoustic_offset, special.audio_end
    guided = sampling.guidance_scale != 1.0
    if guided and (unconditional is None or len(unconditional) != B):
        raise InputError("classifier-free guidance needs one unconditional prompt per prompt")
    cap = model.decoder.frames_for(sampling.max_seconds)
    targets = list(num_frames)
    limit = max([n for n in targets if n is not None] + ([cap] if None in targets else []))
    device = model.device
    exact = torch.tensor([n if n is not None else -1 for n in targets], device=device)

    # conditional and unconditional rows run as one batch through one forward per step
    state, hidden = _Decoder.start(model, list(prompts) + (list(unconditional) if guided else []), limit)
    acoustic_rows, end_row = slice(offset, offset + K), slice(end, end + 1)
    # per step and row, decided up front: </Audio> barred (too early) or forced (length reached)
    steps = torch.arange(limit, device=device)[:, None]  # (limit, 1)
    barred = exact[None] > steps  # (limit, B)
    forced = (exact[None] == steps) | (steps == limit - 1) & (exact[None] < 0)
    codes = torch.zeros(B, limit, dtype=torch.long, device=device)  # K marks the end
    done = torch.zeros(B, dtype=torch.bool, device=device)
    for step in range(limit):
        logits = torch.cat([backbone.logits(hidden, rows=acoustic_rows), backbone.logits(hidden, rows=end_row)],
                           dim=-1)[:, 0].float()  # (B', K + 1)
        if guided:
            cond, uncond = logits[:B], logits[B:]
            logits = uncond + sampling.guidance_scale * (cond - uncond)
        logits[:, K].masked_fill_(barred[step], float("-inf"))
        tok = draw(logits, sampling.temperature, sampling.top_k, sampling.top_p, generator).masked_fill_(
            forced[step], K)  # (B,)
        codes[:, step] = tok
        done |= tok == K
        if bool(done.all()):
            break
        ids = torch.where(tok == K, end, tok + offset)
        hidden = state.step(torch.cat([ids, ids]) if guided else ids)
    ended = codes == K
    lengths = torch.where(ended.any(-1), ended.int().argmax(-1), limit).tolist()  # first </Audio>, else all
    return [codes[i, : lengths[i]] for i in range(B)]


@torch.no_grad()
def codes_to_audio(model, codes: Sequence[torch.Tensor], *, captions: Sequence[str | None],
                   video: Sequence[torch.Tensor | None], durations: Sequence[float | None],
                   refine: bool = True) -> list:
    """Coarse codes -> refiner (codebooks 2..Q, unless ``refine`` is off or there is no
    refiner) -> codec -> :class:`~c3llm.core.media.Audio`, trimmed to each duration.

    :param codes: per item, ``(S_i,)`` codebook-1 codes.
    :param captions, video: the refiner's condition per item (caption and/or ``(N, D)`` features).
    """
    from c3llm.core.media import Audio

    decoder, device = model.decoder, model.device
    lengths = [c.shape[0] for c in codes]
    width = max(lengths)
    coarse = torch.zeros(len(codes), 1, width, dtype=torch.long, device=device)  # (B, 1, S)
    code_mask = torch.zeros(len(codes), width, dtype=torch.bool, device=device)  # (B, S)
    for i, c in enumerate(codes):
        coarse[i, 0, : len(c)] = c
        code_mask[i, : len(c)] = True
    full = coarse
    if refine and model.refiner is not None:
        cond, cond_mask = model.condition(captions, video)
        full = model.refiner.refine(cond, cond_mask, coarse, code_mask)  # (B, Q, S)
    wav = decoder.decode(full)  # (B, C, T)
    out = []
    for i, (n, d) in enumerate(zip(lengths, durations)):
        samples = round(d * decoder.sample_rate) if d is not None else round(n * decoder.sample_rate / decoder.frame_rate)
        out.append(Audio(wav[i, :, : min(samples, wav.shape[-1])].float().cpu(), int(decoder.sample_rate)))
    return out


@torch.no_grad()
def resynthesize(codec, audio):
    """``audio`` through ``codec`` (encode -> decode), at the codec's rate, same length: what
    the best generation can sound like with this codec, and the like-for-like version of a
    baseline that returns real recordings."""
    from c3llm.core.media import Audio

    wav = audio.to(codec.sample_rate, codec.channels).waveform[None].to(codec.device)  # (1, C, T)
    return Audio(codec.decode(codec.encode(wav))[0, :, : wav.shape[-1]].float().cpu(), codec.sample_rate)  # (C, T)


def _text_blocklist(model) -> torch.Tensor:
    """Token ids a caption may not contain: acoustic tokens, markers, padding, bos."""
    special = model.backbone.special
    blocked = list(special.acoustic_ids()) + [special.audio_start, special.audio_end,
                                              special.video_start, special.video_end, special.pad]
    if special.bos is not None and special.bos != special.eos:
        blocked.append(special.bos)
    return torch.tensor(sorted(set(blocked) - {special.eos}), dtype=torch.long)


@torch.no_grad()
def generate_text(
    model,
    prompts: Sequence[Example],
    decoding: TextDecodingConfig = TextDecodingConfig(),
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Generate caption ids (eos excluded) for each prompt."""
    if decoding.strategy == "beam":
        return [_beam_search(model, p, decoding) for p in prompts]
    backbone, eos = model.backbone, model.backbone.special.eos
    blocked = _text_blocklist(model).to(model.device)
    state, hidden = _Decoder.start(model, prompts, decoding.max_tokens)
    B = len(prompts)
    result: list[list[int]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool)
    temperature = 0.0 if decoding.strategy == "greedy" else decoding.temperature
    for _ in range(decoding.max_tokens):
        logits = backbone.logits(hidden)[:, 0].float()  # (B, V)
        logits[:, blocked] = float("-inf")
        tok = draw(logits, temperature, decoding.top_k, decoding.top_p, generator)
        for i in range(B):
            if not done[i]:
                if int(tok[i]) == eos:
                    done[i] = True
                else:
                    result[i].append(int(tok[i]))
        if bool(done.all()):
            break
        hidden = state.step(tok)
    return result


def _select_rows(past, rows: torch.Tensor):
    """The KV cache ``past`` with its batch rows ``rows`` (parents of the new beams), or
    ``None`` when its format is unknown (then beam search re-runs the prefix)."""
    if hasattr(past, "reorder_cache"):  # transformers caches
        past.reorder_cache(rows)
        return past
    if isinstance(past, (tuple, list)):  # nested (key, value) tensors, batch first
        picked = [_select_rows(p, rows) for p in past]
        return None if any(p is None for p in picked) else type(past)(picked)
    if torch.is_tensor(past):
        return past.index_select(0, rows.to(past.device))
    return None


def _beam_search(model, prompt: Example, decoding: TextDecodingConfig) -> list[int]:
    """Beam search for one prompt, the beams as a batch over one KV cache: the prompt runs
    once, then each step runs one token per beam, with the cache rows of its parent beam."""
    backbone, eos = model.backbone, model.backbone.special.eos
    blocked = _text_blocklist(model).to(model.device)
    n = decoding.num_beams
    batch = collate([prompt], model, with_targets=False)
    mask = batch.mask  # (1, P)
    out = backbone(batch.embeds, mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0), use_cache=True)
    hidden, past = out.hidden[:, -1:], out.past
    if past is None:
        return _beam_search_uncached(model, prompt, decoding)
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    finished: list[tuple[list[int], float]] = []
    for _ in range(decoding.max_tokens):
        logits = backbone.logits(hidden)[:, 0].float()  # (beams, V)
        logits[:, blocked] = float("-inf")
        logp = logits.log_softmax(-1)
        candidates = []
        for b, (ids, score) in enumerate(beams):
            top = torch.topk(logp[b], n)
            for lp, tok in zip(top.values.tolist(), top.indices.tolist()):
                candidates.append((ids + [tok], score + lp, b))
        candidates.sort(key=lambda c: c[1], reverse=True)
        beams, parents = [], []
        for ids, score, parent in candidates:
            if ids[-1] == eos:
                finished.append((ids[:-1], score / max(1, len(ids)) ** decoding.length_penalty))
            else:
                beams.append((ids, score))
                parents.append(parent)
            if len(beams) == n:
                break
        if len(finished) >= n or not beams:
            break
        rows = torch.tensor(parents, dtype=torch.long, device=mask.device)
        past = _select_rows(past, rows)
        if past is None:  # a cache format we cannot reorder: finish without it
            return _beam_search_uncached(model, prompt, decoding)
        tokens = torch.tensor([ids[-1] for ids, _ in beams], dtype=torch.long, device=mask.device)
        embeds, mask, pos = _step_input(model, tokens, mask[rows])
        out = backbone(embeds, mask, position_ids=pos, past=past, use_cache=True)
        hidden, past = out.hidden, out.past
    finished += [(ids, s / max(1, len(ids)) ** decoding.length_penalty) for ids, s in beams]
    return max(finished, key=lambda c: c[1])[0]


def _beam_search_uncached(model, prompt: Example, decoding: TextDecodingConfig) -> list[int]:
    """The same beam search re-running each beam's whole prefix every step (for backbones
    whose cache cannot be reordered; the reference the cached search is tested against)."""
    backbone, eos = model.backbone, model.backbone.special.eos
    blocked = _text_blocklist(model).to(model.device)
    n = decoding.num_beams
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    finished: list[tuple[list[int], float]] = []
    for _ in range(decoding.max_tokens):
        examples = [attrs.evolve(prompt, target=torch.tensor(ids, dtype=torch.long)) for ids, _ in beams]
        batch = collate(examples, model, with_targets=True)
        out = backbone(batch.embeds, batch.mask, position_ids=(batch.mask.cumsum(-1) - 1).clamp(min=0))
        logits = backbone.logits(out.hidden[:, -1:])[:, 0].float()
        logits[:, blocked] = float("-inf")
        logp = logits.log_softmax(-1)  # (beams, V)
        candidates = []
        for b, (ids, score) in enumerate(beams):
            top = torch.topk(logp[b], n)
            for lp, tok in zip(top.values.tolist(), top.indices.tolist()):
                candidates.append((ids + [tok], score + lp))
        candidates.sort(key=lambda c: c[1], reverse=True)
        beams = []
        for ids, score in candidates:
            if ids[-1] == eos:
                finished.append((ids[:-1], score / max(1, len(ids)) ** decoding.length_penalty))
            else:
                beams.append((ids, score))
            if len(beams) == n:
                break
        if len(finished) >= n or not beams:
            break
    finished += [(ids, s / max(1, len(ids)) ** decoding.length_penalty) for ids, s in beams]
    return max(finished, key=lambda c: c[1])[0]
