"""Dataset builders: turn a folder of images, a COLMAP/LLFF scene or a DTU scene (MVSNet format) into the layout
of :mod:`feat2gs.data.layout`.

Every builder writes ``<root>/<Dataset>/<scene>/images/`` (all views), ``<N>_views/images/`` (the N train views)
and merges ``{Dataset: {scene: {train, test}}}`` into ``<root>/dataset_split.json`` (other datasets and scenes are
kept). The scene is built in a temporary folder and renamed into place; an existing scene is only replaced with
``overwrite=True``. All images of a scene must share one size, and stems must be unique (``a.png`` + ``a.jpg`` is
an error). Splits: every k-th image (sorted by name, index ``i % k == offset``) held out as test, or explicit
train / test lists (stems or file names; one list implies the other as the remaining images).

* :func:`build_from_folder` — images only.
* :func:`build_from_colmap` — ``images/`` + ``sparse/0`` (COLMAP text; binary through ``pycolmap`` when
  installed) or LLFF ``poses_bounds.npy``: the cameras are written to ``<scene>/gt/{cameras,images}.txt``
  (PINHOLE, w2c, at the image size). COLMAP gives no dense depth, so ``--method gt`` still needs
  ``<scene>/depths/<stem>.npy`` from elsewhere.
* :func:`build_from_dtu` — ``images/``, ``cams/<stem>_cam.txt``, ``depths/<stem>.npy|.pfm``, ``binary_masks/``:
  GT cameras in ``gt/`` and masked depths in ``depths/<stem>.npy`` for ``--method gt``.
* :func:`build_from_known` — images + known cameras (a COLMAP model, text or binary, or a JSON of K and OpenCV
  camera-to-world per image) + z-depth ``.npy`` maps (0 = invalid): a ``--method gt`` scene.

Every image is decoded completely at build time (a truncated file is named now, not when step 1 runs).
Images with transparent pixels are refused unless ``alpha`` says which background to composite them onto
(``white`` or ``black``); they are then written as lossless PNG.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from feat2gs.data.colmap import read_colmap_model, write_colmap_text
from feat2gs.data.images import IMAGE_EXTENSIONS, check_same_size, composite_alpha, has_transparency, load_image
from feat2gs.data.layout import SPLIT_FILE, merge_split, read_split_for_update
from feat2gs.errors import ConfigError, DatasetError
from feat2gs.geometry.camera import Camera
from feat2gs.io import atomic_dir, atomic_save, atomic_write_bytes

DTU_DEFAULT_SCALE = 0.001  # DTU is in millimetres; the protocol divides translations and depths by 1000
DTU_EROSION = 10  # 10x10 all-ones kernel, one iteration (build_dataset/preprocess_dtu.py)


# --------------------------------------------------------------------------------------------------------------
# inputs
def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or value in (".", "..") or "/" in value or "\\" in value:
        raise ConfigError(f"invalid {what} name {value!r}: expected a single non-empty folder name")
    return value


def list_images(folder: str | Path) -> dict[str, Path]:
    """stem -> image path of the image files directly in ``folder``; stems must be unique."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"missing image folder {folder}")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix in IMAGE_EXTENSIONS and not p.name.startswith("."):
            if p.stem in found:
                raise DatasetError(f"two images share the stem {p.stem!r} in {folder}: {found[p.stem].name}, {p.name}")
            found[p.stem] = p
    if not found:
        raise DatasetError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return found


