"""The built-in sample clip: an animated public-domain portrait, so everything runs without one's own footage."""
