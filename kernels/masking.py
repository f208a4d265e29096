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
# the value of a secret-looking name (`secret_name`) in `name=value` and `"name": "value"`;
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


# The one rule for "a name whose value is a secret", for run records, the environment of a step's
# fingerprint and masked text alike. Word by word (`DB_PASSWORD`, `sasSig`, `apiKey`), so that
# `n_passes`, `author`, `keyword`, `design` and `max_tokens` keep their values; a word that runs
# names together counts by its ending (`PGPASSWORD`, `githubtoken`, `secretkey`).
SECRET_WORDS = frozenset("""
    password passwords passwd pwd pw pass passphrase secret secrets token sig signature sign signing
    auth authorization oauth credential credentials cred creds cookie cookies apikey jwt bearer otp pat pin
    salt hmac dsn login access private session cert certs conn database
    """.split())
SECRET_ENDINGS = ("password", "passwd", "passphrase", "secret", "token", "credential", "credentials", "apikey",
                  "cookie")
# "key" is a secret after a word that makes it one (`api_key`, `AWS_SECRET_ACCESS_KEY`), or as the
# last word after another (`STRIPE_KEY`), unless that word says it keys data (`sort_key`,
# `public_key`); alone (`["key", "value"]`, a column) or before another word (`key_column`,
# `key_size`) it names no secret
KEY_QUALIFIERS = frozenset("api access secret private account master signing encryption client app".split())
PLAIN_KEYS = frozenset("""
    sort primary foreign join group groupby partition index dict cache hash lookup unique composite row
    shard merge random rng map order public dedup bucket object cluster
    """.split())
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_TOKEN_AFTER_SCHEME = re.compile(r"\b(?:Bearer|Basic)\s+(?=[\w.~+/-]*[\d.~+/=-])[\w.~+/-]{8,}=*", re.IGNORECASE)
_AUTHORIZATION = re.compile(r"\b(?:proxy-)?authorization\s*[:=]\s*\S", re.IGNORECASE)
_SECRET_FLAG = re.compile(r"(?:^|\s)--?(?P<name>[\w-]{1,64})[\s=]+(?P<value>[^\s-]\S*)")


def secret_name(name: str) -> bool:
    """Whether a name says its value is a secret (`DB_PASSWORD`, `sasSig`, `api-key`, `PGPASSWORD`)."""
    words = [w.lower() for w in _WORDS.findall(name[:256])]
    return any(_secret_word(words, i) for i in range(len(words)))


def _secret_word(words: list[str], i: int) -> bool:
    word = words[i]
    if word in SECRET_WORDS or word.endswith(SECRET_ENDINGS):
        return True
    if word.endswith("key") and word[:-3] in KEY_QUALIFIERS:  # `secretkey`, `accesskey`
        return True
    if word != "key":
        return False
    before = words[i - 1] if i else ""
    return before in KEY_QUALIFIERS or (i == len(words) - 1 and before not in PLAIN_KEYS | {""})


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
