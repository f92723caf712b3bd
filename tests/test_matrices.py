"""Crop reads from ark files: bccmt.io.matrices against kaldiio.load_mat, and the crop dataset on
float32 and Kaldi-compressed features."""

import os

import kaldiio
import numpy as np
import pytest

from bccmt.config import DataSection
from bccmt.features import FbankConfig, apply_cmn
from bccmt.io.matrices import MatrixReader, MatrixReadError, split_spec
from bccmt.train.data import CropDataset, DataError, take_crop


def write_ark(path, mats, compress=False):
    """Writes {key: matrix} like compute_fbank does -> {key: 'path:offset'}."""
    specs = {}
    with open(path, "wb") as f:
        for key, m in mats.items():
            specs[key] = f"{path}:{f.tell() + len(key) + 1}"
            kaldiio.save_ark(f, {key: m}, compression_method=2 if compress else None)
    return specs


def fbank_like(rng, t, dim=80):
    return (rng.normal(0, 2, (t, dim)) + np.linspace(-5, 10, dim)).astype(np.float32)


@pytest.fixture
def mats():
    rng = np.random.default_rng(7)
    return {f"u{i}": fbank_like(rng, t) for i, t in enumerate([1, 9, 37, 200, 813])}


@pytest.mark.parametrize("compress", [False, True])
def test_rows_equal_load_mat_slices_bit_for_bit(tmp_path, mats, compress):
    specs = write_ark(tmp_path / "a.ark", mats, compress)
    reader = MatrixReader()
    rng = np.random.default_rng(0)
    for key, spec in specs.items():
        full = np.asarray(kaldiio.load_mat(spec), dtype=np.float32)
        head = reader.header(spec)
        assert head.kind == ("CM" if compress and len(mats[key]) > 8 else "FM" if not compress
                             else head.kind)
        for start, stop in [(0, len(full)), (0, 1), (len(full) - 1, len(full))] + [
                tuple(sorted(rng.integers(0, len(full) + 1, 2))) for _ in range(20)]:
            got = reader.read_rows(spec, int(start), int(stop))
            assert got.dtype == np.float32 and got.shape == (stop - start, 80)
            assert np.array_equal(got, full[start:stop]), (key, start, stop)
        if compress and head.kind == "CM":  # within Kaldi's compression error of the original
            assert np.abs(full - mats[key]).max() < 0.1
    reader.close()


def test_fallback_and_errors(tmp_path, mats):
    specs = write_ark(tmp_path / "a.ark", mats)
    reader = MatrixReader()
    assert split_spec("cat x.ark |") is None and split_spec("x.ark") is None
    assert split_spec("/d/a:b.ark:12") == ("/d/a:b.ark", 12)
    # entries the reader does not parse (here a kaldiio row slice) go through kaldiio.load_mat
    assert reader.header(specs["u4"] + "[100:300]") is None
    np.testing.assert_array_equal(reader.read_rows(specs["u4"] + "[100:300]", 5, 10),
                                  mats["u4"][105:110])
    with pytest.raises(MatrixReadError, match="outside a matrix of 37"):
        reader.read_rows(specs["u2"], 30, 40)
    path, offset = split_spec(specs["u3"])
    with pytest.raises(MatrixReadError, match="no binary Kaldi object"):
        reader.read_rows(f"{path}:{offset + 3}", 0, 1)
    # a truncated ark: the header promises rows that are not there
    cut = tmp_path / "cut.ark"
    cut.write_bytes((tmp_path / "a.ark").read_bytes()[:offset + 15 + 100 * 320])
    with pytest.raises(MatrixReadError, match=r"cut.ark.*file ends after .*truncated"):
        MatrixReader().read_rows(f"{cut}:{offset}", 150, 200)
    np.testing.assert_array_equal(MatrixReader().read_rows(f"{cut}:{offset}", 0, 100),
                                  mats["u3"][:100])


def test_reader_reopens_after_fork(tmp_path, mats):
    specs = write_ark(tmp_path / "a.ark", mats)
    reader = MatrixReader()
    reader.read_rows(specs["u4"], 0, 3)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse (or close) the parent's descriptor table entries
        ok = np.array_equal(reader.read_rows(specs["u4"], 10, 20), mats["u4"][10:20])
        reader.close()
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    np.testing.assert_array_equal(reader.read_rows(specs["u4"], 5, 6), mats["u4"][5:6])


def make_dir(d, mats, compress, lengths=None):
    d.mkdir()
    specs = write_ark(d / "feats.ark", mats, compress)
    (d / "feats.scp").write_text("".join(f"{k} {v}\n" for k, v in sorted(specs.items())))
    (d / "utt2spk").write_text("".join(f"{k} spk{k[-1]}\n" for k in sorted(specs)))
    lengths = lengths or {k: len(m) for k, m in mats.items()}
    (d / "utt2num_frames").write_text("".join(f"{k} {lengths[k]}\n" for k in sorted(specs)))
    return d


@pytest.mark.parametrize("compress", [False, True])
def test_crops_equal_whole_matrix_crops(tmp_path, mats, compress):
    """The dataset's crops are those of take_crop on load_mat: same rng draws, same values (load_mat
    gives compressed matrices in column-major order: made contiguous, as the reader's are, so that
    CMN sums in the same order)."""
    d = make_dir(tmp_path / "d", mats, compress)
    cfg = DataSection(crop_seconds=0.4, min_seconds=0.01)  # 40 frames: u0, u1, u2 are tiled
    ds = CropDataset(d, cfg, FbankConfig(), seed=3)
    specs = dict(line.split() for line in (d / "feats.scp").read_text().splitlines())
    for i, utt in enumerate(ds.utts):
        for position in range(5):
            want = apply_cmn(take_crop(np.ascontiguousarray(kaldiio.load_mat(specs[utt])), 40,
                                       ds.rng(2, position)))
            got = ds.load_crop(i, ds.rng(2, position))
            assert np.array_equal(got, want), (utt, position)


def test_length_mismatch_names_the_utterance(tmp_path, mats):
    lengths = {k: len(m) for k, m in mats.items()}
    lengths["u3"] = 150
    d = make_dir(tmp_path / "d", mats, False, lengths)
    ds = CropDataset(d, DataSection(crop_seconds=0.4, min_seconds=0.01), FbankConfig(), seed=3)
    with pytest.raises(DataError, match="'u3'.*holds 200 frames but utt2num_frames says 150"):
        ds.load_crop(ds.utts.index("u3"), ds.rng(0, 0))
