"""Where the DUSt3R/MASt3R conformance fixtures live (../shared beside the repository checkout)."""

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "dust3r"
requires_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"DUSt3R conformance fixtures not found at {FIXTURES} (../shared beside the repo)")
