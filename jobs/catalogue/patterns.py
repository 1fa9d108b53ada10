"""Regular expressions that state in a params schema what a validator checks in code.

They go into ``json_schema_extra``, never into ``Field(pattern=...)``: the validators keep answering with
their own messages, and the schema promises only what they accept (for an e-mail address or a URL, a
plain-ASCII subset of it), so a client that checks the schema never sends what the service refuses.
Each is written for both Python's ``re`` and ECMA 262, which JSON Schema uses.
"""

from __future__ import annotations

from collections.abc import Iterable

#: the characters that stand for themselves in a pattern only when escaped
_SYNTAX = frozenset("^$\\.*+?()[]{}|/")


def any_case(word: str) -> str:
    """``word`` in upper or lower case, letter by letter (ECMA 262 patterns have no inline flags)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else _literal(c) for c in word)


def _literal(char: str) -> str:
    # ECMA 262 in Unicode mode refuses escapes of characters that need none, such as `\-`
    return "\\" + char if char in _SYNTAX else char


def none_of(words: Iterable[str]) -> str:
    """A lookahead that refuses what follows when it is one of ``words``, in any case, to the end."""
    return "(?!(?:" + "|".join(any_case(word) for word in sorted(words)) + ")$)"


#: a DNS label as IDNA accepts it in ASCII: no hyphen first or last, no `ab--` (that is Punycode's)
DNS_LABEL = r"(?![A-Za-z0-9]{2}--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: the last label: a letter first and last, so that it never reads as an IPv4 number
TOP_LABEL = r"(?![A-Za-z0-9]{2}--)[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z])?"
#: names no public host has (RFC 6761, 6762, 7686), which email-validator refuses after an @
SPECIAL_USE_NAMES = ("arpa", "invalid", "local", "localhost", "onion", "test")
#: a mail domain: two labels or more, the last one no special-use name
MAIL_DOMAIN = rf"(?:{DNS_LABEL}\.)+{none_of(SPECIAL_USE_NAMES)}{TOP_LABEL}"
