"""Fixtures shared by test modules: one quick run of the whole recipe for the slow tests."""

import subprocess

import pytest


@pytest.fixture(scope="session")
def quick_recipe(tmp_path_factory):
    """(recipe dir, CompletedProcess) of `bash run.sh --quick true` (stages 0-6) in a private copy
    of egs/voxceleb, run once per session for the slow tests that build on its outputs."""
    from test_recipe_quick import make_recipe_copy

    recipe = make_recipe_copy(tmp_path_factory.mktemp("recipe") / "voxceleb")
    proc = subprocess.run(["bash", "run.sh", "--quick", "true"], cwd=recipe, capture_output=True,
                          text=True, timeout=1500)
    return recipe, proc
