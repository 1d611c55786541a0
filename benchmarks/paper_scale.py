"""The paper's backbone at full Gemma-2B dims (bf16 or fp32, random weights): memory and speed.

A ``gemma`` backbone at Gemma-2B's dims (D 2048, 18 layers, 8 heads, 1 KV head, MLP 16384,
256 000 vocabulary rows; 2.5 B parameters, 5 GB in bf16) with the paper's LoRA (r 16 on
q/k/v/o) and EnCodec's acoustic vocabulary (K = 1024), measured phase by phase:

1. build (random init, straight in bf16) and ``add_acoustic_vocabulary(1024)``;
2. LM training steps (eq. 1 on T2A sequences: a 12-token caption + 1 s of codebook-1 codes at
   EnCodec's 75 frames/s), forward + backward + AdamW over the trainable set, at ``--batch``;
3. greedy acoustic decoding with the KV cache after merging LoRA (sliced head), s/token;
4. beam-search caption steps on the KV cache (4 beams), s/step, at two prompt lengths (the
   per-step cost must not grow with the prefix).

Peak RSS is the process's high-water mark after each phase (``ru_maxrss``). One process at a
time: it needs ~7 GB in bf16, ~14 GB in fp32. ``uptime`` before and after says how loaded the machine was.

    python benchmarks/paper_scale.py [--batch 2] [--steps 2] [--tokens 8] [--threads N] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import time

import torch

from c3llm.method.generation import TextDecodingConfig, _beam_search
from c3llm.method.sequence import Example, Segment
from c3llm.plugins.backbones.gemma import GemmaBackbone, GemmaConfig

GEMMA_2B = {"hidden_size": 2048, "num_layers": 18, "num_heads": 8, "num_kv_heads": 1,
            "intermediate_size": 16384, "vocab_rows": 256000}
SMOKE = {"hidden_size": 64, "num_layers": 2, "num_heads": 8, "num_kv_heads": 1, "intermediate_size": 128,
         "vocab_rows": 2000}  # --smoke: checks the script in seconds
K = 1024


def rss_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def build(dims, dtype: str = "bfloat16") -> tuple[GemmaBackbone, float, float]:
    config = GemmaConfig(**dims, dtype=dtype, mode="lora", lora_r=16, lora_alpha=32.0,
                         lora_targets=("q_proj", "k_proj", "v_proj", "o_proj"))
    started = time.perf_counter()
    torch.set_default_dtype(getattr(torch, dtype))  # random init straight in the dtype (no 10 GB fp32 copy for bf16)
    try:
        backbone = GemmaBackbone(config)
    finally:
        torch.set_default_dtype(torch.float32)
    built = time.perf_counter() - started
    started = time.perf_counter()
    backbone.add_acoustic_vocabulary(K)
    return backbone, built, time.perf_counter() - started


def train_steps(backbone, batch: int, steps: int) -> list[float]:
    sp = backbone.special
    g = torch.Generator().manual_seed(0)
    caption = torch.randint(10, 400, (batch, 12), generator=g)
    codes = torch.randint(K, (batch, 75), generator=g) + sp.acoustic_offset
    ids = torch.cat([torch.full((batch, 1), sp.bos), caption, torch.full((batch, 1), sp.audio_start), codes,
                     torch.full((batch, 1), sp.audio_end)], 1)  # (B, 90)
    target_from = caption.shape[1] + 2  # logits only where a target follows (as eq. 1 in method.losses)
    params = [p for p in backbone.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4)
    backbone.train()
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        out = backbone(backbone.embed(ids), torch.ones_like(ids))
        logits = backbone.logits(out.hidden[:, target_from - 1:-1]).float()  # (B, S+1, V)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, target_from:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
    return times


@torch.inference_mode()
def greedy_tokens(backbone, tokens: int) -> float:
    sp = backbone.special
    acoustic = slice(sp.acoustic_offset, sp.acoustic_offset + sp.acoustic_size)
    prompt = torch.randint(10, 400, (1, 14))
    mask = torch.ones_like(prompt)
    out = backbone(backbone.embed(prompt), mask, use_cache=True)
    hidden = out.hidden[:, -1:]
    started = time.perf_counter()
    for _ in range(tokens):
        token = backbone.logits(hidden, rows=acoustic).argmax(-1) + sp.acoustic_offset  # (1, 1)
        mask = torch.cat([mask, torch.ones_like(token)], 1)
        out = backbone(backbone.embed(token), mask, past=out.past, use_cache=True)
        hidden = out.hidden
    return (time.perf_counter() - started) / tokens


class _Model:
    """What ``_beam_search`` reads from a C3LLM: the backbone and its device (token prompts only)."""

    def __init__(self, backbone):
        self.backbone, self.device = backbone, torch.device("cpu")


@torch.inference_mode()
def beam_step_seconds(backbone, prompt_len: int, steps: int) -> float:
    """Seconds per beam step after the prompt pass (4 beams, ``steps`` tokens, no early stop)."""
    model = _Model(backbone)
    prompt = Example("a2t", (Segment(ids=torch.randint(10, 400, (prompt_len,))),))
    calls = []
    forward = backbone.forward

    def timed(embeds, *args, **kwargs):
        started = time.perf_counter()
        out = forward(embeds, *args, **kwargs)
        calls.append((embeds.shape[1], time.perf_counter() - started))
        return out

    backbone.forward = timed
    try:
        _beam_search(model, prompt, TextDecodingConfig(strategy="beam", num_beams=4, max_tokens=steps,
                                                       length_penalty=1.0))
    finally:
        del backbone.forward
    step_times = [t for width, t in calls if width == 1]
    return statistics.median(step_times) if step_times else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16",
                        help="backbone weights; float32 on CPUs without AVX512-BF16 (bf16 GEMMs run a slow "
                        "reference kernel there)")
    parser.add_argument("--smoke", action="store_true", help="tiny dims, to check the script")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = {"uptime_before": uptime(), "threads": torch.get_num_threads(), "batch": args.batch,
              "dtype": args.dtype}
    backbone, built, vocab = build(SMOKE if args.smoke else GEMMA_2B, args.dtype)
    result.update(build_s=round(built, 1), add_vocabulary_s=round(vocab, 2), rss_after_build_gib=rss_gib(),
                  parameters=sum(p.numel() for p in backbone.parameters()),
                  trainable=sum(p.numel() for p in backbone.parameters() if p.requires_grad))
    print(json.dumps(result), flush=True)
    if args.steps:  # --steps 0 skips training (bf16 GEMMs are very slow on CPUs without AVX512-BF16)
        times = train_steps(backbone, args.batch, args.steps)
        result.update(train_step_s=[round(t, 1) for t in times], rss_after_train_gib=rss_gib())
        print(json.dumps(result), flush=True)
    backbone.prepare_for_inference()
    result.update(greedy_s_per_token=round(greedy_tokens(backbone, args.tokens), 2), rss_after_decode_gib=rss_gib())
    print(json.dumps(result), flush=True)
    for prompt_len in (16, 128):
        result[f"beam4_s_per_step_prompt{prompt_len}"] = round(beam_step_seconds(backbone, prompt_len, 4), 2)
    result.update(rss_peak_gib=rss_gib(), uptime_after=uptime())
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
