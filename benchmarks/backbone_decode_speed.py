"""Seconds per generated acoustic token against the machine's floor and against transformers.

For each model size (``tiny``: the preset; ``mid``: 39 M parameters; ``2b``: Gemma-2B's dims,
D 2048, 18 layers, 1 KV head, MLP 16384, 256000 vocabulary rows, ~5 GB in bfloat16, only
with ``--gemma-2b``), a random-init backbone with EnCodec's acoustic vocabulary (K = 1024),
LoRA merged, decodes greedily after a short caption prompt, four ways in one process:

1. ``project``: :func:`c3llm.method.generation.generate_acoustic`, the project's loop
   (preallocated KV cache, sliced head, constrained to the acoustic rows);
2. ``plain loop``: the same backbone stepped the simple way (a growing ``DynamicCache``,
   the mask concatenated each step, the full head masked to the acoustic rows): the
   loop as it was before the preallocated cache;
3. ``hf dynamic`` / ``hf static``: transformers' own ``generate`` on the same model
   (``cache_implementation`` dynamic / static, greedy, full head, a logits processor barring
   the non-acoustic rows): the peer.

s/token is ``(t(N + 1 tokens) - t(1 token)) / N`` (the prompt's prefill cancels out), the
median of ``--repeats``. The floor is ``bytes of weights one token must read`` (every
weight once, the head sliced to K + 1 rows, one embedding row) divided by the streaming
bandwidth :mod:`cpu_floor` measures in the same process; ``x floor`` is the ratio to it.

    python benchmarks/backbone_decode_speed.py [--sizes tiny,mid] [--gemma-2b] [--dtype bfloat16]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep (BENCHMARKS.md)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from cpu_floor import describe, load, measure  # noqa: E402

from c3llm import sdk  # noqa: E402
from c3llm.method.generation import SamplingConfig, generate_acoustic  # noqa: E402

SIZES = {
    "tiny": {},
    "mid": {"hidden_size": 512, "num_layers": 6, "num_heads": 8, "num_kv_heads": 1,
            "intermediate_size": 2048, "vocab_rows": 32000},
    "2b": {"hidden_size": 2048, "num_layers": 18, "num_heads": 8, "num_kv_heads": 1,
           "intermediate_size": 16384, "vocab_rows": 256000},
}
GREEDY = SamplingConfig(temperature=0.0)


def build(dims: dict, dtype: str) -> sdk.Pipeline:
    torch.manual_seed(0)
    pipe = sdk.Pipeline.from_plugins(decoder="encodec",
                                     backbone={"name": "gemma", "mode": "lora", "dtype": dtype, **dims})
    pipe.model.eval()
    pipe.model.backbone.prepare_for_inference()
    return pipe


def project(pipe, prompt, steps: int) -> list[int]:
    return generate_acoustic(pipe.model, [prompt], num_frames=[steps], sampling=GREEDY)[0].tolist()


@torch.inference_mode()
def plain_loop(pipe, prompt, steps: int) -> list[int]:
    """Greedy decoding with a growing cache and mask and the full head (the old loop's shape)."""
    from c3llm.method.sequence import collate, positions

    backbone, sp = pipe.model.backbone, pipe.model.backbone.special
    batch = collate([prompt], pipe.model, with_targets=False)
    mask = batch.mask
    out = backbone(batch.embeds, mask, position_ids=positions(mask), use_cache=True)
    hidden, tokens = out.hidden[:, -1:], []
    for _ in range(steps):
        logits = backbone.logits(hidden)[:, 0].float()  # (1, V)
        logits[:, : sp.acoustic_offset] = float("-inf")
        logits[:, sp.acoustic_offset + sp.acoustic_size:] = float("-inf")
        token = logits.argmax(-1)
        tokens.append(int(token) - sp.acoustic_offset)
        if len(tokens) == steps:
            break
        mask = torch.cat([mask, mask.new_ones(1, 1)], 1)
        out = backbone(backbone.embed(token[:, None]), mask, position_ids=mask.sum(-1, keepdim=True) - 1,
                       past=out.past, use_cache=True)
        hidden = out.hidden
    return tokens


def hf_generate(cache: str):
    from transformers import LogitsProcessor, LogitsProcessorList

    class AcousticOnly(LogitsProcessor):
        """Bar every row but the acoustic ones, as the project's loop does (same tokens)."""

        def __init__(self, start: int, stop: int):
            self.start, self.stop = start, stop

        def __call__(self, input_ids, scores):
            scores[:, : self.start] = float("-inf")
            scores[:, self.stop:] = float("-inf")
            return scores

    @torch.inference_mode()
    def run(pipe, prompt, steps: int) -> list[int]:
        hf, sp = pipe.model.backbone._hf(), pipe.model.backbone.special
        ids = prompt_ids(pipe, prompt)
        only = LogitsProcessorList([AcousticOnly(sp.acoustic_offset, sp.acoustic_offset + sp.acoustic_size)])
        out = hf.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps,
                          min_new_tokens=steps, do_sample=False, cache_implementation=cache,
                          pad_token_id=hf.config.pad_token_id, logits_processor=only)
        return (out[0, ids.shape[1]:] - sp.acoustic_offset).tolist()
    return run


