"""The demo's steps, run through :class:`feat2gs.job.Job` exactly as the command line runs them.

* :func:`prepare_scene` turns the page's scene choice into a scene of the session's dataset root: the example
  (``Synthetic/blocks``, known cameras and depth, held-out views) or the uploaded photos (``Demo/upload-<digest>``,
  built with :func:`feat2gs.data.builders.build_from_folder`; the same photos give the same scene, so steps
  already done are reused).
* :func:`run_step1`, :func:`run_step2`, :func:`run_step3` call ``job.step1``, ``job.train()``,
  ``job.video()`` and, when the scene has held-out views, ``job.metrics()``; each returns the files and a short
  Markdown summary for the page. Results stay in the job folder; the page's extras (GLB, loss curve, zip of the
  job) go to the session's ``views/``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from feat2gs.demo.exports import gaussians_and_cameras_glb, loss_curve_png, points_and_cameras_glb
from feat2gs.demo.sessions import IngestedPhotos, Session, Upload, ingest_uploads
from feat2gs.demo.settings import DemoError, DemoSettings, Limits, RunChoices, run_config
from feat2gs.errors import ConfigError
from feat2gs.io import file_lock

EXAMPLE_DATASET, EXAMPLE_SCENE = "Synthetic", "blocks"
UPLOAD_DATASET = "Demo"
SOURCES = ("example", "upload")
RANDOM_FLAG = ("**⚠ RANDOM WEIGHTS** — networks ran with random weights: this tests the pipeline, the numbers "
               "and pictures say nothing about the model.")


@dataclass(frozen=True)
class SceneRef:
    data_root: Path
    dataset: str
    scene: str
    n_train: int
    n_test: int
    notes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.scene} ({self.n_train} train, {self.n_test} held-out views)"


# ------------------------------------------------------------------------------------------------------------------
# inputs

def check_feature(feature: str | None) -> str:
    """A registered feature string (``dust3r``, ``dino_b16-iuvrgb``): ``module:function`` models, which import
    code, are for the command line only."""
    from feat2gs.features import parse_feature_string

    text = (feature or "").strip()
    if not text:
        raise DemoError("choose a feature (e.g. dust3r, or a concatenation such as dino_b16-iuvrgb)")
    if ":" in text:
        raise DemoError(f"feature {text!r}: the demo runs registered features only; use the command line "
                        "(`feat2gs eval -f module:function`) for your own model")
    return "-".join(s.name for s in parse_feature_string(text))


def check_mode(mode: str | None) -> str:
    from feat2gs.gaussians import get_mode

    return get_mode((mode or "").strip()).name


def _holdout(value) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    k = int(value)
    if k != value or k < 0 or k == 1:
        raise DemoError(f"hold-out {value}: expected 0 (train on every photo) or k >= 2 (every k-th photo is a "
                        "test view)")
    return k


def prepare_scene(session: Session, source: str, uploads: list[Upload], holdout, method: str,
                  limits: Limits) -> SceneRef:
    """The scene the page asks for, built in the session's dataset root unless already there."""
    from feat2gs.data.layout import SceneLayout

    if source not in SOURCES:
        raise DemoError(f"scene source {source!r}: expected one of {', '.join(SOURCES)}")
    session.ensure()
    root = session.data_root
    if source == "example":
        from feat2gs.data.synthetic import make_scene

        with file_lock(root / ".example.lock"):
            if not (root / EXAMPLE_DATASET / EXAMPLE_SCENE).is_dir():
                make_scene(root, EXAMPLE_DATASET, EXAMPLE_SCENE)
        layout = SceneLayout.open(root, EXAMPLE_DATASET, EXAMPLE_SCENE)
        return SceneRef(root, EXAMPLE_DATASET, EXAMPLE_SCENE, layout.n_views, len(layout.test_names))

    if method == "gt":
        raise DemoError("init method gt needs known cameras and depth maps, which only the example scene has; "
                        "choose dust3r or mast3r for your photos")
    k = _holdout(holdout)
    photos: IngestedPhotos = ingest_uploads(uploads, session, limits)
    n = len([p for p in photos.folder.iterdir() if p.is_file()])
    if k:
        n_test = len(range(0, n, k))
        if n - n_test < 2:
            raise DemoError(f"holding out every {k}-th of {n} photos leaves {n - n_test} for training; step 1 needs "
                            "at least 2 (upload more photos or hold out fewer)")
    scene = f"upload-{photos.digest}" + (f"-test{k}" if k else "")
    notes = list(photos.notes)
    with file_lock(root / f".{scene}.lock"):
        if not (root / UPLOAD_DATASET / scene).is_dir():
            from feat2gs.data.builders import build_from_folder, list_images

            stems = list(list_images(photos.folder))
            split = {"test_every": k} if k else {"train": stems}
            from feat2gs.data.images import has_transparency

            if any(has_transparency(p) for p in photos.folder.iterdir()):
                notes.append("photos with transparent pixels were composited onto white")
            build_from_folder(photos.folder, root, UPLOAD_DATASET, scene, alpha="white", **split)
    layout = SceneLayout.open(root, UPLOAD_DATASET, scene)
    return SceneRef(root, UPLOAD_DATASET, scene, layout.n_views, len(layout.test_names), tuple(notes))


