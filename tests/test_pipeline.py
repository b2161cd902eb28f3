"""OctGenPipeline folders and ``octgen generate molecule``."""
import json
from pathlib import Path

import pytest
import torch

from octgen.cli.main import main
from octgen.data.molecules import read_molecules
from octgen.model import OctGenConfig, OctGenTransformer
from octgen.pipeline.pipeline import OctGenPipeline, save_pipeline
from octgen.sampling import SamplerConfig
from octgen.tokenize.molecule import MoleculeTokenizer

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    # Depth 3 keeps an untrained model's octrees small (at most 512 atoms).
    tok = MoleculeTokenizer(depth=3, cell_size=1.92, offset_bins=8)
    torch.manual_seed(0)
    model = OctGenTransformer.from_octgen_config(
        OctGenConfig(depth=3, payload_vocab_sizes=tuple(tok.payload_vocab_sizes), dim=24, n_layers=1, n_heads=2))
    out = tmp_path_factory.mktemp("ckpt") / "pipe"
    save_pipeline(out, model, tok, SamplerConfig(steps=2))
    return out


def test_from_pretrained_round_trip(ckpt):
    pipe = OctGenPipeline.from_pretrained(ckpt)
    assert pipe.sampler_config.steps == 2
    assert next(pipe.transformer.parameters()).dtype == torch.float32
    mols = pipe(3, generator=torch.Generator().manual_seed(0))
    again = pipe(3, generator=torch.Generator().manual_seed(0))
    assert len(mols) == 3 and all(len(m) >= 1 for m in mols)
    assert all((a.positions == b.positions).all() and a.elements == b.elements for a, b in zip(mols, again))


def test_not_a_checkpoint(tmp_path):
    from octgen.errors import InputError

    with pytest.raises(InputError, match="not an octgen checkpoint"):
        OctGenPipeline.from_pretrained(tmp_path)


def test_generate_cli_writes_sdf_and_manifest(ckpt, tmp_path, capsys):
    out = tmp_path / "gen"
    rc = main(["generate", "molecule", "--num", "3", "--seed", "4", "--out", str(out), "--checkpoint", str(ckpt),
               "--steps", "1", "--temperature", "0.8", "--batch-size", "2"])
    assert rc == 0
    mols = read_molecules(out / "molecules.sdf")
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    # Batch b of --batch-size 2 is seeded 4 + b.
    assert [r["index"] for r in rows] == [0, 1, 2] and [r["seed"] for r in rows] == [4, 4, 5]
    assert [r["num_atoms"] for r in rows] == [len(m) for m in mols]
    assert all(r["seconds"] > 0 for r in rows)
    # Same seed, same molecules.
    out2 = tmp_path / "gen2"
    main(["generate", "molecule", "--num", "3", "--seed", "4", "--out", str(out2), "--checkpoint", str(ckpt),
          "--steps", "1", "--temperature", "0.8", "--batch-size", "2"])
    assert (out / "molecules.sdf").read_text() == (out2 / "molecules.sdf").read_text()


def test_generate_cli_bad_input(tmp_path, capsys):
    rc = main(["generate", "molecule", "--num", "1", "--out", str(tmp_path / "x"), "--checkpoint",
               str(tmp_path / "nope")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "not an octgen checkpoint" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_version_1_pipeline_folders_still_load(tmp_path):
    """A folder written before pipeline.json named its components (version 1:
    "modality": "molecule" / "shape") loads as the same pipeline and samples the same."""
    import shutil

    from octgen.pipeline.pipeline import read_pipeline_info

    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "qm9-xs"
    old = tmp_path / "old"
    shutil.copytree(shipped, old)
    info = json.loads((shipped / "pipeline.json").read_text())
    v1 = {"_class_name": "OctGenPipeline", "version": 1, "modality": "molecule", "tokenizer_class": "MoleculeTokenizer",
          **{k: v for k, v in info.items() if k not in ("_class_name", "version", "transformer", "tokenizer",
                                                        "conditioner", "text_encoder", "modality", "payload_kind")}}
    (old / "pipeline.json").write_text(json.dumps(v1))
    upgraded = read_pipeline_info(old)
    assert {k: upgraded[k] for k in ("transformer", "tokenizer", "conditioner", "modality", "payload_kind")} == \
        {k: info[k] for k in ("transformer", "tokenizer", "conditioner", "modality", "payload_kind")}
    a = OctGenPipeline.from_pretrained(old).sample_tokens(2, generator=torch.Generator().manual_seed(5))
    b = OctGenPipeline.from_pretrained(shipped).sample_tokens(2, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(x.payload, y.payload) and all(torch.equal(s, t) for s, t in zip(x.structure, y.structure))
               for x, y in zip(a, b))


def test_a_written_pipeline_names_its_classes_as_the_version_1_upgrade_does(ckpt, tmp_path):
    """An export names the transformer by the package that exports it ("octgen.model"),
    as the version-1 upgrade does, not by its defining module: a training export copied
    into checkpoints/ needs no hand edit."""
    from octgen.pipeline.pipeline import read_pipeline_info

    info = json.loads((ckpt / "pipeline.json").read_text())
    assert info["transformer"] == ["octgen.model", "OctGenTransformer"]
    assert info["tokenizer"] == ["octgen.tokenize.molecule", "MoleculeTokenizer"]
    v1 = {"_class_name": "OctGenPipeline", "version": 1, "modality": "molecule",
          **{k: v for k, v in info.items() if k not in ("_class_name", "version", "transformer", "tokenizer",
                                                        "conditioner", "text_encoder", "modality", "payload_kind")}}
    (tmp_path / "pipeline.json").write_text(json.dumps(v1))
    upgraded = read_pipeline_info(tmp_path)
    assert [upgraded[k] for k in ("transformer", "tokenizer")] == [info[k] for k in ("transformer", "tokenizer")]
