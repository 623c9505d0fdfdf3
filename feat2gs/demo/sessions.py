"""Per-browser-session folders, uploaded photos (copied, checked, named safely) and clean-up of old sessions.

A session folder ``<cache>/sessions/<id>/`` holds::

    uploads/<digest>/   the photos of one upload, copied under sanitised names (the dataset builder's source)
    data/               a dataset root (dataset_split.json, Demo/upload-<digest>/, Synthetic/blocks/)
    output/             an output root: eval/<Dataset>/<scene>/<N>_views/feat2gs-<mode>@<preset>/<method>/<feature>/
    views/              what the page shows that the pipeline does not write (GLB, loss curve, zip of a job)
    .lock               held (flock) while a step runs, so clean-up never deletes a folder in use
    .last_used          touched at every action; folders unused for ``max_age_hours`` are deleted
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import re
import shutil
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from feat2gs.demo.settings import DemoError, Limits
from feat2gs.io import atomic_dir, ensure_writable_dir

log = logging.getLogger(__name__)

COPIED_FORMATS = {"JPEG": ".jpg", "PNG": ".png"}  # written byte for byte
CONVERTED_FORMATS = {"WEBP", "BMP", "TIFF", "GIF", "PPM", "MPO"}  # decoded and written as PNG
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
ASPECT_TOLERANCE = 0.01


def session_id(raw: str | None) -> str:
    """A folder name from a browser session id: letters, digits, ``_`` and ``-`` only (never a path)."""
    text = re.sub(r"[^A-Za-z0-9_-]", "", raw or "")[:64]
    return text or "anonymous"


def sanitize_name(name: str, fallback: str = "image") -> str:
    """A safe file stem from an uploaded file's name: its last path part, without its extension, accents dropped,
    restricted to ``[A-Za-z0-9._-]`` (runs of anything else become ``_``), no leading dots, at most 64 characters."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = "".join(c for c in unicodedata.normalize("NFKD", base) if not unicodedata.combining(c))
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = _SAFE.sub("_", stem).strip("._-")[:64].strip("._-")
    return stem or fallback


