#!/usr/bin/env bash
# Per-scene serial evaluation: steps 1-6 (`feat2gs eval`) for every feature x mode of the listed scenes.
# Edit the defaults below or override any of them from the environment, e.g.
#   DATA_ROOT=/data/Feat2GS_Dataset OUTPUT_ROOT=/out SCENES="LLFF/trex" FEATURES="dino_b16 iuvrgb" \
#   MODES="G T A" PRESET=protocol bash scripts/run_feat2gs_eval.sh
# With no settings it runs on the generated example scene (created on first use).
set -euo pipefail

DATA_ROOT=${DATA_ROOT:-example/data}
OUTPUT_ROOT=${OUTPUT_ROOT:-example/output}
SCENES=${SCENES:-Synthetic/blocks}          # Dataset/scene entries, space separated
FEATURES=${FEATURES:-iuvrgb}                # feature strings; concatenations use '-': dino_b16-iuvrgb
MODES=${MODES:-G}                           # G T A Gft Tft Aft
METHOD=${METHOD:-gt}                        # pointmap init: gt (dust3r/mast3r with their own issue)
PRESET=${PRESET:-quick}                     # quick (CPU-sized) or protocol (512 px, 8000 iterations)
RENDER_TRAJ=${RENDER_TRAJ:-interpolated}    # arc spiral lemniscate wander ellipse interpolated
DEVICE=${DEVICE:-auto}
EXTRA_ARGS=${EXTRA_ARGS:-}                  # e.g. "--set train.iterations=2000"

if [[ "$DATA_ROOT" == example/data && ! -d example/data/Synthetic/blocks ]]; then
    feat2gs make-scene example/data
fi

for entry in $SCENES; do
    dataset=${entry%%/*}; scene=${entry#*/}
    for feature in $FEATURES; do
        for mode in $MODES; do
            echo "==> $dataset/$scene feature=$feature mode=$mode method=$METHOD preset=$PRESET"
            # shellcheck disable=SC2086
            feat2gs eval -d "$DATA_ROOT" --dataset "$dataset" --scene "$scene" -f "$feature" -M "$mode" \
                -o "$OUTPUT_ROOT" --method "$METHOD" --preset "$PRESET" --device "$DEVICE" \
                --set "video.trajectory=$RENDER_TRAJ" $EXTRA_ARGS
        done
    done
done
