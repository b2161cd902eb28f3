"""Condition encoders: offline text encoder, sketch preprocessing, sketch encoder."""
import numpy as np
import pytest
import torch
from PIL import Image

from octgen.condition.sketch import SketchEncoder, SketchEncoderConfig, preprocess_sketch
from octgen.condition.text import FrozenTextEncoder, check_prompt
from octgen.errors import InputError


@pytest.fixture(scope="module")
def text_encoder():
    return FrozenTextEncoder()


def _no_network(*args, **kwargs):
    raise OSError("network access attempted during an offline test")


def test_text_encoder_loads_offline_from_package(tmp_path, monkeypatch):
    # No socket can open and the Hugging Face caches point at an empty folder: the
    # encoder must come from the installed package alone.
    import socket

    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_CACHE"):
        monkeypatch.setenv(var, str(tmp_path / "empty-hf-cache"))
    with pytest.raises(OSError, match="network access attempted"):
        socket.create_connection(("huggingface.co", 443))  # the block is in place
    text_encoder = FrozenTextEncoder()
    states, mask = text_encoder(["a tall bar stool with three thin legs", "a mug"])
    assert states.shape[0] == 2 and states.shape[2] == text_encoder.hidden_size == 384
    assert mask[0].sum() > mask[1].sum()
    e = text_encoder.embed(["a tall bar stool with three legs", "a high stool with three legs",
                            "an airplane with swept-back wings"])
    sims = e @ e.T
    assert sims[0, 1] > sims[0, 2] + 0.3  # paraphrases are closer than other objects


def test_text_encoder_is_frozen_and_deterministic(text_encoder):
    assert not any(p.requires_grad for p in text_encoder.parameters())
    text_encoder.train()
    a, _ = text_encoder(["a round table"])
    b, _ = text_encoder(["a round table"])
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", ["", "   \n\t ", "\x00\x01", "x" * 501, None, 3])
def test_bad_prompts_rejected(bad):
    with pytest.raises(InputError):
        check_prompt(bad)


def test_missing_encoder_is_one_line_error(tmp_path):
    with pytest.raises(InputError, match="could not load text encoder"):
        FrozenTextEncoder(tmp_path / "nope")


def _square_drawing(size=200, fg=0, bg=255, mode="L"):
    arr = np.full((size, size), bg, dtype=np.uint8)
    arr[50:52, 40:160] = fg
    arr[150:152, 40:160] = fg
    arr[50:152, 40:42] = fg
    arr[50:152, 158:160] = fg
    return Image.fromarray(arr).convert(mode)


def test_sketch_is_cropped_centred_and_sized():
    out = preprocess_sketch(_square_drawing(), size=64)
    assert out.shape == (1, 64, 64) and out.dtype == torch.float32
    ink = out[0] > 0.25
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    # The drawing is 120 wide and 102 tall: its width fills the canvas up to the margin, its height is centred.
    assert cols[0] <= 7 and cols[-1] >= 56
    assert (rows[-1] - rows[0]) == pytest.approx((cols[-1] - cols[0]) * 102 / 120, abs=2)
    assert abs((rows[0] + rows[-1]) / 2 - 31.5) <= 1.5 and abs((cols[0] + cols[-1]) / 2 - 31.5) <= 1.5
    assert out[0, 32, 32] < 0.05  # the inside of the square is background


def test_inverted_and_transparent_sketches_match_plain():
    plain = preprocess_sketch(_square_drawing(), size=64)
    inverted = preprocess_sketch(_square_drawing(fg=255, bg=0), size=64)
    assert torch.allclose(plain, inverted, atol=0.02)
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)  # black strokes on a fully transparent canvas
    rgba[..., 3] = np.asarray(_square_drawing(fg=255, bg=0))
    transparent = preprocess_sketch(Image.fromarray(rgba, "RGBA"), size=64)
    assert torch.allclose(plain, transparent, atol=0.02)


def test_tiny_huge_and_editor_inputs():
    tiny = np.full((3, 3), 255, np.uint8)
    tiny[1, 1] = 0
    assert preprocess_sketch(tiny, size=32).max() > 0.5
    huge = _square_drawing(size=5000)
    assert preprocess_sketch(huge, size=64).shape == (1, 64, 64)
    editor_value = {"background": None, "layers": [], "composite": np.asarray(_square_drawing().convert("RGB"))}
    assert torch.allclose(preprocess_sketch(editor_value, size=64), preprocess_sketch(_square_drawing(), size=64), atol=0.02)


@pytest.mark.parametrize("blank", [
    np.full((64, 64), 255, np.uint8),                      # white
    np.zeros((64, 64, 4), np.uint8),                        # fully transparent
    {"background": None, "layers": [], "composite": None},  # untouched sketchpad
])
def test_blank_sketches_rejected(blank):
    with pytest.raises(InputError, match="blank|empty"):
        preprocess_sketch(blank)


def test_bad_sketch_files(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    for p in (tmp_path / "bad.png", tmp_path / "missing.png", tmp_path / "x.gif"):
        with pytest.raises(InputError):
            preprocess_sketch(p)


def test_sketch_encoder_shapes_and_gradients():
    enc = SketchEncoder(SketchEncoderConfig(image_size=64, channels=(8, 16), out_dim=32))
    x = torch.rand(3, 1, 64, 64)
    tokens = enc(x)
    assert tokens.shape == (3, enc.num_tokens, 32) and enc.num_tokens == 256
    tokens.square().mean().backward()
    assert all(p.grad is not None for p in enc.parameters())


@pytest.mark.parametrize("side", [100, 130, 190, 250, 400])
def test_every_downscale_factor_is_safe(side):
    # Regression: a crop 1.5-2x the output side once crashed the process (PIL MaxFilter(1)).
    arr = np.full((side, side), 255, np.uint8)
    arr[side // 4, 5:-5] = 0
    arr[5:-5, side // 3] = 0
    out = preprocess_sketch(arr, size=64)
    assert out.max() > 0.5
