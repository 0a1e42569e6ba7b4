"""What steers the image: prompts, losses, cutouts and augmentations, generators, optimizers, schedules."""
