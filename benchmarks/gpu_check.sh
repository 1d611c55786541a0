#!/usr/bin/env bash
# One prepared check for a CUDA machine (issue 17): the GPU's memory-bandwidth floor, AR decode
# at Gemma-2B dims in bf16 against that floor, and the main job's quick form on the GPU.
# Not yet run by the project (no GPU has been lent to it); run it from the repository root:
#   bash benchmarks/gpu_check.sh > gpu_check.log 2>&1
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
# 1. streaming-copy bandwidth of the device (the floor a decode step is bound by)
"$PY" - <<'PYEOF'
import time, torch
assert torch.cuda.is_available(), "no CUDA device visible to torch"
x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")  # 1 GiB
y = torch.empty_like(x)
for _ in range(3):
    y.copy_(x)
torch.cuda.synchronize()
runs = []
for _ in range(10):
    t = time.perf_counter(); y.copy_(x); torch.cuda.synchronize(); runs.append(time.perf_counter() - t)
runs.sort()
print(f"device copy: {2 * x.numel() / runs[len(runs) // 2] / 1e9:.0f} GB/s (read + write, median of 10)")
PYEOF
# 2. decode at Gemma-2B dims, bf16, merged + sliced head (prints GB/s it reaches; compare with 1.)
"$PY" benchmarks/backbone_decode_speed.py --gemma-2b-dims --device cuda --dtype bfloat16 --merged-only \
    --tokens 64 --repeats 5
# 3. the main job, quick form, on the GPU
.venv/bin/c3llm-run demo --quick --out "$(mktemp -d)" --set run.device=cuda
