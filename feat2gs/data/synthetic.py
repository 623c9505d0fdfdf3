"""Procedural example scene: a small forward-facing scene rendered by analytic ray casting, with ground truth.

No Gaussian renderer is involved: every pixel is ray cast against analytic surfaces in numpy.

World frame (OpenCV-like, the same axes as a camera looking straight ahead): x right, y down, z away from the
cameras; the world up direction is ``-y``.  The scene is a closed "corner":

* an infinite floor plane ``y = FLOOR_Y`` (facing up, ``-y``) and an infinite back wall ``z = WALL_Z`` (facing the
  cameras), so every camera ray hits a surface;
* two to four objects (spheres and boxes rotated about the vertical axis) resting on the floor, placed and
  coloured from ``np.random.default_rng(seed)``.

Colours are view-independent: the albedo is a solid 3D texture of the hit point (checkers, stripes or rings of a
3-4 colour palette, warped and modulated by smooth value noise), shaded by a fixed directional light with
Lambertian falloff, ambient term and hard cast shadows; no specularities.  Colours are averaged over a 3x3
supersampling grid per pixel; depths are taken at pixel centres.

Cameras are pinholes (``fx = fy = 0.9 * width``, principal point at the image centre) on a gentle arc of
+-18 degrees around the scene centre, all looking at it, ordered along the arc.  Train views are spread evenly
from one end of the arc to the other and test views lie between them, so novel views are interpolations.
"""

from __future__ import annotations

import colorsys
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from feat2gs.data.colmap import write_colmap_text
from feat2gs.data.layout import SPLIT_FILE, merge_split, read_split_for_update
from feat2gs.errors import ConfigError, DatasetError
from feat2gs.geometry.camera import Camera, look_at_w2c
from feat2gs.io import atomic_dir, atomic_save, atomic_write_bytes


FLOOR_Y = 1.0
WALL_Z = 5.5
WORLD_UP = np.array([0.0, -1.0, 0.0])
SCENE_CENTER = np.array([0.0, 0.45, 3.4])  # look-at target of every camera
CAMERA_RADIUS = 3.4  # distance of the cameras from SCENE_CENTER
CAMERA_HEIGHT = -0.35  # camera y at the ends of the arc (1.35 above the floor)
ARC_HALF_ANGLE_DEG = 18.0
FOCAL_FACTOR = 0.9  # fx = fy = FOCAL_FACTOR * width
SUPERSAMPLE = 3  # per axis; odd, so the central subsample is the pixel centre
LIGHT_DIR = np.array([-0.45, -1.0, -0.55]) / np.linalg.norm([-0.45, -1.0, -0.55])  # towards the light
AMBIENT = 0.35
_EPS = 1e-6
_SHADOW_OFFSET = 1e-4


# ----------------------------------------------------------------------------------------------- solid textures

class _ValueNoise:
    """Smooth periodic 3D value noise in [0, 1] from a random lattice (trilinear, smoothstep weights)."""

    def __init__(self, rng: np.random.Generator, size: int = 32) -> None:
        self.size = size
        self.table = rng.random((size, size, size))

    def __call__(self, p: np.ndarray) -> np.ndarray:
        n = self.size
        base = np.floor(p)
        f = p - base
        w = f * f * (3.0 - 2.0 * f)
        i0 = base.astype(np.int64) % n
        i1 = (i0 + 1) % n
        flat = self.table.ravel()
        out = np.zeros(p.shape[0])
        for dx in (0, 1):
            ix = (i1[:, 0] if dx else i0[:, 0]) * (n * n)
            wx = w[:, 0] if dx else 1.0 - w[:, 0]
            for dy in (0, 1):
                ixy = ix + (i1[:, 1] if dy else i0[:, 1]) * n
                wxy = wx * (w[:, 1] if dy else 1.0 - w[:, 1])
                out += wxy * (flat.take(ixy + i0[:, 2]) * (1.0 - w[:, 2]) + flat.take(ixy + i1[:, 2]) * w[:, 2])
        return out


