"""Tests for nbscale.kernels.other_processes: real process pools (fork and spawn), real loky workers."""

from __future__ import annotations

import functools
import glob
import multiprocessing
import os
import pathlib
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import pytest
from joblib import Parallel, delayed
from joblib.externals.loky import get_reusable_executor

from nbscale.kernels.dependencies import record
from nbscale.kernels.fingerprints import check
from nbscale.kernels.other_processes import InOtherProcess, folders_root


def total_of(name: str) -> int:
    """Reads `name` (a name built in the worker: no text of the step's holds it)."""
    with open(f"{name}.csv") as rows:
        return sum(int(line) for line in rows.read().split())


def written_and_looked_for(name: str) -> bool:
    pathlib.Path(f"out-{name}.txt").write_text(name)
    return os.path.exists(f"maybe-{name}.csv")


@pytest.fixture(autouse=True)
def _no_loky_workers_left():
    """loky's workers outlive a `Parallel` call, in the folder they started in: a later test's
    relative names would be looked for there."""
    yield
    get_reusable_executor().shutdown(wait=True)


@pytest.fixture
def folder(tmp_path, monkeypatch):
    for name, rows in (("may", "1\n2\n"), ("june", "3\n")):
        (tmp_path / f"{name}.csv").write_text(rows)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _report_folders() -> set[str]:
    return set(glob.glob(folders_root() + "*"))


def _recorded(folder, run):
    before = _report_folders()
    with record(str(folder)) as rec:
        result = run()
    assert rec.elsewhere is None and _report_folders() <= before  # (taken in, and gone)
    return result, rec.fingerprint()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_what_a_process_pool_reads_for_the_step_is_its_dependency(folder, method):
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        pool.submit(abs, -1).result()  # its processes started before the step
        totals, fp = _recorded(folder, lambda: list(pool.map(total_of, ["may", "june"])))
    assert totals == [3, 3] and set(fp["files_read"]) == {"may.csv", "june.csv"}
    assert check(fp, str(folder)) == []
    (folder / "june.csv").write_text("3\n4\n")
    assert [c.text for c in check(fp, str(folder))] == ["june.csv changed (content)"]


def test_a_multiprocessing_pool_reports_reads_tests_and_products_and_a_thread_pool_made_before_its_reads(folder):
    with multiprocessing.get_context("fork").Pool(2) as pool, multiprocessing.pool.ThreadPool(2) as threads:
        threads.map(abs, [-1, -2])  # its threads ran before the step

        def run():
            return pool.map(written_and_looked_for, ["may", "june"]), threads.map(total_of, ["may"])

        (found, totals), fp = _recorded(folder, run)
    assert found == [False, False] and totals == [3]
    assert set(fp["files_written"]) == {"out-may.txt", "out-june.txt"} and set(fp["files_read"]) == {"may.csv"}
    assert fp["tested"] == {"maybe-june.csv": None, "maybe-may.csv": None}
    (folder / "maybe-june.csv").write_text("")
    assert [c.text for c in check(fp, str(folder))] == ["maybe-june.csv appeared"]


def test_joblib_work_on_loky_workers_that_outlive_the_step_is_the_steps(folder):
    assert Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(4)) == [0, 1, 2, 3]  # loky's workers, started
    totals, fp = _recorded(folder, lambda: Parallel(n_jobs=2)(delayed(total_of)(m) for m in ["may", "june"]))
    assert totals == [3, 3] and set(fp["files_read"]) == {"may.csv", "june.csv"}
    (folder / "may.csv").write_text("9\n")
    assert [c.text for c in check(fp, str(folder))] == ["may.csv changed (content)"]


def test_outside_a_recording_the_pools_get_the_function_itself(folder):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        assert pool.submit(total_of, "may").result() == 3
    with record(str(folder)) as rec:
        wrapped = InOtherProcess(total_of, rec.cwd, str(folder))
        assert wrapped("june") == 3  # called in the step's own process: its recording sees it directly
    assert set(rec.fingerprint()["files_read"]) == {"june.csv"}


def nested_total(name: str) -> int:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as inner:
        return inner.submit(total_of, name).result()


