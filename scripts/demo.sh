#!/usr/bin/env bash
# The demo: build the offline tiny model, write the bundled sample data, train on it (full
# fine-tune, then a LoRA adapter on top), and show that the loss went down and where the result is.
set -euo pipefail
DEMO=${DEMO_DIR:-demo}
STEPS=${DEMO_STEPS:-60}
rm -rf "$DEMO"
mkdir -p "$DEMO"

echo "== 1. tiny offline model (tokenizer trained locally, random Qwen3-style weights)"
trainerd tiny-model "$DEMO/tiny-model"

echo "== 2. bundled sample data"
trainerd sample-data "$DEMO/sample.jsonl" --count 400
trainerd data check "$DEMO/sample.jsonl" --model "$DEMO/tiny-model"

echo "== 3. full fine-tune, $STEPS steps"
trainerd train --dataset "$DEMO/sample.jsonl" --model "$DEMO/tiny-model" --output "$DEMO/full" \
  --max-steps "$STEPS" --set hyperparams.learning_rate=3e-3 --set hyperparams.warmup_steps=5 \
  --set hyperparams.save_steps=20

echo "== 4. LoRA adapter on the fine-tuned model, $STEPS steps"
trainerd train --dataset "$DEMO/sample.jsonl" --model "$DEMO/full" --output "$DEMO/lora" --lora \
  --max-steps "$STEPS" --set hyperparams.learning_rate=3e-2 --set hyperparams.save_steps=20

echo "== 5. results"
trainerd model inspect "$DEMO/full"
trainerd model inspect "$DEMO/lora"
python - "$DEMO" <<'PY'
import json, sys
for name in ("full", "lora"):
    r = json.load(open(f"{sys.argv[1]}/{name}/result.json"))
    print(f"{name:5s} success={r['success']} steps={r['steps']} loss {r['initial_loss']:.3f} -> {r['final_loss']:.3f} "
          f"tokens/s={r['tokens_per_second']:.0f} trainable-token ratio={r['trainable_token_ratio']}  -> {r['output_dir']}")
PY
