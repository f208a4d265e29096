"""Tests for nbscale.kernels.fingerprints: fingerprints of real recordings, checked after real changes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import types
import uuid

import numpy as np
import pytest
from conftest import install_library, rewrite_keeping_mtime

from nbscale.kernels import fingerprints
from nbscale.kernels.dependencies import record
from nbscale.kernels.fingerprints import (
    CONTENT,
    CWD,
    DISTRIBUTION,
    ENV,
    FILE,
    FINGERPRINT,
    GREW,
    MISSING,
    MODULE,
    PRODUCT,
    Change,
    as_left,
    check,
    env_value,
    same_stat,
)


@pytest.fixture
def folder(tmp_path):
    nb = tmp_path / "nb"
    nb.mkdir()
    (nb / "data.csv").write_text("a,b\n1,2\n")
    return nb


def recorded(folder, body) -> dict:
    """The fingerprint of `body()` run as a step in `folder`, through JSON as it is stored."""
    with record(str(folder)) as rec:
        body()
    return json.loads(json.dumps(rec.fingerprint()))


def reads_data(folder):
    return recorded(folder, lambda: (folder / "data.csv").read_text())


def texts(changes: list[Change]) -> list[str]:
    return [c.text for c in changes]


def set_mtime(path, mtime_ns: int) -> None:
    os.utime(path, ns=(mtime_ns, mtime_ns))


# --- files ---------------------------------------------------------------------------------------


def test_nothing_changed_means_no_change(folder):
    fp = reads_data(folder)
    assert check(fp, str(folder)) == []


def test_a_changed_file_is_a_change(folder):
    fp = reads_data(folder)
    (folder / "data.csv").write_text("a,b\n1,3\n4,5\n")
    changes = check(fp, str(folder))
    assert texts(changes) == ["data.csv changed (content)"]
    assert (changes[0].kind, changes[0].name, changes[0].what) == (FILE, "data.csv", CONTENT)


def test_touch_without_a_content_change_is_no_change(folder):
    fp = reads_data(folder)
    set_mtime(folder / "data.csv", fp["files_read"]["data.csv"]["mtime_ns"] + 5_000_000_000)
    assert check(fp, str(folder)) == []


def test_another_file_of_the_same_size_and_time_is_compared_by_content(folder, tmp_path):
    # a copy of the project sharing its store: its data.csv is another file, with equal size and time
    fp = reads_data(folder)
    for name, content in (("other", (folder / "data.csv").read_text().replace("1", "9")),
                          ("same", (folder / "data.csv").read_text())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.csv").write_text(content)
        set_mtime(tmp_path / name / "data.csv", fp["files_read"]["data.csv"]["mtime_ns"])
    assert texts(check(fp, str(tmp_path / "other"))) == ["data.csv changed (content)"]
    assert check(fp, str(tmp_path / "same")) == []  # the same content: it holds


def test_same_mtime_but_another_size_is_a_change(folder):
    fp = reads_data(folder)
    (folder / "data.csv").write_text("a,b\n1,2\n3,4\n")
    set_mtime(folder / "data.csv", fp["files_read"]["data.csv"]["mtime_ns"])
    assert texts(check(fp, str(folder))) == ["data.csv changed (content)"]


def test_a_change_keeping_size_and_mtime_is_seen_by_its_ctime(folder):
    # `cp -p`, `rsync -t` or `os.utime` can set a file's old mtime back; nothing sets its ctime back
    fp = reads_data(folder)
    rewrite_keeping_mtime(folder / "data.csv", "a,b\n9,9\n")
    assert texts(check(fp, str(folder))) == ["data.csv changed (content)"]


def test_a_fingerprint_without_a_ctime_is_compared_by_content(folder):
    fp = reads_data(folder)
    del fp["files_read"]["data.csv"]["ctime_ns"]  # taken before ctimes were kept
    assert check(fp, str(folder)) == []
    rewrite_keeping_mtime(folder / "data.csv", "a,b\n9,9\n")
    assert texts(check(fp, str(folder))) == ["data.csv changed (content)"]


def test_a_digest_taken_in_this_process_is_not_reused_for_a_file_rewritten_under_its_old_mtime(folder):
    from nbscale.kernels.fingerprints import DIGEST, _digest

    path = folder / "data.csv"
    before = _digest(str(path), os.stat(path), DIGEST)
    rewrite_keeping_mtime(path, "a,b\n9,9\n")
    assert _digest(str(path), os.stat(path), DIGEST) != before


def test_same_size_new_mtime_is_compared_by_content(folder):
    fp = reads_data(folder)
    (folder / "data.csv").write_text("a,b\n9,9\n")
    set_mtime(folder / "data.csv", fp["files_read"]["data.csv"]["mtime_ns"] + 1_000_000_000)
    assert texts(check(fp, str(folder))) == ["data.csv changed (content)"]


def test_a_file_written_between_its_stat_and_its_digest_gets_no_digest(folder):
    # else the digest of the new content would be kept beside the size and mtime of the old one,
    # and a later check, finding the mtime changed, would compare contents and call the new data old
    from nbscale.kernels.fingerprints import DIGEST, _digest

    path = folder / "data.csv"
    seen = os.stat(path)
    path.write_text("a,b\n1,2\n3,4\n")
    assert _digest(str(path), seen, DIGEST) is None
    assert _digest(str(path), os.stat(path), DIGEST).startswith(DIGEST + ":")


@contextlib.contextmanager
def coarse_clock(monkeypatch, path, frozen):
    """`os.stat` and `os.fstat` of `path` show `frozen`, as a kernel whose file clock ticks once a
    jiffy (Linux before 6.13) shows a file rewritten with as many bytes in the tick it last changed."""
    real_stat, real_fstat = os.stat, os.fstat
    inode = frozen.st_ino

    def stat(target, *args, **kwargs):
        st = real_stat(target, *args, **kwargs)
        return frozen if st.st_ino == inode else st

    def fstat(fd):
        st = real_fstat(fd)
        return frozen if st.st_ino == inode else st

    with monkeypatch.context() as patched:
        patched.setattr(os, "stat", stat)
        patched.setattr(os, "fstat", fstat)
        yield


def test_a_file_rewritten_in_the_tick_its_state_was_taken_is_compared_by_content(folder, monkeypatch):
    monkeypatch.setattr(fingerprints, "RACY_NS", 3600 * 10**9)  # "just changed": whatever the machine's load
    path = folder / "data.csv"
    fp = reads_data(folder)
    assert fp["files_read"]["data.csv"]["racy"] is True
    frozen = os.stat(path)
    path.write_text("a,b\n9,9\n")  # as many bytes, in the same tick: the same stat
    with coarse_clock(monkeypatch, path, frozen):
        assert texts(check(fp, str(folder))) == ["data.csv changed (content)"]
        path.write_text("a,b\n1,2\n")  # back as it was read
        assert check(fp, str(folder)) == []


def test_a_digest_of_a_file_that_had_just_changed_is_not_remembered_by_its_stat(folder, monkeypatch):
    from nbscale.kernels.fingerprints import DIGEST, _digest

    monkeypatch.setattr(fingerprints, "RACY_NS", 3600 * 10**9)
    path = folder / "data.csv"
    frozen = os.stat(path)
    before = _digest(str(path), frozen, DIGEST)
    path.write_text("a,b\n9,9\n")
    with coarse_clock(monkeypatch, path, frozen):
        assert _digest(str(path), frozen, DIGEST) not in (before, None)


def test_a_file_that_changed_well_before_its_state_keeps_the_one_stat_check(folder):
    path = folder / "data.csv"
    time.sleep(0.03)  # longer ago than a file clock's tick
    fp = reads_data(folder)
    assert "racy" not in fp["files_read"]["data.csv"]
    assert same_stat(os.stat(path), fp["files_read"]["data.csv"])


@pytest.mark.parametrize("ago_ns, whole_seconds, expected", [
    (5_000_000, False, True),  # within a jiffy of the file's change
    (30_000_000, False, False),
    (1, True, True),  # a file system of whole-second times: 1 to 2 s ago, within its tick
    (3, True, False),
])
def test_a_file_is_racy_within_a_tick_of_its_file_systems_clock(ago_ns, whole_seconds, expected):
    now = time.time_ns()
    ctime = (now // 10**9 - ago_ns) * 10**9 if whole_seconds else now - ago_ns
    assert fingerprints.racy(types.SimpleNamespace(st_mtime_ns=ctime - 10**9, st_ctime_ns=ctime)) is expected


def test_a_file_whose_mtime_was_set_ahead_is_racy_by_its_ctime_only_and_its_state_waits_no_longer(folder, monkeypatch):
    path = folder / "big.bin"
    path.write_bytes(b"x" * 1000)
    ahead = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(ahead, ahead))  # `touch -d` an hour ahead: a change later still shows in the ctime
    monkeypatch.setattr(fingerprints, "SETTLE_BYTES", 1000)
    started = time.monotonic()
    state = fingerprints.file_state(str(path))
    assert time.monotonic() - started < 5  # at most a tick, not until the mtime
    assert "racy" not in state and state["mtime_ns"] == ahead
    time.sleep(0.03)
    assert not fingerprints.racy(os.stat(path))


def test_a_file_the_step_only_looked_at_the_stat_of_is_compared_by_that_stat_even_as_it_just_changed(
        folder, monkeypatch):
    # what the step saw of it (`glob` found it, `e.stat().st_mtime`) is its stat: a stat that shows no
    # change shows that the step would see none
    monkeypatch.setattr(fingerprints, "RACY_NS", 3600 * 10**9)
    state = fingerprints.file_state(str(folder / "data.csv"), digest=False)
    assert state["digest"] is None and "racy" not in state


def test_the_state_of_a_large_file_that_just_changed_waits_for_the_tick_to_end_and_keeps_the_one_stat_check(
        folder, monkeypatch):
    # compared by content at every later check, it would be read whole each time
    monkeypatch.setattr(fingerprints, "RACY_NS", 300_000_000)
    path = folder / "big.bin"
    monkeypatch.setattr(fingerprints, "SETTLE_BYTES", 1000)
    path.write_bytes(b"x" * 999)  # smaller: taken at once, compared by content later
    started = time.monotonic()
    assert fingerprints.file_state(str(path))["racy"] is True
    assert time.monotonic() - started < 0.15
    path.write_bytes(b"x" * 1000)
    state = fingerprints.file_state(str(path))
    assert time.monotonic() - started >= 0.25
    assert "racy" not in state and same_stat(os.stat(path), state)
    assert state["digest"] == fingerprints.file_state(str(path))["digest"]


def test_a_missing_file_is_a_change_and_a_new_one_too(folder):
    def step():
        (folder / "data.csv").read_text()
        try:
            open(folder / "later.csv")  # absent: the step goes on without it
        except FileNotFoundError:
            pass

    fp = recorded(folder, step)
    (folder / "data.csv").unlink()
    (folder / "later.csv").write_text("now here")
    assert sorted(texts(check(fp, str(folder)))) == ["data.csv is missing", "later.csv appeared"]


def test_products_missing_or_changed_are_changes(folder):
    def step():
        (folder / "model.bin").write_bytes(b"weights")
        (folder / "report.txt").write_text("ok")

    fp = recorded(folder, step)
    assert set(fp["files_written"]) == {"model.bin", "report.txt"}
    (folder / "model.bin").unlink()
    (folder / "report.txt").write_text("edited by hand")
    changes = check(fp, str(folder))
    assert sorted(texts(changes)) == ["model.bin (written by the step) is missing",
                                      "report.txt (written by the step) changed (content)"]
    assert {c.kind for c in changes} == {PRODUCT} and MISSING in {c.what for c in changes}


def test_a_product_or_a_file_the_step_appended_to_that_grew_is_told_apart(folder):
    # growth is decided by the run, from the steps after it (`as_left`): a later step's append, or
    # another hand's
    (folder / "run.log").write_text("earlier\n")

    def step():
        (folder / "report.txt").write_text("header\n")
        with open(folder / "run.log", "a") as log:
            log.write("step\n")

    fp = recorded(folder, step)
    assert set(fp["files_written"]) == {"report.txt"} and set(fp["appended"]) == {"run.log"}
    assert fp["appended"]["run.log"]["digest"] is None  # (by its stat: a log may be long)
    assert check(fp, str(folder)) == []
    with open(folder / "report.txt", "a") as report, open(folder / "run.log", "a") as log:
        report.write("garbage\n")
        log.write("more\n")
    changes = check(fp, str(folder))
    assert {(c.kind, c.name, c.what) for c in changes} == {(PRODUCT, "report.txt", GREW), (FILE, "run.log", GREW)}
    (folder / "run.log").unlink()
    (folder / "run.log").write_text("new\n")  # written anew: the step appends to it again
    assert [(c.name, c.what) for c in check(fp, str(folder)) if c.name == "run.log"] == [("run.log", CONTENT)]
    (folder / "run.log").unlink()  # gone (a clean-up): nothing
    assert [c.name for c in check(fp, str(folder))] == ["report.txt"]


def test_as_left_is_the_file_as_one_of_the_steps_left_it(folder):
    fp = recorded(folder, lambda: (folder / "report.txt").write_text("header\n"))
    assert as_left("report.txt", str(folder), [{}, fp]) and not as_left("absent.txt", str(folder), [fp])
    with open(folder / "report.txt", "a") as report:
        report.write("more\n")
    assert not as_left("report.txt", str(folder), [fp])


def test_a_listing_that_changed_is_a_change(folder):
    fp = recorded(folder, lambda: sorted(folder.glob("*.csv")))
    assert check(fp, str(folder)) == []
    (folder / "more.csv").write_text("x")
    assert texts(check(fp, str(folder))) == ["the listing of . changed"]


def test_a_file_made_a_folder_of_the_same_name_changes_a_walks_listing(folder):
    """`os.walk` goes into a folder and lists a file: the same names, walked otherwise."""
    (folder / "data").mkdir()
    (folder / "data" / "b").write_text("x")
    fp = recorded(folder, lambda: sorted(os.path.join(r, f) for r, _, fs in os.walk(folder / "data") for f in fs))
    assert check(fp, str(folder)) == []
    (folder / "data" / "b").unlink()
    (folder / "data" / "b").mkdir()
    (folder / "data" / "b" / "c.txt").write_text("2")
    assert texts(check(fp, str(folder))) == ["the listing of data changed"]


def test_a_listing_recorded_by_its_names_only_is_compared_by_them(folder):
    """A fingerprint an earlier nbscale recorded (names only, `blake2b:`) still holds: no step runs
    again for the upgrade alone."""
    fp = recorded(folder, lambda: os.listdir(folder))
    assert fp["directories"] and all(d.startswith(fingerprints.LISTING + ":") for d in fp["directories"].values())
    names = "\0".join(sorted(os.listdir(folder))).encode()
    names_only = "blake2b:" + hashlib.blake2b(names, digest_size=16).hexdigest()
    fp["directories"] = dict.fromkeys(fp["directories"], names_only)
    assert check(fp, str(folder)) == []
    (folder / "more.csv").write_text("x")
    assert "the listing of . changed" in texts(check(fp, str(folder)))


def test_a_moved_notebook_folder_still_holds(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(folder)
    fp = recorded(folder, lambda: open("data.csv").read())  # named relative to the notebook
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    assert check(fp, str(moved)) == []


def test_a_file_named_absolutely_is_checked_where_the_code_names_it(folder, tmp_path):
    # a copy of the project (its `.nbscale` too) runs code that still names the original's file
    fp = reads_data(folder)
    assert set(fp["files_read"]) == {"data.csv", str(folder / "data.csv")}
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "data.csv").write_text((folder / "data.csv").read_text())
    assert check(fp, str(copy)) == []
    (folder / "data.csv").write_text("a,b\n7,7\n")  # the file the code reads, not the copy's
    assert texts(check(fp, str(copy))) == [f"{folder / 'data.csv'} changed (content)"]
    assert texts(check(fp, str(folder))) == ["data.csv changed (content)"], "said once"


def test_the_working_directory_is_a_dependency_once_the_step_asks_for_it(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(folder)  # (a step runs in the notebook's folder)
    fp = recorded(folder, lambda: os.path.abspath("results"))
    assert fp["cwd"] == str(folder)
    other = tmp_path / "other"
    other.mkdir()
    assert check(fp, str(folder)) == []
    (change,) = check(fp, str(other))
    assert change.kind == CWD and change.text.startswith("the working directory changed")
    assert "cwd" not in recorded(folder, lambda: open(folder / "data.csv").read()), "not asked: no dependency"


def test_a_step_in_a_folder_an_earlier_step_changed_to_depends_on_the_folder_it_ran_from(folder, monkeypatch):
    # `os.chdir("sub")` in an earlier step, replayed before this one, then `os.getcwd()`: the folder it
    # saw was recorded and checked against the notebook's, and the step was never reused
    (folder / "sub").mkdir()
    monkeypatch.chdir(folder / "sub")
    fp = recorded(folder, lambda: os.path.join(os.getcwd(), "out"))
    assert fp["cwd"] == str(folder) and check(fp, str(folder)) == []


def test_tz_read_by_c_is_a_dependency_of_every_step(folder, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    fp = recorded(folder, lambda: None)
    assert check(fp, str(folder)) == []
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    assert texts(check(fp, str(folder))) == ["env TZ: 'UTC' → 'Asia/Tokyo'"]


# --- modules, distributions, environment ---------------------------------------------------------


def test_a_changed_local_module_is_a_change(folder, monkeypatch):
    monkeypatch.syspath_prepend(str(folder))
    name = f"helpers_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text("def answer():\n    return 42\n")
    try:
        fp = recorded(folder, lambda: __import__(name).answer())
        assert check(fp, str(folder)) == []
        (folder / f"{name}.py").write_text("def answer():\n    return 43  # edited\n")
        changes = check(fp, str(folder))
    finally:
        sys.modules.pop(name, None)
    assert texts(changes) == [f"{name}.py changed"] and changes[0].kind == MODULE


def test_a_new_distribution_version_is_a_change(folder):
    fp = recorded(folder, lambda: np.arange(3))
    assert fp["distributions"]["numpy"] == np.__version__
    fp["distributions"].update({"numpy": "1.0.0", "no-such-dist": "2.0"})  # as recorded elsewhere
    changes = check(fp, str(folder))
    assert sorted(texts(changes)) == ["no-such-dist 2.0 → not installed", f"numpy 1.0.0 → {np.__version__}"]
    assert {c.kind for c in changes} == {DISTRIBUTION}


def test_a_changed_environment_variable_is_a_change(folder, monkeypatch):
    monkeypatch.setenv("NBSCALE_TEST_SEED", "1")
    monkeypatch.delenv("NBSCALE_TEST_LATER", raising=False)
    fp = recorded(folder, lambda: (os.environ["NBSCALE_TEST_SEED"], os.getenv("NBSCALE_TEST_LATER")))
    assert check(fp, str(folder)) == []
    monkeypatch.setenv("NBSCALE_TEST_SEED", "2")
    monkeypatch.setenv("NBSCALE_TEST_LATER", "x")
    changes = check(fp, str(folder))
    assert texts(changes) == ["env NBSCALE_TEST_LATER: unset → 'x'", "env NBSCALE_TEST_SEED: '1' → '2'"]
    assert changes[1] == Change(ENV, "NBSCALE_TEST_SEED", "value", "1", "2", "env NBSCALE_TEST_SEED: '1' → '2'")
    monkeypatch.delenv("NBSCALE_TEST_SEED")
    assert "env NBSCALE_TEST_SEED: '1' → unset" in texts(check(fp, str(folder)))


def test_a_variable_set_since_a_step_listed_the_environment_is_a_change(folder, monkeypatch):
    """`dict(os.environ)` read the variables set then: one set later (`export BATCH_SIZE=256`) left
    the step's result reused."""
    monkeypatch.delenv("NBSCALE_TEST_BATCH", raising=False)
    fp = recorded(folder, lambda: dict(os.environ).get("NBSCALE_TEST_BATCH"))
    assert check(fp, str(folder)) == []
    monkeypatch.setenv("OLDPWD", "/elsewhere")  # the shell's bookkeeping: no change
    assert check(fp, str(folder)) == []
    monkeypatch.setenv("NBSCALE_TEST_BATCH", "256")
    assert texts(check(fp, str(folder))) == ["env NBSCALE_TEST_BATCH: set since the step listed the environment"]


