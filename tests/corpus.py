"""The corpus of bad inputs, built in a folder on demand (nothing binary is committed).

Each builder writes one file and returns its path. Lists at the bottom pair every
input with what octgen must do with it: ``ERR`` items must give a one-line error
that contains every listed fragment (the file name is always checked as well),
``OK`` items are accepted with a documented result. ``test_bad_inputs.py`` runs
them through the CLI and the library API.
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

TETRA_V = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n"
TETRA_F = "f 1 3 2\nf 1 2 4\nf 1 4 3\nf 2 3 4\n"
TETRA_OBJ = TETRA_V + TETRA_F
METHANE_XYZ = ("5\nmethane\nC 0.0 0.0 0.0\nH 0.63 0.63 0.63\nH -0.63 -0.63 0.63\nH -0.63 0.63 -0.63\n"
               "H 0.63 -0.63 -0.63\n")
METHANE_MOL = """methane
     RDKit          3D

  5  4  0  0  0  0  0  0  0  0999 V2000
    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0
    0.6300    0.6300    0.6300 H   0  0  0  0  0  0  0  0  0  0  0  0
   -0.6300   -0.6300    0.6300 H   0  0  0  0  0  0  0  0  0  0  0  0
   -0.6300    0.6300   -0.6300 H   0  0  0  0  0  0  0  0  0  0  0  0
    0.6300   -0.6300   -0.6300 H   0  0  0  0  0  0  0  0  0  0  0  0
  1  2  1  0
  1  3  1  0
  1  4  1  0
  1  5  1  0
