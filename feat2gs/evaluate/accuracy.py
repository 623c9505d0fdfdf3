"""Accuracy against known geometry and cameras, after a Sim(3) alignment: 3D point metrics (the DTU protocol,
generalised to every ``--method gt`` job) and camera-pose errors (ATE, RPE) wherever ground-truth cameras exist.

Both align the estimate onto the ground truth with a least-squares similarity first (Umeyama): the probe's frame and
scale are arbitrary, only the shape is measured.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from feat2gs.geometry.similarity import apply_similarity_to_c2w, umeyama

POINT_KEYS = ("Accuracy", "Acc_med", "Completion", "Comp_med", "Distance", "Dist_med")
TRAJECTORY_KEYS = ("ATE", "RPE_trans", "RPE_rot")
NO_SIMILARITY = "the estimated {} coincide: no similarity to the ground truth is defined, so the errors are null"


def point_cloud_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float | str | None]:
    """pred, gt [M, 3] in correspondence (Gaussian i was initialised at gt point i).

    After aligning ``pred`` onto ``gt`` (Sim(3)): Accuracy = distance of each predicted point to the nearest
    ground-truth point (mean, median), Completion = the same from ground truth to prediction, Distance = distance of
    corresponding points. Nearest neighbours through k-d trees, so 600k points need little memory. Points
    collapsed onto one spot have no alignment: every value is null, with a ``note``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    s, R, t = umeyama(pred, gt)
    if not np.isfinite(s):
        return {**dict.fromkeys(POINT_KEYS), "note": NO_SIMILARITY.format("points")}
    aligned = s * pred @ R.T + t
    acc, _ = cKDTree(gt).query(aligned, workers=-1)
    comp, _ = cKDTree(aligned).query(gt, workers=-1)
    dist = np.linalg.norm(aligned - gt, axis=1)
    return {"Accuracy": float(acc.mean()), "Acc_med": float(np.median(acc)), "Completion": float(comp.mean()),
            "Comp_med": float(np.median(comp)), "Distance": float(dist.mean()), "Dist_med": float(np.median(dist))}


def _centres(c2w: np.ndarray) -> np.ndarray:
    return c2w[:, :3, 3]


def trajectory_errors(pred_c2w: np.ndarray, gt_c2w: np.ndarray) -> dict[str, float]:
    """Absolute and relative pose errors of already aligned c2w [N, 4, 4] against ground truth [N, 4, 4] (in the
    given order): ATE = RMSE of the camera centres; over consecutive pairs, RPE_trans = mean translation error of
    the relative motion, RPE_rot = mean rotation error of the relative motion in degrees (``utils_poses``)."""
    ate = float(np.sqrt((np.linalg.norm(_centres(pred_c2w) - _centres(gt_c2w), axis=1) ** 2).mean()))
    trans, rot = [], []
    for i in range(len(gt_c2w) - 1):
        rel_gt = np.linalg.inv(gt_c2w[i]) @ gt_c2w[i + 1]
        rel_pred = np.linalg.inv(pred_c2w[i]) @ pred_c2w[i + 1]
        err = np.linalg.inv(rel_gt) @ rel_pred
        trans.append(np.linalg.norm(err[:3, 3]))
        rot.append(np.degrees(np.arccos(np.clip((np.trace(err[:3, :3]) - 1) / 2, -1.0, 1.0))))
    return {"ATE": ate, "RPE_trans": float(np.mean(trans)) if trans else None,
            "RPE_rot": float(np.mean(rot)) if rot else None}


def pose_errors(train_w2c: np.ndarray, initial_w2c: np.ndarray, gt_train_w2c: np.ndarray,
                test_w2c: np.ndarray | None = None, initial_test_w2c: np.ndarray | None = None,
                gt_test_w2c: np.ndarray | None = None) -> dict:
    """Pose accuracy of the optimised and of the initial training cameras (each aligned onto the ground-truth
    camera centres by its own Sim(3)), and, when given, of the refined and initial test cameras (mapped with the
    Sim(3) of the optimised / initial training cameras: the test poses live in the training frame). Needs 3 or more
    training cameras (a similarity from fewer centres is not determined). Estimated centres that coincide have no
    alignment: that block's errors are null, with a ``note``."""
    if len(gt_train_w2c) < 3:
        raise ValueError(f"pose accuracy needs 3 or more training cameras, got {len(gt_train_w2c)}")
    gt_c2w = np.linalg.inv(gt_train_w2c)

    def evaluate(est_w2c: np.ndarray, test: np.ndarray | None) -> tuple[dict, dict | None]:
        est_c2w = np.linalg.inv(est_w2c)
        s, R, t = umeyama(_centres(est_c2w), _centres(gt_c2w))
        if not np.isfinite(s):
            nulls = {**dict.fromkeys(TRAJECTORY_KEYS), "note": NO_SIMILARITY.format("camera centres")}
            return nulls, (None if test is None or gt_test_w2c is None else dict(nulls))
        train = trajectory_errors(apply_similarity_to_c2w(est_c2w, s, R, t), gt_c2w)
        if test is None or gt_test_w2c is None:
            return train, None
        return train, trajectory_errors(apply_similarity_to_c2w(np.linalg.inv(test), s, R, t),
                                        np.linalg.inv(gt_test_w2c))

    train, test = evaluate(train_w2c, test_w2c)
    train_0, test_0 = evaluate(initial_w2c, initial_test_w2c)
    out = {**train, "initial": train_0, "n_views": len(gt_train_w2c)}
    if test is not None:
        out["test"] = {**test, "initial": test_0, "n_views": len(gt_test_w2c)}
    return out


def format_pose_eval(errors: dict) -> str:
    """``pose/pose_eval.txt`` as the reference's paper scripts parse it: ``ATE: x, RPE_trans: y, RPE_rot: z``."""
    return ", ".join(f"{k}: {errors[k]}" for k in TRAJECTORY_KEYS) + "\n"
