"""Pipelines chaining condition encoder, sampler and tokenizer decode.

``OctGenPipeline`` lives in :mod:`octgen.pipeline.pipeline`; it is imported
lazily so ``import octgen.pipeline`` stays light.
"""


def __getattr__(name):
    if name in ("OctGenPipeline", "save_pipeline"):
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(name)
