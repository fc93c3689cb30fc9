#!/usr/bin/env bash
# The GPU check of mmad in one command, from the repository root (docs/gpu_check.md):
#   bash tools/analysis_tools/gpu_check.sh OUT_DIR [gpu_check.py options, e.g. --device cpu --tiny]
# When mmengine or mmcv cannot be imported (the GPU machine: no network, no OpenMMLab packages), the wheels in
# $GPU_CHECK_WHEELS (default .whl/; tools/analysis_tools/fetch_gpu_wheels.sh downloads them) are installed into
# $GPU_CHECK_SITE (default /tmp/site) and put on PYTHONPATH first. Then tools/analysis_tools/gpu_check.py trains, tests and benchmarks the
# paper config on synthetic data and writes gpu_check.json, the benchmark JSONs, test_metrics.json and log.txt into
# OUT_DIR. Exit status: 0 when every step was ok, 1 when one was not (the JSON says which), 2 on a usage error.
set -euo pipefail

if [[ $# -lt 1 || $1 == -* ]]; then
  echo "usage: bash tools/analysis_tools/gpu_check.sh OUT_DIR [gpu_check.py options]" >&2
  exit 2
fi
out_dir=$1
shift
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
site=${GPU_CHECK_SITE:-/tmp/site}
wheel_dir=${GPU_CHECK_WHEELS:-.whl}

if ! "$PYTHON" -c 'import mmengine, mmcv' 2>/dev/null; then
  shopt -s nullglob
  wheels=("$wheel_dir"/*.whl)
  shopt -u nullglob
  if [[ ${#wheels[@]} -eq 0 ]]; then
    echo "gpu_check.sh: mmengine/mmcv are not importable with $PYTHON and $wheel_dir holds no wheels;" \
         "run tools/analysis_tools/fetch_gpu_wheels.sh where pip reaches an index and carry .whl" >&2
    exit 1
  fi
  echo "gpu_check.sh: installing ${#wheels[@]} wheels from $wheel_dir into $site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "${wheels[@]}"
  export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

exec "$PYTHON" tools/analysis_tools/gpu_check.py "$out_dir" "$@"
