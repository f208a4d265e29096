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


# Credentials known by their shape alone, under names that say nothing: they were written into
# compiled pipelines, as a `/` or `-` split the run of letters and digits the token rule needs
SHAPES = [
    ("aws", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("aws", "wJalrXUtnFEMI+K7MDENG+bPxRfiCYEXAMPLEKEY"),
    ("aws_id", "AKIAIOSFODNNEXAMPLEX"),
    ("cmd", "mysql -uroot -phunter2 prod"),
    ("cmd", "mysqldump -h db -u me -pS3cret shop > shop.sql"),
    ("cmd", "sshpass -p hunter2 ssh me@host"),
    ("cmd", "psql --password=hunter2 -h db"),
    ("cmd", "PGPASSWORD=hunter2 psql -h db"),
    ("hook", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("hook", "https://discord.com/api/webhooks/123456789/abc-DEF_ghi"),
    ("pem", "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"),
    ("pem", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbg==\n-----END OPENSSH PRIVATE KEY-----"),
    ("pem", "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----"),
    ("gh", "gho_" + "abcdEFGH" * 5),
    ("gh", "github_pat_" + "abcdEFGH_" * 5),
    ("gl", "glpat-abcdEFGH-ijklMNOP_qr"),
    ("slack", "xoxb-123-456-abcDEF"),
    ("slack", "xoxp-abcdefghij"),
    ("openai", "sk-proj-abcDEF_ghi-jkl_mno-pq1"),
    ("anthropic", "sk-ant-api03-abcDEF_ghi-jkl_mno-pq1"),
    ("stripe", "sk_live_abcdefghijklmnop"),
    ("google", "AIzaSyD-abcdefghijklmnopqrstuvwxyz_12345"),
]
# ordinary values a false alarm would turn into required inputs
ORDINARY = [
    ("path", "data/clean.csv"), ("url", "https://hooks.example.com/services/report"), ("model", "gpt-4o-mini"),
    ("model", "meta-llama/Llama-2-7b-hf"), ("package", "sk-learn"), ("package", "mysql-connector-python"),
    ("date", "2024-01-31"), ("file", "model_3f2a9c1b.pkl"), ("word", "hello"), ("count", 40),
    ("path", "Users/AdaLovelace/Documents/Data/Run2024"),  # 40 characters of base64's alphabet with a `/`
    ("path", "s3://bucket/models/resnet50/checkpoints/e10"), ("cmd", "mysql -u root -p prod"),
    ("cmd", "docker run -p8080:80 app"), ("cmd", "ssh -p2222 host"), ("pem", "-----BEGIN CERTIFICATE-----"),
    ("hook", "https://hooks.slack.com/"), ("branch", "ghp_fix"), ("name", "sk-learn-pipeline-version-2"),
]


@pytest.mark.parametrize("name, value", SHAPES)
def test_a_credential_of_a_well_known_shape_is_one_whatever_its_name(name, value):
    assert may_be_credential(name, value)
    assert may_be_credential(name, {"x": [value]})  # at any depth


@pytest.mark.parametrize("name, value", ORDINARY)
def test_an_ordinary_value_is_no_credential_of_a_well_known_shape(name, value):
    assert not may_be_credential(name, value)


@pytest.mark.parametrize("name, value", CREDENTIALS)
def test_what_may_be_a_credential(name, value):
    assert may_be_credential(name, value)


@pytest.mark.parametrize("name, value", PLAIN)
def test_what_is_no_credential(name, value):
    # a false alarm costs a default: the pipeline would need the value at submit
    assert not may_be_credential(name, value)


@pytest.mark.parametrize("name, value", CREDENTIALS + SHAPES + ORDINARY
                         + [p for p in PLAIN if p[1] not in (None, "", True, {})])
def test_the_compiler_and_the_run_store_agree(name, value):
    # the run time's rule (kernels/params.recorded) is the reference: what it keeps only as a
    # digest, no compiled pipeline may hold (the compiler cannot import it, so this checks the copy)
    from nbscale.kernels.params import recorded

    assert may_be_credential(name, value) == (recorded({name: value})[name] != value)
