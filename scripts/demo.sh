#!/usr/bin/env bash
# The demo: the real thing on the built-in tiny model and the bundled sample data.
#   1. a one-off job with `trainerd train` (the engine), loss going down;
#   2. the daemon: a base dir, three files in the inbox (one high priority, one deliberately invalid),
#      `trainerd daemon --exit-when-idle`, then status, history and a verified snapshot.
set -euo pipefail
DEMO=${DEMO_DIR:-demo}
STEPS=${DEMO_STEPS:-60}
rm -rf "$DEMO"
mkdir -p "$DEMO"

echo "== 1. one-off training job: tiny offline model + bundled sample data, $STEPS steps"
trainerd tiny-model "$DEMO/tiny-model"
trainerd sample-data "$DEMO/sample.jsonl" --count 400
trainerd data check "$DEMO/sample.jsonl" --model "$DEMO/tiny-model"
trainerd train --dataset "$DEMO/sample.jsonl" --model "$DEMO/tiny-model" --output "$DEMO/train-run" \
  --max-steps "$STEPS" --set hyperparams.learning_rate=3e-3 --set hyperparams.warmup_steps=5 \
  --set hyperparams.save_steps=20
trainerd model inspect "$DEMO/train-run"

echo
echo "== 2. the daemon: continuous training from an inbox"
BASE="$DEMO/base"
trainerd init "$BASE" --model tiny --set hyperparams.learning_rate=3e-3 --set hyperparams.num_epochs=3 \
  --set daemon.poll_interval_seconds=0.5 --set daemon.stable_polls=1
trainerd sample-data "$DEMO/greetings.jsonl" --count 120 --seed 1
trainerd sample-data "$DEMO/urgent.jsonl" --count 120 --seed 2
trainerd sample-data "$DEMO/broken.jsonl" --invalid
trainerd submit "$DEMO/greetings.jsonl" --base-dir "$BASE"
trainerd submit "$DEMO/broken.jsonl" --base-dir "$BASE"
trainerd submit "$DEMO/urgent.jsonl" --base-dir "$BASE" --priority high
trainerd daemon --base-dir "$BASE" --exit-when-idle

echo
echo "== 3. what happened"
trainerd status --base-dir "$BASE"
echo
trainerd history --base-dir "$BASE"
echo
echo "rejected file and its reasons:"
python - "$BASE" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1], "queue", "failed").glob("*.error.json")):
    error = json.loads(path.read_text())
    print(f"  {error['original_name']}: {error['reason'].splitlines()[0][:160]}")
    for problem in error.get("problems", [])[:5]:
        print(f"    line {problem.get('line')}: {problem.get('problem')} — fix: {problem.get('fix')}")
PY
trainerd snapshot create --base-dir "$BASE"
trainerd snapshot verify --base-dir "$BASE"
python - "$DEMO" <<'PY'
import json, sys
r = json.load(open(f"{sys.argv[1]}/train-run/result.json"))
print(f"\none-off job: {r['steps']} steps, loss {r['initial_loss']:.3f} -> {r['final_loss']:.3f}, "
      f"{r['tokens_per_second']:.0f} tokens/s -> {r['output_dir']}")
PY
echo "daemon base dir: $BASE (current model: $(readlink "$BASE/current_model"))"
