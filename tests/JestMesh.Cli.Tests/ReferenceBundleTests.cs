using System.Text.Json;
using JestMesh.Cli.Commands;
using JestMesh.Data;
using JestMesh.Data.WebDataset;
using JestMesh.Learning;

namespace JestMesh.Cli.Tests;

/// <summary>
/// Reference bundles made by scripts/make-reference-bundle.py with Debian's python3-torch
/// (scripts/test.sh installs it), scored by `jestmesh score` and checked against PyTorch itself.
/// </summary>
[Collection(TorchCollection.Name)]
[Trait("Tier", "Unit")]
public sealed class ReferenceBundleTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-bundle-").FullName;

    public ReferenceBundleTests()
    {
        var train = FashionMnist.LoadTrain(FashionMnist.DefaultDirectory);
        var small = new ImageSet(train.Pixels[..(1500 * ImageSet.PixelsPerImage)], train.Labels[..1500]);
        var data = PairDataset.Build(new DataOptions { Seed = 2, CuratedSize = 500 }, small, small);
        WdsWriter.WriteDataset(data, Path.Combine(_dir, "wds"), 400);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Pool => Path.Combine(_dir, "wds", "pool");

    [Theory]
    [InlineData("wordpiece")]
    [InlineData("bpe")]
    public void Score_embeddings_equal_pytorchs_own_encoders_on_the_same_inputs(string tokenizer)
    {
        var bundle = MakeBundle("bundle-" + tokenizer, "--steps", "30", "--tokenizer", tokenizer);
        var output = Path.Combine(_dir, "scored-" + tokenizer);

        var summary = ScoreCommand.Run(Pool, bundle, output, batchSize: 128, saveInputs: true);

        var expectedKeys = new WdsSource(Pool).InFileOrder(s => s.Name).ToList();
        Assert.Equal(expectedKeys, File.ReadAllLines(Path.Combine(output, "keys.txt")));
        Assert.Equal(expectedKeys.Count, summary.N);
        Assert.Equal(64, summary.D);
        Assert.Equal(0, summary.Skipped);
        using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "summary.json"))))
        {
            foreach (var field in new[] { "n", "d", "alpha", "beta", "skipped", "examples_per_s" })
            {
                Assert.True(json.RootElement.TryGetProperty(field, out _), $"summary.json has {field}");
            }
        }
        // PyTorch runs the bundle's own methods on the inputs and tokens score recorded and reports the largest differences.
        var check = RunPython(
            "import json, sys, importlib.util, numpy as np, torch\n" +
            "d, o, script, pool = sys.argv[1:5]\n" +
            "spec = importlib.util.spec_from_file_location('bundle', script); mb = importlib.util.module_from_spec(spec); spec.loader.exec_module(mb)\n" +
            "encode = mb.load_tokenizer(d)\n" +
            "unk = 1  # [UNK] in both vocabularies the script writes\n" +
            "captions = {k: c for k, _, c in mb.read_shards(pool)}\n" +
            "keys = open(o + '/keys.txt', encoding='utf-8').read().split()\n" +
            "m = torch.jit.load(d + '/model.pt').eval()\n" +
            "x = torch.from_numpy(np.load(o + '/inputs.npy')); t = torch.from_numpy(np.load(o + '/tokens.npy'))\n" +
            "with torch.no_grad():\n" +
            "    zi = torch.nn.functional.normalize(m.encode_image(x), dim=1).numpy()\n" +
            "    zt = torch.nn.functional.normalize(m.encode_text(t), dim=1).numpy()\n" +
            "ci, ct = np.load(o + '/image.npy'), np.load(o + '/text.npy')\n" +
            "print(json.dumps({'image': float(np.abs(ci - zi).max()), 'text': float(np.abs(ct - zt).max()), 'n': int(ci.shape[0]),\n" +
            "  'alpha': float(m.alpha), 'beta': float(m.beta), 'norm': float(np.abs(np.linalg.norm(ci, axis=1) - 1).max()),\n" +
            "  'nonpad': int((t != 0).sum()), 'unk': int((t == unk).sum()), 'distinct': int(len(np.unique(t.numpy()))),\n" +
            "  'tokenizer_mismatches': sum(encode(captions[k]) != t[i].tolist() for i, k in enumerate(keys))}))\n",
            bundle, output, ScriptPath(), Pool);
        using var result = JsonDocument.Parse(check);
        var r = result.RootElement;
        Assert.Equal(summary.N, r.GetProperty("n").GetInt32());
        Assert.InRange(r.GetProperty("image").GetDouble(), 0, 1e-5);
        Assert.InRange(r.GetProperty("text").GetDouble(), 0, 1e-5);
        Assert.InRange(r.GetProperty("norm").GetDouble(), 0, 1e-5);
        Assert.Equal(r.GetProperty("alpha").GetDouble(), summary.Alpha, 1e-6);
        Assert.Equal(r.GetProperty("beta").GetDouble(), summary.Beta, 1e-6);
        // The tokenizer produced real ids (not all padding or unknown): the captions' words are in the vocabulary.
        Assert.True(r.GetProperty("nonpad").GetInt32() > 3 * summary.N, "captions tokenized to several ids each");
        // Microsoft.ML.Tokenizers' WordPiece or BPE in C# gives the ids the script's own tokenizer (which trained the bundle)
        // gives for every caption, words (WordPiece) or characters (BPE) outside the vocabulary (built from the curated shards only)
        // included, as [UNK]. No BPE package is in Debian (python3-tokenizers, python3-transformers): the script's encoder is its own.
        Assert.Equal(0, r.GetProperty("tokenizer_mismatches").GetInt32());
        Assert.True(r.GetProperty("distinct").GetInt32() > 20, "captions use many different token ids");
        Assert.True(r.GetProperty("unk").GetInt32() < summary.N, "most captions' words are in the vocabulary");
    }

    [Fact]
    public void Bad_bundles_are_refused_with_one_line_naming_the_file_or_the_method_and_shape()
    {
        var missing = MakeBundle("missing", "--steps", "0", "--defect", "missing-method");
        var e = Assert.Throws<BundleException>(() => ReferenceBundle.Load(missing));
        Assert.Contains("model.pt", e.Message, StringComparison.Ordinal);
        Assert.Contains("encode_text(int64[n, 16])", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);

        var shape = MakeBundle("shape", "--steps", "0", "--defect", "wrong-shape");
        e = Assert.Throws<BundleException>(() => ReferenceBundle.Load(shape));
        Assert.Contains("encode_text returned Float32 [2, 65]", e.Message, StringComparison.Ordinal);
        Assert.Contains("expected float32 [2, 64]", e.Message, StringComparison.Ordinal);

        var good = MakeBundle("good", "--steps", "0");
        var json = Path.Combine(good, "reference.json");
        var text = File.ReadAllText(json);
        File.WriteAllText(json, text.Replace("\"channels\": 1", "\"channels\": 2", StringComparison.Ordinal));
        e = Assert.Throws<BundleException>(() => ReferenceBundle.Load(good));
        Assert.StartsWith(json + ": image channels 2", e.Message, StringComparison.Ordinal);
        File.WriteAllText(json, text.Replace("\"wordpiece\"", "\"bpe\"", StringComparison.Ordinal));
        e = Assert.Throws<BundleException>(() => ReferenceBundle.Load(good));
        Assert.Equal(json + ": text tokenizer \"bpe\" needs text merges naming the merges file.", e.Message);
        File.WriteAllText(json, "{\"image\": {}");
        e = Assert.Throws<BundleException>(() => ReferenceBundle.Load(good));
        Assert.StartsWith(json, e.Message, StringComparison.Ordinal);

        // The command: exit 2.
        var code = ScoreCommand.Create().Parse(["--data", Pool, "--reference", missing, "--out", Path.Combine(_dir, "x")]).Invoke();
        Assert.Equal(2, code);
        Assert.False(Directory.Exists(Path.Combine(_dir, "x")));
        // `up` checks the bundle before it installs, builds or starts anything: exit 2, its --state never made.
        var state = Path.Combine(_dir, "up-state");
        code = UpCommand.Create().Parse(["--reference", missing, "--data", Pool, "--state", state, "--port", $"{JestMesh.Cli.Demo.Repo.FreePort()}"]).Invoke();
        Assert.Equal(2, code);
        Assert.False(Directory.Exists(state));
    }

    [Fact]
    public async Task The_learning_core_scores_with_a_bundle_as_score_does_and_refuses_a_bad_one_at_load()
    {
        var bundle = MakeBundle("core", "--steps", "10");
        var output = Path.Combine(_dir, "core-out");
        var summary = ScoreCommand.Run(Pool, bundle, output, batchSize: 128, saveInputs: false);
        // The examples as Ingest publishes them (built-in grey pixels and caption ids), scored by the learning core
        // (what Scoring and train --inproc run), in two passes so the second comes from the cache.
        var pairs = new WdsSource(Pool).InFileOrder(BuiltInPairs.Decode).Take(70).ToList();
        var batch = Learning.ExampleBatch.FromPairs(pairs);
        using var scorer = await ReferenceScorer.LoadAsync(bundle, "cpu", batchSize: 32, cacheCapacity: 100);
        var first = await scorer.ScoreAsync(batch.Ids, misses => batch.Rows(misses));
        var again = await scorer.ScoreAsync(batch.Ids, misses => batch.Rows(misses));

        Assert.Equal(summary.ReferenceSha256, scorer.Embedder.Metadata.Sha256);
        Assert.Equal(summary.Alpha, first.Alpha);
        Assert.Equal(70, again.CacheHits);
        var image = NpyFile.ReadFloat32(Path.Combine(output, "image.npy")).Data;
        var text = NpyFile.ReadFloat32(Path.Combine(output, "text.npy")).Data;
        var d = summary.D;
        for (var k = 0; k < first.Image.Length; k++)
        {
            Assert.Equal(image[k], first.Image[k], 1e-6f);
            Assert.Equal(text[k], first.Text[k], 1e-6f);
        }
        Assert.Equal(first.Image, again.Image);
        Assert.Equal(70 * d, first.Image.Length);

        // The same examples with only grey pixels and caption ids (as the built-in pool's): the same inputs, so the same rows.
        using var greyOnly = await ReferenceScorer.LoadAsync(bundle, "cpu", batchSize: 32, cacheCapacity: 100);
        var grey = await greyOnly.ScoreAsync(batch.Ids, misses => new Learning.ExampleBatch(batch.Ids, batch.Pixels, batch.Tokens).Rows(misses));
        for (var k = 0; k < grey.Image.Length; k++)
        {
            Assert.Equal(image[k], grey.Image[k], 1e-6f);
            Assert.Equal(text[k], grey.Text[k], 1e-6f);
        }

        // score's output as Scoring:PrecomputedDirectory: every row is a cache hit, keyed by source key, with score's values.
        var precomputed = new EmbeddingCache(2000, d);
        Assert.StartsWith($"loaded {summary.N} precomputed", PrecomputedEmbeddings.LoadInto(precomputed, output, summary.ReferenceSha256), StringComparison.Ordinal);
        using var cached = new ReferenceScorer(scorer.Embedder, precomputed);
        var fromFile = await cached.ScoreAsync(batch.Ids, _ => throw new InvalidOperationException("no example should miss"));
        Assert.Equal(70, fromFile.CacheHits);
        Assert.Equal(image.AsSpan(0, 70 * d).ToArray(), fromFile.Image);
        var other = Assert.Throws<InvalidDataException>(() => PrecomputedEmbeddings.LoadInto(new EmbeddingCache(10, d), output, new string('0', 64)));
        Assert.Contains("summary.json", other.Message, StringComparison.Ordinal);

        var missing = MakeBundle("core-missing", "--steps", "0", "--defect", "missing-method");
        var e = await Assert.ThrowsAsync<BundleException>(() => ReferenceEmbedder.LoadAsync(missing, "cpu", 32));
        Assert.Contains("encode_text", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Examples_with_only_grey_pixels_reach_a_colour_bundle_of_another_size_as_their_png_reaches_score()
    {
        // Grey pixels become three equal channels, resized bilinearly to 36 x 36: what score gives the bundle for the grey PNG.
        var bundle = MakeBundle("colour", "--steps", "0", "--channels", "3", "--height", "36", "--width", "36",
            "--mean", "0.5", "0.4", "0.3", "--std", "0.3", "0.3", "0.3");
        var output = Path.Combine(_dir, "colour-out");
        var summary = ScoreCommand.Run(Pool, bundle, output, batchSize: 128, saveInputs: true);
        var pairs = new WdsSource(Pool).InFileOrder(BuiltInPairs.Decode).Take(40).ToList();
        var fromPairs = Learning.ExampleBatch.FromPairs(pairs);
        var greyOnly = new Learning.ExampleBatch(fromPairs.Ids, fromPairs.Pixels, fromPairs.Tokens);
        using var scorer = await ReferenceScorer.LoadAsync(bundle, "cpu", batchSize: 16, cacheCapacity: 0);

        var scores = await scorer.ScoreAsync(greyOnly.Ids, misses => greyOnly.Rows(misses));

        var image = NpyFile.ReadFloat32(Path.Combine(output, "image.npy")).Data;
        var text = NpyFile.ReadFloat32(Path.Combine(output, "text.npy")).Data;
        Assert.Equal(40 * summary.D, scores.Image.Length);
        for (var k = 0; k < scores.Image.Length; k++)
        {
            Assert.Equal(image[k], scores.Image[k], 1e-6f);
            Assert.Equal(text[k], scores.Text[k], 1e-6f);
        }
        // The three channels score gave the model differ (their means differ), so the test would see a channel mix-up.
        var inputs = NpyFile.ReadFloat32(Path.Combine(output, "inputs.npy")).Data;
        Assert.NotEqual(inputs[0], inputs[36 * 36]);
    }

    [Fact]
    public void The_bundle_hash_covers_every_file()
    {
        var bundle = MakeBundle("hashed", "--steps", "0");
        string Hash()
        {
            using var b = ReferenceBundle.Load(bundle);
            return b.Sha256;
        }
        var before = Hash();
        Assert.Equal(before, Hash());
        File.AppendAllText(Path.Combine(bundle, "vocab.txt"), "zzz\n");
        Assert.NotEqual(before, Hash());
    }

    [Fact]
    public void Bad_samples_are_skipped_counted_and_the_rest_scored()
    {
        var bundle = MakeBundle("skips", "--steps", "0");
        var shard = Path.Combine(Pool, "pool-000000.tar");
        var bytes = File.ReadAllBytes(shard);
        File.WriteAllBytes(shard, bytes[..(bytes.Length / 3)]);
        var summary = ScoreCommand.Run(Pool, bundle, Path.Combine(_dir, "skips-out"), 64, saveInputs: false);
        Assert.Equal(1, summary.Skipped);
        Assert.Equal(new WdsSource(Pool).InFileOrder(s => s).Count(), summary.N);
        Assert.InRange(summary.N, 600, 1000 - 1);
    }

    private string MakeBundle(string name, params string[] args) =>
        BundleScript.Make(Path.Combine(_dir, "wds", "curated"), Path.Combine(_dir, name), args);

    private string RunPython(string code, params string[] args) => BundleScript.RunPython(_dir, code, args);

    private static string ScriptPath() => BundleScript.Path;
}
