"""A payload match in SQL where SQLite gives exactly Python's answer, and in Python elsewhere."""
from __future__ import annotations

from typing import Any

# Exact integer comparisons in SQL stop at 2**53 once one side is a REAL; past that Python decides.
_SAFE_INT = 2**53


class MatchPlan:
    """`EventQuery.match` split into SQL conditions whose result equals Python `==` on the parsed
    payload, and the keys left to Python.

    SQL equality is used only where it is provably the same as Python's: str (json_type 'text' keeps a
    JSON object/array's text from matching a string), None (JSON null, key present), bool and ints
    within +-2**53 (SQLite compares INTEGER/REAL numerically, and JSON true/false are 1/0 as in Python
    where True == 1 == 1.0). Floats, big ints, lists, dicts, non-string keys go to Python. Bodies
    SQLite does not take as JSON (Python accepts NaN/Infinity) are always re-checked in Python via
    the `json_ok` column. Known difference: a body with duplicate keys uses the first value in SQLite
    and the last in Python; RFC 8259 leaves that undefined and the producers never send it.
    """

    def __init__(self, match: dict[str, Any] | None):
        self.sql: list[str] = []
        self.params: list[Any] = []
        self.python: dict[Any, Any] = {}
        for key, value in (match or {}).items():
            if not isinstance(key, str) or '"' in key or "\\" in key or not key.isprintable():
                self.python[key] = value
                continue
            path = f'$."{key}"'  # quoted member name: dots, brackets and spaces are literal
            if value is None:
                self.sql.append("json_type(CAST(body AS TEXT), ?) = 'null'")
                self.params.append(path)
            elif isinstance(value, str):
                self.sql.append(
                    "(json_type(CAST(body AS TEXT), ?) = 'text' AND json_extract(CAST(body AS TEXT), ?) = ?)"
                )
                self.params += [path, path, value]
            elif isinstance(value, (bool, int)) and -_SAFE_INT < int(value) < _SAFE_INT:
                self.sql.append(
                    "(json_type(CAST(body AS TEXT), ?) IN ('integer', 'real', 'true', 'false')"
                    " AND json_extract(CAST(body AS TEXT), ?) = ?)"
                )
                self.params += [path, path, int(value)]
            else:
                self.python[key] = value

    @property
    def needed(self) -> bool:
        return bool(self.sql)

    def where(self) -> tuple[str, list[Any]]:
        """Rows SQLite cannot parse pass through to the Python check."""
        if not self.sql:
            return "", []
        return (
            f"(NOT json_valid(CAST(body AS TEXT)) OR ({' AND '.join(self.sql)}))",
            list(self.params),
        )
