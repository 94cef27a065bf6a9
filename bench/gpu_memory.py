"""Peak memory and throughput of the engine on a Qwen3-0.6B-shaped model (for a GPU machine).

Not a test. A random-init model with Qwen3-0.6B's shape (hidden 1024, 28 layers, 16 heads, 8 kv
heads, head_dim 128, intermediate 3072, vocab 151,936) trains a few steps through `run_job` on
2048-token rows, batch 4 and 8, with and without gradient checkpointing, precision auto (bf16 on a
bf16-capable GPU). Prints one markdown row per run: peak GPU memory, tokens/s, attention
implementation chosen, batch layout. The seed's bar: batch >= 4 at 2048 tokens fits a 24 GB card.

    python bench/gpu_memory.py [--steps 6] [--out results.md]
    python bench/gpu_memory.py --smoke   # tiny shape on the CPU: checks the script itself
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from trainerd.config.load import config_to_dict
from trainerd.config.schema import TrainerdConfig
from trainerd.engine.engine import run_job
from trainerd.engine.spec import JobSpec
from trainerd.models.tiny import tiny_chat_tokenizer, tiny_corpus

QWEN3_06B = {
    "hidden_size": 1024,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
    "vocab_size": 151_936,
}
SMOKE = {**QWEN3_06B, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
         "head_dim": 16, "intermediate_size": 128, "vocab_size": 4096}  # fmt: skip


def build_model(out: Path, shape: dict[str, int]) -> Path:
    tokenizer = tiny_chat_tokenizer()
    config = Qwen3Config(**shape, max_position_embeddings=4096, tie_word_embeddings=True,
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"))  # fmt: skip
    Qwen3ForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def long_rows(path: Path, rows: int, tokens: int) -> Path:
    """Chats of about `tokens` tokens each (a short question, a long answer)."""
    words = " ".join(tiny_corpus(3000)).split()
    lines = []
    for i in range(rows):
        answer = " ".join(words[(i * 97) % 1000 :][: int(tokens * 0.8)])
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"Tell story {i}."},
                                              {"role": "assistant", "content": answer}]}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def one_run(model: Path, data: Path, work: Path, batch: int, checkpointing: bool, steps: int, length: int) -> dict:
    cfg = TrainerdConfig()
    cfg.hyperparams.batch_size = batch
    cfg.hyperparams.max_steps = steps
    cfg.hyperparams.max_length = length
    cfg.hyperparams.use_gradient_checkpointing = checkpointing
    cfg.hyperparams.save_steps = 10_000
    cfg.hyperparams.learning_rate = 1e-5
    out = work / f"b{batch}-gc{int(checkpointing)}"
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = run_job(JobSpec(datasets=[str(data)], model=str(model), output_dir=str(out), config=config_to_dict(cfg)),
                     log_to_console=False, show_progress_bar=False)  # fmt: skip
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    attention = next((d for d in result.decisions if d.startswith("attention:")), "?")
    layout = next((d for d in result.decisions if d.startswith("batches:")), "?")
    return {"batch": batch, "checkpointing": checkpointing, "ok": result.success, "error": result.error,
            "peak_gib": round(peak, 2), "tokens_per_second": result.tokens_per_second,
            "attention": attention, "layout": layout, "wall_s": round(time.perf_counter() - started, 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--smoke", action="store_true", help="tiny shape, CPU, short rows")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    shape, length = (SMOKE, 128) if args.smoke else (QWEN3_06B, args.length)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    header = [f"device: {device}; torch {torch.__version__}; shape {shape}; rows of ~{length} tokens",
              "", "| batch | grad. checkpointing | peak GPU memory (GiB) | tokens/s | attention | layout |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    print("\n".join(header), flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_model(work / "model", shape)
        data = long_rows(work / "rows.jsonl", 8 * args.steps, length)
        for batch in (4, 8):
            for checkpointing in (True, False):
                run = one_run(model, data, work, batch, checkpointing, args.steps, length)
                rows.append(run)
                row = (f"| {batch} | {'on' if checkpointing else 'off'} | {run['peak_gib']} | "
                       f"{run['tokens_per_second']} | {run['attention']} | {run['layout']} |")  # fmt: skip
                if not run["ok"]:
                    row += f" failed: {str(run['error'])[:200]}"
                print(row, flush=True)
                header.append(row)
    if args.out:
        args.out.write_text("\n".join(header) + "\n\n" + json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
