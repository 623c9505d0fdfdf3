#!/usr/bin/env bash
# Render trajectory videos from already-trained jobs (step 6 only; trains nothing).
# Override any variable from the environment, e.g.
#   TRAJECTORIES="arc spiral" DEPTH_NORMAL=1 SCENES="LLFF/trex" FEATURES=dino_b16 bash scripts/run_video_render.sh
# With no settings it renders the generated example job (run scripts/run_feat2gs_eval.sh first).
set -euo pipefail

DATA_ROOT=${DATA_ROOT:-example/data}
OUTPUT_ROOT=${OUTPUT_ROOT:-example/output}
SCENES=${SCENES:-Synthetic/blocks}
FEATURES=${FEATURES:-iuvrgb}
MODES=${MODES:-G}
METHOD=${METHOD:-gt}
PRESET=${PRESET:-quick}
TRAJECTORIES=${TRAJECTORIES:-"interpolated arc spiral lemniscate wander ellipse"}
DEPTH_NORMAL=${DEPTH_NORMAL:-0}             # 1: also depth and normal videos
DEVICE=${DEVICE:-auto}
EXTRA_ARGS=${EXTRA_ARGS:-}

depth_flag=()
[[ "$DEPTH_NORMAL" == 1 ]] && depth_flag=(--depth-normal)

for entry in $SCENES; do
    dataset=${entry%%/*}; scene=${entry#*/}
    for feature in $FEATURES; do
        for mode in $MODES; do
            for traj in $TRAJECTORIES; do
                echo "==> video $dataset/$scene feature=$feature mode=$mode trajectory=$traj"
                # shellcheck disable=SC2086
                feat2gs video -d "$DATA_ROOT" --dataset "$dataset" --scene "$scene" -f "$feature" -M "$mode" \
                    -o "$OUTPUT_ROOT" --method "$METHOD" --preset "$PRESET" --device "$DEVICE" \
                    --trajectory "$traj" "${depth_flag[@]}" $EXTRA_ARGS
            done
        done
    done
done
