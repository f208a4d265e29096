"""What may be a credential: the one rule for run records, masked text, a step's environment and
compiled pipelines (no pipeline carries a parameter default the run store would keep only as a digest).

It lives in the compiler, which imports nothing from the run time: kernels/masking.py (masked text),
kernels/fingerprints.py and kernels/params.py (what the run store hides) import it from here.
"""

from __future__ import annotations

import bisect
import re

# The one rule for "a name whose value is a secret". Any part of a name that may name a secret
# counts, also run together with other words (`PGPASSWORD`, `SSHPASS`, `JSESSIONID`, `dbcreds`),
# unless it lies in a word known to mean something else (`n_passes`, `author`, `keyword`,
# `tokenizer`, `design`) or next to one that says so (`sort_key`, `max_tokens`, `pad_token_id`,
# `pin_memory`): a name that is not known to be harmless is hidden.
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

# Text that holds a credential by its shape alone, whatever its name. Well-known shapes are named
# as such: a neutral name (`aws`, `hook`, `cmd`) gave them no cover, and a `/` or `-` in one splits
# the run of letters and digits the last rule needs.
_CREDENTIAL_SHAPES = [
    r"://[^/\s]*@",  # a URL with user info (`postgresql://me:pw@db/x`)
    # a token-like run of letters and digits
    r"(?<![A-Za-z0-9])(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{20,}",
    # an AWS secret access key: 40 characters of base64 with a `/` or `+`, random: mixed case and a
    # digit (a path of 40 characters has fewer capitals, or a `.`, `_` or `-`)
    r"(?<![A-Za-z0-9/+])(?=[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+]))(?=[^/+]{0,39}[/+])(?=[A-Za-z/+]*[0-9])"
    r"(?=(?:[a-z0-9/+]*[A-Z]){8})(?=(?:[A-Z0-9/+]*[a-z]){8})[A-Za-z0-9/+]{40}",
    # tokens by their vendor's prefix: GitHub, GitLab, Slack, OpenAI and Anthropic, Stripe, AWS key
    # ids, Google API keys (`sk-` only with a digit and a capital: `sk-learn` is a name)
    r"(?<![\w-])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,}|glpat-[\w-]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|sk-(?=[\w-]*[0-9])(?=[\w-]*[A-Z])[\w-]{20,}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|A(?:KIA|SIA)[A-Z0-9]{16}"
    r"|AIza[\w-]{35})",
    r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY",  # a PEM private key, whatever its body
    # a webhook URL: the URL is the credential
    r"hooks\.slack\.com/(?:services|workflows|triggers)/\w|discord(?:app)?\.com/api/webhooks/\d",
    # a password in a command line: `mysql -phunter2` (a `-p` apart is a prompt, elsewhere a port),
    # `sshpass -p hunter2`. (`--password=…` and `PGPASSWORD=…` are `SECRET_FLAG`'s and `NAMED`'s.)
    r"\b(?:mysql(?:dump|admin|import|sh|slap|check)?|mariadb(?:-dump|-admin)?)(?=\s)[^\n;|&]{0,200}?\s-p[^\s-]"
    r"|\bsshpass\s+-p\s*[^\s-]",
]
CREDENTIAL_LIKE = re.compile("|".join(_CREDENTIAL_SHAPES))
# A text that holds one by what surrounds it: a token after Bearer or Basic; an Authorization
# header; the value of a secret name (`password=…`, `"token": …`, `--password …`). (The groups are
# `masking.masked`'s: what it keeps, what it hides.)
_TOKEN_AFTER_SCHEME = re.compile(r"\b(?:Bearer|Basic)\s+(?=[\w.~+/-]*[\d.~+/=-])[\w.~+/-]{8,}=*", re.IGNORECASE)
_AUTHORIZATION = re.compile(r"\b(?:proxy-)?authorization\s*[:=]\s*\S", re.IGNORECASE)
VALUE = r"(?!(?:Bearer|Basic)\b)[^\s\"',;&)}\]]+"  # (after a scheme: the scheme's rule hides the token)
# the value of a secret-looking name in `name=value` and `"name": "value"`; after `name: ` only for
# names of headers and keys, as prose has `401 Unauthorized: invalid …`. Names are bounded: an
# unbounded run before a literal backtracks in quadratic time on a long answer.
NAMED = re.compile(rf"(?P<name>[\w.-]{{1,64}})(?P<sep>\s*=\s*)(?P<value>{VALUE})"
                   rf"|(?P<q>[\"'])(?P<qname>[\w.-]{{1,64}})(?P=q)(?P<qsep>\s*:\s*[\"']?)(?P<qvalue>{VALUE})")
