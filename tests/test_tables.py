"""One table printer (ocdsl.tables) behind the run summary, --seeds and ocdsl check."""

from __future__ import annotations

import pytest

from ocdsl.tables import text_table


def test_columns_align_as_asked_and_lines_end_without_spaces():
    text = text_table(["name", "value", "note"], [["a", "1.5", ""], ["longer", "10", "x"]], "lrl")
    assert text.splitlines() == [
        "name    value  note",
        "------  -----  ----",
        "a         1.5",
        "longer     10  x",
    ]


def test_the_last_alignment_letter_repeats():
    assert text_table(["k", "a", "bbb"], [["x", "1", "22"]], "lr").splitlines()[2] == "x  1   22"
    assert text_table(["k", "a"], [["xx", "1"]]).splitlines()[2] == "xx  1"


@pytest.mark.parametrize("rows, align, match", [
    ([["only one"]], "l", "a row has 1 cells, the header 2"),
    ([["a", "b"]], "lc", "align"),
    ([["a", "b"]], "", "align"),
])
def test_bad_tables_are_value_errors(rows, align, match):
    with pytest.raises(ValueError, match=match):
        text_table(["h1", "h2"], rows, align)


def test_the_run_summary_and_seeds_tables_use_it():
    from ocdsl.train.report import summary_table
    from ocdsl.train.seeds import seeds_table

    evals = {"test": {"metrics": {"ari_fg": 0.91234, "mse": 0.0123}, "count": 320, "step": 3000},
             "real_tetrominoes": {"metrics": {"ari_fg": 0.5}, "count": 10, "step": 3000}}
    assert summary_table(evals, ["ari_fg"]).splitlines() == [
        "dataset           ari_fg     mse  count  step",
        "----------------  ------  ------  -----  ----",
        "test              0.9123  0.0123    320  3000",
        "real_tetrominoes  0.5000       -     10  3000",
    ]
    summary = {"seeds": [0, 1, 12], "success": "ari_fg >= 0.9", "failed": 1, "not_run": [12],
               "runs": [{"seed": 0, "failed": False, "reasons": []},
                        {"seed": 1, "failed": True, "reasons": ["ari_fg 0.5 < 0.9"]}],
               "aggregate": {"test": {"ari_fg": {"mean": 0.7, "std": 0.2, "n": 2,
                                                 "per_seed": {"0": 0.9, "1": 0.5}}}}}
    assert seeds_table(summary).splitlines()[:4] == [
        "dataset  metric       mean ± std  n  seed 0  seed 1  seed 12",
        "-------  ------  ---------------  -  ------  ------  -------",
        "test     ari_fg  0.7000 ± 0.2000  2  0.9000  0.5000        -",
        "result                                 pass    FAIL  not run",
    ]


def test_the_symmetry_table_uses_it():
    from ocdsl.invariance import format_table
    from ocdsl.invariance.search import Result

    rs = [Result("permutation_equivariance K", "slots", 20, 1.2e-7, True, tolerance="1e-05"),
          Result("translation_equivariance H W", "loc", 3, float("inf"), False, tolerance="1e-4")]
    assert format_table(rs).splitlines() == [
        "property                      node   examples  largest deviation  tolerance  result",
        "----------------------------  -----  --------  -----------------  ---------  ------",
        "permutation_equivariance K    slots        20            1.2e-07  1e-05      pass",
        "translation_equivariance H W  loc           3        inf (error)  1e-4       FAIL",
    ]
