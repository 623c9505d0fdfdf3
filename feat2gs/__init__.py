"""feat2gs: probe how much 3D geometry and texture visual foundation models understand.

Conventions used across the package (fixed here once):

* quaternions are ``wxyz``;
* ``viewmat`` / ``w2c`` are OpenCV world-to-camera 4x4 matrices (x right, y down, z forward);
* ``K`` are 3x3 pixel intrinsics, pixel centres at ``(u + 0.5, v + 0.5)``;
* images are float tensors ``[H, W, 3]`` in ``[0, 1]`` (channels last) unless a docstring says otherwise.
"""

__version__ = "0.1.0"