HEADER = re.compile(rf"\b(?P<name>(?:proxy-)?authorization|(?:set-)?cookie|[\w-]{{0,32}}(?:password|passwd|secret"
                    rf"|token|api[_-]?key)[\w-]{{0,32}})(?P<sep>\s*:\s*)(?P<value>{VALUE})", re.IGNORECASE)
SECRET_FLAG = re.compile(r"(?:^|\s)--?(?P<name>[\w-]{1,64})[\s=]+(?P<value>[^\s-]\S*)")
NAME_KEYS = ("name", "Name", "key", "Key")  # `{"name": "DB_PASSWORD", "value": …}`: env lists, tags
_LIST_NAME = re.compile(r"-{0,2}[\w.-]{1,64}")  # a name or a flag; a URL or a sentence names nothing


def secret_name(name: str) -> bool:
    """Whether a name may say its value is a secret (`DB_PASSWORD`, `sasSig`, `api-key`, `PGPASSWORD`)."""
    found = list(_WORDS.finditer(str(name)))  # (a dict's key may be a number)
    starts, words = [m.start() for m in found], [m.group(0).lower() for m in found]
    if any(word in SECRET_WORDS and not _harmless(words, i) for i, word in enumerate(words)):
        return True
    for part in _SECRET_PART.finditer(str(name)):
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


def text_may_be_credential(name: str, text: str) -> bool:
    """A value of any length that may be a secret: its name looks secret, or it holds a password in
    a URL, a token-like run of letters and digits or a credential of a well-known shape."""
    return bool(secret_name(name) or CREDENTIAL_LIKE.search(text))


def holds_credential(text: str) -> bool:
    """Whether a parameter's text holds a credential: a token after Bearer or Basic, the value of a
    secret name (`password=…`, `?sig=…`, `--password …`, `"token": …`), a URL with user info, a
    token-like run of letters and digits or a credential of a well-known shape (`CREDENTIAL_LIKE`)."""
    if _TOKEN_AFTER_SCHEME.search(text) or _AUTHORIZATION.search(text) or HEADER.search(text) \
            or CREDENTIAL_LIKE.search(text):
        return True
    named = (m["name"] or m["qname"] for m in NAMED.finditer(text))
    return any(secret_name(name) for name in named) or any(secret_name(m["name"]) for m in SECRET_FLAG.finditer(text))


def may_be_credential(name: str, value) -> bool:
    """Whether parameter `name` = `value` (a JSON value) may hold a credential: a secret-looking
    name with a value (`api_token = "…"`, `pin = 1234`; not None, "" or a bool), or, at any depth,
    text that holds one, a dict key that is one, or a value a secret name labels
    (`{"password": …}`, `{"name": "DB_PASSWORD", "value": …}`, `["--password", …]`)."""
    stack = [(name, value)]
    while stack:
        name, value = stack.pop()
        if isinstance(value, dict):
            if secret_name(name) and value:
                return True
            if any(isinstance(key, str) and CREDENTIAL_LIKE.search(key) for key in value):
                return True
            named = named_by(value)
            stack += [(key if named is None or key in NAME_KEYS else named, item) for key, item in value.items()]
        elif isinstance(value, list):
            if secret_name(name) and value:
                return True
            stack += [(named_by_before(value, i), item) for i, item in enumerate(value)]
        elif _leaf_credential(name, value):
            return True
    return False


def _leaf_credential(name, value) -> bool:
    if value is None or isinstance(value, bool) or value == "":
        return False
    if isinstance(value, str):
        return secret_name(name) or bool(CREDENTIAL_LIKE.search(value)) or holds_credential(value)
    return secret_name(name)  # a number: a PIN, a one-time code


def named_by(entry: dict):
    """The secret-looking name an entry gives its other values (`{"name": "DB_PASSWORD", "value": …}`)."""
    return next((v for k, v in entry.items() if k in NAME_KEYS and isinstance(v, str) and secret_name(v)), None)


def named_by_before(items, i: int) -> str:
    """What names the item at `i` of a list: the secret name before it (`["Authorization", "Bearer …"]`,
    `["--password", …]`, `["user", "u", "password", …]`; not `["key", "value"]`, column labels); ""
    when none does."""
    before = items[i - 1] if i else None
    named = isinstance(before, str) and _LIST_NAME.fullmatch(before) is not None \
        and before.lower() not in ("key", "keys") and secret_name(before)
    return before if named else ""