def test_a_changed_secret_is_a_change_without_its_value(folder, monkeypatch):
    monkeypatch.setenv("NBSCALE_TEST_PASSWORD", "one")
    fp = recorded(folder, lambda: os.environ["NBSCALE_TEST_PASSWORD"])
    monkeypatch.setenv("NBSCALE_TEST_PASSWORD", "two")
    assert texts(check(fp, str(folder))) == ["env NBSCALE_TEST_PASSWORD changed"]


@pytest.mark.parametrize("name, one, two", [
    ("NBSCALE_TEST_DATABASE_URL", "postgres://u:SuperSecretPw@db/x", "postgres://u:OtherPw2@db/x"),
    ("NBSCALE_TEST_SENTRY_DSN", "https://dsnkey123@o1.sentry.io/1", "https://dsnkey456@o1.sentry.io/1"),
    ("NBSCALE_TEST_GITHUB_PAT", "ghp_PATSECRET", "ghp_OTHERSECRET"),
    ("NBSCALE_TEST_REMOTE", "https://user:pw1@example.com/data", "https://user:pw2@example.com/data"),  # by value
    ("NBSCALE_TEST_HEADER", "Bearer 16C7e42F292c6912E7710c838347Ae", "Bearer 26C7e42F292c6912E7710c838347Ae"),
    ("NBSCALE_TEST_LONG", "x" * 41, "y" * 41),
])
def test_a_credential_like_value_is_kept_and_shown_as_a_digest_only(folder, monkeypatch, name, one, two):
    monkeypatch.setenv(name, one)
    fp = recorded(folder, lambda: os.environ[name])
    assert fp["env"][name].startswith("hidden:") and one not in json.dumps(fp)
    monkeypatch.setenv(name, two)
    assert texts(check(fp, str(folder))) == [f"env {name} changed"]


