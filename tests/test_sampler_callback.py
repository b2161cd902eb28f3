"""The per-level sampler callback (used by the app's live preview) changes nothing."""
import torch

from octgen.modality.shapes import make_untrained_shape_pipeline
from octgen.pipeline.pipeline import OctGenPipeline


def test_callback_sees_every_level_and_leaves_samples_unchanged(tmp_path):
    pipe = OctGenPipeline.from_pretrained(make_untrained_shape_pipeline(tmp_path / "p"))
    D = pipe.transformer.depth
    plain = pipe(prompt="a mug", num=2, generator=torch.Generator().manual_seed(4), steps=2)
    calls = []
    seen = pipe(prompt="a mug", num=2, generator=torch.Generator().manual_seed(4), steps=2,
                callback=lambda level, structure_B: calls.append((level, structure_B)))
    assert [level for level, _ in calls] == list(range(D + 1))
    for a, b in zip(plain, seen):
        assert all(torch.equal(x, y) for x, y in zip(a.tokens.structure, b.tokens.structure))
        assert torch.equal(a.tokens.payload, b.tokens.payload)
    for level, structure_B in calls:
        assert len(structure_B) == 2
        for row, result in zip(structure_B, seen):
            # Row b at level d: the finished structure tokens of depths 0..min(d, D - 1).
            assert len(row) == min(level, D - 1) + 1
            assert all(torch.equal(x, y) for x, y in zip(row, result.tokens.structure))
