"""`python -m vqclip` runs the command line."""

from vqclip.cli.app import app

app(prog_name="vqclip")
