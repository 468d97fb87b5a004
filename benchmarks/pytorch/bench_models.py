#!/usr/bin/env python3
"""Training-step and scoring throughput of JestMesh's SigLIP model in PyTorch.

The same architecture, loss, optimiser and measurement as `./jestmesh bench models`
(services/JestMesh.Cli/Commands/BenchCommand.cs), so the two can be compared side by side:
  /usr/bin/python3 benchmarks/pytorch/bench_models.py --threads 1 --json out.json
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PIXEL_MEAN, PIXEL_STD = 0.2860, 0.3530


class ImageTower(nn.Module):
    def __init__(self, dim=64, c1=16, c2=32, hidden=128):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.hidden = nn.Linear(c2 * 7 * 7, hidden)
        self.out = nn.Linear(hidden, dim)

    def forward(self, x):
        x = x.float().div_(255.0).sub_(PIXEL_MEAN).div_(PIXEL_STD)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.out(F.relu(self.hidden(x.flatten(1))))


class Siglip(nn.Module):
    def __init__(self, vocab, dim=64, word_dim=128):
        super().__init__()
        self.image = ImageTower(dim)
        self.words = nn.EmbeddingBag(vocab, word_dim, mode="mean", padding_idx=0)
        self.text_out = nn.Linear(word_dim, dim)
        self.log_t = nn.Parameter(torch.tensor(math.log(10.0)))
        self.bias = nn.Parameter(torch.tensor(-10.0))

    def forward(self, images, tokens):
        img = F.normalize(self.image(images), p=2, dim=1)
        txt = F.normalize(self.text_out(self.words(tokens)), p=2, dim=1)
        return img, txt

    def loss(self, images, tokens):
        img, txt = self(images, tokens)
        n = img.shape[0]
        logits = img @ txt.t() * self.log_t.exp() + self.bias
        signs = 2 * torch.eye(n) - 1
        return -F.logsigmoid(signs * logits).sum() / n


def load_images(directory, count):
    with gzip.open(os.path.join(directory, "train-images-idx3-ubyte.gz")) as f:
        data = f.read()
    assert int.from_bytes(data[:4], "big") == 0x803, "not an IDX3 image file"
    pixels = np.frombuffer(data, dtype=np.uint8, offset=16)[: count * 784]
    return torch.from_numpy(pixels.copy()).reshape(count, 1, 28, 28)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--candidates", type=int, default=640)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--vocab", type=int, default=71, help="caption vocabulary size (JestMesh.Data.Captions.VocabularySize)")
    p.add_argument("--max-tokens", type=int, default=10, help="caption length (JestMesh.Data.Captions.MaxTokens)")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--json")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    n = max(a.batch_size, a.candidates)
    images = load_images(a.data_dir, n)
    # Token values do not change the cost; lengths 3..max like real captions, 0-padded.
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, a.vocab, (n, a.max_tokens), generator=g)
    lengths = torch.randint(3, a.max_tokens + 1, (n, 1), generator=g)
    tokens = tokens * (torch.arange(a.max_tokens)[None, :] < lengths)

    model = Siglip(a.vocab)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-4)
    ti, tt = images[: a.batch_size], tokens[: a.batch_size]
    si, st = images[: a.candidates], tokens[: a.candidates]

    def train_step():
        model.train()
        opt.zero_grad()
        loss = model.loss(ti, tt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    def score():
        model.eval()
        with torch.no_grad():
            img, txt = model(si, st)
            img.numpy().copy(), txt.numpy().copy()

    def timed(fn):
        for _ in range(a.warmup):
            fn()
        best = float("inf")
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            for _ in range(a.iterations):
                fn()
            best = min(best, (time.perf_counter() - t0) * 1000 / a.iterations)
        return best

    train_ms = timed(train_step)
    score_ms = timed(score)
    result = {
        "framework": "pytorch", "version": f"torch {torch.__version__}", "threads": torch.get_num_threads(),
        "batch_size": a.batch_size, "candidates": a.candidates, "iterations": a.iterations, "repeats": a.repeats,
        "train_step_ms": train_ms, "train_examples_per_second": a.batch_size / train_ms * 1000,
        "score_ms": score_ms, "score_examples_per_second": a.candidates / score_ms * 1000,
    }
    print(f"pytorch ({result['threads']} threads): train {result['train_examples_per_second']:.0f} examples/s "
          f"({train_ms:.2f} ms/step of {a.batch_size}), scoring {result['score_examples_per_second']:.0f} examples/s "
          f"({score_ms:.2f} ms per {a.candidates})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
