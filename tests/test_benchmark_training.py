"""The training benchmark's log parsing and table (the timed runs themselves are not tests)."""

import pytest

from bccmt.studies.training_benchmark import BenchmarkError, _rate, make_data_dir, table


def test_rate_is_the_median_after_the_warm_up_epoch(tmp_path):
    from bccmt.train.checkpoint import write_history

    write_history(tmp_path / "history.jsonl", [{"epoch": float(e), "samples_per_s": r}
                                               for e, r in ((1, 2.0), (2, 10.0), (3, 14.0))])
    assert _rate(tmp_path) == 12.0
    (tmp_path / "history.jsonl").write_text('{"epoch": 1.0, "samples_per_s": 2.0}\n')
    with pytest.raises(BenchmarkError, match="history.jsonl: no epoch-end rate after epoch 1"):
        _rate(tmp_path)


def test_rate_of_a_baseline_checkout_without_history_file(tmp_path):
    (tmp_path / "train.log").write_text(
        "x INFO epoch 1 done: loss 1 samples_per_s 2.0 minutes 1; saved a\n"
        "x INFO epoch 2 done: loss 1 samples_per_s 10.0 minutes 1; saved b\n"
        "x INFO epoch 3 done: loss 1 samples_per_s 14.0 minutes 1; saved c\n"
        "x INFO epoch 4 done: loss 1 samples_per_s 12.0 minutes 1; saved d\n")
    assert _rate(tmp_path) == 12.0
    (tmp_path / "train.log").write_text("x INFO epoch 1 done: samples_per_s 2.0\n")
    with pytest.raises(BenchmarkError, match="no epoch-end rate after epoch 1"):
        _rate(tmp_path)


def test_table_reports_medians_and_ratios_to_the_first_root():
    res = {"baseline": {"tiny/1t": [10.0, 30.0, 20.0]}, "current": {"tiny/1t": [50.0, 40.0]}}
    text = table(res, ["tiny"], ["1t"])
    assert "| tiny | 1t | 20.0 | 45.0 | 2.25x |" in text


def test_synthetic_data_dir_is_a_valid_training_dir(tmp_path):
    from pathlib import Path

    from bccmt.data.datadir import find_problems

    fbank = Path(__file__).resolve().parents[1] / "egs" / "voxceleb" / "conf" / "fbank.yaml"
    d = make_data_dir(tmp_path / "d", fbank, speakers=3, utts=2, frames=60)
    assert find_problems(d, need_feats=True, need_wav=False) == []


def test_crop_length_roots_pass_their_crop_to_the_training_command(tmp_path):
    from pathlib import Path

    from bccmt.studies.training_benchmark import Root, _train_cmd, with_crop_lengths

    roots = with_crop_lengths([Root("current", Path("/src"), {})], [2.0, 1.0])
    assert [r.label for r in roots] == ["current_2s", "current_1s"]
    cmd = _train_cmd(roots[1], "tiny_kd", tmp_path / "d", tmp_path / "e", 1, 3, 96, tmp_path / "t")
    sets = cmd[cmd.index("--set") + 1:]
    assert sets[-1] == "data.crop_seconds=1.0" and "train.epochs=3" in sets
    assert cmd[cmd.index("--teacher-exp") + 1] == str(tmp_path / "t")
