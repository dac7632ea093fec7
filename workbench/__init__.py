"""The ddft workbench: a Textual app over the store."""
