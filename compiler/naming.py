"""The one namespace that hands out identifiers in generated code.

A name is never a keyword, a builtin, `np`/`runtime`, or already taken; repeats get
`_1`, `_2` suffixes. Temporaries are `t1`, `t2`, ... in order of appearance, so the
same graph always gets the same names.
"""
from __future__ import annotations

import builtins
import keyword
import unicodedata

_RESERVED = set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins)) | {"np", "runtime"}


def sanitize(hint: str) -> str:
    """`hint` made into an identifier: characters that cannot appear in one become `_`.

    Names are NFKC-normalized first, as Python's parser does, so two distinct names
    here are never the same identifier in the generated code (`ﬁ` is `fi`)."""
    name = unicodedata.normalize("NFKC", str(hint))
    name = "".join(c if ("_" + c).isidentifier() else "_" for c in name)
    if not name or not name[0].isidentifier():
        name = "v_" + name
    return name


class Namespace:
    """Unique identifiers for one generated module."""

    def __init__(self, reserved: set[str] = frozenset()):
        self.used = set(_RESERVED) | set(reserved)
        self.temps = 0

    def fresh(self, hint: str) -> str:
        base = sanitize(hint)
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def temp(self) -> str:
        while True:
            self.temps += 1
            name = f"t{self.temps}"
            if name not in self.used:
                self.used.add(name)
                return name
