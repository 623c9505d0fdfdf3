"""``feat2gs`` command line: the six protocol steps, ``eval`` (all of them), the example and listings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from feat2gs import ui
from feat2gs.config import PRESETS, make_config
from feat2gs.errors import Feat2GSError
from feat2gs.sweep.cli_commands import build_dataset_command, report_command
from feat2gs.sweep.sweep_commands import sweep_app

try:  # typer >= 0.20 vendors click; earlier versions use the click package
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_errors

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Probe the 3D awareness of visual foundation models with Gaussian splatting.")

DataRoot = Annotated[Path, typer.Option("--data-root", "-d", help="dataset root holding dataset_split.json")]
Dataset = Annotated[str, typer.Option("--dataset", help="dataset name in dataset_split.json")]
Scene = Annotated[str, typer.Option("--scene", help="scene name in dataset_split.json")]
Feature = Annotated[str, typer.Option("--feature", "-f", help="feature string, e.g. iuvrgb or dino_b16-iuvrgb")]
Mode = Annotated[str, typer.Option("--mode", "-M", help="probing mode: G T A Gft Tft Aft")]
Out = Annotated[Path, typer.Option("--out", "-o", help="output root (jobs go to <out>/eval/...)")]
Preset = Annotated[str, typer.Option("--preset", help=f"settings preset: {', '.join(PRESETS)}")]
Method = Annotated[Optional[str], typer.Option("--method", help="pointmap init method (default: preset's, gt)")]
FeatDim = Annotated[Optional[int], typer.Option("--feat-dim", help="PCA dimension of the features")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="override any setting: section.field=value")]
Force = Annotated[bool, typer.Option("--force", help="redo the step even if its outputs are valid")]
Device = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
Backend = Annotated[Optional[str], typer.Option("--backend", help="renderer: auto, torch, gsplat")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]
Checkpoint = Annotated[Optional[str], typer.Option(
    "--checkpoint", help="dust3r/mast3r weights: official .pth, HF directory or hub id (default: official file)")]
FeatureCheckpoints = Annotated[Optional[list[str]], typer.Option(
    "--feature-checkpoint", help="weights of a feature backbone, NAME=PATH (repeatable), e.g. dino_b16=dino.pth")]
RandomWeights = Annotated[bool, typer.Option(
    "--random-weights", help="run networks with RANDOM weights (tests the pipeline; results are meaningless)")]


def _config(preset: str, method: str | None, feat_dim: int | None, sets: list[str] | None, device: str | None,
            backend: str | None, checkpoint: str | None = None, random_weights: bool = False,
            feature_checkpoints: list[str] | None = None):
    overrides = list(sets or [])
    if feature_checkpoints:
        overrides.append("init.feature_checkpoints=" + ",".join(feature_checkpoints))
    if checkpoint:
        overrides.append(f"init.checkpoint={checkpoint}")
    if random_weights:
        overrides.append("init.random_weights=true")
        ui.warn("--random-weights: networks run with random weights; outputs test the pipeline only and are "
                "marked random_weights=true")
    if method:
        overrides.append(f"init.method={method}")
    if feat_dim is not None:
        overrides.append(f"init.feat_dim={feat_dim}")
    if device:
        overrides += [f"device={device}", f"init.device={device}"]
    if backend:
        overrides.append(f"backend={backend}")
    return make_config(preset, overrides)


def _job(data_root, dataset, scene, feature, mode, out, preset, method, feat_dim, sets, device, backend, quiet,
         checkpoint=None, random_weights=False, feature_checkpoints=None):
    from feat2gs.job import Job

    cfg = _config(preset, method, feat_dim, sets, device, backend, checkpoint, random_weights, feature_checkpoints)
    return Job.create(data_root, dataset, scene, feature, mode, cfg, out, progress=not quiet)


def _say(ran: bool, step: str, where: Path) -> None:
    ui.say(f"{'done' if ran else 'already complete, skipped'}: {where}", step)


@app.command("make-scene")
def make_scene_cmd(
    out: Annotated[Path, typer.Argument(help="dataset root to write")],
    dataset: str = "Synthetic", scene: str = "blocks", n_train: int = 3, n_test: int = 3,
    width: int = 128, height: int = 96, seed: int = 0, overwrite: bool = False,
) -> None:
    """Render the procedural example scene (known cameras + depth) in the standard dataset layout."""
    from feat2gs.data.synthetic import make_scene

    path = make_scene(out, dataset, scene, n_train, n_test, width, height, seed, overwrite)
    ui.say(str(path), "scene written:")


@app.command()
def init(data_root: DataRoot, dataset: Dataset, scene: Scene, feature: Feature, preset: Preset = "protocol",
         method: Method = None, feat_dim: FeatDim = None, set_: Sets = None, force: Force = False,
         device: Device = None, checkpoint: Checkpoint = None, random_weights: RandomWeights = False,
         feature_checkpoint: FeatureCheckpoints = None) -> None:
    """Step 1: pointmaps, cameras and per-pixel features of the training views."""
    from feat2gs.data.layout import SceneLayout
    from feat2gs.init.step import run_init

    cfg = _config(preset, method, feat_dim, set_, device, None, checkpoint, random_weights, feature_checkpoint)
    out = run_init(SceneLayout.open(data_root, dataset, scene), cfg.init, feature, force=force)
    ui.say(f"ready: {out}", "init")


@app.command()
def train(data_root: DataRoot, dataset: Dataset, scene: Scene, feature: Feature, mode: Mode, out: Out,
          preset: Preset = "protocol", method: Method = None, feat_dim: FeatDim = None, set_: Sets = None,
          force: Force = False, device: Device = None, backend: Backend = None, quiet: Quiet = False) -> None:
    """Step 2: warm start + photometric training with joint pose optimisation."""
    job = _job(data_root, dataset, scene, feature, mode, out, preset, method, feat_dim, set_, device, backend, quiet)
    _say(job.train(force), "train", job.ply_path)


@app.command("init-test-pose")
def init_test_pose(data_root: DataRoot, dataset: Dataset, scene: Scene, preset: Preset = "protocol",
                   method: Method = None, set_: Sets = None, force: Force = False,
                   feature: Annotated[str, typer.Option("--feature", "-f", help="feature string whose step-1 "
                                                        "points anchor the test poses (dust3r/mast3r)")] = "iuvrgb",
                   checkpoint: Checkpoint = None, random_weights: RandomWeights = False) -> None:
    """Step 3: initial test poses in the training frame and visibility masks."""
    from feat2gs.data.layout import SceneLayout
    from feat2gs.evaluate.test_pose import run_init_test_pose
    from feat2gs.init.step import run_init

    cfg = _config(preset, method, None, set_, None, None, checkpoint, random_weights)
    layout = SceneLayout.open(data_root, dataset, scene)
    step1 = run_init(layout, cfg.init, feature) if cfg.init.method != "gt" else None
    out = run_init_test_pose(layout, cfg.init, cfg.eval, step1, force=force)
    ui.say(f"ready: {out}", "init-test-pose")


@app.command()
def render(data_root: DataRoot, dataset: Dataset, scene: Scene, feature: Feature, mode: Mode, out: Out,
           preset: Preset = "protocol", method: Method = None, feat_dim: FeatDim = None, set_: Sets = None,
           force: Force = False, device: Device = None, backend: Backend = None, quiet: Quiet = False) -> None:
    """Step 4: refine each test pose, then render test views (renders/, gt/, masks/)."""
    job = _job(data_root, dataset, scene, feature, mode, out, preset, method, feat_dim, set_, device, backend, quiet)
    _say(job.render(force), "render", job.test_dir)


@app.command()
def metrics(data_root: DataRoot, dataset: Dataset, scene: Scene, feature: Feature, mode: Mode, out: Out,
            preset: Preset = "protocol", method: Method = None, feat_dim: FeatDim = None, set_: Sets = None,
            force: Force = False, device: Device = None, quiet: Quiet = False) -> None:
    """Step 5: PSNR / SSIM / LPIPS-VGG (paper-compatible and masked) -> results.json, per_view.json."""
    job = _job(data_root, dataset, scene, feature, mode, out, preset, method, feat_dim, set_, device, None, quiet)
    _say(job.metrics(force), "metrics", job.dir / "results.json")
    _print_results(job.dir / "results.json")


@app.command()
def video(data_root: DataRoot, dataset: Dataset, scene: Scene, feature: Feature, mode: Mode, out: Out,
          preset: Preset = "protocol", method: Method = None, feat_dim: FeatDim = None, set_: Sets = None,
          trajectory: Annotated[Optional[str], typer.Option(help="arc spiral lemniscate wander ellipse interpolated")] = None,
          depth_normal: Annotated[bool, typer.Option(help="also write depth and normal videos")] = False,
          force: Force = False, device: Device = None, backend: Backend = None, quiet: Quiet = False) -> None:
    """Step 6: render a camera trajectory to mp4."""
    sets = list(set_ or [])
    if trajectory:
        sets.append(f"video.trajectory={trajectory}")
    if depth_normal:
        sets.append("video.depth_normal=true")
    job = _job(data_root, dataset, scene, feature, mode, out, preset, method, feat_dim, sets, device, backend, quiet)
    _say(job.video(force), "video", job.dir / "videos")


@app.command("eval")
def eval_cmd(data_root: DataRoot, dataset: Dataset, scene: Scene, feature: Feature, mode: Mode, out: Out,
             preset: Preset = "protocol", method: Method = None, feat_dim: FeatDim = None, set_: Sets = None,
             force: Force = False, device: Device = None, backend: Backend = None, quiet: Quiet = False,
             no_video: Annotated[bool, typer.Option("--no-video", help="skip step 6")] = False,
             checkpoint: Checkpoint = None, random_weights: RandomWeights = False,
             feature_checkpoint: FeatureCheckpoints = None) -> None:
    """Steps 1–6 for one (scene, feature string, mode); steps already complete are skipped."""
    job = _job(data_root, dataset, scene, feature, mode, out, preset, method, feat_dim, set_, device, backend, quiet,
               checkpoint, random_weights, feature_checkpoint)
    ran = job.run_all(force=force, video=not no_video)
    ui.say(f"{job.dir} (ran: {', '.join(k for k, v in ran.items() if v) or 'nothing'})", "eval")
    _print_results(job.dir / "results.json")


@app.command()
def example(out: Annotated[Path, typer.Argument(help="folder for the example data and outputs")] = Path("example"),
            feature: Feature = "iuvrgb", mode: Mode = "G", preset: Preset = "quick", set_: Sets = None,
            quiet: Quiet = False) -> None:
    """Generate the example scene and run the whole job on it (quick preset: minutes on 2 CPU cores)."""
    from feat2gs.data.synthetic import make_scene

    data = out / "data"
    if not (data / "Synthetic" / "blocks").is_dir():
        make_scene(data)
    job = _job(data, "Synthetic", "blocks", feature, mode, out / "output", preset, None, None, set_, None, None, quiet)
    job.run_all()
    ui.say(str(job.dir), "example finished:")
    _print_results(job.dir / "results.json")


@app.command()
def features() -> None:
    """List registered features."""
    from feat2gs.features import list_features

    table = Table("name", "channels", "stride", "kind", "description")
    for spec in list_features():
        kind = "control" if spec.control else "tiny" if spec.tiny else "backbone"
        table.add_row(spec.name, str(spec.channels), str(spec.stride), kind, spec.description)
    Console().print(table)


@app.command()
def backbones(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="also show the layer taken and where weights "
                                          "were looked for")] = False,
) -> None:
    """List the backbone configs (configs/backbone/*.yaml) and whether their weights are on this machine."""
    from feat2gs.features.backbones import backbone_status, list_backbone_configs

    table = Table("name", "library", "model", "stride", "channels", "implemented", "weights")
    for cfg in list_backbone_configs():
        implemented, available, where = backbone_status(cfg.name)
        if not implemented:
            weights = "-"
        elif available:
            weights = f"[green]local[/green] {where[0]}"
        elif where and not where[-1].startswith("missing "):
            weights = f"[yellow]missing[/yellow] ({cfg.hf_hub_id or cfg.url})"
        else:
            weights = f"[yellow]incomplete[/yellow] {where[0]}; " + "; ".join(where[1:])
        if verbose:
            weights += f"\nlayer: {cfg.layer}" + ("" if available else "\nlooked in: " + "; ".join(where))
        table.add_row(cfg.name, cfg.library, cfg.arch or "", str(cfg.stride), str(cfg.channels),
                      "yes" if implemented else f"no (needs {cfg.requires})", weights)
    Console().print(table)


@app.command()
def presets(name: Annotated[Optional[str], typer.Argument(help="preset to print (default: all)")] = None) -> None:
    """Print the settings of the presets (every value can be changed with --set section.field=value)."""
    for preset in [name] if name else list(PRESETS):
        print(f"# preset: {preset}")
        print(make_config(preset).to_yaml())


app.command("report")(report_command)
app.command("build-dataset")(build_dataset_command)
app.add_typer(sweep_app, name="sweep")


def _print_results(path: Path) -> None:
    if not path.is_file():
        return
    results = json.loads(path.read_text())
    table = Table("run", "PSNR", "SSIM", "LPIPS", "PSNR masked", "SSIM masked", "LPIPS masked")
    fmt = lambda v, d: "null" if v is None else f"{v:.{d}f}"  # noqa: E731
    for tag, r in results.items():
        table.add_row(tag, fmt(r["PSNR"], 2), fmt(r["SSIM"], 4), fmt(r["LPIPS"], 4), fmt(r["PSNR_masked"], 2),
                      fmt(r["SSIM_masked"], 4), fmt(r["LPIPS_masked"], 4))
    Console().print(table)
    first = next(iter(results.values()))
    if first.get("lpips_note"):
        ui.say(first["lpips_note"], "note:", "yellow")
    if first.get("status") not in (None, "ok"):
        ui.warn(f"status {first['status']}: {first.get('status_reason', '')}")
    if first.get("random_weights"):
        ui.warn("these numbers come from RANDOM network weights (--random-weights)")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors (bad input, bad options) print one literal ``error:`` line and exit 2 — no
    traceback; Ctrl+C exits 130 keeping every completed step."""
    ui.configure_logging()
    try:
        code = app(args=argv, standalone_mode=False)
    except Feat2GSError as exc:
        ui.error(str(exc))
        sys.exit(2)
    except click_errors.NoArgsIsHelpError as exc:  # bare `feat2gs` / `feat2gs sweep`: the help text
        exc.show()
        sys.exit(0)
    except click_errors.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        ui.error(exc.format_message() + where)
        sys.exit(2)
    except click_errors.ClickException as exc:
        ui.error(exc.format_message())
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        ui.say("completed steps are kept, rerun to finish", "interrupted;", "yellow")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
