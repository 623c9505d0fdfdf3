"""Thin wrapper over feat2gs.data.builders (same as `feat2gs build-dataset` once registered); see README.md.

    python build_dataset/build_scene.py folder|colmap|dtu SOURCE -d DATA_ROOT --dataset NAME --scene NAME \
        (--test-every K | --train-list FILE | --test-list FILE) [--overwrite] [--scale 0.001]
"""

import sys

import typer

from feat2gs.errors import Feat2GSError
from feat2gs.sweep.cli_commands import build_dataset_command

if __name__ == "__main__":
    try:
        typer.run(build_dataset_command)
    except Feat2GSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
