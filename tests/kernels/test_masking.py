"""kernels/masking.py: credentials out of text (an endpoint's answer, a parameter's text)."""

from __future__ import annotations

from nbscale.kernels import masking
from nbscale.kernels.masking import HIDDEN, holds_credential, masked, secret_name


def test_what_looks_like_a_credential_is_masked_and_the_rest_kept():
    text = ("401 Unauthorized: Bearer abc.def token=T0k3n Server=db;Pwd=S3cret; "
            "see https://u:pw@host/x; lang=en")
    out = masked(text, sent=["abc.def"])
    assert "abc.def" not in out and "T0k3n" not in out and "S3cret" not in out and "u:pw" not in out
    assert out.startswith("401 Unauthorized: Bearer " + HIDDEN) and out.endswith("lang=en")


def test_a_secret_flag_and_a_session_cookie_are_masked_in_an_answer():
    out = masked("keytool error: -storepass hunter2 -keypass hunter3 -v 2; GET /api?PHPSESSID=k3j4h5g6f7d8")
    assert "hunter" not in out and "k3j4h5g6f7d8" not in out and "-v 2" in out and "-storepass " + HIDDEN in out


def test_holds_credential_tells_connection_strings_from_prose_and_expressions():
    for secret in ["jdbc:postgresql://db/x?user=u&password=pw123", "Server=db;Uid=u;Pwd=pw123",
                   "https://acct.blob.core.windows.net/c/f.csv?sv=2022-11-02&sig=AbC%2FdEf%2BgHi%3D",
                   "--user bob --password Hunter2xyz", "Authorization: Bearer abc", "Bearer eyJhbGciOi.x.y",
                   '{"apiKey": "k1"}']:
        assert holds_credential(secret), secret
    for plain in ["a run with the password policy of May", "learning_rate=0.1", "Basic statistics",
                  "Bearer of bad news", "monkey = 3", "signal=strong", "y ~ x, design=balanced", "sort_key=date"]:
        assert not holds_credential(plain), plain


def test_a_name_is_secret_unless_its_secret_looking_part_is_known_to_mean_something_else():
    assert all(map(secret_name, [
        "DB_PASSWORD", "sasSig", "api-key", "AccessKey", "--password", "token", "key", "tokens", "PGPASSWORD",
        "githubtoken", "secretkey", "AWS_SECRET_ACCESS_KEY", "STRIPE_KEY", "STRIPE_KEY_PROD", "FERNET_KEY_2",
        "openai_key", "stripekey", "oauth", "GITHUB_PAT", "db_pw", "MY_SALT", "dsn", "LOGIN_NAME", "SSHPASS",
        "JSESSIONID", "AZURE_STORAGE_CONNECTION_STRING", "API_KEYS", "API_TOKENS", "PASSCODE", "dbcreds",
        "x" * 300 + "_password"]))
    assert not any(map(secret_name, [
        "monkey", "signal", "design", "sort_key", "author", "n_passes", "keyword", "max_tokens", "max_new_tokens",
        "tokenizer", "public_key", "PRNGKey", "key_column", "key_size", "pad_token_id", "token_type_ids",
        "sig_level", "pin_memory", "session_length", "access_level", "bypass_rate", "n_connected_components",
        "uncertainty", "pattern", "n_estimators", "x" * 10_000]))


def test_kept_values_leave_out_secrets_by_name_and_by_what_plain_values_hold():
    import numpy as np

    big = ["ghp_" + "a1" * 20] * (masking.KEPT_ITEMS_LOOKED_AT + 1)
    values = {"api_key": 1234, "token": "abc", "session": object(), "auth": ("me", "pw"), "dsn": None,
              "url": "postgresql://me:pw@db/x", "cfg": {"db": {"password": "hunter22"}},
              "args": ["--password", "hunter22"], "X": np.array(["ghp_" + "a1" * 20]), "rows": [1, 2.5, None, "a"],
              "note": "kept", "big": big, "frames": [np.zeros(3)], "tokens": ["the", "cat"], "keys": {"a": 1}}
    kept = masking.kept_values(values)
    assert set(kept) == {"dsn", "X", "rows", "note", "big", "frames", "tokens", "keys"}
    text = "Bearer ghp_" + "a1" * 20 + " " + "x" * masking.KEPT_CHARACTERS_LOOKED_AT  # (judged by name)
    assert masking.kept_values({"raw": text, "short": text[:60]}).keys() == {"raw"}
    assert kept["rows"] is values["rows"]  # (the values themselves: nothing is copied)
