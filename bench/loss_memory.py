"""Peak memory and time of one training step (forward + backward) with the chunked loss off and on.

Not a test. A random-init model with Qwen3's vocabulary (151,936 tokens) and a small body (hidden 256,
2 layers) runs micro-batches of 4 x 512 tokens, every position trainable (the worst case), through
`CausalLMWithChunkedLoss` with `chunk_tokens` 0 (one full-logits pass) and chunked settings. Each
setting runs in a fresh child process; on the CPU the peak is the growth of the process's resident
set during the first step (VmHWM after resetting it through /proc/self/clear_refs, else ru_maxrss),
on CUDA the growth of torch's peak allocated memory. Prints a markdown table and the ratios to "off".

    python bench/loss_memory.py [--chunks 0,1024,256] [--rows 4] [--tokens 512] [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

QWEN3_VOCAB = 151_936
BODY = "hidden 256, 2 layers, 4 heads (2 kv, head_dim 64), intermediate 768, tied embeddings"
MIB = 2**20


def _status_kib(field: str) -> int | None:
    """A `VmRSS`/`VmHWM` value of this process in KiB, where /proc exists."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One setting: build the model, measure the first step's peak, then time `steps` steps."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from trainerd.engine.loss import CausalLMWithChunkedLoss

    torch.manual_seed(0)
    device = torch.device(args.device)
    config = Qwen3Config(vocab_size=QWEN3_VOCAB, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=64, intermediate_size=768, tie_word_embeddings=True,
                         use_cache=False)  # fmt: skip
    model = Qwen3ForCausalLM(config)
    cast(torch.nn.Module, model).to(device)  # transformers types `.to` as taking a model
    model.train()
    wrapper = CausalLMWithChunkedLoss(model, chunk_tokens=args.chunk)
    input_ids = torch.randint(0, QWEN3_VOCAB, (args.rows, args.tokens), device=device)
    targets = torch.cat([input_ids[:, 1:], torch.full((args.rows, 1), -100, device=device)], dim=1)

    def step() -> float:
        loss_sum, count = wrapper(input_ids, shift_labels=targets)
        (loss_sum / count).backward()
        model.zero_grad(set_to_none=True)
        return float(loss_sum.detach() / count)

    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        loss = step()
        torch.cuda.synchronize()
        peak_mib, how = (torch.cuda.max_memory_allocated() - before) / MIB, "torch.cuda.max_memory_allocated"
    else:
        rss_before = _status_kib("VmRSS")
        if rss_before is not None and _reset_peak_rss():
            loss = step()
            peak_mib, how = ((_status_kib("VmHWM") or 0) - rss_before) / 1024, "VmHWM - VmRSS"
        else:
            maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            loss = step()
            scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
            growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
            peak_mib, how = growth * scale / MIB, "ru_maxrss delta"
    times = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return {
        "chunk": args.chunk,
        "decision": wrapper.decision,
        "attention": model.config._attn_implementation,
        "peak_mib": round(peak_mib, 1),
        "how": how,
        "seconds_per_step": round(sorted(times)[len(times) // 2], 3),
        "loss": round(loss, 5),
    }


def run_setting(args: argparse.Namespace, chunk: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--chunk", str(chunk), "--rows", str(args.rows),
               "--tokens", str(args.tokens), "--steps", str(args.steps), "--device", args.device]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"chunk": chunk, "error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", default="0,1024,256", help="comma-separated chunk_tokens settings; 0 = off")
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the measured one")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return 0

    positions = args.rows * (args.tokens - 1)
    print(f"model: Qwen3, vocab {QWEN3_VOCAB:,}, {BODY}; micro-batch {args.rows} x {args.tokens} tokens "
          f"({positions} trainable positions); device {args.device}; one fresh process per setting\n")  # fmt: skip
    print("| loss_chunk_tokens | peak growth of one step (MiB) | s/step | loss | path |")
    print("|---|---|---|---|---|")
    results = [run_setting(args, int(chunk)) for chunk in args.chunks.split(",")]
    for row in results:
        if "error" in row:
            print(f"| {row['chunk']} | failed: {row['error']} | | | |")
            continue
        print(f"| {row['chunk'] or 'off'} | {row['peak_mib']:.0f} | {row['seconds_per_step']:.2f} | {row['loss']} | "
              f"{row['decision']} |")  # fmt: skip
    base = next((r for r in results if r.get("chunk") == 0 and "error" not in r), None)
    if base is not None:
        print(f"\npeak measured as {base['how']}; ratios against off:")
        for row in results:
            if row is base or "error" in row:
                continue
            memory = base["peak_mib"] / max(row["peak_mib"], 1e-9)
            speed = row["seconds_per_step"] / max(base["seconds_per_step"], 1e-9)
            print(f"  chunk {row['chunk']}: {memory:.1f}x less peak memory, {speed:.2f}x the time per step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
