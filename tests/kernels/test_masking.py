"""kernels/masking.py: credentials out of text (an endpoint's answer, a parameter's text)."""

from __future__ import annotations

from nbscale.kernels.masking import HIDDEN, holds_credential, masked, secret_name


def test_what_looks_like_a_credential_is_masked_and_the_rest_kept():
    text = ("401 Unauthorized: Bearer abc.def token=T0k3n Server=db;Pwd=S3cret; "
            "see https://u:pw@host/x; lang=en")
    out = masked(text, sent=["abc.def"])
    assert "abc.def" not in out and "T0k3n" not in out and "S3cret" not in out and "u:pw" not in out
    assert out.startswith("401 Unauthorized: Bearer " + HIDDEN) and out.endswith("lang=en")


def test_holds_credential_tells_connection_strings_from_prose_and_expressions():
    for secret in ["jdbc:postgresql://db/x?user=u&password=pw123", "Server=db;Uid=u;Pwd=pw123",
                   "https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&sig=AbC%2FdEf%2BgHi%3D",
                   "--user bob --password Hunter2xyz", "Authorization: Bearer abc", "Bearer eyJhbGciOi.x.y",
                   '{"apiKey": "k1"}']:
        assert holds_credential(secret), secret
    for plain in ["a run with the password policy of May", "learning_rate=0.1", "Basic statistics",
                  "Bearer of bad news", "monkey = 3", "signal=strong", "y ~ x, design=balanced", "sort_key=date"]:
        assert not holds_credential(plain), plain


def test_secret_names_are_read_word_by_word():
    assert all(map(secret_name, ["DB_PASSWORD", "sasSig", "api-key", "AccessKey", "--password", "token",
                                 "PGPASSWORD", "githubtoken", "secretkey", "AWS_SECRET_ACCESS_KEY", "STRIPE_KEY",
                                 "openai_key", "oauth", "GITHUB_PAT", "db_pw", "MY_SALT", "dsn", "LOGIN_NAME"]))
    assert not any(map(secret_name, ["monkey", "signal", "design", "sort_key", "author", "n_passes", "keyword",
                                     "max_tokens", "tokenizer", "key", "public_key", "key_column", "key_size", "pattern",
                                     "bypass_rate", "n_estimators", "x" * 10_000]))
