"""compile_cached: the same IR as compile_notebook, from a folder of entries that a changed cell,
a corrupt file, concurrent writers or hostile cell text cannot make wrong."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import make_notebook

from nbscale.compiler import compile_cache, compile_notebook
from nbscale.compiler.compile_cache import (
    MAX_ENTRIES,
    SUFFIX,
    compile_cached,
    load_entry,
    notebook_key,
    store_entry,
)
from nbscale.compiler.notebook import read_notebook

GOLDEN = Path(__file__).resolve().parent / "golden"
CELLS = [("x = [1, 2]", ["step:a"]), ("x.append(3)\ny = len(x)", ["step:b"]), ("print(y)", ["step:c"])]


def entries(folder):
    return sorted(Path(folder).glob("*" + SUFFIX))


def test_a_second_compile_comes_from_the_entry_and_equals_the_compile(tmp_path):
    path = make_notebook(tmp_path, CELLS)
    folder = tmp_path / "cache"
    first = compile_cached(path, folder)
    assert first.to_json() == compile_notebook(path).to_json()
    (entry,) = entries(folder)
    # an entry with the right key is what a second compile returns (here one made up for the test)
    marked = compile_notebook(path)
    marked.name = "from-the-entry"
    store_entry(entry, entry.name[:-len(SUFFIX)], marked)
    assert compile_cached(path, folder).name == "from-the-entry"


def test_golden_notebooks_give_their_golden_ir_through_the_cache(tmp_path):
    for notebook in sorted(GOLDEN.glob("*.ipynb")):
        golden = json.loads((GOLDEN / f"{notebook.stem}.json").read_text())
        assert compile_cached(notebook, tmp_path).to_json() == golden, notebook.name  # stored
        assert compile_cached(notebook, tmp_path).to_json() == golden, notebook.name  # loaded


def test_a_changed_cell_is_analysed_again(tmp_path):
    folder = tmp_path / "cache"
    path = make_notebook(tmp_path, CELLS)
    compile_cached(path, folder)
    changed = make_notebook(tmp_path, [*CELLS[:2], ("print(y, z)", ["step:c"])])
    pipeline = compile_cached(changed, folder)
    assert [d.code for d in pipeline.diagnostics] == ["undefined-name"]
    assert pipeline.to_json() == compile_notebook(changed).to_json()
    assert len(entries(folder)) == 2


def test_a_changed_tag_file_name_or_metadata_is_another_entry(tmp_path):
    base = read_notebook(make_notebook(tmp_path, CELLS))
    keys = {notebook_key(base)}
    keys.add(notebook_key(read_notebook(make_notebook(tmp_path, [CELLS[0], (CELLS[1][0], ["step:b2"]), CELLS[2]]))))
    keys.add(notebook_key(read_notebook(make_notebook(tmp_path, CELLS, name="other"))))
    keys.add(notebook_key(read_notebook(make_notebook(tmp_path, CELLS, metadata={"nbscale": {"name": "p"}}))))
    assert len(keys) == 4


def test_another_ipython_is_another_entry(tmp_path):
    # IPython turns magics into Python: a notebook checked under another IPython compiles again
    path = make_notebook(tmp_path, [("%time x = 1", ["step:a"])])
    other = tmp_path / "site" / "IPython"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("# another IPython\n")
    script = ("import sys; from nbscale.compiler.compile_cache import notebook_key; "
              "from nbscale.compiler.notebook import read_notebook; print(notebook_key(read_notebook(sys.argv[1])))")

    def key(*path_first):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path_first)}
        done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert key() == key() != key(str(tmp_path / "site"))


def test_a_corrupt_entry_is_ignored_and_written_again(tmp_path):
    path = make_notebook(tmp_path, CELLS)
    expected = compile_notebook(path).to_json()
    compile_cached(path, tmp_path / "cache")
    (entry,) = entries(tmp_path / "cache")
    whole = entry.read_bytes()
    flipped = whole.replace(b'"x"', b'"q"', 1)  # one name changed inside the IR: the digest differs
    assert flipped != whole
    corrupt_files = [b"", b"garbage", whole[: len(whole) // 2], flipped,
                     b"\xff\xfe\n\n{}", whole.replace(b"\n", b"", 2)]
    for corrupt in corrupt_files:
        entry.write_bytes(corrupt)
        assert compile_cached(path, tmp_path / "cache").to_json() == expected
        assert entry.read_bytes() == whole  # the next check reads a good entry again


def test_an_entry_for_another_key_is_not_used(tmp_path):
    one = make_notebook(tmp_path, CELLS, name="one")
    two = make_notebook(tmp_path, [("z = 1", ["step:only"])], name="two")
    folder = tmp_path / "cache"
    compile_cached(one, folder)
    (entry,) = entries(folder)
    # the entry of `one` copied under the name `two` looks for: its stored key says it is not `two`'s
    (folder / (notebook_key(read_notebook(two)) + SUFFIX)).write_bytes(entry.read_bytes())
    assert compile_cached(two, folder).to_json() == compile_notebook(two).to_json()


def test_hostile_cell_text_cannot_alter_another_notebooks_entry(tmp_path):
    folder = tmp_path / "cache"
    victim = make_notebook(tmp_path, CELLS, name="victim")
    victim_ir = compile_notebook(victim).to_json()
    compile_cached(victim, folder)
    (entry,) = entries(folder)
    key = entry.name[:-len(SUFFIX)]
    forged = compile_notebook(victim)
    forged.steps[0].source = ["import os; os.system('evil')"]
    forged_text = f"{key}\n" + forged.dumps()
    # cells holding the victim's key, a forged entry, and text that joins cells in a naive encoding
    hostile = make_notebook(tmp_path, [(forged_text, ["step:a"]), ('x = 1", "y = 2', ["step:b"]),
                                       (key, []), ("\n".join([key, "0" * 64, forged.dumps()]), [])], name="victim2")
    compile_cached(hostile, folder)
    assert entry.read_bytes().startswith(key.encode())
    assert load_entry(entry, key).to_json() == victim_ir
    assert compile_cached(victim, folder).to_json() == victim_ir
    # two cells are not one cell with the same text
    split = read_notebook(make_notebook(tmp_path, [("x = 1", []), ("y = 2", [])], name="n"))
    joined = read_notebook(make_notebook(tmp_path, ['x = 1", "y = 2'], name="n"))
    assert notebook_key(split) != notebook_key(joined)


WRITER = """
import sys
import time
from pathlib import Path
from nbscale.compiler.compile_cache import compile_cached
folder, paths = Path(sys.argv[1]), sys.argv[2:]
for _ in range(4):
    for path in paths:
        compile_cached(path, folder)
