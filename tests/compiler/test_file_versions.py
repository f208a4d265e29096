"""Versions of a file several steps write: the steps that run together, the checks that say nothing."""

from __future__ import annotations

from nbscale.compiler.file_versions import file_versions


def test_a_file_written_by_one_step_and_appended_to_by_later_ones_is_built_by_them_together():
    steps = [
        ("head", ["open('report.txt', 'w').write('header')"]),
        ("log", ["open('run.log', 'a').write('x')"]),  # a log no step writes anew: nothing
        ("peek", ["n = len(open('report.txt').read())"]),  # reads a part: the file grows after it
        ("part_a", ["with open('./report.txt', 'a') as f:\n    f.write('a')"]),
        ("part_b", ["!echo b >> report.txt"]),
        ("show", ["text = open('report.txt').read()"]),  # reads the whole: it can run alone
    ]
    versions = file_versions(steps)
    assert versions.together == [("report.txt", ["head", "peek", "part_a", "part_b"])]
    assert versions.gone == {"peek": {"report.txt"}}


def test_the_steps_of_a_version_a_later_step_replaces_run_together_and_are_not_checked_against_the_file():
    steps = [("w1", ["open('out.txt', 'w').write('first')"]),
             ("r1", ["a = open('out.txt').read()"]),
             ("w2", ["open('out.txt', 'w').write('second')\nopen('out.txt', 'a').write('!')"]),
             ("r2", ["b = open('out.txt').read()"])]
    versions = file_versions(steps)
    assert versions.together == [("out.txt", ["w1", "r1"])]
    assert versions.gone == {"w1": {"out.txt"}, "r1": {"out.txt"}}
    # what they use of it an earlier step made: none of them advances a state it found
    assert versions.made_before == {"r1": {"out.txt"}, "w2": {"out.txt"}, "r2": {"out.txt"}}


def test_logs_and_the_files_a_notebook_reads_have_no_versions():
    steps = [("a", ["open('run.log', 'a').write('a')\nx = open('data.csv').read()"]),
             ("b", ["!echo b >> run.log"]),
             ("c", ["open('data.csv', 'w').write(x)"])]  # it replaces the file the notebook found
    assert file_versions(steps).together == [] and file_versions(steps).gone == {}
    assert file_versions(steps).made_before == {}  # (c replaces data.csv: a reads what the notebook found)


def test_a_step_that_edits_a_file_in_place_builds_on_the_version_before_as_an_append_does():
    steps = [("make", ["open('model.bin', 'wb').write(b'0000')"]),
             ("patch", ["with open('model.bin', 'rb+') as f:\n    f.seek(2)\n    f.write(b'1')"]),
             ("use", ["blob = open('model.bin', 'rb').read()"])]
    versions = file_versions(steps)
    assert versions.together == [("model.bin", ["make", "patch"])]
    assert versions.gone == {"make": {"model.bin"}}  # the file holds the patch's product, which its check guards


def test_a_frame_appended_to_a_file_builds_on_it_as_an_open_in_append_mode_does():
    # `to_csv(P, mode="a")` was taken for a write anew: only the appender ran when its parameter
    # changed, and the file kept the rows of its last run too
    steps = [("init", ["pd.DataFrame({'m': ['base']}).to_csv('scores.csv', index=False)"]),
             ("m1", ["row.to_csv('scores.csv', mode='a', header=False, index=False)"]),
             ("m2", ["row.to_json('scores.json', mode=\"w\")"]),
             ("start", ["Path('log.txt').write_text('start')"]),
             ("more", ["with Path('log.txt').open('a') as f:\n    f.write('m1')"])]
    assert sorted(file_versions(steps).together) == [("log.txt", ["start", "more"]), ("scores.csv", ["init", "m1"])]


def test_the_steps_that_change_a_database_in_turn_run_together_the_first_as_its_writer():
    steps = [("init", ["con = sqlite3.connect('res.db')\ndf.to_sql('t', con, if_exists='replace')"]),
             ("peek", ["n = sqlite3.connect('res.db').execute('select count(*) from t').fetchone()"]),
             ("m1", ["con = sqlite3.connect('res.db')\nnew.to_sql('t', con, if_exists='append')"]),
             ("out", ["rows = pd.read_sql('select * from t', sqlite3.connect('res.db'))"])]
    versions = file_versions(steps)
    assert versions.together == [("res.db", ["init", "peek", "m1"])]
    assert versions.gone == {"init": {"res.db"}, "peek": {"res.db"}}  # (the file is m1's product now)
    # steps that only query a database have no versions of it
    assert file_versions([steps[1], steps[3]]).together == []
