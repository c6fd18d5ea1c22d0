"""vLLM is handed a model by its content, so its compiled graphs are reused across Kosmos homes."""

from __future__ import annotations

from pathlib import Path

from kosmos.genai.engines.vllm_server import content_path


def _fetched(tmp_path: Path, home: str, blob: str, weights: str) -> Path:
    folder = tmp_path / home / "model-cache" / "blobs" / blob / "artifacts" / "smollm2"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    (folder / "model.safetensors").write_text(weights)
    return folder


def test_the_same_weights_in_two_homes_get_one_path_and_other_weights_another(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm"))
    # two registrations of the same weights: their blobs differ (MLmodel, run ids), the folders not
    first = content_path(_fetched(tmp_path, "a", "blob1", "weights"))
    second = content_path(_fetched(tmp_path, "b", "blob2", "weights"))
    other = content_path(_fetched(tmp_path, "c", "blob3", "other weights"))
    assert first == second and first.name == "smollm2" and first.is_relative_to(tmp_path / "vllm")
    assert (second / "model.safetensors").read_text() == "weights"
    assert other != first and (other / "model.safetensors").read_text() == "other weights"


def test_a_folder_outside_a_model_cache_is_used_as_it_is(tmp_path: Path) -> None:
    assert content_path(tmp_path / "my-model") == tmp_path / "my-model"
