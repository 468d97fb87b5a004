#!/usr/bin/python3
"""Make a JestMesh reference bundle from PyTorch.

A bundle is a directory with
  model.pt        TorchScript module: encode_image(x: float32[n, C, H, W]) -> float32[n, d],
                  encode_text(tokens: int64[n, L]) -> float32[n, d], parameters `alpha`, `beta`
  reference.json  image geometry and normalisation, tokenizer, context length
  vocab.txt       WordPiece vocabulary ([PAD] = id 0, [UNK] = id 1), or with --tokenizer bpe
  vocab.json      BPE vocabulary ({"token": id}, [PAD] = 0, [UNK] = 1) and
  merges.txt      BPE merges ("left right" per line, in priority order; "</w>" ends a word's last symbol)

This script defines a small dual encoder, builds a WordPiece vocabulary (or learns BPE merges) from the
captions of a WebDataset shard directory (e.g. OUT/curated of `./jestmesh data wds`), trains the encoder briefly
with the sigmoid loss on those pairs (or loads --weights, a state_dict of the same module), and
writes the bundle. Run it with Debian's python3-torch: /usr/bin/python3 scripts/make-reference-bundle.py.
To export your own model instead, give it the two methods and the two parameters (see README).
"""
import argparse
import io
import json
import os
import re
import sys
import tarfile

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

PIECE = re.compile(r"\w+|[^\w\s]+")  # Microsoft.ML.Tokenizers' whitespace pre-tokenizer


class DualEncoder(nn.Module):
    def __init__(self, channels: int, vocab: int, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, stride=2, padding=1)
        self.image_proj = nn.Linear(64, dim)
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.text_proj = nn.Linear(dim, dim)
        self.alpha = nn.Parameter(torch.tensor(10.0))
        self.beta = nn.Parameter(torch.tensor(-10.0))

    @torch.jit.export
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = h.mean(dim=(2, 3))
        return F.normalize(self.image_proj(h), dim=-1)

    @torch.jit.export
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != 0).to(torch.float32).unsqueeze(-1)
        summed = (self.embed(tokens) * mask).sum(dim=1)
        mean = summed / mask.sum(dim=1).clamp(min=1.0)
        return F.normalize(self.text_proj(mean), dim=-1)

    def forward(self, x: torch.Tensor, tokens: torch.Tensor):
        return self.encode_image(x), self.encode_text(tokens)


