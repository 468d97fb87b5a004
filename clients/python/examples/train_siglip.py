#!/usr/bin/env python3
"""A small PyTorch SigLIP dual encoder trained on curated batches from `./jestmesh up`.

    ./jestmesh up --job mine                      # prints: ready address=127.0.0.1:50051 api_key=K jobs=mine
    python3 clients/python/examples/train_siglip.py --address 127.0.0.1:50051 --api-key K --job mine \
        --policy learnability --steps 1500 --checkpoint runs/py-jest

The learner scores every candidate super-batch (no grad) and trains on the batch Selection curates from
it. A checkpoint (model, optimiser, step and the stream's state_dict, written together) is saved every
--checkpoint-every steps; running the same command again resumes from it, the stream resuming at the
batch after the one the checkpoint trained on. Zero-shot accuracy on the Fashion-MNIST test set
("a photo of a X" prompts per class, as the C# Evaluator) is logged every --eval-every steps and written
with the timings to CHECKPOINT/metrics.json.
"""

import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import jestmesh  # noqa: E402

# The caption vocabulary of JestMesh.Data.Captions (services/JestMesh.Data/Captions.cs): "<pad>" then the
# distinct words of the templates, synonyms and "a photo of a", in ordinal order. Rebuilt the same way here.
CLASS_SYNONYMS = [
    ["t-shirt", "tee", "top"], ["trousers", "pants", "slacks"], ["pullover", "sweater", "jumper"],
    ["dress", "gown", "frock"], ["coat", "jacket", "overcoat"], ["sandal", "flip-flop", "strappy sandal"],
    ["shirt", "blouse", "button-up shirt"], ["sneaker", "trainer", "running shoe"], ["bag", "handbag", "purse"],
    ["ankle boot", "boot", "bootie"],
]
BRIGHTNESS = [["dark", "dim", "shadowy"], ["grey", "muted", "mid-tone"], ["bright", "light", "pale"]]
SIZES = [["small", "compact", "slim"], ["medium", "regular", "mid-size"], ["large", "big", "wide"]]
TEMPLATES = [
    "a photo of a {s} {b} {c}", "a {b} {c}", "{s} {c} , {b}", "picture of a {b} {s} {c}",
    "this is a {c} that looks {b} and {s}", "a {s} {c} on a plain background", "an image showing a {b} {c}",
    "{b} {s} {c}", "a {c}", "close-up of a {s} {c} in {b} tones",
]


def vocabulary():
    texts = [t.replace("{c}", " ").replace("{b}", " ").replace("{s}", " ") for t in TEMPLATES]
    texts += [w for group in CLASS_SYNONYMS + BRIGHTNESS + SIZES for w in group] + ["a photo of a"]
    words = sorted({w for t in texts for w in t.split()})
    return ["<pad>"] + words


WORDS = vocabulary()


def encode(text, length):
    ids = [WORDS.index(w) for w in text.split()]
    return ids + [0] * (length - len(ids))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


