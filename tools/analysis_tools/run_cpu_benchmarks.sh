#!/usr/bin/env bash
# The CPU benchmark runs of docs/benchmarks.md, each "before" (the optimisation switched off) next to "after":
#   bash tools/analysis_tools/run_cpu_benchmarks.sh [OUT_DIR]     (default docs/benchmarks)
# Run it on an otherwise idle machine (about 15 minutes on 2 cores; the paper config needs about 14 GB of memory:
# the model, its plain-reference copy and their Adam states). BEFORE_TREE=<checkout of 6b04316> adds the metric
# figure of ADMetric before streaming. Render with tools/analysis_tools/render_benchmarks.py.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-docs/benchmarks}
mkdir -p "$OUT"
BENCH="python tools/analysis_tools/benchmark.py"
NOTE=${NOTE:-"$(nproc) cores, idle (no other job)"}
PAPER="configs/crd/crd_mvtec3d_bagel.py --random-teacher --batch-size 2 --image-size 256"
DEMO=configs/crd/crd_demo_synthetic.py
# A fresh disk cache: the data figure counts the first (filling) pass as warm-up, then times warm passes.
MMAD_CACHE_DIR=$(mktemp -d)
export MMAD_CACHE_DIR

run() {
    local name=$1
    shift
    echo "=== $name"
    "$@" --note "$NOTE" --out "$OUT/$name.json" > "$OUT/$name.log" 2>&1 || echo "$name failed: $OUT/$name.log"
}

# fused Adam (before: single-tensor Adam); the plain reference always uses torch.optim.Adam's defaults.
run cpu_bagel_b2_before $BENCH $PAPER --iters 3 --parts train --no-memory \
    --cfg-options optim_wrapper.optimizer.fused=False
run cpu_bagel_b2 $BENCH $PAPER --iters 3 --parts train,infer --profile work_dirs/profile_bagel --profile-steps 1
# fused Adam and inference_mode (before: no_grad through the base test_step).
run cpu_demo_before $BENCH $DEMO --iters 7 --parts train,infer --no-memory --eval-grad-mode no_grad \
    --cfg-options optim_wrapper.optimizer.fused=False
run cpu_demo $BENCH $DEMO --iters 7 --parts train,infer --profile work_dirs/profile_demo
run cpu_demo_amp $BENCH $DEMO --iters 7 --parts train,infer --no-memory --amp
# The disk cache of the point-cloud steps (before: cache_dir=False) and the metrics.
run cpu_data $BENCH configs/crd/crd_mvtec3d_bagel.py --random-teacher --iters 3 --parts data,metrics
run cpu_data_before $BENCH configs/crd/crd_mvtec3d_bagel.py --random-teacher --iters 3 --parts data \
    --cfg-options train_dataloader.dataset.pipeline.1.cache_dir=False
if [ -n "${BEFORE_TREE:-}" ]; then
    NOTE="$NOTE; ADMetric of $(git -C "$BEFORE_TREE" rev-parse --short HEAD)" \
        PYTHONPATH="$BEFORE_TREE" run cpu_metrics_before $BENCH configs/crd/crd_mvtec3d_bagel.py --random-teacher \
        --parts metrics
fi
# channels_last (slower on this CPU, hence not the default) and AMP on the paper config.
run cpu_demo_channels_last $BENCH $DEMO --iters 7 --parts train,infer --no-memory \
    --cfg-options model.memory_format=channels_last
run cpu_bagel_b2_amp $BENCH $PAPER --iters 3 --parts train,infer --no-memory --amp
# The set-up of a short run (one-epoch train + test): mmad's config layout and data lists against mmengine's defaults.
python tools/analysis_tools/benchmark_run_setup.py $DEMO --repeats 3 --out "$OUT/cpu_run_setup.json" \
    > "$OUT/cpu_run_setup.log" 2>&1 || echo "cpu_run_setup failed: $OUT/cpu_run_setup.log"
