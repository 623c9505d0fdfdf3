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
from feat2gs.demo.cli import demo_command
from feat2gs.evaluate.met3r.cli import met3r_command
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
Feature = Annotated[str, typer.Option(
    "--feature", "-f", help="feature string, e.g. iuvrgb, dino_b16-iuvrgb or mymodule:extract (your own model)")]
Mode = Annotated[str, typer.Option("--mode", "-M", help="probing mode: G T A Gft Tft Aft, or instantsplat (baseline)")]
JobFeature = Annotated[Optional[str], typer.Option(
    "--feature", "-f", help="feature string, e.g. iuvrgb, dino_b16-iuvrgb or mymodule:extract (none for "
    "-M instantsplat)")]
Out = Annotated[Path, typer.Option("--out", "-o", help="output root (jobs go to <out>/eval/...)")]
Preset = Annotated[str, typer.Option("--preset", help=f"settings preset: {', '.join(PRESETS)}")]
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", help="start from a run's config.yaml instead of a preset (reproduces that run; --set on top)")]
Method = Annotated[Optional[str], typer.Option("--method", help="pointmap init method (default: preset's, gt)")]
FeatDim = Annotated[Optional[int], typer.Option("--feat-dim", help="PCA dimension of the features")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", help="override any setting: section.field=value")]
Force = Annotated[bool, typer.Option("--force", help="redo the step even if its outputs are valid")]
Device = Annotated[Optional[str], typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")]
Backend = Annotated[Optional[str], typer.Option("--backend", help="renderer: auto, torch, gsplat")]
Quiet, Verbose = ui.Quiet, ui.Verbose
Checkpoint = Annotated[Optional[str], typer.Option(
    "--checkpoint", help="dust3r/mast3r weights: official .pth, HF directory or hub id (default: official file)")]
FeatureCheckpoints = Annotated[Optional[list[str]], typer.Option(
    "--feature-checkpoint", help="weights of a feature backbone, NAME=PATH (repeatable), e.g. dino_b16=dino.pth")]
RandomWeights = Annotated[bool, typer.Option(
    "--random-weights", help="run networks with RANDOM weights (tests the pipeline; results are meaningless)")]


def _config(preset: str = "protocol", config: Path | None = None, method: str | None = None,
            feat_dim: int | None = None, set_: list[str] | None = None, device: str | None = None,
            backend: str | None = None, checkpoint: str | None = None, random_weights: bool = False,
            feature_checkpoint: list[str] | None = None, verbose: int = 0, quiet: bool = False):
    """The settings of a command: a preset (or a run's config.yaml), then the options, then --set, validated."""
    from feat2gs.config import apply_overrides, load_config, validate

    ui.configure_logging(verbose, quiet)
    overrides = []
    if feature_checkpoint:
        overrides.append("init.feature_checkpoints=" + ",".join(feature_checkpoint))
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
    overrides += list(set_ or [])
    if config is not None:
        return validate(apply_overrides(load_config(config), overrides))
    return make_config(preset, overrides)


def _job(data_root: Path, dataset: str, scene: str, feature: str, mode: str, out: Path, force: bool = False,
         **settings):
    from feat2gs.job import Job

    cfg = _config(**settings)
    return Job.create(data_root, dataset, scene, feature, mode, cfg, out, progress=not settings.get("quiet"))


def _say(ran: bool, step: str, where: Path) -> None:
    ui.say(f"{'done' if ran else 'already complete, skipped'}: {where}", step)


@app.command("make-scene")
def make_scene_cmd(
    out: Annotated[Path, typer.Argument(help="dataset root to write")],
    dataset: str = "Synthetic", scene: str = "blocks", n_train: int = 3, n_test: int = 3,
    width: int = 128, height: int = 96, seed: int = 0, overwrite: bool = False, verbose: Verbose = 0,
    quiet: Quiet = False,
) -> None:
    """Render the procedural example scene (known cameras + depth) in the standard dataset layout."""
    from feat2gs.data.synthetic import make_scene

    ui.configure_logging(verbose, quiet)
    path = make_scene(out, dataset, scene, n_train, n_test, width, height, seed, overwrite)
    ui.say(str(path), "scene written:")


@app.command()
def init(data_root: DataRoot, dataset: Dataset, scene: Scene, feature: Feature, preset: Preset = "protocol",
         config: ConfigFile = None, method: Method = None, feat_dim: FeatDim = None, set_: Sets = None,
         force: Force = False, device: Device = None, checkpoint: Checkpoint = None,
         random_weights: RandomWeights = False, feature_checkpoint: FeatureCheckpoints = None, verbose: Verbose = 0,
         quiet: Quiet = False) -> None:
    """Step 1: pointmaps, cameras and per-pixel features of the training views."""
    from feat2gs.data.layout import SceneLayout
    from feat2gs.init.step import run_init

    cfg = _config(preset, config, method, feat_dim, set_, device, None, checkpoint, random_weights, feature_checkpoint,
                  verbose, quiet)
    out = run_init(SceneLayout.open(data_root, dataset, scene), cfg.init, feature, force=force, progress=not quiet)
    ui.say(f"ready: {out}", "init")


@app.command()
def train(data_root: DataRoot, dataset: Dataset, scene: Scene, mode: Mode, out: Out,
          feature: JobFeature = None,
          preset: Preset = "protocol", config: ConfigFile = None, method: Method = None, feat_dim: FeatDim = None,
          set_: Sets = None, force: Force = False, device: Device = None, backend: Backend = None,
          checkpoint: Checkpoint = None, random_weights: RandomWeights = False,
          feature_checkpoint: FeatureCheckpoints = None, verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Step 2: warm start + photometric training with joint pose optimisation (step 1 first if needed)."""
    job = _job(**locals())
    _say(job.train(force), "train", job.ply_path)


@app.command("init-test-pose")
def init_test_pose(data_root: DataRoot, dataset: Dataset, scene: Scene, preset: Preset = "protocol",
                   config: ConfigFile = None, method: Method = None, set_: Sets = None, force: Force = False,
                   feature: Annotated[str, typer.Option("--feature", "-f", help="feature string whose step-1 "
                                                        "points anchor the test poses (dust3r/mast3r)")] = "iuvrgb",
                   checkpoint: Checkpoint = None, random_weights: RandomWeights = False, verbose: Verbose = 0,
                   quiet: Quiet = False) -> None:
    """Step 3: initial test poses in the training frame and visibility masks."""
    from feat2gs.data.layout import SceneLayout
    from feat2gs.evaluate.test_pose import run_init_test_pose
    from feat2gs.init.step import run_init

    cfg = _config(preset, config, method, None, set_, None, None, checkpoint, random_weights, None, verbose, quiet)
    layout = SceneLayout.open(data_root, dataset, scene)
    step1 = run_init(layout, cfg.init, feature, progress=not quiet) if cfg.init.method != "gt" else None
    out = run_init_test_pose(layout, cfg.init, cfg.eval, step1, force=force, progress=not quiet)
    ui.say(f"ready: {out}", "init-test-pose")


@app.command()
def render(data_root: DataRoot, dataset: Dataset, scene: Scene, mode: Mode, out: Out,
           feature: JobFeature = None,
           preset: Preset = "protocol", config: ConfigFile = None, method: Method = None, feat_dim: FeatDim = None,
           set_: Sets = None, force: Force = False, device: Device = None, backend: Backend = None,
           checkpoint: Checkpoint = None, random_weights: RandomWeights = False,
           feature_checkpoint: FeatureCheckpoints = None, verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Step 4: refine each test pose, then render test views (renders/, gt/, masks/); earlier steps if needed."""
    job = _job(**locals())
    _say(job.render(force), "render", job.test_dir)


@app.command()
def metrics(data_root: DataRoot, dataset: Dataset, scene: Scene, mode: Mode, out: Out,
            feature: JobFeature = None,
            preset: Preset = "protocol", config: ConfigFile = None, method: Method = None, feat_dim: FeatDim = None,
            set_: Sets = None, force: Force = False, device: Device = None, backend: Backend = None,
            checkpoint: Checkpoint = None, random_weights: RandomWeights = False,
            feature_checkpoint: FeatureCheckpoints = None, verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Step 5: PSNR / SSIM / LPIPS-VGG (paper-compatible and masked) -> results.json, per_view.json."""
    job = _job(**locals())
    _say(job.metrics(force), "metrics", job.dir / "results.json")
    _print_results(job.dir / "results.json")


@app.command()
def video(data_root: DataRoot, dataset: Dataset, scene: Scene, mode: Mode, out: Out,
          feature: JobFeature = None,
          preset: Preset = "protocol", config: ConfigFile = None, method: Method = None, feat_dim: FeatDim = None,
          set_: Sets = None,
          trajectory: Annotated[Optional[str], typer.Option(
              help="arc spiral lemniscate wander ellipse interpolated")] = None,
          depth_normal: Annotated[bool, typer.Option(help="also write depth and normal videos")] = False,
          met3r: Annotated[bool, typer.Option(help="also score frame pairs with MET3R (multi-view consistency)")] = False,
          force: Force = False, device: Device = None, backend: Backend = None, checkpoint: Checkpoint = None,
          random_weights: RandomWeights = False, feature_checkpoint: FeatureCheckpoints = None,
          verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Step 6: render a camera trajectory to mp4."""
    settings = dict(locals())
    settings["set_"] = list(set_ or []) + ([f"video.trajectory={trajectory}"] if trajectory else []) + (
        ["video.depth_normal=true"] if depth_normal else []) + (["video.met3r=true"] if met3r else []) + (
        ["video.met3r_random_weights=true"] if met3r and random_weights else [])
    del settings["trajectory"], settings["depth_normal"], settings["met3r"]
    job = _job(**settings)
    _say(job.video(force), "video", job.dir / "videos")


@app.command("eval")
def eval_cmd(data_root: DataRoot, dataset: Dataset, scene: Scene, mode: Mode, out: Out,
             feature: JobFeature = None,
             preset: Preset = "protocol", config: ConfigFile = None, method: Method = None, feat_dim: FeatDim = None,
             set_: Sets = None, force: Force = False, device: Device = None, backend: Backend = None,
             no_video: Annotated[bool, typer.Option("--no-video", help="skip step 6")] = False,
             checkpoint: Checkpoint = None, random_weights: RandomWeights = False,
             feature_checkpoint: FeatureCheckpoints = None, verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Steps 1–6 for one (scene, feature string, mode); steps already complete are skipped."""
    settings = dict(locals())
    del settings["no_video"]
    job = _job(**settings)
    ran = job.run_all(force=force, video=not no_video)
    ui.say(f"{job.dir} (ran: {', '.join(k for k, v in ran.items() if v) or 'nothing'})", "eval")
    _print_results(job.dir / "results.json")


@app.command()
def example(out: Annotated[Path, typer.Argument(help="folder for the example data and outputs")] = Path("example"),
            feature: Feature = "iuvrgb", mode: Mode = "G", preset: Preset = "quick", set_: Sets = None,
            verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Generate the example scene and run the whole job on it (quick preset: minutes on 2 CPU cores)."""
    from feat2gs.data.synthetic import make_scene

    data = out / "data"
    if not (data / "Synthetic" / "blocks").is_dir():
        make_scene(data)
    job = _job(data, "Synthetic", "blocks", feature, mode, out / "output", preset=preset, set_=set_, verbose=verbose,
               quiet=quiet)
    job.run_all()
    ui.say(str(job.dir), "example finished:")
    _print_results(job.dir / "results.json")


JsonOut = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]


@app.command()
def features(as_json: JsonOut = False, verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """List the named features: built-in, the backbone zoo and installed plugins (plus module:function models)."""
    from feat2gs.features import list_features

    ui.configure_logging(verbose, quiet)
    rows = [{"name": s.name, "channels": s.channels, "stride": s.stride, "kind": s.kind, "description": s.description}
            for s in list_features()]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    ui.print_table(list(rows[0]), [list(r.values()) for r in rows])
    ui.say("any importable model is a feature too: -f mypkg.mymodule:extract (see the README)", "note:", "cyan")


@app.command()
def backbones(
    as_json: JsonOut = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="also show the layer taken and where "
                                         "weights were looked for")] = 0,
    quiet: Quiet = False,
) -> None:
    """List the backbone zoo and whether each one's weights are on this machine (nothing is downloaded)."""
    from feat2gs.features.backbones import backbone_status, list_backbone_configs

    ui.configure_logging(verbose - 1, quiet)
    rows = []
    for cfg in list_backbone_configs():
        available, where = backbone_status(cfg.name)
        status = "local" if available else "incomplete" if any(w.startswith("missing ") for w in where) else "missing"
        rows.append({"name": cfg.name, "family": cfg.family, "library": cfg.library, "arch": cfg.arch,
                     "stride": cfg.stride, "channels": cfg.channels, "weights": status,
                     "where": where[0] if available else (cfg.hf_hub_id or cfg.url), "layer": cfg.layer,
                     "looked_in": where})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    keys = ["name", "library", "arch", "stride", "channels", "weights", "where"] + (["layer"] if verbose else [])
    ui.print_table(keys, [[r[k] for k in keys] for r in rows])
    if verbose:
        for r in rows:
            if r["weights"] != "local":
                ui.say(f"{r['name']}: looked in {'; '.join(r['looked_in'])}", "weights:", "yellow")


@app.command()
def presets(name: Annotated[Optional[str], typer.Argument(help="preset to print (default: all)")] = None,
            verbose: Verbose = 0, quiet: Quiet = False) -> None:
    """Print the settings of the presets (every value can be changed with --set section.field=value)."""
    ui.configure_logging(verbose, quiet)
    for preset in [name] if name else list(PRESETS):
        print(f"# preset: {preset}")
        print(make_config(preset).to_yaml())


app.command("report")(report_command)
app.command("demo")(demo_command)
app.command("met3r")(met3r_command)
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