class SigLIP(nn.Module):
    """The C# SiglipModel's shape: 2-conv CNN image tower, mean embedding-bag text tower, both to d, L2-normalised."""

    def __init__(self, vocab, dim=64, c1=16, c2=32, hidden=128, word_dim=128):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.hidden = nn.Linear(c2 * 7 * 7, hidden)
        self.image_out = nn.Linear(hidden, dim)
        self.words = nn.EmbeddingBag(vocab, word_dim, mode="mean", padding_idx=0)
        self.text_out = nn.Linear(word_dim, dim)
        self.log_t = nn.Parameter(torch.tensor(math.log(10.0)))
        self.bias = nn.Parameter(torch.tensor(-10.0))

    def images(self, x):
        x = (x.float().div(255.0) - 0.2860) / 0.3530
        x = F.max_pool2d(F.relu(self.conv1(x.unsqueeze(1))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.normalize(self.image_out(F.relu(self.hidden(x.flatten(1)))), dim=1)

    def texts(self, tokens):
        return F.normalize(self.text_out(self.words(tokens)), dim=1)

    def loss(self, images, tokens):
        img, txt = self.images(images), self.texts(tokens)
        logits = img @ txt.t() * self.log_t.exp() + self.bias
        signs = 2 * torch.eye(len(img)) - 1
        return -F.logsigmoid(signs * logits).sum() / len(img)


class ZeroShot:
    def __init__(self, data_dir, max_tokens, limit=None):
        images = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"))
        if limit:
            images, labels = images[:limit], labels[:limit]
        self.images = torch.from_numpy(images.copy())
        self.labels = torch.from_numpy(labels.astype(np.int64))
        prompts = [encode(f"a photo of a {name}", max_tokens) for names in CLASS_SYNONYMS for name in names]
        self.prompts = torch.tensor(prompts, dtype=torch.int64)

    @torch.no_grad()
    def __call__(self, model):
        model.eval()
        classes = F.normalize(model.texts(self.prompts).reshape(len(CLASS_SYNONYMS), 3, -1).mean(1), dim=1)
        correct = 0
        for start in range(0, len(self.images), 1000):
            img = model.images(self.images[start:start + 1000])
            correct += (img @ classes.t()).argmax(1).eq(self.labels[start:start + 1000]).sum().item()
        model.train()
        return correct / len(self.images)


def learning_rate(step, steps, peak=1e-3, warmup=100):
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def save(path, payload):
    tmp = path + ".tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", default=os.environ.get("JESTMESH_ADDRESS", "127.0.0.1:50051"))
    p.add_argument("--api-key", default=os.environ.get("JESTMESH_API_KEY"))
    p.add_argument("--job", default="default")
    p.add_argument("--policy", default="learnability", help="learnability (JEST), hard-learner, easy-reference, uniform")
    p.add_argument("--filter-ratio", type=float, default=0.8)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first K test images only")
    p.add_argument("--checkpoint", required=True, help="directory: checkpoint.pt and metrics.json")
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--stop-after", type=int, default=None, help="exit after this step (to try resuming)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if not args.api_key:
        p.error("--api-key (or JESTMESH_API_KEY) is required: `jestmesh up` prints it on its ready line")
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.checkpoint, exist_ok=True)
    ckpt_path = os.path.join(args.checkpoint, "checkpoint.pt")
    metrics_path = os.path.join(args.checkpoint, "metrics.json")

    torch.manual_seed(args.seed)
    model = SigLIP(len(WORDS))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-4)
    evaluate = None
    metrics = {"policy": args.policy, "job": args.job, "steps": args.steps, "filter_ratio": args.filter_ratio,
               "seed": args.seed, "evaluations": [], "timing": {}}
    step = 0
    stream_state = None
    if os.path.exists(ckpt_path):
        saved = torch.load(ckpt_path)
        model.load_state_dict(saved["model"])
        optimiser.load_state_dict(saved["optimiser"])
        step, stream_state, metrics = saved["step"], saved["stream"], saved["metrics"]
        print(f"resumed at step {step} (session {stream_state['session_id']}, cursor {stream_state['cursor']})", flush=True)

    @torch.no_grad()
    def score(candidate):
        model.eval()
        img = model.images(torch.from_numpy(np.array(candidate.images)))
        txt = model.texts(torch.from_numpy(candidate.tokens.astype(np.int64)))
        model.train()
        return img.numpy(), txt.numpy(), model.log_t.exp().item(), model.bias.item()

    learner_free = args.policy in ("uniform", "easy-reference")
    # iterator_s: time inside the batch iterator (the learner scoring candidates, plus waiting for the service).
    timing = {"train_s": 0.0, "eval_s": 0.0, "wall_s": 0.0, "iterator_s": 0.0}
    with jestmesh.CurationClient(args.address, args.api_key) as client, \
            jestmesh.CuratedBatches(client, args.job, policy=args.policy, filter_ratio=args.filter_ratio,
                                    score=None if learner_free else score, steps=args.steps, seed=args.seed) as stream:
        if stream_state is not None:
            stream.load_state_dict(stream_state)
        started = time.perf_counter()
        mark = started
        swapped = 0
        for batch in stream:
            got = time.perf_counter()
            timing["iterator_s"] += got - mark
            if batch.sequence != step + 1:
                raise SystemExit(f"batch {batch.sequence} after step {step}: the checkpoint and the stream disagree")
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(step, args.steps)
            loss = model.loss(torch.from_numpy(np.array(batch.images)), torch.from_numpy(batch.tokens.astype(np.int64)))
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            step = batch.sequence
            swapped += int((batch.ground_truth == 2).sum())
            timing["train_s"] += time.perf_counter() - got
            if step % args.eval_every == 0 or step == args.steps:
                t0 = time.perf_counter()
                evaluate = evaluate or ZeroShot(args.data_dir, batch.tokens.shape[1], args.eval_limit)
                accuracy = evaluate(model)
                timing["eval_s"] += time.perf_counter() - t0
                metrics["evaluations"].append({"step": step, "zero_shot": accuracy, "loss": loss.item()})
                print(f"step {step} zero-shot {accuracy:.4f} loss {loss.item():.4f} swapped-in-batch {swapped / (args.eval_every * len(batch.ids)):.3f}", flush=True)
                swapped = 0
            if step % args.checkpoint_every == 0 or step == args.steps:
                # Model, optimiser and the stream's cursor are saved together: a resume trains on batch step + 1.
                save(ckpt_path, {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
                                 "stream": stream.state_dict(), "metrics": metrics})
            if args.stop_after is not None and step >= args.stop_after:
                print(f"stopping after step {step} as asked (--stop-after)", flush=True)
                break
            mark = time.perf_counter()
        timing["wall_s"] = time.perf_counter() - started
        client_stats = dict(stream.stats)
    # One process's share (a resumed run records the timing of its own part).
    metrics["timing"] = {**timing, "client": client_stats, "reconnects": stream.reconnects}
    with open(metrics_path, "w") as f:
        json.dump(metrics, f, indent=2)
    final = metrics["evaluations"][-1] if metrics["evaluations"] else None
    print(f"done: step {step}" + (f", final zero-shot {final['zero_shot']:.4f}" if final else "") + f"; metrics in {metrics_path}")


if __name__ == "__main__":
    main()
