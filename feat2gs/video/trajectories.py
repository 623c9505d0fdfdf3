"""Novel-view camera trajectories of the Feat2GS video protocol.

Every trajectory is built from the N optimised training poses ``train_w2c`` [N, 4, 4] (OpenCV w2c, sorted
by image name) and returns OpenCV w2c matrices [F, 4, 4] float64. The default frame count is
``int(300 / N) * (N - 1)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.spatial.transform import Rotation, Slerp

from feat2gs.errors import ConfigError
from feat2gs.geometry.camera import look_at_w2c

TRAJECTORIES = ("arc", "ellipse", "interpolated", "lemniscate", "spiral", "wander")


# --------------------------------------------------------------------------------------------- helpers


def invert_rigid(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms [..., 4, 4] (rotation transposed, so the result stays exactly rigid)."""
    T = np.asarray(T, dtype=np.float64)
    R_t = np.swapaxes(T[..., :3, :3], -1, -2)
    out = np.zeros_like(T)
    out[..., :3, :3] = R_t
    out[..., :3, 3] = -(R_t @ T[..., :3, 3, None])[..., 0]
    out[..., 3, 3] = 1.0
    return out


def camera_centers(w2c: np.ndarray) -> np.ndarray:
    """Camera centres [..., 3] of w2c matrices [..., 4, 4]."""
    return invert_rigid(w2c)[..., :3, 3]


def default_n_frames(n_train: int) -> int:
    """Protocol frame count ``int(300 / N) * (N - 1)``."""
    return int(300 / n_train) * (n_train - 1)


def average_pose(c2w: np.ndarray) -> np.ndarray:
    """Average camera c2w [4, 4] of c2w [N, 4, 4]: mean centre, mean z axis, y re-orthogonalised from mean y."""
    center = c2w[:, :3, 3].mean(0)
    z = _normalize(c2w[:, :3, 2].mean(0))
    y_mean = c2w[:, :3, 1].mean(0)
    x = _normalize(np.cross(y_mean, z))
    y = np.cross(z, x)
    return _compose(np.stack([x, y, z], axis=-1), center)


def lookat_point(c2w: np.ndarray) -> np.ndarray:
    """Least-squares intersection [3] of the optical axes of c2w [N, 4, 4].

    Solves ``Σ(I − d dᵀ) p = Σ(I − d dᵀ) o`` (minimum-norm solution when all axes are parallel).
    """
    d = c2w[:, :3, 2] / np.linalg.norm(c2w[:, :3, 2], axis=-1, keepdims=True)  # [N, 3]
    proj = np.eye(3) - d[:, :, None] * d[:, None, :]  # [N, 3, 3]
    A = proj.sum(0)
    b = (proj @ c2w[:, :3, 3, None]).sum(0)[:, 0]
    return np.linalg.lstsq(A, b, rcond=None)[0]


def up_vector(avg_c2w: np.ndarray, sign: float = -1.0, axis: int = 1) -> np.ndarray:
    """World up [3] = ``sign · avg_c2w[:3, axis]`` (default: minus the average camera y axis)."""
    return sign * avg_c2w[:3, axis]


def camera_radii(c2w: np.ndarray, avg_c2w: np.ndarray, reference: bool = False) -> np.ndarray:
    """``1.25 · (max − min)`` [3] per axis of the camera centres expressed in the ``avg_c2w`` frame.

    ``reference=True``: of the centres of ``avg_c2w · c2w`` instead, as the reference computed them (rotated by
    the average rotation rather than into its frame; the same only when that rotation is symmetric)."""
    R = avg_c2w[:3, :3]
    local = (c2w[:, :3, 3] - avg_c2w[:3, 3]) @ (R.T if reference else R)  # [N, 3]; the offset does not matter
    return 1.25 * (local.max(0) - local.min(0))