def _read_list(source: str | Path | Sequence[str]) -> list[str]:
    """A list of stems from a sequence or from a text file (one name per line; ``#`` comments; extensions dropped)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise DatasetError(f"missing list file {path}")
        names = [ln.split("#", 1)[0].strip() for ln in path.read_text().splitlines()]
    else:
        names = [str(n).strip() for n in source]
    return [Path(n).stem if Path(n).suffix in IMAGE_EXTENSIONS else n for n in names if n]


def make_split(stems: Sequence[str], test_every: int | None = None, test_offset: int = 0,
               train: str | Path | Sequence[str] | None = None,
               test: str | Path | Sequence[str] | None = None) -> tuple[list[str], list[str]]:
    """(train, test) stems, sorted. Either ``test_every=k`` (sorted index ``i % k == test_offset`` is test) or
    explicit ``train`` / ``test`` lists (sequences or list files); with one list the other is the rest."""
    stems = sorted(stems)
    if test_every is not None and (train is not None or test is not None):
        raise ConfigError("give either test_every or explicit train/test lists, not both")
    if test_every is not None:
        if int(test_every) != test_every or test_every < 2:
            raise ConfigError(f"test_every must be an integer >= 2, got {test_every}")
        if not 0 <= test_offset < test_every:
            raise ConfigError(f"test_offset must be in [0, {test_every}), got {test_offset}")
        test_l = [s for i, s in enumerate(stems) if i % test_every == test_offset]
        train_l = [s for s in stems if s not in set(test_l)]
    elif train is not None or test is not None:
        train_l = _read_list(train) if train is not None else None
        test_l = _read_list(test) if test is not None else None
        known = set(stems)
        for name, lst in (("train", train_l), ("test", test_l)):
            if lst is not None:
                unknown = [s for s in lst if s not in known]
                if unknown:
                    raise DatasetError(f"{name} list names images that do not exist: {', '.join(unknown[:5])}")
                if len(set(lst)) != len(lst):
                    raise DatasetError(f"{name} list repeats an image")
        if train_l is None:
            train_l = [s for s in stems if s not in set(test_l)]
        if test_l is None:
            test_l = [s for s in stems if s not in set(train_l)]
        both = set(train_l) & set(test_l)
        if both:
            raise DatasetError(f"images in both the train and the test list: {', '.join(sorted(both)[:5])}")
    else:
        raise ConfigError("no split rule: give test_every=k or train/test lists")
    if not train_l:
        raise DatasetError("the split leaves no train image")
    return sorted(train_l), sorted(test_l)


# --------------------------------------------------------------------------------------------------------------
# output
@dataclass(frozen=True)
class BuiltScene:
    scene_dir: Path
    train: list[str]
    test: list[str]
    size: tuple[int, int]  # (width, height)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def image_writer(alpha: str | None) -> Callable[[str, Path], tuple[str, bytes]]:
    """(stem, source) -> (file name, bytes): the file as it is, or, for an image with transparent pixels, a PNG
    composited onto the ``alpha`` background (``None``: such an image is an error naming the option)."""
    def write(stem: str, src: Path) -> tuple[str, bytes]:
        if not has_transparency(src):
            return src.name, src.read_bytes()
        if alpha is None:
            load_image(src)  # raises, naming the file and the --alpha option
        return f"{stem}.png", _png(composite_alpha(src, alpha))

    return write


def write_scene(root: str | Path, dataset: str, scene: str, images: dict[str, Path], train: Sequence[str],
                test: Sequence[str], overwrite: bool = False,
                extra: Callable[[Path, tuple[int, int]], None] | None = None,
                image_bytes: Callable[[str, Path], tuple[str, bytes]] | None = None,
                alpha: str | None = None) -> BuiltScene:
    """Write one scene of the layout atomically and merge its split.

    ``images``: stem -> source path (only train ∪ test are written); each is decoded completely first.
    ``extra(tmp_scene_dir, (w, h))`` adds files (gt/, depths/) inside the temporary scene folder.
    ``image_bytes(stem, src)`` -> (file name, bytes) replaces the default writer (:func:`image_writer`).
    """
    _check_name(dataset, "dataset")
    _check_name(scene, "scene")
    root = Path(root)
    scene_dir = root / dataset / scene
    if scene_dir.exists() and not overwrite:
        raise DatasetError(f"scene folder {scene_dir} already exists; pass overwrite=True to replace it")
    train, test = sorted(train), sorted(test)
    if not train:
        raise DatasetError(f"{dataset}/{scene}: empty train list")
    missing = [s for s in train + test if s not in images]
    if missing:
        raise DatasetError(f"{dataset}/{scene}: no image for {', '.join(missing[:5])}")
    size = check_same_size([images[s] for s in train + test], decode=True)
    read_split_for_update(root)  # fail before writing if the split file is broken
    n = len(train)
    image_bytes = image_bytes or image_writer(alpha)
    with atomic_dir(scene_dir) as tmp:
        for stem in train + test:
            src = images[stem]
            name, data = image_bytes(stem, src)
            atomic_write_bytes(tmp / "images" / name, data)
            if stem in train:
                atomic_write_bytes(tmp / f"{n}_views" / "images" / name, data)
        if extra is not None:
            extra(tmp, size)
    merge_split(root, dataset, scene, train, test)
    return BuiltScene(scene_dir, train, test, size)


# --------------------------------------------------------------------------------------------------------------
# (a) folder of images
def build_from_folder(source: str | Path, root: str | Path, dataset: str, scene: str, *,
                      test_every: int | None = None, test_offset: int = 0,
                      train: str | Path | Sequence[str] | None = None, test: str | Path | Sequence[str] | None = None,
                      overwrite: bool = False, alpha: str | None = None) -> BuiltScene:
    """A flat folder of images -> one scene (no cameras: use ``--method dust3r`` / ``mast3r``)."""
    _check_name(dataset, "dataset"), _check_name(scene, "scene")
    images = list_images(source)
    tr, te = make_split(list(images), test_every, test_offset, train, test)
    return write_scene(root, dataset, scene, images, tr, te, overwrite, alpha=alpha)


# --------------------------------------------------------------------------------------------------------------
# (b) COLMAP / LLFF
def _colmap_model(sparse: Path) -> list[Camera]:
    if not any((sparse / f"cameras.{ext}").is_file() and (sparse / f"images.{ext}").is_file() for ext in ("txt", "bin")):
        raise DatasetError(f"{sparse} has no COLMAP model (cameras.txt + images.txt, or cameras.bin + images.bin)")
    return read_colmap_model(sparse)


def llff_cameras(poses_bounds: np.ndarray, names: Sequence[str], width: int, height: int) -> list[Camera]:
    """LLFF ``poses_bounds.npy`` [N, 17] (c2w 3x4 in (down, right, back) axes + [h, w, f]) -> OpenCV cameras at
    (width, height); rows belong to the images sorted by name."""
    pb = np.asarray(poses_bounds, dtype=np.float64)
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise DatasetError(f"poses_bounds.npy must be [N, 17], got {list(pb.shape)}")
    if len(pb) != len(names):
        raise DatasetError(f"poses_bounds.npy has {len(pb)} poses but the scene has {len(names)} images")
    cams = []
    for name, row in zip(sorted(names), pb):
        m = row[:15].reshape(3, 5)
        h0, w0, f = m[:, 4]
        c2w = np.eye(4)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = m[:, 1], m[:, 0], -m[:, 2], m[:, 3]
        K = np.array([[f, 0, w0 / 2], [0, f, h0 / 2], [0, 0, 1]])
        cam = Camera(name=name, K=K, w2c=np.linalg.inv(c2w), width=int(round(w0)), height=int(round(h0)))
        cams.append(cam.resized(width, height) if (cam.width, cam.height) != (width, height) else cam)
    return cams


def _fit_cameras(cameras: list[Camera], width: int, height: int, source: str) -> list[Camera]:
    out = []
    for cam in cameras:
        if (cam.width, cam.height) != (width, height):
            if abs(cam.width / cam.height - width / height) > 0.01:
                raise DatasetError(f"{source}: camera of {cam.name} is {cam.width}x{cam.height}, images are "
                                   f"{width}x{height} (aspect ratios differ)")
            cam = cam.resized(width, height)
        out.append(cam)
    return out


def build_from_colmap(source: str | Path, root: str | Path, dataset: str, scene: str, *,
                      images_dir: str = "images", test_every: int | None = None, test_offset: int = 0,
                      train: str | Path | Sequence[str] | None = None, test: str | Path | Sequence[str] | None = None,
                      overwrite: bool = False, alpha: str | None = None) -> BuiltScene:
    """``<source>/images`` + ``<source>/sparse/0`` (or LLFF ``poses_bounds.npy``) -> a scene with ``gt/`` cameras.

    Camera intrinsics are rescaled when the images are a downscaled copy (e.g. LLFF ``images_4``)."""
    _check_name(dataset, "dataset"), _check_name(scene, "scene")
    source = Path(source)
    images = list_images(source / images_dir)
    tr, te = make_split(list(images), test_every, test_offset, train, test)
    width, height = check_same_size([images[s] for s in tr + te])  # write_scene decodes every image
    sparse = source / "sparse" / "0"
    if sparse.is_dir():
        by_stem = {Path(c.name).stem: c for c in _colmap_model(sparse)}
        where = str(sparse)
    elif (source / "poses_bounds.npy").is_file():
        names = [images[s].name for s in sorted(images)]
        by_stem = {Path(c.name).stem: c for c in llff_cameras(np.load(source / "poses_bounds.npy"), names,
                                                              width, height)}
        where = str(source / "poses_bounds.npy")
    else:
        raise DatasetError(f"{source} has neither sparse/0 nor poses_bounds.npy; for images only use build_from_folder")
    unposed = [s for s in tr + te if s not in by_stem]
    if unposed:
        raise DatasetError(f"{where} has no pose for {', '.join(unposed[:5])} (not registered?); leave them out "
                           "with explicit train/test lists")
    cameras = _fit_cameras([replace(by_stem[s], name=images[s].name) for s in tr + te], width, height, where)
    cameras.sort(key=lambda c: c.name)
    return write_scene(root, dataset, scene, images, tr, te, overwrite,
                       extra=lambda tmp, size: write_colmap_text(tmp / "gt", cameras), alpha=alpha)


# --------------------------------------------------------------------------------------------------------------
# (c) DTU in MVSNet format
def read_mvsnet_cam(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """MVSNet ``<id>_cam.txt`` -> (w2c 4x4, K 3x3, [depth_min, depth_interval, ...]) in the file's units."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing camera file {path}")
    tok = path.read_text().split()
    try:
        if tok[0] != "extrinsic" or tok[17] != "intrinsic":
            raise ValueError("expected 'extrinsic' + 16 numbers, 'intrinsic' + 9 numbers")
        w2c = np.array([float(v) for v in tok[1:17]]).reshape(4, 4)
        K = np.array([float(v) for v in tok[18:27]]).reshape(3, 3)
        depth_params = [float(v) for v in tok[27:31]]
    except (IndexError, ValueError) as exc:
        raise DatasetError(f"cannot parse MVSNet camera file {path}: {exc}") from exc
    return w2c, K, depth_params


