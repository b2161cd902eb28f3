"""octgen: 3D shapes and molecules from an octree autoregressive transformer.

Stages, one subpackage each (see ARCHITECTURE.md): ``octree`` (data structure and
ops), ``tokenize`` (meshes / molecules <-> OctreeTokens), ``data`` (datasets and
file readers), ``model`` (the transformer), ``sampling`` (the decoding loop),
``pipeline``, ``train``, ``metrics``, ``export``. ``cli`` and the top-level
``app.py`` are thin layers over them.
"""
__version__ = "0.1.0"
