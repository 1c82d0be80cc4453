"""Evaluation: image metrics on held-out frames, the evaluate command."""
