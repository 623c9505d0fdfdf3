"""Typer command functions for ``feat2gs report`` and ``feat2gs build-dataset`` (registered in feat2gs/cli.py:
``app.command("report")(report_command)``, ``app.command("build-dataset")(build_dataset_command)``).

Both raise :class:`feat2gs.errors.Feat2GSError` subclasses for bad input, which the CLI's ``main`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from feat2gs.errors import ConfigError
from feat2gs.ui import Quiet, Verbose, configure_logging


def report_command(
    results: Annotated[Path, typer.Argument(
        help="output root holding eval/<Dataset>/<scene>/... (or that eval folder)")],
    out: Annotated[Path, typer.Argument(help="folder for jobs.csv, tables, plots, missing.md, comparison.md")],
    published: Annotated[Optional[Path], typer.Option(
        "--published", help="published numbers CSV (default: the shipped feat2gs_published.csv)")] = None,
    data_root: Annotated[Optional[Path], typer.Option(
        "--data-root", "-d", help="also expect every scene of DATA_ROOT/dataset_split.json")] = None,
    masked: Annotated[bool, typer.Option("--masked", help="tables of the *_masked metrics")] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="skip the PNG plots")] = False,
    verbose: Verbose = 0, quiet: Quiet = False,
) -> None:
    """Tables (Markdown, LaTeX), plots, a job list and a comparison with the paper from a results tree."""
    from feat2gs.sweep.report import report

    configure_logging(verbose, quiet)
    res = report(results, out, published, data_root=data_root, masked=masked, plots=not no_plots)
    typer.echo(f"{res.n_complete} complete ({res.n_degenerate} degenerate), {res.n_unfinished} unfinished, "
               f"{res.n_unreadable} unreadable, {res.n_absent} absent jobs; report in {res.out_dir / 'report.md'}")


def build_dataset_command(
    kind: Annotated[str, typer.Argument(help="folder | colmap | dtu | known")],
    source: Annotated[Path, typer.Argument(
        help="input: image folder, COLMAP/LLFF scene, DTU scan (MVSNet format), or a folder holding images/ (known)")],
    data_root: Annotated[Path, typer.Option("--data-root", "-d", help="dataset root (dataset_split.json)")],
    dataset: Annotated[str, typer.Option("--dataset", help="dataset name")],
    scene: Annotated[str, typer.Option("--scene", help="scene name")],
    test_every: Annotated[Optional[int], typer.Option("--test-every", help="hold out every k-th image as test")] = None,
    test_offset: Annotated[int, typer.Option("--test-offset", help="with --test-every: index i%k==offset is test")] = 0,
    train_list: Annotated[Optional[Path], typer.Option(
        "--train-list", help="file: train image names, one a line")] = None,
    test_list: Annotated[Optional[Path], typer.Option("--test-list", help="file: test image names, one a line")] = None,
    images_dir: Annotated[str, typer.Option("--images-dir", help="colmap, known: image folder inside SOURCE")] = "images",
    cameras: Annotated[Optional[Path], typer.Option(
        "--cameras", help="known: COLMAP model folder (text or binary) or JSON {image: {K, c2w}}")] = None,
    depths: Annotated[Optional[Path], typer.Option(
        "--depths", help="known: folder of <stem>.npy z-depth maps at the image size (0 = invalid)")] = None,
    depth_scale: Annotated[float, typer.Option("--depth-scale", help="known: factor from depth units to camera units")] = 1.0,
    alpha: Annotated[Optional[str], typer.Option(
        "--alpha", help="composite images with transparent pixels onto white or black (default: refuse them)")] = None,
    scale: Annotated[float, typer.Option("--scale", help="dtu: factor on translations and depths (mm -> m)")] = 0.001,
    no_mask_images: Annotated[bool, typer.Option("--no-mask-images", help="dtu: keep the images unmasked")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing scene folder")] = False,
    verbose: Verbose = 0, quiet: Quiet = False,
) -> None:
    """Add a scene to a dataset root: from an image folder, a COLMAP/LLFF scene, a DTU scan, or images with
    known cameras and depth maps."""
    from feat2gs.data import builders
    from feat2gs.data.images import ALPHA_BACKGROUNDS

    configure_logging(verbose, quiet)
    if alpha is not None and alpha not in ALPHA_BACKGROUNDS:
        raise ConfigError(f"--alpha {alpha}: expected one of {', '.join(ALPHA_BACKGROUNDS)}")
    split = dict(test_every=test_every, test_offset=test_offset, train=train_list, test=test_list, overwrite=overwrite)
    if kind == "folder":
        built = builders.build_from_folder(source, data_root, dataset, scene, alpha=alpha, **split)
    elif kind == "colmap":
        built = builders.build_from_colmap(source, data_root, dataset, scene, images_dir=images_dir, alpha=alpha,
                                           **split)
    elif kind == "dtu":
        built = builders.build_from_dtu(source, data_root, dataset, scene, scale=scale,
                                        mask_images=not no_mask_images, **split)
    elif kind == "known":
        if cameras is None or depths is None:
            raise ConfigError("build-dataset known needs --cameras (COLMAP model folder or JSON) and --depths (folder "
                              "of <stem>.npy)")
        built = builders.build_from_known(source, data_root, dataset, scene, cameras=cameras, depths=depths,
                                          images_dir=images_dir, depth_scale=depth_scale, alpha=alpha, **split)
    else:
        raise ConfigError(f"unknown dataset kind {kind!r}: expected folder, colmap, dtu or known")
    typer.echo(f"{built.scene_dir}: {len(built.train)} train / {len(built.test)} test views, "
               f"{built.size[0]}x{built.size[1]}")
