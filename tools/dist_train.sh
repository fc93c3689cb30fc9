#!/usr/bin/env bash
# Train with several processes per machine, on one or several machines, through torchrun.
#
#   tools/dist_train.sh CONFIG GPUS [train.py arguments]
#
# GPUS: processes on this machine (one per GPU; on a CPU-only machine, processes using gloo).
# Several machines: run the script on each with the same NNODES, MASTER_ADDR and PORT and its own NODE_RANK.
#   NNODES       number of machines (default 1)
#   NODE_RANK    rank of this machine, 0..NNODES-1 (default 0)
#   MASTER_ADDR  address of the machine with NODE_RANK 0 (default 127.0.0.1)
#   PORT         free TCP port on that machine (default 29500)
#   PYTHON       interpreter (default python)
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG GPUS [train.py arguments]" >&2
    exit 2
fi
CONFIG=$1
GPUS=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
TOOLS_DIR=$(cd "$(dirname "$0")" && pwd)

PYTHONPATH="$TOOLS_DIR/..${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --master_port="$PORT" \
    --nproc_per_node="$GPUS" \
    "$TOOLS_DIR/train.py" "$CONFIG" --launcher pytorch "$@"
