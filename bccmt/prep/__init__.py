"""Corpus preparation: corpora on disk -> Kaldi data dirs and trial lists."""
