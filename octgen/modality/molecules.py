"""The QM9 molecule modality: atoms as tokens, a size condition, SDF output."""
from __future__ import annotations

import sys
from pathlib import Path

from ..data.cache import cache_dir
from ..data.molecules import write_sdf
from ..metrics.molecules import evaluate_molecules
from ..tokenize.molecule import MoleculeTokenizer, check_frame
from ..train.data import qm9_train_tokens
from ..train.shards import ShardDataset, read_index, write_shards
from .base import Modality, register_modality


@register_modality("qm9")
class QM9Modality(Modality):
    """QM9 molecules (:class:`~octgen.tokenize.molecule.MoleculeTokenizer`, default
    settings). Reads the config's ``rotations`` (random-rotation copies per
    molecule), ``max_train_sequences`` and ``shard_dir``, and ``data.frame``: the
    orientation of the training molecules, ``"native"`` (QM9's), ``"principal"``
    (each molecule's principal axes on x, y, z; generated molecules come out in that
    frame) or ``"principal-offset"`` (those axes, the molecule moved off the octree's
    split planes: :meth:`~octgen.tokenize.molecule.MoleculeTokenizer.frame_shift`).
    Shards default to
    ``$OCTGEN_CACHE/shards/qm9-train-r<rotations>[-<frame>]-s<seed>[-n<limit>]``."""

    defaults = {"frame": "native"}

    def __init__(self, cfg):
        super().__init__(cfg)
        check_frame(self.settings["frame"], "train config: qm9 frame")

    def tokenizer(self) -> MoleculeTokenizer:
        return MoleculeTokenizer()

    def shard_dir(self) -> Path:
        cfg = self.cfg
        if cfg.shard_dir:
            return Path(cfg.shard_dir)
        limit = f"-n{cfg.max_train_sequences}" if cfg.max_train_sequences else ""
        frame = "" if self.settings["frame"] == "native" else f"-{self.settings['frame']}"
        return cache_dir() / "shards" / f"{self.name}-train-r{cfg.rotations}{frame}-s{cfg.seed}{limit}"

    def prepare_data(self, tokenizer) -> ShardDataset:
        cfg, shard_dir = self.cfg, self.shard_dir()
        if read_index(shard_dir) is None:
            print(f"preprocessing QM9 train tokens into {shard_dir} (once) ...", file=sys.stderr)
            write_shards(qm9_train_tokens(tokenizer, cfg.rotations, cfg.seed, cfg.max_train_sequences,
                                          frame=self.settings["frame"]),
                         shard_dir, extra_index={"source": "qm9-train", "rotations": cfg.rotations,
                                                 "frame": self.settings["frame"],
                                                 "seed": cfg.seed, "limit": cfg.max_train_sequences})
        return ShardDataset(shard_dir)

    @classmethod
    def evaluate(cls, outputs: list) -> dict:
        """EDM metrics of the molecules (stability, validity, uniqueness)."""
        return evaluate_molecules(outputs)

    @classmethod
    def write_outputs(cls, outputs: list, out_dir: Path) -> list[str]:
        write_sdf(outputs, Path(out_dir) / "molecules.sdf")
        return ["molecules.sdf"]