def make_job(settings: DemoSettings, session: Session, scene: SceneRef, choices: RunChoices):
    """(Job, notes): the same Job the CLI builds, with the session's output root."""
    from feat2gs.job import Job

    if scene.dataset == UPLOAD_DATASET and choices.method == "gt":
        raise DemoError("init method gt needs known cameras and depth maps; choose dust3r or mast3r")
    cfg, notes = run_config(settings, choices)
    job = Job.create(scene.data_root, scene.dataset, scene.scene, choices.feature, choices.mode, cfg,
                     session.out_root, progress=True)
    return job, notes


# ------------------------------------------------------------------------------------------------------------------
# results

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120]


def job_label(job) -> str:
    return f"{job.feat_string} · mode {job.mode.name} · init {job.cfg.init.method} · preset {job.cfg.preset}"


def relative(job, session: Session) -> str:
    return str(job.dir.relative_to(session.dir))


@dataclass
class Step1Result:
    feature_png: Path | None
    glb: Path
    summary: str
    random_weights: bool
    step1_dir: Path


@dataclass
class Step2Result:
    loss_png: Path
    ply: Path  # the job's 3DGS PLY (splat viewer, download)
    glb: Path  # Gaussian centres + optimised cameras (light viewer)
    summary: str
    random_weights: bool


@dataclass
class Step3Result:
    video: Path
    depth_video: Path | None
    normal_video: Path | None
    metrics: str
    gallery: list[tuple[str, str]] = field(default_factory=list)
    job_zip: Path | None = None
    summary: str = ""
    random_weights: bool = False
    results: dict | None = None


def _notes(lines) -> str:
    return "".join(f"\n- {n}" for n in lines)


def step1_random(step1: Path) -> bool:
    from feat2gs.integrity import read_manifest

    return bool((read_manifest(step1) or {}).get("random_weights", False))


def run_step1(job, session: Session, scene: SceneRef, notes: list[str]) -> Step1Result:
    """Step 1 (computed, or reused when valid): the PCA image of the features and a GLB of points + cameras."""
    step1 = job.step1
    manifest = json.loads((step1 / "manifest.json").read_text())
    views = session.views / "step1" / _slug(str(step1.relative_to(session.data_root)))
    glb = points_and_cameras_glb(step1, views / "points_cameras.glb")
    feature_png = step1 / "feat_dim0-9.png"
    random = bool(manifest.get("random_weights"))
    w, h = manifest.get("working_size", ["?", "?"])
    summary = (f"**Step 1 done** — {scene.label}, init **{job.cfg.init.method}**, feature **{job.feat_string}**: "
               f"{manifest.get('n_points', '?')} points from {len(manifest.get('names', []))} views at {w}×{h}, "
               f"feature width {manifest.get('feature_dim', '?')} after PCA "
               f"({manifest.get('seconds', 0):.1f} s when computed)."
               + _notes(list(scene.notes) + notes)
               + (f"\n\n{RANDOM_FLAG}" if random else ""))
    return Step1Result(feature_png if feature_png.is_file() else None, glb, summary, random, step1)


def run_step2(job, session: Session, scene: SceneRef, notes: list[str]) -> Step2Result:
    """Step 2: warm start + photometric training (reused when done); the loss curve and the 3DGS PLY."""
    ran = job.train()
    info = job.record()["steps"]["train"]
    views = session.views / "step2" / _slug(relative(job, session))
    loss = loss_curve_png(job.dir / "train_log.json", views / f"loss_{job.iteration}.png", job_label(job))
    glb = gaussians_and_cameras_glb(job.ply_path, job.dir / "pose" / f"pose_{job.iteration}.npy",
                                    job.dir / "cameras.json", views / f"gaussians_{job.iteration}.glb")
    random = step1_random(job.step1)
    final = info.get("final_loss")
    summary = (f"**Step 2 {'done' if ran else 'already done (reused)'}** — {job_label(job)}: "
               f"{info.get('n_gaussians', '?')} Gaussians, {info.get('iterations', '?')} iterations "
               f"({job.cfg.train.warm_iterations} warm start), final loss "
               f"{'n/a' if final is None else f'{final:.4f}'}, {info.get('seconds', 0):.1f} s, renders at "
               f"{'×'.join(str(v) for v in info.get('render_size', []))}.\n\nJob folder: `{relative(job, session)}`"
               + _notes(notes) + (f"\n\n{RANDOM_FLAG}" if random else ""))
    return Step2Result(loss, job.ply_path, glb, summary, random)


