"""Signed distance functions of primitives and their unions, vectorised in torch.

Every node is a callable ``sdf(p_N3) -> d_N`` on float32 points and knows a
conservative axis-aligned bounding box (:meth:`SDF.bounds`), which lets a shape be
fitted into the unit cube without sampling it.

Conventions: negative inside, positive outside, y is up. Primitive distances are
exact (the 2D polygon, box, cylinder, capsule, torus and revolved / extruded
profiles follow the well-known closed forms); the ellipsoid uses the first-order
bound ``k0 (k0 - 1) / k1``, exact on its surface. A union (``min``) of exact SDFs
is exact outside and a lower bound on the depth inside, so every shape built here is
Lipschitz-1 up to the ellipsoid term: a cell whose centre is farther from the
surface than its half diagonal cannot contain surface, which is what
:func:`octgen.data.sdf.sdf_to_octree` relies on.
"""
from __future__ import annotations

import math

import numpy as np
import torch

_EPS = 1e-9


def _vec(v, n: int = 3) -> torch.Tensor:
    t = torch.as_tensor(v, dtype=torch.float32).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n).clone()
    return t


def rotation(axis: str, angle: float) -> np.ndarray:
    """3x3 rotation matrix by ``angle`` radians about the x, y or z axis."""
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)
    raise ValueError(f"axis must be x, y or z, got {axis!r}")


