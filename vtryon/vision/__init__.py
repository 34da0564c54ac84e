"""Image and geometry helpers shared by step backends (a step never imports another step)."""
