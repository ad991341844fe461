#!/usr/bin/env bash
# verl GRPO for benrl arm `$arm`, seed $seed, run `$run`.
# Written by `benrl export`; numbers taken from the benrl config are literal below.
# Usage: ./launch.sh   (on the Ray head node; see README.txt)
set -euo pipefail
# This folder must be visible to every node at the same path.
EXPORT_DIR="$$(cd "$$(dirname "$${BASH_SOURCE[0]}")" && pwd)"

# ---- CLUSTER-SPECIFIC placeholders: not from the benrl config, set them
# for your cluster (environment variables of the same name override the defaults).
NNODES="$${NNODES:-1}"
GPUS_PER_NODE="$${GPUS_PER_NODE:-8}"
ROLLOUT_TP="$${ROLLOUT_TP:-1}"                 # vLLM tensor parallel size
MICRO_BATCH_PER_GPU="$${MICRO_BATCH_PER_GPU:-8}" # sequences per GPU per forward
GPU_MEMORY_UTILIZATION="$${GPU_MEMORY_UTILIZATION:-0.5}"  # vLLM share of a GPU
RAY_ADDRESS="$${RAY_ADDRESS:-http://127.0.0.1:8265}"
MODEL_PATH=$model  # local HF model folder, same path on every node
# Where this verl reads the reward function: custom_reward_function (verl <= 0.8.0.dev,
# 2026-01) or reward.custom_reward_function (later). Detected from the installed verl;
# set VERL_REWARD_KEY to pin it.
VERL_REWARD_KEY="$${VERL_REWARD_KEY:-$$(python3 -m benrl.training.verl_layout)}"

# ---- 1. Ray: start the head here unless a cluster is up; on every other node run
#         ray start --address=<head ip>:6379
# Export the API key variable of a model judge on every node BEFORE `ray start`:
# Ray workers inherit it, and it never appears on a command line.
ray status >/dev/null 2>&1 || ray start --head --port=6379 --dashboard-host=0.0.0.0

# ---- 2. Submit the job (blocks and streams the logs). As in benrl's TRL run:
#   data.shuffle=False keeps the mixture's order (the rows of every step are fixed);
#   ppo_mini_batch_size = train_batch_size gives one optimizer step per batch;
#   kl_loss_type=low_var_kl is the k3 estimator TRL uses for its KL term.
ray job submit --address="$$RAY_ADDRESS" -- python3 -m verl.trainer.main_ppo \
$overrides
