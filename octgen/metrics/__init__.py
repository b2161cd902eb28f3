"""Evaluation metrics: shapes (Chamfer, F-score...) and molecules (EDM stability, validity)."""