def prompt_ids(pipe, prompt) -> torch.Tensor:
    """The caption prompt as token ids (its segments are all ids for a text prompt)."""
    return torch.cat([seg.ids for seg in prompt.prompt])[None].long()


def seconds_per_token(fn, pipe, prompt, steps: int, repeats: int) -> float:
    def timed(n):
        start = time.perf_counter()
        fn(pipe, prompt, n)
        return time.perf_counter() - start
    timed(2)  # warm-up
    return statistics.median((timed(steps + 1) - timed(1)) / steps for _ in range(repeats))


def floor_bytes(pipe, acoustic: int) -> int:
    """Bytes of weights one decoding step reads: all, except the head's rows it does not
    compute and the embedding rows it does not look up."""
    hf = pipe.model.backbone._hf()
    head = hf.get_output_embeddings().weight
    embed = hf.get_input_embeddings().weight
    total = sum(p.numel() * p.element_size() for p in hf.parameters())  # a tied head counts once
    row = head.shape[1] * head.element_size()
    unread = (head.shape[0] - (acoustic + 1)) * row
    if embed is not head:
        unread += (embed.shape[0] - 1) * row
    return total - unread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="tiny,mid")
    parser.add_argument("--gemma-2b", action="store_true", help="also Gemma-2B's dims (~5 GB in bfloat16)")
    parser.add_argument("--tokens", type=int, default=32, help="tokens timed per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--skip-hf", action="store_true", help="skip transformers' generate (the peer)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    sizes = args.sizes.split(",") + (["2b"] if args.gemma_2b else [])

    floor = measure(mb=256, repeats=5)
    print(f"floor: {describe(floor)}")
    variants = {"project": project, "plain loop": plain_loop}
    if not args.skip_hf:
        variants |= {"hf dynamic": hf_generate("dynamic"), "hf static": hf_generate("static")}
    report = {"floor": floor, "sizes": {}}
    for size in sizes:
        pipe = build(SIZES[size], args.dtype)
        prompt = pipe.model.sequences.text_to_audio("a dog barks while rain falls")
        acoustic = pipe.model.backbone.special.acoustic_size
        params = sum(p.numel() for p in pipe.model.backbone.parameters())
        nbytes = floor_bytes(pipe, acoustic)
        floor_s = nbytes / (floor["read_GBps"] * 1e9)
        tokens = {name: fn(pipe, prompt, 8) for name, fn in variants.items()}
        same = len({tuple(t) for t in tokens.values()}) == 1
        start_load = load()
        timings = {name: seconds_per_token(fn, pipe, prompt, args.tokens, args.repeats)
                   for name, fn in variants.items()}
        print(f"\n{size}: {params / 1e6:.1f} M parameters, {args.dtype}, K = {acoustic}, {args.threads} threads, "
              f"{args.tokens} tokens, median of {args.repeats}, load {start_load} -> {load()}; "
              f"floor {nbytes / 1e6:.1f} MB/token -> {floor_s * 1e3:.3f} ms/token; same first tokens: {same}")
        for name, seconds in timings.items():
            print(f"  {name:11s} {seconds * 1e3:8.2f} ms/token  {seconds / floor_s:7.1f}x floor  "
                  f"{seconds / timings['project']:5.2f}x project")
        report["sizes"][size] = {"params": params, "floor_bytes": nbytes, "floor_s": floor_s, "same_tokens": same,
                                 "seconds_per_token": timings, "load_after": load()}
        del pipe
    print(json.dumps(report))


if __name__ == "__main__":
    main()
