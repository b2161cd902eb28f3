"""Property-based tests: every file reader and both tokenizers, fed anything.

Any byte string given to a reader (mesh, SDF/MOL, XYZ, token .npz) gives a result
or an :class:`InputError` with one line naming the file, nothing else; so do valid
files cut short or with bytes changed. The molecule tokenizer round-trips any
molecule it accepts; the shape tokenizers turn any mesh into tokens or refuse it
with an InputError. Example counts are modest so the suite stays fast; set
OCTGEN_FUZZ_EXAMPLES (default 60) for a deeper search of the readers and the
molecule tokenizer.
"""
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import METHANE_MOL, METHANE_XYZ, TETRA_OBJ, box_mesh
from octgen.data.meshes import MESH_SUFFIXES, check_mesh, load_mesh
from octgen.data.molecules import Molecule, read_molecules
from octgen.errors import InputError
from octgen.octree import mesh_to_octree
from octgen.tokenize import OctreeTokens
from octgen.tokenize.molecule import MoleculeTokenizer

torch.set_num_threads(1)
EXAMPLES = int(os.environ.get("OCTGEN_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _valid_mesh_bytes(suffix: str) -> bytes:
    if suffix == ".obj":
        return TETRA_OBJ.encode()
    if suffix == ".off":
        return b"OFF\n4 4 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
    kind = {".ply": "ply", ".stl": "stl", ".glb": "glb", ".gltf": "gltf"}[suffix]
    data = box_mesh().export(file_type=kind)
    if isinstance(data, dict):  # gltf: a JSON file plus buffers; embed them
        data = box_mesh().export(file_type="gltf", embed_buffers=True)["model.gltf"]
    return data.encode() if isinstance(data, str) else data


VALID_MESHES = {s: _valid_mesh_bytes(s) for s in MESH_SUFFIXES}


@st.composite
def damaged(draw, valid: bytes):
    """A valid file cut short, with bytes replaced, or with a chunk dropped, or random bytes."""
    how = draw(st.sampled_from(["cut", "flip", "drop", "random"]))
    if how == "random":
        return draw(st.binary(max_size=400))
    data = bytearray(valid)
    if how == "cut":
        return bytes(data[: draw(st.integers(0, max(0, len(data) - 1)))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 6))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.sampled_from([0, 10, 32, 45, 46, 48, 57, 102, 118, 255, draw(st.integers(0, 255))]))
        return bytes(data)
    a = draw(st.integers(0, len(data) - 1))
    b = draw(st.integers(a, min(len(data), a + 40)))
    return bytes(data[:a] + data[b:])


def _one_line_naming(e: InputError, path) -> None:
    assert "\n" not in str(e) and str(path) in str(e), str(e)


@pytest.mark.parametrize("suffix", MESH_SUFFIXES)
@FUZZ
@given(data=st.data())
def test_mesh_reader_gives_a_mesh_or_input_error(tmp_path, suffix, data):
    blob = data.draw(damaged(VALID_MESHES[suffix]))
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(blob)
    try:
        mesh = load_mesh(path)
    except InputError as e:
        _one_line_naming(e, path)
    else:
        f, v = np.asarray(mesh.faces), np.asarray(mesh.vertices)
        assert len(f) > 0 and np.isfinite(v).all() and 0 <= f.min() and f.max() < len(v)


@pytest.mark.parametrize("suffix,valid", [(".sdf", METHANE_MOL + "$$$$\n" + METHANE_MOL), (".mol", METHANE_MOL),
                                          (".xyz", METHANE_XYZ + METHANE_XYZ)])
@FUZZ
@given(data=st.data())
def test_molecule_reader_gives_molecules_or_input_error(tmp_path, suffix, valid, data):
    blob = data.draw(damaged(valid.encode()))
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(blob)
    try:
        mols = read_molecules(path, on_skip=None)
    except InputError as e:
        _one_line_naming(e, path)
    else:
        assert mols and all(len(m) > 0 and np.isfinite(m.positions).all() for m in mols)
        # Never a smaller molecule: a methane that survived is whole.
        assert all(len(m) == 5 for m in mols if m.name == "methane")


def _valid_token_file() -> bytes:
    tokens = OctreeTokens.from_octree(mesh_to_octree(trimesh.creation.icosphere(1), 3))
    with tempfile.TemporaryDirectory() as d:
        return tokens.save(Path(d) / "t.npz").read_bytes()


VALID_TOKENS = _valid_token_file()


@FUZZ
@given(data=st.data())
def test_token_file_reader_gives_tokens_or_input_error(tmp_path, data):
    path = tmp_path / "fuzz.npz"
    path.write_bytes(data.draw(damaged(VALID_TOKENS)))
    try:
        tokens = OctreeTokens.load(path)
    except InputError as e:
        _one_line_naming(e, path)
    else:
        assert tokens.payload.shape[0] == tokens.octree().num_nodes(tokens.depth)


@pytest.mark.parametrize("flag", ["method", "encrypted"])
def test_token_file_with_an_unknown_zip_method_or_encryption_is_refused(tmp_path, flag):
    """Found by the fuzzer above: a damaged compression-method field made zipfile raise
    NotImplementedError (and an encryption flag RuntimeError) through the reader."""
    data = bytearray(VALID_TOKENS)
    for sig, method_at, flags_at in ((b"PK\x03\x04", 8, 6), (b"PK\x01\x02", 10, 8)):
        at = data.find(sig)
        while at >= 0:
            if flag == "method":
                data[at + method_at:at + method_at + 2] = (99).to_bytes(2, "little")
            else:
                data[at + flags_at] |= 0x01
            at = data.find(sig, at + 4)
    path = tmp_path / "bad.npz"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError) as e:
        OctreeTokens.load(path)
    _one_line_naming(e.value, path)


