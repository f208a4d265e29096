"""Parameter values from the command line or a file, typed by the parameters cell."""

from __future__ import annotations

import pytest
from conftest import make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.ir import Parameter
from nbscale.kernels import params
from nbscale.kernels.errors import ParameterError


def p(name, type_, default):
    return Parameter(name=name, type=type_, default=default)


def test_parse_assignments():
    assert params.parse_assignments(["a=1", " b =x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ParameterError, match="NAME=VALUE"):
        params.parse_assignments(["novalue"])
    with pytest.raises(ParameterError):
        params.parse_assignments(["=3"])
    with pytest.raises(ParameterError, match="'x' is given twice"):  # (the last one silently won)
        params.parse_assignments(["x=1", " x =2"])


@pytest.mark.parametrize("type_, default, text, expected", [
    ("int", 1, "42", 42),
    ("int", 1, "-7", -7),
    ("float", 0.5, "3", 3.0),
    ("float", 0.5, "2.5e-3", 0.0025),
    ("str", "a", "123", "123"),
    ("str", "a", "true", "true"),
    ("str", "a", "[1, 2]", "[1, 2]"),
    ("str", "a", "it's \"q\" {x}", "it's \"q\" {x}"),
    ("list", [], "[1, \"a\", 2.5]", [1, "a", 2.5]),
    ("dict", {}, "{\"k\": [1, 2]}", {"k": [1, 2]}),
])
def test_text_values_are_typed_by_default(type_, default, text, expected):
    value = params.coerce(p("x", type_, default), text)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("text", ["true", "True", "1", "yes", "ON"])
def test_bool_true_spellings(text):
    assert params.coerce(p("flag", "bool", False), text) is True


@pytest.mark.parametrize("text", ["false", "FALSE", "0", "no", "off"])
def test_bool_false_spellings(text):
    assert params.coerce(p("flag", "bool", True), text) is False


@pytest.mark.parametrize("type_, default, text", [
    ("int", 1, "1.5"), ("int", 1, "abc"), ("float", 1.0, "x"), ("bool", True, "maybe"),
    ("list", [], "{\"a\": 1}"), ("dict", {}, "[1]"), ("list", [], "not json"),
])
def test_bad_text_raises_naming_parameter_and_type(type_, default, text):
    with pytest.raises(ParameterError, match=f"'x' is {type_}"):
        params.coerce(p("x", type_, default), text)


def test_typed_values_are_checked():
    assert params.coerce(p("x", "float", 1.0), 2) == 2.0 and isinstance(params.coerce(p("x", "float", 1.0), 2), float)
    assert params.coerce(p("x", "int", 1), 5) == 5
    with pytest.raises(ParameterError, match="'x' is int, got list"):
        params.coerce(p("x", "int", 1), ["a"])
    with pytest.raises(ParameterError, match="'x' is int, got float"):
        params.coerce(p("x", "int", 1), 1.5)
    with pytest.raises(ParameterError, match="'x' is float, got bool"):
        params.coerce(p("x", "float", 1.0), True)


def _nb(tmp_path):
    return compile_notebook(make_notebook(tmp_path, [
        ("n = 3\nrate = 0.1\nname = 'abc'\nverbose = False\nitems = [1, 2]\ncfg = {'a': 1}", ["parameters"]),
        ("total = n * rate", ["step:a"]),
    ]))


def test_resolve_defaults_and_overrides(tmp_path):
    pipeline = _nb(tmp_path)
    assert params.resolve(pipeline, {}) == {"n": 3, "rate": 0.1, "name": "abc", "verbose": False,
                                            "items": [1, 2], "cfg": {"a": 1}}
    values = params.resolve(pipeline, {"n": "7", "rate": "2", "name": "007", "verbose": "yes",
                                       "items": "[3]", "cfg": '{"b": 2}'})
    assert values == {"n": 7, "rate": 2.0, "name": "007", "verbose": True, "items": [3], "cfg": {"b": 2}}


def test_unknown_parameter_lists_known_ones(tmp_path):
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) nn; parameters: n, rate, name"):
        params.resolve(_nb(tmp_path), {"nn": "1"})


def test_no_parameters_cell(tmp_path):
    pipeline = compile_notebook(make_notebook(tmp_path, [("x = 1", ["step:a"])]))
    with pytest.raises(ParameterError, match="no parameters cell"):
        params.resolve(pipeline, {"x": "1"})


def test_parameters_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("n: 9\nrate: 1\nname: '12'\nverbose: true\nitems: [4, 5]\n")
    given = params.load_file(path)
    assert params.resolve(_nb(tmp_path), given) == {"n": 9, "rate": 1.0, "name": "12", "verbose": True,
                                                    "items": [4, 5], "cfg": {"a": 1}}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert params.load_file(empty) == {}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ParameterError, match="mapping"):
        params.load_file(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("n: 1.5\n")
    with pytest.raises(ParameterError, match="'n' is int"):
        params.resolve(_nb(tmp_path), params.load_file(wrong))


@pytest.mark.parametrize("data, said", [
    (b"x: [1\n", r"params.yaml, line 2, column 1: expected ',' or ']'"),
    (b'x: !!python/object/apply:os.system ["touch PWNED"]\n', r"line 1, column 4: could not determine a constructor"),
    ("x: 1 # caf\u00e9\n".encode("latin-1"), r"params.yaml: not UTF-8 text \(byte 0xe9 at offset 10\)"),
    (b"1: 2\n", r"params.yaml: a parameter's name is text, not 1"),
    (b"x: 1\ny: 2\nx: 3\n", r"params.yaml, line 3, column 1: 'x' is given twice"),
    (b"cfg: {a: 1, a: 2}\n", r"line 1, column 13: 'a' is given twice"),
])
def test_a_parameters_file_that_is_not_a_mapping_of_names_is_refused_saying_where(tmp_path, monkeypatch, data, said):
    monkeypatch.chdir(tmp_path)  # (where a constructed `os.system` would touch its file)
    path = tmp_path / "params.yaml"
    path.write_bytes(data)
    with pytest.raises(ParameterError, match=said):
        params.load_file(path)
    assert not (tmp_path / "PWNED").exists()


def test_a_parameters_file_may_merge_a_mapping_and_override_its_keys(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("base: &b {a: 1, b: 2}\ncfg:\n  <<: *b\n  a: 3\n'1': text\n")
    assert params.load_file(path) == {"base": {"a": 1, "b": 2}, "cfg": {"a": 3, "b": 2}, "1": "text"}


def test_a_string_in_a_parameters_file_stays_a_string_for_a_parameter_of_no_type(tmp_path):
    """papermill's `-f` hands a YAML string to the notebook as it is; `-p` text is read."""
    pipeline = compile_notebook(make_notebook(tmp_path, [("tag = None\nn = 3", ["parameters"]),
                                                          ("t = (tag, n)", ["step:a"])]))
    path = tmp_path / "params.yaml"
    path.write_text("tag: '5'\nn: '7'\n")
    values = params.resolve(pipeline, params.load_file(path))
    assert values == {"tag": "5", "n": 7} and type(values["tag"]) is str  # (n is an int: its text is read)
    path.write_text("tag: [1, '2']\n")
    assert params.resolve(pipeline, params.load_file(path))["tag"] == [1, "2"]
    assert params.resolve(pipeline, params.parse_assignments(["tag=5"]))["tag"] == 5


@pytest.mark.parametrize("given, said", [
    ({"rate": float("inf")}, "'rate' must be a finite number, got inf"),
    ({"rate": "nan"}, "'rate' must be a finite number, got nan"),  # text read as a float
    ({"layers": [1, float("-inf")]}, "'layers' must be a finite number"),
    ({"label": "a\ud800b"}, "'label' holds text that is not valid Unicode ('\\ud800' at position 1)"),
    ({"opts": {"\udcff": 1}}, "'opts' holds text that is not valid Unicode"),
])
def test_values_no_file_can_hold_are_refused(tmp_path, given, said):
    nb = make_notebook(tmp_path, [("rate = 0.5\nlabel = 'x'\nlayers = [1]\nopts = {}", ["parameters"]),
                                  ("y = rate", ["step:a"])])
    with pytest.raises(ParameterError) as err:
        params.resolve(compile_notebook(nb), given)
    assert said in str(err.value)


def test_a_yaml_date_or_bytes_in_a_parameters_file_is_refused_on_every_engine(tmp_path):
    # kfp-local failed with a traceback ("Object of type date is not JSON serializable"), and the
    # local engine gave the step a datetime.date
    nb = make_notebook(tmp_path, [("opt = None\nopts = []", ["parameters"]), ("y = opt", ["step:a"])])
    pipeline = compile_notebook(nb)
    for text, kind in (("opt: 2020-01-01\n", "date"), ("opts: [1, 2020-01-01T10:00:00]\n", "datetime"),
                       ("opt: !!binary aGk=\n", "bytes")):
        path = tmp_path / "p.yaml"
        path.write_text(text)
        with pytest.raises(ParameterError, match=f"holds {kind} .* which is no JSON value .* give it as text"):
            params.resolve(pipeline, params.load_file(path))
    path.write_text("opt: '2020-01-01'\n")
    assert params.resolve(pipeline, params.load_file(path))["opt"] == "2020-01-01"


def test_recorded_values_hide_what_may_be_a_credential_and_keep_the_rest():
    kept = params.recorded({"api_token": "abc", "db_pw": 7, "dsn": "postgres://u:pw@db/x", "alpha": 0.5,
                            "layers": [64, 32] * 20, "name": "iris", "maybe": None})
    assert {n for n, v in kept.items() if str(v).startswith("hidden:")} == {"api_token", "db_pw", "dsn"}
    assert kept["layers"] == [64, 32] * 20 and kept["name"] == "iris" and kept["maybe"] is None


def test_hidden_texts_are_the_values_a_record_hides_not_the_keys_around_them():
    token = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
    values = {"api_token": "PARAMSECRET", "n": 3, "title": "password policy",
              "db": {"user": "analyst", "auth": {"password": "NESTEDPW9", token: 1}},
              "env": [{"name": "DB_PASSWORD", "value": "EnvPw"}], "hosts": ["postgres://u:pw@db/x", "plain"]}
    assert params.hidden_texts(values) == {"api_token": {"PARAMSECRET"}, "db": {"NESTEDPW9", token, "1"},
                                           "env": {"EnvPw"}, "hosts": {"postgres://u:pw@db/x"}}
    assert params.hidden_texts({"n_passes": 3, "author": "ann"}) == {}


def test_recorded_values_keep_names_that_only_contain_a_secret_looking_word():
    shown = {"n_passes": 3, "author": "ann", "keyword": "churn", "max_tokens": 512, "tokenizer": "bert-base",
             "design": "ab", "sort_key": "date", "signal": "strong"}
    secret = {"api_key": "k1", "PGPASSWORD": "p", "openai_key": "k2", "db_pw": "p2", "session": "s"}
    kept = params.recorded({**shown, **secret})
    assert {n: kept[n] for n in shown} == shown
    assert all(kept[n].startswith("hidden:") for n in secret)


def test_recorded_values_hide_a_credential_nested_at_any_depth_and_keep_the_rest():
    db = {"user": "u", "password": "hunter2pw", "port": 5432}
    config = {"db": db, "headers": {"Authorization": "Bearer s3cr3t", "Accept": "json"},
              "hosts": [{"url": "postgres://u:pw@db/x"}, "ghp_16C7e42F292c6912E7710c838347Ae178B4a", 3],
              "auth": {"user": "u", "pin": 1234}, "ghp_16C7e42F292c6912E7710c838347Ae178B4b": 1}
    kept = params.recorded({"config": config})["config"]
    assert kept["db"]["user"] == "u" and kept["db"]["port"] == 5432 and kept["headers"]["Accept"] == "json"
    assert kept["db"]["password"].startswith("hidden:") and kept["headers"]["Authorization"].startswith("hidden:")
    assert kept["auth"].startswith("hidden:"), "all of a value under a secret-looking key"
    assert kept["hosts"][0]["url"].startswith("hidden:") and kept["hosts"][1].startswith("hidden:")
    assert kept["hosts"][2] == 3
    assert "ghp_16C7e42F292c6912E7710c838347Ae178B4b" not in str(kept), "a token as a dict key"
    again = params.recorded({"config": {**config, "db": {**db}}})["config"]
    other = params.recorded({"config": {**config, "db": {**db, "password": "other"}}})["config"]
    assert again["db"]["password"] == kept["db"]["password"] != other["db"]["password"], "still compared"
    deep = params.recorded({"x": _nested({"token": "t"}, 990)})["x"]
    assert _innermost(deep, 990)["token"].startswith("hidden:"), "as deep as JSON nests"


def test_recorded_values_hide_credentials_named_beside_them_or_inside_their_text():
    # the name is a sibling (an env list, a header pair, a flag) or part of the text itself
    kept = params.recorded({
        "env": [{"name": "DB_PASSWORD", "value": "S3cretEnvPw"}, {"name": "MODE", "value": "fast"}],
        "headers": [["Authorization", "Bearer S3cretHdr"], ["Accept", "json"]],
        "args": ["--password", "S3cretArgValue", "--epochs", "3"],
        "jdbc_url": "jdbc:postgresql://db/x?user=u&password=S3cretJdbcPw",
        "odbc": "Server=db;Uid=u;Pwd=S3cretOdbcPw", "columns": ["key", "value", "score"],
        "title": "a run with the password policy of May", "accounts": ["user", "bob", "password", "S3cretFlat"],
        "sas": "https://a.blob.core.windows.net/c/f.csv?sv=2022-11-02&sig=S3cretSig%2Fx",
        "cli": "--user bob --password S3cretCli", "heading": "Basic statistics", "query": "signal=strong"})
    assert "S3cret" not in str(kept)
    assert kept["env"][0]["name"] == "DB_PASSWORD" and kept["env"][1] == {"name": "MODE", "value": "fast"}
    assert kept["headers"][1] == ["Accept", "json"] and kept["args"][2:] == ["--epochs", "3"]
    assert kept["columns"] == ["key", "value", "score"] and kept["title"] == "a run with the password policy of May"
    assert kept["heading"] == "Basic statistics" and kept["query"] == "signal=strong" and kept["accounts"][:3] == [
        "user", "bob", "password"]


def _nested(value, depth):
    for _ in range(depth):
        value = [value]
    return value


def _innermost(value, depth):
    for _ in range(depth):
        (value,) = value
    return value


def test_a_run_gets_a_nested_credential_but_records_only_its_digest(tmp_path):
    """A run on the local engine: the step reads the real password, the cache tells two passwords
    apart, and nothing under .nbscale (run store, lineage, artifacts) holds one."""
    from nbscale.kernels.runner import RunOptions, default_run_store, run_notebook

    nb = make_notebook(tmp_path, [('db = {"user": "", "password": ""}', ["parameters"]),
                                  ('n = float(len(db["password"]))', ["step:use"]), ("n", ["metrics"])])
    runs = []
    for secret in ("hunter2pw", "OTHERSECRETPW", "OTHERSECRETPW"):
        result = run_notebook(nb, {"db": {"user": "u", "password": secret}}, options=RunOptions(engine="local"))
        assert result.ok and result.metrics == {"n": float(len(secret))}
        runs.append(default_run_store(nb).get_run(result.run_id))
    assert [run["steps"][0]["status"] for run in runs] == ["succeeded", "succeeded", "cached"], "keyed by the value"
    recorded = [run["parameters"]["db"] for run in runs]
    assert all(db["user"] == "u" and db["password"].startswith("hidden:") for db in recorded)
    kept = b"".join(p.read_bytes() for p in (tmp_path / ".nbscale").rglob("*") if p.is_file())
    assert b"hunter2pw" not in kept and b"OTHERSECRETPW" not in kept


@pytest.mark.parametrize("kind, default, given", [
    ("int", 1, "0x" + "f" * 5000), ("none", None, "0x" + "f" * 5000), ("int", 1, "9" * 5000),
    ("int", 1, 10 ** 5000), ("str", "a", [10 ** 5000]), ("list", [], [1, {"k": 10 ** 5000}])],
    ids=["hex-text", "untyped-hex", "decimal-text", "int", "in-a-list-for-str", "nested"])
def test_an_int_too_long_to_write_as_text_is_refused_with_a_short_message(kind, default, given):
    param = Parameter(name="n", type=kind, default=default, cell=0, line=1)
    with pytest.raises(ParameterError) as raised:
        params.checked("n", params.coerce(param, given))
    assert "parameter 'n'" in str(raised.value) and len(str(raised.value)) < 200
