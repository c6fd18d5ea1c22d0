"""Dataset versions on a real git + DVC repository (a local DVC remote): one version per content."""

from __future__ import annotations

import pandas as pd
from sklearn.datasets import load_iris

from kosmos.platform.settings import Settings
from kosmos.training.datasets import DatasetRepo


def test_content_any_version_already_has_returns_that_version(tmp_path) -> None:
    repo = DatasetRepo(Settings(home=tmp_path), "acme")
    iris = load_iris(as_frame=True).frame
    first = repo.register("iris", iris, created_by="alice")
    second = repo.register("iris", iris.iloc[:100], created_by="alice")
    again = repo.register("iris", iris.copy(), created_by="bob")  # v1's content, after v2
    assert (first.version, second.version, again.version) == (1, 2, 1)
    assert again.content_hash == first.content_hash and again.created_by == "alice"
    assert [v.version for v in repo.versions("iris")] == [1, 2]  # no v3 with v1's hash
    changed = repo.register("iris", iris.assign(target=iris["target"].astype(float)), created_by="bob")
    assert changed.version == 3  # same values, another dtype: other content
    assert pd.read_parquet(tmp_path / "projects" / "acme" / "datasets" / "iris.parquet").shape == iris.shape
