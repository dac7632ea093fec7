"""Judges of generated recipes: the offline judge here, GPT judges later, all storing Judgment rows."""
