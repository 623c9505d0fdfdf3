#!/usr/bin/env bash
# The DTU protocol (reference: run_feat2gs_eval_dtu_parallel.sh): known cameras and depth (--method gt) with seeded
# noise of std 10/1000 on the initial positions (train.noise_std=10); step 5 also writes 3d_metrics.json
# (accuracy / completion / distance after a Sim(3) alignment) and pose errors. A front end to
# run_feat2gs_eval_parallel.sh; build the scenes with `feat2gs build-dataset dtu` first. Override anything from the
# environment (NOISE_STD, SCENES="DTU/scan24 DTU/scan37", FEATURES, MODES, PRESET, ...).
set -uo pipefail
export METHOD=${METHOD:-gt} MODES=${MODES:-G} NOISE_STD=${NOISE_STD:-10}
export EXTRA_ARGS="--set train.noise_std=$NOISE_STD ${EXTRA_ARGS:-}"
exec bash "$(dirname "$0")/run_feat2gs_eval_parallel.sh" "$@"
