"""Kaldi text tables: parsing errors name file:line, writers sort (LC_ALL=C) and are atomic."""

import pytest

from bccmt.io import TableError, atomic_write, read_kv, read_lists, read_trials, write_kv, write_lists


def test_read_kv_keeps_pipe_commands(tmp_path):
    p = tmp_path / "wav.scp"
    p.write_text("u1 /a/b.wav\nu2 sox x.wav -t wav - |\n\n")
    assert read_kv(p) == {"u1": "/a/b.wav", "u2": "sox x.wav -t wav - |"}


def test_read_kv_duplicate_names_both_lines(tmp_path):
    p = tmp_path / "utt2spk"
    p.write_text("a s1\nb s1\na s2\n")
    with pytest.raises(TableError, match=r"utt2spk:3: duplicate key 'a' \(first on line 1\)"):
        read_kv(p)


def test_read_kv_missing_value(tmp_path):
    p = tmp_path / "utt2spk"
    p.write_text("a s1\nb\n")
    with pytest.raises(TableError, match=r"utt2spk:2: key 'b' has no value"):
        read_kv(p)


def test_read_missing_file(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        read_kv(tmp_path / "nope")


def test_write_sorted_c_locale_and_roundtrip(tmp_path):
    p = tmp_path / "spk2utt"
    write_lists(p, {"b": ["u2", "U1"], "B": ["x"], "a": ["u3"]})
    assert p.read_text().splitlines() == ["B x", "a u3", "b U1 u2"]
    assert read_lists(p) == {"B": ["x"], "a": ["u3"], "b": ["U1", "u2"]}
    with pytest.raises(TableError, match="duplicate"):
        write_kv(p, [("a", 1), ("a", 2)])
    assert read_lists(p)["a"] == ["u3"]  # the failed write left the old table alone


def test_atomic_write_leaves_old_file_on_error(tmp_path):
    p = tmp_path / "t"
    p.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(p) as f:
            f.write("new\n")
            raise RuntimeError("boom")
    assert p.read_text() == "old\n"
    assert [x.name for x in tmp_path.iterdir()] == ["t"]


def test_read_trials(tmp_path):
    p = tmp_path / "trials"
    p.write_text("e1 t1 target\ne1 t2 nontarget\n")
    assert read_trials(p) == [("e1", "t1", True), ("e1", "t2", False)]
    p.write_text("e1 t1 target\ne1 t2 1\n")
    with pytest.raises(TableError, match=r"trials:2: expected"):
        read_trials(p)
    # without a key: the label is optional, a missing one is None; the keyed reader refuses it
    p.write_text("e1 t1\ne1 t2 nontarget\n")
    assert read_trials(p, labels=False) == [("e1", "t1", None), ("e1", "t2", False)]
    with pytest.raises(TableError, match=r"trials:1: expected 'enroll test target\|nontarget'"):
        read_trials(p)
    p.write_text("\n")
    with pytest.raises(TableError, match="no trials"):
        read_trials(p, labels=False)


def test_c_order_is_kaldi_byte_order():
    from bccmt.io import c_order

    keys = ["b", "B", "a-1", "a_1", "\u00e9", "z"]
    assert sorted(keys, key=c_order) == ["B", "a-1", "a_1", "b", "z", "\u00e9"]


def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path):
    import os
    import stat

    from bccmt.train.checkpoint import save_atomic

    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "t") as f:
            f.write("x\n")
        save_atomic({"a": 1}, tmp_path / "c.pt")
        (tmp_path / "plain").write_text("x\n")
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert want == 0o640
    for name in ("t", "c.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name
