"""The one resumable JSONL file of evaluation (predictions, judge and grader records, the judge cache)."""

from __future__ import annotations

import json

import pytest

from ground_r1.evaluation.jsonl import JsonlAppender, read_records, repair_tail, write_atomic


def test_a_killed_write_is_ignored_by_readers_and_cut_off_by_the_appender(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"key": "a"}\n\n{"key": "b"}\n{"key": "c", "hal')
    assert [(n, r["key"]) for n, r in read_records(path)] == [(1, "a"), (3, "b")]
    assert path.read_text().endswith('"hal')  # a reader never changes the file
    with JsonlAppender(path) as appender:
        appender.write({"key": "c"})
    assert path.read_text() == '{"key": "a"}\n\n{"key": "b"}\n{"key": "c"}\n'
    assert repair_tail(path) == 0 and repair_tail(tmp_path / "missing.jsonl") == 0


def test_a_line_that_is_not_a_record_is_named_by_file_and_line_or_skipped_when_not_strict(tmp_path, caplog):
    path = tmp_path / "f.jsonl"
    path.write_text('{"key": "a"}\n[1, 2]\nnot json\n')
    with pytest.raises(ValueError, match=r"f\.jsonl:2: expected a JSON object, got list; remove the line or the file"):
        list(read_records(path))
    assert [n for n, _ in read_records(path, strict=False)] == [1]
    assert "f.jsonl:3: not a JSON line" in caplog.text
    no_key = lambda r: None if "key" in r else "needs 'key'"  # noqa: E731
    other = tmp_path / "g.jsonl"
    other.write_text('{"x": 1}\n')
    with pytest.raises(ValueError, match=r"g\.jsonl:1: needs 'key'; remove the line or the file"):
        list(read_records(other, no_key))
    with pytest.raises(ValueError, match=r"cannot append this record: needs 'key': \['x'\]"):
        JsonlAppender(tmp_path / "h.jsonl", no_key).write({"x": 1})


def test_write_atomic_replaces_the_whole_file(tmp_path):
    path = tmp_path / "sub" / "f.jsonl"
    write_atomic(path, [{"a": 1}])
    write_atomic(path, [{"b": 2}, {"c": "é"}])
    assert [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] == [{"b": 2}, {"c": "é"}]
    assert [p.name for p in path.parent.iterdir()] == ["f.jsonl"]
