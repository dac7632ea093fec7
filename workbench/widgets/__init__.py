"""Widgets for the regions of the workbench's screens."""
