"""``python -m ctharmony.cli``."""

from ctharmony.cli import app

app()