class Session:
    """One browser session's folder."""

    def __init__(self, sessions_dir: Path, sid: str) -> None:
        self.id = session_id(sid)
        self.dir = Path(sessions_dir) / self.id

    def ensure(self) -> "Session":
        for sub in ("uploads", "data", "output", "views"):
            ensure_writable_dir(self.dir / sub)
        self.touch()
        return self

    def touch(self) -> None:
        (self.dir / ".last_used").touch()

    @property
    def data_root(self) -> Path:
        return self.dir / "data"

    @property
    def out_root(self) -> Path:
        return self.dir / "output"

    @property
    def views(self) -> Path:
        return self.dir / "views"

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Hold the session's lock while a step runs (clean-up skips locked folders)."""
        self.ensure()
        with open(self.dir / ".lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                self.touch()
                fcntl.flock(fh, fcntl.LOCK_UN)

    def redact(self, message: str) -> str:
        """A message for the page: the session folder's server path replaced by ``<session>``."""
        return message.replace(str(self.dir), "<session>")


def last_used(folder: Path) -> float:
    marker = folder / ".last_used"
    try:
        return marker.stat().st_mtime if marker.exists() else folder.stat().st_mtime
    except OSError:
        return 0.0


def cleanup_sessions(sessions_dir: Path, max_age_hours: float, now: float | None = None,
                     keep: Sequence[str] = ()) -> list[Path]:
    """Delete session folders unused for more than ``max_age_hours``; folders whose lock is held (a step is
    running) and the ids in ``keep`` are left alone. Returns the folders removed."""
    sessions_dir = Path(sessions_dir)
    if not sessions_dir.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for folder in sorted(sessions_dir.iterdir()):
        if not folder.is_dir() or folder.name in keep or now - last_used(folder) <= max_age_hours * 3600:
            continue
        lock = folder / ".lock"
        try:
            with open(lock, "a+") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a step is running in it
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError as exc:
            log.warning("cannot clean up demo session %s: %s", folder, exc)
    return removed


# ------------------------------------------------------------------------------------------------------------------
# uploads

@dataclass(frozen=True)
class Upload:
    """One uploaded file: where gradio stored it and the name the user gave it."""

    path: Path
    name: str


@dataclass(frozen=True)
class IngestedPhotos:
    folder: Path  # the copied photos, one per upload, sanitised unique names
    digest: str  # of names and bytes: the same photos give the same scene
    notes: tuple[str, ...]  # what was changed (converted formats, resized photos), for the page


def _mb(n: int | float) -> str:
    return f"{n / 1e6:.1f} MB"


def _inspect(upload: Upload, limits: Limits) -> tuple[str, tuple[int, int]]:
    """-> (PIL format, (width, height) after EXIF orientation); decodes the whole image once."""
    name = upload.name
    try:
        size = upload.path.stat().st_size
    except OSError:
        raise DemoError(f"{name}: the upload is missing on the server; upload it again") from None
    if size == 0:
        raise DemoError(f"{name}: the file is empty (0 bytes)")
    if size > limits.max_file_mb * 1e6:
        raise DemoError(f"{name}: {_mb(size)} is larger than the limit of {limits.max_file_mb:g} MB per photo")
    try:
        with Image.open(upload.path) as img:
            fmt = img.format or "?"
            if fmt not in COPIED_FORMATS and fmt not in CONVERTED_FORMATS:
                raise DemoError(f"{name}: {fmt} files are not supported; upload JPEG or PNG photos")
            w, h = img.size
            if w * h > limits.max_megapixels * 1e6:
                raise DemoError(f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, more than the limit of "
                                f"{limits.max_megapixels:g}; downscale it first")
            img.load()
            orientation = img.getexif().get(0x0112, 1)
    except DemoError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DemoError(f"{name}: not a readable image ({type(exc).__name__}: {exc})") from None
    return fmt, ((h, w) if orientation in (5, 6, 7, 8) else (w, h))


def _unique(stem: str, taken: set[str]) -> str:
    out, k = stem, 2
    while out.lower() in taken:
        out, k = f"{stem}_{k}", k + 1
    taken.add(out.lower())
    return out


def _png_of(path: Path, size: tuple[int, int] | None = None) -> bytes:
    """The image (first frame, EXIF orientation applied) as PNG bytes, resized to ``size`` when given; an alpha
    channel is kept (the dataset builder composites it)."""
    import io

    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGBA" if img.has_transparency_data else "RGB")
        if size is not None and img.size != size:
            img = img.resize(size, Image.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue()


def _common_size(sizes: dict[str, tuple[int, int]]) -> tuple[int, int]:
    """The size every photo is brought to: the smallest when all share one aspect ratio; else an error naming
    the photos that differ."""
    distinct = set(sizes.values())
    if len(distinct) == 1:
        return next(iter(distinct))
    ref_name, ref = next(iter(sizes.items()))
    aspect = ref[0] / ref[1]
    odd = [f"{n} is {w}x{h}" for n, (w, h) in sizes.items() if abs(w / h - aspect) > ASPECT_TOLERANCE * aspect]
    if odd:
        raise DemoError(f"all photos must have the same shape: {ref_name} is {ref[0]}x{ref[1]} but "
                        + ", ".join(odd[:3]) + (" ..." if len(odd) > 3 else "")
                        + " (crop them to one aspect ratio and orientation)")
    return min(distinct, key=lambda s: s[0] * s[1])


def ingest_uploads(uploads: Sequence[Upload], session: Session, limits: Limits) -> IngestedPhotos:
    """Check the uploads against ``limits``, then copy them into ``uploads/<digest>/`` of the session.

    JPEG and PNG files are copied byte for byte (the originals are never moved or changed); other formats Pillow
    reads (WebP, BMP, TIFF, GIF) become PNG. Photos of one aspect ratio but different sizes are resized to the
    smallest; different shapes are an error. Every problem is a :class:`DemoError` naming the photo.
    """
    uploads = [u for u in uploads if u is not None]
    if len(uploads) < limits.min_images:
        raise DemoError(f"upload at least {limits.min_images} photos of the scene (got {len(uploads)}); "
                        "or choose the example scene")
    if len(uploads) > limits.max_images:
        raise DemoError(f"at most {limits.max_images} photos per scene (got {len(uploads)})")
    total = sum(u.path.stat().st_size for u in uploads if u.path.is_file())
    if total > limits.max_total_mb * 1e6:
        raise DemoError(f"the photos add up to {_mb(total)}, more than the limit of {limits.max_total_mb:g} MB")

    taken: set[str] = set()
    plan = []  # (upload, stem, format, size)
    for u in sorted(uploads, key=lambda u: (sanitize_name(u.name), u.name)):
        fmt, size = _inspect(u, limits)
        plan.append((u, _unique(sanitize_name(u.name, f"photo{len(plan) + 1}"), taken), fmt, size))
    target = _common_size({u.name: size for u, _, _, size in plan})

    files: dict[str, bytes] = {}
    notes = []
    for u, stem, fmt, size in plan:
        if size != target:
            files[f"{stem}.png"] = _png_of(u.path, target)
            notes.append(f"{u.name} resized from {size[0]}x{size[1]} to {target[0]}x{target[1]}")
        elif fmt in COPIED_FORMATS:
            files[stem + COPIED_FORMATS[fmt]] = u.path.read_bytes()
        else:
            files[f"{stem}.png"] = _png_of(u.path)
            notes.append(f"{u.name} ({fmt}) converted to PNG")
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    digest = h.hexdigest()[:12]
    folder = session.ensure().dir / "uploads" / digest
    if not folder.is_dir():
        with atomic_dir(folder) as tmp:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
    return IngestedPhotos(folder, digest, tuple(notes))