"""


def test_processes_compiling_at_once_leave_only_whole_entries(tmp_path):
    folder = tmp_path / "cache"
    paths = [make_notebook(tmp_path, [*CELLS, (f"w{i} = {i}", [f"step:s{i}"])], name=f"nb{i}") for i in range(3)]
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), *map(str, paths[k:] + paths[:k])])
                 for k in range(4)]
    assert [p.wait(timeout=120) for p in processes] == [0] * 4
    assert len(entries(folder)) == 3
    assert not [p for p in folder.iterdir() if not p.name.endswith(SUFFIX)]  # no part file left
    for path in paths:
        expected = compile_notebook(path).to_json()
        key = notebook_key(read_notebook(path))
        assert load_entry(folder / (key + SUFFIX), key).to_json() == expected
        assert compile_cached(path, folder).to_json() == expected


def test_the_folder_keeps_the_entries_used_last(tmp_path):
    folder = tmp_path / "cache"
    paths = [make_notebook(tmp_path, [f"v = {i}"], name=f"nb{i}") for i in range(MAX_ENTRIES + 3)]
    keys = [notebook_key(read_notebook(p)) for p in paths]
    now = time.time()
    for age, path in enumerate(paths[:MAX_ENTRIES]):  # nb0 the oldest, a second apart
        compile_cached(path, folder)
        os.utime(folder / (keys[age] + SUFFIX), (now - 1000 + age, now - 1000 + age))
    compile_cached(paths[0], folder)  # used again: now the newest of them
    for path in paths[MAX_ENTRIES:]:
        compile_cached(path, folder)
    kept = {p.name[:-len(SUFFIX)] for p in entries(folder)}
    assert kept == set(keys) - set(keys[1:4])


def test_a_folder_that_cannot_be_written_only_means_no_entry(tmp_path):
    path = make_notebook(tmp_path, CELLS)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert compile_cached(path, blocker / "cache").to_json() == compile_notebook(path).to_json()


def test_python_s_warning_filters_are_part_of_the_key(tmp_path, monkeypatch):
    """`-W error` turns a SyntaxWarning into the compiler's refusal (`python_check`)."""
    path = read_notebook(make_notebook(tmp_path, CELLS))
    plain = notebook_key(path)
    monkeypatch.setattr(sys, "warnoptions", ["error"])
    assert notebook_key(path) not in (None, plain)