class SDF:
    """Base node: subclasses implement ``__call__`` and ``bounds``."""

    def __call__(self, p_N3: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - interface
        """(lo, hi): float64 arrays of shape (3,) enclosing the solid."""
        raise NotImplementedError


class Box(SDF):
    """Axis-aligned box with half extents ``half`` centred at ``center``; ``round``
    rounds its edges (the outer size stays ``2 * half``)."""

    def __init__(self, half, center=(0, 0, 0), round: float = 0.0):
        self.half, self.center, self.round = _vec(half), _vec(center), float(round)
        if (self.half <= 0).any() or not 0 <= self.round <= float(self.half.min()):
            raise ValueError(f"bad box: half={self.half.tolist()} round={self.round}")

    def __call__(self, p_N3):
        q = (p_N3 - self.center).abs() - (self.half - self.round)
        outside = q.clamp_min(0).norm(dim=-1)
        inside = q.amax(dim=-1).clamp_max(0)
        return outside + inside - self.round

    def bounds(self):
        c, h = self.center.double().numpy(), self.half.double().numpy()
        return c - h, c + h


class Cylinder(SDF):
    """Capped cylinder along y: radius ``radius``, half height ``half_height``;
    ``round`` rounds the rim."""

    def __init__(self, radius: float, half_height: float, center=(0, 0, 0), round: float = 0.0):
        self.r, self.h, self.center, self.round = float(radius), float(half_height), _vec(center), float(round)
        if self.r <= 0 or self.h <= 0 or not 0 <= self.round <= min(self.r, self.h):
            raise ValueError(f"bad cylinder: r={self.r} h={self.h} round={self.round}")

    def __call__(self, p_N3):
        q = p_N3 - self.center
        d_N2 = torch.stack([q[:, [0, 2]].norm(dim=-1) - (self.r - self.round),
                            q[:, 1].abs() - (self.h - self.round)], dim=-1)
        return d_N2.clamp_min(0).norm(dim=-1) + d_N2.amax(dim=-1).clamp_max(0) - self.round

    def bounds(self):
        c = self.center.double().numpy()
        e = np.array([self.r, self.h, self.r])
        return c - e, c + e


class Capsule(SDF):
    """Segment from ``a`` to ``b`` thickened by ``radius`` (legs, arms, rails)."""

    def __init__(self, a, b, radius: float):
        self.a, self.b, self.r = _vec(a), _vec(b), float(radius)
        self.ab = self.b - self.a
        self.ab2 = float((self.ab * self.ab).sum()) + _EPS
        if self.r <= 0:
            raise ValueError(f"capsule radius must be > 0, got {self.r}")

    def __call__(self, p_N3):
        ap = p_N3 - self.a
        t = ((ap @ self.ab) / self.ab2).clamp(0, 1)
        return (ap - t[:, None] * self.ab).norm(dim=-1) - self.r

    def bounds(self):
        a, b = self.a.double().numpy(), self.b.double().numpy()
        return np.minimum(a, b) - self.r, np.maximum(a, b) + self.r


class Torus(SDF):
    """Torus in the xz plane (axis y): ring radius ``major``, tube radius ``minor``."""

    def __init__(self, major: float, minor: float, center=(0, 0, 0)):
        self.R, self.r, self.center = float(major), float(minor), _vec(center)
        if not 0 < self.r < self.R:
            raise ValueError(f"bad torus: major={self.R} minor={self.r}")

    def __call__(self, p_N3):
        q = p_N3 - self.center
        ring = q[:, [0, 2]].norm(dim=-1) - self.R
        return torch.stack([ring, q[:, 1]], dim=-1).norm(dim=-1) - self.r

    def bounds(self):
        c = self.center.double().numpy()
        e = np.array([self.R + self.r, self.r, self.R + self.r])
        return c - e, c + e


class Ellipsoid(SDF):
    """Axis-aligned ellipsoid with semi-axes ``radii`` (first-order distance bound)."""

    def __init__(self, radii, center=(0, 0, 0)):
        self.radii, self.center = _vec(radii), _vec(center)
        if (self.radii <= 0).any():
            raise ValueError(f"ellipsoid radii must be > 0, got {self.radii.tolist()}")

    def __call__(self, p_N3):
        q = p_N3 - self.center
        k0 = (q / self.radii).norm(dim=-1)
        k1 = (q / (self.radii * self.radii)).norm(dim=-1)
        return k0 * (k0 - 1) / (k1 + _EPS)

    def bounds(self):
        c, r = self.center.double().numpy(), self.radii.double().numpy()
        return c - r, c + r


def _inside_even_odd(p_N2: torch.Tensor, v_M2: torch.Tensor) -> torch.Tensor:
    """(N,) bool: point inside the closed polygon ``v_M2`` (even-odd rule, ray to +x)."""
    nxt = torch.roll(v_M2, -1, dims=0)
    e_M2 = nxt - v_M2
    slope = e_M2[:, 0] / torch.where(e_M2[:, 1] == 0, torch.full_like(e_M2[:, 1], _EPS), e_M2[:, 1])
    y = p_N2[:, None, 1]
    straddles = (v_M2[None, :, 1] <= y) != (nxt[None, :, 1] <= y)
    x_cross = v_M2[None, :, 0] + (y - v_M2[None, :, 1]) * slope
    return ((straddles & (p_N2[:, None, 0] < x_cross)).sum(dim=1) % 2).bool()


def polygon_sdf(p_N2: torch.Tensor, v_M2: torch.Tensor) -> torch.Tensor:
    """Exact signed distance from 2D points to a closed simple polygon.

    Args:
        p_N2: (N, 2) query points.
        v_M2: (M, 2) polygon vertices in order (either orientation), M >= 3.
    Returns:
        (N,) distances, negative inside (even-odd rule).
    """
    closed = torch.cat([v_M2, v_M2[:1]])
    d = polyline_distance(p_N2, closed)
    return torch.where(_inside_even_odd(p_N2, v_M2), -d, d)


def polyline_distance(p_N2: torch.Tensor, v_M2: torch.Tensor) -> torch.Tensor:
    """(N,) unsigned distance from 2D points to the open polyline through ``v_M2`` (M >= 2)."""
    a_M2, e_M2 = v_M2[:-1], v_M2[1:] - v_M2[:-1]
    inv_len2 = 1.0 / ((e_M2 * e_M2).sum(-1) + _EPS)
    # x and y kept apart: reductions over a trailing dimension of 2 are slow in torch.
    wx = p_N2[:, 0:1] - a_M2[:, 0]                                # (N, M)
    wy = p_N2[:, 1:2] - a_M2[:, 1]
    t = ((wx * e_M2[:, 0] + wy * e_M2[:, 1]) * inv_len2).clamp_(0, 1)
    dx = wx.sub_(t * e_M2[:, 0])
    dy = wy.sub_(t * e_M2[:, 1])
    return (dx.square_() + dy.square_()).amin(dim=1).sqrt()


class Revolve(SDF):
    """Solid or shell of revolution about the y axis.

    Args:
        profile: (M, 2) points (r, y) with r >= 0. As a solid (``thickness`` None)
            the profile runs from the axis (r = 0) round the outside back to the
            axis; the axis closes it.
            As a shell the profile is an open curve thickened by ``thickness``.
        center: position of the profile's origin.
    """

    def __init__(self, profile, center=(0, 0, 0), thickness: float | None = None):
        prof = torch.as_tensor(np.asarray(profile, dtype=np.float32))
        if prof.ndim != 2 or prof.shape[1] != 2 or len(prof) < 2 or (prof[:, 0] < 0).any():
            raise ValueError("profile must be (M, 2) with r >= 0")
        self.profile, self.center, self.thickness = prof, _vec(center), thickness
        if thickness is None:
            if prof[0, 0] > 1e-6 or prof[-1, 0] > 1e-6:
                raise ValueError("a solid profile must start and end on the axis (r = 0)")
        elif not thickness > 0:
            raise ValueError(f"shell thickness must be > 0, got {thickness}")

    def __call__(self, p_N3):
        q = p_N3 - self.center
        q2 = torch.stack([q[:, [0, 2]].norm(dim=-1), q[:, 1]], dim=-1)
        d = polyline_distance(q2, self.profile)
        if self.thickness is None:
            # The closing edge runs along the axis: it decides inside / outside but is
            # no surface, so distances go to the profile only.
            return torch.where(_inside_even_odd(q2, self.profile), -d, d)
        return d - self.thickness

    def bounds(self):
        t = self.thickness or 0.0
        r = float(self.profile[:, 0].max()) + t
        c = self.center.double().numpy()
        lo = np.array([-r, float(self.profile[:, 1].min()) - t, -r])
        hi = np.array([r, float(self.profile[:, 1].max()) + t, r])
        return c + lo, c + hi


class Extrude(SDF):
    """A 2D polygon extruded along one axis.

    Args:
        polygon: (M, 2) vertices in the plane of the two other axes, in (x, y, z)
            order minus ``axis`` (axis z: (x, y); axis y: (x, z); axis x: (y, z)).
        half_length: half the extrusion length along ``axis``.
        round: rounds every edge by this radius (the polygon is shrunk to keep the size).
    """

    _PLANES = {"x": ([1, 2], 0), "y": ([0, 2], 1), "z": ([0, 1], 2)}

    def __init__(self, polygon, half_length: float, axis: str = "z", center=(0, 0, 0), round: float = 0.0):
        self.polygon = torch.as_tensor(np.asarray(polygon, dtype=np.float32))
        if self.polygon.ndim != 2 or self.polygon.shape[1] != 2 or len(self.polygon) < 3:
            raise ValueError("polygon must be (M >= 3, 2)")
        self.plane, self.along = self._PLANES[axis]
        self.h, self.center, self.round = float(half_length), _vec(center), float(round)

    def __call__(self, p_N3):
        q = p_N3 - self.center
        d2 = polygon_sdf(q[:, self.plane], self.polygon) + self.round
        w_N2 = torch.stack([d2, q[:, self.along].abs() - (self.h - self.round)], dim=-1)
        return w_N2.clamp_min(0).norm(dim=-1) + w_N2.amax(dim=-1).clamp_max(0) - self.round

    def bounds(self):
        lo, hi = np.zeros(3), np.zeros(3)
        poly = self.polygon.double().numpy()
        lo[self.plane], hi[self.plane] = poly.min(0), poly.max(0)
        lo[self.along], hi[self.along] = -self.h, self.h
        c = self.center.double().numpy()
        return c + lo, c + hi


class Transform(SDF):
    """``child`` rotated by ``rot`` (3x3, local -> world) and moved by ``offset``."""

    def __init__(self, child: SDF, rot=None, offset=(0, 0, 0)):
        self.child = child
        self.rot_np = np.eye(3) if rot is None else np.asarray(rot, dtype=np.float64)
        self.rot = torch.as_tensor(self.rot_np, dtype=torch.float32)
        self.offset = _vec(offset)

    def __call__(self, p_N3):
        # local = R^T (p - t), written for row vectors.
        return self.child((p_N3 - self.offset) @ self.rot)

    def bounds(self):
        lo, hi = self.child.bounds()
        corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
        world = corners @ self.rot_np.T + self.offset.double().numpy()
        return world.min(0), world.max(0)


def box_distance(p_N3: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """(N,) Euclidean distance from points to an axis-aligned box (0 inside)."""
    return torch.maximum(lo - p_N3, p_N3 - hi).clamp_min(0).norm(dim=-1)


class Union(SDF):
    """Union (pointwise minimum) of several parts.

    A part is evaluated only at points where it can lower the running minimum: its
    SDF is at least the distance to its bounding box, so points whose box distance
    already exceeds the minimum are skipped. The result is the same; the saving is
    large for shapes of many small parts (legs, fins, handles).
    """

    # Below this many points the masking costs more than it saves.
    _CULL_MIN_POINTS = 2048

    def __init__(self, parts):
        self.parts = [p for p in parts if p is not None]
        if not self.parts:
            raise ValueError("union of nothing")
        boxes = [p.bounds() for p in self.parts]
        self._lo = [torch.as_tensor(b[0], dtype=torch.float32) for b in boxes]
        self._hi = [torch.as_tensor(b[1], dtype=torch.float32) for b in boxes]

    def __call__(self, p_N3):
        d = self.parts[0](p_N3)
        cull = p_N3.shape[0] >= self._CULL_MIN_POINTS
        for part, lo, hi in zip(self.parts[1:], self._lo[1:], self._hi[1:]):
            if not cull:
                d = torch.minimum(d, part(p_N3))
                continue
            idx = (box_distance(p_N3, lo, hi) < d).nonzero().squeeze(1)
            if idx.numel():
                d[idx] = torch.minimum(d[idx], part(p_N3[idx]))
        return d

    def bounds(self):
        b = [p.bounds() for p in self.parts]
        return np.min([x[0] for x in b], axis=0), np.max([x[1] for x in b], axis=0)


class Subtract(SDF):
    """``base`` minus ``cut`` (max(d_base, -d_cut)); exact outside ``cut``, a bound elsewhere."""

    def __init__(self, base: SDF, cut: SDF):
        self.base, self.cut = base, cut

    def __call__(self, p_N3):
        return torch.maximum(self.base(p_N3), -self.cut(p_N3))

    def bounds(self):
        return self.base.bounds()


class Mirror(SDF):
    """``child`` united with its mirror image across the plane ``axis = 0``."""

    def __init__(self, child: SDF, axis: int = 0):
        self.child, self.axis = child, axis

    def __call__(self, p_N3):
        q = p_N3.clone()
        q[:, self.axis] = q[:, self.axis].abs()
        return self.child(q)

    def bounds(self):
        lo, hi = self.child.bounds()
        m = max(abs(lo[self.axis]), abs(hi[self.axis]))
        lo, hi = lo.copy(), hi.copy()
        lo[self.axis], hi[self.axis] = -m, m
        return lo, hi


class Fitted(SDF):
    """``child`` centred on its bounding box and scaled uniformly so its longest side
    spans ``[-extent, extent]``. Distances scale by the same factor, so the result
    stays a signed distance."""

    def __init__(self, child: SDF, extent: float = 0.9):
        lo, hi = child.bounds()
        self.child = child
        self.scale = 2 * extent / float((hi - lo).max())
        self.shift = torch.as_tensor((lo + hi) / 2, dtype=torch.float32)

    def __call__(self, p_N3):
        return self.child(p_N3 / self.scale + self.shift) * self.scale

    def bounds(self):
        lo, hi = self.child.bounds()
        c = (lo + hi) / 2
        return (lo - c) * self.scale, (hi - c) * self.scale
