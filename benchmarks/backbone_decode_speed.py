"""Seconds per generated acoustic token: peft-wrapped vs merged vs merged + sliced head.

A random-init backbone (plugin ``gemma`` or ``llama``) with the acoustic vocabulary of EnCodec
(K = 1024) and a non-zero LoRA adapter decodes N tokens greedily with the KV cache, restricted
to the acoustic range, three ways:

1. ``peft``: the LoRA/trainable-tokens wrapped model, full head, non-acoustic logits masked;
2. ``merged``: after ``prepare_for_inference()`` (LoRA merged), full head, masked;
3. ``merged+sliced``: merged, head computed for the K acoustic rows only.

The default size is a mid-size model that runs in well under two minutes on a 2-core CPU;
``--gemma-2b-dims`` uses Gemma-2B's dims (D 2048, 18 layers, 8 heads, 1 KV head, MLP 16384,
256000 vocabulary rows; ~10 GB of float32 weights). Prints the median of several runs.

    python benchmarks/backbone_decode_speed.py [--plugin llama] [--tokens 20] [--gemma-2b-dims]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import torch

from c3llm.plugins.backbones.gemma import GemmaBackbone, GemmaConfig
from c3llm.plugins.backbones.llama import LlamaBackbone, LlamaConfig

PLUGINS = {"gemma": (GemmaBackbone, GemmaConfig), "llama": (LlamaBackbone, LlamaConfig)}
GEMMA_2B = {"hidden_size": 2048, "num_layers": 18, "num_heads": 8, "num_kv_heads": 1,
            "intermediate_size": 16384, "vocab_rows": 256000}
MID_SIZE = {"hidden_size": 512, "num_layers": 6, "num_heads": 8, "num_kv_heads": 1,
            "intermediate_size": 2048, "vocab_rows": 32000}


@torch.inference_mode()
def decode(backbone, prompt: torch.Tensor, steps: int, *, sliced: bool) -> tuple[float, list[int]]:
    """Greedy acoustic decoding of ``steps`` tokens; returns (seconds per token, tokens)."""
    sp = backbone.special
    acoustic = slice(sp.acoustic_offset, sp.acoustic_offset + sp.acoustic_size)
    mask = torch.ones_like(prompt)
    out = backbone(backbone.embed(prompt), mask, use_cache=True)
    hidden, tokens = out.hidden[:, -1:], []
    start = time.perf_counter()
    for _ in range(steps):
        if sliced:
            token = backbone.logits(hidden, rows=acoustic).argmax(-1) + sp.acoustic_offset  # (1, 1)
        else:
            logits = backbone.logits(hidden)  # (1, 1, V)
            logits[..., : acoustic.start] = float("-inf")
            logits[..., acoustic.stop :] = float("-inf")
            token = logits.argmax(-1)
        tokens.append(int(token))
        mask = torch.cat([mask, torch.ones_like(token)], 1)
        out = backbone(backbone.embed(token), mask, past=out.past, use_cache=True)
        hidden = out.hidden
    return (time.perf_counter() - start) / steps, tokens


def median_decode(backbone, prompt, steps: int, repeats: int, *, sliced: bool) -> tuple[float, list[int]]:
    decode(backbone, prompt, 2, sliced=sliced)  # warm-up
    runs = [decode(backbone, prompt, steps, sliced=sliced) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), runs[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plugin", choices=sorted(PLUGINS), default="gemma")
    parser.add_argument("--gemma-2b-dims", action="store_true", help="Gemma-2B's dims instead of the mid size")
    parser.add_argument("--tokens", type=int, default=16, help="tokens decoded per run")
    parser.add_argument("--prompt", type=int, default=32, help="prompt length")
    parser.add_argument("--acoustic", type=int, default=1024, help="acoustic vocabulary (codebook size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="weight dtype")
    parser.add_argument("--merged-only", action="store_true", help="skip the (slow) peft-wrapped variant")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    dims = GEMMA_2B if args.gemma_2b_dims else MID_SIZE
    component_cls, config_cls = PLUGINS[args.plugin]
    backbone = component_cls(config_cls(mode="lora", lora_dropout=0.0, dtype=args.dtype, **dims))
    backbone.load_pretrained()
    backbone.add_acoustic_vocabulary(args.acoustic)
    with torch.no_grad():  # a trained-looking adapter, so merging changes the weights
        for p in backbone.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.02)
    backbone.eval()
    backbone.to(args.device)
    params = sum(p.numel() for p in backbone.parameters())
    prompt = torch.randint(4, 200, (1, args.prompt), device=args.device)

    results = {}
    wrapped = None
    if not args.merged_only:
        results["peft"], wrapped = median_decode(backbone, prompt, args.tokens, args.repeats, sliced=False)
    backbone.prepare_for_inference()
    results["merged"], merged = median_decode(backbone, prompt, args.tokens, args.repeats, sliced=False)
    results["merged+sliced"], sliced = median_decode(backbone, prompt, args.tokens, args.repeats, sliced=True)
    same = merged == sliced and (wrapped is None or wrapped == merged)
    # the memory floor: bytes a token must read (all weights, with the head sliced to K rows)
    head_rows = backbone._hf().get_output_embeddings().weight.shape[0]
    bytes_per_param = torch.finfo(getattr(torch, args.dtype)).bits // 8
    floor_bytes = (params - (head_rows - args.acoustic) * dims["hidden_size"]) * bytes_per_param

    print(f"{args.plugin} {dims} ({params / 1e6:.0f}M parameters, {args.dtype} on {args.device}), K={args.acoustic}, "
          f"{args.tokens} tokens after a {args.prompt}-token prompt, {args.threads} threads, "
          f"median of {args.repeats}; identical tokens across variants: {same}")
    base = results.get("peft", results["merged"])
    for name, seconds in results.items():
        print(f"  {name:14s} {seconds:.4f} s/token  ({base / seconds:.1f}x vs {'peft' if 'peft' in results else 'merged'}; "
              f"reads ~{floor_bytes / 1e9:.2f} GB/token -> {floor_bytes / seconds / 1e9:.1f} GB/s)")
    print(json.dumps({"plugin": args.plugin, "dims": dims, "dtype": args.dtype, "device": args.device,
                      "seconds_per_token": results, "bytes_per_token_floor": floor_bytes, "same_tokens": same}))


if __name__ == "__main__":
    main()
