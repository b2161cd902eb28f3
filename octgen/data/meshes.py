"""Reading user mesh files, with every check a user's file needs.

Trimesh's readers are lenient: an OBJ face with two vertices, an OFF or ASCII PLY
file cut short after some of the faces its header promises, or a binary STL cut
mid-triangle would be read as a smaller mesh without a word. So before trimesh
parses a file, :func:`check_mesh_file` checks its structure (text formats line by
line, binary formats against their declared sizes) and names the first bad line;
a malformed record is always an error, never a silently smaller mesh.

Accepted as they are (a documented result, not an error): degenerate (zero-area)
faces as long as some face has area, non-manifold edges, several disconnected
parts (scenes are merged into one mesh), any scale with a finite, non-zero extent
(the mesh is normalised into the unit cube before tokenizing).
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

from ..errors import InputError

MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")
MAX_FACES = 20_000_000
MAX_MESH_BYTES = 2_000_000_000  # refused before reading: ~40M triangles of binary STL


def load_mesh(path: str | os.PathLike):
    """Load a triangle mesh (all parts of a scene merged) and validate it.

    Raises:
        InputError: missing or unreadable file, unsupported suffix, a malformed
            record (named by its line where the format has lines), no faces,
            NaN / inf vertices, faces referring to missing vertices, zero surface
            area, more than ``MAX_FACES`` faces.
    """
    import trimesh

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a mesh file")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(f"{path}: unsupported mesh format '{path.suffix}' (use {', '.join(MESH_SUFFIXES)})")
    check_mesh_file(path)
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False)
    except Exception as e:  # trimesh raises many types for malformed files
        raise InputError(f"{path}: could not read mesh ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else 'no detail'})") from None
    return check_mesh(mesh, str(path))


def check_mesh(mesh, name: str = "mesh"):
    """Validate an in-memory mesh; returns it, or raises :class:`InputError`."""
    import trimesh

    if not isinstance(mesh, trimesh.Trimesh):
        raise InputError(f"{name}: contains no triangle mesh")
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.faces)
    if len(v) == 0 or len(f) == 0:
        raise InputError(f"{name}: mesh is empty (no faces)")
    if len(f) > MAX_FACES:
        raise InputError(f"{name}: {len(f):,} faces is more than the {MAX_FACES:,} octgen accepts")
    if not np.isfinite(v).all():
        raise InputError(f"{name}: mesh has NaN or infinite vertex coordinates")
    if f.min() < 0 or f.max() >= len(v):
        raise InputError(f"{name}: mesh faces refer to missing vertices")
    with np.errstate(over="ignore", invalid="ignore"):
        extent = float(np.ptp(v, axis=0).max())
    if not extent > 0:
        raise InputError(f"{name}: mesh has zero extent")
    if not np.isfinite(extent):
        raise InputError(f"{name}: mesh extent overflows (coordinates up to {np.abs(v).max():.3g})")
    # The area of the mesh scaled to unit extent: no overflow or underflow at extreme scales.
    if not float(_unit_area(v / extent, f)) > 0:
        raise InputError(f"{name}: mesh has zero surface area")
    return mesh


def _unit_area(v: np.ndarray, f: np.ndarray) -> float:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return 0.5 * float(np.linalg.norm(np.cross(b - a, c - a), axis=1).sum())


# --------------------------------------------------------------------------- file structure

def check_mesh_file(path: str | os.PathLike) -> None:
    """Check the structure of a mesh file before it is parsed.

    OBJ: every ``v`` line has three numbers, every ``f`` line at least three
    vertex indices that exist. OFF and ASCII PLY: the header's vertex and face
    counts are all present, faces have at least three indices that exist. STL:
    a binary file's size matches its triangle count; an ASCII file has three
    numeric vertices per facet and ends with ``endsolid``. glTF/GLB: the JSON
    parses and buffers are embedded (a ``data:`` URI or the GLB binary chunk) or
    plain file names next to the file (no folders, no URLs).

    Raises:
        InputError: naming the file and, for text formats, the first bad line.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{path}: empty file")
    if size > MAX_MESH_BYTES:
        raise InputError(f"{path}: {size / 1e9:.1f} GB is more than the {MAX_MESH_BYTES / 1e9:.0f} GB octgen reads")
    suffix = path.suffix.lower()
    data = path.read_bytes()
    if suffix == ".stl":
        _check_stl(path, data)
    elif suffix == ".glb":
        _check_glb(path, data)
    elif suffix == ".ply":
        _check_ply(path, data)
    else:
        text = _as_text(path, data)
        {".obj": _check_obj, ".off": _check_off, ".gltf": _check_gltf}[suffix](path, text)


