#!/bin/bash
# Run the searches of one `dnnjpeg family` as parallel processes into one workdir: one process per
# stage (cv, final), method and group of member qualities. Each search has its own journal
# (cv/METHOD-qQ-foldI.journal, final/METHOD-qQ.journal), so the processes never touch the same file,
# and the plain `dnnjpeg family` command with the same options and all qualities afterwards only reads
# the journals and writes the family file. Made for a many-core GPU machine, where one process
# leaves most of the cores and the GPU idle; a process stopped by SECONDS resumes on the next run.
#
# Usage: examples/family_parallel.sh MODEL DATA WORKDIR BUDGET SECONDS
# Environment (optional):
#   METHODS="shaped sorted"             methods, one process group each
#   QUALITY_GROUPS="30,40,50 60,75,90"  member qualities, one process per group
#   WORKERS=2                           JPEG threads per process
#   EXTRA="--limit 12"                  more options for every process (the family's own, e.g. --space)
#   PYTHON=python3
# Example (the efficientnet_lite2 family, searches only; then assemble with `dnnjpeg family ...`):
#   examples/family_parallel.sh efficientnet_lite2 .device/pack /tmp/lite2.work 100 3600
set -u
if [ $# -ne 5 ]; then
  echo "usage: $0 MODEL DATA WORKDIR BUDGET SECONDS" >&2
  exit 2
fi
MODEL=$1 DATA=$2 WORKDIR=$3 BUDGET=$4 SECONDS_EACH=$5
METHODS=${METHODS:-shaped sorted}
QUALITY_GROUPS=${QUALITY_GROUPS:-30,40,50 60,75,90}
WORKERS=${WORKERS:-2}
PYTHON=${PYTHON:-python3}
mkdir -p "$WORKDIR/logs" || exit 2
common=(--model "$MODEL" --data "$DATA" --name "$MODEL" --k 2 --fold-seed 0 --budget "$BUDGET" --signal kl
        --seed 0 --space separate+subsampling --compare-encoders none --workdir "$WORKDIR" --out "$WORKDIR/unused.json"
        --jpeg-threads "$WORKERS" --progress)
read -r -a extra <<< "${EXTRA:-}"
pids=()
for stage in cv final; do
  for method in $METHODS; do
    for group in $QUALITY_GROUPS; do
      log="$WORKDIR/logs/$stage-$method-${group//,/_}.log"
      timeout "$SECONDS_EACH" "$PYTHON" -m dnnjpeg family "${common[@]}" "${extra[@]}" \
        --methods "$method" --qualities "$group" --stage "$stage" > "$log" 2>&1 &
      pids+=($!)
    done
  done
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid"
  rc=$?
  # 124: stopped by the time limit; the journal resumes on the next run
  if [ $rc -ne 0 ] && [ $rc -ne 124 ]; then status=1; fi
done
for log in "$WORKDIR"/logs/*.log; do
  echo "== $log"
  tail -n 2 "$log"
done
exit $status
