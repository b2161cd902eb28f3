"""Checks on saved model folders before their weights are loaded.

Weights are only ever read from safetensors files (no pickle, so loading a
folder cannot run code). A folder someone else made, or one cut short by a full
disk or a killed copy, must fail with one line naming the bad file, not with a
library traceback or a silent fallback: :func:`check_model_folder` checks that
``config.json`` is a JSON object and that the safetensors file is complete (its
header parses and its tensors exactly cover the rest of the file) before a
library touches them.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from .errors import InputError

# The shipped pipeline folders, relative to the repository root.
DEFAULT_CHECKPOINT = "checkpoints/qm9-xs"
DEFAULT_SHAPE_CHECKPOINT = "checkpoints/shapes-xs"

CONFIG_NAME = "config.json"
DIFFUSERS_WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"  # what ModelMixin.save_pretrained writes
MAX_HEADER_BYTES = 100_000_000  # the safetensors library's own limit


def default_checkpoint() -> Path:
    """The shipped QM9 checkpoint (``checkpoints/qm9-xs`` at the repository root)."""
    return Path(__file__).resolve().parents[1] / DEFAULT_CHECKPOINT


def default_shape_checkpoint() -> Path:
    """The shipped shapes checkpoint (``checkpoints/shapes-xs`` at the repository root)."""
    return Path(__file__).resolve().parents[1] / DEFAULT_SHAPE_CHECKPOINT


def check_config_json(path: str | os.PathLike) -> dict:
    """The parsed JSON object of a config file.

    Raises:
        InputError: missing, unreadable, not JSON, or not a JSON object; names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing (a model folder needs its {path.name})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (corrupt config)") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: corrupt config (not JSON: {e.msg} at line {e.lineno})") from None
    except OSError as e:
        raise InputError(f"{path}: unreadable ({e.strerror or type(e).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: corrupt config (expected a JSON object, got {type(data).__name__})")
    return data


def check_safetensors(path: str | os.PathLike) -> None:
    """Check that ``path`` is a complete safetensors file, without loading tensors.

    The format is an 8-byte little-endian header length, a JSON header mapping each
    tensor to ``data_offsets`` [begin, end) in the data region, then the data; a
    complete file's data region ends exactly where its last tensor does.

    Raises:
        InputError: missing, truncated, padded or corrupt; names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: missing (the model's weights)")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise InputError(f"{path}: truncated safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise InputError(f"{path}: truncated or corrupt safetensors file (header of {n:,} bytes in a "
                             f"{size:,}-byte file)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError, IndexError):
        raise InputError(f"{path}: corrupt safetensors file (unreadable header)") from None
    data = size - 8 - n
    if max(ends, default=0) != data:
        raise InputError(f"{path}: truncated or corrupt safetensors file (tensors need {max(ends, default=0):,} "
                         f"bytes of data, the file has {data:,})")


def check_model_folder(directory: str | os.PathLike, weights_name: str, what: str) -> Path:
    """Check a ``from_pretrained`` folder: a folder, a JSON-object ``config.json``
    and a complete ``weights_name`` safetensors file. Returns the folder.

    Raises:
        InputError: naming the folder or the bad file; ``what`` says what the folder is.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"{directory}: no such {what} folder")
    check_config_json(directory / CONFIG_NAME)
    check_safetensors(directory / weights_name)
    return directory


def load_checked(cls, directory: str | os.PathLike, weights_name: str, what: str):
    """``cls.from_pretrained(directory)`` (a diffusers model class) after
    :func:`check_model_folder`, reading safetensors only.

    Raises:
        InputError: a bad file (named), or a config and weights that do not fit together.
    """
    directory = check_model_folder(directory, weights_name, what)
    try:
        return cls.from_pretrained(str(directory), use_safetensors=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as e:
        detail = str(e).splitlines()[0][:160] if str(e) else "no detail"
        raise InputError(f"{directory}: not a loadable {what}: {CONFIG_NAME} and weights do not match "
                         f"({type(e).__name__}: {detail})") from None
