"""Generate spago's tokenizer Unicode tables from Hugging Face `tokenizers` (the reference implementation).

    python tools/unicode_tables.py            # writes src/spago/nlp/tokenizers/unicode_tables.json.gz

The Rust tokenizers classify characters with their own Unicode data (the `unicode_categories` and
`unicode-normalization-alignments` crates, and Rust's own lower-casing), which differ from the tables of any
given Python's `unicodedata`. So the tables are read off the reference itself, one code point at a time:

- ``control``: deleted by BertNormalizer's clean_text (which turns the other ``whitespace`` into spaces);
- ``punctuation`` and ``whitespace``: what BertPreTokenizer isolates, and splits on;
- ``nonspacing``: deleted by accent stripping (category Mn in the reference's data);
- ``decompose``: the reference's NFD of each code point (Hangul syllables are left to the algorithm);
- ``lower``: the reference's lower-casing of each code point;
- ``combining``: the canonical combining class the reference's NFD reorders each mark by (probed against
  marks of known class).
"""
from __future__ import annotations

import gzip
import json
import os
import sys
import unicodedata

OUT = os.path.join(os.path.dirname(__file__), "..", "src", "spago", "nlp", "tokenizers", "unicode_tables.json.gz")


def _ranges(cps: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for cp in cps:
        if out and out[-1][1] == cp - 1:
            out[-1][1] = cp
        else:
            out.append([cp, cp])
    return out


def _combining_classes(nfd, cps: list[int], decompose: dict) -> dict:
    """The canonical combining class the reference's NFD sorts each mark by. Its data is older than Python's,
    so each mark is placed among reference marks (one per class, from Unicode 3.2, where all agree) by which
    of them canonical ordering moves it before or after."""
    refs: dict[int, str] = {}
    for cp in range(0x110000):
        c = unicodedata.ucd_3_2_0.combining(chr(cp)) if not 0xD800 <= cp <= 0xDFFF else 0
        if c and c not in refs and unicodedata.ucd_3_2_0.decomposition(chr(cp)) == "" \
                and unicodedata.combining(chr(cp)) == c:
            refs[c] = chr(cp)
    out = {}
    for cp in cps:
        m = chr(cp)
        if not unicodedata.combining(m) or cp in decompose:
            continue
        after = [c for c, r in refs.items() if nfd.normalize_str(m + r) == r + m]   # r sorts before m
        before = [c for c, r in refs.items() if nfd.normalize_str(r + m) == m + r]  # m sorts before r
        if not after and not before:
            continue  # class 0 for the reference: never reordered
        low, high = max(after, default=0), min(before, default=256)
        own = unicodedata.combining(m)
        out[cp] = own if low < own < high else next((c for c in refs if low < c < high), (low + high) / 2)
    return out


def probe() -> dict:
    """The tables, read from the installed `tokenizers`."""
    import tokenizers
    from tokenizers import normalizers, pre_tokenizers

    cps = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    chars = [chr(c) for c in cps]
    clean = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=False, strip_accents=False,
                                       lowercase=False)
    cleaned = [clean.normalize_str(c) for c in chars]
    control = [cp for cp, out in zip(cps, cleaned) if out == ""]
    # "a" between every code point: a punctuation mark comes back as a word of its own, whitespace in no word
    text = "".join("a" + c for c in chars) + "a"
    words = pre_tokenizers.BertPreTokenizer().pre_tokenize_str(text)
    punctuation = sorted(ord(w) for w, (s, e) in words if e - s == 1 and w != "a")
    covered = bytearray(len(text))
    for _, (s, e) in words:
        covered[s:e] = b"\1" * (e - s)
    whitespace = [ord(text[k]) for k in range(1, len(text), 2) if not covered[k]]
    assert all(out in ("", " ") for cp, out in zip(cps, cleaned) if cp in set(whitespace))
    nfd = normalizers.NFD()
    decompose = {}
    for cp, c in zip(cps, chars):
        if 0xAC00 <= cp <= 0xD7A3:
            continue
        out = nfd.normalize_str(c)
        if out != c:
            decompose[cp] = out
    strip = normalizers.BertNormalizer(clean_text=False, handle_chinese_chars=False, strip_accents=True,
                                       lowercase=False)
    nonspacing = [cp for cp, c in zip(cps, chars) if cp not in decompose and strip.normalize_str(c) == ""]
    lower_n = normalizers.Lowercase()
    lower = {}
    for cp, c in zip(cps, chars):
        out = lower_n.normalize_str(c)
        if out != c:
            lower[cp] = out
    combining = _combining_classes(nfd, cps, decompose)
    return {
        "source": f"tokenizers {tokenizers.__version__}",
        "control": _ranges(control), "whitespace": _ranges(whitespace),
        "punctuation": _ranges(punctuation), "nonspacing": _ranges(nonspacing),
        "decompose": {f"{k:x}": v for k, v in decompose.items()},
        "lower": {f"{k:x}": v for k, v in lower.items()},
        "combining": {f"{k:x}": v for k, v in combining.items()},
    }


def main() -> int:
    tables = probe()
    data = json.dumps(tables, ensure_ascii=True, separators=(",", ":"), sort_keys=True).encode()
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write(data)
    print(f"wrote {OUT}: {len(data)} bytes of JSON, {os.path.getsize(OUT)} gzipped ({tables['source']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
