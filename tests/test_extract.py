"""Embedding extraction: bit-identical reruns, one embedding per utterance, the graph's chunks and
length cut, batching, checks."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from bccmt.embed import (ExtractConfig, ExtractError, FeatureSource, check_one_per_utterance,
                         embed_utterances, extract_job, speaker_means)
from bccmt.features import FbankConfig, apply_cmn, silence_floor
from bccmt.inputs import EmbeddingGraph, chunk_index
from bccmt.io.tables import write_kv
from bccmt.io.vectors import read_vectors, write_vectors

REPO = Path(__file__).resolve().parents[1]
FEATS = {"sample_rate": 16000, "num_mel_bins": 80, "dither": 1.0}
FEATS_CFG = FbankConfig.from_dict(FEATS)


def make_exp(path, name="bccmt_tiny", features=FEATS):
    """A fake exp dir in the checkpoint contract format (config.yaml + models/final.pt)."""
    from bccmt.models import build_model

    torch.manual_seed(0)
    model = build_model(name)
    (path / "models").mkdir(parents=True)
    with open(path / "config.yaml", "w") as f:
        yaml.safe_dump({"model": {"name": name, "args": {}}, "features": dict(features),
                        "seed": 7}, f)
    torch.save({"model_name": name, "model_args": {}, "state_dict": model.state_dict(),
                "spk2idx": {"a": 0}, "epochs_averaged": [1]}, path / "models" / "final.pt")
    return path


def make_data(path, lengths, fbank=None, n_spk=2):
    """A data dir with random fbank-like feats.scp, utt2spk and fbank.yaml (dither 0)."""
    rng = np.random.default_rng(1)
    path.mkdir(parents=True)
    utts = {f"id1000{i % n_spk}/vid/{i:05d}": rng.normal(5, 2, size=(t, 80)).astype(np.float32)
            for i, t in enumerate(lengths)}
    import kaldiio

    kaldiio.save_ark(str(path / "feats.ark"), utts, scp=str(path / "feats.scp"))
    write_kv(path / "utt2spk", {u: u.split("/")[0] for u in utts})
    write_kv(path / "wav.scp", {u: "/nonexistent.wav" for u in utts})
    with open(path / "fbank.yaml", "w") as f:
        yaml.safe_dump(dict(fbank or {**FEATS, "dither": 0.0}), f)
    return path, utts


@pytest.fixture(scope="module")
def exp(tmp_path_factory):
    return make_exp(tmp_path_factory.mktemp("exp") / "bccmt_tiny")


def test_chunk_index():
    def chunks(t, max_chunk=3000, q=16, min_frames=50):
        idx = chunk_index(t, min_frames, max_chunk, q).numpy()
        return idx.shape, idx[:, 0].tolist()

    assert chunks(100) == ((1, 96), [2])  # central 96 frames
    assert chunks(50) == ((1, 50), [0]) and chunks(61) == ((1, 50), [5])  # never below min_frames
    assert chunks(3000) == ((1, 2992), [4])
    assert chunks(3001) == ((2, 1488), [6, 1506])  # segments 0-1499, 1500-3000
    assert chunks(7000, q=1) == ((3, 2333), [0, 2333, 4666])
    idx = chunk_index(250, 50, 100, 1).numpy()  # 3 segments of 83/83/84 frames, chunks of 83
    assert idx.shape == (3, 83) and idx[:, 0].tolist() == [0, 83, 166]
    assert all(np.array_equal(r, np.arange(r[0], r[0] + 83)) for r in idx)  # contiguous


def test_graph_steps_by_hand(exp):
    """EmbeddingGraph = floor, tiling, central chunks, CMN per chunk, model, chunk mean."""
    from bccmt.exp import load_embedding_model

    model, _ = load_embedding_model(exp)
    floor = silence_floor(FEATS_CFG)
    graph = EmbeddingGraph(model, floor, max_chunk_frames=100, length_quantum=16)
    rng = np.random.default_rng(0)
    feats = rng.normal(0, 3, size=(250, 80)).astype(np.float32)
    feats[100:140] = -20.0  # digital silence: floored
    x = np.maximum(feats, floor)
    with torch.inference_mode():
        got = graph(torch.from_numpy(feats)[None])[0].numpy()
        # 3 segments (0-82, 83-165, 166-249), each cut to its central 80 frames
        parts = [model(torch.from_numpy(apply_cmn(x[s:s + 80]))[None])[0].numpy()
                 for s in (1, 84, 168)]
        short = graph(torch.from_numpy(feats[:20])[None])[0].numpy()  # tiled to 50 frames
        tiled = np.take(np.maximum(feats[:20], floor), np.arange(50) % 20, axis=0)
        want_short = model(torch.from_numpy(apply_cmn(tiled))[None])[0].numpy()
    assert np.allclose(got, np.mean(parts, axis=0), atol=1e-5)
    assert np.allclose(short, want_short, atol=1e-5)


def test_extraction_twice_bit_identical_and_one_per_utt(exp, tmp_path):
    data, utts = make_data(tmp_path / "data", [120, 60, 120, 30, 250])
    cfg = ExtractConfig(max_chunk_frames=100, length_quantum=1)  # 250 frames -> 3 chunks, averaged
    _, scp1, n1 = extract_job(exp, data, tmp_path / "e1", cfg=cfg)
    _, scp2, n2 = extract_job(exp, data, tmp_path / "e2", cfg=cfg)
    k1, e1 = read_vectors(scp1)
    k2, e2 = read_vectors(scp2)
    assert n1 == n2 == 5 and k1 == k2 == sorted(utts)
    assert e1.dtype == np.float32 and e1.shape == (5, 128)
    assert np.array_equal(e1.view(np.uint32), e2.view(np.uint32))  # bit-identical
    assert check_one_per_utterance(scp1, FeatureSource(data, FEATS_CFG)) == 5
    # batching does not change the result beyond float rounding: one utterance at a time, whole
    from bccmt.embed import embedding_graph
    from bccmt.exp import load_embedding_model

    model, _ = load_embedding_model(exp)
    graph = embedding_graph(model, FEATS_CFG, cfg)
    src = FeatureSource(data, FEATS_CFG)
    one = dict(embed_utterances(graph, sorted(utts), src, ExtractConfig(
        max_chunk_frames=100, length_quantum=1, window_utts=1)))
    assert np.allclose(np.stack([one[k] for k in k1]), e1, atol=1e-5)
    with torch.inference_mode():
        whole = {u: graph(torch.tensor(src(u))[None])[0].numpy() for u in utts}
    assert all(np.allclose(whole[k], one[k], atol=1e-5) for k in k1)


def test_length_quantum_batches_near_equal_lengths(exp, tmp_path):
    from bccmt.embed import embedding_graph
    from bccmt.exp import load_embedding_model

    data, utts = make_data(tmp_path / "data", [117, 120, 127, 90])  # 112, 112, 112, 80 kept
    model, _ = load_embedding_model(exp)
    graph = embedding_graph(model, FEATS_CFG, ExtractConfig(length_quantum=16))
    src = FeatureSource(data, FEATS_CFG)
    batches = []
    real_forward = model.forward
    model.forward = lambda x: batches.append(x.shape[0]) or real_forward(x)
    got = dict(embed_utterances(graph, sorted(utts), src, ExtractConfig(length_quantum=16)))
    assert sorted(batches) == [1, 3]  # three inputs share one batch
    floor = silence_floor(FEATS_CFG)
    for u in utts:
        feats = np.maximum(src(u), floor)
        t = feats.shape[0] - feats.shape[0] % 16
        s0 = (feats.shape[0] - t) // 2
        with torch.inference_mode():
            want = real_forward(torch.from_numpy(apply_cmn(feats[s0:s0 + t]))[None])[0].numpy()
        assert np.allclose(got[u], want, atol=1e-5), u


def test_one_per_utterance_check_and_spk_mean(exp, tmp_path):
    data, utts = make_data(tmp_path / "data", [60, 70, 80])
    keys = sorted(utts)
    write_vectors(tmp_path / "x.ark", tmp_path / "x.scp",
                  [(k, np.full(4, i, np.float32)) for i, k in enumerate(keys[:2])])
    with pytest.raises(ExtractError, match=r"missing 1 .*" + keys[2].split("/")[0]):
        check_one_per_utterance(tmp_path / "x.scp", FeatureSource(data, FEATS_CFG))
    write_vectors(tmp_path / "y.ark", tmp_path / "y.scp",
                  [(k, np.full(4, i, np.float32)) for i, k in enumerate(keys)])
    assert speaker_means(tmp_path / "y.scp", data / "utt2spk", tmp_path) == 2
    spk, means = read_vectors(tmp_path / "spk_xvector.scp")
    assert spk == ["id10000", "id10001"]
    # sorted keys: id10000/vid/00000 -> 0, id10000/vid/00002 -> 1, id10001/vid/00001 -> 2
    assert np.allclose(means[:, 0], [0.5, 2.0])


def test_feature_config_mismatch_is_an_error(exp, tmp_path):
    data, _ = make_data(tmp_path / "data", [60], fbank={**FEATS, "num_mel_bins": 64, "dither": 0})
    with pytest.raises(ExtractError, match="num_mel_bins: data 64 vs model 80"):
        extract_job(exp, data, tmp_path / "out")


def test_dithered_features_are_recomputed_from_wav(tmp_path):
    import soundfile as sf

    data, utts = make_data(tmp_path / "data", [60], fbank=FEATS)  # dither 1.0 in fbank.yaml
    wav = tmp_path / "a.wav"
    sf.write(wav, np.random.default_rng(0).uniform(-0.3, 0.3, 16000).astype(np.float32), 16000,
             subtype="PCM_16")
    write_kv(data / "wav.scp", {u: str(wav) for u in utts})
    src = FeatureSource(data, FEATS_CFG)
    assert not src.use_feats and src.cfg.dither == 0.0
    a, b = src(next(iter(utts))), src(next(iter(utts)))
    assert a.shape == (100, 80) and np.array_equal(a, b)


def test_cli_parallel_jobs_merge(exp, tmp_path):
    data, utts = make_data(tmp_path / "data", [60, 61, 62, 63])
    out = tmp_path / "emb"
    # through the Kaldi-style wrapper -> python -m bccmt.bin.extract_embeddings -> run.py
    env = dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{REPO / 'utils'}:{os.environ['PATH']}")
    r = subprocess.run(["bash", "local/extract_embeddings.sh", "--nj", "2", "--spk-mean", "true",
                        str(exp), str(data), str(out)], cwd=REPO, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "4 embeddings in" in r.stderr
    keys, emb = read_vectors(out / "xvector.scp")
    assert keys == sorted(utts) and emb.shape == (4, 128)
    assert not list(out.glob("xvector.[0-9]*"))  # job parts merged and removed
    assert (out / "log" / "extract.2.log").is_file()
    _, single, _ = extract_job(exp, data, tmp_path / "single")
    assert np.allclose(read_vectors(single)[1], emb, atol=1e-6)
    assert read_vectors(out / "spk_xvector.scp")[0] == ["id10000", "id10001"]
    assert (out / "utt2spk").read_text().splitlines()[0] == f"{sorted(utts)[0]} id10000"


def test_missing_model_is_a_clear_error(tmp_path):
    data, _ = make_data(tmp_path / "data", [60])
    with pytest.raises(ExtractError, match="config.yaml: no such file"):
        extract_job(tmp_path / "no_exp", data, tmp_path / "out")
    exp = make_exp(tmp_path / "exp")
    (exp / "models" / "final.pt").unlink()
    with pytest.raises(ExtractError, match="final.pt: no such file"):
        extract_job(exp, data, tmp_path / "out")


def test_job_steps_name_bad_input(exp, tmp_path):
    """The one-job and merge steps of the wrapper: a bad list names file and line, an utterance
    the data dir lacks is named, a missing part is named, and nothing is left half-merged."""
    from bccmt.bin.extract_embeddings import main

    data, utts = make_data(tmp_path / "data", [60, 61])
    out = tmp_path / "emb"
    out.mkdir()
    bad = tmp_path / "utts.1"
    bad.write_text(f"{sorted(utts)[0]}\nx y\n")
    with pytest.raises(ExtractError, match=r"utts.1:2: expected one utterance id"):
        from bccmt.bin.extract_embeddings import _read_utt_list
        _read_utt_list(bad)
    assert main(["--exp-dir", str(exp), "--data", str(data), "--out", str(out),
                 "--utt-list", str(bad), "--part", "1"]) == 1
    bad.write_text("id99999/none/00000\n")
    with pytest.raises(ExtractError, match="1 utterances not in .*feats.scp.*id99999"):
        extract_job(exp, data, out, ["id99999/none/00000"], 1)
    good = tmp_path / "utts.good"
    good.write_text(sorted(utts)[0] + "\n")
    assert main(["--exp-dir", str(exp), "--data", str(data), "--out", str(out),
                 "--utt-list", str(good), "--part", "1"]) == 0
    assert (out / "xvector.1.scp").is_file()
    assert main(["--exp-dir", str(exp), "--data", str(data), "--out", str(out),
                 "--merge", "2"]) == 1  # part 2 missing
    assert (out / "xvector.1.scp").is_file() and not (out / "xvector.scp").exists()
