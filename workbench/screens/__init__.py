"""The workbench's screens, one module each: samples, jobs, compare, report, help."""