def look_at(positions: np.ndarray, target: np.ndarray, up: np.ndarray) -> np.ndarray:
    """w2c [F, 4, 4] of cameras at ``positions`` [F, 3] looking at ``target`` [3] with world ``up`` [3]."""
    return np.stack([look_at_w2c(p, target, up) for p in positions])


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _compose(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rigid 4x4 [..., 4, 4] from rotations [..., 3, 3] and translations [..., 3]."""
    out = np.zeros(R.shape[:-2] + (4, 4))
    out[..., :3, :3] = R
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


def _phases(n_frames: int) -> np.ndarray:
    """``2π k / F`` for k = 0..F-1 [F]."""
    return 2.0 * np.pi * np.arange(n_frames) / n_frames


def _to_world(avg_c2w: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Points [F, 3] given in the ``avg_c2w`` camera frame -> world [F, 3]."""
    return local @ avg_c2w[:3, :3].T + avg_c2w[:3, 3]


# ------------------------------------------------------------------------------------------ trajectories


def arc_trajectory(train_w2c: np.ndarray, n_frames: int, degree: float = 180.0,
                   up_sign: float = -1.0, up_axis: int = 1) -> np.ndarray:
    """Swing the average camera back and forth about ``up`` through lookat, looking at lookat.

    ``θ_k = sin(2πk/F) · degree/2``. The reference rotated the average centre about the world origin
    (it forgot to add lookat back); here the orbit is centred on lookat, so the distance to it is kept.
    """
    c2w = invert_rigid(train_w2c)
    avg, target = average_pose(c2w), lookat_point(c2w)
    up = _normalize(up_vector(avg, up_sign, up_axis))
    theta = np.sin(_phases(n_frames)) * np.deg2rad(degree / 2.0)  # [F]
    positions = target + Rotation.from_rotvec(theta[:, None] * up).apply(avg[:3, 3] - target)
    return look_at(positions, target, up)


def lemniscate_trajectory(train_w2c: np.ndarray, n_frames: int, degree: float = 45.0,
                          up_sign: float = -1.0, up_axis: int = 1) -> np.ndarray:
    """Figure-eight (lemniscate of Bernoulli) in the average camera's image plane, looking at lookat.

    Its half-width ``a = ‖centre − lookat‖ · tan(degree / 2)``; frame 0 sits at the average centre.
    """
    c2w = invert_rigid(train_w2c)
    avg, target = average_pose(c2w), lookat_point(c2w)
    a = np.linalg.norm(avg[:3, 3] - target) * np.tan(np.deg2rad(degree / 2.0))
    theta = _phases(n_frames) + np.pi / 2.0
    denom = 1.0 + np.sin(theta) ** 2
    local = np.stack([a * np.cos(theta) / denom, a * np.cos(theta) * np.sin(theta) / denom,
                      np.zeros_like(theta)], axis=-1)  # [F, 3]
    return look_at(_to_world(avg, local), target, up_vector(avg, up_sign, up_axis))


def spiral_trajectory(train_w2c: np.ndarray, n_frames: int, zrate: float = 0.5, rots: float = 1.0,
                      up_sign: float = -1.0, up_axis: int = 1, reference_radii: bool = False) -> np.ndarray:
    """LLFF-style spiral: offsets ``(cos θ, −sin θ, −sin(θ·zrate)) ⊙ rads`` in the average frame, looking at lookat.
    ``reference_radii``: the reference's radii (see :func:`camera_radii`)."""
    c2w = invert_rigid(train_w2c)
    avg, target = average_pose(c2w), lookat_point(c2w)
    theta = rots * _phases(n_frames)
    local = np.stack([np.cos(theta), -np.sin(theta), -np.sin(theta * zrate)], axis=-1)
    local = local * camera_radii(c2w, avg, reference_radii)  # [F, 3]
    return look_at(_to_world(avg, local), target, up_vector(avg, up_sign, up_axis))


def wander_trajectory(train_w2c: np.ndarray, n_frames: int, focal: float, max_disp: float = 48.0) -> np.ndarray:
    """Small planar wobble of the average camera keeping its orientation.

    ``m = max_disp / focal``; ``t_k = (m sin φ_k, 0, m cos φ_k / 2)``; ``c2w_k = avg_c2w · [I | t_k]⁻¹``.
    """
    avg = average_pose(invert_rigid(train_w2c))
    m = max_disp / focal
    phi = _phases(n_frames)
    t = np.stack([m * np.sin(phi), np.zeros_like(phi), m * np.cos(phi) / 2.0], axis=-1)  # [F, 3]
    positions = _to_world(avg, -t)
    c2w = _compose(np.broadcast_to(avg[:3, :3], (n_frames, 3, 3)), positions)
    return invert_rigid(c2w)


def _pca_axes(centers: np.ndarray, mean_up: np.ndarray) -> np.ndarray:
    """Principal axes [3, 3] (columns x, y, z by decreasing variance), right-handed, ``mean_up`` on +z side."""
    offsets = centers - centers.mean(0)
    _, vecs = np.linalg.eigh(offsets.T @ offsets)
    axes = vecs[:, ::-1].copy()
    if np.linalg.det(axes) < 0:
        axes[:, 2] *= -1.0
    if axes[:, 2] @ mean_up < 0:
        axes[:, 1:] *= -1.0
    return axes


def ellipse_trajectory(train_w2c: np.ndarray, n_frames: int) -> np.ndarray:
    """Ellipse around the focus point in the principal plane of the camera centres, looking at the focus.

    Same geometry as the reference, which first PCA-normalises the poses (centre, principal axes, unit
    scale) and undoes it at the end; here the ellipse is built directly in world coordinates (the uniform
    scale cancels). The ellipse lies in the plane through the mean centre spanned by the first two
    principal axes, is centred on the focus point's projection and has semi-axes ``max |pos − focus|``
    along each axis. Up is the principal axis closest to the mean camera up.
    """
    c2w = invert_rigid(train_w2c)
    centers, focus = c2w[:, :3, 3], lookat_point(c2w)
    mean_up = -c2w[:, :3, 1].mean(0)
    axes = _pca_axes(centers, mean_up)
    origin = centers.mean(0)
    local = (centers - origin) @ axes  # [N, 3]
    focus_local = (focus - origin) @ axes
    semi = np.abs(local[:, :2] - focus_local[:2]).max(0)  # [2]
    theta = _phases(n_frames)
    ring = np.stack([focus_local[0] + semi[0] * np.cos(theta), focus_local[1] + semi[1] * np.sin(theta),
                     np.zeros_like(theta)], axis=-1)  # [F, 3]
    up_local = axes.T @ mean_up
    i = int(np.argmax(np.abs(up_local)))
    up = np.sign(up_local[i]) * axes[:, i]
    return look_at(origin + ring @ axes.T, focus, up)


def interpolated_trajectory(train_w2c: np.ndarray, n_frames: int) -> np.ndarray:
    """Smooth path through the training cameras in order: cubic spline on centres, slerp on rotations.

    Interpolates camera-to-world poses (the reference interpolated w2c as if it were c2w). Frame
    ``k`` sits at spline parameter ``k·(N−1)/F``, so with the default F frame ``j·int(300/N)`` is camera j.
    """
    c2w = invert_rigid(train_w2c)
    knots = np.arange(len(c2w), dtype=np.float64)
    u = np.arange(n_frames) * (len(c2w) - 1) / n_frames  # [F]
    positions = CubicSpline(knots, c2w[:, :3, 3], bc_type="natural")(u)
    rotations = Slerp(knots, Rotation.from_matrix(c2w[:, :3, :3]))(u).as_matrix()
    return invert_rigid(_compose(rotations, positions))


_BUILDERS: dict[str, Callable[..., np.ndarray]] = {
    "arc": arc_trajectory,
    "ellipse": ellipse_trajectory,
    "interpolated": interpolated_trajectory,
    "lemniscate": lemniscate_trajectory,
    "spiral": spiral_trajectory,
    "wander": wander_trajectory,
}


def _check_params(name: str, builder: Callable[..., np.ndarray], params: dict) -> None:
    allowed = list(inspect.signature(builder).parameters)[2:]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"trajectory {name!r} has no option(s) {', '.join(unknown)}; "
                          f"valid: {', '.join(allowed) or 'none'}")


