"""Benchmarks behind ``octgen bench``: each module has ``run(args) -> dict`` and
``add_arguments(parser)``; figures printed here are the ones the README quotes."""
