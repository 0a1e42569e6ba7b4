"""vqclip: text-to-image generation with VQGAN+CLIP."""

__version__ = "0.1.0"