class MissingTextMethod(nn.Module):
    """Defective on purpose (JestMesh's tests): no encode_text."""

    def __init__(self, inner: DualEncoder):
        super().__init__()
        self.inner = inner
        self.alpha = nn.Parameter(torch.tensor(10.0))
        self.beta = nn.Parameter(torch.tensor(-10.0))

    @torch.jit.export
    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.encode_image(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_image(x)


class WrongTextShape(DualEncoder):
    """Defective on purpose (JestMesh's tests): encode_text returns [n, d + 1]."""

    @torch.jit.export
    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.embed(tokens).mean(dim=1)
        return torch.cat([e, e[:, :1]], dim=1)


def read_shards(directory):
    """(shard/key, image bytes, caption) of every complete sample, shards in name order."""
    samples = []
    for name in sorted(f for f in os.listdir(directory) if f.endswith(".tar")):
        groups = {}
        with tarfile.open(os.path.join(directory, name)) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                prefix = member.name[: len(member.name) - len(base)]
                key, _, ext = base.partition(".")
                groups.setdefault(prefix + key, {})[ext.lower()] = tar.extractfile(member).read()
        for key, files in groups.items():
            image = files.get("png") or files.get("jpg") or files.get("jpeg")
            text = files.get("txt", b"").decode("utf-8").strip()
            if image is not None and text:
                samples.append((name + "/" + key, image, text))
    return samples


def decode(image_bytes, spec):
    from PIL import Image  # only the script's own training needs it; JestMesh decodes with SkiaSharp
    img = Image.open(io.BytesIO(image_bytes))
    img = img.convert("L" if spec["channels"] == 1 else "RGB")
    if img.size != (spec["width"], spec["height"]):
        img = img.resize((spec["width"], spec["height"]), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float32) / 255.0
    a = a[None, :, :] if spec["channels"] == 1 else a.transpose(2, 0, 1)
    mean = np.asarray(spec["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(spec["std"], dtype=np.float32)[:, None, None]
    return (a - mean) / std


def wordpiece(text, vocab, lowercase, length):
    """Greedy longest-match WordPiece ("##" continuation), padded/truncated to `length` with id 0."""
    ids = []
    for word in PIECE.findall(text.lower() if lowercase else text):
        start, pieces = 0, []
        while start < len(word):
            end, found = len(word), None
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    found = vocab[piece]
                    break
                end -= 1
            if found is None:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(found)
            start = end
        ids.extend(pieces)
    ids = ids[:length]
    return ids + [0] * (length - len(ids))


END_OF_WORD = "</w>"  # JestMesh's BPE convention (CLIP's): the last symbol of every word carries it


def learn_bpe(words, merges_wanted):
    """BPE merges learned from {word: count}: the most frequent adjacent pair (ties: the smallest pair) merged
    everywhere, `merges_wanted` times or until no pair occurs twice. Returns (symbols, merges) in order."""
    corpus = {tuple(w[:-1]) + (w[-1] + END_OF_WORD,): c for w, c in words.items()}
    symbols = sorted({s for word in corpus for s in word})
    merges = []
    while len(merges) < merges_wanted:
        pairs = {}
        for word, count in corpus.items():
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < 2:
            break
        merges.append(best)
        merged = best[0] + best[1]
        corpus = {_merge_all(word, best, merged): c for word, c in corpus.items()}
    return symbols, merges


def _merge_all(word, pair, merged):
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def bpe(text, vocab, ranks, lowercase, length):
    """BPE ids as Microsoft.ML.Tokenizers' BpeTokenizer gives them (JestMesh's settings): words pre-tokenized as for
    WordPiece; each word's characters (the last with "</w>") as symbols, a character outside the vocabulary [UNK];
    then, while a merge applies, the adjacent pair of lowest rank (the leftmost among equals) is merged.
    Padded/truncated to `length` with id 0."""
    unk = vocab["[UNK]"]
    ids = []
    for word in PIECE.findall(text.lower() if lowercase else text):
        symbols = [c + END_OF_WORD if i == len(word) - 1 else c for i, c in enumerate(word)]
        symbols = [s if s in vocab else None for s in symbols]  # None: [UNK], never merged
        while True:
            best = None
            for i in range(len(symbols) - 1):
                a, b = symbols[i], symbols[i + 1]
                if a is not None and b is not None and (a, b) in ranks and (best is None or ranks[(a, b)] < best[0]):
                    best = (ranks[(a, b)], i)
            if best is None:
                break
            i = best[1]
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
        ids.extend(unk if s is None else vocab[s] for s in symbols)
    ids = ids[:length]
    return ids + [0] * (length - len(ids))


def load_tokenizer(bundle):
    """The caption encoder a bundle's reference.json declares, as this script defines it: text -> ids (JestMesh's tests
    compare `score`'s token ids with it)."""
    with open(os.path.join(bundle, "reference.json"), encoding="utf-8") as f:
        text = json.load(f)["text"]
    length, lowercase = text["context_length"], text.get("lowercase", False)
    if text["tokenizer"] == "bpe":
        with open(os.path.join(bundle, text["vocab"]), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(bundle, text["merges"]), encoding="utf-8") as f:
            lines = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#version")]
        ranks = {tuple(l.split(" ")): r for r, l in enumerate(lines)}
        return lambda t: bpe(t, vocab, ranks, lowercase, length)
    with open(os.path.join(bundle, text["vocab"]), encoding="utf-8") as f:
        vocab = {w: i for i, w in enumerate(f.read().split("\n")[:-1])}
    return lambda t: wordpiece(t, vocab, lowercase, length)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="WebDataset shard directory to build the vocabulary from and train on")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--height", type=int, default=28)
    p.add_argument("--width", type=int, default=28)
    p.add_argument("--channels", type=int, default=1, choices=[1, 3])
    p.add_argument("--mean", type=float, nargs="+", default=[0.286])
    p.add_argument("--std", type=float, nargs="+", default=[0.353])
    p.add_argument("--context-length", type=int, default=16)
    p.add_argument("--tokenizer", choices=["wordpiece", "bpe"], default="wordpiece")
    p.add_argument("--bpe-merges", type=int, default=200, help="BPE merges to learn from the captions (--tokenizer bpe)")
    p.add_argument("--steps", type=int, default=300, help="sigmoid-loss training steps (0 = keep the initial or given weights)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="state_dict (torch.save) of DualEncoder to load instead of initialising")
    p.add_argument("--defect", choices=["missing-method", "wrong-shape"], help="write a broken bundle (JestMesh's own tests)")
    args = p.parse_args()
    if len(args.mean) != args.channels or len(args.std) != args.channels:
        sys.exit(f"--mean and --std need {args.channels} values each")

    torch.manual_seed(args.seed)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    samples = read_shards(args.data)
    if not samples:
        sys.exit(f"{args.data}: no usable samples in its .tar shards")
    if args.tokenizer == "bpe":
        counts = {}
        for _, _, t in samples:
            for w in PIECE.findall(t.lower()):
                counts[w] = counts.get(w, 0) + 1
        symbols, merges = learn_bpe(counts, args.bpe_merges)
        tokens_list = ["[PAD]", "[UNK]"] + symbols
        for a, b in merges:
            if a + b not in tokens_list:
                tokens_list.append(a + b)
        vocab = {w: i for i, w in enumerate(tokens_list)}
        ranks = {m: r for r, m in enumerate(merges)}
        encode = lambda t: bpe(t, vocab, ranks, True, args.context_length)
    else:
        words = sorted({w for _, _, t in samples for w in PIECE.findall(t.lower())})
        tokens_list = ["[PAD]", "[UNK]"] + words
        vocab = {w: i for i, w in enumerate(tokens_list)}
        encode = lambda t: wordpiece(t, vocab, True, args.context_length)
    spec = {"height": args.height, "width": args.width, "channels": args.channels, "mean": args.mean, "std": args.std}

    model = (WrongTextShape if args.defect == "wrong-shape" else DualEncoder)(args.channels, len(tokens_list), args.dim)
    if args.weights:
        model.load_state_dict(torch.load(args.weights))
    if args.steps > 0:
        images = torch.from_numpy(np.stack([decode(b, spec) for _, b, _ in samples]))
        texts = torch.tensor([encode(t) for _, _, t in samples], dtype=torch.int64)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        g = torch.Generator().manual_seed(args.seed)
        for step in range(args.steps):
            idx = torch.randint(0, len(samples), (args.batch_size,), generator=g)
            zi, zt = model(images[idx], texts[idx])
            logits = model.alpha * zi @ zt.T + model.beta
            labels = 2 * torch.eye(len(idx)) - 1
            loss = -F.logsigmoid(labels * logits).sum() / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if (step + 1) % 100 == 0 or step + 1 == args.steps:
                print(f"step {step + 1}/{args.steps}: sigmoid loss {loss.item():.3f}", file=sys.stderr)
    model.eval()

    os.makedirs(args.out, exist_ok=True)
    scripted = torch.jit.script(MissingTextMethod(model) if args.defect == "missing-method" else model)
    scripted.save(os.path.join(args.out, "model.pt"))
    text = {"tokenizer": args.tokenizer, "context_length": args.context_length, "lowercase": True}
    if args.tokenizer == "bpe":
        with open(os.path.join(args.out, "vocab.json"), "w", encoding="utf-8") as f:
            json.dump(vocab, f, ensure_ascii=False, indent=0)
        with open(os.path.join(args.out, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        text.update(vocab="vocab.json", merges="merges.txt")
    else:
        with open(os.path.join(args.out, "vocab.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(tokens_list) + "\n")
        text.update(vocab="vocab.txt")
    reference = {"image": spec, "text": text}
    with open(os.path.join(args.out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, indent=2)
    print(f"bundle: {len(samples)} pairs, vocabulary {len(tokens_list)}, d = {args.dim} -> {args.out}")


if __name__ == "__main__":
    main()
