"""ddft engine: importers, media, models, training, generation, judging, jobs and the CLI."""
