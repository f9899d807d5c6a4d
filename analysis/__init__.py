"""dstudy.analysis: everything that reads the results store (never imports torch)."""
