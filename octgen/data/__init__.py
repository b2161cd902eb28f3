"""Datasets and readers for user files (meshes, molecules)."""
