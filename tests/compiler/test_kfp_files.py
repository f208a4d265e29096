"""kfp files: a file one step writes and a later one reads is warned of for Kubeflow."""

from __future__ import annotations

from conftest import make_notebook

from nbscale.compiler import compile_notebook
from nbscale.compiler.targets.kfp.files import file_handoff_warnings


def _warnings(tmp_path, cells) -> list:
    return file_handoff_warnings(compile_notebook(make_notebook(tmp_path, cells)))


def test_a_step_reading_a_file_an_earlier_step_writes_is_warned_of_at_its_first_cell(tmp_path):
    cells = [("import pandas as pd\nOUT = 'data/clean.csv'", ["imports"]),
             ("df = pd.DataFrame({'a': [1]})\ndf.to_csv(OUT)", ["step:write"]),
             ("n = 1", ["step:other"]),
             ("back = pd.read_csv('data/clean.csv')", ["step:read"])]
    (found,) = _warnings(tmp_path, cells)
    assert found.code == "kfp-file-handoff" and found.cell == 3
    assert "step 'read' reads data/clean.csv, which step 'write' writes" in found.message
    assert "s3://" in found.hint


def test_values_handed_on_urls_and_files_of_one_step_are_no_hand_off(tmp_path):
    cells = [("import pandas as pd", ["imports"]),
             ("df = pd.DataFrame({'a': [1]})\ndf.to_csv('s3://bucket/clean.csv')\ndf.to_csv('own.csv')\n"
              "again = pd.read_csv('own.csv')", ["step:write"]),
             ("back = pd.read_csv('s3://bucket/clean.csv')\nn = len(df)", ["step:read"]),
             ("df.to_csv('own.csv')\nmine = pd.read_csv('own.csv')", ["step:writes_its_own"])]
    assert _warnings(tmp_path, cells) == []


def _folder(tmp_path, i):
    (tmp_path / str(i)).mkdir()
    return tmp_path / str(i)


_WRITER = [("import pandas as pd\nimport logging\nfrom pathlib import Path\nlogger = logging.getLogger(__name__)\n"
            "OUT = 'out.csv'", ["imports"]),
           ("df = pd.DataFrame({'a': [1]})\ndf.to_csv('out.csv')\nprint('wrote out.csv')", ["step:write"])]


def test_a_step_that_only_mentions_a_file_an_earlier_step_writes_is_no_hand_off(tmp_path):
    mentions = ["# the data comes from out.csv\nn = 1",
                "print('wrote out.csv')",
                "msg = 'next: out.csv, then the model'\nn = len(msg)",
                "def report():\n    \"\"\"out.csv\"\"\"\n    return 1\nn = report()",
                "logger.info('out.csv')\nlogging.warning(OUT)\nlogging.getLogger('x').debug(f'read {OUT}')",
                "print(OUT)\nprint('{} has {} rows'.format(OUT, 1))\nprint(str(Path(OUT)))",
                "n = 1\nassert n, f'{OUT} is empty'\nif not n:\n    raise FileNotFoundError(OUT)"]
    for i, mention in enumerate(mentions):
        assert _warnings(_folder(tmp_path, i), [*_WRITER, (mention, ["step:mention"])]) == [], mention


def test_a_step_that_reads_the_file_is_warned_of_however_it_names_it(tmp_path):
    reads = ["back = pd.read_csv('out.csv')",
             "with open('out.csv') as f:\n    text = f.read()",
             "text = Path('out.csv').read_text()",
             "back = pd.read_csv(OUT)  # not only a mention: OUT is the imports cell's constant",
             "path = 'out.csv'\nback = pd.read_csv(path)",
             "for name in ['out.csv']:\n    back = pd.read_csv(name)",
             "print(pd.read_csv(OUT).shape)",
             "logger.info('rows: %d', len(pd.read_csv('out.csv')))",
             "!wc -l out.csv",
             "import duckdb\nrows = duckdb.sql(\"select * from 'out.csv'\").df()",
             "day = 'mon'\nback = pd.read_csv(f'{OUT}')\nalso = open(f'o{day}.csv')",
             "import subprocess\nsubprocess.run(['wc', '-l', '../out.csv'], cwd='sub')",
             "print('reading')\nback = pd.read_csv(OUT\n"]  # (a cell that does not parse: every name it names)
    for i, read in enumerate(reads):
        (found,) = _warnings(_folder(tmp_path, i), [*_WRITER, (read, ["step:read"])])
        assert "step 'read' reads out.csv, which step 'write' writes" in found.message, read


def test_a_file_read_in_a_folder_the_scan_saw_is_a_hand_off(tmp_path):
    cells = [("import pandas as pd", ["imports"]),
             ("pd.DataFrame({'a': [1]}).to_csv('data/mon.csv')", ["step:write"]),
             ("day = 'mon'\nback = pd.read_csv(f'data/{day}.csv')", ["step:read"]),
             ("print(f'wrote data/{1}')", ["step:say"])]
    (found,) = _warnings(tmp_path, cells)
    assert "step 'read' reads data, which step 'write' writes" in found.message


def test_a_constant_folded_from_thousands_of_terms_is_folded_with_room_to_recurse(tmp_path):
    # Python compiles a sum of 2,500 texts; its fold here ran out of frames: a traceback from `compile`
    long = "P = OUT" + " + 'x'" * 2500 + "\nback = pd.read_csv(OUT)"
    cells = [*_WRITER, (long, ["step:read"]), ("print(P)", ["step:say"])]
    (found,) = _warnings(tmp_path, cells)
    assert "step 'read' reads out.csv, which step 'write' writes" in found.message