def test_work_handed_on_again_from_a_worker_and_a_bad_report_are_the_steps_too(folder):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        with record(str(folder)) as rec:
            assert pool.submit(nested_total, "june").result() == 3
            with open(os.path.join(rec.elsewhere, "1-x.json"), "w") as bad:  # (not nbscale's making)
                bad.write('{"reads": 1}')
    fp = rec.fingerprint()
    assert set(fp["files_read"]) == {"june.csv"}
    assert [p for p in fp["incomplete"] if p.startswith("what work in other processes reported")]


def test_a_thread_of_the_step_handing_work_on_after_it_ended_makes_no_report_folder(folder):
    go, results = threading.Event(), []
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        def later():
            go.wait(10)
            results.append(pool.submit(total_of, "may").result())

        before = _report_folders()
        with record(str(folder)) as rec:
            thread = threading.Thread(target=later)
            thread.start()
        go.set()
        thread.join(30)
    assert results == [3] and _report_folders() <= before and "may.csv" not in rec.fingerprint()["files_read"]


def test_a_report_holding_the_variables_a_worker_read_is_for_its_owner_only(folder, monkeypatch, tmp_path):
    from nbscale.kernels import other_processes

    monkeypatch.setenv("NBSCALE_TEST_TOKEN", "s3cr3t")
    reports = tmp_path / "reports"
    reports.mkdir()
    def token(name):
        return os.environ.get(name)

    assert other_processes.recorded_here(token, ("NBSCALE_TEST_TOKEN",), {}, str(folder), str(reports)) == "s3cr3t"
    assert other_processes.recorded_here(abs, (-1,), {}, str(folder), str(reports)) == 1  # (nothing to report)
    assert [(p.suffix, p.stat().st_mode & 0o777) for p in reports.iterdir()] == [(".json", 0o600)]


def test_a_step_that_removes_its_report_folder_still_ends_and_its_result_is_not_reused(folder):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        with record(str(folder)) as rec:
            assert pool.submit(total_of, "may").result() == 3
            shutil.rmtree(rec.elsewhere)  # (a clean-up of the temp folder, say)
    fp = rec.fingerprint()
    assert "may.csv" not in fp["files_read"] and fp["incomplete"][0].startswith("what work in other processes")


def test_the_report_folders_of_a_process_that_died_go_as_the_next_process_records(folder):
    from nbscale.kernels import other_processes

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = pathlib.Path(f"{folders_root()}{dead.pid}-abcd1234")
    stale.mkdir()
    (stale / "1-x.json").write_text("{}")
    recent = pathlib.Path(f"{folders_root()}{dead.pid}-recent00")  # (touched lately: kept for now)
    mine = pathlib.Path(f"{folders_root()}{os.getpid()}-live0000")  # (a live process's: kept)
    for made in (recent, mine):
        made.mkdir()
    long_ago = time.time() - 3600
    for old in (stale, mine):
        os.utime(old, (long_ago, long_ago))
    other_processes._remove_those_of_dead_processes.cache_clear()
    try:
        other_processes.wrap_pools()  # (as a process's first recording starts)
        assert not stale.exists() and mine.exists() and recent.exists()
    finally:
        for made in (stale, recent, mine):
            shutil.rmtree(made, ignore_errors=True)


def test_a_file_a_worker_read_that_changes_before_the_step_ends_makes_the_result_unusable(folder):
    """Another process's write between the worker's read and the step's end: the state at the end
    is not what the worker used, so the fingerprint must not promise it."""
    read, changed = threading.Event(), threading.Event()

    def other_writer():  # (started before the step: not the step's)
        read.wait(30)
        (folder / "june.csv").write_text("3\n40\n")
        changed.set()

    writer = threading.Thread(target=other_writer)
    writer.start()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        def run():
            total = pool.submit(total_of, "june").result()
            read.set()
            changed.wait(30)
            return total

        total, fp = _recorded(folder, run)
    writer.join(30)
    assert total == 3 and fp["changed_while_running"] == ["june.csv"]
    assert [c.text for c in check(fp, str(folder))]  # never cached as if it had used the new content


