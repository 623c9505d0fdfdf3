"""The Blocks UI: inputs, three steps with their own buttons, progress and results; errors as readable messages.

Every step's handler takes the whole input panel, so the steps can be run in any order (a later step runs the
earlier ones it needs through ``Job``) and a changed input simply selects another job. Handlers run one at a
time per ``concurrency_id`` (``max_jobs`` at once, default 1); other users wait in gradio's queue and see their
position.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from feat2gs.demo import pipeline
from feat2gs.demo.sessions import Session, Upload, cleanup_sessions
from feat2gs.demo.settings import DemoSettings
from feat2gs.errors import Feat2GSError

log = logging.getLogger(__name__)

MODE_LABELS = {
    "G": "G — geometry from features (position, scale, rotation, opacity); colour free",
    "T": "T — texture from features (colour, SH); geometry free",
    "A": "A — all parameters from features",
    "Gft": "Gft — as G, features fine-tuned",
    "Tft": "Tft — as T, features fine-tuned",
    "Aft": "Aft — as A, features fine-tuned",
}
FEATURE_EXAMPLES = ["dust3r-iuvrgb", "dino_b16-iuvrgb", "radio-mae_b16-iuvrgb", "dinov2_b14-clip_b16-sam_base"]
METHODS = {"example": ["gt", "dust3r", "mast3r"], "upload": ["dust3r", "mast3r"]}
CSS = """
#banner {border-radius: 8px; padding: 4px 12px;}
.step-title h3 {margin: 0.2em 0;}
"""


def page_text(message: str) -> str:
    """A message for the error toast, which renders HTML: ``<file>`` in a message must show, not vanish as a tag;
    line breaks stay line breaks."""
    return "<br>".join(html.escape(line, quote=False) for line in message.splitlines())


def _uploads(files: Any) -> list[Upload]:
    out = []
    for f in files or []:
        path = getattr(f, "name", f) if not isinstance(f, (str, Path)) else f
        if path:
            out.append(Upload(Path(path), Path(path).name))
    return out


def banner_markdown(settings: DemoSettings, weights: dict[str, str | None]) -> str:
    """What the page says about weights and the preset, above everything else."""
    base = settings.base_config()
    lines = [f"Preset **{settings.preset}** (step-1 size {base.init.image_size} px, {base.train.iterations} "
             f"iterations by default, renders at "
             f"{base.train.resolution or 'the photo size'}{' px' if base.train.resolution else ''})."]
    if settings.random_weights:
        lines.append("**⚠ Started with `--random-weights`:** networks (DUSt3R/MASt3R, feature backbones) run with "
                     "RANDOM weights unless you untick the box; such results test the pipeline only and are "
                     "flagged on the page and in every file (`random_weights: true`).")
    missing = [k for k, msg in weights.items() if msg]
    if missing:
        names = " and ".join({"dust3r": "DUSt3R", "mast3r": "MASt3R"}.get(k, k) for k in missing)
        first = weights[missing[0]].splitlines()
        fetch = next((ln.strip() for ln in first if ln.strip().startswith(("wget", "huggingface-cli"))), "")
        lines.append(f"**{names} weights not found on this server.** The example scene with init **gt** and the "
                     f"weight-free features (**iuvrgb**, **iuv**) run without them. Fetch them with `{fetch}` "
                     "(see `feat2gs backbones` for the feature models), or tick **random weights** to test the "
                     "pipeline without them (or restart with `feat2gs demo --random-weights`).")
    return "\n\n".join(lines)


class Handlers:
    """The event handlers, bound to the server's settings."""

    def __init__(self, settings: DemoSettings) -> None:
        self.settings = settings

    def _session(self, request: gr.Request | None) -> Session:
        session = Session(self.settings.sessions_dir, getattr(request, "session_hash", None))
        if not session.dir.exists():
            cleanup_sessions(self.settings.sessions_dir, self.settings.limits.max_age_hours, keep=[session.id])
        return session

    def _guard(self, request: gr.Request | None, body: Callable[[Session], Any]) -> Any:
        """Run ``body`` holding the session's lock; user errors become gr.Error with their one message, bugs a
        short message (the traceback goes to the server log)."""
        session = self._session(request)
        try:
            with session.busy():
                return body(session)
        except gr.Error:
            raise
        except Feat2GSError as exc:
            message = session.redact(str(exc))
            from feat2gs.features.backbones.weights import BackboneWeightsError
            from feat2gs.init.dust3r.checkpoint import CheckpointError

            if isinstance(exc, (CheckpointError, BackboneWeightsError)):
                message += ("\nOr tick 'random weights' to test the pipeline without them (results are flagged "
                            "as random).")
            raise gr.Error(page_text(message), duration=None, title="Cannot run this step",
                           print_exception=False) from None
        except Exception as exc:  # a bug: keep the page usable, say what happened, log the traceback
            log.exception("demo step failed")
            raise gr.Error(page_text(f"internal error ({type(exc).__name__}: {session.redact(str(exc))[:500]}); "
                                     "the server log has the traceback"), duration=None, title="Internal error",
                           print_exception=False) from None

    def _prepare(self, session, source, files, holdout, method, feature, mode, random, iterations=None,
                 trajectory=None, depth_normal=False):
        choices = pipeline.validate_choices(self.settings, method, feature, mode, iterations, trajectory,
                                            depth_normal, random)
        scene = pipeline.prepare_scene(session, source, _uploads(files), holdout, method, self.settings.limits)
        job, notes = pipeline.make_job(self.settings, session, scene, choices)
        return scene, job, notes

    def step1(self, source, files, holdout, method, feature, mode, random, request: gr.Request,
              progress=gr.Progress(track_tqdm=True)):
        def body(session):
            progress(0.0, desc="step 1: preparing the scene")
            scene, job, notes = self._prepare(session, source, files, holdout, method, feature, mode, random)
            progress(0.1, desc="step 1: pointmaps, cameras and features")
            r = pipeline.run_step1(job, session, scene, notes)
            return str(r.feature_png) if r.feature_png else None, str(r.glb), r.summary

        return self._guard(request, body)

    def step2(self, source, files, holdout, method, feature, mode, random, iterations, viewer,
              request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        def body(session):
            progress(0.0, desc="step 2: preparing")
            scene, job, notes = self._prepare(session, source, files, holdout, method, feature, mode, random,
                                              iterations)
            r = pipeline.run_step2(job, session, scene, notes)
            views = {"points": str(r.glb), "splats": str(r.ply)}
            return str(r.loss_png), views.get(viewer, views["points"]), str(r.ply), r.summary, views

        return self._guard(request, body)

    def step3(self, source, files, holdout, method, feature, mode, random, iterations, trajectory, depth_normal,
              request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        def body(session):
            progress(0.0, desc="step 3: preparing")
            scene, job, notes = self._prepare(session, source, files, holdout, method, feature, mode, random,
                                              iterations, trajectory, depth_normal)
            r = pipeline.run_step3(job, session, scene, notes)
            extra = r.depth_video is not None
            return (str(r.video),
                    gr.Video(value=str(r.depth_video) if extra else None, visible=extra),
                    gr.Video(value=str(r.normal_video) if extra else None, visible=extra),
                    r.metrics, gr.Gallery(value=r.gallery or None, visible=bool(r.gallery)),
                    str(r.job_zip) if r.job_zip else None, r.summary)

        return self._guard(request, body)


def _viewer_changed(viewer: str, views: dict | None):
    """Switch the step-2 viewer between the light GLB and the splat PLY without rerunning anything."""
    return (views or {}).get(viewer)


def _source_changed(source: str):
    methods = METHODS.get(source, METHODS["upload"])
    return gr.Dropdown(choices=methods, value=methods[0])


def build_app(settings: DemoSettings, weights: dict[str, str | None] | None = None) -> gr.Blocks:
    """The demo page. ``weights``: :func:`feat2gs.demo.pipeline.weights_status` (computed when None)."""
    from feat2gs.features import list_features
    from feat2gs.video.trajectories import TRAJECTORIES

    settings.limits.check()
    base = settings.base_config()
    weights = pipeline.weights_status() if weights is None else weights
    have_dust3r = weights.get("dust3r") is None
    handlers = Handlers(settings)
    features = [s.name for s in list_features()] + FEATURE_EXAMPLES
    default_feature = "dust3r" if (have_dust3r or settings.random_weights) else "iuvrgb"
    queue = {"concurrency_limit": max(1, settings.max_jobs), "concurrency_id": "pipeline"}

    with gr.Blocks(title="Feat2GS demo", analytics_enabled=False,
                   delete_cache=(3600, int(settings.limits.max_age_hours * 3600))) as demo:
        gr.Markdown("## Feat2GS — probe the 3D awareness of a visual foundation model\n"
                    "Give a few photos of a scene (or use the example). Step 1 estimates pointmaps and cameras and "
                    "extracts per-pixel features; step 2 reads out 3D Gaussians from the features with small heads "
                    "and trains them on the photos; step 3 renders a video along a camera path and, when the scene "
                    "has held-out views, scores them. Each result is a normal feat2gs job folder.")
        gr.Markdown(banner_markdown(settings, weights), elem_id="banner")
        with gr.Row():
            with gr.Column(scale=1):
                source = gr.Radio([("Example scene (synthetic, known cameras, 3 held-out views)", "example"),
                                   ("My photos", "upload")], value="example", label="Scene", elem_id="source")
                files = gr.File(file_count="multiple", file_types=["image"], type="filepath", elem_id="uploads",
                                label=f"Photos of one scene ({settings.limits.min_images}–"
                                      f"{settings.limits.max_images}, JPEG/PNG, ≤ {settings.limits.max_file_mb:g} "
                                      f"MB each; used when 'My photos' is chosen)")
                holdout = gr.Number(value=0, precision=0, minimum=0, label="Hold out every k-th photo as a test "
                                    "view (0 = train on all; k ≥ 2 gives test metrics)", elem_id="holdout")
            with gr.Column(scale=1):
                method = gr.Dropdown(METHODS["example"], value="gt", label="Init method (pointmaps + cameras)",
                                     elem_id="method")
                feature = gr.Dropdown(features, value=default_feature, allow_custom_value=True,
                                      label="Feature (pick one or type a concatenation such as dino_b16-iuvrgb)",
                                      elem_id="feature")
                mode = gr.Dropdown([(label, name) for name, label in MODE_LABELS.items()], value="G",
                                   label="Probing mode", elem_id="mode")
                random = gr.Checkbox(value=settings.random_weights, elem_id="random",
                                     label="Random weights (tests the pipeline without downloaded weights; results "
                                           "are flagged and meaningless)")
        inputs = [source, files, holdout, method, feature, mode, random]
        source.change(_source_changed, source, method, api_name=False)

        with gr.Group():
            gr.Markdown("### Step 1 · Initialisation & feature extraction", elem_classes="step-title")
            run1 = gr.Button("Run step 1", variant="primary", elem_id="run1")
            step1_md = gr.Markdown(elem_id="step1-summary")
            with gr.Row():
                feat_img = gr.Image(label="Features (PCA, first components as RGB)", type="filepath",
                                    interactive=False, elem_id="feature-pca", height=360)
                points = gr.Model3D(label="Initial point cloud and cameras", interactive=False, elem_id="points3d",
                                    height=360)
        with gr.Group():
            gr.Markdown("### Step 2 · Read out 3D Gaussians from the features", elem_classes="step-title")
            with gr.Row():
                iterations = gr.Number(value=base.train.iterations, precision=0, minimum=2,
                                       maximum=settings.limits.max_iterations, elem_id="iterations",
                                       label=f"Iterations (warm start {base.train.warm_iterations} included)")
                run2 = gr.Button("Run step 2", variant="primary", elem_id="run2")
            step2_md = gr.Markdown(elem_id="step2-summary")
            with gr.Row():
                loss_img = gr.Image(label="Training loss", type="filepath", interactive=False, elem_id="loss",
                                    height=360)
                with gr.Column():
                    viewer = gr.Radio([("Gaussian centres + cameras (light)", "points"),
                                       ("Splats (renders every Gaussian; needs WebGL2, slow without a GPU)",
                                        "splats")], value="points", show_label=False, elem_id="viewer")
                    splat = gr.Model3D(label="Trained 3D Gaussians", interactive=False, elem_id="splat3d",
                                       height=360)
            views_state = gr.State(None)
            ply_file = gr.File(label="Download the 3DGS PLY (opens in any splat viewer)", interactive=False,
                               elem_id="ply", height=90)
        with gr.Group():
            gr.Markdown("### Step 3 · Render a video (and score held-out views)", elem_classes="step-title")
            with gr.Row():
                trajectory = gr.Dropdown(list(TRAJECTORIES), value=base.video.trajectory, label="Trajectory",
                                         elem_id="trajectory")
                depth_normal = gr.Checkbox(value=False, label="Also depth and normal videos", elem_id="depth-normal")
                run3 = gr.Button("Run step 3", variant="primary", elem_id="run3")
            step3_md = gr.Markdown(elem_id="step3-summary")
            with gr.Row():
                video = gr.Video(label="RGB video", interactive=False, elem_id="video", autoplay=True, loop=True)
                depth_video = gr.Video(label="Depth video", interactive=False, visible=False, elem_id="video-depth",
                                       autoplay=True, loop=True)
                normal_video = gr.Video(label="Normal video", interactive=False, visible=False,
                                        elem_id="video-normal", autoplay=True, loop=True)
            metrics_md = gr.Markdown(elem_id="metrics")
            gallery = gr.Gallery(label="Held-out views: render and photo", columns=6, height=200, visible=False,
                                 elem_id="test-views")
            job_zip = gr.File(label="Download the job folder (zip)", interactive=False, elem_id="job-zip",
                              height=90)

        run1.click(handlers.step1, inputs, [feat_img, points, step1_md], api_name="step1", **queue)
        run2.click(handlers.step2, inputs + [iterations, viewer], [loss_img, splat, ply_file, step2_md, views_state],
                   api_name="step2", **queue)
        viewer.change(_viewer_changed, [viewer, views_state], splat, api_name=False)
        run3.click(handlers.step3, inputs + [iterations, trajectory, depth_normal],
                   [video, depth_video, normal_video, metrics_md, gallery, job_zip, step3_md], api_name="step3",
                   **queue)
    return demo


def theme():
    """System fonts only: the page loads nothing from outside the server."""
    return gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "monospace"])
