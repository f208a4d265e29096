"""Text with what may be a credential masked: an endpoint's answer, an error, a parameter's text.

An auth proxy may quote back the credential it refused, and a connection string carries its
password inside (`Server=db;Pwd=…`, `jdbc:…?password=…`): `masked` takes out the credentials that
were sent and anything that looks like one. `holds_credential` says whether a parameter's text
has one; it is stricter, as a text parameter is mostly prose or an expression (`title="Basic
statistics"`, `query="signal=strong"`), and what it calls a credential is recorded only as a digest.
"""

from __future__ import annotations

import bisect
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
    text = _SECRET_FLAG.sub(_hide_flag, text)  # `keytool -storepass …`
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


# The one rule for "a name whose value is a secret", for run records, the environment of a step's
# fingerprint and masked text alike. Any part of a name that may name a secret counts, also run
# together with other words (`PGPASSWORD`, `SSHPASS`, `JSESSIONID`, `dbcreds`), unless it lies in a
# word known to mean something else (`n_passes`, `author`, `keyword`, `tokenizer`, `design`) or
# next to one that says so (`sort_key`, `max_tokens`, `pad_token_id`, `pin_memory`): a name that
# is not known to be harmless is hidden.
_SECRET_PART = re.compile(r"key|secret|token|pass|pwd|cred|auth|private|cookie|session|sessid|dsn|cert|conn|database"
                          r"|salt|sign|bearer|jwt|hmac|access|login", re.IGNORECASE)
SECRET_WORDS = frozenset("pat pw pin otp sig".split())  # as whole words only (`GITHUB_PAT`, `sasSig`)
HARMLESS_WORDS = frozenset("""
    keyword keywords monkey monkeys donkey turkey hockey jockey whiskey hotkey hotkeys turnkey keyboard keyboards
    keynote keyframe keyframes keypoint keypoints keystroke keystrokes keystone
    passes passed passing passenger passengers compass bypass lowpass highpass bandpass allpass multipass
    passthrough surpass trespass encompass overpass underpass
    author authors authored authoring authorship
    tokenizer tokenizers tokenize tokenized tokenizing tokenization detokenize detokenizer
    design designs designed designer signal signals signaling signalling significance significant signif
    assign assigned assignment assignments
    connected connectivity connectome uncertainty uncertainties certainty concert accessor accessors
    accessible accessibility secretary credible credibility incredible
    """.split())
# (word, the word after it) and (the word before it, word) that make a secret-looking word harmless
_KEY_OF_DATA = """sort primary foreign join group groupby partition index dict cache hash lookup unique composite
    row shard merge random rng prng map order public dedup bucket object cluster label text image target
    input output prompt response feature batch obs neighbors column field metric dropout time labels sample layer
    color id""".split()
_COUNTED_TOKENS = "max min n num total new input output prompt completion context generated special".split()
_SPECIAL_TOKEN = "pad eos bos unk sep cls mask special start end image".split()
HARMLESS_PAIRS = frozenset(
    [(before, key) for before in _KEY_OF_DATA for key in ("key", "keys")]
    + [(key, after) for key in ("key", "keys") for after in
       "column columns col cols field fields name names func fn size length len type".split()]
    + [(before, "tokens") for before in _COUNTED_TOKENS]
    + [(before, "token") for before in _SPECIAL_TOKEN]
    + [("token", after) for after in "type types count counts limit budget length len ids".split()]
    + [("pass", after) for after in "at rate through threshold count".split()]
    + [("session", after) for after in "length gap timeout window count".split()]
    + [("access", after) for after in "level mode pattern count".split()]
    + [("sig", after) for after in "level figs digits threshold".split()]
    + [("pin", "memory")])
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_TOKEN_AFTER_SCHEME = re.compile(r"\b(?:Bearer|Basic)\s+(?=[\w.~+/-]*[\d.~+/=-])[\w.~+/-]{8,}=*", re.IGNORECASE)
_AUTHORIZATION = re.compile(r"\b(?:proxy-)?authorization\s*[:=]\s*\S", re.IGNORECASE)
_SECRET_FLAG = re.compile(r"(?:^|\s)--?(?P<name>[\w-]{1,64})[\s=]+(?P<value>[^\s-]\S*)")


def secret_name(name: str) -> bool:
    """Whether a name may say its value is a secret (`DB_PASSWORD`, `sasSig`, `api-key`, `PGPASSWORD`)."""
    found = list(_WORDS.finditer(name))
    starts, words = [m.start() for m in found], [m.group(0).lower() for m in found]
    if any(word in SECRET_WORDS and not _harmless(words, i) for i, word in enumerate(words)):
        return True
    for part in _SECRET_PART.finditer(name):
        # the word the part lies in; none (it spans words, or is no word's) explains nothing
        i = bisect.bisect_right(starts, part.start()) - 1
        if i < 0 or found[i].end() < part.end() or not _harmless(words, i):
            return True
    return False


def _harmless(words: list[str], i: int) -> bool:
    word = words[i]
    before = words[i - 1] if i else ""
    after = words[i + 1] if i + 1 < len(words) else ""
    return word in HARMLESS_WORDS or (word, after) in HARMLESS_PAIRS or (before, word) in HARMLESS_PAIRS


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
