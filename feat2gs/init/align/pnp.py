"""Camera pose from a world pointmap of the camera's own pixels (PnP), as the MST init uses for images that no
registered pair gives a pose to.

Two back-ends:

* ``cv2`` (when opencv is importable): ``cv2.solvePnPRansac(flags=SOLVEPNP_SQPNP, iterationsCount=niter,
  reprojectionError=5)``, exactly what the official code calls.
* ``fallback`` (numpy only, deterministic): the same objective SQPnP minimises — the squared *object-space* error
  ``Σ |(I - v vᵀ/vᵀv)(R X + t)|²`` with ``v = K⁻¹(u, v, 1)`` — solved globally enough for practice: ``t`` is
  eliminated in closed form, leaving a quadratic form ``rᵀΩr`` in ``r = vec(R)``; the six candidates given by the
  three smallest eigenvectors of Ω (both signs, projected to SO(3)) are refined by Gauss-Newton on SO(3), and the
  best one with the points in front of the camera wins. Instead of RANSAC, the inlier set (reprojection error
  < ``reproj_err`` px) is re-estimated from the current fit and the fit is redone on it until the set is stable.
  When every point is an inlier (as in the fixture) this lands on the same optimum as the cv2 call; with many gross
  outliers that survive the confidence mask it is less robust than RANSAC.

Both return the pose as a camera-to-world 4x4 (float64 numpy) or ``None`` when fewer than 4 points are usable.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

try:  # optional dependency
    import cv2  # type: ignore
except ImportError:  # pragma: no cover - depends on the environment
    cv2 = None

HAVE_CV2 = cv2 is not None


def _skew(w: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -w[2], w[1]], [w[2], 0.0, -w[0]], [-w[1], w[0], 0.0]])


def _nearest_rotation(M: np.ndarray) -> np.ndarray:
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt)) or 1.0])
    return U @ D @ Vt


def _object_space_fit(X: np.ndarray, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimise Σ |Q_i (R X_i + t)|² over (R, t). X [M,3] (world), rays [M,3]. Returns w2c (R, t)."""
    c = X.mean(0)
    Xc = X - c
    Q = np.eye(3)[None] - rays[:, :, None] * rays[:, None, :] / (rays**2).sum(-1)[:, None, None]  # [M,3,3]
    # R X_i = M_i r with r = R.ravel() (row-major) and M_i = kron(I3, X_i^T)  ->  (Q_i M_i)[a, 3b+k] = Q_i[a,b] X_i[k]
    QM = np.einsum("mab,mk->mabk", Q, Xc).reshape(len(X), 3, 9)
    sumQ = Q.sum(0)
    sumQM = QM.sum(0)
    P = -np.linalg.solve(sumQ, sumQM)  # t = P r
    # Ω = Σ (M_i + P)^T Q_i (M_i + P) = Σ M^T Q M + P^T ΣQM + ΣQM^T P + P^T ΣQ P   (Q idempotent)
    XX = np.einsum("mk,ml->mkl", Xc, Xc)  # [M,3,3]
    # (M^T Q M)[(a,k),(b,l)] = Q[a,b] X_k X_l
    MtQM = np.einsum("mab,mkl->akbl", Q, XX).reshape(9, 9)
    Omega = MtQM + P.T @ sumQM + sumQM.T @ P + P.T @ sumQ @ P
    Omega = 0.5 * (Omega + Omega.T)

    def cost(R):
        r = R.ravel()
        return float(r @ Omega @ r)

    def refine(R):
        gens = [_skew(e) for e in np.eye(3)]
        f = cost(R)
        for _ in range(100):
            J = np.stack([(G @ R).ravel() for G in gens], axis=1)  # d vec(R) / d w  [9,3]
            r = R.ravel()
            g = 2 * J.T @ Omega @ r
            H = 2 * J.T @ Omega @ J
            # second-order term of the exponential map: d²R = ½(G_k G_l + G_l G_k) R
            for k in range(3):
                for l in range(3):
                    H[k, l] += r @ Omega @ ((gens[k] @ gens[l] + gens[l] @ gens[k]) @ R).ravel()
            try:
                step = -np.linalg.solve(H, g)
            except np.linalg.LinAlgError:
                step = -g
            if not np.all(np.isfinite(step)):
                break
            alpha = 1.0
            while alpha > 1e-6:
                Rn = Rotation.from_rotvec(alpha * step).as_matrix() @ R
                fn = cost(Rn)
                if fn <= f:
                    break
                alpha *= 0.5
            else:
                break
            R, f_old, f = Rn, f, fn
            if np.linalg.norm(alpha * step) < 1e-13 or f_old - f <= 1e-16 * max(f_old, 1e-300):
                break
        return R

    vals, vecs = np.linalg.eigh(Omega)
    best = None
    for k in range(3):
        for sign in (1.0, -1.0):
            R = refine(_nearest_rotation(sign * vecs[:, k].reshape(3, 3)))
            t = P @ R.ravel()
            z = Xc @ R[2] + t[2]
            front = float((z > 0).mean())
            key = (front < 0.5, cost(R))
            if best is None or key < best[0]:
                best = (key, R, t)
    _, R, t = best
    return R, t - R @ c  # the fit used X - c


