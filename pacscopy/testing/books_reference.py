"""The books' table macros as schema 0017 and 0021 defined them, for comparing later bodies with.

``reference_macros()`` takes ``stored_content_of``, ``outgoing_of``, ``books_of`` and ``final_states_of``
from the text of migrations 0017 and 0021 (the bodies schema 0023 replaced) and renames them
``*_0021``, so that tests (tests/test_books_narrow.py) and benchmarks (scripts/bench_final_states.py)
evaluate the old and the new bodies on the same index.
"""

from __future__ import annotations

import re

from pacscopy.index import migrations

_FROM = {"stored_content_of": 17, "outgoing_of": 17, "books_of": 21, "final_states_of": 17}


def reference_macros(*, temp: bool = False) -> list[str]:
    """CREATE statements of the four macros as 0017/0021 defined them, named ``<name>_0021``."""
    sql = {version: text for version, _, text in migrations()}
    out = []
    for name, version in _FROM.items():
        text = sql[version]
        m = re.search(rf"CREATE (?:OR REPLACE )?MACRO {name}\(", text)
        assert m is not None, (name, version)
        body = text[m.start():text.index(";\n", m.start()) + 1]  # a macro ends at the first ';' ending a line
        body = f"CREATE OR REPLACE {'TEMP ' if temp else ''}MACRO {name}_0021(" + body[m.end() - m.start():]
        body = re.sub(r"\b(stored_content_of|outgoing_of|books_of)\((keyed|tgt, keyed)\)", r"\1_0021(\2)", body)
        out.append(body)
    return out
