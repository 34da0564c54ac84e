#!/usr/bin/env bash
# vtryon batch from the shell: a pairs list, one process, shards with xargs -P, one process
# per GPU, cluster arrays, Ray. Run it from the repository (`bash examples/batch.sh`): it makes
# a small list from the example photos and runs the parts this machine can run.
#
# Every form below is resumable: after a crash or a kill, run the same command again; it
# skips finished pairs and restarts the others at their first unfinished step. Shards write
# report.shard-I-of-N.jsonl / summary.shard-I-of-N.json; a pair that failed is listed there
# with its step and reason (exit code 1 when any pair failed, 2 for a bad option or list).
set -euo pipefail
cd "$(dirname "$0")"
VTRYON=${VTRYON:-vtryon}
OUT=${OUT:-../out/batch_example}
PROFILE=${PROFILE:-embedded}

# 1. The input: a CSV (or JSONL) with person, garment and optional category and output
#    columns; relative paths are relative to the list's folder. Two folders work too:
#    `vtryon batch persons/ garments/` (every person x every garment) or `--pairing by-name`.
mkdir -p "$OUT"
cat > "$OUT/pairs.csv" <<EOF
person,garment,category,output
$PWD/person_grace_hopper.jpg,$PWD/garment_tshirt_black_openclipart.png,upper,grace_black.png
$PWD/person_grace_hopper.jpg,$PWD/garment_tshirt_openclipart.png,upper,grace_white.png
$PWD/person_astronaut.png,$PWD/garment_tshirt_black_openclipart.png,upper,astronaut_black.png
$PWD/person_astronaut.png,$PWD/garment_tshirt_openclipart.png,upper,astronaut_white.png
EOF

# 2. One process, step-major: step 01 for a chunk of pairs, then step 02, ... (each step's
#    models load once; --chunk sets how many pairs pass through together).
"$VTRYON" batch "$OUT/pairs.csv" -o "$OUT/single" --profile "$PROFILE" --chunk 4

# 3. N processes on this machine, each with a stable share of the pairs (a hash of the pair's
#    name): together they do every pair exactly once. They may share one output folder.
N=2
seq 0 $((N - 1)) | xargs -P "$N" -I{} "$VTRYON" batch "$OUT/pairs.csv" -o "$OUT/sharded" \
    --profile "$PROFILE" --shard {}/"$N" --json > "$OUT/sharded.log" || true
cat "$OUT"/sharded/report.shard-*.jsonl > "$OUT/sharded/report.jsonl"   # one report for all shards
echo "sharded: $(grep -c '"status": "done"' "$OUT/sharded/report.jsonl") pairs done"

# 4. One process per GPU: each sees one device and takes its share.
if command -v nvidia-smi >/dev/null 2>&1; then
    GPUS=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
    for i in $(seq 0 $((GPUS - 1))); do
        CUDA_VISIBLE_DEVICES=$i "$VTRYON" batch "$OUT/pairs.csv" -o "$OUT/gpu" --device cuda \
            --profile "$PROFILE" --shard "$i/$GPUS" --json > "$OUT/gpu_$i.log" &
    done
    wait
fi

# 5. Several machines: give every process the same list and output (shared storage) and its
#    index; the array's index is the shard.
#      Slurm:       vtryon batch pairs.csv -o /shared/out --shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT"
#      Kubernetes:  vtryon batch pairs.csv -o /shared/out --shard "$JOB_COMPLETION_INDEX/$COMPLETIONS"   (Indexed Job)
#
# 6. Ray (pip install 'vtryon[ray]'): the same plan as Ray Data stages, one actor pool per step
#    (GPU actors where the cluster has GPUs), the same work folder, resumable the same way.
#      vtryon batch pairs.csv -o /shared/out --ray auto            # the running cluster (`ray start`)
#      vtryon batch pairs.csv -o /shared/out --ray ray://head:10001
if [ "${RUN_RAY:-0}" = 1 ]; then
    "$VTRYON" batch "$OUT/pairs.csv" -o "$OUT/ray" --profile "$PROFILE" --ray local
fi
