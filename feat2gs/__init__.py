"""feat2gs: probe how much 3D geometry and texture visual foundation models understand.

Conventions used across the package (fixed here once):

* quaternions are ``wxyz``;
* ``viewmat`` / ``w2c`` are OpenCV world-to-camera 4x4 matrices (x right, y down, z forward);
* ``K`` are 3x3 pixel intrinsics, pixel centres at ``(u + 0.5, v + 0.5)``;
* images are float tensors ``[H, W, 3]`` in ``[0, 1]`` (channels last) unless a docstring says otherwise.
"""

__version__ = "0.1.0"

# The Python API, imported on first use (``import feat2gs`` stays light for the command line):
#   cfg = feat2gs.make_config("quick", ["train.iterations=300"])
#   job = feat2gs.Job.create("example/data", "Synthetic", "blocks", "iuvrgb", "G", cfg, "example/output")
#   job.run_all(); print(job.dir / "results.json")
_EXPORTS = {
    "Job": "feat2gs.job",
    "make_config": "feat2gs.config",
    "ExperimentConfig": "feat2gs.config",
    "load_config": "feat2gs.config",
    "Backbone": "feat2gs.features.custom",
    "BackboneConfig": "feat2gs.features.backbones.config",
    "register_backbone": "feat2gs.features.backbones.config",
    "register_feature": "feat2gs.features.registry",
    "list_features": "feat2gs.features.registry",
    "register_init": "feat2gs.init.base",
    "make_scene": "feat2gs.data.synthetic",
    "report": "feat2gs.sweep.report",
    "Feat2GSError": "feat2gs.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'feat2gs' has no attribute {name!r}")
