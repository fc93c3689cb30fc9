#!/usr/bin/env bash
# Idempotent set-up used by `make demo` and `make test`:
#   - the system library open3d needs (libusb-1.0-0), installed with apt when missing and running as root;
#   - a virtual environment in .venv with mmad installed editable with its dev and deploy extras;
#   - mmcv-lite (same `mmcv` import) only when `import mmcv` fails, so a full mmcv is never overwritten.
# Re-running it installs nothing that is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing libusb-1.0-0 (needed by open3d) with apt-get"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "[setup] WARNING: open3d needs the system library libusb-1.0-0; install it, e.g." \
         "'sudo apt-get install libusb-1.0-0'. Only point-cloud features use open3d." >&2
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi

stamp="$VENV/.mmad-installed"
want=$(cat pyproject.toml tools/setup_env.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing mmad (editable, dev, deploy and tensorboard extras) into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev,deploy,tensorboard]'
  if ! "$VENV/bin/python" -c 'import mmcv' 2>/dev/null; then
    echo "[setup] no mmcv found: installing mmcv-lite"
    "$VENV/bin/python" -m pip install -q 'mmcv-lite==2.2.0'
  fi
  echo "$want" > "$stamp"
fi
