#!/usr/bin/env bash
# compare.sh BEFORE_OUT BEFORE_CHECKOUT AFTER_OUT AFTER_CHECKOUT: every file the two runs wrote, run paths stripped
# (output folder, checkout, the tiny-model cache), logs left out; JSONL files the judge writes concurrently compared
# as sets of lines. Prints the file counts, then each file that differs (diff -rq).
set -uo pipefail
B=$1 BR=$2 A=$3 AR=$4
CACHE="${GROUND_R1_CACHE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.cache}"
W=$(mktemp -d)
for side in before after; do
  if [ $side = before ]; then SRC=$B; ROOT=$BR; else SRC=$A; ROOT=$AR; fi
  mkdir -p "$W/$side"
  (cd "$SRC" && find . -type f ! -name '*.log' ! -name rc.txt -print0 | xargs -0 -I{} cp --parents {} "$W/$side/")
  find "$W/$side" -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name '*.csv' \) -print0 |
    xargs -0 sed -i "s#$CACHE#CACHE#g; s#$SRC#OUT#g; s#$ROOT#ROOT#g"
  find "$W/$side" -type f \( -name 'judgments.jsonl' -o -name 'mmvet_grades.jsonl' -o -name 'judge_cache.jsonl' \) \
    -exec sort -o {} {} \;
done
echo "files: before $(find "$W/before" -type f | wc -l), after $(find "$W/after" -type f | wc -l)"
diff -rq "$W/before" "$W/after" | sed "s#$W/##g"
echo "stripped copies: $W"