def _reproj_error(X, pixels, K, R, t):
    p = X @ R.T + t
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (p @ K.T)[:, :2] / p[:, 2:3]
    err = np.linalg.norm(uv - pixels, axis=-1)
    err[~np.isfinite(err) | (p[:, 2] <= 0)] = np.inf
    return err


def pnp_fallback(X, pixels, K, reproj_err=5.0, max_rounds=10):
    """-> (n_inliers, R, t) w2c, or None."""
    X = np.asarray(X, dtype=np.float64)
    pixels = np.asarray(pixels, dtype=np.float64)
    if not (np.isfinite(X).all() and np.isfinite(K).all()) or abs(np.linalg.det(K)) < 1e-12:
        return None
    rays = np.concatenate([pixels, np.ones((len(pixels), 1))], axis=1) @ np.linalg.inv(K).T
    inl = np.ones(len(X), dtype=bool)
    R = t = None
    for _ in range(max_rounds):
        if inl.sum() < 4:
            return None
        try:
            R, t = _object_space_fit(X[inl], rays[inl])
        except np.linalg.LinAlgError:
            return None
        new = _reproj_error(X, pixels, K, R, t) < reproj_err
        if np.array_equal(new, inl):
            break
        inl = new
    n = int((_reproj_error(X, pixels, K, R, t) < reproj_err).sum())
    return n, R, t


def pnp_cv2(X, pixels, K, niter=10, reproj_err=5.0):
    """-> (n_inliers, R, t) w2c, or None (cv2 SQPnP inside RANSAC, as the official code)."""
    try:
        ok, rvec, tvec, inliers = cv2.solvePnPRansac(
            np.ascontiguousarray(X, dtype=np.float32),
            np.ascontiguousarray(pixels, dtype=np.float32),
            np.asarray(K, dtype=np.float32),
            None,
            iterationsCount=niter,
            reprojectionError=reproj_err,
            flags=cv2.SOLVEPNP_SQPNP,
        )
    except cv2.error:
        return None
    if not ok or inliers is None:
        return None
    R = cv2.Rodrigues(rvec)[0]
    return len(inliers), R.astype(np.float64), tvec.reshape(3).astype(np.float64)


def solve_pnp_c2w(
    pts3d: np.ndarray,
    mask: np.ndarray,
    focal: float | None,
    niter: int = 10,
    reproj_err: float = 5.0,
    backend: str = "auto",
) -> tuple[float, np.ndarray] | None:
    """pts3d [H, W, 3] world points of the image's own pixels, mask [H, W] -> (focal, c2w [4, 4]) or None.

    Pixels are integer (u, v) with the principal point at (W/2, H/2). With ``focal=None`` 21 focals in
    ``geomspace(S/2, 3S)`` (S = max(H, W)) are tried and the one with most inliers is kept.
    """
    if backend == "auto":
        backend = "cv2" if HAVE_CV2 else "fallback"
    if backend == "cv2" and not HAVE_CV2:
        raise ImportError("PnP backend 'cv2' requested but opencv is not installed")
    H, W = mask.shape
    if mask.sum() < 4:
        return None
    v, u = np.mgrid[:H, :W]
    pixels = np.stack([u, v], -1).astype(np.float32)[mask]
    X = np.asarray(pts3d)[mask]
    S = max(W, H)
    focals = [focal] if focal is not None else list(np.geomspace(S / 2, S * 3, 21))
    best = None
    for f in focals:
        K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]], dtype=np.float64)
        res = pnp_cv2(X, pixels, K, niter, reproj_err) if backend == "cv2" else pnp_fallback(X, pixels, K, reproj_err)
        if res is None:
            continue
        if best is None or res[0] > best[0]:
            best = (res[0], f, res[1], res[2])
    if best is None:
        return None
    _, f, R, t = best
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, t
    return float(f), np.linalg.inv(w2c)