def test_a_variable_the_step_set_itself_holds_at_the_value_it_left(folder, monkeypatch):
    monkeypatch.delenv("NBSCALE_TEST_DEFAULTED", raising=False)
    fp = recorded(folder, lambda: os.environ.setdefault("NBSCALE_TEST_DEFAULTED", "1"))  # as libraries do
    # TZ: read by C, always; a loaded library's own variables (JOBLIB_…, SKLEARN_…) may be there too
    ours = {n: v for n, v in fp["env"].items() if n.startswith("NBSCALE_TEST_") or n == "TZ"}
    assert ours == {"NBSCALE_TEST_DEFAULTED": None, "TZ": os.environ.get("TZ")}
    assert fp["env_set"] == {"NBSCALE_TEST_DEFAULTED": "1"}
    assert check(fp, str(folder)) == []
    monkeypatch.setenv("NBSCALE_TEST_DEFAULTED", "2")  # someone else's value is a change
    assert texts(check(fp, str(folder))) == ["env NBSCALE_TEST_DEFAULTED: unset → '2'"]


# --- the fingerprint itself ----------------------------------------------------------------------


def test_a_fingerprint_of_another_version_or_incomplete_is_a_change(folder):
    fp = reads_data(folder)
    assert [c.kind for c in check({**fp, "version": 0}, str(folder))] == [FINGERPRINT]
    changes = check({**fp, "incomplete": ["open: ValueError: odd path"]}, str(folder))
    assert texts(changes) == ["some dependencies were not recorded (open: ValueError: odd path)"]


