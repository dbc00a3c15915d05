#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl" from scripts/metaworld-wheels.sh, ".gl" and the
# demonstrations DEMOS, a run store of `thalamus record --expert --tasks mw-easy --episodes 50`):
# train one diffusion policy per mw-easy task with `thalamus train policy --device cuda` (the five side
# by side on the one GPU), then `thalamus bench policy --device cuda` on them. Usage:
#   scripts/device-policy.sh runs/mw-easy-50 [TRAIN FLAGS...]
# $OUT gets TASK.pt per task, train.json (each task's `train policy --json`) and bench-cuda.json.
set -uo pipefail
DEMOS=$1
shift
source scripts/device-setup.sh
thalamus() { python3 -m launch.cli "$@"; }
TASKS="reach-v3 button-press-topdown-v3 drawer-close-v3 door-lock-v3 handle-press-v3"
start=$(date +%s)
for task in $TASKS; do
  thalamus train policy --data "$DEMOS" --task "$task" --device cuda --out "$OUT/$task.pt" --json "$@" \
    > "/tmp/$task.json" 2> "/tmp/$task.err" &
done
wait
echo "trained 5 tasks side by side in $(( $(date +%s) - start )) s"
python3 - "$OUT/train.json" $TASKS <<'PY'
import json, sys
out, tasks = sys.argv[1], sys.argv[2:]
res = {}
for t in tasks:
    try:
        res[t] = json.loads(open(f"/tmp/{t}.json").read().strip().splitlines()[-1])
    except Exception as exc:
        res[t] = {"error": str(exc), "stderr": open(f"/tmp/{t}.err").read()[-2000:]}
    print(t, {k: res[t].get(k) for k in ("train_s", "final_train_loss", "heldout_loss", "rollout_success", "error")})
json.dump(res, open(out, "w"), indent=1)
PY
thalamus bench policy --checkpoints "$OUT" --device cuda --json "$OUT/bench-cuda.json" 2>&1 | grep -v "EGL\|^Meta-World"
