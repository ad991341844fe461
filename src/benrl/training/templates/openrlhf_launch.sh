#!/usr/bin/env bash
# OpenRLHF 0.11 GRPO for benrl arm `$arm`, seed $seed, run `$run`.
# Written by `benrl export`; numbers taken from the benrl config are literal below.
# Usage: ./launch.sh [file|remote]   (on the Ray head node; see README.txt)
#   file    (default) OpenRLHF loads reward_func.py in its workers
#   remote  reward_server.py serves the judge over HTTP on this node
set -euo pipefail
# This folder must be visible to every node at the same path.
EXPORT_DIR="$$(cd "$$(dirname "$${BASH_SOURCE[0]}")" && pwd)"

# ---- CLUSTER-SPECIFIC placeholders: not from the benrl config, set them
# for your cluster (environment variables of the same name override the defaults).
NNODES="$${NNODES:-1}"
GPUS_PER_NODE="$${GPUS_PER_NODE:-8}"
ROLLOUT_TP="$${ROLLOUT_TP:-1}"                 # vLLM tensor parallel size
VLLM_ENGINES="$${VLLM_ENGINES:-$$((NNODES * GPUS_PER_NODE / ROLLOUT_TP))}"
MICRO_BATCH="$${MICRO_BATCH:-4}"               # sequences per GPU per forward
GPU_MEMORY_UTILIZATION="$${GPU_MEMORY_UTILIZATION:-0.5}"  # vLLM share of a GPU
RAY_ADDRESS="$${RAY_ADDRESS:-http://127.0.0.1:8265}"
# remote mode: the host name under which the vLLM engines reach this node
REWARD_HOST="$${REWARD_HOST:-$$(hostname)}"
REWARD_PORT="$${REWARD_PORT:-5000}"
MODEL_PATH=$model  # local HF model folder, same path on every node

# ---- 1. Ray: start the head here unless a cluster is up; on every other node run
#         ray start --address=<head ip>:6379
# Export the API key variable of a model judge on every node BEFORE `ray start`:
# Ray workers inherit it, and it never appears on a command line.
ray status >/dev/null 2>&1 || ray start --head --port=6379 --dashboard-host=0.0.0.0

MODE="$${1:-file}"
case "$$MODE" in
  file) REWARD="$$EXPORT_DIR/reward_func.py" ;;
  remote)
    python3 "$$EXPORT_DIR/reward_server.py" --host 0.0.0.0 --port "$$REWARD_PORT" &
    REWARD_PID=$$!
    trap 'kill "$$REWARD_PID"' EXIT
    REWARD="http://$$REWARD_HOST:$$REWARD_PORT/get_reward" ;;
  *) echo "usage: $$0 [file|remote]" >&2; exit 2 ;;
esac

# ---- 2. Submit the job (blocks and streams the logs).
ray job submit --address="$$RAY_ADDRESS" -- python3 -m openrlhf.cli.train_ppo_ray \
$flags
