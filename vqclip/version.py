"""The installed version of vqclip."""

__version__ = "0.1.0"