def _as_text(path: Path, data: bytes) -> str:
    if b"\x00" in data:
        raise InputError(f"{path}: binary data in a text mesh format")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return data.decode("latin-1")  # names and comments in old exporters' code pages
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise InputError(f"{path}: not a text file") from None


def _line_error(path: Path, lineno: int, message: str) -> InputError:
    return InputError(f"{path}, line {lineno}: {message}")


def _floats(parts: list[str]) -> bool:
    try:
        [float(p) for p in parts]
    except ValueError:
        return False
    return True


def _check_obj(path: Path, text: str) -> None:
    lines = text.splitlines()
    n_vertices = sum(1 for line in lines if line.split(None, 1)[:1] == ["v"])
    seen = 0
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key == "v":
            if len(parts) < 4:
                raise _line_error(path, lineno, f"a vertex needs x y z, got '{line.strip()[:40]}'")
            if not _floats(parts[1:4]):
                raise _line_error(path, lineno, f"vertex coordinates are not numbers ('{line.strip()[:40]}')")
            seen += 1
        elif key == "f":
            refs = parts[1:]
            if len(refs) < 3:
                raise _line_error(path, lineno, f"a face needs at least 3 vertices, got {len(refs)}")
            for r in refs:
                try:
                    i = int(r.split("/")[0])
                except ValueError:
                    raise _line_error(path, lineno, f"face vertex '{r[:20]}' is not an index") from None
                # Positive indices count from the file's first vertex, negative ones back from this line.
                if i == 0 or i > n_vertices or -i > seen:
                    raise _line_error(path, lineno, f"face refers to vertex {i}, which does not exist "
                                                    f"({n_vertices} vertices in the file)")


def _data_lines(text: str):
    """(line number, fields) of the non-blank lines, '#' comments removed."""
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if parts:
            yield lineno, parts


def _check_faces_and_vertices(path: Path, rows, n_vertices: int, n_faces: int, what: str) -> None:
    """Shared by OFF and ASCII PLY: ``rows`` yields (lineno, fields) after the header."""
    last = 0
    for k in range(n_vertices):
        lineno, parts = next(rows, (None, None))
        if lineno is None:
            raise InputError(f"{path}: file ends after {k} of the {n_vertices} vertices its {what} promises "
                             f"(cut short?)")
        if len(parts) < 3 or not _floats(parts[:3]):
            raise _line_error(path, lineno, f"vertex {k} needs three numbers, got '{' '.join(parts)[:40]}'")
        last = lineno
    for k in range(n_faces):
        lineno, parts = next(rows, (None, None))
        if lineno is None:
            raise InputError(f"{path}: file ends after {k} of the {n_faces} faces its {what} promises "
                             f"(cut short, line {last})")
        try:
            count = int(parts[0])
            idx = [int(p) for p in parts[1:1 + count]]
        except ValueError:
            raise _line_error(path, lineno, f"face {k} is not a list of vertex indices") from None
        if count < 3 or len(idx) != count:
            raise _line_error(path, lineno, f"face {k} needs at least 3 vertex indices, got "
                                            f"'{' '.join(parts)[:40]}'")
        bad = [i for i in idx if not 0 <= i < n_vertices]
        if bad:
            raise _line_error(path, lineno, f"face {k} refers to vertex {bad[0]}, which does not exist "
                                            f"({n_vertices} vertices)")
        last = lineno


def _check_off(path: Path, text: str) -> None:
    rows = _data_lines(text)
    lineno, head = next(rows, (1, [""]))
    if not head[0].upper().endswith("OFF"):
        raise _line_error(path, lineno, "not an OFF file (the first line must be 'OFF')")
    counts = head[1:]
    if not counts:
        lineno, counts = next(rows, (lineno, []))
    try:
        n_vertices, n_faces = int(counts[0]), int(counts[1])
        if n_vertices < 0 or n_faces < 0:
            raise ValueError
    except (ValueError, IndexError):
        raise _line_error(path, lineno, "expected the vertex and face counts") from None
    _check_faces_and_vertices(path, rows, n_vertices, n_faces, "header")


