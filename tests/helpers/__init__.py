"""Helpers shared by the test modules (no tests here): tidy-frame grids, fake sweep runs, tiny datasets, the
packed-equals-single checks, running the CLI in a read-only folder, and the texts a report page displayed."""
