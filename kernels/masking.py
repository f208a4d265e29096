"""Text with what may be a credential masked: an endpoint's answer, an error, a parameter's text.

An auth proxy may quote back the credential it refused, and a connection string carries its
password inside (`Server=db;Pwd=…`, `jdbc:…?password=…`): `masked` takes out the credentials that
were sent and anything that looks like one; `holds_credential` says whether a text has any.
"""

from __future__ import annotations

import json
import re
import urllib.parse

HIDDEN = "<hidden>"
# a credential after its scheme (RFC 6750's b64token; Basic's base64 of user:password)
_SCHEME = re.compile(r"\b(Bearer)\s+[\w.~+/-]+=*|\b(Basic)\s+[A-Za-z0-9+/]{8,}=*", re.IGNORECASE)
_VALUE = r"(?!(?:Bearer|Basic)\b)[^\s\"',;&)}\]]+"  # (after a scheme: the scheme's rule hides the token)
# the value of a secret-looking name (`may_be_credential`) in `name=value` and `"name": "value"`;
# after `name: ` only for names of headers and keys, as prose has `401 Unauthorized: invalid …`.
# Names are bounded: an unbounded run before a literal backtracks in quadratic time on a long answer.
_NAMED = re.compile(rf"(?P<name>[\w.-]{{1,64}})(?P<sep>\s*=\s*)(?P<value>{_VALUE})"
                    rf"|(?P<q>[\"'])(?P<qname>[\w.-]{{1,64}})(?P=q)(?P<qsep>\s*:\s*[\"']?)(?P<qvalue>{_VALUE})")
_HEADER = re.compile(rf"\b(?P<name>(?:proxy-)?authorization|(?:set-)?cookie|[\w-]{{0,32}}(?:password|passwd|secret"
                     rf"|token|api[_-]?key)[\w-]{{0,32}})(?P<sep>\s*:\s*)(?P<value>{_VALUE})", re.IGNORECASE)
LONG_WORD = 1000  # a word longer is hidden whole, not searched (`may_be_credential` is not linear in it)


def masked(text: str, sent=()) -> str:
    """`text` (an endpoint's answer, an error) without the credentials `sent` to it, as given or
    encoded, nor what looks like one: a token after Bearer or Basic, the value of a secret-looking
    name (`password=…`, `"token": …`, `Cookie: …`), a URL with user info, a token-like run of
    letters and digits (`fingerprints.may_be_credential`, which decides what the run store hides).
    Linear in the length of `text`: an endpoint decides how long its answer is."""
    for secret in sorted(_forms(sent), key=len, reverse=True):
        text = re.sub(_quoted(secret), HIDDEN, text)
    text = _SCHEME.sub(lambda m: f"{m.group(1) or m.group(2)} {HIDDEN}", text)
    text = _NAMED.sub(_hide_named, text)
    text = _HEADER.sub(lambda m: m["name"] + m["sep"] + HIDDEN, text)
    return re.sub(r"\S+", _hide_word, text)


def _hide_word(match) -> str:
    from .fingerprints import may_be_credential

    word = match.group(0)
    return HIDDEN if len(word) > LONG_WORD or may_be_credential("", word) else word


def _hide_named(match) -> str:
    from .fingerprints import may_be_credential

    quoted = match["qname"] is not None
    name, sep = (match["qname"], match["q"] + match["qname"] + match["q"] + match["qsep"]) if quoted \
        else (match["name"], match["name"] + match["sep"])
    return sep + HIDDEN if may_be_credential(name, "") else match.group(0)


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


def holds_credential(text: str) -> bool:
    """Whether `text` holds what `masked` would take out (a parameter's text is then recorded as
    a digest: `params.recorded`)."""
    return masked(text) != text
