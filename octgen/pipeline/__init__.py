"""Pipelines chaining condition encoder, sampler and tokenizer decode.

``OctGenPipeline`` (molecules) lives in :mod:`octgen.pipeline.pipeline`,
``ShapePipeline`` (meshes from prompts / sketches) in :mod:`octgen.pipeline.shape`;
``load_pipeline(dir)`` picks by the checkpoint's modality. They are imported lazily
so ``import octgen.pipeline`` stays light.
"""


def __getattr__(name):
    if name in ("OctGenPipeline", "save_pipeline"):
        from . import pipeline
        return getattr(pipeline, name)
    if name in ("ShapePipeline", "save_shape_pipeline", "load_pipeline", "ShapeResult"):
        from . import shape
        return getattr(shape, name)
    raise AttributeError(name)
