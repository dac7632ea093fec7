"""ddft store: SQLModel tables, the engine factory and typed queries (no torch, no textual)."""
