"""The sample tests use the root conftest's train_subject."""
