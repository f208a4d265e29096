"""compiler/credentials.py: which parameter defaults may be credentials (none goes into a pipeline)."""

import pytest

from nbscale.compiler.credentials import may_be_credential

CREDENTIALS = [
    ("api_token", "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5"),
    ("db_url", "postgresql://admin:hunter2@db.example.com/prod"),
    ("password", "Tr0ub4dor&3"),
    ("PGPASSWORD", "x"),
    ("sasSig", "abc"),
    ("pin", 1234),
    ("key", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("header", "Bearer abc.def-123"),
    ("header", "Authorization: xyz"),
    ("conn", "Server=db;Pwd=x"),
    ("query", "user=bob password=hunter2"),
    ("cmd", "psql --password hunter2"),
    ("settings", {"db": {"password": "x"}}),
    ("env", [{"name": "DB_PASSWORD", "value": "x"}]),
    ("argv", ["--password", "x"]),
    ("hosts", {"https://u:pw@host": 1}),
    ("credentials", {"user": "u"}),
    ("tokens", ["a"]),
]
PLAIN = [
    ("max_tokens", 256), ("sort_key", "id"), ("n_passes", 3), ("author", "Ada"), ("keyword", "x"),
    ("title", "Basic statistics"), ("query", "signal=strong"), ("url", "https://example.com/data.csv"),
    ("api_token", None), ("password", ""), ("use_auth", True), ("credentials", {}), ("model", "rf"),
    ("layers", [1, 2, 3]), ("config", {"lr": 0.1, "name": "run"}), ("pad_token_id", 0),
]


@pytest.mark.parametrize("name, value", CREDENTIALS)
def test_what_may_be_a_credential(name, value):
    assert may_be_credential(name, value)


@pytest.mark.parametrize("name, value", PLAIN)
def test_what_is_no_credential(name, value):
    # a false alarm costs a default: the pipeline would need the value at submit
    assert not may_be_credential(name, value)


@pytest.mark.parametrize("name, value", CREDENTIALS + [p for p in PLAIN if p[1] not in (None, "", True, {})])
def test_the_compiler_and_the_run_store_agree(name, value):
    # the run time's rule (kernels/params.recorded) is the reference: what it keeps only as a
    # digest, no compiled pipeline may hold (the compiler cannot import it, so this checks the copy)
    from nbscale.kernels.params import recorded

    assert may_be_credential(name, value) == (recorded({name: value})[name] != value)
