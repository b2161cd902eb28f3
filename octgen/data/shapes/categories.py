"""The object categories of the procedural shape set, with their named attributes.

Each category is one :class:`Category`: a table of discrete attributes a person
would name ("three legs", "a high back", "swept wings"), a noun with synonyms, and a
``build(attrs, rng)`` that turns attribute values plus a little continuous jitter
(sizes, angles, drawn from ``rng``) into an :class:`~.primitives.SDF` in metres,
y up. :mod:`.dataset` fits the result into [-0.9, 0.9]^3.

Every attribute changes the geometry visibly, so all are marked measurable; the
``kind`` says how (``count`` of parts, ``presence`` of a part, ``proportion`` of the
whole, ``form`` of a part).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .primitives import (
    SDF, Box, Capsule, Cylinder, Ellipsoid, Extrude, Mirror, Revolve, Torus, Transform, Union, rotation,
)

_HALF_PI = math.pi / 2


@dataclass(frozen=True)
class AttributeSpec:
    """One named attribute of a category.

    Attributes:
        name: key in ``ShapeSample.attributes``.
        values: the possible values (str, int or bool), sampled uniformly.
        phrases: per value, ``(adjective, with_phrase)``; either may be None. Captions
            use "a {adjective} chair" or "a chair with {with_phrase}".
        kind: how it shows in the geometry: count, presence, proportion or form.
        measurable: True when it can be read off the geometry alone.
    """

    name: str
    values: tuple
    phrases: dict
    kind: str
    measurable: bool = True


@dataclass(frozen=True)
class Category:
    name: str
    nouns: tuple[str, ...]
    attributes: tuple[AttributeSpec, ...]
    build: Callable[[dict, np.random.Generator], SDF] = field(repr=False)


def _attr(name, kind, phrases: dict, measurable: bool = True) -> AttributeSpec:
    return AttributeSpec(name, tuple(phrases), phrases, kind, measurable)


def _yes_no(with_yes: str, adj_no: str | None = None, with_no: str | None = None, adj_yes: str | None = None):
    return {True: (adj_yes, with_yes), False: (adj_no, with_no)}


_NUMBER = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


# ----------------------------------------------------------------------------- furniture
def _chair(a, rng):
    h, w, d, t = rng.uniform(0.42, 0.48), rng.uniform(0.42, 0.52), rng.uniform(0.42, 0.5), 0.05
    parts = []
    if a["seat"] == "round":
        parts.append(Cylinder(w / 2, t / 2, (0, h, 0), round=0.015))
    else:
        parts.append(Box((w / 2, t / 2, d / 2), (0, h, 0), round=0.012))
    if a["base"] == "four legs":
        r, splay = rng.uniform(0.018, 0.026), rng.uniform(0.0, 0.03)
        ix, iz = w / 2 - 0.04, d / 2 - 0.04
        if a["seat"] == "round":
            ix = iz = (w / 2 - 0.04) / math.sqrt(2)
        parts.append(Mirror(Mirror(Capsule((ix + splay, r, iz + splay), (ix, h, iz), r), 0), 2))
    else:
        parts.append(Cylinder(0.028, (h - 0.1) / 2, (0, 0.1 + (h - 0.1) / 2, 0)))
        spoke = rng.uniform(0.24, 0.3)
        for k in range(5):
            ang = 2 * math.pi * k / 5
            end = (spoke * math.cos(ang), 0.07, spoke * math.sin(ang))
            parts.append(Capsule((0, 0.1, 0), end, 0.02))
            parts.append(Ellipsoid((0.032, 0.032, 0.032), (end[0], 0.035, end[2])))
    back_h = rng.uniform(0.22, 0.3) if a["back"] == "low" else rng.uniform(0.5, 0.65)
    tilt = rotation("x", -rng.uniform(0.05, 0.18))
    back = Box((w / 2 * (0.85 if a["seat"] == "round" else 1.0), back_h / 2, 0.022), (0, back_h / 2, 0), round=0.01)
    parts.append(Transform(back, tilt, (0, h + t / 2 - 0.01, -d / 2 + 0.03)))
    if a["armrests"]:
        ay = h + rng.uniform(0.18, 0.24)
        ax = w / 2 + 0.01
        parts.append(Mirror(Box((0.03, 0.02, d * 0.42), (ax, ay, 0.0), round=0.01), 0))
        parts.append(Mirror(Capsule((ax, h, d * 0.32), (ax, ay, d * 0.32), 0.018), 0))
    return Union(parts)


CHAIR = Category("chair", ("chair",), (
    _attr("base", "form", {"four legs": (None, "four legs"), "swivel": ("swivel", "a five-star swivel base")}),
    _attr("back", "proportion", {"low": ("low-backed", "a low back"), "high": ("high-backed", "a tall back")}),
    _attr("armrests", "presence", _yes_no("armrests", "armless", "no armrests")),
    _attr("seat", "form", {"square": ("square-seated", "a square seat"), "round": ("round-seated", "a round seat")}),
), _chair)


def _table(a, rng):
    height = rng.uniform(0.70, 0.78) if a["height"] == "standard" else rng.uniform(0.38, 0.46)
    t = rng.uniform(0.03, 0.05)
    parts = []
    if a["top"] == "round":
        rad = rng.uniform(0.45, 0.6)
        parts.append(Cylinder(rad, t / 2, (0, height - t / 2, 0), round=0.01))
        leg_x = leg_z = rad * 0.55
    else:
        hx, hz = rng.uniform(0.6, 0.8), rng.uniform(0.35, 0.45)
        parts.append(Box((hx, t / 2, hz), (0, height - t / 2, 0), round=0.01))
        leg_x, leg_z = hx - 0.07, hz - 0.07
    if a["base"] == "four legs":
        s = rng.uniform(0.022, 0.032)
        parts.append(Mirror(Mirror(Box((s, (height - t) / 2, s), (leg_x, (height - t) / 2, leg_z), round=0.005), 0), 2))
        if a["shelf"]:
            parts.append(Box((leg_x + s, 0.016, leg_z + s), (0, height * 0.25, 0)))
    else:
        parts.append(Cylinder(0.055, (height - t) / 2, (0, (height - t) / 2, 0)))
        foot = min(leg_x, leg_z) * rng.uniform(0.9, 1.1)
        parts.append(Cylinder(foot, 0.02, (0, 0.02, 0), round=0.01))
        if a["shelf"]:
            parts.append(Cylinder(foot * 0.9, 0.016, (0, height * 0.3, 0)))
    return Union(parts)


TABLE = Category("table", ("table",), (
    _attr("top", "form", {"round": ("round", "a round top"), "rectangular": ("rectangular", "a rectangular top")}),
    _attr("base", "form", {"four legs": ("four-legged", "four legs"), "pedestal": ("pedestal", "a single central pedestal")}),
    _attr("height", "proportion", {"standard": ("dining-height", None), "low": ("low", "a low coffee-table height")}),
    _attr("shelf", "presence", _yes_no("a lower shelf", None, "no shelf underneath")),
), _table)


def _stool(a, rng):
    height = rng.uniform(0.42, 0.5) if a["height"] == "short" else rng.uniform(0.72, 0.82)
    r_seat, t = rng.uniform(0.15, 0.19), 0.04
    leg_r = rng.uniform(0.012, 0.016) if a["legs_thickness"] == "thin" else rng.uniform(0.026, 0.034)
    top_rad, foot_rad = r_seat * 0.7, r_seat * rng.uniform(1.05, 1.3)
    parts = []
    if a["seat"] == "round":
        parts.append(Cylinder(r_seat, t / 2, (0, height - t / 2, 0), round=0.012))
    else:
        parts.append(Box((r_seat * 0.9, t / 2, r_seat * 0.9), (0, height - t / 2, 0), round=0.012))
    n = a["legs"]
    phase = math.pi / 4 if n == 4 else math.pi / 2
    tops, feet = [], []
    for k in range(n):
        ang = phase + 2 * math.pi * k / n
        c, s = math.cos(ang), math.sin(ang)
        feet.append((foot_rad * c, leg_r, foot_rad * s))
        tops.append((top_rad * c, height - t, top_rad * s))
        parts.append(Capsule(feet[-1], tops[-1], leg_r))
    if a["footrest"]:
        f = rng.uniform(0.3, 0.4)
        bar = max(0.011, leg_r * 0.7)
        if a["seat"] == "round":  # a ring through the legs
            ring_y = leg_r * (1 - f) + (height - t) * f
            parts.append(Torus(foot_rad * (1 - f) + top_rad * f, bar, (0, ring_y, 0)))
        else:  # straight rungs between neighbouring legs
            ring = [tuple(np.add(np.multiply(fp, 1 - f), np.multiply(tp, f))) for fp, tp in zip(feet, tops)]
            for k in range(n):
                parts.append(Capsule(ring[k], ring[(k + 1) % n], bar))
    return Union(parts)


STOOL = Category("stool", ("stool",), (
    _attr("legs", "count", {3: ("three-legged", "three legs"), 4: ("four-legged", "four legs")}),
    _attr("height", "proportion", {"short": ("short", "a low seat"), "bar": ("tall bar", "a bar-height seat")}),
    _attr("seat", "form", {"round": ("round", "a round seat"), "square": ("square", "a square seat")}),
    _attr("footrest", "presence", _yes_no("a footrest", None, "no footrest")),
    _attr("legs_thickness", "proportion", {"thin": ("thin-legged", "thin legs"), "thick": ("sturdy", "thick legs")}),
), _stool)


def _bench(a, rng):
    length = rng.uniform(0.45, 0.55) if a["length"] == "short" else rng.uniform(0.85, 1.0)  # half length
    h, d, t = rng.uniform(0.42, 0.47), rng.uniform(0.17, 0.22), 0.04
    parts = []
    if a["seat"] == "slatted":
        n = 4
        gap = 0.012
        sw = (2 * d - (n - 1) * gap) / (2 * n)
        for k in range(n):
            z = -d + sw + k * (2 * sw + gap)
            parts.append(Box((length, t / 2, sw), (0, h - t / 2, z), round=0.006))
    else:
        parts.append(Box((length, t / 2, d), (0, h - t / 2, 0), round=0.01))
    if a["support"] == "legs":
        s = 0.028
        xs = [length - 0.08] + ([0.0] if a["length"] == "long" else [])
        for x in xs:
            parts.append(Mirror(Mirror(Box((s, (h - t) / 2, s), (x, (h - t) / 2, d - 0.05)), 0), 2))
    else:
        parts.append(Mirror(Box((0.025, (h - t) / 2, d * 0.95), (length - 0.09, (h - t) / 2, 0)), 0))
    if a["backrest"]:
        top = h + rng.uniform(0.35, 0.45)
        parts.append(Box((length, 0.08, 0.018), (0, top - 0.08, -d - 0.02), round=0.008))
        parts.append(Mirror(Box((0.025, (top - h) / 2 + 0.02, 0.018), (length - 0.1, h + (top - h) / 2 - 0.02, -d - 0.02)), 0))
    return Union(parts)


BENCH = Category("bench", ("bench", "park bench"), (
    _attr("backrest", "presence", _yes_no("a backrest", "backless", None)),
    _attr("length", "proportion", {"short": ("short", None), "long": ("long", None)}),
    _attr("support", "form", {"legs": (None, "legs"), "panels": (None, "solid side panels")}),
    _attr("seat", "form", {"solid": ("solid", "a solid seat"), "slatted": ("slatted", "a slatted seat")}),
), _bench)


def _sofa(a, rng):
    n = a["seats"]
    seat_w, depth = rng.uniform(0.28, 0.32), rng.uniform(0.42, 0.48)  # half widths
    hw = n * seat_w
    arm_w = 0.09 if a["arms"] != "none" else 0.0
    back_top = rng.uniform(0.72, 0.8) if a["back"] == "low" else rng.uniform(0.95, 1.05)
    parts = [Box((hw + arm_w, 0.14, depth), (0, 0.24, 0), round=0.03)]
    parts.append(Mirror(Mirror(Cylinder(0.025, 0.05, (hw + arm_w - 0.06, 0.05, depth - 0.06)), 0), 2))
    for k in range(n):
        x = -hw + seat_w * (2 * k + 1)
        parts.append(Box((seat_w - 0.01, 0.07, depth - 0.1), (x, 0.43, 0.08), round=0.05))
    parts.append(Box((hw + arm_w, (back_top - 0.1) / 2, 0.1), (0, 0.1 + (back_top - 0.1) / 2, -depth + 0.1), round=0.06))
    if a["arms"] != "none":
        arm_top = rng.uniform(0.6, 0.66)
        parts.append(Mirror(Box((arm_w, (arm_top - 0.1) / 2, depth), (hw + arm_w, 0.1 + (arm_top - 0.1) / 2, 0),
                                round=0.02 if a["arms"] == "square" else 0.06), 0))
        if a["arms"] == "rounded":
            roll = Transform(Cylinder(arm_w * 1.35, depth, round=0.04), rotation("x", _HALF_PI), (hw + arm_w, arm_top, 0))
            parts.append(Mirror(roll, 0))
    if a["layout"] == "L-shaped":
        ext = rng.uniform(0.3, 0.4)
        x0 = hw - seat_w
        parts.append(Box((seat_w, 0.14, ext), (x0, 0.24, depth + ext), round=0.03))
        parts.append(Box((seat_w - 0.01, 0.07, ext), (x0, 0.43, depth + ext - 0.01), round=0.05))
        parts.append(Cylinder(0.025, 0.05, (x0 + seat_w - 0.06, 0.05, depth + 2 * ext - 0.06)))
    return Union(parts)


SOFA = Category("sofa", ("sofa", "couch"), (
    _attr("seats", "count", {2: ("two-seat", "two seat cushions"), 3: ("three-seat", "three seat cushions")}),
    _attr("arms", "form", {"square": ("square-armed", "square arms"), "rounded": ("roll-armed", "rounded arms"),
                           "none": ("armless", "no arms")}),
    _attr("back", "proportion", {"low": ("low-backed", "a low back"), "high": ("high-backed", "a high back")}),
    _attr("layout", "form", {"straight": ("straight", None), "L-shaped": ("L-shaped", "a chaise extension")}),
), _sofa)


def _bed(a, rng):
    hw = rng.uniform(0.45, 0.5) if a["size"] == "single" else rng.uniform(0.75, 0.85)
    hl = rng.uniform(0.98, 1.05)
    parts = [Box((hw, 0.1, hl), (0, 0.25, 0), round=0.015),
             Box((hw - 0.03, 0.1, hl - 0.04), (0, 0.44, 0.02), round=0.06)]
    parts.append(Mirror(Mirror(Box((0.035, 0.08, 0.035), (hw - 0.05, 0.08, hl - 0.05)), 0), 2))
    head_top = rng.uniform(0.8, 0.95) if a["headboard"] == "low" else rng.uniform(1.25, 1.45)
    parts.append(Box((hw + 0.03, head_top / 2, 0.04), (0, head_top / 2, -hl - 0.04), round=0.02))
    if a["footboard"]:
        ft = rng.uniform(0.55, 0.65)
        parts.append(Box((hw + 0.03, ft / 2, 0.035), (0, ft / 2, hl + 0.035), round=0.02))
    if a["pillows"]:
        count = 1 if a["size"] == "single" else 2
        pw = (hw - 0.08) / count
        for k in range(count):
            x = -hw + 0.08 + pw * (2 * k + 1) - 0.08 * k if count == 2 else 0.0
            parts.append(Ellipsoid((pw * 0.9, 0.06, 0.16), (x, 0.58, -hl + 0.25)))
    return Union(parts)


BED = Category("bed", ("bed",), (
    _attr("size", "proportion", {"single": ("single", "a narrow mattress"), "double": ("double", "a wide mattress")}),
    _attr("headboard", "proportion", {"low": (None, "a low headboard"), "tall": (None, "a tall headboard")}),
    _attr("footboard", "presence", _yes_no("a footboard", None, "no footboard")),
    _attr("pillows", "presence", _yes_no("pillows", None, "no pillows")),
), _bed)


def _shelf(a, rng):
    n = a["shelves"]
    hw = rng.uniform(0.22, 0.28) if a["width"] == "narrow" else rng.uniform(0.5, 0.6)
    hd, t = rng.uniform(0.14, 0.18), 0.032
    gap = rng.uniform(0.3, 0.36)
    height = n * gap + t
    parts = [Mirror(Box((t / 2, height / 2, hd), (hw - t / 2, height / 2, 0)), 0)]
    for k in range(n + 1):
        parts.append(Box((hw, t / 2, hd), (0, t / 2 + k * gap, 0)))
    if a["back_panel"]:
        parts.append(Box((hw, height / 2, 0.014), (0, height / 2, -hd + 0.014)))
    return Union(parts)


SHELF = Category("shelf", ("bookshelf", "shelving unit", "bookcase"), (
    _attr("shelves", "count", {3: (None, "three shelves"), 4: (None, "four shelves"), 5: (None, "five shelves")}),
    _attr("width", "proportion", {"narrow": ("narrow", None), "wide": ("wide", None)}),
    _attr("back_panel", "presence", _yes_no("a back panel", "open-backed", None)),
), _shelf)


# ----------------------------------------------------------------------------- lamp
def _shade(kind, rng, size: float = 1.0):
    """Lamp shade as a thin shell of revolution, opening downwards, origin at its top,
    ``size`` times floor-lamp size."""
    if kind == "cone":
        rb, rt, hh = rng.uniform(0.16, 0.2), rng.uniform(0.07, 0.09), rng.uniform(0.2, 0.26)
        prof = [(rb, -hh), (rt, 0.0), (0.0, 0.0)]
    elif kind == "cylinder":
        r, hh = rng.uniform(0.12, 0.15), rng.uniform(0.2, 0.26)
        prof = [(r, -hh), (r, 0.0), (0.0, 0.0)]
    else:
        r = rng.uniform(0.15, 0.19)
        prof = [(r * math.sin(th), -r + r * math.cos(th)) for th in np.linspace(math.pi / 2, 0, 9)]
        prof = [(x, y + r) for x, y in prof]
        prof = [(x, y - r) for x, y in prof]
    return Revolve([(x * size, y * size) for x, y in prof], thickness=0.016 * max(size, 0.6))


def _lamp(a, rng):
    parts = []
    if a["base"] == "round":
        parts.append(Cylinder(rng.uniform(0.12, 0.15), 0.02, (0, 0.02, 0), round=0.01))
    else:
        s = rng.uniform(0.11, 0.13)
        parts.append(Box((s, 0.02, s), (0, 0.02, 0), round=0.01))
    if a["kind"] == "floor":
        top = rng.uniform(1.4, 1.6)
        parts.append(Capsule((0, 0.03, 0), (0, top, 0), 0.022))
        parts.append(Transform(_shade(a["shade"], rng), None, (0, top + 0.05, 0)))
    else:
        elbow = (0.0, rng.uniform(0.3, 0.38), -0.05)
        head = (0.0, elbow[1] + rng.uniform(0.05, 0.12), rng.uniform(0.22, 0.3))
        parts.append(Capsule((0, 0.03, -0.05), elbow, 0.016))
        parts.append(Capsule(elbow, head, 0.016))
        tilt = rotation("x", rng.uniform(0.3, 0.6))
        parts.append(Transform(_shade(a["shade"], rng, size=0.55), tilt, (head[0], head[1] + 0.02, head[2])))
    return Union(parts)


LAMP = Category("lamp", ("lamp", "light"), (
    _attr("kind", "form", {"desk": ("desk", "an angled arm"), "floor": ("floor", "a tall pole")}),
    _attr("shade", "form", {"cone": (None, "a conical shade"), "cylinder": (None, "a cylindrical drum shade"),
                            "dome": (None, "a dome shade")}),
    _attr("base", "form", {"round": (None, "a round base"), "square": (None, "a square base")}),
), _lamp)


# ----------------------------------------------------------------------------- tableware
def _bottle(a, rng):
    r = rng.uniform(0.03, 0.036) if a["body"] == "slim" else rng.uniform(0.05, 0.06)
    body_h = rng.uniform(0.16, 0.2)
    neck_r = rng.uniform(0.012, 0.015)
    neck_len = rng.uniform(0.02, 0.035) if a["neck"] == "short" else rng.uniform(0.07, 0.09)
    prof = [(0.0, 0.0), (r - 0.006, 0.0), (r, 0.006), (r, body_h)]
    if a["shoulders"] == "rounded":
        rr = r - neck_r
        for th in np.linspace(0, _HALF_PI, 7)[1:]:
            prof.append((neck_r + rr * math.cos(th), body_h + rr * math.sin(th)))
        top = body_h + rr
    else:
        top = body_h + rng.uniform(0.06, 0.08)
        prof.append((neck_r, top))
    prof += [(neck_r, top + neck_len), (neck_r + 0.003, top + neck_len), (neck_r + 0.003, top + neck_len + 0.006),
             (0.0, top + neck_len + 0.006)]
    parts = [Revolve(prof)]
    if a["cap"]:
        parts.append(Cylinder(neck_r + 0.004, 0.012, (0, top + neck_len + 0.01, 0), round=0.002))
    return Union(parts)


BOTTLE = Category("bottle", ("bottle",), (
    _attr("body", "proportion", {"slim": ("slim", "a slim body"), "wide": ("wide", "a wide body")}),
    _attr("neck", "proportion", {"short": ("short-necked", "a short neck"), "long": ("long-necked", "a long neck")}),
    _attr("shoulders", "form", {"rounded": ("round-shouldered", "rounded shoulders"),
                                "sloped": ("slope-shouldered", "sloping shoulders")}),
    _attr("cap", "presence", _yes_no("a cap", "uncapped", None, "capped")),
), _bottle)


def _handle(y_lo, y_hi, x_wall, reach, radius, square: bool):
    """A handle on the +x side: a polyline of capsules from the wall out and back."""
    mid = (y_lo + y_hi) / 2
    half = (y_hi - y_lo) / 2
    if square:
        pts = [(x_wall, y_hi), (x_wall + reach, y_hi), (x_wall + reach, y_lo), (x_wall, y_lo)]
    else:
        pts = [(x_wall + reach * math.cos(th) * 1.0, mid + half * math.sin(th)) for th in np.linspace(_HALF_PI, -_HALF_PI, 7)]
        pts = [(x_wall, y_hi)] + pts + [(x_wall, y_lo)]
    return Union([Capsule((p[0], p[1], 0), (q[0], q[1], 0), radius) for p, q in zip(pts[:-1], pts[1:])])


def _vase(a, rng):
    h = rng.uniform(0.2, 0.26) if a["height"] == "short" else rng.uniform(0.38, 0.46)
    rb = rng.uniform(0.05, 0.07)
    ys = np.linspace(0, 1, 9)
    if a["profile"] == "cylindrical":
        rs = rb * (1 + rng.uniform(-0.12, 0.12) * ys)
    elif a["profile"] == "bulbous":
        amp, stretch, power = rng.uniform(0.7, 1.1), rng.uniform(1.0, 1.25), rng.uniform(1.2, 2.0)
        rs = rb * (0.55 + amp * np.sin(np.pi * np.clip(ys * stretch, 0, 1)) ** power)
        rs[-1] = max(rs[-1], 0.5 * rb)
    else:
        rs = rb * (rng.uniform(0.45, 0.65) + rng.uniform(0.9, 1.3) * ys ** rng.uniform(1.5, 3.0))
    prof = [(0.0, 0.0)] + [(float(r), float(y * h)) for r, y in zip(rs, ys)]
    wall = 0.006
    parts = [Revolve(prof, thickness=wall)]
    if a["handles"]:
        y_hi, y_lo = h * 0.8, h * 0.5
        r_hi = float(np.interp(0.8, ys, rs))
        r_lo = float(np.interp(0.5, ys, rs))
        x_wall = min(r_hi, r_lo)
        reach = max(r_hi, r_lo) - x_wall + 0.04
        handle = _handle(y_lo, y_hi, x_wall + 0.002, reach, 0.011, square=False)
        parts.append(Mirror(handle, 0))
    return Union(parts)


VASE = Category("vase", ("vase",), (
    _attr("profile", "form", {"cylindrical": ("cylindrical", "straight sides"), "bulbous": ("bulbous", "a round belly"),
                              "flared": ("flared", "a flared mouth")}),
    _attr("height", "proportion", {"short": ("short", None), "tall": ("tall", None)}),
    _attr("handles", "presence", _yes_no("two handles", None, "no handles")),
), _vase)


def _mug(a, rng):
    r = rng.uniform(0.038, 0.045)
    h = rng.uniform(0.07, 0.085) if a["height"] == "short" else rng.uniform(0.11, 0.13)
    if a["shape"] == "straight":
        rs = [r, r]
    elif a["shape"] == "tapered":
        rs = [r * 0.78, r * 1.08]
    else:
        rs = [r * 0.85, r * 1.05, r * 0.9]
    ys = np.linspace(0, h, len(rs))
    wall = 0.0035
    prof = [(0.0, wall)] + [(float(rr), float(y) + wall) for rr, y in zip(rs, ys)]
    parts = [Revolve(prof, thickness=wall)]
    if a["handle"] != "none":
        y_hi, y_lo = h * 0.82, h * 0.22
        x_wall = min(float(np.interp(y_hi, ys, rs)), float(np.interp(y_lo, ys, rs)))
        parts.append(_handle(y_lo + wall, y_hi + wall, x_wall, rng.uniform(0.028, 0.036) + abs(rs[-1] - rs[0]) / 2,
                             0.0055, square=a["handle"] == "square"))
    return Union(parts)


MUG = Category("mug", ("mug", "cup"), (
    _attr("shape", "form", {"straight": ("straight-sided", "straight sides"), "tapered": ("tapered", "tapered sides"),
                            "barrel": ("barrel-shaped", "a barrel-shaped body")}),
    _attr("height", "proportion", {"short": ("short", None), "tall": ("tall", None)}),
    _attr("handle", "form", {"round": (None, "a round handle"), "square": (None, "a square handle"),
                             "none": ("handleless", "no handle")}),
), _mug)


def _bowl(a, rng):
    r = rng.uniform(0.08, 0.1)
    h = r * (rng.uniform(0.28, 0.34) if a["depth"] == "shallow" else rng.uniform(0.55, 0.7))
    wall = 0.004
    base_r = r * 0.45
    prof = [(0.0, 0.0), (base_r, 0.0)]
    for th in np.linspace(0, _HALF_PI, 8)[1:]:
        prof.append((base_r + (r - base_r) * math.sin(th), h * (1 - math.cos(th))))
    if a["rim"] == "flared":
        prof.append((r + 0.018, h + 0.004))
    foot = 0.0
    parts = []
    if a["foot"]:
        foot = rng.uniform(0.01, 0.016)
        parts.append(Revolve([(base_r * 0.8, 0.0), (base_r * 0.8, foot)], thickness=wall))
    parts.append(Revolve([(x, y + foot) for x, y in prof], thickness=wall))
    return Union(parts)


BOWL = Category("bowl", ("bowl",), (
    _attr("depth", "proportion", {"shallow": ("shallow", None), "deep": ("deep", None)}),
    _attr("foot", "presence", _yes_no("a foot ring", "footless", "a flat base", "footed")),
    _attr("rim", "form", {"plain": (None, "a plain rim"), "flared": (None, "a flared lip")}),
), _bowl)


# ----------------------------------------------------------------------------- vehicles
_Y_TO_X = rotation("z", -_HALF_PI)  # maps the local y axis onto world +x
_Y_TO_Z = rotation("x", _HALF_PI)   # maps the local y axis onto world +z


def _airplane(a, rng):
    length = rng.uniform(1.6, 1.8) if a["fuselage"] == "long" else rng.uniform(1.1, 1.25)
    fr = rng.uniform(0.075, 0.09)
    prof = [(0.0, 0.0), (0.025, 0.0), (fr * 0.9, 0.3), (fr, 0.45), (fr, length - 0.25),
            (fr * 0.8, length - 0.1), (fr * 0.45, length - 0.025), (0.0, length)]
    fus = Transform(Revolve(prof), _Y_TO_X, (-length / 2, 0, 0))
    parts = [fus]
    span = rng.uniform(0.75, 0.9)
    if a["wings"] == "straight":
        sweep, cr, ct, x0 = math.radians(rng.uniform(0, 6)), rng.uniform(0.26, 0.32), rng.uniform(0.17, 0.22), 0.12
    elif a["wings"] == "swept":
        sweep, cr, ct, x0 = math.radians(rng.uniform(30, 38)), rng.uniform(0.32, 0.38), rng.uniform(0.1, 0.13), 0.2
    else:
        sweep, cr, ct, x0 = math.radians(rng.uniform(55, 62)), length * 0.55, 0.05, 0.05
        span = (cr - ct) / math.tan(sweep) + 0.02
    tip_le = x0 - span * math.tan(sweep)
    wing = [(x0, 0.0), (tip_le, span), (tip_le - ct, span), (x0 - cr, 0.0), (tip_le - ct, -span), (tip_le, -span)]
    wing_y = -fr * 0.35
    parts.append(Extrude(wing, 0.022, "y", (0, wing_y, 0), round=0.01))
    if a["engines"]:
        stations = [0.35] if a["engines"] == 2 else [0.3, 0.62]
        for f in stations:
            z = f * span
            le = x0 - z * math.tan(sweep)
            nac = Transform(Cylinder(0.04, 0.1, round=0.02), _Y_TO_X, (le - 0.02, wing_y - 0.055, z))
            parts.append(Mirror(nac, 2))
    x_tail = -length / 2 + 0.05
    fin_h = rng.uniform(0.24, 0.3)
    fin = [(x_tail + 0.3, 0.0), (x_tail + 0.05 + fin_h * 0.6, fin_h), (x_tail + fin_h * 0.6 - 0.05, fin_h), (x_tail, 0.0)]
    parts.append(Extrude(fin, 0.02, "z", (0, fr * 0.5, 0), round=0.008))
    if a["wings"] != "delta" or a["tail"] == "T-tail":
        tail_y = fr * 0.2 if a["tail"] == "conventional" else fr * 0.5 + fin_h - 0.01
        tx = x_tail + (0.02 if a["tail"] == "conventional" else fin_h * 0.6 - 0.08)
        hs = rng.uniform(0.26, 0.32)
        stab = [(tx + 0.18, 0.0), (tx + 0.02, hs), (tx - 0.06, hs), (tx - 0.04, 0.0), (tx - 0.06, -hs), (tx + 0.02, -hs)]
        parts.append(Extrude(stab, 0.018, "y", (0, tail_y, 0), round=0.008))
    return Union(parts)


AIRPLANE = Category("airplane", ("airplane", "plane", "aircraft"), (
    _attr("wings", "form", {"straight": ("straight-winged", "straight wings"), "swept": ("swept-wing", "swept-back wings"),
                            "delta": ("delta-wing", "delta wings")}),
    _attr("engines", "count", {0: (None, "no wing engines"), 2: ("twin-engine", "two engines"),
                               4: ("four-engine", "four engines")}),
    _attr("tail", "form", {"conventional": (None, "a conventional tail"), "T-tail": (None, "a T-tail")}),
    _attr("fuselage", "proportion", {"short": ("short", "a short fuselage"), "long": ("long", "a long fuselage")}),
), _airplane)


def _car(a, rng):
    hw = rng.uniform(0.38, 0.43)
    wr = rng.uniform(0.15, 0.17) if a["wheels"] == "small" else rng.uniform(0.21, 0.24)
    lift = wr - 0.16
    b, s = 0.12 + lift, 0.52 + lift  # sill and belt line heights
    roof = s + rng.uniform(0.36, 0.42)
    if a["body"] == "sedan":
        prof = [(1.0, b + 0.05), (1.0, s - 0.05), (0.45, s), (0.12, roof), (-0.4, roof), (-0.72, s + 0.04),
                (-1.0, s), (-1.0, b + 0.05), (-0.95, b), (0.95, b)]
        spoiler_at = (-0.93, s + 0.02)
    elif a["body"] == "hatchback":
        prof = [(0.9, b + 0.05), (0.9, s - 0.05), (0.4, s), (0.08, roof), (-0.7, roof), (-0.82, s + 0.02),
                (-0.85, b + 0.05), (-0.8, b), (0.85, b)]
        spoiler_at = (-0.7, roof + 0.02)
    else:
        prof = [(1.05, b + 0.05), (1.05, s - 0.05), (0.55, s), (0.3, roof), (-0.15, roof), (-0.2, s),
                (-1.05, s), (-1.05, b + 0.05), (-1.0, b), (1.0, b)]
        spoiler_at = (-0.12, roof + 0.02)
    parts = [Extrude(prof, hw, "z", round=0.04)]
    if a["body"] == "pickup":
        bed_top = s + 0.2
        parts.append(Mirror(Box((0.42, 0.1, 0.025), (-0.62, s + 0.09, hw - 0.025), round=0.01), 2))
        parts.append(Box((0.025, 0.1, hw), (-1.03, s + 0.09, 0), round=0.01))
        parts.append(Box((0.025, (bed_top - s) / 2, hw), (-0.2, s + (bed_top - s) / 2, 0)))
    wx = 0.62 if a["body"] != "pickup" else 0.66
    wheel = Transform(Cylinder(wr, 0.075, round=0.025), _Y_TO_Z, (wx, wr, hw - 0.04))
    parts.append(Mirror(Mirror(wheel, 0), 2))
    if a["spoiler"]:
        sx, sy = spoiler_at
        parts.append(Box((0.08, 0.02, hw - 0.04), (sx, sy + 0.09, 0), round=0.008))
        parts.append(Mirror(Box((0.025, 0.05, 0.022), (sx, sy + 0.035, hw * 0.6)), 2))
    return Union(parts)


CAR = Category("car", ("car", "automobile", "vehicle"), (
    _attr("body", "form", {"sedan": ("sedan", None), "hatchback": ("hatchback", None), "pickup": ("pickup", "an open cargo bed")}),
    _attr("wheels", "proportion", {"small": (None, "small wheels"), "large": ("lifted", "large wheels")}),
    _attr("spoiler", "presence", _yes_no("a rear spoiler", None, "no spoiler")),
), _car)


def _rocket(a, rng):
    r = rng.uniform(0.09, 0.11)
    body = rng.uniform(0.9, 1.1)
    nose_len = rng.uniform(0.28, 0.36)
    if a["stages"] == 2:
        r2 = r * 0.78
        prof = [(0.0, 0.0), (r, 0.0), (r, body * 0.45), (r2, body * 0.52), (r2, body)]
        top_r = r2
    else:
        prof = [(0.0, 0.0), (r, 0.0), (r, body)]
        top_r = r
    if a["nose"] == "pointed":
        prof += [(0.0, body + nose_len)]
    else:
        for th in np.linspace(0, _HALF_PI, 8)[1:]:
            prof.append((top_r * math.cos(th), body + nose_len * 0.7 * math.sin(th)))
    parts = [Revolve(prof)]
    n = a["fins"]
    span, root = rng.uniform(0.14, 0.2), rng.uniform(0.25, 0.32)
    fin = [(r - 0.01, root), (r + span, root * 0.35), (r + span, -0.05), (r - 0.01, 0.0)]
    for k in range(n):
        parts.append(Transform(Extrude(fin, 0.016, "z", round=0.006), rotation("y", 2 * math.pi * k / n)))
    if a["boosters"]:
        br, bh = r * 0.5, body * 0.5
        bprof = [(0.0, -0.02), (br, -0.02), (br, bh), (0.0, bh + 0.12)]
        for k in range(2):
            ang = 2 * math.pi * (k + 0.5) / 2 + (math.pi / n if n == 4 else math.pi / 6)
            parts.append(Revolve(bprof, (math.cos(ang) * (r + br), 0.0, math.sin(ang) * (r + br))))
    return Union(parts)


ROCKET = Category("rocket", ("rocket", "spaceship"), (
    _attr("fins", "count", {3: (None, "three fins"), 4: (None, "four fins")}),
    _attr("stages", "count", {1: ("single-stage", None), 2: ("two-stage", "a narrower upper stage")}),
    _attr("nose", "form", {"pointed": (None, "a pointed nose cone"), "rounded": (None, "a rounded nose")}),
    _attr("boosters", "presence", _yes_no("two side boosters", None, "no boosters")),
), _rocket)


CATEGORY_LIST: tuple[Category, ...] = (
    CHAIR, TABLE, STOOL, BENCH, SOFA, BED, SHELF, LAMP, BOTTLE, VASE, MUG, BOWL, AIRPLANE, CAR, ROCKET,
)
