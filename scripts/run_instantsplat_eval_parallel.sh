#!/usr/bin/env bash
# The InstantSplat baseline over datasets x scenes (one job per scene: it reads no feature), on this machine or on
# Slurm: a front end to run_feat2gs_eval_parallel.sh with MODES=instantsplat. Every setting of that script applies
# (DATA_ROOT, OUTPUT_ROOT, SCENES, METHOD, PRESET, GPUS, CPU_SLOTS, EXECUTOR, EXTRA_ARGS, ...). Results go to
# $OUTPUT_ROOT/eval/<Dataset>/<scene>/<N>_views/instantsplat[@<preset>]/<method>/ and `feat2gs report` compares
# them with Feat2GS-G per feature.
set -uo pipefail
export MODES=instantsplat FEATURES=${FEATURES:-iuv}
exec bash "$(dirname "$0")/run_feat2gs_eval_parallel.sh" "$@"