def read_pfm(path: str | Path) -> np.ndarray:
    """A single-channel PFM (``Pf``) -> float32 [H, W], top row first."""
    path = Path(path)
    with open(path, "rb") as fh:
        try:
            header = fh.readline().decode("ascii").strip()
            if header not in ("Pf", "PF"):
                raise ValueError(f"bad header {header!r}")
            w, h = (int(v) for v in fh.readline().decode("ascii").split())
            scale = float(fh.readline().decode("ascii").strip())
            channels = 3 if header == "PF" else 1
            data = np.fromfile(fh, dtype="<f4" if scale < 0 else ">f4", count=w * h * channels)
            if data.size != w * h * channels:
                raise ValueError("truncated data")
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read PFM depth {path}: {exc}") from exc
    data = data.reshape(h, w, channels)[..., 0] if channels == 3 else data.reshape(h, w)
    return np.ascontiguousarray(np.flipud(data)).astype(np.float32)


def _erode(mask: np.ndarray, k: int) -> np.ndarray:
    """Binary erosion with a k×k all-ones kernel (anchor at k//2, as cv2.erode); outside the image counts as set."""
    if k <= 1:
        return mask
    h, w = mask.shape
    lo = k // 2
    padded = np.pad(mask, ((lo, k - 1 - lo), (lo, k - 1 - lo)), constant_values=True)
    out = np.ones_like(mask)
    for dy in range(k):
        for dx in range(k):
            out &= padded[dy:dy + h, dx:dx + w]
    return out


