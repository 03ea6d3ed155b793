#!/usr/bin/env bash
# launchers.sh CHECKOUT OUT LAYOUTS: every evaluation launcher of CHECKOUT (its own eval/ and eval_general_dataset/
# scripts and src/), on the default data and on the release's files (samples and whole files, placeholder images in
# LAYOUTS), each into OUT/<run>; then, against a fake judge endpoint, the launchers that judge. One python (this
# tree's .venv), one tiny-model cache, one thread per process.
set -uo pipefail
ROOT=$1 OUT=$2 LAYOUTS=$3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
export PY="$REPO/.venv/bin/python" PYTHONPATH="$ROOT/src" GROUND_R1_CACHE="${GROUND_R1_CACHE:-$REPO/.cache}"
export OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 NUM_GPUS=1
unset OPENAI_API_KEY OPENAI_BASE_URL OPENAI_MODEL
mkdir -p "$OUT"
run() {  # run NAME [VAR=value ...] LAUNCHER [ARGS...]
  local name="$1"; shift
  env OUTPUT_DIR="$OUT/$name" "$@" >"$OUT/$name.log" 2>&1
  echo "$name rc=$?" | tee -a "$OUT/rc.txt"
}
E="$ROOT/eval"; G="$ROOT/eval_general_dataset"
# 1. the default data (nothing set)
run d_baseline bash "$E/multi_baseline.sh"
run d_ground_r1 bash "$E/multi_Ground_R1.sh"
run d_ground_sft bash "$E/multi_Ground_SFT.sh"
run d_refcoco bash "$E/multi_RefCOCO.sh"
run d_gen_r1 bash "$G/multi_Ground_R1.sh"
run d_gen_baseline bash "$G/multi_SFT.sh"
run d_gen_sft PROTOCOL=ground_sft bash "$G/multi_SFT.sh"
# 2. the release's files: samples (release-format) and whole files (release-full), placeholder images
for kind in samples full; do
  L="$LAYOUTS/$kind"; R="$LAYOUTS/${kind}_files"; VN=2; GN=0
  if [ $kind = full ]; then VN=1; GN=2; fi
  V=(DATA_PATH=$R/visualCoT_eval_subset150_choice.jsonl IMAGE_ROOT=$L/Visual-CoT IMAGE_PATH_PREFIX=/home/meng/data/Visual-CoT)
  run ${kind}_baseline "${V[@]}" bash "$E/multi_baseline.sh" --max_items $VN
  run ${kind}_baseline_grpo "${V[@]}" PROMPT_CLASS=basic_grpo bash "$E/multi_baseline.sh" --max_items $VN
  run ${kind}_ground_r1 "${V[@]}" bash "$E/multi_Ground_R1.sh" --max_items $VN
  run ${kind}_ground_sft "${V[@]}" bash "$E/multi_Ground_SFT.sh" --max_items $VN
  run ${kind}_refcoco DATA_PATH=$R/RefCOCO_eval_subset_1000.jsonl IMAGE_ROOT=$L/refcoco bash "$E/multi_RefCOCO.sh" --max_items 1
  GA=(DATASET_ROOT=$R IMAGE_ROOT=$L/LVLM_benchmarks)
  run ${kind}_gen_r1 "${GA[@]}" bash "$G/multi_Ground_R1.sh" --max_items $GN
  run ${kind}_gen_baseline "${GA[@]}" bash "$G/multi_SFT.sh" --max_items $GN
  run ${kind}_gen_sft "${GA[@]}" PROTOCOL=ground_sft bash "$G/multi_SFT.sh" --max_items $GN
  run ${kind}_gen_ours_baseline DATASET_ROOT=$L/ours bash "$G/multi_SFT.sh" --max_items $GN
done
# 3. the judged launchers against a fake OpenAI-compatible endpoint (every reply "0.5 score: 0.5")
PORT=$((20000 + RANDOM % 10000))
"$PY" "$HERE/fake_judge.py" "$PORT" & SERVER=$!
sleep 1
export OPENAI_BASE_URL=http://127.0.0.1:$PORT/v1 OPENAI_API_KEY=k OPENAI_MODEL=fake-judge
run j_baseline bash "$E/multi_baseline.sh"
run j_ground_r1 bash "$E/multi_Ground_R1.sh"
run j_gen_baseline bash "$G/multi_SFT.sh"
run j_gen_r1 bash "$G/multi_Ground_R1.sh"
kill $SERVER