def _fmt(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def metrics_markdown(results: dict, n_test: int) -> str:
    """The results.json of a job as a small table (nulls as — with their reasons)."""
    tag, r = next(iter(results.items()))
    lines = [f"**Test metrics** ({tag}, {r.get('num_views_scored', '?')} of {r.get('num_views', n_test)} held-out "
             f"views scored, status **{r.get('status', '?')}**)", "",
             "| | PSNR ↑ | SSIM ↑ | LPIPS ↓ |", "|---|---|---|---|",
             f"| full image | {_fmt(r.get('PSNR'), 2)} | {_fmt(r.get('SSIM'), 4)} | {_fmt(r.get('LPIPS'), 4)} |",
             f"| visible mask | {_fmt(r.get('PSNR_masked'), 2)} | {_fmt(r.get('SSIM_masked'), 4)} | "
             f"{_fmt(r.get('LPIPS_masked'), 4)} |"]
    if r.get("status_reason"):
        lines += ["", f"Status: {r['status_reason']}"]
    if r.get("lpips_note"):
        lines += ["", f"LPIPS: {r['lpips_note']}"]
    if r.get("random_weights"):
        lines += ["", RANDOM_FLAG]
    return "\n".join(lines)


def zip_job(job, session: Session) -> Path:
    """A zip of the whole job folder (what `feat2gs report` reads), in the session's views/."""
    base = session.views / "downloads" / _slug(f"{job.layout.scene}_{job.mode.name}_{job.cfg.init.method}_"
                                              f"{job.feat_string}_{job.cfg.preset}")
    base.parent.mkdir(parents=True, exist_ok=True)
    tmp = base.with_name(base.name + ".partial")
    archive = shutil.make_archive(str(tmp), "zip", root_dir=job.dir.parent, base_dir=job.dir.name)
    final = base.with_suffix(".zip")
    Path(archive).replace(final)
    return final


def run_step3(job, session: Session, scene: SceneRef, notes: list[str]) -> Step3Result:
    """Step 3: the trajectory video (and depth/normal videos when asked); test metrics when the scene has
    held-out views."""
    job.video()
    vc = job.cfg.video
    target = job.dir / "videos" / f"{job.layout.scene}_{job.layout.n_views}_view_{vc.trajectory}.mp4"
    depth = target.with_name(target.stem + "_depth.mp4") if vc.depth_normal else None
    normal = target.with_name(target.stem + "_normal.mp4") if vc.depth_normal else None
    results, gallery = None, []
    if scene.n_test:
        job.metrics()
        results = json.loads((job.dir / "results.json").read_text())
        metrics = metrics_markdown(results, scene.n_test)
        for name in job.layout.test_names:
            stem = Path(name).stem
            gallery += [(str(job.test_dir / "renders" / f"{stem}.png"), f"{stem}: render"),
                        (str(job.test_dir / "gt" / f"{stem}.png"), f"{stem}: photo")]
    else:
        metrics = ("No test metrics: this scene has no held-out views. Set *hold out every k-th photo* (k ≥ 2) "
                   "before step 1 to score novel views.")
    random = step1_random(job.step1)
    summary = (f"**Step 3 done** — {job_label(job)}: {vc.trajectory} trajectory video"
               f"{' with depth and normal videos' if vc.depth_normal else ''}.\n\n"
               f"Job folder: `{relative(job, session)}` (a normal job folder: `feat2gs report` reads it)"
               + _notes(notes) + (f"\n\n{RANDOM_FLAG}" if random else ""))
    return Step3Result(target, depth, normal, metrics, gallery, zip_job(job, session), summary, random, results)


# ------------------------------------------------------------------------------------------------------------------
# weights

def weights_status() -> dict[str, str | None]:
    """{kind: None when its weights are on this machine, else the message naming where they were looked for and
    the fetch command} for dust3r and mast3r (no network)."""
    from feat2gs.init.dust3r.checkpoint import resolve_source

    out: dict[str, str | None] = {}
    for kind in ("dust3r", "mast3r"):
        try:
            resolve_source(None, kind)
            out[kind] = None
        except Exception as exc:  # CheckpointError, or an unreadable cache dir
            out[kind] = str(exc)
    return out


def validate_choices(settings: DemoSettings, method: str, feature: str, mode: str, iterations=None,
                     trajectory: str | None = None, depth_normal: bool = False, random: bool = False) -> RunChoices:
    """Check the page's choices (one DemoError/ConfigError line each) and bundle them."""
    from feat2gs.init.base import available_inits

    if method not in available_inits():
        raise ConfigError(f"init method {method!r}: expected one of {', '.join(available_inits())}")
    if iterations is not None and (isinstance(iterations, float) and (math.isnan(iterations)
                                                                       or iterations != int(iterations))):
        raise DemoError(f"iterations {iterations}: expected a whole number")
    return RunChoices(method=method, feature=check_feature(feature), mode=check_mode(mode),
                      iterations=None if iterations is None else int(iterations), trajectory=trajectory or None,
                      depth_normal=bool(depth_normal), random_weights=bool(random))
