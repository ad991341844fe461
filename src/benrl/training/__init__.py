"""RL arms and their training: mixtures, rewards, GRPO, harmful fine-tuning, export."""
