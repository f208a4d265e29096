"""Tests for nbscale.kernels.shell: the step shell, fresh namespaces, process state put back."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
from test_executor import ok, run

from nbscale.kernels.contract import FAILED
from nbscale.kernels.shell import StepShell, step_shell

# --- namespaces ------------------------------------------------------------------------------


def test_each_step_gets_a_fresh_namespace():
    first = ok(run("secret = 41\nsecret + 1", outputs=["secret"]))
    assert first.outputs == {"secret": 41}
    second = run("secret")
    assert second.status == FAILED
    assert second.error.ename == "NameError" and "secret" in second.error.evalue
    # nothing of the first step's results is reachable through IPython's caches either
    third = ok(run("seen = (_, Out, In[:-1])", outputs=["seen"]))
    assert third.outputs["seen"] == ("", {}, [""])


def test_get_ipython_works_inside_the_step_and_process_state_is_restored():
    before_main = sys.modules["__main__"]
    had_display = "display" in builtins.__dict__
    result = ok(run(
        "from IPython import get_ipython as imported\n"
        "same = imported() is get_ipython()\n"
        "import __main__\n"
        "main_is_ns = __main__.__dict__ is globals()",
        outputs=["same", "main_is_ns"],
    ))
    assert result.outputs == {"same": True, "main_is_ns": True}
    assert sys.modules["__main__"] is before_main
    assert ("display" in builtins.__dict__) == had_display


def test_the_shell_is_one_per_process_and_lent_to_one_step_at_a_time():
    with step_shell() as shell:
        assert isinstance(shell, StepShell) and shell.step_run is None
    with step_shell() as again:
        assert again is shell


def test_execute_step_inside_a_running_step_is_refused():
    result = run("from nbscale.kernels.executor import execute_step\n"
                 "execute_step({'name': 'inner', 'cells': [], 'source': []}, None, {}, {})")
    assert result.error.ename == "RuntimeError"


# --- IPython syntax --------------------------------------------------------------------------


def test_line_magic_binds_names():
    result = ok(run("x = 1", "%time y = x + 1", outputs=["y"]))
    assert result.outputs == {"y": 2}
    assert "Wall time" in result.stdout


def test_top_level_await_async_for_and_async_with_run_as_in_jupyter():
    result = ok(run(textwrap.dedent("""\
        import asyncio, contextlib
        slept = await asyncio.sleep(0, result=3)

        async def count():
            for i in range(3):
                yield i

        @contextlib.asynccontextmanager
        async def opened():
            yield "open"

        counted = [i async for i in count()]
        async with opened() as state:
            pass
        async for i in count():
            last = i
        """), outputs=["slept", "counted", "state", "last"]))
    assert result.outputs == {"slept": 3, "counted": [0, 1, 2], "state": "open", "last": 2}


def test_only_a_cell_with_a_top_level_await_runs_async():
    with step_shell() as shell:
        for cell, expected in (("x = 1", False), ("x = 'await'", False), ("async def f():\n    await g()", False),
                               ("import asyncio\nawait asyncio.sleep(0)", True)):
            assert shell.should_run_async(cell, transformed_cell=cell) is expected, cell


def test_cell_magic_capture():
    result = ok(run("%%capture out\nprint('hidden')", "captured = out.stdout",
                    outputs=["captured"]))
    assert result.outputs["captured"] == "hidden\n"
    assert "hidden" not in result.stdout


# --- process-wide state ----------------------------------------------------------------------


def test_warnings_go_to_stderr_and_filters_stay_in_their_step():
    filters = list(warnings.filters)
    ok(run("import warnings\nwarnings.filterwarnings('ignore')\nwarnings.warn('hidden')"))
    result = ok(run("import warnings\nwarnings.warn('careful')"))
    assert "UserWarning: careful" in result.stderr
    assert warnings.filters == filters


def test_system_exit_fails_the_step_without_ipython_noise():
    result = run("import sys\nsys.exit(3)")
    assert (result.status, result.error.ename, result.error.evalue) == (FAILED, "SystemExit", "3")
    assert "To exit" not in result.stderr


def test_keyboard_interrupt_propagates_and_state_is_restored(tmp_path):
    cwd, stdout = os.getcwd(), sys.stdout
    with pytest.raises(KeyboardInterrupt):
        run("print('x')\nraise KeyboardInterrupt", cwd=str(tmp_path))
    assert os.getcwd() == cwd and sys.stdout is stdout
    ok(run("fine = 1"))


def test_cwd_is_the_notebook_folder_during_the_step(tmp_path):
    (tmp_path / "input.txt").write_text("from a file")
    before = os.getcwd()
    result = ok(run("import os\nhere = os.getcwd()\ntext = open('input.txt').read()",
                    cwd=str(tmp_path), outputs=["here", "text"]))
    assert result.outputs == {"here": str(tmp_path), "text": "from a file"}
    assert os.getcwd() == before


def test_modules_beside_the_notebook_import_as_in_jupyter(tmp_path):
    (tmp_path / "nbscale_local_helper.py").write_text("VALUE = 7\n")
    path = list(sys.path)
    try:
        result = ok(run("from nbscale_local_helper import VALUE", cwd=str(tmp_path), outputs=["VALUE"],
                        notebook="nb.ipynb"))
    finally:
        sys.modules.pop("nbscale_local_helper", None)
    assert result.outputs == {"VALUE": 7}
    assert sys.path == path


ISOLATION_SCRIPT = textwrap.dedent("""
    import os, sys
    from nbscale.compiler.ir import Step
    from nbscale.kernels.executor import execute_step

    step = Step(name="s", cells=[1], source=["from IPython import get_ipython\\n"
                                             "shell_ns_clean = 'mine' not in get_ipython().user_ns\\n"
                                             "x = 1\\nx"], outputs=["shell_ns_clean"])
    result = execute_step(step, None, {}, {})
    assert result.ok and result.displays[0]["data"]["text/plain"] == "1", result
    assert os.listdir(os.environ["HOME"]) == [], os.listdir(os.environ["HOME"])

    # inside a process that already runs IPython (the local engine inside a kernel)
    from IPython.core.interactiveshell import InteractiveShell
    outer = InteractiveShell.instance()
    outer.user_ns["mine"] = 1
    result = execute_step(step, None, {}, {})
    assert result.ok and result.outputs["shell_ns_clean"] and result.displays, result
    assert InteractiveShell.instance() is outer and outer.user_ns["mine"] == 1
    print("isolated")
