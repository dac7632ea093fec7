"""The evaluation room: torch-free analysis of what the store holds — recipe parsing, metrics
and the offline judge over them, statistics, agreement, timestamp and grounding analysis, rating
summaries and the report. Imports db only; the workbench reads every number through it."""