def read_depth_map(path: Path) -> np.ndarray:
    """A z-depth map (``.npy`` [H, W] or [H, W, 1], or single-channel ``.pfm``) as float32 [H, W]; NaN, inf and
    negative values become 0 (invalid)."""
    if path.suffix == ".pfm":
        depth = read_pfm(path)
    else:
        try:
            depth = np.load(path, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(f"cannot read depth map {path}: {exc}") from exc
    if depth.ndim == 3 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2:
        raise DatasetError(f"depth map {path} must be [H, W], got {list(depth.shape)}")
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float32)


def dtu_depth(depth_path: Path, mask_path: Path | None, scale: float, erosion: int = DTU_EROSION) -> np.ndarray:
    """Depth in scaled units, NaN/inf/negative -> 0, times the eroded binary mask (nearest-resized to the depth)."""
    depth = read_depth_map(depth_path)
    if mask_path is not None:
        m = load_image(mask_path)[..., 0].astype(np.float32) / 255.0 > 0.5
        h, w = depth.shape
        rows = np.minimum(((np.arange(h) + 0.5) * m.shape[0] / h).astype(int), m.shape[0] - 1)
        cols = np.minimum(((np.arange(w) + 0.5) * m.shape[1] / w).astype(int), m.shape[1] - 1)
        depth = depth * _erode(m[rows][:, cols], erosion)
    return (depth * np.float32(scale)).astype(np.float32)


