"""The same as ``feat2gs build-dataset`` (see README.md here): one scene into a dataset root.

    python build_dataset/build_scene.py folder|colmap|dtu|known SOURCE -d DATA_ROOT --dataset NAME --scene NAME \
        (--test-every K | --train-list FILE | --test-list FILE) [--overwrite] [--alpha white|black] ...
"""

import sys

from feat2gs.cli import main

if __name__ == "__main__":
    main(["build-dataset", *sys.argv[1:]])
