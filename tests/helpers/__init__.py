"""Helpers shared by the test modules (no tests here): tidy-frame grids, fake sweep runs, tiny datasets, the
packed-equals-single checks, and running the CLI in a read-only folder."""