@pytest.mark.parametrize("name", ["DB_PW", "SMTP_PIN", "MY_SALT", "LOGIN_NAME", "ACCESS_ID", "JWT"])
def test_more_names_that_look_secret_are_kept_as_digests(name):
    assert env_value(name, "hunter2").startswith("hidden:")
    assert env_value("MODE", "fast") == "fast" and env_value("PWD_LIKE_MODE", None) is None


def test_a_hidden_value_is_keyed_by_a_secret_of_this_user_not_a_public_key(tmp_path):
    # a reader of a shared store could otherwise test password guesses against the digest
    code = ("from nbscale.kernels.fingerprints import env_value; "
            "print(env_value('API_TOKEN', 'letmein'))")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    first, again = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout.strip() for _ in range(2))
    assert first == again and first.startswith("hidden:"), "the same user's processes agree"
    key = tmp_path / "state" / "nbscale" / "env-digest-key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32
    public = hashlib.blake2b(b"letmein", digest_size=16, key=b"nbscale-env").hexdigest()
    assert first != f"hidden:{public}"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**env, "XDG_STATE_HOME": str(tmp_path / "other")}).stdout.strip()
    assert other != first, "another user's key: another digest (the step runs again, never wrongly cached)"


@pytest.mark.parametrize("how", ["glob", "Path.glob", "Path.rglob"])
def test_what_a_glob_matches_is_a_dependency_not_only_the_folders_it_lists(folder, how, monkeypatch):
    # `data/*/part.csv` tests each folder for part.csv (os.stat): a part.csv appearing in a folder
    # that was there before changes no listing the step made
    import glob as glob_module
    from pathlib import Path

    monkeypatch.chdir(folder)
    for sub in ("a", "b"):
        (folder / "data" / sub).mkdir(parents=True)
    (folder / "data" / "a" / "part.csv").write_text("1")
    find = {"glob": lambda: glob_module.glob("data/*/part.csv"),
            "Path.glob": lambda: list(Path("data").glob("*/part.csv")),
            "Path.rglob": lambda: list(Path("data").rglob("part.csv"))}[how]
    fp = recorded(folder, find)
    assert check(fp, str(folder)) == []
    (folder / "data" / "b" / "part.csv").write_text("100")
    assert any(c.text.startswith("what ") and "part.csv" in c.text for c in check(fp, str(folder)))


