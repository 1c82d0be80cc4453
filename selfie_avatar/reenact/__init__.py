"""reenact stage."""