def build_from_dtu(source: str | Path, root: str | Path, dataset: str, scene: str, *,
                   test_every: int | None = None, test_offset: int = 0,
                   train: str | Path | Sequence[str] | None = None, test: str | Path | Sequence[str] | None = None,
                   scale: float = DTU_DEFAULT_SCALE, mask_images: bool = True, erosion: int = DTU_EROSION,
                   overwrite: bool = False) -> BuiltScene:
    """A DTU scan in MVSNet format -> a scene with ``gt/`` cameras and ``depths/<stem>.npy`` for ``--method gt``.

    Translations and depths are multiplied by ``scale`` (default 0.001: DTU millimetres -> metres, as the
    protocol's division by 1000); ``scale=1`` keeps the file's units. Depths are multiplied by the binary mask
    (``binary_masks/<stem>.png``, thresholded at 0.5, eroded with an ``erosion``×``erosion`` kernel) when the
    folder exists. With ``mask_images`` (the protocol), pixels without valid depth are black, saved as
    ``<stem>.png`` (lossless).
    """
    _check_name(dataset, "dataset"), _check_name(scene, "scene")
    source = Path(source)
    if not scale > 0:
        raise ConfigError(f"scale must be > 0, got {scale}")
    images = list_images(source / "images")
    tr, te = make_split(list(images), test_every, test_offset, train, test)
    width, height = check_same_size([images[s] for s in tr + te])
    masks_dir = source / "binary_masks"
    cameras, depths = [], {}
    for stem in tr + te:
        w2c, K, _ = read_mvsnet_cam(source / "cams" / f"{stem}_cam.txt")
        w2c = w2c.copy()
        w2c[:3, 3] *= scale
        depth_path = next((p for p in (source / "depths" / f"{stem}.npy", source / "depths" / f"{stem}.pfm")
                           if p.is_file()), None)
        if depth_path is None:
            raise DatasetError(f"missing depth map {source / 'depths' / stem}.npy (or .pfm)")
        mask_path = None
        if masks_dir.is_dir():
            mask_path = next((p for p in masks_dir.iterdir() if p.stem == stem and p.suffix in IMAGE_EXTENSIONS), None)
            if mask_path is None:
                raise DatasetError(f"{masks_dir} has no mask for {stem}")
        depth = dtu_depth(depth_path, mask_path, scale, erosion)
        if depth.shape != (height, width):
            raise DatasetError(f"depth map {depth_path} is {depth.shape[1]}x{depth.shape[0]}, images are "
                               f"{width}x{height}")
        depths[stem] = depth
        name = f"{stem}.png" if mask_images else images[stem].name
        cameras.append(Camera(name=name, K=K, w2c=w2c, width=width, height=height))

    def masked_png(stem: str, src: Path) -> tuple[str, bytes]:
        return f"{stem}.png", _png(load_image(src) * (depths[stem] > 0)[..., None].astype(np.uint8))

    def extra(tmp: Path, size: tuple[int, int]) -> None:
        write_colmap_text(tmp / "gt", sorted(cameras, key=lambda c: c.name))
        for stem, depth in depths.items():
            atomic_save(tmp / "depths" / f"{stem}.npy", lambda p, d=depth: np.save(p, d, allow_pickle=False))

    return write_scene(root, dataset, scene, images, tr, te, overwrite, extra=extra,
                       image_bytes=masked_png if mask_images else None)


