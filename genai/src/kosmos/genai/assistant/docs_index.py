"""Kosmos's own docs, chunked by section and searchable by meaning.

Each Markdown file is cut at its headings (never inside a code block); a section
keeps its heading trail ("Deploying models > Roll out a new version") and GitHub's
anchor, so an answer can cite ``docs/deployment.md#roll-out-a-new-version``. Sections
are embedded once per process with the gateway's local encoder (all-MiniLM-L6-v2) and
ranked by cosine similarity (bench/assistant_retrieval.py: a bonus for shared rare words
gained nothing on its labelled questions, so there is none).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_CHARS = 1200
"""Longer sections are cut at paragraphs; the encoder reads about 256 tokens anyway."""
_HEADING = re.compile(r"^(#{1,4})\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Passage:
    """One section of one doc page."""

    path: str
    """Relative to the docs folder's parent, e.g. ``docs/deployment.md``."""
    anchor: str
    title: str
    text: str

    @property
    def citation(self) -> str:
        return f"{self.path}#{self.anchor}" if self.anchor else self.path


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def chunk(path: str, markdown: str) -> list[Passage]:
    """The sections of one page, each with its heading trail; code blocks stay whole."""
    trail: list[str] = []
    passages: list[Passage] = []
    lines: list[str] = []
    anchor = ""
    fenced = False

    def flush() -> None:
        body = "\n".join(lines).strip()
        if body:
            title = " > ".join(trail) or path
            for part in _split(body):
                passages.append(Passage(path, anchor, title, part))
        lines.clear()

    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            flush()
            level, heading = len(match[1]), match[2].strip()
            del trail[level - 1 :]
            trail.append(heading)
            anchor = slug(heading) if level > 1 else ""
        else:
            lines.append(line)
    flush()
    return passages


def _split(body: str) -> list[str]:
    if len(body) <= MAX_CHARS:
        return [body]
    parts, current = [], ""
    for paragraph in body.split("\n\n"):
        if current and len(current) + len(paragraph) > MAX_CHARS:
            parts.append(current.strip())
            current = ""
        current += paragraph + "\n\n"
    if current.strip():
        parts.append(current.strip())
    return parts


class DocsIndex:
    """Every section of a docs folder, embedded; ``search`` returns the best few."""

    def __init__(
        self, folder: Path, embed: Callable[[list[str]], np.ndarray], cache_dir: Path | None = None
    ) -> None:
        if not folder.is_dir():
            raise FileNotFoundError(f"no docs folder at {folder}")
        self.folder = folder
        self.passages = [
            p
            for page in sorted(folder.glob("*.md"))
            for p in chunk(f"{folder.name}/{page.name}", page.read_text(encoding="utf-8"))
        ]
        texts = [f"{p.title}\n{p.text}" for p in self.passages]
        self._vectors = self._embedded(texts, embed, cache_dir)
        self._embed = embed

    @staticmethod
    def _embedded(
        texts: list[str], embed: Callable[[list[str]], np.ndarray], cache_dir: Path | None
    ) -> np.ndarray:
        """The sections' vectors, kept on disk by content hash: a restart does not embed again."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:24]
        path = cache_dir / f"docs-{digest}.npy" if cache_dir else None
        if path is not None and path.is_file():
            vectors = np.load(path)
            if vectors.shape[0] == len(texts):
                return vectors
        vectors = np.asarray(embed(texts), dtype=np.float32)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            with partial.open("wb") as out:
                np.save(out, vectors)
            os.replace(partial, path)  # atomic: another process never reads half a file
        return vectors

    def search(self, question: str, k: int = 3) -> list[tuple[Passage, float]]:
        """The ``k`` sections most similar to ``question``, with their scores."""
        if not self.passages:
            return []
        query = np.asarray(self._embed([question]), dtype=np.float32)[0]
        scores = self._vectors @ query
        best = np.argsort(-scores)[:k]
        return [(self.passages[i], float(scores[i])) for i in best]


_indexes: dict[Path, DocsIndex] = {}
_lock = threading.Lock()


def docs_index(
    folder: Path, embed: Callable[[list[str]], np.ndarray], cache_dir: Path | None = None
) -> DocsIndex:
    """The process's index of ``folder``: built on first use (embedding about 120 sections takes
    seconds on 2 cores), its vectors kept in ``cache_dir`` for the next start."""
    with _lock:
        if folder not in _indexes:
            _indexes[folder] = DocsIndex(folder, embed, cache_dir)
        return _indexes[folder]


def default_docs_dir() -> Path:
    """The docs shipped with Kosmos: packaged beside this module, else the source checkout's."""
    packaged = Path(__file__).resolve().parent / "_docs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[5] / "docs"
