"""Command-line interface (``octgen``)."""
from .main import main

__all__ = ["main"]
