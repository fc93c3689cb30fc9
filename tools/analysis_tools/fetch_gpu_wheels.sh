#!/usr/bin/env bash
# Download, where pip reaches a package index, the pure-Python wheels that tools/analysis_tools/gpu_check.sh
# installs on the GPU machine (Python 3.12, x86-64, no network): mmengine, mmcv-lite and their requirements that
# the machine lacks, as listed by `python tools/analysis_tools/gpu_check.py --list-wheels`. They go to .whl/ in the
# repository root, which this script adds to .git/info/exclude: the wheels travel with `carry`, never in a commit.
# Other versions of the same distributions are removed from .whl/ (two versions of one stop the installation).
#   bash tools/analysis_tools/fetch_gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
if ! grep -qxF '/.whl/' "$exclude" 2>/dev/null; then
  echo '/.whl/' >> "$exclude"
fi

mapfile -t specs < <("$PYTHON" tools/analysis_tools/gpu_check.py --list-wheels)
mkdir -p .whl
shopt -s nullglob
for spec in "${specs[@]}"; do
  name=${spec%%==*}
  version=${spec#*==}
  for wheel in .whl/"${name//-/_}"-*.whl; do
    if [[ $wheel != .whl/"${name//-/_}-$version"-* ]]; then
      echo "fetch_gpu_wheels.sh: removing $wheel (the check needs $spec)"
      rm -- "$wheel"
    fi
  done
done
shopt -u nullglob

"$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${specs[@]}"

for spec in "${specs[@]}"; do
  name=${spec%%==*}
  version=${spec#*==}
  wheel=$(find .whl -maxdepth 1 -name "${name//-/_}-$version-*.whl" -print -quit)
  if [[ -z $wheel || $wheel != *-none-any.whl ]]; then
    echo "fetch_gpu_wheels.sh: no pure-Python wheel of $spec in .whl/ (found: ${wheel:-nothing})" >&2
    exit 1
  fi
done
echo "fetch_gpu_wheels.sh: ${#specs[@]} wheels in .whl/ ($(du -sh .whl | cut -f1)); carry=['.whl'] in the device run"
