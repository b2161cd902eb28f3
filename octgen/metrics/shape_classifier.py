"""A shape classifier for prompt fidelity: category and attribute accuracy.

Generated shapes are judged by a classifier trained on the procedural dataset: it
reads a solid 32^3 voxelisation and predicts the category and, per category, each
attribute that can be measured from geometry (leg count, height class...).

The voxelisation measures the same thing for dataset shapes and generated meshes:
the 32^3 cells that touch the solid. From an SDF: any corner or the centre of the
cell inside. From a mesh: the cells its surface samples fall in, with the enclosed
cells filled (``scipy.ndimage.binary_fill_holes``).
"""
from __future__ import annotations

import numpy as np
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from ..data.grid import sdf_grid

VOXEL_DEPTH = 5  # 32^3


def _fill(shell_XYZ: np.ndarray) -> np.ndarray:
    """Solid from a surface shell: enclosed cells are filled. The shell comes from
    dense surface samples (32 per cell), dense enough to leave no pinholes."""
    from scipy.ndimage import binary_fill_holes

    return binary_fill_holes(shell_XYZ)


def _cells_to_grid(xyz_N3: np.ndarray, depth: int) -> np.ndarray:
    res = 1 << depth
    grid = np.zeros((res, res, res), dtype=bool)
    grid[xyz_N3[:, 0], xyz_N3[:, 1], xyz_N3[:, 2]] = True
    return grid


