"""Utterance text: sentences of pseudo-words from one shared syllable inventory.

The text pool is the same for every speaker and language (eSpeak reads the pseudo-words with the
voice's own spelling rules), so no text is tied to a speaker; each utterance draws its own text.
"""

from __future__ import annotations

import numpy as np

ONSETS = ["", "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "tr",
          "st", "pl", "kr", "gr", "fl", "sl", "dr", "pr", "sk"]
NUCLEI = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ei", "au", "ou", "ie"]
CODAS = ["", "", "", "n", "r", "s", "l", "m", "t", "k", "nd", "st"]


def pseudo_word(rng: np.random.Generator) -> str:
    n_syl = int(rng.choice([1, 2, 2, 3, 3, 4]))
    return "".join(ONSETS[int(rng.integers(len(ONSETS)))] + NUCLEI[int(rng.integers(len(NUCLEI)))]
                   + CODAS[int(rng.integers(len(CODAS)))] for _ in range(n_syl))


def sentence(rng: np.random.Generator, n_words: int) -> str:
    """``n_words`` pseudo-words with commas now and then and a final full stop."""
    words = []
    for i in range(max(1, n_words)):
        w = pseudo_word(rng)
        if i == 0:
            w = w.capitalize()
        elif i < n_words - 1 and rng.random() < 0.12:
            w += ","
        words.append(w)
    return " ".join(words) + "."
