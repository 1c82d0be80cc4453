"""The training tests use the root conftest's train_subject, tiny_run and offline_wandb."""