def _check_ply(path: Path, data: bytes) -> None:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InputError(f"{path}: not a PLY file (no 'ply ... end_header' header)")
    header = data[:end].decode("latin-1").splitlines()
    fmt = next((line.split()[1:2] for line in header if line.startswith("format")), [])
    if fmt != ["ascii"]:
        return  # binary PLY: trimesh checks the body length against the header
    elements, current = [], None
    for line in header:
        parts = line.split()
        if parts[:1] == ["element"] and len(parts) == 3:
            try:
                current = [parts[1], int(parts[2]), []]
            except ValueError:
                raise InputError(f"{path}: bad PLY header line '{line[:40]}'") from None
            elements.append(current)
        elif parts[:1] == ["property"] and current is not None:
            current[2].append(parts[1:])
    names = [e[0] for e in elements]
    body = data[end + len(b"end_header"):].decode("latin-1")
    offset = len(header)  # line numbers continue after the header
    rows = ((lineno + offset, parts) for lineno, parts in _data_lines(body))
    if names[:2] == ["vertex", "face"]:
        n_vertices, n_faces = elements[0][1], elements[1][1]
        _check_faces_and_vertices(path, rows, n_vertices, n_faces, "PLY header")
        elements = elements[2:]
    total = sum(e[1] for e in elements)
    for k in range(total):
        if next(rows, None) is None:
            raise InputError(f"{path}: file ends before the {total} rows its PLY header promises (cut short?)")


def _check_stl(path: Path, data: bytes) -> None:
    if len(data) >= 84:
        (n,) = struct.unpack("<I", data[80:84])
        if 84 + 50 * n == len(data):
            return  # a well-formed binary STL (whatever its 80-byte header says)
    if data.lstrip()[:5].lower() != b"solid":
        if len(data) < 84:
            raise InputError(f"{path}: {len(data)} bytes is too short for a binary STL and it is not ASCII STL")
        raise InputError(f"{path}: binary STL header promises {n:,} triangles ({84 + 50 * n:,} bytes) but the "
                         f"file has {len(data):,} bytes (cut short or not an STL file)")
    text = _as_text(path, data)
    facets = vertices = 0
    last = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        last = lineno
        key = parts[0].lower()
        if key == "facet":
            if vertices != 3 * facets:
                raise _line_error(path, lineno, f"the previous facet has {vertices - 3 * (facets - 1)} vertices, "
                                                "expected 3")
            facets += 1
        elif key == "vertex":
            if len(parts) != 4 or not _floats(parts[1:]):
                raise _line_error(path, lineno, f"a vertex needs x y z, got '{line.strip()[:40]}'")
            vertices += 1
    if vertices != 3 * facets:
        raise _line_error(path, last, f"the last facet has {vertices - 3 * (facets - 1)} vertices, expected 3 "
                                      "(cut short?)")
    if not text.rstrip().splitlines()[-1].lstrip().lower().startswith("endsolid"):
        raise InputError(f"{path}: ASCII STL ends without 'endsolid' (cut short after line {last}?)")


def _check_gltf_json(path: Path, info) -> None:
    if not isinstance(info, dict):
        raise InputError(f"{path}: not a glTF file (the JSON is not an object)")
    for i, buf in enumerate(info.get("buffers") or []):
        uri = buf.get("uri") if isinstance(buf, dict) else None
        if uri is None or uri.startswith("data:"):
            continue
        # Only plain file names next to the mesh: never another folder, a URL or an absolute path.
        if "/" in uri or "\\" in uri or ":" in uri or uri.startswith("."):
            raise InputError(f"{path}: buffer {i} points outside the file's folder ('{uri[:60]}'); "
                             "embed the buffers (use .glb)")


def _check_gltf(path: Path, text: str) -> None:
    try:
        info = json.loads(text)
    except json.JSONDecodeError as e:
        raise _line_error(path, e.lineno, f"not a glTF file ({e.msg})") from None
    _check_gltf_json(path, info)


def _check_glb(path: Path, data: bytes) -> None:
    if len(data) < 20 or data[:4] != b"glTF":
        raise InputError(f"{path}: not a GLB file (no 'glTF' header)")
    (total,) = struct.unpack("<I", data[8:12])
    if total != len(data):
        raise InputError(f"{path}: GLB header promises {total:,} bytes but the file has {len(data):,} "
                         "(cut short or corrupt)")
    length, kind = struct.unpack("<I4s", data[12:20])
    if kind != b"JSON" or 20 + length > len(data):
        raise InputError(f"{path}: corrupt GLB file (the first chunk is not its JSON)")
    try:
        info = json.loads(data[20:20 + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: corrupt GLB file (its JSON chunk does not parse)") from None
    _check_gltf_json(path, info)
