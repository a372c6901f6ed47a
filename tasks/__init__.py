"""The paper's experiments on one shared runner; see tasks/runner.py and DESIGN.md §3."""
