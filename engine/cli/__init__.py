"""The typer command-line interface, the composition root of ddft."""
