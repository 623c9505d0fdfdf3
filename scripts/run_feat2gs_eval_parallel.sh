#!/usr/bin/env bash
# Parallel benchmark driver: datasets x scenes x features x modes, on this machine or on Slurm.
#
# A thin front end to `feat2gs sweep run` (one implementation of the pool): it turns the settings below into a
# sweep config, or uses SWEEP_CONFIG (a sweep YAML file, or a shipped one by name: example, feat2gs_benchmark) as it is. Settings come from (later wins):
# the defaults below, an optional CONFIG_FILE (bash assignments such as FEATURES="dino_b16 radio" MODES="G T A"),
# and the environment. Lists are space separated.
#   EXECUTOR      local (default) or slurm (submitit job arrays; Slurm resources come from SWEEP_CONFIG)
#   SCENES        "Dataset/scene ..."; default: every scene in $DATA_ROOT/dataset_split.json
#   GPUS          local: GPU ids "0 1 ..." (default: all that nvidia-smi lists); empty -> CPU_SLOTS CPU slots
#   JOBS_PER_GPU  local: jobs sharing one GPU at a time (default 1); SLOTS overrides the total
#   EXTRA_ARGS    "--set section.field=value ..." overrides for every job
#
# Each local slot is an flock held by the process that runs the job: a job that ends, crashes, is killed (even
# with kill -9) or interrupted releases its slot, so no stale lock blocks a later run. A file
# $OUTPUT_ROOT/.locks/<slot>.stop takes a slot out of the pool. Step 1 runs once per (scene, feature) before the
# modes that need it; failed jobs are retried; jobs are idempotent, so rerunning finishes what was left.
# Logs: $OUTPUT_ROOT/logs/<mode>-<dataset>-<scene>-<method>-<feature>.log; a summary ends the run.
set -uo pipefail

settings=(DATA_ROOT OUTPUT_ROOT SCENES FEATURES MODES METHOD PRESET RENDER_TRAJ GPUS SLOTS CPU_SLOTS EXTRA_ARGS
          EXECUTOR RETRIES SWEEP_CONFIG JOBS_PER_GPU)
declare -A from_env=()
for name in "${settings[@]}"; do [[ -n "${!name+x}" ]] && from_env[$name]=${!name}; done
if [[ -n "${CONFIG_FILE:-}" ]]; then
    [[ -f "$CONFIG_FILE" ]] || { echo "CONFIG_FILE $CONFIG_FILE not found" >&2; exit 2; }
    # shellcheck disable=SC1090
    source "$CONFIG_FILE"
fi
for name in "${!from_env[@]}"; do printf -v "$name" '%s' "${from_env[$name]}"; done

export DATA_ROOT=${DATA_ROOT:-example/data}
export OUTPUT_ROOT=${OUTPUT_ROOT:-example/output}
export SCENES=${SCENES:-} FEATURES=${FEATURES:-"iuvrgb noise oracle_xyz"} MODES=${MODES:-"G T"}
export METHOD=${METHOD:-gt} PRESET=${PRESET:-quick} RENDER_TRAJ=${RENDER_TRAJ:-interpolated}
export EXTRA_ARGS=${EXTRA_ARGS:-} RETRIES=${RETRIES:-1}
EXECUTOR=${EXECUTOR:-local}
CPU_SLOTS=${CPU_SLOTS:-1}

if [[ -z "${SWEEP_CONFIG:-}" && "$DATA_ROOT" == example/data && ! -d example/data/Synthetic/blocks ]]; then
    feat2gs make-scene example/data || exit 1
fi
if [[ -z "${SWEEP_CONFIG:-}" ]]; then
    mkdir -p "$OUTPUT_ROOT/sweeps" || exit 2
    SWEEP_CONFIG="$OUTPUT_ROOT/sweeps/sweep-$(date +%Y%m%d-%H%M%S)-$$.yaml"
    python -m feat2gs.sweep.env_config "$SWEEP_CONFIG" || exit 2
    echo "sweep config: $SWEEP_CONFIG"
fi

args=(--executor "$EXECUTOR")
if [[ "$EXECUTOR" == local ]]; then
    if [[ -z "${GPUS+x}" ]]; then
        GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | xargs || true)
    fi
    gpu_list=$(echo "$GPUS" | xargs | tr ' ' ',')
    n_gpus=$(wc -w <<< "$GPUS")
    if (( n_gpus > 0 )); then default_slots=$((n_gpus * ${JOBS_PER_GPU:-1})); else default_slots=$CPU_SLOTS; fi
    args+=(--gpus "${gpu_list:-none}" --slots "${SLOTS:-$default_slots}")
fi
exec feat2gs sweep run "$SWEEP_CONFIG" "${args[@]}"
