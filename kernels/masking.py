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
    return sep + HIDDEN if may_be_credential(name, "") or secret_name(name) else match.group(0)


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


# words of a name that make its value a secret (`db_password`, `sig`, `apiKey`); "key" only after
# a word that makes it one (`api_key`, `secret_key`: not `sort_key`, `monkey`)
SECRET_WORDS = frozenset("""
    password passwd pwd pw pass passphrase secret secrets token tokens sig signature auth authorization
    credential credentials cookie cookies apikey jwt bearer otp
    """.split())
KEY_QUALIFIERS = frozenset("api access secret private account master signing encryption client app".split())
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_TOKEN_AFTER_SCHEME = re.compile(r"\b(?:Bearer|Basic)\s+(?=[\w.~+/-]*[\d.~+/=-])[\w.~+/-]{8,}=*", re.IGNORECASE)
_AUTHORIZATION = re.compile(r"\b(?:proxy-)?authorization\s*[:=]\s*\S", re.IGNORECASE)
_SECRET_FLAG = re.compile(r"(?:^|\s)--?(?P<name>[\w-]{1,64})[\s=]+(?P<value>[^\s-]\S*)")


def secret_name(name: str) -> bool:
    """Whether a name says its value is a secret, word by word (`DB_PASSWORD`, `sasSig`, `api-key`)."""
    words = [w.lower() for w in _WORDS.findall(name)]
    return any(w in SECRET_WORDS or (w == "key" and i and words[i - 1] in KEY_QUALIFIERS)
               for i, w in enumerate(words))


def holds_credential(text: str) -> bool:
    """Whether a parameter's text holds a credential: a token after Bearer or Basic, the value of a
    secret name (`password=…`, `?sig=…`, `--password …`, `"token": …`), a URL with user info or a
    token-like run of letters and digits (`fingerprints.may_be_credential`)."""
    from .fingerprints import may_be_credential

    if _TOKEN_AFTER_SCHEME.search(text) or _AUTHORIZATION.search(text) or _HEADER.search(text) \
            or may_be_credential("", text):
        return True
    named = (m["name"] or m["qname"] for m in _NAMED.finditer(text))
    return any(secret_name(name) for name in named) or \
        any(secret_name(m["name"]) for m in _SECRET_FLAG.finditer(text))
