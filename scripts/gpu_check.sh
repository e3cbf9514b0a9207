#!/usr/bin/env bash
# Does the kit work on this CUDA host? On a machine with an NVIDIA GPU, its driver and a CUDA build of
# torch (any version the kit supports), this:
#   1. checks that torch sees the GPU (one line and exit 2 if not);
#   2. builds mmcv 2.1.0 against that torch with CUDA ops for the detected GPU's architecture only,
#      on all cores (once; the wheel is kept in the work folder), in a venv over that torch;
#   3. installs the kit there (non-editable) and checks an mmcv CUDA op on a CUDA tensor;
#   4. runs `smoke` and `longtail_synth --seeds 0` with --gpus 1, without and with --amp;
#   5. prints, per run: seconds per iteration (median of MMEngine's logged `time`), peak GPU memory
#      (MMEngine's logged `memory`, MB), the device the result files record, and the mIoU rows;
#      the same as JSON in WORK/gpu_check.json.
#
#   scripts/gpu_check.sh [--work DIR] [--wheels DIR] [--quick]
#     --work DIR    where the venv, data, runs and the report go (default /tmp/npe-gpu-check)
#     --wheels DIR  install without network: the mmcv sdist and the pure-Python wheels are taken from
#                   DIR only (pip --no-index --find-links DIR)
#     --quick       smoke only (both AMP settings), no longtail_synth
# Sized to finish in about 10 minutes on a 16-core host (most of it the mmcv CUDA build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK=/tmp/npe-gpu-check
WHEELS=""
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --work) WORK="${2:?--work needs a folder}"; shift 2 ;;
    --wheels) WHEELS="$(cd "${2:?--wheels needs a folder}" && pwd)"; shift 2 ;;
    --quick) QUICK=1; shift ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-python3}"
say() { echo "gpu_check: $*" >&2; }
T0=$(date +%s)

# ------------------------------------------------------------------ 1. the GPU as torch sees it
if ! ARCH="$("$PYTHON" -c '
import sys
try:
    import torch
except ImportError:
    sys.exit("no torch installed for this Python: install a CUDA build of torch first")
if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA GPU (CUDA build: {torch.version.cuda}): check the "
             "NVIDIA driver with nvidia-smi, and that torch is a CUDA build")
major, minor = torch.cuda.get_device_capability(0)
print(f"{major}.{minor}")
' 2>&1)"; then
  say "error: ${ARCH##*$'\n'}"
  exit 2
fi
say "GPU: $("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0), "| torch", torch.__version__, "| CUDA", torch.version.cuda)') (sm ${ARCH})"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2 || true

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
PIP_SOURCE=()
[[ -n "$WHEELS" ]] && PIP_SOURCE=(--no-index --find-links "$WHEELS")
VENV="$WORK/venv"
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv --system-site-packages "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# ------------------------------------------------------------------ 2. mmcv with CUDA ops for this GPU
MMCV_WHEELS="$WORK/mmcv-wheel"
if ! ls "$MMCV_WHEELS"/mmcv-2.1.0-*.whl >/dev/null 2>&1; then
  say "building mmcv 2.1.0 with CUDA ops for sm ${ARCH} on $(nproc) cores"
  "${PIP[@]}" install "${PIP_SOURCE[@]}" "setuptools>=77,<81" wheel ninja numpy
  t=$(date +%s)
  TORCH_CUDA_ARCH_LIST="$ARCH" MMCV_WITH_OPS=1 FORCE_CUDA=1 MAX_JOBS="$(nproc)" \
    "${PIP[@]}" wheel "${PIP_SOURCE[@]}" --no-build-isolation --no-deps "mmcv==2.1.0" -w "$MMCV_WHEELS"
  say "mmcv built in $(( $(date +%s) - t )) s"
fi