M  END
"""
GARBAGE = bytes(range(256)) * 3 + b"\x00\xff" * 64


def box_mesh(scale: float = 1.0, offset=(0.0, 0.0, 0.0)):
    import trimesh

    return trimesh.creation.box(extents=(scale, scale, scale)).apply_translation(offset)


def _export(mesh, path: Path, **kw) -> bytes:
    data = mesh.export(file_type=path.suffix.lstrip(".").replace("stl_ascii", "stl"), **kw)
    return data.encode() if isinstance(data, str) else data


def write_big_ply(path: Path, n: int = 1000) -> int:
    """A binary PLY of a closed n x n-vertex torus grid: 2 n^2 faces, written with numpy
    (2,000,000 faces for n = 1000, about 38 MB). Returns the face count."""
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, n, endpoint=False), np.linspace(0, 2 * np.pi, n, endpoint=False),
                       indexing="ij")
    xyz = np.stack([(2 + np.cos(v)) * np.cos(u), (2 + np.cos(v)) * np.sin(u), np.sin(v)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    a, b = i * n + j, ((i + 1) % n) * n + j
    c, d = ((i + 1) % n) * n + (j + 1) % n, i * n + (j + 1) % n
    tris = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    face = np.empty(len(tris), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face["n"], face["idx"] = 3, tris
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(xyz)}\nproperty float x\n"
              f"property float y\nproperty float z\nelement face {len(tris)}\n"
              "property list uchar int vertex_indices\nend_header\n").encode()
    with open(path, "wb") as f:
        f.write(header)
        f.write(xyz.astype("<f4").tobytes())
        f.write(face.tobytes())
    return len(tris)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but holds almost no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def save_png(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(array).save(path)
    return path


def stroke_image(size: int = 64) -> np.ndarray:
    """A dark square outline on white, (size, size) uint8."""
    a = np.full((size, size), 255, np.uint8)
    q = size // 4
    a[q:3 * q, q:q + 2] = a[q:3 * q, 3 * q - 2:3 * q] = a[q:q + 2, q:3 * q] = a[3 * q - 2:3 * q, q:3 * q] = 0
    return a


def _ascii(text: str):
    return lambda p: p.write_text(text)


def _bytes(data: bytes):
    return lambda p: p.write_bytes(data)


def _cut(mesh_fn, keep: float, **kw):
    """The exported mesh cut to a fraction of its bytes (mid-record)."""
    def build(p):
        data = _export(mesh_fn(), p, **kw)
        p.write_bytes(data[: int(len(data) * keep)])
    return build


def _scaled(scale):
    return lambda p: p.write_bytes(_export(box_mesh(scale), p))


def _two_parts(p):
    import trimesh

    p.write_bytes(_export(trimesh.util.concatenate([box_mesh(), box_mesh(offset=(3, 0, 0))]), p))


# name, builder, fragments the one-line error must contain
MESH_ERRORS = [
    ("garbage.obj", _bytes(GARBAGE), ["binary data"]),
    ("garbage.ply", _bytes(GARBAGE), ["not a PLY file"]),
    ("garbage.stl", _bytes(GARBAGE), ["binary STL header promises"]),
    ("garbage.off", _bytes(GARBAGE), ["binary data"]),
    ("garbage.glb", _bytes(GARBAGE), ["not a GLB file"]),
    ("garbage.gltf", _bytes(b"{garbage"), ["line 1", "not a glTF file"]),
    ("empty.obj", _bytes(b""), ["empty file"]),
    ("empty.stl", _bytes(b""), ["empty file"]),
    ("comments_only.obj", _ascii("# nothing here\n"), ["empty"]),
    ("vertices_only.obj", _ascii(TETRA_V), ["empty"]),
    ("cut_mid_vertex_line.obj", _ascii(TETRA_V + "v 0 0"), ["line 5", "needs x y z"]),
    ("cut_mid_face_line.obj", _ascii(TETRA_OBJ + "f 1 2"), ["line 9", "at least 3 vertices"]),
    ("non_numeric_vertex.obj", _ascii(TETRA_V + "v 0 zero 1\n" + TETRA_F), ["line 5", "not numbers"]),
    ("face_missing_vertex.obj", _ascii(TETRA_OBJ + "f 1 2 9\n"), ["line 9", "vertex 9", "does not exist"]),
    ("face_zero_index.obj", _ascii(TETRA_OBJ + "f 0 1 2\n"), ["line 9", "vertex 0"]),
    ("face_bad_negative.obj", _ascii(TETRA_OBJ + "f -1 -2 -7\n"), ["line 9", "vertex -7"]),
    ("face_not_index.obj", _ascii(TETRA_OBJ + "f 1 2 x\n"), ["line 9", "not an index"]),
    ("nan_vertex.obj", _ascii("v 0 0 0\nv 1 0 0\nv 0 nan 0\nf 1 2 3\n"), ["NaN or infinite"]),
    ("inf_vertex.obj", _ascii("v 0 0 0\nv 1 0 0\nv 0 inf 0\nf 1 2 3\n"), ["NaN or infinite"]),
    ("all_degenerate.obj", _ascii("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\nf 1 1 2\n"), ["zero surface area"]),
    ("single_point.obj", _ascii("v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n"), ["zero extent"]),
    ("overflow_scale.obj", _ascii("v -1e308 0 0\nv 1e308 0 0\nv 0 1e308 0\nf 1 2 3\n"), ["overflows"]),
    ("cut_faces.off", _ascii("OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n"),
     ["2 of the 4 faces"]),
    ("cut_vertices.off", _ascii("OFF\n4 4 0\n0 0 0\n1 0 0\n"), ["2 of the 4 vertices"]),
    ("bad_counts.off", _ascii("OFF\nfour four 0\n"), ["line 2", "counts"]),
    ("face_missing_vertex.off", _ascii("OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n3 0 1 7\n"),
     ["line 8", "vertex 7"]),
    ("not_off.off", _ascii("PLY\n1 2 3\n"), ["line 1", "not an OFF file"]),
    ("cut_binary.stl", _cut(box_mesh, 0.7), ["header promises 12 triangles"]),
    ("cut_ascii.stl", lambda p: p.write_text(box_mesh().export(file_type="stl_ascii")[:700]), ["cut short"]),
    ("cut_binary.ply", _cut(box_mesh, 0.8), ["could not read mesh"]),
    ("cut_ascii.ply", _cut(box_mesh, 0.95, encoding="ascii"), ["line"]),
    ("cut.glb", _cut(box_mesh, 0.6), ["GLB header promises"]),
    ("traversal.gltf", _ascii('{"asset": {"version": "2.0"}, "buffers": [{"uri": "../../etc/passwd", '
                              '"byteLength": 10}]}'), ["points outside"]),
    ("url_buffer.gltf", _ascii('{"asset": {"version": "2.0"}, "buffers": [{"uri": "http://example.com/x.bin", '
                               '"byteLength": 10}]}'), ["points outside"]),
    ("unsupported.fbx", _bytes(b"Kaydara FBX Binary"), ["unsupported"]),
]

# Accepted, with a documented result (see octgen/data/meshes.py): the file tokenizes.
MESH_OK = [
    ("degenerate_faces_mixed.obj", _ascii(TETRA_OBJ + "f 1 1 2\nf 2 2 2\n")),
    ("non_manifold.obj", _ascii("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 -1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 2 5\n")),
    ("two_parts.obj", _two_parts),
    ("tiny_scale.stl", _scaled(1e-9)),
    ("huge_scale.stl", _scaled(1e9)),
    ("negative_indices.obj", _ascii(TETRA_V + "f -4 -2 -3\nf -4 -3 -1\nf -4 -1 -2\nf -3 -2 -1\n")),
    ("quads.obj", _ascii(TETRA_V + "v 1 1 0\nf 1 2 5 3\nf 1 2 4\n")),
]


def _xyz(*frames: str):
    return _ascii("".join(frames))


# Molecule files (read by eval / tokenize): fragments of the per-entry reason.
MOL_ERRORS = [
    ("garbage.sdf", _bytes(GARBAGE), ["not a text file"]),
    ("garbage.xyz", _bytes(GARBAGE), ["not a text file"]),
    ("garbage_text.mol", _ascii("hello\nworld\n"), ["record ends inside its 4-line header"]),
    ("empty.xyz", _ascii("\n\n"), ["empty file"]),
    ("empty.sdf", _bytes(b""), ["empty file"]),
    ("cut_mid_record.sdf", _ascii("\n".join(METHANE_MOL.splitlines()[:6]) + "\n"),
     ["entry 1", "line 6", "2 of the 5 atom lines"]),
    ("cut_mid_line.sdf", _ascii(METHANE_MOL[: METHANE_MOL.index("   -0.6300   -0.6300") + 8]),
     ["entry 1", "line 7", "no y coordinate"]),
    ("missing_coordinate.sdf", _ascii(METHANE_MOL.replace("    0.6300    0.6300    0.6300 H",
                                                          "    0.6300    0.6300           H")),
     ["entry 1", "line 6", "no z coordinate"]),
    ("count_too_high.sdf", _ascii(METHANE_MOL.replace("  5  4  0", "  6  4  0")), ["entry 1", "line 10"]),
    ("count_too_low.sdf", _ascii(METHANE_MOL.replace("  5  4  0", "  4  4  0")), ["entry 1", "line 9",
                                                                                  "bond line"]),
    ("bond_to_missing_atom.sdf", _ascii(METHANE_MOL.replace("  1  5  1  0", "  1  9  1  0")),
     ["entry 1", "line 13", "atom 9"]),
    ("unknown_element.sdf", _ascii(METHANE_MOL.replace(" C   0", " Xx  0")), ["line 5", "unknown element 'Xx'"]),
    ("no_m_end.sdf", _ascii(METHANE_MOL.replace("M  END\n", "")), ["line 13", "END' line"]),
    ("count_too_high.xyz", _xyz(METHANE_XYZ.replace("5\n", "6\n", 1)), ["entry 1", "promises 6 atoms"]),
    ("count_too_low.xyz", _xyz(METHANE_XYZ.replace("5\n", "4\n", 1)), ["line 7", "expected the atom count"]),
    ("count_not_number.xyz", _xyz("five\nx\nC 0 0 0\n"), ["line 1", "atom count"]),
    ("missing_coordinate.xyz", _xyz("2\nx\nC 0 0 0\nH 1.0 0\n"), ["line 4", "element x y z"]),
    ("non_numeric.xyz", _xyz("2\nx\nC 0 0 0\nH 1.0 0 zero\n"), ["line 4", "not numbers"]),
    ("nan_coordinate.xyz", _xyz("2\nx\nC 0 0 0\nH 1.0 0 nan\n"), ["NaN or infinite"]),
    ("unknown_element.xyz", _xyz("2\nx\nC 0 0 0\nQq 1 0 0\n"), ["line 4", "unknown element 'Qq'"]),
    ("unknown_atomic_number.xyz", _xyz("2\nx\nC 0 0 0\n200 1 0 0\n"), ["line 4", "unknown atomic number 200"]),
    ("zero_atoms.xyz", _xyz("0\nnothing\n"), ["no atoms"]),
    ("cut_mid_line.xyz", _xyz(METHANE_XYZ[:-12]), ["line 7"]),
    ("unsupported.pdb", _ascii("ATOM\n"), ["unsupported"]),
]


def lattice_xyz(n: int, spacing: float = 1.5) -> str:
    """An XYZ frame of ``n`` carbon atoms on a cubic lattice (a big, odd molecule)."""
    side = int(np.ceil(n ** (1 / 3)))
    pts = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)[:n] * spacing
    return f"{n}\nlattice of {n} carbons\n" + "".join(f"C {x:.3f} {y:.3f} {z:.3f}\n" for x, y, z in pts)


def build(folder: Path, items) -> list[Path]:
    """Write every item of a list into ``folder``; returns the paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in items:
        path = folder / item[0]
        item[1](path)
        paths.append(path)
    return paths
