"""Write files so that a failure never leaves a half-written output behind."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def check_out_path(path: str | os.PathLike, suffixes: tuple[str, ...], what: str) -> Path:
    """Validate an output file name before any work is done.

    Raises:
        InputError: the suffix is not one of ``suffixes``, or the path is a folder.
    """
    from ..errors import InputError

    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise InputError(f"{path}: output {what} must end in {' or '.join(', '.join(suffixes).rsplit(', ', 1))}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a {what} file name")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is untouched (an
    earlier file there keeps its old contents). An ``OSError`` about the temporary
    file (no space left, say) is raised again naming ``path``. The temporary name
    keeps the suffix so writers that dispatch on it still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    # mkstemp makes the file 0600; give it the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if e.filename in (None, tmp, str(tmp)):
            # Name the file the user asked for, not the temporary one (a full disk, say).
            raise OSError(e.errno, e.strerror or str(e), str(path)) from e
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
