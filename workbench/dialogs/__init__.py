"""Modal dialogs of the workbench."""