def make_trajectory(name: str, train_w2c: np.ndarray, K: np.ndarray, n_frames: int | None = None,
                    **params: float) -> np.ndarray:
    """Build trajectory ``name`` from training w2c [N, 4, 4] (sorted by image name) -> w2c [F, 4, 4].

    ``K`` [3, 3] supplies ``focal = K[0, 0]`` for "wander"; ``params`` are the trajectory's options.
    """
    if name not in _BUILDERS:
        raise ConfigError(f"unknown trajectory {name!r}; valid: {', '.join(TRAJECTORIES)}")
    train_w2c = np.asarray(train_w2c, dtype=np.float64)
    if train_w2c.ndim != 3 or train_w2c.shape[1:] != (4, 4):
        raise ValueError(f"train_w2c must be [N, 4, 4], got {train_w2c.shape}")
    if len(train_w2c) < 2:
        raise ConfigError(f"trajectory {name!r} needs at least 2 training cameras, got {len(train_w2c)}")
    n_frames = default_n_frames(len(train_w2c)) if n_frames is None else int(n_frames)
    if n_frames < 1:
        raise ConfigError(f"n_frames must be >= 1, got {n_frames}")
    builder = _BUILDERS[name]
    if name == "wander":
        params.setdefault("focal", float(np.asarray(K)[0, 0]))
    _check_params(name, builder, params)
    return builder(train_w2c, n_frames, **params)
