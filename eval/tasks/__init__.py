"""One module per eval task; each exposes ``run(ctx) -> dict`` (its ``summary.json`` section)."""
