"""The one namespace that hands out identifiers in generated code.

A name is never a keyword, a builtin, `np`/`runtime`, or already taken; repeats get
`_1`, `_2` suffixes. Temporaries are `t1`, `t2`, ... in order of appearance, so the
same graph always gets the same names.
"""
from __future__ import annotations

import builtins
import keyword
import unicodedata

RESERVED = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins)) | {"np", "runtime"}


def sanitize(hint: str) -> str:
    """`hint` made into an identifier: characters that cannot appear in one become `_`.

    Names are NFKC-normalized first, as Python's parser does, so two distinct names
    here are never the same identifier in the generated code (`ﬁ` is `fi`)."""
    hint = str(hint)
    if hint.isascii() and hint.isidentifier():
        return hint  # the common case: NFKC leaves ASCII alone, every character is kept
    name = unicodedata.normalize("NFKC", hint)
    name = "".join(c if ("_" + c).isidentifier() else "_" for c in name)
    if not name or not name[0].isidentifier():
        name = "v_" + name
    return name


class Namespace:
    """Unique identifiers for one generated module.

    `fresh(hint)` gives the first of `hint`, `hint_1`, `hint_2`, ... not yet taken.
    Names are only ever added, so every suffix below the last one handed out for a
    base is still taken: the search resumes there instead of rescanning from `_1`,
    which makes rebinding one name k times O(k) in all, not O(k**2). A suffixed name
    that is taken for another reason (a user variable called `x_1`, or `x_1` handed
    out for the hint `x_1`) is still skipped, because every candidate is checked
    against `used`. `probes` counts candidates checked, for tests of that bound.
    """

    def __init__(self, reserved: set[str] = frozenset()):
        self.used = set(RESERVED) | set(reserved)
        self.temps = 0
        self.suffix: dict[str, int] = {}  # base -> the last suffix tried for it
        self.probes = 0

    def fresh(self, hint: str) -> str:
        base = sanitize(hint)
        used = self.used
        self.probes += 1
        if base not in used:
            used.add(base)
            return base
        k = self.suffix.get(base, 0)
        while True:
            k += 1
            self.probes += 1
            name = f"{base}_{k}"
            if name not in used:
                break
        self.suffix[base] = k
        used.add(name)
        return name

    def temp(self) -> str:
        while True:
            self.temps += 1
            self.probes += 1
            name = f"t{self.temps}"
            if name not in self.used:
                self.used.add(name)
                return name
