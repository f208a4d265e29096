"""How the `nbscale` command's process ends: `os._exit` after what finalisation does first."""

import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest
from conftest import ROOT

from nbscale.process_exit import exit_status


def run_script(body: str, tmp_path, **kwargs):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=60, **kwargs)


def test_what_finalisation_does_first_still_happens(tmp_path):
    """Non-daemon threads and thread pools finish, atexit handlers run, buffered output is written,
    and the exit status is the command's."""
    proc = run_script("""
        import atexit, sys, threading, time
        from concurrent.futures import ThreadPoolExecutor
        from pathlib import Path
        from nbscale.process_exit import exit_now

        atexit.register(lambda: Path("atexit-ran").write_text("yes"))

        def slow(name):
            time.sleep(0.3)
            Path(name).write_text("done")

        threading.Thread(target=slow, args=("thread-done",)).start()
        ThreadPoolExecutor(1).submit(slow, "pool-done")
        sys.stdout.write("x" * 100_000)  # no newline: still in the buffer
        sys.stderr.write("on stderr")
        exit_now(3)
    """, tmp_path)
    assert proc.returncode == 3
    assert proc.stdout == "x" * 100_000
    assert proc.stderr == "on stderr"
    for name in ("atexit-ran", "thread-done", "pool-done"):
        assert (tmp_path / name).exists(), name


@pytest.mark.parametrize(("code", "status", "printed"), [
    (None, 0, ""), (0, 0, ""), (2, 2, ""), (True, 1, ""), ("no such notebook", 1, "no such notebook\n"),
])
def test_the_status_is_the_one_sys_exit_gives(code, status, printed, tmp_path):
    proc = run_script(f"from nbscale.process_exit import exit_now\nexit_now({code!r})\n", tmp_path)
    assert (proc.returncode, proc.stderr) == (status, printed)
    plain = run_script(f"import sys\nsys.exit({code!r})\n", tmp_path)
    assert (plain.returncode, plain.stderr) == (status, printed)
    assert exit_status(code) == status


def test_a_reader_that_went_away_is_no_error(tmp_path):
    """`nbscale … | head`: the pipe closes before the output is flushed."""
    script = tmp_path / "script.py"
    script.write_text("import sys\nfrom nbscale.process_exit import exit_now\n"
                      "sys.stdout.write('line\\n' * 200_000)\nexit_now(0)\n")
    writer = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer.stdout.read(10)
    writer.stdout.close()
    _, stderr = writer.communicate(timeout=60)
    assert b"Traceback" not in stderr and b"Exception ignored" not in stderr


def test_the_console_script_is_the_one_that_exits_so():
    (script,) = entry_points(group="console_scripts", name="nbscale")
    assert script.value == "nbscale.cli:console_main"


def test_the_command_keeps_its_output_and_status(tmp_path):
    """Run as a process, the CLI's exit status and messages are those of the command."""
    missing = subprocess.run([sys.executable, "-m", "nbscale", "check", str(tmp_path / "none.ipynb")],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    version = subprocess.run([sys.executable, "-m", "nbscale", "--version"], capture_output=True, text=True,
                             cwd=ROOT, timeout=60)
    assert version.returncode == 0 and "version" in version.stdout


def test_an_importer_of_the_cli_keeps_its_process():
    """`CliRunner` and notebooks call the click group, which raises SystemExit as before."""
    from click.testing import CliRunner

    from nbscale.cli import main

    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "version" in result.output
