"""One table across runs with different max_turns (issue 18): a row per run, its protocol and max_turns."""

from __future__ import annotations

import json

from ground_r1.cli import compare_general
from ground_r1.evaluation.settings_table import read_run, render_settings_markdown

HEADER = "benchmark,metric,rule,variant,score,se,items,skipped,unparsed,left_out,notes,error_bar\n"


def _run(root, turns, score, protocol="ground_r1"):
    (root / "vstar").mkdir(parents=True)
    (root / "summary.csv").write_text(HEADER + f"vstar,accuracy,ours,no,{score},1.5,191,0,3,0,,mean\n")
    (root / "vstar" / "inference_config.json").write_text(json.dumps({"protocol": protocol, "max_turns": turns}))
    return root


def test_a_row_per_setting(tmp_path, capsys) -> None:
    r12, r6 = _run(tmp_path / "t12", 12, 61.25), _run(tmp_path / "t6", 6, 58.0)
    direct = _run(tmp_path / "direct", 5, 40.0, protocol="baseline")
    rows = read_run(r12) + read_run(r6) + read_run(direct)
    assert [(r["max_turns"], r["protocol"]) for r in rows] == [(12, "ground_r1"), (6, "ground_r1"), (5, "baseline")]
    table = render_settings_markdown(rows).splitlines()
    assert table[2] == f"| vstar | accuracy | ours | baseline | n/a | 40.0 ± 1.5 | 191 | {direct} |"
    assert table[3] == f"| vstar | accuracy | ours | ground_r1 | 6 | 58.0 ± 1.5 | 191 | {r6} |"
    assert table[4] == f"| vstar | accuracy | ours | ground_r1 | 12 | 61.2 ± 1.5 | 191 | {r12} |"
    assert compare_general.main([str(r12), str(tmp_path / "nothing")]) == 1
    assert "summary.csv not found" in capsys.readouterr().err
