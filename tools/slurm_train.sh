#!/usr/bin/env bash
# Train on a slurm cluster: one task per GPU, started by srun.
#
#   [GPUS=16] [GPUS_PER_NODE=8] tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py arguments]
#
#   GPUS           tasks in total (default 8)
#   GPUS_PER_NODE  tasks and GPUs per node (default 8; 0 on CPU-only nodes: no --gres, one task per node unless
#                  SRUN_ARGS says otherwise)
#   CPUS_PER_TASK  CPU cores per task (default 5)
#   SRUN_ARGS      extra srun arguments, e.g. "--quotatype=auto" or "--time=2-00:00:00" (default none)
#   PYTHON         interpreter (default python)
# The first node of the allocation hosts the rendezvous (MASTER_ADDR, overridable); MASTER_PORT defaults to 29500.
set -euo pipefail

if [[ $# -lt 4 ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py arguments]" >&2
    exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)

GRES_ARGS=()
if [[ "$GPUS_PER_NODE" -gt 0 ]]; then
    GRES_ARGS=(--gres="gpu:$GPUS_PER_NODE" --ntasks-per-node="$GPUS_PER_NODE")
fi
# SRUN_ARGS is split on spaces on purpose: it holds several srun options.
# shellcheck disable=SC2086
PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}" exec srun \
    --partition="$PARTITION" \
    --job-name="$JOB_NAME" \
    --ntasks="$GPUS" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${GRES_ARGS[@]+"${GRES_ARGS[@]}"} \
    $SRUN_ARGS \
    "${PYTHON:-python}" -u "$TOOLS_DIR/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher=slurm "$@"
