"""viz stage."""
