"""ddft store: SQLModel tables, the SQLAlchemy engine factory and typed queries (no torch, no textual)."""