def test_a_library_the_step_could_not_import_appearing_later_is_a_change(folder, tmp_path, monkeypatch):
    # `try: import optlib / except ImportError: fast = "fallback"`, then `pip install optlib`
    name = f"optlib_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def step():
        try:
            __import__(name)
        except ImportError:
            pass

    fp = recorded(folder, step)
    assert fp["absent_modules"] == [name]
    assert check(fp, str(folder)) == []
    (site / f"{name}.py").write_text("ACCEL = 'accelerated'\n")
    import importlib

    importlib.invalidate_caches()
    assert texts(check(fp, str(folder))) == [f"{name} can be imported now (the step tried, and it could not)"]


def test_processes_making_the_digest_key_at_once_agree_on_it(tmp_path):
    # the first steps of two runs started together both find no key yet
    code = ("from nbscale.kernels.fingerprints import env_value; "
            "print(env_value('API_TOKEN', 'letmein'))")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    digests = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(digests) == 1 and digests.pop().startswith("hidden:")


def test_a_library_installed_again_under_its_version_with_other_files_is_a_change(folder, tmp_path, monkeypatch):
    # `pip install .` of one's own package after an edit, its version unchanged
    site = tmp_path / "venv" / "lib" / "site-packages"
    name = f"mypkg{uuid.uuid4().hex[:8]}"
    install_library(site, name, "0.1.0", "first")
    monkeypatch.syspath_prepend(str(site))
    try:
        fp = recorded(folder, lambda: __import__(name))
        assert fp["distributions"][name] == "0.1.0" and fp["distribution_files"][name]
        install_library(site, name, "0.1.0", "first")  # the same files again: no change
        assert check(fp, str(folder)) == []
        install_library(site, name, "0.1.0", "edited")
        assert texts(check(fp, str(folder))) == [f"{name} 0.1.0 was installed again with other files"]
        del fp["distribution_files"]  # a fingerprint from before nbscale read RECORDs: its version says
        assert check(fp, str(folder)) == []
    finally:
        sys.modules.pop(name, None)
