"""Where octgen keeps data it derives once (parsed QM9, token shards, SDF grids...)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """octgen's data cache folder: ``$OCTGEN_CACHE`` or ``~/.cache/octgen``."""
    return Path(os.environ.get("OCTGEN_CACHE", Path.home() / ".cache" / "octgen"))
