"""``feat2gs met3r IMAGES...``: MET3R of the consecutive pairs of any image sequence (image files, folders of
images, videos).

Registered in ``feat2gs/cli.py`` as ``app.command("met3r")(met3r_command)``. User errors raise
:class:`~feat2gs.errors.Feat2GSError` subclasses (one line, no traceback through ``feat2gs.cli.main``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from feat2gs.errors import DatasetError


VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif")


def expand_images(paths: list[Path]) -> list[Path]:
    """Files as given; a folder expands to its images (jpg/jpeg/png, any case) sorted by name."""
    from feat2gs.data.images import IMAGE_EXTENSIONS

    exts = {e.lower() for e in IMAGE_EXTENSIONS}
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted((q for q in p.iterdir() if q.is_file() and q.suffix.lower() in exts), key=lambda q: q.name)
            if not found:
                raise DatasetError(f"folder {p} holds no images ({', '.join(sorted(exts))})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise DatasetError(f"no such image or folder: {p}")
    return out


def read_video(path: Path):
    """All frames of a video file as uint8 [H, W, 3] arrays (imageio / ffmpeg)."""
    import imageio.v2 as imageio
    import numpy as np

    try:
        with imageio.get_reader(str(path)) as reader:
            frames = [np.asarray(f)[..., :3] for f in reader]
    except Exception as exc:  # imageio raises many types for unreadable files
        raise DatasetError(f"cannot read video {path}: {str(exc).splitlines()[0][:200] if str(exc) else exc!r}") \
            from exc
    if not frames:
        raise DatasetError(f"video {path} has no frames")
    return frames


def read_sequence(paths: list[Path]):
    """-> (names, uint8 frames): images and folders of images (sorted by name), and the frames of videos."""
    from feat2gs.data.images import load_image

    names, frames = [], []
    for f in expand_images(paths):
        if f.suffix.lower() in VIDEO_EXTENSIONS:
            video = read_video(f)
            names += [f"{f.name}#{t}" for t in range(len(video))]
            frames += video
        else:
            names.append(f.name)
            frames.append(load_image(f))
    return names, frames


def _fmt(v: float | None, digits: int = 4) -> str:
    return "null" if v is None else f"{v:.{digits}f}"


def met3r_command(
    images: Annotated[list[Path], typer.Argument(
        help="image files, folders (= their images sorted by name) and/or videos; pairs (t, t+1) are scored")],
    random_weights: Annotated[bool, typer.Option(
        "--random-weights", help="RANDOM FeatUp/DINO and DUSt3R/MASt3R weights (tests only; scores are meaningless)"
    )] = False,
    backbone: Annotated[str, typer.Option(
        "--backbone", help="pointmap network: mast3r (the official default) or dust3r")] = "mast3r",
    size: Annotated[int, typer.Option(
        "--size", help="images are resized to SIZE x SIZE, the raster size (official: 256); 0 = keep their own size "
                       "(multiples of 16, height a multiple of 32)")] = 256,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1 ...")] = "auto",
    out: Annotated[Optional[Path], typer.Option(
        "--out", "-o", help="write the result to this JSON file (and a PNG plot beside it)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="pairs per pointmap-network batch")] = 4,
    checkpoint: Annotated[Optional[str], typer.Option(
        "--checkpoint", help="DUSt3R/MASt3R weights: official .pth, HF directory or hub id (default: official file "
                             "in $FEAT2GS_CHECKPOINTS or ~/.cache/feat2gs/checkpoints)")] = None,
    featup_checkpoint: Annotated[Optional[Path], typer.Option(
        "--featup-checkpoint", help="FeatUp dino16_jbu_stack_cocostuff.ckpt (default: searched as --checkpoint)")
    ] = None,
    dino_checkpoint: Annotated[Optional[Path], typer.Option(
        "--dino-checkpoint", help="DINO ViT-S/16 weights, only if the FeatUp file lacks them")] = None,
    shuffle: Annotated[Optional[int], typer.Option(
        "--shuffle", help="score the frames in a random order drawn with this seed (a control: an inconsistent "
                          "sequence should score worse)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
) -> None:
    """MET3R multi-view consistency of consecutive image pairs (lower = more consistent)."""
    import numpy as np

    from feat2gs.evaluate.met3r.metric import Met3rOptions
    from feat2gs.evaluate.met3r.sequence import (
        frames_to_tensor,
        plot_met3r,
        prepare_frames,
        score_sequence,
        write_met3r_json,
    )

    if size < 0:
        raise DatasetError(f"--size must be >= 0, got {size}")
    names, frames = read_sequence(images)
    if len(frames) < 2:
        raise DatasetError(f"MET3R scores pairs of images: got {len(frames)} image(s), need at least 2")
    if shuffle is not None:
        order = np.random.default_rng(shuffle).permutation(len(frames))
        names, frames = [names[i] for i in order], [frames[i] for i in order]
    if size == 0:
        sizes = {fr.shape[:2] for fr in frames}
        if len(sizes) > 1:
            raise DatasetError(f"--size 0 keeps each image's size, but the images differ in size ({sorted(sizes)}); "
                               "pass --size N")
    elif len({fr.shape[:2] for fr in frames}) > 1:  # resize each now, as score_sequence would resize a stack
        frames = [prepare_frames(frames_to_tensor(fr[None]), size)[0].permute(1, 2, 0).numpy() for fr in frames]
    options = Met3rOptions(img_size=size or None, backbone=backbone)
    if random_weights:
        typer.secho("warning: --random-weights: MET3R runs with RANDOM weights; the scores test the pipeline only "
                    "and are marked random_weights=true", fg="yellow", err=True)
    result = score_sequence(frames, options, device=device, random_weights=random_weights, checkpoint=checkpoint,
                            featup_checkpoint=featup_checkpoint, dino_checkpoint=dino_checkpoint,
                            batch_size=batch_size, progress=not quiet, names=names)
    if shuffle is not None:
        result["shuffled_seed"] = shuffle
    for p in result["pairs"]:
        a, b = p["names"]
        tail = f"overlap {p['overlap']:.1%}" if p["overlap"] is not None else ""
        if p["score"] is None:
            tail += f"  not scored: {p['reason']}"
        typer.echo(f"{a} -> {b}: {_fmt(p['score'])}  {tail}")
    typer.echo(f"MET3R mean over {result['n_scored']}/{result['n_pairs']} pairs: {_fmt(result['mean'])} "
               f"(lower = more consistent; backbone {backbone}, {result['scored_size'][0]}x{result['scored_size'][1]}"
               f", {result['pairs_per_second']} pairs/s on {result['device']})")
    typer.echo(f"random_weights: {str(result['random_weights']).lower()}")
    if out is not None:
        write_met3r_json(result, out)
        plot_met3r(result, out.with_suffix(".png"))
        typer.echo(f"written: {out} and {out.with_suffix('.png')}")
