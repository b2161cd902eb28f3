"""The pipeline: condition encoder -> sampler -> tokenizer decode, one class for
every modality (:class:`OctGenPipeline`, in :mod:`octgen.pipeline.pipeline`).
``load_pipeline(dir)`` is ``OctGenPipeline.from_pretrained(dir)``. Imported lazily
so ``import octgen.pipeline`` stays light."""

_EXPORTS = ("OctGenPipeline", "save_pipeline", "load_pipeline", "read_pipeline_info")


def __getattr__(name):
    if name in _EXPORTS:
        from . import pipeline
        return getattr(pipeline, name)
    raise AttributeError(name)
