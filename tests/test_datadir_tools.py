"""bccmt.data.datadir and the utils/ data-dir scripts: conversions, validation messages, fix, subset,
combine, split_scp, filter_scp."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bccmt.data import datadir, edit
from bccmt.data.datadir import DataDirError

REPO = Path(__file__).resolve().parents[1]

UTTS = {  # utt -> spk; two speakers with 3 utterances, one with 2
    "id00001/vA/00001": "id00001", "id00001/vA/00002": "id00001", "id00001/vB/00001": "id00001",
    "id00002/vC/00001": "id00002", "id00002/vC/00002": "id00002",
    "id00003/vD/00001": "id00003", "id00003/vD/00002": "id00003", "id00003/vE/00001": "id00003",
}


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def make_dir(d, utts=UTTS, feats=False):
    d.mkdir(parents=True, exist_ok=True)
    keys = sorted(utts)
    write(d / "utt2spk", [f"{u} {utts[u]}" for u in keys])
    spk2utt = datadir.utt2spk_to_spk2utt({u: utts[u] for u in keys})
    write(d / "spk2utt", [f"{s} {' '.join(us)}" for s, us in sorted(spk2utt.items())])
    write(d / "wav.scp", [f"{u} /corpus/{u}.wav" for u in keys])
    write(d / "utt2dur", [f"{u} 2.5" for u in keys])
    if feats:
        write(d / "feats.scp", [f"{u} fbank/raw.ark:{i * 10}" for i, u in enumerate(keys)])
        write(d / "utt2num_frames", [f"{u} 248" for u in keys])
    return d


def cli(script, *args, stdin=None):
    env = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C")
    return subprocess.run([sys.executable, str(REPO / "utils" / script), *map(str, args)],
                          capture_output=True, text=True, env=env, input=stdin)


def test_conversions_round_trip():
    utt2spk = {"a1": "a", "a2": "a", "b1": "b"}
    assert datadir.utt2spk_to_spk2utt(utt2spk) == {"a": ["a1", "a2"], "b": ["b1"]}
    assert datadir.spk2utt_to_utt2spk({"a": ["a1", "a2"], "b": ["b1"]}) == utt2spk
    with pytest.raises(DataDirError, match="'a1' is listed under speakers 'a' and 'b'"):
        datadir.spk2utt_to_utt2spk({"a": ["a1"], "b": ["a1"]})


def test_conversion_clis_stdin_and_file(tmp_path):
    r = cli("utt2spk_to_spk2utt.py", stdin="a1 a\na2 a\nb1 b\n")
    assert r.returncode == 0 and r.stdout == "a a1 a2\nb b1\n"
    write(tmp_path / "spk2utt", ["a a1 a2", "b b1"])
    r = cli("spk2utt_to_utt2spk.py", tmp_path / "spk2utt")
    assert r.returncode == 0 and r.stdout == "a1 a\na2 a\nb1 b\n"


def test_valid_dir(tmp_path):
    d = make_dir(tmp_path / "d", feats=True)
    assert datadir.validate(d, need_feats=True) == {"utterances": 8, "speakers": 3}
    r = cli("validate_data_dir.py", "--need-feats", d)
    assert r.returncode == 0, r.stderr
    assert "8 utterances, 3 speakers" in r.stderr


def test_unsorted_names_file_and_line(tmp_path):
    d = make_dir(tmp_path / "d")
    lines = (d / "wav.scp").read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    write(d / "wav.scp", lines)
    r = cli("validate_data_dir.py", d)
    assert r.returncode == 1
    assert (f"{d}/wav.scp:4: not sorted: 'id00001/vB/00001' comes after 'id00002/vC/00001'"
            in r.stderr)
    assert "Traceback" not in r.stderr


def test_duplicate_key(tmp_path):
    d = make_dir(tmp_path / "d")
    with open(d / "utt2dur", "a") as f:
        f.write("id00003/vE/00001 1.0\n")
    with pytest.raises(DataDirError,
                       match=r"utt2dur:9: duplicate key 'id00003/vE/00001' \(first on line 8\)"):
        datadir.validate(d)


def test_utt2spk_spk2utt_disagree(tmp_path):
    d = make_dir(tmp_path / "d")
    write(d / "spk2utt", ["id00001 id00001/vA/00001 id00001/vA/00002",
                          "id00002 id00002/vC/00001 id00002/vC/00002",
                          "id00003 id00003/vD/00001 id00003/vD/00002 id00003/vE/00001"])
    r = cli("validate_data_dir.py", d)
    assert r.returncode == 1
    assert "spk2utt: disagrees with utt2spk for 1 speakers, e.g. id00001" in r.stderr


def test_missing_wav_entry_and_extra_feats(tmp_path):
    d = make_dir(tmp_path / "d", feats=True)
    write(d / "wav.scp", [line for line in (d / "wav.scp").read_text().splitlines()
                          if not line.startswith("id00002/vC/00002")])
    with open(d / "feats.scp", "a") as f:
        f.write("id00004/vZ/00001 fbank/raw.ark:99\n")
    problems = datadir.find_problems(d, need_feats=True)
    assert len(problems) == 2
    assert problems[0].startswith(f"{d}/wav.scp: no entry for 1 of the 8 utterances in utt2spk, "
                                  "e.g. id00002/vC/00002; run utils/fix_data_dir.py")
    assert problems[1].startswith(
        f"{d}/feats.scp: 1 utterances not in utt2spk, e.g. id00004/vZ/00001")


def test_required_files_and_bad_numbers(tmp_path):
    d = make_dir(tmp_path / "d")
    (d / "spk2utt").unlink()
    write(d / "utt2dur", [f"{u} {'-1' if i == 4 else '2.0'}" for i, u in enumerate(sorted(UTTS))])
    problems = datadir.find_problems(d, need_feats=True)
    assert f"{d}/spk2utt: missing (utils/fix_data_dir.py {d} rebuilds it from utt2spk)" in problems
    assert f"{d}/feats.scp: missing" in problems
    assert f"{d}/utt2dur:5: value '-1' of 'id00002/vC/00002' is not a positive number" in problems
    assert datadir.find_problems(make_dir(tmp_path / "e"), need_wav=True) == []
    (tmp_path / "e" / "wav.scp").unlink()
    assert datadir.find_problems(tmp_path / "e", need_wav=False) == []
    assert cli("validate_data_dir.py", "--no-wav", tmp_path / "e").returncode == 0


def test_speaker_prefix_rule(tmp_path):
    d = make_dir(tmp_path / "d", utts={"a1": "z", "b1": "a"})
    problems = datadir.find_problems(d)
    assert any("utterance ids must start with their speaker id" in p for p in problems)


def test_fix_drops_and_backs_up(tmp_path):
    d = make_dir(tmp_path / "d", feats=True)
    original_wav = (d / "wav.scp").read_text()
    write(d / "feats.scp", [line for line in (d / "feats.scp").read_text().splitlines()
                            if "id00002/vC" not in line])
    with open(d / "utt2dur", "a") as f:  # an extra, unsorted entry only in utt2dur
        f.write("id00000/vX/00001 1.0\n")
    r = cli("fix_data_dir.py", d)
    assert r.returncode == 0, r.stderr
    assert "kept 6 of 8 utterances (dropped 2)" in r.stderr
    assert datadir.validate(d, need_feats=True) == {"utterances": 6, "speakers": 2}
    assert "id00002" not in (d / "spk2utt").read_text()
    assert (d / ".backup" / "wav.scp").read_text() == original_wav
    assert "id00000/vX/00001" in (d / ".backup" / "utt2dur").read_text()
    assert edit.fix(d) == {"kept": 6, "dropped": 0}


def test_subset_n_seeded_and_lists(tmp_path):
    src = make_dir(tmp_path / "src", feats=True)
    (src / "fbank.yaml").write_text("num_mel_bins: 80\n")
    a = edit.subset(src, tmp_path / "a", n=4, seed=3)
    edit.subset(src, tmp_path / "b", n=4, seed=3)
    assert a["utterances"] == 4
    assert (tmp_path / "a" / "utt2spk").read_text() == (tmp_path / "b" / "utt2spk").read_text()
    datadir.validate(tmp_path / "a", need_feats=True)
    assert (tmp_path / "a" / "fbank.yaml").read_text() == "num_mel_bins: 80\n"
    write(tmp_path / "spk.list", ["id00003"])
    r = cli("subset_data_dir.py", "--spk-list", tmp_path / "spk.list", src, tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c" / "spk2utt").read_text() == \
        "id00003 id00003/vD/00001 id00003/vD/00002 id00003/vE/00001\n"
    write(tmp_path / "utt.list", ["id00001/vB/00001", "nosuch/utt"])
    r = cli("subset_data_dir.py", "--utt-list", tmp_path / "utt.list", src, tmp_path / "e")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "e" / "utt2spk").read_text() == "id00001/vB/00001 id00001\n"
    r = cli("subset_data_dir.py", "--seed", "3", src, "4", tmp_path / "g")  # Kaldi's order
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "g" / "utt2spk").read_text() == (tmp_path / "a" / "utt2spk").read_text()
    r = cli("subset_data_dir.py", "20", src, tmp_path / "f")
    assert r.returncode == 1 and "asked for 20 utterances" in r.stderr


def test_combine_and_duplicates(tmp_path):
    a = make_dir(tmp_path / "a")
    b = make_dir(tmp_path / "b", utts={f"{u}-reverb": s for u, s in UTTS.items()})
    r = cli("combine_data_dir.py", tmp_path / "ab", a, b)
    assert r.returncode == 0, r.stderr
    assert datadir.validate(tmp_path / "ab") == {"utterances": 16, "speakers": 3}
    assert (tmp_path / "ab" / "spk2utt").read_text().splitlines()[1] == (
        "id00002 id00002/vC/00001 id00002/vC/00001-reverb id00002/vC/00002 id00002/vC/00002-reverb")
    c = make_dir(tmp_path / "c", utts={"id00002/vC/00002": "id00002", "id00009/v/1": "id00009"})
    r = cli("combine_data_dir.py", tmp_path / "abc", a, c)
    assert r.returncode == 1
    assert "1 utterance ids occur in more than one source, e.g. id00002/vC/00002" in r.stderr
    assert f"'id00002/vC/00002' is in {a} and {c}" in r.stderr
    assert not (tmp_path / "abc").exists()


def test_combine_copies_matching_feature_config_only(tmp_path):
    a = make_dir(tmp_path / "a")
    b = make_dir(tmp_path / "b", utts={f"{u}-noise": s for u, s in UTTS.items()})
    (a / "fbank.yaml").write_text("dither: 1.0\n")
    (b / "fbank.yaml").write_text("dither: 1.0\n")
    edit.combine(tmp_path / "ab", a, b)
    assert (tmp_path / "ab" / "fbank.yaml").read_text() == "dither: 1.0\n"
    (b / "fbank.yaml").write_text("dither: 0.0\n")
    with pytest.raises(DataDirError, match="fbank.yaml differs between"):
        edit.combine(tmp_path / "ab2", a, b)
    assert not (tmp_path / "ab2").exists()


def test_split_scp_plain_and_by_speaker():
    keys = sorted(UTTS)
    assert [len(p) for p in datadir.split_scp(keys, 3)] == [3, 3, 2]
    parts = datadir.split_scp(keys, 3, utt2spk=UTTS)
    assert [{UTTS[u] for u in p} for p in parts] == [{"id00001"}, {"id00002"}, {"id00003"}]
    parts = datadir.split_scp(keys, 2, utt2spk=UTTS)
    assert sum(parts, []) == keys
    assert not {UTTS[u] for u in parts[0]} & {UTTS[u] for u in parts[1]}
    with pytest.raises(DataDirError, match="refusing to split 3 speakers into 4 parts"):
        datadir.split_scp(keys, 4, utt2spk=UTTS)
    with pytest.raises(DataDirError, match="speaker 'a' is not contiguous"):
        datadir.split_scp(["a1", "b1", "a2"], 2, utt2spk={"a1": "a", "b1": "b", "a2": "a"})


def test_split_balances_uneven_speakers():
    sizes = [10, 1, 1, 1, 1, 6]
    utt2spk = {f"s{s}-{i:02d}": f"s{s}" for s, n in enumerate(sizes) for i in range(n)}
    parts = datadir.split_scp(sorted(utt2spk), 2, utt2spk=utt2spk)
    assert [len(p) for p in parts] == [10, 10]


def test_split_scp_cli(tmp_path):
    d = make_dir(tmp_path / "d")
    outs = [tmp_path / f"wav.{i}.scp" for i in (1, 2, 3)]
    r = cli("split_scp.py", "--utt2spk", d / "utt2spk", d / "wav.scp", *outs)
    assert r.returncode == 0, r.stderr
    assert outs[1].read_text() == ("id00002/vC/00001 /corpus/id00002/vC/00001.wav\n"
                                   "id00002/vC/00002 /corpus/id00002/vC/00002.wav\n")
    assert "".join(o.read_text() for o in outs) == (d / "wav.scp").read_text()
    r = cli("split_scp.py", "--utt2spk", d / "utt2spk", d / "wav.scp", *outs, tmp_path / "4")
    assert r.returncode == 1 and "refusing to split 3 speakers into 4 parts" in r.stderr
    write(tmp_path / "trials", ["a x target", "a y nontarget", "b x nontarget"])  # any lines
    r = cli("split_scp.py", tmp_path / "trials", *outs[:2])
    assert r.returncode == 0, r.stderr
    assert outs[0].read_text() == "a x target\na y nontarget\n"
    assert outs[1].read_text() == "b x nontarget\n"


def test_filter_scp(tmp_path):
    assert datadir.filter_scp(["b", "x"], {"a": "1", "b": "2", "c": "3"}) == {"b": "2"}
    assert datadir.filter_scp(["b"], {"a": "1", "b": "2", "c": "3"}, exclude=True) == \
        {"a": "1", "c": "3"}
    d = make_dir(tmp_path / "d")
    write(tmp_path / "ids", ["id00003/vE/00001 whatever", "id00001/vA/00001"])
    r = cli("filter_scp.py", tmp_path / "ids", d / "utt2dur")
    assert r.returncode == 0 and r.stdout == "id00001/vA/00001 2.5\nid00003/vE/00001 2.5\n"
    r = cli("filter_scp.py", "--exclude", tmp_path / "ids", d / "utt2dur")
    assert r.stdout.count("\n") == 6 and "id00003/vE/00001" not in r.stdout
    r = cli("filter_scp.py", tmp_path / "nope", d / "utt2dur")
    assert r.returncode == 1
    assert r.stderr.strip() == f"filter_scp.py: {tmp_path}/nope: No such file or directory"
    write(tmp_path / "trials", ["a x target", "a y nontarget", "b x nontarget"])  # repeated keys
    r = cli("filter_scp.py", "--exclude", tmp_path / "ids", tmp_path / "trials")
    assert r.returncode == 0 and r.stdout == "a x target\na y nontarget\nb x nontarget\n"
    r = cli("filter_scp.py", "-", tmp_path / "trials", stdin="a\n")
    assert r.stdout == "a x target\na y nontarget\n"


def test_scripts_are_executable():
    for name in ("utt2spk_to_spk2utt.py", "spk2utt_to_utt2spk.py", "validate_data_dir.py",
                 "fix_data_dir.py", "subset_data_dir.py", "combine_data_dir.py", "split_scp.py",
                 "filter_scp.py", "run.py"):
        path = REPO / "utils" / name
        assert os.access(path, os.X_OK), name
        assert path.read_text().startswith("#!/usr/bin/env python3\n"), name
