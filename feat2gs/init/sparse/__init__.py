"""MASt3R's sparse global alignment as Feat2GS runs it (``--method mast3r``), written from the behavioural spec
(shared/spec/mast3r_sparse_ga.md) and checked stage by stage against the official numbers
(tests/init/test_sparse_ga*.py, fixture shared/fixtures/mast3r_sparse_ga/).

One job per module: ``matching`` (reciprocal NN of descriptors), ``pairs`` (pair inference + matching),
``cache`` (on-disk pair cache), ``graph`` (pair scores, kinematic tree), ``canonical`` (canonical views, base
focals, anchors), ``condense`` (anchor lists and slices), ``model`` (parameters, forward model), ``losses``,
``optimize`` (the two Adam stages), ``readout`` (dense points, TSDF, clean), ``api`` (the whole run).

    from feat2gs.init.sparse import SparseGAConfig, mast3r_sparse_init
    align, feats = mast3r_sparse_init(model, imgs, make_pairs_complete(len(imgs)), SparseGAConfig(),
                                      cache_dir=scene / "3_views" / "mast3r_cache")
"""

from feat2gs.init.sparse.api import SparseAlignResult, mast3r_pairs, mast3r_sparse_init, sparse_align
from feat2gs.init.sparse.settings import SparseAlignmentError, SparseGAConfig

__all__ = ["SparseAlignResult", "SparseAlignmentError", "SparseGAConfig", "mast3r_pairs", "mast3r_sparse_init",
           "sparse_align"]
