"""The command line: `vqclip` and its commands."""

from vqclip.cli.app import app

__all__ = ["app"]
