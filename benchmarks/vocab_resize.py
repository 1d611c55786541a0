"""Cost of adding the acoustic vocabulary (K + 4 rows) to a Gemma-2B-sized embedding.

Compares transformers' ``resize_token_embeddings(mean_resizing=True)`` (what the backbone
used to call) with :func:`c3llm.plugins.backbones.vocabulary.grow_token_rows` (what it calls
now), on a random Gemma at Gemma-2B's embedding dims (256 000 x 2 048, bf16, tied head). Only
the embedding matters here, so the model has ``--layers`` transformer layers (default 1).

    python benchmarks/vocab_resize.py [--layers 1] [--acoustic 1024] [--skip-transformers]

Peak RSS is the process's (``ru_maxrss``), so run one variant per process to read it per variant.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
from transformers import GemmaConfig, GemmaForCausalLM

from c3llm.plugins.backbones.vocabulary import grow_token_rows


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def build(layers: int) -> GemmaForCausalLM:
    config = GemmaConfig(vocab_size=256_000, hidden_size=2048, intermediate_size=16_384, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=1, head_dim=256)
    torch.set_default_dtype(torch.bfloat16)
    try:
        return GemmaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--acoustic", type=int, default=1024, help="K (EnCodec 24 kHz: 1024)")
    parser.add_argument("--variant", choices=("c3llm", "transformers", "both"), default="both")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build(args.layers)
    rows = 256_000 + args.acoustic + 4
    print(f"threads {torch.get_num_threads()}; after building: peak RSS {peak_rss_gib():.2f} GiB")
    results = []
    if args.variant in ("c3llm", "both"):
        started = time.perf_counter()
        grow_token_rows(model, rows)
        results.append(("c3llm grow_token_rows", time.perf_counter() - started, peak_rss_gib()))
    if args.variant in ("transformers", "both"):
        model = build(args.layers) if args.variant == "both" else model
        started = time.perf_counter()
        model.resize_token_embeddings(rows, mean_resizing=True)
        results.append(("transformers resize_token_embeddings(mean_resizing=True)",
                        time.perf_counter() - started, peak_rss_gib()))
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    print("| variant | seconds | peak RSS so far (GiB) |\n|---|---|---|")
    for name, seconds, rss in results:
        print(f"| {name} | {seconds:.2f} | {rss:.2f} |")


if __name__ == "__main__":
    main()