# --------------------------------------------------------------------------------------------------------------
# (d) images + known cameras + depth maps
def _matrix(value, shapes: tuple[tuple[int, int], ...], what: str) -> np.ndarray:
    """A finite float matrix of one of ``shapes``, or an error naming ``what``."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape not in shapes or not np.isfinite(m).all():
        allowed = " or ".join(f"{r}x{c}" for r, c in shapes)
        raise DatasetError(f"{what} must be a finite {allowed} matrix, got {str(value)[:80]}")
    return m


def json_cameras(path: Path) -> dict[str, Camera]:
    """Cameras from a JSON file ``{"<image name or stem>": {"K": 3x3, "c2w": 4x4 or 3x4}, ...}`` (OpenCV axes:
    x right, y down, z forward; ``K`` in pixels of the image as stored, optional ``"width"``/``"height"`` when it
    refers to another resolution). Keyed by stem."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read cameras {path}: {exc}") from exc
    if not isinstance(data, dict) or not data:
        raise DatasetError(f"{path}: expected {{\"<image>\": {{\"K\": [[...]], \"c2w\": [[...]]}}, ...}}")
    out = {}
    for name, entry in data.items():
        where = f"{path} [{name!r}]"
        if not isinstance(entry, dict) or "K" not in entry or "c2w" not in entry:
            raise DatasetError(f"{where}: expected an object with K (3x3) and c2w (4x4 or 3x4)")
        K = _matrix(entry["K"], ((3, 3),), f"{where} K")
        if K[0, 0] <= 0 or K[1, 1] <= 0 or K[0, 1] != 0 or K[1, 0] != 0 or list(K[2]) != [0, 0, 1]:
            raise DatasetError(f"{where} K must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
        c2w = np.eye(4)
        c2w[:3] = _matrix(entry["c2w"], ((4, 4), (3, 4)), f"{where} c2w")[:3]
        R = c2w[:3, :3]
        if np.abs(R.T @ R - np.eye(3)).max() > 1e-4 or np.linalg.det(R) < 0:
            raise DatasetError(f"{where} c2w: its 3x3 part is not a rotation (orthonormal, det +1)")
        size = (entry.get("width"), entry.get("height"))
        if (size[0] is None) != (size[1] is None):
            raise DatasetError(f"{where}: give both width and height, or neither")
        out[Path(name).stem] = (K, np.linalg.inv(c2w), size)
    return out


def build_from_known(source: str | Path, root: str | Path, dataset: str, scene: str, *, cameras: str | Path,
                     depths: str | Path, images_dir: str = "images", depth_scale: float = 1.0,
                     test_every: int | None = None, test_offset: int = 0,
                     train: str | Path | Sequence[str] | None = None, test: str | Path | Sequence[str] | None = None,
                     overwrite: bool = False, alpha: str | None = None) -> BuiltScene:
    """``<source>/<images_dir>`` + ``cameras`` (a COLMAP model folder, text or binary, or a JSON file, see
    :func:`json_cameras`) + ``depths`` (``<stem>.npy`` z-depth at the image size, 0 = invalid, times
    ``depth_scale`` to reach the cameras' units) -> a scene for ``--method gt``."""
    _check_name(dataset, "dataset"), _check_name(scene, "scene")
    if not depth_scale > 0:
        raise ConfigError(f"--depth-scale must be > 0, got {depth_scale}")
    source, cameras, depths = Path(source), Path(cameras), Path(depths)
    images = list_images(source / images_dir)
    tr, te = make_split(list(images), test_every, test_offset, train, test)
    width, height = check_same_size([images[s] for s in tr + te])
    if cameras.is_dir():
        by_stem = {Path(c.name).stem: c for c in _colmap_model(cameras)}
    elif cameras.is_file():
        by_stem = {stem: Camera(stem, K, w2c, int(w or width), int(h or height))
                   for stem, (K, w2c, (w, h)) in json_cameras(cameras).items()}
    else:
        raise DatasetError(f"missing cameras {cameras} (a COLMAP model folder or a JSON file)")
    unposed = [s for s in tr + te if s not in by_stem]
    if unposed:
        raise DatasetError(f"{cameras} has no camera for {', '.join(unposed[:5])}")
    cams = sorted(_fit_cameras([replace(by_stem[s], name=images[s].name) for s in tr + te], width, height,
                               str(cameras)), key=lambda c: c.name)
    maps = {}
    for stem in tr + te:
        path = depths / f"{stem}.npy"
        if not path.is_file():
            raise DatasetError(f"missing depth map {path}")
        depth = read_depth_map(path)
        if depth.shape != (height, width):
            raise DatasetError(f"depth map {path} is {depth.shape[1]}x{depth.shape[0]}, the images are {width}x{height}")
        if not (depth > 0).any():
            raise DatasetError(f"depth map {path} has no valid pixel (all 0, NaN, inf or negative)")
        maps[stem] = depth * np.float32(depth_scale)

    def extra(tmp: Path, size: tuple[int, int]) -> None:
        write_colmap_text(tmp / "gt", cams)
        for stem, depth in maps.items():
            atomic_save(tmp / "depths" / f"{stem}.npy", lambda p, d=depth: np.save(p, d, allow_pickle=False))

    return write_scene(root, dataset, scene, images, tr, te, overwrite, extra=extra, alpha=alpha)


__all__ = ["BuiltScene", "build_from_colmap", "build_from_dtu", "build_from_folder", "build_from_known", "dtu_depth",
           "image_writer", "json_cameras", "list_images", "llff_cameras", "make_split", "read_depth_map",
           "read_mvsnet_cam", "read_pfm", "write_scene", "SPLIT_FILE"]