@dataclass(frozen=True)
class _Texture:
    """A solid texture: palette pattern in rotated/scaled texture coordinates, warped and modulated by noise."""

    kind: str  # "checker" | "stripes" | "rings"
    palette: np.ndarray  # [C, 3] in [0, 1]
    scale: float  # pattern cells per world unit
    rot: np.ndarray  # [3, 3] orientation of the texture coordinates
    offset: np.ndarray  # [3] texture-space offset
    warp: float  # amplitude of the noise warp of stripes / rings, in cells
    detail: float  # relative brightness modulation by fine noise

    def __call__(self, p: np.ndarray, noise: _ValueNoise) -> np.ndarray:
        q = (p @ self.rot.T) * self.scale + self.offset
        if self.kind == "checker":
            idx = np.floor(q).sum(axis=1)
        else:
            warp = self.warp * (noise(q * 0.35 + 7.31) - 0.5) * 2.0
            coord = q[:, 0] if self.kind == "stripes" else np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2)
            idx = np.floor(coord + warp)
        base = self.palette[idx.astype(np.int64) % len(self.palette)]
        fine = 0.65 * noise(q * 1.7 + 3.17) + 0.35 * noise(q * 0.6 + 19.7)
        return np.clip(base * (1.0 + self.detail * (2.0 * fine - 1.0))[:, None], 0.0, 1.0)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _yaw(angle: float) -> np.ndarray:
    """Rotation about the vertical (y) axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _palette(rng: np.random.Generator, n: int, value_range: tuple[float, float]) -> np.ndarray:
    """``n`` well separated colours: hues spread around the circle, random saturation and value."""
    h0 = rng.random()
    colours = []
    for k in range(n):
        hue = (h0 + k / n + rng.uniform(-0.08, 0.08)) % 1.0
        sat = rng.uniform(0.35, 0.9)
        val = rng.uniform(*value_range)
        colours.append(colorsys.hsv_to_rgb(hue, sat, val))
    return np.array(colours)


def _random_texture(rng: np.random.Generator, kind: str, scale_range: tuple[float, float],
                     rot: np.ndarray | None = None, value_range: tuple[float, float] = (0.45, 1.0)) -> _Texture:
    n = int(rng.integers(3, 5))
    return _Texture(kind=kind, palette=_palette(rng, n, value_range), scale=float(rng.uniform(*scale_range)),
                    rot=_random_rotation(rng) if rot is None else rot, offset=rng.uniform(0.0, 8.0, size=3),
                    warp=float(rng.uniform(0.3, 0.8)), detail=float(rng.uniform(0.12, 0.22)))


# ---------------------------------------------------------------------------------------------------- surfaces

@dataclass(frozen=True)
class _Plane:
    normal: np.ndarray  # unit, facing the visible side
    point: np.ndarray
    texture: _Texture

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        denom = d @ self.normal
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((self.point - o) @ self.normal) / denom
        return np.where((denom < 0) & (t > _EPS), t, np.inf)

    def normals(self, p: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.normal, p.shape)


@dataclass(frozen=True)
class _Sphere:
    center: np.ndarray
    radius: float
    texture: _Texture

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        oc = o - self.center
        a = np.einsum("ij,ij->i", d, d)
        b = np.einsum("ij,ij->i", oc, d) if oc.ndim == 2 else d @ oc
        c = (np.einsum("ij,ij->i", oc, oc) if oc.ndim == 2 else oc @ oc) - self.radius ** 2
        disc = b * b - a * c
        root = np.sqrt(np.maximum(disc, 0.0))
        t0, t1 = (-b - root) / a, (-b + root) / a
        t = np.where(t0 > _EPS, t0, np.where(t1 > _EPS, t1, np.inf))
        return np.where(disc >= 0, t, np.inf)

    def normals(self, p: np.ndarray) -> np.ndarray:
        return (p - self.center) / self.radius


@dataclass(frozen=True)
class _Box:
    center: np.ndarray
    half: np.ndarray  # [3] half extents in the box frame
    rot: np.ndarray  # [3, 3] box frame -> world
    texture: _Texture

    def intersect(self, o: np.ndarray, d: np.ndarray) -> np.ndarray:
        ol = (o - self.center) @ self.rot
        dl = d @ self.rot
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (-self.half - ol) / dl
            t2 = (self.half - ol) / dl
        t1 = np.nan_to_num(t1, nan=-np.inf)
        t2 = np.nan_to_num(t2, nan=np.inf)
        near, far = np.minimum(t1, t2), np.maximum(t1, t2)
        tmin = np.maximum(np.maximum(near[:, 0], near[:, 1]), near[:, 2])
        tmax = np.minimum(np.minimum(far[:, 0], far[:, 1]), far[:, 2])
        t = np.where(tmin > _EPS, tmin, tmax)
        return np.where((tmax >= tmin) & (t > _EPS), t, np.inf)

    def normals(self, p: np.ndarray) -> np.ndarray:
        pl = (p - self.center) @ self.rot / self.half
        axis = np.abs(pl).argmax(axis=1)
        nl = np.zeros_like(pl)
        rows = np.arange(len(pl))
        nl[rows, axis] = np.sign(pl[rows, axis])
        return nl @ self.rot.T


_Surface = _Plane | _Sphere | _Box


# ------------------------------------------------------------------------------------------------------- scene

@dataclass(frozen=True)
class SyntheticScene:
    """The analytic scene: surfaces (floor, wall, objects) and the shared noise lattice of the textures."""

    surfaces: tuple[_Surface, ...]
    noise: _ValueNoise

    @property
    def objects(self) -> tuple[_Surface, ...]:
        return tuple(s for s in self.surfaces if not isinstance(s, _Plane))

    def trace(self, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First hit along rays ``o + t d`` (o [3] or [N, 3], d [N, 3]): ``t`` [N] (inf: miss), surface index [N]."""
        ts = np.stack([s.intersect(o, d) for s in self.surfaces])
        idx = ts.argmin(axis=0)
        return ts[idx, np.arange(d.shape[0])], idx

    def shade(self, p: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """View-independent colour [N, 3] of surface points ``p`` [N, 3] lying on surfaces ``idx`` [N]."""
        albedo = np.zeros_like(p)
        normal = np.zeros_like(p)
        for k, surf in enumerate(self.surfaces):
            sel = idx == k
            if sel.any():
                albedo[sel] = surf.texture(p[sel], self.noise)
                normal[sel] = surf.normals(p[sel])
        lambert = np.clip(normal @ LIGHT_DIR, 0.0, None)
        lit = lambert > 0
        if lit.any():
            origin = p[lit] + _SHADOW_OFFSET * normal[lit]
            direction = np.broadcast_to(LIGHT_DIR, origin.shape)
            blocked = np.zeros(origin.shape[0], dtype=bool)
            for obj in self.objects:
                blocked |= np.isfinite(obj.intersect(origin, direction))
            lambert[np.flatnonzero(lit)[blocked]] = 0.0
        return albedo * (AMBIENT + (1.0 - AMBIENT) * lambert)[:, None]

    def render(self, camera: Camera, supersample: int = SUPERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
        """Colour [H, W, 3] float in [0, 1] (box-filtered over ``supersample``^2 rays) and camera-space z depth
        [H, W] float32 at pixel centres (0 where nothing is hit)."""
        W, H, ss = camera.width, camera.height, int(supersample)
        if ss < 1 or ss % 2 == 0:
            raise ConfigError(f"supersample must be a positive odd number, got {supersample}")
        offs = (np.arange(ss) + 0.5) / ss
        u = (np.arange(W)[None, :, None, None] + offs[None, None, None, :]) * np.ones((H, 1, ss, 1))
        v = (np.arange(H)[:, None, None, None] + offs[None, None, :, None]) * np.ones((1, W, 1, ss))
        K = camera.K
        d_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], axis=-1).reshape(-1, 3)
        d_world = d_cam @ camera.w2c[:3, :3]  # R^T d: with camera z = 1 the ray parameter t is the z depth
        t, idx = self.trace(camera.center, d_world)
        hit = np.isfinite(t)
        colour = np.zeros_like(d_world)
        colour[hit] = self.shade(camera.center + t[hit, None] * d_world[hit], idx[hit])
        colour = colour.reshape(H, W, ss * ss, 3).mean(axis=2)
        depth = np.where(hit, t, 0.0).reshape(H, W, ss, ss)[:, :, ss // 2, ss // 2]
        return colour, depth.astype(np.float32)


def _place_objects(rng: np.random.Generator, n_objects: int) -> list[tuple[str, float, float, float, float]]:
    """(kind, x, z, footprint radius, size) per object, non-overlapping, within the region the cameras see."""
    shrink = 1.0
    for _ in range(20):
        placed: list[tuple[str, float, float, float, float]] = []
        for _ in range(n_objects):
            kind = "box" if rng.random() < 0.35 else "sphere"
            size = float(rng.uniform(0.35, 0.6)) * shrink
            footprint = size * (np.sqrt(2.0) if kind == "box" else 1.0)
            for _ in range(100):
                x, z = float(rng.uniform(-1.25, 1.25)), float(rng.uniform(2.7, 4.3))
                if all(np.hypot(x - px, z - pz) > footprint + pf + 0.08 for _, px, pz, pf, _ in placed):
                    placed.append((kind, x, z, footprint, size))
                    break
            else:
                break
        if len(placed) == n_objects:
            return placed
        shrink *= 0.9
    raise RuntimeError("could not place the synthetic objects")  # pragma: no cover - unreachable in practice


def build_scene(seed: int = 0) -> SyntheticScene:
    """The scene for ``seed``: floor, back wall and 2-4 textured objects (all randomness from ``seed``)."""
    rng = np.random.default_rng(seed)
    noise = _ValueNoise(rng)
    floor_tex = _random_texture(rng, "checker", (1.6, 2.4), rot=_yaw(rng.uniform(0, np.pi / 2)),
                                value_range=(0.35, 0.95))
    wall_kind = "rings" if rng.random() < 0.5 else "stripes"
    roll = rng.uniform(-0.6, 0.6)  # in-plane rotation of the wall pattern
    wall_rot = np.array([[np.cos(roll), -np.sin(roll), 0.0], [np.sin(roll), np.cos(roll), 0.0], [0.0, 0.0, 1.0]])
    wall_tex = _random_texture(rng, wall_kind, (2.0, 3.0), rot=wall_rot, value_range=(0.4, 0.95))
    surfaces: list[_Surface] = [
        _Plane(normal=np.array([0.0, -1.0, 0.0]), point=np.array([0.0, FLOOR_Y, 0.0]), texture=floor_tex),
        _Plane(normal=np.array([0.0, 0.0, -1.0]), point=np.array([0.0, 0.0, WALL_Z]), texture=wall_tex),
    ]
    n_objects = int(rng.integers(3, 5))
    for kind, x, z, _, size in _place_objects(rng, n_objects):
        tex = _random_texture(rng, str(rng.choice(["checker", "stripes", "rings"])), (4.5, 7.0))
        if kind == "sphere":
            surfaces.append(_Sphere(center=np.array([x, FLOOR_Y - size, z]), radius=size, texture=tex))
        else:
            half = np.array([size, size * rng.uniform(0.7, 1.5), size * rng.uniform(0.7, 1.0)])
            surfaces.append(_Box(center=np.array([x, FLOOR_Y - half[1], z]), half=half,
                                 rot=_yaw(rng.uniform(0.0, np.pi / 2)), texture=tex))
    return SyntheticScene(surfaces=tuple(surfaces), noise=noise)


# ----------------------------------------------------------------------------------------------------- cameras

def _path_positions(n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Arc parameters in [0, 1] (sorted) and a train mask: train evenly from 0 to 1, tests inside the gaps."""
    if n_train == 1:
        return np.array([0.5]), np.array([True])
    gaps = n_train - 1
    params = [i / gaps for i in range(n_train)]
    train = [True] * n_train
    for g in range(gaps):
        k = (g + 1) * n_test // gaps - g * n_test // gaps  # tests in this gap, spread evenly over the gaps
        for j in range(k):
            params.append((g + (j + 1) / (k + 1)) / gaps)
            train.append(False)
    order = np.argsort(params, kind="stable")
    return np.asarray(params)[order], np.asarray(train)[order]


def make_cameras(n_train: int, n_test: int, width: int, height: int,
                 stem_format: str | None = None) -> tuple[list[Camera], np.ndarray]:
    """Cameras along the arc in path order (names ``view_000.png``, ...) and the mask of the train views."""
    s, is_train = _path_positions(n_train, n_test)
    n = len(s)
    stem_format = stem_format or f"view_{{:0{max(3, len(str(n - 1)))}d}}"
    fx = FOCAL_FACTOR * width
    K = np.array([[fx, 0.0, width / 2.0], [0.0, fx, height / 2.0], [0.0, 0.0, 1.0]])
    cameras = []
    for i, si in enumerate(s):
        theta = np.deg2rad((2.0 * si - 1.0) * ARC_HALF_ANGLE_DEG)
        position = SCENE_CENTER + np.array([CAMERA_RADIUS * np.sin(theta), 0.0, -CAMERA_RADIUS * np.cos(theta)])
        position[1] = CAMERA_HEIGHT - 0.15 * np.sin(np.pi * si)  # middle of the arc slightly higher
        w2c = look_at_w2c(position, SCENE_CENTER, WORLD_UP)
        cameras.append(Camera(name=stem_format.format(i) + ".png", K=K.copy(), w2c=w2c, width=width, height=height))
    return cameras, is_train


# ---------------------------------------------------------------------------------------------------- writing

def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value:
        raise ConfigError(f"invalid {what} name {value!r}: expected a single non-empty folder name")
    return value


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _to_uint8(colour: np.ndarray) -> np.ndarray:
    return np.round(np.clip(colour, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_scene(root: str | Path, dataset: str = "Synthetic", scene: str = "blocks", n_train: int = 3,
               n_test: int = 3, width: int = 128, height: int = 96, seed: int = 0, overwrite: bool = False) -> Path:
    """Render the example scene for ``seed`` into the Feat2GS dataset layout under ``root``; returns the scene dir.

    Writes ``<root>/<dataset>/<scene>/images/<stem>.png`` (all views, path order), ``<n_train>_views/images``
    (train copies), ``gt/cameras.txt`` + ``gt/images.txt`` (COLMAP text, all views) and ``depths/<stem>.npy``
    (float32 [H, W] z depth at pixel centres), and merges the split into ``<root>/dataset_split.json``.
    The same arguments give byte-identical files.  An existing scene folder is only replaced with ``overwrite``.
    """
    _check_name(dataset, "dataset")
    _check_name(scene, "scene")
    if int(n_train) != n_train or n_train < 1:
        raise ConfigError(f"n_train must be a positive integer, got {n_train}")
    if int(n_test) != n_test or n_test < 0:
        raise ConfigError(f"n_test must be a non-negative integer, got {n_test}")
    if n_test > 0 and n_train < 2:
        raise ConfigError("test views lie between train views: n_test > 0 needs n_train >= 2")
    if int(width) != width or int(height) != height or width < 8 or height < 8:
        raise ConfigError(f"image size must be integers >= 8, got {width}x{height}")
    n_train, n_test, width, height = int(n_train), int(n_test), int(width), int(height)

    root = Path(root)
    scene_dir = root / dataset / scene
    if scene_dir.exists() and not overwrite:
        raise DatasetError(f"scene folder {scene_dir} already exists; pass overwrite=True to replace it")
    read_split_for_update(root)  # fail before rendering if the split file is broken

    world = build_scene(seed)
    cameras, is_train = make_cameras(n_train, n_test, width, height)
    stems = [Path(cam.name).stem for cam in cameras]
    renders = []
    for cam in cameras:
        colour, depth = world.render(cam)
        renders.append((_png_bytes(_to_uint8(colour)), depth))

    with atomic_dir(scene_dir) as tmp:
        for stem, train, (png, depth) in zip(stems, is_train, renders):
            atomic_write_bytes(tmp / "images" / f"{stem}.png", png)
            if train:
                atomic_write_bytes(tmp / f"{n_train}_views" / "images" / f"{stem}.png", png)
            atomic_save(tmp / "depths" / f"{stem}.npy", lambda p, d=depth: _save_npy(p, d))
        write_colmap_text(tmp / "gt", cameras)

    merge_split(root, dataset, scene, [s for s, t in zip(stems, is_train) if t],
                [s for s, t in zip(stems, is_train) if not t])
    return scene_dir


__all__ = ["SyntheticScene", "build_scene", "make_cameras", "make_scene", "SPLIT_FILE"]
