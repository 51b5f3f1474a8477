"""Tenant slugs: lowercase ASCII words joined by dashes, derived from the name and made unique."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection

MAX_SLUG_LENGTH = 48
FALLBACK_SLUG = "tenant"
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
# letters NFKD does not decompose into ASCII
_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "đ": "d",
                       "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ı": "i"})
SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
PLATFORM_SLUG = "platform"
# Slugs no hotel gets, whatever it is called ("Platform" becomes platform-2): the platform's own tenant (whose
# super admins read the audit entries that name no tenant) and words that read as parts of the product.
RESERVED_SLUGS = frozenset({PLATFORM_SLUG, "admin", "api", "eva", "system", "support", "www"})


def slugify(name: str) -> str:
    """'Hôtel Le Château ' -> 'hotel-le-chateau'; a name with no latin letters or digits gives 'tenant'."""
    folded = unicodedata.normalize("NFKD", name.translate(_FOLD)).encode("ascii", "ignore").decode("ascii").lower()
    slug = _NOT_ALNUM.sub("-", folded).strip("-")[:MAX_SLUG_LENGTH].rstrip("-")
    return slug or FALLBACK_SLUG


def unique_slug(base: str, taken: Collection[str]) -> str:
    """`base` if free, else the first free `base-2`, `base-3`, ... (kept within the maximum length). A reserved
    slug is never free."""
    if base not in taken and base not in RESERVED_SLUGS:
        return base
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = f"{base[: MAX_SLUG_LENGTH - len(suffix)].rstrip('-')}{suffix}"
        if candidate not in taken:
            return candidate
        number += 1
