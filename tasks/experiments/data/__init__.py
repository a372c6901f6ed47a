"""Data pipelines: real datasets in their on-disk formats, and small synthetic stand-ins."""
