"""Condition prefixes of the shapes model: a prompt, a sketch, or nothing.

Both conditions end up as ``(B, P, H)`` embeddings plus a ``(B, P)`` mask of real
positions, ``H`` the text encoder's width (384 for the packaged MiniLM), ``P``
fixed (:data:`PREFIX_TOKENS`), so one batch can mix prompts, sketches and dropped
conditions:

- a prompt: the frozen text encoder's per-token states, truncated / padded to P;
- a sketch: the trainable :class:`~octgen.condition.sketch.SketchEncoder`'s
  feature cells (16 at 128 px), padded to P.

The transformer projects them (``cond_proj``) and puts its learned "no condition"
token at masked positions and on dropped rows (classifier-free guidance).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..model.transformer import Condition
from ..weights import check_config_json, check_model_folder
from .sketch import SketchEncoder, SketchEncoderConfig, preprocess_sketch

PREFIX_TOKENS = 32
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# Condition kinds per row (training mixes them; sampling uses one per call).
KIND_NONE, KIND_TEXT, KIND_SKETCH = 0, 1, 2


def pad_tokens(states_BTH: torch.Tensor, mask_BT: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncate or zero-pad token states to ``length`` positions."""
    B, T, H = states_BTH.shape
    if T >= length:
        return states_BTH[:, :length], mask_BT[:, :length]
    pad = length - T
    return (torch.cat([states_BTH, states_BTH.new_zeros(B, pad, H)], 1),
            torch.cat([mask_BT, mask_BT.new_zeros(B, pad)], 1))


def shape_condition(conditioner, kind_B: torch.Tensor, states_BPH: torch.Tensor, mask_BP: torch.Tensor,
                    sketches_B1SS: torch.Tensor | None) -> Condition:
    """The :class:`Condition` of a mixed batch: caption states on text rows, the
    sketch encoder's tokens on sketch rows, the dropped condition on the rest."""
    embeds, emask = conditioner.text(states_BPH, mask_BP)
    sk = kind_B == KIND_SKETCH
    if sk.any():
        e_s, m_s = conditioner.sketch(sketches_B1SS[sk])
        embeds, emask = embeds.clone(), emask.clone()
        embeds[sk] = e_s.to(embeds.dtype)
        emask[sk] = m_s
    return Condition(embeds=embeds, embeds_mask=emask, drop_B=kind_B == KIND_NONE)


class ShapeConditioner(nn.Module):
    """The trainable part of the shape conditions (the sketch encoder) and the
    fixed prefix layout.

    Args:
        hidden: width H of the condition embeddings (the text encoder's width).
        prefix_tokens: P.
        sketch: sketch encoder settings (``out_dim`` is forced to ``hidden``).
    """

    def __init__(self, hidden: int = 384, prefix_tokens: int = PREFIX_TOKENS, sketch: dict | None = None):
        super().__init__()
        sk = {"channels": (16, 32, 64, 96, 128), **(sketch or {})}
        sk["out_dim"] = hidden
        sk["channels"] = tuple(sk["channels"])
        self.sketch_config = SketchEncoderConfig(**sk)
        self.hidden, self.prefix_tokens = int(hidden), int(prefix_tokens)
        self.sketch_encoder = SketchEncoder(self.sketch_config)
        if self.sketch_encoder.num_tokens > prefix_tokens:
            raise ValueError(f"the sketch encoder makes {self.sketch_encoder.num_tokens} tokens; "
                             f"prefix has {prefix_tokens}")

    def text(self, states_BTH: torch.Tensor, mask_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt token states -> (embeds (B, P, H), mask (B, P))."""
        if states_BTH.shape[-1] != self.hidden:
            raise InputError(f"the text encoder gives width {states_BTH.shape[-1]}; this model was trained "
                             f"with width {self.hidden}")
        return pad_tokens(states_BTH.float(), mask_BT.bool(), self.prefix_tokens)

    def sketch(self, sketch_B1SS: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Preprocessed sketches (ink 1 on 0) -> (embeds (B, P, H), mask (B, P))."""
        e = self.sketch_encoder(sketch_B1SS.float())
        return pad_tokens(e, torch.ones(e.shape[:2], dtype=torch.bool, device=e.device), self.prefix_tokens)

    @torch.no_grad()
    def condition(self, num: int, text_encoder=None, prompt=None, sketch=None,
                  prompts: list[str] | None = None, sketches: list | None = None) -> tuple[Condition, bool]:
        """The condition of a generation call (the pipeline's conditioner hook).

        Args:
            num: shapes per prompt / sketch, or unconditional shapes.
            text_encoder: zero-argument callable giving the frozen text encoder
                (called only when there are prompts).
            prompt: one prompt (``num`` rows of it) or a list (one row each).
            sketch: one sketch (``num`` rows of it) or a list (one row each): paths,
                PIL images, arrays, sketchpad dicts (see
                :func:`~octgen.condition.sketch.preprocess_sketch`) or preprocessed
                ``(1, S, S)`` tensors.
            prompts, sketches: lists, one row each (same as a list ``prompt`` / ``sketch``).
        Returns:
            ``(condition, conditional)``: one row per shape; ``conditional`` is False
            when there is neither prompt nor sketch (every row dropped).
        """
        if prompt is not None:
            prompts = [prompt] * num if isinstance(prompt, str) else list(prompt)
        if sketch is not None:
            sketches = list(sketch) if isinstance(sketch, (list, tuple)) else [sketch] * num
        if prompts is not None and sketches is not None:
            raise InputError("give a prompt or a sketch, not both")
        if prompts is not None:
            states, mask = text_encoder()(list(prompts))
            kind = torch.full((len(prompts),), KIND_TEXT)
            sk = torch.zeros(len(prompts), 1, 1, 1)
        elif sketches is not None:
            sk = torch.stack([s if isinstance(s, torch.Tensor) else preprocess_sketch(s, self.sketch_config.image_size)
                              for s in sketches])
            kind = torch.full((len(sketches),), KIND_SKETCH)
            states, mask = torch.zeros(len(sketches), 1, self.hidden), torch.zeros(len(sketches), 1, dtype=torch.bool)
        else:
            kind = torch.full((int(num),), KIND_NONE)
            states, mask, sk = torch.zeros(int(num), 1, self.hidden), torch.zeros(int(num), 1, dtype=torch.bool), None
        return shape_condition(self, kind, states, mask, sk), prompts is not None or sketches is not None

    def config_dict(self) -> dict:
        return {"hidden": self.hidden, "prefix_tokens": self.prefix_tokens,
                "sketch": {"image_size": self.sketch_config.image_size,
                           "channels": list(self.sketch_config.channels)}}

    def save_pretrained(self, directory: str | Path, dtype: torch.dtype = torch.float16) -> None:
        from safetensors.torch import save_file

        from ..export.atomic import atomic_path

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in self.state_dict().items()}
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp))
        with atomic_path(directory / CONFIG_NAME) as tmp:
            tmp.write_text(json.dumps(self.config_dict(), indent=2) + "\n")

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "ShapeConditioner":
        from safetensors.torch import load_file

        directory = check_model_folder(directory, WEIGHTS_NAME, "shape conditioner")
        try:
            cfg = check_config_json(directory / CONFIG_NAME)
            model = cls(**cfg)
            state = load_file(str(directory / WEIGHTS_NAME))
            model.load_state_dict({k: v.float() for k, v in state.items()})
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
            raise InputError(f"{directory}: not a loadable shape conditioner ({type(e).__name__})") from None
        return model.eval()

    load = from_pretrained  # the name OctGenPipeline loads conditioners (and tokenizers) by