# ------------------------------------------------------------------ 3. the kit, and a CUDA op
"${PIP[@]}" install --no-deps "$MMCV_WHEELS"/mmcv-2.1.0-*.whl
"${PIP[@]}" install "${PIP_SOURCE[@]}" --no-build-isolation "$ROOT"
# the image's start-up probe (docker/check_gpu.py): torch sees CUDA and mmcv's nms runs on it
(cd "$WORK" && "$VENV/bin/python" - "$ROOT/docker" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from check_gpu import probe
problem = probe()
if problem:
    sys.exit(f'gpu_check: error: {problem}')
import torch
print('gpu_check: mmcv.ops.nms ran on', torch.cuda.get_device_name(0))
EOF
)

# ------------------------------------------------------------------ 4. recipes on the GPU
runs=("smoke:" "smoke:--amp")
[[ "$QUICK" == 1 ]] || runs+=("longtail_synth:--seeds 0" "longtail_synth:--seeds 0 --amp")
for run in "${runs[@]}"; do
  recipe="${run%%:*}"
  extra="${run#*:}"
  name="$recipe$( [[ "$extra" == *--amp* ]] && echo _amp || true )"
  say "running $recipe --gpus 1 $extra"
  # shellcheck disable=SC2086 # extra is a list of flags
  (cd "$WORK" && "$VENV/bin/npe-repro" "$recipe" --gpus 1 $extra --data-root "$WORK/data" \
     --results-dir "$WORK/runs/$name/results" --work-dir "$WORK/runs/$name/work_dirs" \
     > "$WORK/runs/$name.log" 2>&1) || { tail -n 30 "$WORK/runs/$name.log" >&2; say "error: $recipe $extra failed (log: $WORK/runs/$name.log)"; exit 1; }
done

# ------------------------------------------------------------------ 5. the report
(cd "$WORK" && "$VENV/bin/python" - "$WORK" <<'EOF'
import json
import statistics
import sys
from pathlib import Path

work = Path(sys.argv[1])
report = {}
for run in sorted(p for p in (work / 'runs').iterdir() if p.is_dir()):
    trainings = {}
    for scalars in sorted(run.glob('work_dirs/**/vis_data/scalars.json')):
        rows = [json.loads(line) for line in scalars.read_text().splitlines() if line.strip()]
        times = [r['time'] for r in rows if 'time' in r]
        memory = [r['memory'] for r in rows if 'memory' in r]
        trainings[scalars.parts[-5] if len(scalars.parts) > 5 else str(scalars)] = dict(
            iterations=max((r.get('iter', r.get('step', 0)) for r in rows), default=0),
            s_per_iter_median=statistics.median(times) if times else None,
            peak_memory_mb=max(memory) if memory else None)
    files = [json.loads(p.read_text()) for p in run.glob('results/*/*.json')]
    devices = sorted({str(f.get('training_device')) for f in files})
    gpu_counts = sorted({(f.get('environment') or {}).get('gpu_count') for f in files}, key=str)
    rows = sorted((f['variant'], str(f['scale_factor']), round(f['metrics']['mIoU'], 2))
                  for f in files if f.get('status') == 'ok')
    report[run.name] = dict(trainings=trainings, result_files=len(files), training_device=devices,
                            gpu_count=gpu_counts, mIoU=rows)
    print(f'== {run.name}: {len(files)} result files, training device {devices}, gpu_count {gpu_counts}')
    for key, t in trainings.items():
        s = t['s_per_iter_median']
        print(f'   {key}: {t["iterations"]} iterations, {s:.4f} s/iter (median), '
              f'peak GPU memory {t["peak_memory_mb"]} MB' if s is not None else f'   {key}: no timings')
    bad = [d for d in devices if not d.startswith('cuda')]
    if bad or not files:
        sys.exit(f'gpu_check: error: {run.name}: result files record training on {devices}, not the GPU')
(work / 'gpu_check.json').write_text(json.dumps(report, indent=1) + '\n')
print(f'gpu_check: report in {work / "gpu_check.json"}')
EOF
)
say "done in $(( $(date +%s) - T0 )) s"
