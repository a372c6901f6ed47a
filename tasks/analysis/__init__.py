"""From result records to the paper's tables and figures (pure functions over records)."""
