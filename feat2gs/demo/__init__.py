"""``feat2gs demo``: an interactive gradio app over the same pipeline as the command line.

Upload photos (or use the example scene), then run step 1 (pointmaps, cameras, features), step 2 (read out and
train 3D Gaussians) and step 3 (trajectory video, and test metrics when the scene has held-out views), each
with its own button. Every run is a normal job folder (:class:`feat2gs.job.Job`) inside the browser session's
folder under the cache dir. gradio is an optional extra (``pip install -e ".[demo]"``); this package imports it
only in :mod:`feat2gs.demo.app`.

Modules: ``settings`` (server settings, limits, per-run config), ``sessions`` (session folders, uploads,
clean-up), ``pipeline`` (scene building and the steps, through ``Job``), ``exports`` (GLB of points and cameras,
loss curve), ``app`` (the Blocks UI), ``cli`` (the ``demo`` command).
"""

from feat2gs.demo.settings import DemoError, DemoSettings, Limits

__all__ = ["DemoError", "DemoSettings", "Limits"]
