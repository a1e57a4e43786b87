"""Moderation tasks as users have them (JSONL, CSV, headerless TSV), the dev split, the threshold, ROC AUC."""

from __future__ import annotations

import json
import random

import pytest

from cultura.errors import CulturaError, DataError
from cultura.eval.moderation_tasks import TaskFormat, column_option, dev_rows, load_task, load_tasks


def test_csv_with_a_header_and_a_headerless_tsv_read_like_jsonl(tmp_path):
    (tmp_path / "hate.jsonl").write_text(json.dumps({"msg": "You are all vermin.", "y": 1}) + "\n"
                                         + json.dumps({"msg": "Lovely weather.", "y": 0}) + "\n")
    (tmp_path / "offensive.csv").write_text('id,tweet,label\n1,"Shut up, idiot",offensive\n2,Nice day,not_offensive\n')
    # GermEval 2018: text, coarse label, fine label; no header; quotes are part of the text
    germeval = tmp_path / "germeval2018.test.txt"
    germeval.write_text('Du bist ein "Idiot"\tOFFENSE\tINSULT\nSchönes Wetter heute\tOTHER\tOTHER\n\n', encoding="utf-8")

    jsonl = load_task(tmp_path / "hate.jsonl", TaskFormat(text_column="msg", label_column="y"))
    assert [(e.text, e.label, e.template) for e in jsonl] == [("You are all vermin.", True, "hate"),
                                                             ("Lovely weather.", False, "hate")]
    csv_rows = load_task(tmp_path / "offensive.csv", TaskFormat(text_column="tweet"))
    assert [(e.row, e.text, e.label) for e in csv_rows] == [(2, "Shut up, idiot", True), (3, "Nice day", False)]
    fmt = TaskFormat(text_column=1, label_column=2, positive_label="offense", template="offensive")
    tsv = load_task(germeval, fmt)
    assert [(e.row, e.text, e.label, e.template) for e in tsv] == [
        (1, 'Du bist ein "Idiot"', True, "offensive"), (2, "Schönes Wetter heute", False, "offensive")]
    assert set(load_tasks(germeval, fmt=fmt)) == {"germeval2018.test"}
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "spam.csv").write_text("text,label\nWIN A CRUISE,1\nLunch at noon?,0\n")
    (folder / "hate.jsonl").write_text(json.dumps({"text": "Go home, vermin.", "label": "hate"}) + "\n")
    assert {t: len(ex) for t, ex in load_tasks(folder).items()} == {"hate": 1, "spam": 2}


def test_bad_task_files_name_the_row_and_column(tmp_path):
    tsv = tmp_path / "offensive.tsv"
    tsv.write_text("text\tlabel\nfine\tnot_offensive\nrude\t\n")
    with pytest.raises(DataError, match=r"offensive.tsv: row 3, column 'label': missing"):
        load_task(tsv)
    tsv.write_text("text\tlabel\nfine\tmaybe\n")
    with pytest.raises(DataError, match=r"row 2, column 'label': 'maybe' is not one of .*--positive-label"):
        load_task(tsv)
    with pytest.raises(DataError, match=r"row 1 \(header\): no column named 'tweet'"):
        load_task(tsv, TaskFormat(text_column="tweet"))
    short = tmp_path / "spam.tsv"
    short.write_text("only one column\n")
    with pytest.raises(DataError, match=r"row 1: 1 columns, but the text or label column is number 2"):
        load_task(short, TaskFormat(text_column=1, label_column=2))
    with pytest.raises(DataError, match="JSONL rows have fields"):
        (tmp_path / "hate.jsonl").write_text("{}\n")
        load_task(tmp_path / "hate.jsonl", TaskFormat(text_column=1, label_column=2))
    with pytest.raises(CulturaError, match="as numbers .* or both as names"):
        TaskFormat(text_column=1)
    with pytest.raises(CulturaError, match="start at 1"):
        TaskFormat(text_column=0, label_column=2)
    assert column_option("2") == 2 and column_option(" tweet ") == "tweet" and column_option(None) is None


def test_dev_split_takes_a_share_of_each_label_and_is_stable():
    from cultura.eval.moderation_tasks import Example

    examples = [Example("hate", row, f"text {row}", row % 4 == 0, "hate") for row in range(1, 41)]
    dev = dev_rows(examples, 0.3)
    assert sum(e.label for e in examples if e.row in dev) == 3 and sum(not e.label for e in examples if e.row in dev) == 9
    assert dev == dev_rows(list(reversed(examples)), 0.3)  # by hash, not by position
    tiny = examples[:4]  # one positive: it stays in test
    assert all(not e.label for e in tiny if e.row in dev_rows(tiny, 0.3))


def test_threshold_is_chosen_on_dev_and_roc_auc_matches_sklearn():
    from sklearn.metrics import roc_auc_score

    from cultura.eval.metrics import roc_auc
    from cultura.eval.moderation import choose_threshold

    # a model that says "yes" to everything, a little more to the positives: 0.5 calls all positive
    scores, labels = [0.81, 0.86, 0.93, 0.95], [False, False, True, True]
    threshold, note = choose_threshold(scores, labels)
    assert 0.86 < threshold < 0.93 and note == ""
    assert choose_threshold([0.9, 0.8], [True, True]) == (0.5, "dev split without both labels: threshold 0.5")
    rng = random.Random(3)
    for _ in range(20):
        y = [rng.random() < 0.3 for _ in range(40)]
        s = [round(rng.random(), 1) for _ in range(40)]
        if any(y) and not all(y):
            assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert roc_auc([True, True], [0.1, 0.2]) is None
