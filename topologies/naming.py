"""Names from the outside world made fit for topology files.

A node name in a topology file is 1-10 letters, digits or ``_`` starting with a letter
(:data:`topologies.spec.NAME_PATTERN`): the builder derives Linux interface names from
it (``to-<peer>`` on routers, at most 15 characters) and Mininet node names (``r<node>``,
``c<node>``). Names of real networks ("Washington DC", "Zürich", "Kot kapura", "1",
"Frankfurt/Main") are turned into such names here, deterministically:

1. accents are dropped (NFKD, then ASCII only): ``Zürich`` -> ``Zurich``;
2. the words (runs of letters and digits; everything else, ``_`` included, separates
   them) are run together, each later word capitalised: ``Los Angeles`` ->
   ``LosAngeles``, ``Kot kapura`` -> ``KotKapura``, ``Frankfurt/Main`` ->
   ``FrankfurtMain``;
3. a name that does not start with a letter gets an ``N`` in front (``1`` -> ``N1``),
   an empty one becomes ``N``;
4. it is cut to the length limit (and a ``_`` left at the cut goes): ``FrankfurtMain``
   -> ``FrankfurtM``, ``Washington DC`` -> ``Washington``;
5. names that collide after that keep the first one as it is; the later ones get
   ``_2``, ``_3``, ... (the base cut shorter to make room), skipping any suffixed name
   that another node already has. So ``Indianapolis`` and ``Indianapolis2`` become
   ``Indianapol`` and ``Indianap_2``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

NODE_NAME_MAX = 10  # topologies.spec.NAME_PATTERN
_SEPARATORS = re.compile(r"[^A-Za-z0-9]+")


def clean_name(original: str, max_len: int = NODE_NAME_MAX, prefix: str = "N") -> str:
    """One name, rules 1-4 of the module docstring (no collision handling)."""
    text = unicodedata.normalize("NFKD", str(original))
    text = text.encode("ascii", "ignore").decode("ascii")
    words = [w for w in _SEPARATORS.split(text) if w]
    text = "".join(w if i == 0 else w[0].upper() + w[1:] for i, w in enumerate(words))
    if not text or not text[0].isalpha():
        text = prefix + text
    return text[:max_len].rstrip("_") or prefix


def unique_name(base: str, taken: set[str], max_len: int = NODE_NAME_MAX) -> str:
    """``base`` if free, else ``base`` (cut to fit) + ``_2``, ``_3``, ...: the first free."""
    if base not in taken:
        return base
    n = 2
    while True:
        suffix = f"_{n}"
        name = base[:max_len - len(suffix)].rstrip("_") + suffix
        if name not in taken:
            return name
        n += 1


def sanitize_names(originals: Sequence[str], max_len: int = NODE_NAME_MAX,
                   reserved: Iterable[str] = ()) -> list[str]:
    """Clean every name and make them unique (rule 5), in the given order.

    A name whose cleaned form nobody else has keeps it; among names that collide the
    first keeps the cleaned form and the others get suffixes. ``reserved`` names are
    never handed out.
    """
    cleaned = [clean_name(o, max_len) for o in originals]
    counts: dict[str, int] = {}
    for c in cleaned:
        counts[c] = counts.get(c, 0) + 1
    reserved_set = set(reserved)
    # every cleaned name is spoken for, so a suffixed name never steals one
    taken = set(cleaned) | reserved_set
    out: list[str] = []
    first_seen: set[str] = set()
    for c in cleaned:
        if c not in first_seen and c not in reserved_set:
            first_seen.add(c)
            out.append(c)
            continue
        name = unique_name(c, taken, max_len)
        taken.add(name)
        out.append(name)
    return out


def comment_text(text: str) -> str:
    """``text`` made safe for a one-line YAML comment (no line breaks or control chars)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