def test_two_steps_recording_at_once_each_get_their_own_workers_reads(folder):
    """Two runs in one process (a server's threads): each step's pool work is its own, not the other's."""
    start = threading.Barrier(2)
    fingerprints = {}

    def step(name):
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
            with record(str(folder)) as rec:
                start.wait(30)
                assert pool.submit(total_of, name).result() == 3
                start.wait(30)  # both handed their work on before either ends
        fingerprints[name] = rec.fingerprint()

    threads = [threading.Thread(target=step, args=(name,)) for name in ("may", "june")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {name: set(fp["files_read"]) for name, fp in fingerprints.items()} == {
        "may": {"may.csv"}, "june": {"june.csv"}}


def total_later(name: str, wait_for: str) -> int:
    while not os.path.exists(wait_for):
        time.sleep(0.01)
    return total_of(name)


@pytest.mark.parametrize("pool_kind", ["executor", "apply_async", "imap"])
def test_work_still_running_as_the_step_ends_makes_its_result_unusable(folder, pool_kind):
    """Handed on and not waited for: its report would come after the fingerprint, so nothing it
    reads may be promised."""
    go = folder / "go"  # (made after the step ended: the work cannot end before)
    later = functools.partial(total_later, wait_for=str(go))
    with multiprocessing.get_context("fork").Pool(1) as pool, \
            ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as executor:
        with record(str(folder)) as rec:
            pending = {"executor": lambda: executor.submit(later, "may"),
                       "apply_async": lambda: pool.apply_async(later, ("may",)),
                       "imap": lambda: pool.imap(later, ["may"])}[pool_kind]()
        fp = rec.fingerprint()
        go.touch()
        result = {"executor": lambda: pending.result(30), "apply_async": lambda: pending.get(30),
                  "imap": lambda: next(pending)}[pool_kind]()
    assert result == 3
    assert [p for p in fp["incomplete"] if "still running as the step ended" in p]
    assert check(fp, str(folder))  # never reused


def test_work_waited_for_leaves_the_result_usable(folder):
    with multiprocessing.get_context("fork").Pool(1) as pool:
        (first, rest), fp = _recorded(folder, lambda: (pool.apply_async(total_of, ("may",)).get(30),
                                                       list(pool.imap_unordered(total_of, ["june"]))))
    assert (first, rest) == (3, [3]) and fp["incomplete"] == [] and check(fp, str(folder)) == []


def total_into(name: str, results) -> None:
    results.put(total_of(name))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_what_a_process_the_step_starts_reads_is_its_dependency(folder, method):
    # `multiprocessing.Process(target=load)` read a file under a name built in the child: unseen, the
    # step stayed cached when the file changed
    context = multiprocessing.get_context(method)

    def run():
        results = context.Queue()
        process = context.Process(target=total_into, args=("june", results))
        process.start()
        total = results.get(timeout=60)
        process.join(60)
        return total

    total, fp = _recorded(folder, run)
    assert total == 3 and set(fp["files_read"]) == {"june.csv"} and fp["incomplete"] == []
    (folder / "june.csv").write_text("3\n4\n")
    assert [c.text for c in check(fp, str(folder))] == ["june.csv changed (content)"]


def test_a_process_the_step_starts_that_is_killed_or_still_running_makes_its_result_unusable(folder):
    context = multiprocessing.get_context("fork")
    with record(str(folder)) as rec:
        killed = context.Process(target=time.sleep, args=(60,))
        killed.start()
        killed.kill()
        killed.join(30)
        running = context.Process(target=time.sleep, args=(60,))
        running.start()
    fp = rec.fingerprint()
    running.kill()
    running.join(30)
    assert [p for p in fp["incomplete"] if "ended by a signal before they could report" in p]
    assert [p for p in fp["incomplete"] if "still running as the step ended" in p]
    assert check(fp, str(folder))  # never reused


def test_a_pool_started_in_the_step_is_recorded_through_its_work_not_its_processes(folder):
    def run():
        with multiprocessing.get_context("fork").Pool(1) as pool:
            return pool.map(total_of, ["may"])

    totals, fp = _recorded(folder, run)
    assert totals == [3] and fp["incomplete"] == [] and set(fp["files_read"]) == {"may.csv"}
