"""kernels/step_threads.py: a thread a step leaves running is named, and the process does not wait for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

LEAVES_A_THREAD = textwrap.dedent("""
    import threading, time
    from concurrent.futures import ThreadPoolExecutor
    from nbscale.kernels.step_threads import step_threads

    with step_threads() as left:
        threading.Thread(target=time.sleep, args=(600,), name="sleeper").start()
        threading.Thread(target=time.sleep, args=(600,), name="daemon", daemon=True).start()
        pool = ThreadPoolExecutor(1)
        pool.submit(time.sleep, 0.01).result()  # an idle pool worker: concurrent.futures joins it at exit
        joined = threading.Thread(target=time.sleep, args=(0.01,))
        joined.start()
        joined.join()
    print(left, flush=True)
""")


def test_a_thread_left_running_is_named_and_not_waited_for_at_exit():
    done = subprocess.run([sys.executable, "-c", LEAVES_A_THREAD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['sleeper']"


LEAVES_PROCESS_POOLS = textwrap.dedent("""
    import math
    from concurrent.futures import ProcessPoolExecutor
    from joblib import Parallel, delayed
    from nbscale.kernels.step_threads import step_threads

    if __name__ == "__main__":
        with step_threads() as left:
            pool = ProcessPoolExecutor(1)  # never shut down: its manager thread stays
            assert pool.submit(math.sqrt, 4.0).result() == 2.0
            # scikit-learn's `n_jobs=2`: joblib's loky executor is kept for the next call
            assert Parallel(n_jobs=2)(delayed(math.sqrt)(x) for x in (1.0, 9.0)) == [1.0, 3.0]
        print(left, flush=True)
""")


def test_process_pools_kept_for_reuse_are_not_named_and_end_at_exit(tmp_path):
    script = tmp_path / "pools.py"  # (a file: the pools' workers import the main module)
    script.write_text(LEAVES_PROCESS_POOLS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_it_the_process_would_wait():
    # the same thread outside step_threads: interpreter exit waits for it (the timeout strikes)
    code = "import threading, time\nthreading.Thread(target=time.sleep, args=(600,)).start()\nprint('started')"
    try:
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=3)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError("the process did not wait for its non-daemon thread")
