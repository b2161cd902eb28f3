"""Command-line interface (``octgen``): the entry point is :func:`octgen.cli.main.main`.

Nothing is imported here, so ``python -m octgen.cli.main`` (the form ``accelerate
launch`` uses) runs without a "found in sys.modules" warning.
"""