def test_an_edited_input_transformer_is_another_entry(tmp_path, monkeypatch):
    # what turns `!ls` and `%time` into Python may change while IPython's __init__.py does not
    fake = tmp_path / "site" / "IPython"
    (fake / "core").mkdir(parents=True)
    (fake / "__init__.py").write_text("# an IPython\n")
    transformer = fake / "core" / "inputtransformer2.py"
    transformer.write_text("# one\n")
    monkeypatch.setattr(compile_cache, "_ipython_origin", lambda: str(fake / "__init__.py"))
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    first = compile_cache.ipython_identity()
    transformer.write_text("# two\n")  # same size, same __init__.py
    assert first != compile_cache.ipython_identity() and first[0] == str(fake / "__init__.py")


def test_a_process_whose_ipython_was_replaced_on_disk_keeps_no_entry(tmp_path, monkeypatch):
    import IPython  # noqa: F401 - loaded, as in a kernel

    path = make_notebook(tmp_path, CELLS)
    folder = tmp_path / "cache"
    monkeypatch.setattr(compile_cache, "_process_started", lambda: time.time() + 3600)  # files older: fine
    assert compile_cache.ipython_identity() and notebook_key(read_notebook(path)) is not None
    monkeypatch.setattr(compile_cache, "_process_started", lambda: 0.0)  # files newer than the process
    assert compile_cache.ipython_identity() is None and notebook_key(read_notebook(path)) is None
    assert compile_cached(path, folder).to_json() == compile_notebook(path).to_json()
    assert not folder.exists(), "no entry"


def test_no_cache_folder_a_folder_it_cannot_look_into_and_odd_entries_still_compile(tmp_path, monkeypatch):
    import platformdirs

    path = make_notebook(tmp_path, [("n = 0x" + "f" * 5000, ["parameters"]), *CELLS])  # an int JSON cannot write
    monkeypatch.setattr(platformdirs, "user_cache_path", lambda *a: (_ for _ in ()).throw(RuntimeError("no home")))
    assert compile_cache.default_folder() is None
    assert compile_cached(path, None).to_json() == compile_notebook(path).to_json()
    too_long = tmp_path / ("x" * 300)  # ENAMETOOLONG as the entry is looked for
    assert compile_cached(path, too_long).to_json() == compile_notebook(path).to_json()
    folder = tmp_path / "cache"
    assert [d.code for d in compile_cached(path, folder).diagnostics] == ["bad-parameter"]
    plain = make_notebook(tmp_path, CELLS, name="plain")
    key = notebook_key(read_notebook(plain))
    folder.mkdir(exist_ok=True)
    os.mkfifo(folder / (key + SUFFIX))  # a read would wait for a writer for ever
    assert compile_cached(plain, folder).to_json() == compile_notebook(plain).to_json()
