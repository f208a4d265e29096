"""Text with what may be a credential masked: an endpoint's answer, an error, a parameter's text.

An auth proxy may quote back the credential it refused, and a connection string carries its
password inside (`Server=db;Pwd=…`, `jdbc:…?password=…`): `masked` takes out the credentials that
were sent and anything that looks like one. `holds_credential` says whether a parameter's text
has one; it is stricter, as a text parameter is mostly prose or an expression (`title="Basic
statistics"`, `query="signal=strong"`), and what it calls a credential is recorded only as a digest.
"""

from __future__ import annotations

import json
import re
import urllib.parse

# (the rule itself is the compiler's: compiled pipelines must not carry what the run store hides)
from ..compiler.credentials import HEADER, NAMED, SECRET_FLAG, holds_credential, may_be_credential, secret_name

__all__ = ["HIDDEN", "holds_credential", "kept_values", "masked", "secret_name"]

HIDDEN = "<hidden>"
# a credential after its scheme (RFC 6750's b64token; Basic's base64 of user:password)
_SCHEME = re.compile(r"\b(Bearer)\s+[\w.~+/-]+=*|\b(Basic)\s+[A-Za-z0-9+/]{8,}=*", re.IGNORECASE)
LONG_WORD = 1000  # a word longer is hidden whole, not searched (`may_be_credential` is not linear in it)
# a kept text, list or dict of more items or characters (or of values other than text, numbers and
# None) is judged by its name alone: looking through a dataset for a password took seconds (10 MB
# of text: 3 s)
KEPT_ITEMS_LOOKED_AT = 1000
KEPT_CHARACTERS_LOOKED_AT = 65536
_PLAIN = (str, int, float, bool, type(None))


def masked(text: str, sent=()) -> str:
    """`text` (an endpoint's answer, an error) without the credentials `sent` to it, as given or
    encoded, nor what looks like one: a token after Bearer or Basic, the value of a secret-looking
    name (`password=…`, `"token": …`, `Cookie: …`), a URL with user info, a token-like run of
    letters and digits (`fingerprints.may_be_credential`, which decides what the run store hides).
    Linear in the length of `text`: an endpoint decides how long its answer is."""
    for secret in sorted(_forms(sent), key=len, reverse=True):
        text = re.sub(_quoted(secret), HIDDEN, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1) or m.group(2)} {HIDDEN}", text)
    text = NAMED.sub(_hide_named, text)
    text = HEADER.sub(lambda m: m["name"] + m["sep"] + HIDDEN, text)
    text = SECRET_FLAG.sub(_hide_flag, text)  # `keytool -storepass …`
    return re.sub(r"\S+", _hide_word, text)


def _hide_word(match) -> str:
    from .fingerprints import may_be_credential

    word = match.group(0)
    return HIDDEN if len(word) > LONG_WORD or may_be_credential("", word) else word


def _hide_flag(match) -> str:
    whole = match.group(0)
    return whole[:match.start("value") - match.start()] + HIDDEN if secret_name(match["name"]) else whole


def _hide_named(match) -> str:
    quoted = match["qname"] is not None
    name, sep = (match["qname"], match["q"] + match["qname"] + match["q"] + match["qsep"]) if quoted \
        else (match["name"], match["name"] + match["sep"])
    return sep + HIDDEN if secret_name(name) else match.group(0)


def _forms(sent) -> set[str]:
    """Each credential as an answer may quote it: as sent, URL-encoded or decoded, JSON-escaped."""
    forms = set()
    for secret in sent:
        forms |= {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
                  urllib.parse.unquote(secret), json.dumps(secret)[1:-1]}
    return {form for form in forms if form}


def _quoted(secret: str) -> str:
    """A pattern for `secret`: anywhere, or only as a word when short (a cookie `lang=en` sent must
    not turn every "en" into <hidden>, nor a value `1` the status 401)."""
    pattern = re.escape(secret)
    return pattern if len(secret) >= 8 else rf"(?<![\w]){pattern}(?![\w])"


def kept_values(values: dict) -> dict:
    """Of a step's final values (name → value), those the store may keep for the run's results:
    not a text or number that may be a credential (its name says so, `api_token = "…"`, `pin =
    1234`, or its text holds one, `url = "postgresql://me:pw@db/x"`), nor a small list or dict of
    plain values that holds one (`headers = {"Authorization": "Bearer …"}`; `tokens = ["a", "b"]`
    is kept), nor another object under a name that may be a secret's (`session`, `credentials`). A
    kept value is there to be looked at; the store is no place for a secret (a value a later step
    reads is stored all the same: the step needs it)."""
    return {name: value for name, value in values.items() if not _may_be_secret(name, value)}


def _may_be_secret(name: str, value) -> bool:
    if not _plain(value):
        return secret_name(name)
    return may_be_credential("" if type(value) in (list, dict) else name, value)


def _plain(value) -> bool:
    """Text, a number, or a list or dict of those, at any depth, of at most `KEPT_ITEMS_LOOKED_AT`
    items and `KEPT_CHARACTERS_LOOKED_AT` characters in all."""
    items, characters, todo = KEPT_ITEMS_LOOKED_AT, KEPT_CHARACTERS_LOOKED_AT, [value]
    while todo:
        item = todo.pop()
        if type(item) in (list, dict):
            items -= len(item)
            if items < 0:  # (before its items are gathered: a dict of a million words)
                return False
            todo += [*item.keys(), *item.values()] if type(item) is dict else item
        elif isinstance(item, str):
            characters -= len(item)
        elif not isinstance(item, _PLAIN):
            return False
        if items < 0 or characters < 0:
            return False
    return True
