"""DUSt3R's dense global alignment as Feat2GS runs it (MST init, PointCloudOptimizer loop, clean_pointcloud).

Written from the behavioural description in the conformance fixtures (shared/fixtures/dust3r/README.md, part C)
and the protocol (§3.4); checked against the official run in tests/init/test_global_alignment.py.
"""

from feat2gs.init.align.api import AlignResult, global_align
from feat2gs.init.align.clean import clean_pointcloud
from feat2gs.init.align.focal import estimate_focal
from feat2gs.init.align.mst import MSTResult, minimum_spanning_tree_init
from feat2gs.init.align.optimizer import AlignParams, DenseAligner
from feat2gs.init.align.pnp import HAVE_CV2, solve_pnp_c2w

__all__ = [
    "HAVE_CV2",
    "AlignParams",
    "AlignResult",
    "DenseAligner",
    "MSTResult",
    "clean_pointcloud",
    "estimate_focal",
    "global_align",
    "minimum_spanning_tree_init",
    "solve_pnp_c2w",
]
