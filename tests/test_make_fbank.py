"""Stage 1: local/make_fbank.sh + bccmt.bin.compute_fbank on a small data dir with bad inputs."""

import os
import subprocess
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from bccmt.audio import read_audio
from bccmt.features import FbankConfig, compute_fbank, load_fbank_config, utt_seed
from bccmt.io.tables import read_kv, read_lists

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "egs/voxceleb/conf/fbank.yaml"
ENV = dict(os.environ, PYTHONPATH=str(REPO), LC_ALL="C",
           PATH=f"{REPO / 'utils'}:{os.environ['PATH']}")

GOOD = {"id00001/v/00001": 1.0, "id00001/v/00002": 0.75, "id00002/v/00001": 1.3,
        "id00002/v/00002": 0.5}
BAD = {  # utt -> expected reason
    "id00001/v/00003": "unreadable audio",
    "id00001/v/00004": "truncated wav",
    "id00001/v/00005": "empty file",
    "id00002/v/00003": "too short: 160 samples",
    "id00002/v/00004": "sample rate 8000 Hz",
    "id00003/v/00001": "2 channels",
    "id00003/v/00002": "no such file",
    "id00003/v/00003": "command failed with exit status 1",
}


def noise(n, seed, channels=1):
    shape = (n,) if channels == 1 else (n, channels)
    return (0.1 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def build_data_dir(root: Path, with_bad: bool = True) -> Path:
    wavs = root / "wavs"
    wavs.mkdir(parents=True)
    scp = {}
    for i, (utt, sec) in enumerate(GOOD.items()):
        p = wavs / f"good{i}.wav"
        sf.write(str(p), noise(int(sec * 16000), i), 16000, subtype="PCM_16")
        scp[utt] = str(p)
    scp["id00002/v/00002"] = f"cat {scp['id00002/v/00002']} |"  # a good pipe entry
    if with_bad:
        bad = {u: str(wavs / f"bad{i}.wav") for i, u in enumerate(BAD)}
        Path(bad["id00001/v/00003"]).write_bytes(np.random.default_rng(0).bytes(4000))
        sf.write(str(wavs / "full.wav"), noise(16000, 9), 16000, subtype="PCM_16")
        Path(bad["id00001/v/00004"]).write_bytes((wavs / "full.wav").read_bytes()[:20000])
        Path(bad["id00001/v/00005"]).write_bytes(b"")
        sf.write(bad["id00002/v/00003"], noise(160, 1), 16000, subtype="PCM_16")
        sf.write(bad["id00002/v/00004"], noise(8000, 2), 8000, subtype="PCM_16")
        sf.write(bad["id00003/v/00001"], noise(16000, 3, channels=2), 16000, subtype="PCM_16")
        bad["id00003/v/00002"] = str(wavs / "does_not_exist.wav")
        bad["id00003/v/00003"] = f"cat {wavs}/nope.wav | cat |"
        scp.update(bad)
    data = root / "data"
    data.mkdir()
    keys = sorted(scp)
    (data / "wav.scp").write_text("".join(f"{k} {scp[k]}\n" for k in keys))
    (data / "utt2spk").write_text("".join(f"{k} {k.split('/')[0]}\n" for k in keys))
    (data / "utt2dur").write_text("".join(f"{k} 1.0\n" for k in keys))
    spks = sorted({k.split("/")[0] for k in keys})
    (data / "spk2utt").write_text(
        "".join(f"{s} {' '.join(k for k in keys if k.startswith(s + '/'))}\n" for s in spks))
    return data


def make_fbank(root: Path, *opts):
    cmd = ["bash", str(REPO / "local/make_fbank.sh"), "--fbank-config", str(CONF), *opts,
           str(root / "data"), str(root / "log"), str(root / "fbank")]
    return subprocess.run(cmd, capture_output=True, text=True, env=ENV, cwd=root)


def expected_feats(spec: str, utt: str, dither: float) -> np.ndarray:
    cfg = FbankConfig.from_dict({**load_fbank_config(CONF).to_dict(), "dither": dither})
    return compute_fbank(read_audio(spec), cfg, seed=utt_seed(utt))


def test_bad_inputs_are_skipped_with_reasons_and_removed(tmp_path):
    data = build_data_dir(tmp_path)
    wav_scp = read_kv(data / "wav.scp")
    # 8 of 12 bad: over the default 5% limit -> error, data dir left without features
    r = make_fbank(tmp_path, "--nj", "2")
    assert r.returncode == 1
    assert "8 of 12 utterances had no usable audio" in r.stderr
    assert not (data / "feats.scp").exists() and len(read_kv(data / "utt2spk")) == 12

    r = make_fbank(tmp_path, "--nj", "2", "--max-fail-fraction", "0.7")
    assert r.returncode == 0, r.stderr
    skipped = read_kv(tmp_path / "log" / "skipped_data")
    assert set(skipped) == set(BAD)
    for utt, reason in BAD.items():
        assert reason in skipped[utt], (utt, skipped[utt])
        assert utt in r.stderr
    # the bad utterances are gone from every table; the originals are backed up
    for name in ("wav.scp", "utt2spk", "utt2dur", "feats.scp", "utt2num_frames"):
        assert list(read_kv(data / name)) == sorted(GOOD), name
    assert read_lists(data / "spk2utt") == {"id00001": ["id00001/v/00001", "id00001/v/00002"],
                                            "id00002": ["id00002/v/00001", "id00002/v/00002"]}
    assert len(read_kv(data / ".backup" / "utt2spk")) == 12
    # the good utterances' features are intact: shape, frame count, values (seeded dither 1.0)
    feats = dict(kaldiio.load_scp(str(data / "feats.scp")).items())
    frames = read_kv(data / "utt2num_frames")
    for utt, sec in GOOD.items():
        n = int(sec * 16000)
        assert feats[utt].shape == ((n + 80) // 160, 80) and feats[utt].dtype == np.float32
        assert int(frames[utt]) == feats[utt].shape[0]
        np.testing.assert_array_equal(feats[utt], expected_feats(wav_scp[utt], utt, 1.0))
    assert load_fbank_config(data / "fbank.yaml") == load_fbank_config(CONF)
    log1 = (tmp_path / "log" / "make_fbank_data.1.log").read_text()
    assert "x real time" in log1 and "skipping utterance" in log1
    r = subprocess.run([str(REPO / "utils/validate_data_dir.py"), "--need-feats", str(data)],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr


def test_rerun_overwrites_without_duplicates(tmp_path):
    data = build_data_dir(tmp_path, with_bad=False)
    assert make_fbank(tmp_path, "--nj", "3").returncode == 0
    r = make_fbank(tmp_path, "--nj", "2", "--purpose", "extraction")
    assert r.returncode == 0, r.stderr
    lines = (data / "feats.scp").read_text().splitlines()
    assert [ln.split()[0] for ln in lines] == sorted(GOOD)
    assert not list((tmp_path / "fbank").glob("raw_fbank_data.3.*"))  # old job 3 output removed
    assert load_fbank_config(data / "fbank.yaml").dither == 0.0
    wav_scp = read_kv(data / "wav.scp")
    for utt, mat in kaldiio.load_scp(str(data / "feats.scp")).items():
        np.testing.assert_array_equal(mat, expected_feats(wav_scp[utt], utt, 0.0))
    assert "local/make_fbank.sh --fbank-config" in r.stderr  # echoes its command line


def test_compressed_features(tmp_path):
    """--compress true: Kaldi "CM" matrices, a quarter of the bytes, within the format's error of
    the float32 features; the training crops read them."""
    data = build_data_dir(tmp_path, with_bad=False)
    r = make_fbank(tmp_path, "--nj", "2", "--purpose", "extraction", "--compress", "true")
    assert r.returncode == 0, r.stderr
    wav_scp = read_kv(data / "wav.scp")
    feats = read_kv(data / "feats.scp")
    for utt, spec in feats.items():
        path, offset = spec.rsplit(":", 1)
        with open(path, "rb") as f:
            f.seek(int(offset))
            assert f.read(5) == b"\0BCM ", utt
        mat = kaldiio.load_mat(spec)
        want = expected_feats(wav_scp[utt], utt, 0.0)
        assert mat.shape == want.shape and int(read_kv(data / "utt2num_frames")[utt]) == len(want)
        # one byte per value over the column's quantile range: error < 1/64 of it
        tol = (want.max(0) - want.min(0)) / 64 + 1e-4
        assert (np.abs(mat - want) <= tol).all(), utt
    cm_bytes = sum(p.stat().st_size for p in (tmp_path / "fbank").glob("*.ark"))
    assert make_fbank(tmp_path, "--nj", "2", "--purpose", "extraction").returncode == 0
    fm_bytes = sum(p.stat().st_size for p in (tmp_path / "fbank").glob("*.ark"))
    assert cm_bytes < 0.3 * fm_bytes
    r = make_fbank(tmp_path, "--compress", "yes")
    assert r.returncode == 1 and "--compress expects true or false, got 'yes'" in r.stderr


def test_job_fail_policy_leaves_nothing_finished(tmp_path):
    data = build_data_dir(tmp_path)
    out = tmp_path / "job" / "raw"
    r = subprocess.run(["python", "-m", "bccmt.bin.compute_fbank", "--on-error", "fail",
                        str(data / "wav.scp"), str(out)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 1
    assert "utterance id00001/v/00003" in r.stderr and "unreadable audio" in r.stderr
    assert os.listdir(tmp_path / "job") == []
    r = make_fbank(tmp_path, "--nj", "2", "--on-error", "fail")
    assert r.returncode == 1 and "feature extraction failed" in r.stderr
    assert not (data / "feats.scp").exists()


def test_missing_input_and_bad_config(tmp_path):
    build_data_dir(tmp_path, with_bad=False)
    (tmp_path / "data" / "wav.scp").unlink()
    r = make_fbank(tmp_path)
    assert r.returncode == 1 and "no such file" in r.stderr and "wav.scp" in r.stderr
    data = build_data_dir(tmp_path / "b", with_bad=False)
    bad_conf = tmp_path / "bad.yaml"
    bad_conf.write_text("num_mel_bins: 80\nditherr: 1\n")
    r = subprocess.run(["bash", str(REPO / "local/make_fbank.sh"), "--fbank-config", str(bad_conf),
                        str(data), str(tmp_path / "log"), str(tmp_path / "fbank")],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 1 and "unknown key(s) ditherr" in r.stderr


def test_progress_lines_and_interrupted_job(tmp_path, monkeypatch):
    from bccmt.features import job

    data = build_data_dir(tmp_path, with_bad=False)
    r = subprocess.run(["python", "-m", "bccmt.bin.compute_fbank", "--progress-every", "2",
                        str(data / "wav.scp"), str(tmp_path / "ok" / "raw")],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "processed 2/4 utterances" in r.stderr and "processed 4/4 utterances" in r.stderr
    assert "x real time" in r.stderr
    # a job killed half-way (here: interrupted at the 3rd utterance) leaves no finished-looking
    # output, and a stale scp of an earlier run is gone too
    out = tmp_path / "killed" / "raw"
    out.parent.mkdir()
    (out.parent / "raw.scp").write_text("id00001/v/00001 stale.ark:1\n")
    calls = []

    def flaky_read(spec, **kw):
        calls.append(spec)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return read_audio(spec, **kw)

    monkeypatch.setattr(job, "read_audio", flaky_read)
    with pytest.raises(KeyboardInterrupt):
        job.dump_fbank(str(data / "wav.scp"), str(out), FbankConfig())
    assert os.listdir(out.parent) == []


def test_training_and_extraction_features_agree(tmp_path):
    """The same audio gives the same features on the training path (stage-1 dump -> feats.scp ->
    training crops) and on the extraction path (wav.scp on the fly, stage 4 and the bccmt
    command) when the dither is the same (0): one fbank, one CMN."""
    from bccmt.config import DataSection
    from bccmt.embed import FeatureSource
    from bccmt.features import apply_cmn
    from bccmt.train.data import CropDataset

    data = build_data_dir(tmp_path, with_bad=False)
    r = make_fbank(tmp_path, "--purpose", "extraction", "--nj", "2")
    assert r.returncode == 0, r.stderr
    features = load_fbank_config(data / "fbank.yaml")
    assert features.dither == 0.0
    stored = FeatureSource(data, features)  # feats.scp, as the dump wrote it
    assert stored.use_feats
    wav_only = tmp_path / "wav_only"
    wav_only.mkdir()
    for name in ("wav.scp", "utt2spk", "spk2utt"):
        (wav_only / name).write_bytes((data / name).read_bytes())
    on_the_fly = FeatureSource(wav_only, features)
    assert not on_the_fly.use_feats
    crops = CropDataset(data, DataSection(crop_seconds=0.3, min_seconds=0.1), FbankConfig(), 0)
    for i, utt in enumerate(crops.utts):
        a, b = stored(utt), on_the_fly(utt)
        np.testing.assert_array_equal(a, b)
        crop = crops.load_crop(i, np.random.default_rng(0), augment=False)
        # the training crop is a mean-normalised window of the same features
        assert any(np.allclose(apply_cmn(a[s:s + crop.shape[0]]), crop, atol=1e-5)
                   for s in range(a.shape[0] - crop.shape[0] + 1)), utt
