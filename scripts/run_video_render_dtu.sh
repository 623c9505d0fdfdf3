#!/usr/bin/env bash
# Videos of DTU jobs (reference: run_video_render_dtu.sh): the run_video_render.sh loop with the DTU defaults
# (--method gt, train.noise_std=10 so the trained jobs of run_feat2gs_eval_dtu_parallel.sh are found, interpolated
# and spiral trajectories, mode G). Override anything from the environment.
set -euo pipefail
export METHOD=${METHOD:-gt} MODES=${MODES:-G} TRAJECTORIES=${TRAJECTORIES:-"interpolated spiral"}
NOISE_STD=${NOISE_STD:-10}
export EXTRA_ARGS="--set train.noise_std=$NOISE_STD ${EXTRA_ARGS:-}"
exec bash "$(dirname "$0")/run_video_render.sh" "$@"
