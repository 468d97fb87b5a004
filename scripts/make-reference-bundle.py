#!/usr/bin/python3
"""Make a JestMesh reference bundle from PyTorch.

A bundle is a directory with
  model.pt        TorchScript module: encode_image(x: float32[n, C, H, W]) -> float32[n, d],
                  encode_text(tokens: int64[n, L]) -> float32[n, d], parameters `alpha`, `beta`
  reference.json  image geometry and normalisation, tokenizer, context length
  vocab.txt       WordPiece vocabulary ([PAD] = id 0, [UNK] = id 1)

This script defines a small dual encoder, builds a WordPiece vocabulary from the captions of a
WebDataset shard directory (e.g. OUT/curated of `./jestmesh data wds`), trains the encoder briefly
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
    words = sorted({w for _, _, t in samples for w in PIECE.findall(t.lower())})
    tokens_list = ["[PAD]", "[UNK]"] + words
    vocab = {w: i for i, w in enumerate(tokens_list)}
    spec = {"height": args.height, "width": args.width, "channels": args.channels, "mean": args.mean, "std": args.std}

    model = (WrongTextShape if args.defect == "wrong-shape" else DualEncoder)(args.channels, len(tokens_list), args.dim)
    if args.weights:
        model.load_state_dict(torch.load(args.weights))
    if args.steps > 0:
        images = torch.from_numpy(np.stack([decode(b, spec) for _, b, _ in samples]))
        texts = torch.tensor([wordpiece(t, vocab, True, args.context_length) for _, _, t in samples], dtype=torch.int64)
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
    with open(os.path.join(args.out, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tokens_list) + "\n")
    reference = {
        "image": spec,
        "text": {"tokenizer": "wordpiece", "vocab": "vocab.txt", "context_length": args.context_length, "lowercase": True},
    }
    with open(os.path.join(args.out, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, indent=2)
    print(f"bundle: {len(samples)} pairs, vocabulary {len(tokens_list)}, d = {args.dim} -> {args.out}")


if __name__ == "__main__":
    main()
