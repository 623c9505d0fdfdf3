"""Per-pixel features: registry, weight-free features and controls, PCA, concatenation, visualisation."""

from feat2gs.features.compose import compose_features, resize_grid
from feat2gs.features.pca import pca_project
from feat2gs.features.registry import (
    FeatureInputs,
    FeatureSpec,
    get_feature,
    list_features,
    parse_feature_string,
    register_feature,
)
from feat2gs.features.visualize import save_feature_visualisation

__all__ = [
    "FeatureInputs",
    "FeatureSpec",
    "compose_features",
    "get_feature",
    "list_features",
    "parse_feature_string",
    "pca_project",
    "register_feature",
    "resize_grid",
    "save_feature_visualisation",
]
