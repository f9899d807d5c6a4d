"""What a report page section displayed, as the tests read it (the objects the ``shown`` fixture of
``tests/conftest.py`` collects)."""
from __future__ import annotations


def displayed_texts(objs) -> list[str]:
    """The text of every displayed object that has one (notes, keys, tables as HTML), in display order."""
    return [o.data for o in objs if hasattr(o, "data")]
