#!/usr/bin/env bash
# Parallel benchmark driver: datasets x scenes x features x modes on a pool of GPU (or CPU) slots.
#
# Settings come from (later wins): the defaults below, an optional CONFIG_FILE (bash assignments such as
# FEATURES="dino_b16 radio" MODES="G T A"), and the environment. Lists are space separated.
#   SCENES        "Dataset/scene ..."; default: every scene in $DATA_ROOT/dataset_split.json
#   GPUS          GPU ids to use; default: all that nvidia-smi lists; none -> CPU_SLOTS CPU slots
#   JOBS_PER_GPU  jobs sharing one GPU at a time (default 1)
#
# Each slot is an flock held by the job's own processes: a job that ends, crashes, is killed (even with
# kill -9) or interrupted releases its slot, so no stale lock can block a later run. A file
# $LOCK_DIR/<slot>.stop takes a slot out of the pool. Step 1 runs once per (scene, feature) in a first phase,
# before the modes that need it; jobs are idempotent, so rerunning finishes what an interrupted run left.
set -uo pipefail

settings=(DATA_ROOT OUTPUT_ROOT SCENES FEATURES MODES METHOD PRESET RENDER_TRAJ GPUS JOBS_PER_GPU CPU_SLOTS
          LOCK_DIR LOG_DIR EXTRA_ARGS POLL_SECONDS)
declare -A from_env=()
for name in "${settings[@]}"; do [[ -n "${!name+x}" ]] && from_env[$name]=${!name}; done
if [[ -n "${CONFIG_FILE:-}" ]]; then
    [[ -f "$CONFIG_FILE" ]] || { echo "CONFIG_FILE $CONFIG_FILE not found" >&2; exit 2; }
    # shellcheck disable=SC1090
    source "$CONFIG_FILE"
fi
for name in "${!from_env[@]}"; do printf -v "$name" '%s' "${from_env[$name]}"; done

DATA_ROOT=${DATA_ROOT:-example/data}
OUTPUT_ROOT=${OUTPUT_ROOT:-example/output}
FEATURES=${FEATURES:-"iuvrgb noise oracle_xyz"}
MODES=${MODES:-"G T"}
METHOD=${METHOD:-gt}
PRESET=${PRESET:-quick}
RENDER_TRAJ=${RENDER_TRAJ:-interpolated}
JOBS_PER_GPU=${JOBS_PER_GPU:-1}
CPU_SLOTS=${CPU_SLOTS:-1}
LOCK_DIR=${LOCK_DIR:-$OUTPUT_ROOT/.locks}
LOG_DIR=${LOG_DIR:-$OUTPUT_ROOT/logs}
EXTRA_ARGS=${EXTRA_ARGS:-}
POLL_SECONDS=${POLL_SECONDS:-2}

if [[ "$DATA_ROOT" == example/data && ! -d example/data/Synthetic/blocks ]]; then
    feat2gs make-scene example/data || exit 1
fi
if [[ -z "${SCENES:-}" ]]; then
    SCENES=$(python -c 'import json,sys; s=json.load(open(sys.argv[1]+"/dataset_split.json")); print(" ".join(f"{d}/{n}" for d in s for n in s[d]))' "$DATA_ROOT") || exit 2
fi
if [[ -z "${GPUS+x}" ]]; then
    GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr '\n' ' ' || true)
fi

slots=()
if [[ -n "${GPUS// /}" ]]; then
    for gpu in $GPUS; do for ((k = 0; k < JOBS_PER_GPU; k++)); do slots+=("gpu${gpu}_$k"); done; done
else
    for ((k = 0; k < CPU_SLOTS; k++)); do slots+=("cpu_$k"); done
fi
mkdir -p "$LOCK_DIR" "$LOG_DIR" || exit 2
status_dir=$(mktemp -d "$LOG_DIR/.status.XXXXXX")

on_interrupt() {
    echo "interrupted: stopping running jobs (their slots are released as they exit)" >&2
    local pids; pids=$(jobs -p)
    [[ -n "$pids" ]] && kill $pids 2>/dev/null
    wait
    summary
    exit 130
}
trap on_interrupt INT TERM

# Take the first free slot: opens its lock file on a new fd and holds an flock on it (sets SLOT, SLOT_FD).
acquire_slot() {
    while true; do
        for slot in "${slots[@]}"; do
            [[ -e "$LOCK_DIR/$slot.stop" ]] && continue
            exec {SLOT_FD}>>"$LOCK_DIR/$slot.lock"
            if flock -n "$SLOT_FD"; then SLOT=$slot; return 0; fi
            exec {SLOT_FD}>&-
        done
        sleep "$POLL_SECONDS"
    done
}

# run_on_slot NAME CMD...: run CMD in the background on a free slot; its processes inherit the locked fd.
run_on_slot() {
    local name=$1; shift
    acquire_slot
    local device=cpu visible=""
    if [[ "$SLOT" == gpu* ]]; then visible=${SLOT#gpu}; visible=${visible%%_*}; device=cuda; fi
    local log="$LOG_DIR/$name.log"
    echo "[$(date +%H:%M:%S)] start $name on $SLOT (log: $log)"
    (
        echo "$name (pid $BASHPID) since $(date)" > "$LOCK_DIR/$SLOT.info"
        CUDA_VISIBLE_DEVICES=$visible "$@" --device "$device" > "$log" 2>&1
        rc=$?
        echo "$rc" > "$status_dir/$name.rc"
        echo "[$(date +%H:%M:%S)] $( ((rc == 0)) && echo done || echo "FAILED (exit $rc)") $name"
    ) &
    exec {SLOT_FD}>&-
}

summary() {
    local ok=0 failed=()
    for f in "$status_dir"/*.rc; do
        [[ -e "$f" ]] || continue
        if [[ $(cat "$f") == 0 ]]; then ok=$((ok + 1)); else failed+=("$(basename "$f" .rc)"); fi
    done
    echo "==================== summary ===================="
    echo "succeeded: $ok   failed: ${#failed[@]}"
    for name in "${failed[@]}"; do echo "  FAILED $name  (log: $LOG_DIR/$name.log)"; done
    ((${#failed[@]} == 0))
}

common=(--method "$METHOD" --preset "$PRESET")
# shellcheck disable=SC2206
extra=($EXTRA_ARGS)
echo "slots: ${slots[*]}"
echo "phase 1: step 1 (init) once per (scene, feature)"
for entry in $SCENES; do
    dataset=${entry%%/*}; scene=${entry#*/}
    for feature in $FEATURES; do
        run_on_slot "init-$dataset-$scene-$METHOD-$feature" feat2gs init -d "$DATA_ROOT" --dataset "$dataset" \
            --scene "$scene" -f "$feature" "${common[@]}" "${extra[@]}"
    done
done
wait
echo "phase 2: steps 2-6 per mode"
for mode in $MODES; do
    for entry in $SCENES; do
        dataset=${entry%%/*}; scene=${entry#*/}
        for feature in $FEATURES; do
            if [[ -e "$status_dir/init-$dataset-$scene-$METHOD-$feature.rc" &&
                  $(cat "$status_dir/init-$dataset-$scene-$METHOD-$feature.rc") != 0 ]]; then
                continue  # its step 1 failed; reported in the summary
            fi
            run_on_slot "$mode-$dataset-$scene-$METHOD-$feature" feat2gs eval -q -d "$DATA_ROOT" \
                --dataset "$dataset" --scene "$scene" -f "$feature" -M "$mode" -o "$OUTPUT_ROOT" "${common[@]}" \
                --set "video.trajectory=$RENDER_TRAJ" "${extra[@]}"
        done
    done
done
wait
summary
