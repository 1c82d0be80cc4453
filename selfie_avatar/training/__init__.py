"""Training: the Lightning module, the data module, presets and the ``train`` entry point."""
