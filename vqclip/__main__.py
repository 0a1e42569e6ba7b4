"""`python -m vqclip` runs the command line."""

from vqclip.cli import app

app(prog_name="vqclip")
