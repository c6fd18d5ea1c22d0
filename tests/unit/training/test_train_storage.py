"""Where Ray Train keeps checkpoints: ``training.storage`` (the two-node production test runs it
on S3 for real, with the driver on a KOSMOS_HOME of its own)."""

from __future__ import annotations

from pyarrow import fs

from kosmos.platform.settings import Settings
from kosmos.training.distributed import train_storage


def test_unset_is_a_folder_under_home(tmp_path) -> None:
    path, filesystem = train_storage(Settings(home=tmp_path))
    assert path == str(tmp_path / "ray-train") and filesystem is None


def test_s3_with_an_endpoint_is_pyarrow_s3_pointed_at_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    settings = Settings(
        home=tmp_path, training={"storage": "s3://ckpt/ray-train", "endpoint_url": "http://127.0.0.1:9000"}
    )
    path, filesystem = train_storage(settings)
    assert path == "ckpt/ray-train"  # Ray Train wants the scheme stripped with its own filesystem
    assert isinstance(filesystem, fs.S3FileSystem)
    assert "127.0.0.1:9000" in repr(filesystem.__reduce__())  # endpoint_override travels with it
    assert not (tmp_path / "ray-train").exists()


def test_s3_on_aws_and_shared_folders_go_to_ray_as_they_are(tmp_path) -> None:
    for storage in ("s3://b/p", "/mnt/nfs/rt"):
        assert train_storage(Settings(home=tmp_path, training={"storage": storage})) == (storage, None)