@torch.no_grad()
def sdf_to_voxels(sdf_fn, depth: int = VOXEL_DEPTH) -> np.ndarray:
    """(R, R, R) bool: cells that touch the solid (any of the 8 corners or the centre
    inside), the same quantity the mesh path measures (surface cells + enclosed)."""
    res = 1 << depth
    inside_c = sdf_grid(sdf_fn, res + 1, sampling="corner") < 0  # the (res + 1)^3 cell corners
    any_corner = torch.zeros(res, res, res, dtype=torch.bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                any_corner |= inside_c[dx:dx + res, dy:dy + res, dz:dz + res]
    return (any_corner | (sdf_grid(sdf_fn, res, sampling="centre") < 0)).numpy()


def mesh_to_voxels(mesh, depth: int = VOXEL_DEPTH) -> np.ndarray:
    """(R, R, R) bool solid voxels of a mesh already in the [-1, 1] frame."""
    from ..octree import mesh_to_octree

    from ..octree.mesh import surface_sample_count

    count = surface_sample_count(float(mesh.area), depth, per_cell=32, min_points=50_000)
    octree = mesh_to_octree(mesh, depth, normalize=False, num_points=count)
    return _fill(_cells_to_grid(octree.xyz(depth).numpy(), depth))


class ShapeClassifier(ModelMixin, ConfigMixin):
    """3D CNN over (B, 1, 32, 32, 32) voxels with a category head and attribute heads.

    Args:
        categories: category names, in label order.
        attributes: ``{category: {attribute: [value labels as str]}}`` (measurable ones).
        channels: one stride-2 stage each.
    """

    @register_to_config
    def __init__(self, categories: list[str], attributes: dict, channels: tuple = (8, 16, 32, 64)):
        super().__init__()
        layers, cin = [], 1
        for cout in channels:
            layers += [nn.Conv3d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                       nn.Conv3d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU()]
            cin = cout
        self.trunk = nn.Sequential(*layers)
        # Average and max pooling: after per-group normalisation the spatial mean of a
        # channel carries little, the max (is a part present anywhere?) a lot.
        feat = 2 * cin
        self.category_head = nn.Linear(feat, len(categories))
        self.heads = nn.ModuleDict({
            self.head_name(cat, attr): nn.Linear(feat, len(values))
            for cat, attrs in attributes.items() for attr, values in attrs.items()})

    @staticmethod
    def head_name(category: str, attribute: str) -> str:
        return f"{category}__{attribute}".replace(".", "_").replace("-", "_").replace(" ", "_")

    def forward(self, voxels_B1XYZ: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns category logits (B, C) and per-head attribute logits (B, V_head)."""
        fmap = self.trunk(voxels_B1XYZ.float())  # (B, C, r, r, r)
        feat = torch.cat([fmap.mean(dim=(2, 3, 4)), fmap.amax(dim=(2, 3, 4))], dim=1)
        return self.category_head(feat), {k: h(feat) for k, h in self.heads.items()}

    @torch.no_grad()
    def predict(self, voxels_XYZ_list: list[np.ndarray]) -> list[dict]:
        """Per shape: ``{"category": name, "attributes": {attr: value label}}`` (the
        attributes of the predicted category)."""
        x = torch.from_numpy(np.stack(voxels_XYZ_list)).float()[:, None]
        cat_logits, head_logits = self(x.to(self.device))
        out = []
        for i, c in enumerate(cat_logits.argmax(1).tolist()):
            cat = self.config.categories[c]
            attrs = {a: vals[int(head_logits[self.head_name(cat, a)][i].argmax())]
                     for a, vals in self.config.attributes.get(cat, {}).items()}
            out.append({"category": cat, "attributes": attrs})
        return out


def dataset_label_space() -> tuple[list[str], dict]:
    """Categories and measurable attribute values of the procedural dataset."""
    from ..data.shapes import ATTRIBUTES, CATEGORIES

    attrs = {c: {a.name: [str(v) for v in a.values] for a in ATTRIBUTES[c] if a.measurable} for c in CATEGORIES}
    return list(CATEGORIES), attrs


def voxelise_split(split: str, size: int, seed: int = 0) -> tuple[np.ndarray, list]:
    """Voxels (N, R, R, R) bool and samples' (category, attributes) of a dataset split."""
    from ..data.shapes import ShapeDataset

    ds = ShapeDataset(split, size=size, seed=seed)
    vox, labels = [], []
    for i in range(len(ds)):
        s = ds[i]
        vox.append(sdf_to_voxels(s.sdf))
        labels.append((s.category, {k: str(v) for k, v in s.attributes.items()}))
    return np.stack(vox), labels


def classifier_loss(model: ShapeClassifier, vox_B1XYZ: torch.Tensor, labels: list) -> torch.Tensor:
    """Cross-entropy on the category plus each true category's attribute heads."""
    cats = model.config.categories
    cat_logits, heads = model(vox_B1XYZ)
    target = torch.tensor([cats.index(c) for c, _ in labels], device=cat_logits.device)
    loss = nn.functional.cross_entropy(cat_logits, target)
    terms = []
    for i, (c, attrs) in enumerate(labels):
        for a, values in model.config.attributes.get(c, {}).items():
            logits = heads[model.head_name(c, a)][i:i + 1]
            terms.append(nn.functional.cross_entropy(logits, torch.tensor([values.index(attrs[a])], device=logits.device)))
    return loss + (torch.stack(terms).mean() if terms else 0.0)


def evaluate_classifier(model: ShapeClassifier, vox: np.ndarray, labels: list) -> dict:
    """Category accuracy and attribute accuracy (over attributes of correctly
    classified shapes, and over all shapes given the true category)."""
    preds = model.predict(list(vox))
    cat_ok = [p["category"] == c for p, (c, _) in zip(preds, labels)]
    x = torch.from_numpy(vox).float()[:, None]
    with torch.no_grad():
        _, heads = model(x.to(model.device))
    attr_ok = []
    for i, (c, attrs) in enumerate(labels):
        for a, values in model.config.attributes.get(c, {}).items():
            attr_ok.append(values[int(heads[model.head_name(c, a)][i].argmax())] == attrs[a])
    return {"category_accuracy": float(np.mean(cat_ok)),
            "attribute_accuracy_given_category": float(np.mean(attr_ok)) if attr_ok else float("nan"),
            "n": len(labels)}
