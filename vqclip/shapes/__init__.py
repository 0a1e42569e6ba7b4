"""The shapes world: a procedural dataset with a small CLIP and VQGAN trained on it, offline."""
