"""Judges of generated recipes: an offline judge and GPT judges (any OpenAI-compatible endpoint), storing Judgment rows."""
