"""Limits shared by the library and the CLI, importable without torch."""

MAX_DEPTH = 10  # octree depth: 3 * 10 = 30 key bits per level; int64 keys allow 21
