"""Speaker-embedding training: config, data crops, schedules, checkpoints, the DDP training loop."""