""")


def test_no_files_in_home_and_an_existing_ipython_is_left_alone(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("IPYTHONDIR", None)
    proc = subprocess.run([sys.executable, "-c", ISOLATION_SCRIPT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "isolated"


FOLDERS_SCRIPT = textwrap.dedent("""
    import glob, multiprocessing, os, signal, sys, tempfile
    from nbscale.compiler.ir import Step
    from nbscale.kernels.executor import execute_step

    def shell_folders():
        return set(glob.glob(os.path.join(tempfile.gettempdir(), "nbscale-ipython-*")))

    def one_step(then_die=False):
        assert execute_step(Step(name="s", cells=[1], source=["x = 1"], outputs=["x"]),
                            None, {}, {}).ok
        if then_die:  # as a worker killed to stop its step
            os.kill(os.getpid(), signal.SIGKILL)

    def forked(then_die=False):
        child = multiprocessing.get_context("fork").Process(target=one_step, args=(then_die,))
        child.start()
        child.join(60)
        return child

    # a forked multiprocessing child (as a Dask worker is) ends with os._exit: no atexit
    assert forked().exitcode == 0 and shell_folders() == set(), shell_folders()

    killed = forked(then_die=True)
    left = shell_folders()
    assert killed.exitcode == -signal.SIGKILL and len(left) == 1, left
    assert f"nbscale-ipython-{killed.pid}-" in left.pop()
    # names like those of an ended process that are not its folders: left alone
    elsewhere = tempfile.mkdtemp(dir=os.environ["HOME"])
    open(os.path.join(elsewhere, "keep"), "w").close()
    os.symlink(elsewhere, os.path.join(tempfile.gettempdir(), f"nbscale-ipython-{killed.pid}-link"))
    open(os.path.join(tempfile.gettempdir(), f"nbscale-ipython-{killed.pid}-file"), "w").close()

    one_step()  # this process's first shell: it removes the killed child's folder
    mine = {f for f in shell_folders() if f"nbscale-ipython-{os.getpid()}-" in f}
    assert len(mine) == 1 and shell_folders() == mine | {
        os.path.join(tempfile.gettempdir(), f"nbscale-ipython-{killed.pid}-{n}")
        for n in ("link", "file")}, shell_folders()
    assert os.listdir(elsewhere) == ["keep"]

    # a forked child that ends through sys.exit runs the atexit handlers it inherited
    pid = os.fork()
    if pid == 0:
        sys.exit(0)
    os.waitpid(pid, 0)
    assert mine <= shell_folders(), "a child removed this process's shell folder"
    print("cleaned")
""")


def test_the_shell_folder_goes_with_its_process_and_only_with_it(tmp_path):
    """Also when the process was killed: the next shell's process removes it."""
    (tmp_path / "tmp").mkdir()
    (tmp_path / "home").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", FOLDERS_SCRIPT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "cleaned"
    assert sorted(p.name.rsplit("-", 1)[1] for p in (tmp_path / "tmp").iterdir()) == ["file", "link"]


@pytest.fixture
def stdin_of(request):
    """Put `make()`'s descriptor on this process's descriptor 0 for the test (and back)."""
    saved = os.dup(0)

    def put(fd):
        os.dup2(fd, 0)
        os.close(fd)

    yield put
    os.dup2(saved, 0)
    os.close(saved)


@pytest.mark.parametrize("call", ["input('your name? ')", "__import__('getpass').getpass()"])
def test_without_a_terminal_asking_for_input_fails_at_once_with_what_to_do_instead(call, stdin_of):
    import getpass

    read, write = os.pipe()  # a pipe nobody writes to: a batch job's stdin, which would block for ever
    stdin_of(read)
    before = (builtins.input, getpass.getpass)
    try:
        result = run(f"x = 1\nname = {call}")
    finally:
        os.close(write)
    assert result.status == FAILED
    error = result.error
    assert error.ename == "StdinNotImplementedError" and "make the value a parameter" in error.evalue
    assert (error.cell, error.line) == (1, 2)  # cells as a person counts them
    assert (builtins.input, getpass.getpass) == before  # the process's own, after the step


def test_at_a_terminal_input_is_answered(stdin_of):
    import pty

    controller, terminal = pty.openpty()
    os.write(controller, b"alice\n")
    stdin_of(terminal)
    sys_stdin = sys.stdin
    sys.stdin = open(0, closefd=False)  # (pytest stands in for it)
    try:
        result = ok(run("name = input()", outputs=["name"]))
    finally:
        sys.stdin.close()
        sys.stdin = sys_stdin
        os.close(controller)
    assert result.outputs == {"name": "alice"}
