"""Workspace-wide pytest configuration: Hypothesis profiles and the ../shared data fixture.

This file sits at the repository root so that every test directory (packages/*/tests, apps, tests/)
gets the same profiles, whether pytest runs over the whole tree or over one package (nox `tests`).
It must not import any himtok package: each package's tests run in an environment of their own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=50,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REPO_ROOT = Path(__file__).resolve().parent


def shared_root() -> Path | None:
    """The `shared/` folder beside the checkout (or $HIMTOK_SHARED), or None when absent."""
    env = os.environ.get("HIMTOK_SHARED")
    path = Path(env) if env else REPO_ROOT.parent / "shared"
    return path if path.is_dir() else None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Path of ../shared; skips the test with a clear reason when it is not there."""
    path = shared_root()
    if path is None:
        pytest.skip(
            "../shared is not beside the checkout (set HIMTOK_SHARED to point at it); CI always has it"
        )
    return path


@pytest.fixture(scope="session")
def golden_tiny(shared_dir: Path) -> Path:
    """The official-tiny golden vectors produced by the official HiMTok code."""
    path = shared_dir / "reference" / "golden" / "official-tiny"
    if not (path / "expected.npz").is_file():
        pytest.skip(f"golden vectors not found at {path}")
    return path
