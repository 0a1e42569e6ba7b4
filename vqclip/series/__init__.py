"""Many images from one command: batches, seed and settings sweeps, zooms."""