# --------------------------------------------------------------------------- molecule tokenizer

TOK = MoleculeTokenizer()


@st.composite
def any_molecule(draw):
    """Any small molecule: any element, atoms anywhere (close together, far away)."""
    n = draw(st.integers(1, 10))
    coord = st.floats(-12.0, 12.0, allow_nan=False, allow_infinity=False)
    pos = draw(st.lists(st.tuples(coord, coord, coord), min_size=n, max_size=n))
    elements = draw(st.lists(st.sampled_from(["H", "C", "N", "O", "F", "S", "Cl"]), min_size=n, max_size=n))
    return Molecule(elements, np.array(pos), "any")


@settings(max_examples=EXAMPLES + 20, deadline=None)
@given(mol=any_molecule())
def test_molecule_tokenizer_round_trips_or_refuses(mol):
    try:
        tokens = TOK.encode(mol)
    except InputError as e:
        assert "\n" not in str(e)
        return
    back = TOK.decode(tokens, restore_frame=True)
    assert len(back) == len(mol)  # never an atom dropped or merged
    assert sorted(back.elements) == sorted(mol.elements)
    half_diag = TOK.settings.bin_size / 2 * np.sqrt(3) + 1e-6
    d = np.linalg.norm(back.positions[:, None] - mol.positions[None], axis=-1).min(axis=1)
    assert d.max() <= half_diag


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
def test_molecule_tokenizer_decodes_any_payload_or_refuses(data):
    """Generated tokens can hold anything: payload values in or out of range."""
    tokens = TOK.encode(Molecule(["C", "O", "H"], [[0, 0, 0], [1.2, 0, 0], [-1.0, 0.2, 0]]))
    n = tokens.payload.shape[0]
    payload = torch.tensor(data.draw(st.lists(st.lists(st.integers(-2, 40), min_size=4, max_size=4),
                                              min_size=n, max_size=n)))
    try:
        mol = TOK.decode(OctreeTokens(tokens.structure, payload, "atoms", {}))
    except InputError:
        return
    assert len(mol) == n and np.isfinite(mol.positions).all()


# --------------------------------------------------------------------------- shape tokenizers

@st.composite
def any_mesh(draw):
    """Random triangle soups: 3..12 vertices at any scale, 1..16 faces (degenerate ones too)."""
    n = draw(st.integers(3, 12))
    scale = draw(st.sampled_from([1e-6, 1.0, 1e6]))
    coord = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    v = np.array(draw(st.lists(st.tuples(coord, coord, coord), min_size=n, max_size=n))) * scale
    idx = st.integers(0, n - 1)
    f = np.array(draw(st.lists(st.tuples(idx, idx, idx), min_size=1, max_size=16)))
    return trimesh.Trimesh(v, f, process=False)


@settings(max_examples=40, deadline=None)
@given(mesh=any_mesh(), depth=st.integers(1, 5))
def test_octree_tokens_from_any_mesh_or_input_error(mesh, depth):
    try:
        check_mesh(mesh)
    except InputError:
        return
    tokens = OctreeTokens.from_octree(mesh_to_octree(mesh, depth))
    assert tokens.depth == depth and tokens.tokens_per_level()[0] == 1
    assert all(1 <= int(t.min()) and int(t.max()) <= 255 for t in tokens.structure)


@pytest.fixture(scope="module")
def shape_tokenizer():
    from octgen.tokenize.shape_vqvae import load_tokenizer

    return load_tokenizer("shape-vqvae-d6t4k16")


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mesh=any_mesh())
def test_shape_vqvae_tokens_from_any_mesh_or_input_error(shape_tokenizer, mesh):
    try:
        tokens = shape_tokenizer.encode(check_mesh(mesh))
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert tokens.payload_kind == "shape_bits"
    assert tokens.payload.shape == (tokens.tokens_per_level()[-1], shape_tokenizer.config.code_bits)
    assert set(tokens.payload.unique().tolist()) <= {0, 1}
