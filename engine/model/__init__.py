"""Video-LLaVA models: loading from a hub id or a directory, the tiny offline model, LoRA."""
