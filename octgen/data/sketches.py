"""Line drawings of SDF shapes: the training sketches for sketch conditioning.

A sketch is what a person draws on a sketchpad: black strokes on white, the outline
of the object plus its visible inner edges, from a roughly three-quarter view. We
render it from the shape's signed distance function:

1. orthographic sphere tracing from a jittered view (y is up) gives, per pixel,
   hit / miss, depth and surface normal;
2. strokes are the silhouette (hit next to miss), depth discontinuities (one part in
   front of another) and creases (normals turning by more than ~35 degrees);
3. strokes are thickened to a jittered pen width.

The result goes through :func:`octgen.condition.sketch.preprocess_sketch`, the same
function that prepares user sketches.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class SketchView:
    """Camera for a sketch: angles in degrees, y up; azimuth 0 looks along -z."""

    azimuth: float = 35.0
    elevation: float = 20.0

    @staticmethod
    def random(generator: torch.Generator, azimuth_range=(15.0, 75.0), elevation_range=(10.0, 35.0)) -> "SketchView":
        u = torch.rand(2, generator=generator).tolist()
        return SketchView(azimuth_range[0] + u[0] * (azimuth_range[1] - azimuth_range[0]),
                          elevation_range[0] + u[1] * (elevation_range[1] - elevation_range[0]))


def _camera(view: SketchView) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    az, el = math.radians(view.azimuth), math.radians(view.elevation)
    eye_dir = torch.tensor([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    forward = -eye_dir
    right = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0]))
    right = right / right.norm()
    up = torch.linalg.cross(right, forward)
    return forward, right, up


_EXTENT = 1.35  # half-width of the orthographic view in scene units


def trace_sdf(sdf, view: SketchView, size: int = 192, extent: float = _EXTENT, max_steps: int = 96,
              eps: float = 2e-3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Orthographic sphere tracing of ``sdf`` (y up) seen from ``view``.

    Returns:
        hit_HW: (size, size) bool.
        depth_HW: (size, size) float, distance along the ray (inf where missed).
        normal_HW3: (size, size, 3) float unit normals (0 where missed).
    """
    forward, right, up = _camera(view)
    lin = torch.linspace(extent, -extent, size)
    v, u = torch.meshgrid(lin, -lin, indexing="ij")  # row 0 is the top of the image
    origins = (u[..., None] * right + v[..., None] * up - 2.0 * forward).reshape(-1, 3)
    # Start each ray where it enters the [-1, 1] cube; rays that miss it never step.
    inv = 1.0 / torch.where(forward.abs() < 1e-9, torch.full_like(forward, 1e-9), forward)
    t0 = (-1.0 - origins) * inv
    t1 = (1.0 - origins) * inv
    t_near = torch.minimum(t0, t1).amax(dim=1).clamp_min(0.0)
    t_far = torch.maximum(t0, t1).amin(dim=1)
    t = t_near.clone()
    active = (t_near < t_far).nonzero().squeeze(1)
    hit = torch.zeros(origins.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for _ in range(max_steps):
            if active.numel() == 0:
                break
            d = sdf(origins[active] + t[active, None] * forward).float()
            done = d < eps
            hit[active[done]] = True
            t[active] += torch.where(done, torch.zeros_like(d), 0.95 * d.clamp_min(eps / 2))
            keep = ~done & (t[active] < t_far[active])
            active = active[keep]
        depth = torch.where(hit, t, torch.full_like(t, float("inf")))
        normal = torch.zeros(origins.shape[0], 3)
        idx = hit.nonzero().squeeze(1)
        if idx.numel():
            p = origins[idx] + t[idx, None] * forward
            h = 2e-3
            grads = [sdf(p + h * e) - sdf(p - h * e) for e in torch.eye(3)]
            n = torch.stack(grads, dim=1).float()
            normal[idx] = n / n.norm(dim=1, keepdim=True).clamp_min(1e-8)
    return hit.reshape(size, size), depth.reshape(size, size), normal.reshape(size, size, 3)


def edges_from_trace(hit_HW: torch.Tensor, depth_HW: torch.Tensor, normal_HW3: torch.Tensor,
                     facing_HW: torch.Tensor | None = None, pixel: float = 0.0, depth_jump: float = 0.05,
                     crease_deg: float = 35.0, grazing: float = 0.3) -> torch.Tensor:
    """(H, W) bool stroke pixels: silhouette, depth discontinuities and creases.

    ``facing_HW`` is |normal . view direction|; where it is below ``grazing`` the
    surface turns away steeply (next to a silhouette), depth and normals change fast
    between pixels without an edge there, so only the silhouette test applies. A
    depth step counts as an edge only beyond what the surface's own slope gives over
    one ``pixel`` (in scene units).
    """
    edges = torch.zeros_like(hit_HW)
    steady = hit_HW if facing_HW is None else hit_HW & (facing_HW >= grazing)
    if facing_HW is None:
        slope_HW = torch.zeros_like(depth_HW)
    else:
        f = facing_HW.clamp(grazing, 1.0)
        slope_HW = (1 - f * f).sqrt() / f * pixel
    cos_crease = math.cos(math.radians(crease_deg))
    for dim in (0, 1):
        a_hit, b_hit = hit_HW.narrow(dim, 0, hit_HW.shape[dim] - 1), hit_HW.narrow(dim, 1, hit_HW.shape[dim] - 1)
        a_d, b_d = depth_HW.narrow(dim, 0, depth_HW.shape[dim] - 1), depth_HW.narrow(dim, 1, depth_HW.shape[dim] - 1)
        a_n, b_n = normal_HW3.narrow(dim, 0, normal_HW3.shape[dim] - 1), normal_HW3.narrow(dim, 1, normal_HW3.shape[dim] - 1)
        both = steady.narrow(dim, 0, hit_HW.shape[dim] - 1) & steady.narrow(dim, 1, hit_HW.shape[dim] - 1)
        allowed = depth_jump + 1.5 * torch.maximum(slope_HW.narrow(dim, 0, hit_HW.shape[dim] - 1),
                                                   slope_HW.narrow(dim, 1, hit_HW.shape[dim] - 1))
        e = (a_hit != b_hit) | (both & ((a_d - b_d).abs() > allowed)) | (both & ((a_n * b_n).sum(-1) < cos_crease))
        # Mark the pixel on the object side (the nearer one for depth jumps).
        mark_a = e & a_hit & (~b_hit | (a_d <= b_d))
        mark_b = e & b_hit & ~mark_a
        sl = [slice(None)] * 2
        sl[dim] = slice(0, -1)
        edges[tuple(sl)] |= mark_a
        sl[dim] = slice(1, None)
        edges[tuple(sl)] |= mark_b
    return edges


def render_sketch(sdf, generator: torch.Generator | None = None, view: SketchView | None = None,
                  size: int = 192, stroke_px: int | None = None) -> np.ndarray:
    """A line drawing of ``sdf``: (size, size) uint8, black (0) strokes on white (255).

    Args:
        sdf: callable (N, 3) -> (N,) signed distances in the [-1, 1] frame, y up.
        generator: drives the jittered view and pen width (same generator state,
            same drawing); ``None`` uses the canonical view and a 2 px pen.
        view: fix the view instead of drawing one.
        stroke_px: fix the pen width (1..4 px at 192 px) instead of drawing one.
    """
    if view is None:
        view = SketchView.random(generator) if generator is not None else SketchView()
    if stroke_px is None:
        stroke_px = int(torch.randint(1, 4, (1,), generator=generator)) if generator is not None else 2
    hit, depth, normal = trace_sdf(sdf, view, size)
    facing = (normal @ _camera(view)[0]).abs()
    edges = edges_from_trace(hit, depth, normal, facing, pixel=2 * _EXTENT / (size - 1)).float()[None, None]
    if stroke_px > 1:
        edges = F.max_pool2d(edges, kernel_size=stroke_px, stride=1, padding=stroke_px // 2)[..., :size, :size]
    return (255 * (1 - edges[0, 0].clamp(0, 1))).to(torch.uint8).numpy()
