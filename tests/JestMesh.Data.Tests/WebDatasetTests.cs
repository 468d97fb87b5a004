using System.Formats.Tar;
using JestMesh.Data.WebDataset;

namespace JestMesh.Data.Tests;

/// <summary>A small pool (the first 2,000 training images) written as shards of 300 once for the class.</summary>
public sealed class SmallShards : IDisposable
{
    public SmallShards()
    {
        var train = FashionMnist.LoadTrain(FashionMnist.DefaultDirectory);
        var test = FashionMnist.LoadTest(FashionMnist.DefaultDirectory);
        var small = new ImageSet(train.Pixels[..(2000 * ImageSet.PixelsPerImage)], train.Labels[..2000]);
        var smallTest = new ImageSet(test.Pixels[..(100 * ImageSet.PixelsPerImage)], test.Labels[..100]);
        Data = PairDataset.Build(new DataOptions { Seed = 3, CuratedSize = 100 }, small, smallTest);
        Directory = Path.Combine(Path.GetTempPath(), "jm-wds-" + Guid.NewGuid().ToString("N"));
        Written = WdsWriter.WriteDataset(Data, Directory, 300);
    }

    public PairDataset Data { get; }

    public string Directory { get; }

    public string Pool => Path.Combine(Directory, "pool");

    public IReadOnlyList<string> Written { get; }

    public void Dispose() => System.IO.Directory.Delete(Directory, recursive: true);
}

[Trait("Tier", "Unit")]
public sealed class WebDatasetTests(SmallShards shards) : IClassFixture<SmallShards>
{
    [Fact]
    public void Shards_written_by_data_wds_read_back_as_the_same_pairs_in_pool_order()
    {
        var data = shards.Data;
        var source = new WdsSource(shards.Pool);
        var pairs = source.InFileOrder(BuiltInPairs.Decode).ToList();

        Assert.Equal((data.Pool.Count + 299) / 300, source.Shards.Count);
        Assert.Equal(data.Pool.Count, pairs.Count);
        Assert.Empty(source.Skipped);
        for (var i = 0; i < pairs.Count; i++)
        {
            var pool = data.Pool[i];
            Assert.Equal(WdsWriter.KeyOf(pool), pairs[i].Sample.Key);
            Assert.Equal(data.Train.Image(pool.ImageIndex).ToArray(), pairs[i].Pixels);
            Assert.Equal(pool.Tokens, pairs[i].Tokens);
            Assert.Equal(pool.Label, pairs[i].Label);
            Assert.Equal(pool.Kind, pairs[i].Kind);
            Assert.Equal(SourceKeys.Id(Path.GetFileName(source.Shards[i / 300]), pairs[i].Sample.Key), pairs[i].Id);
        }
        Assert.Equal(pairs.Count, pairs.Select(p => p.Id).Distinct().Count());
        var curated = new WdsSource(Path.Combine(shards.Directory, "curated")).InFileOrder(s => s).ToList();
        Assert.Equal(data.Curated.Count, curated.Count);
        Assert.All(curated, s => Assert.Contains("\"curated\":true", s.Json, StringComparison.Ordinal));
    }

    [Fact]
    public void The_shard_order_is_seeded_a_permutation_per_epoch_and_the_same_as_the_order_applied_to_the_pool()
    {
        var data = shards.Data;
        var n = 250;
        var source = new WdsSource(shards.Pool);
        var streamed = source.SuperBatches(n, orderSeed: 7, epochs: 2, s => s.Key).ToList();
        var perEpoch = data.Pool.Count / n;
        Assert.Equal(2 * perEpoch, streamed.Count);
        var epoch0 = streamed.Take(perEpoch).SelectMany(b => b).ToList();
        Assert.Equal(epoch0.Count, epoch0.Distinct().Count());
        Assert.NotEqual(epoch0, streamed.Skip(perEpoch).SelectMany(b => b).ToList());
        Assert.Equal(streamed[0], new WdsSource(shards.Pool).SuperBatches(n, 7, 1, s => s.Key).First());
        Assert.NotEqual(streamed[0], new WdsSource(shards.Pool).SuperBatches(n, 8, 1, s => s.Key).First());

        // The same order computed on pool positions (shard k = positions 300k..300k+299): what a built-in
        // source streaming "as if sharded" would see.
        var mirror = new List<string>();
        foreach (var shard in ShardOrder.Shards(source.Shards.Count, 7, 0))
        {
            var count = Math.Min(300, data.Pool.Count - (shard * 300));
            mirror.AddRange(ShardOrder.Within(count, 7, 0, shard).Select(i => WdsWriter.KeyOf(data.Pool[(shard * 300) + i])));
        }
        Assert.Equal(mirror.Take(epoch0.Count), epoch0);
        var positions = ShardOrder.PoolPositions(data.Pool.Count, 300, n, 7, epochs: 2).ToList();
        Assert.Equal(streamed.Select(b => b.ToArray()), positions.Select(p => p.Select(i => WdsWriter.KeyOf(data.Pool[i])).ToArray()));
    }

    [Fact]
    public void Ids_are_pinned_to_the_documented_rule()
    {
        // Pinned so ids never change between releases (the reference cache and batch logs key on them).
        Assert.Equal(SourceKeys.Id("pool-000000.tar", "00000001"), SourceKeys.Id("pool-000000.tar", "00000001"));
        Assert.NotEqual(SourceKeys.Id("pool-000000.tar", "00000001"), SourceKeys.Id("pool-000001.tar", "00000001"));
        Assert.Equal(PinnedId, SourceKeys.Id("pool-000000.tar", "00000001"));
        Assert.True(SourceKeys.Id("a", "b") >= 0);
    }

    [Fact]
    public void Bad_samples_and_a_truncated_shard_are_skipped_named_and_counted_and_the_rest_is_streamed()
    {
        var dir = Path.Combine(shards.Directory, "bad-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        var good = File.ReadAllBytes(Path.Combine(shards.Pool, "pool-000000.tar"));
        var png = ImageCodec.EncodePngGrey(shards.Data.Train.Image(0), 28, 28);
        using (var file = File.Create(Path.Combine(dir, "a.tar")))
        using (var tar = new TarWriter(file, TarEntryFormat.Ustar))
        {
            Write(tar, "ok1.png", png);
            Write(tar, "ok1.txt", "a photo of a small dark tee"u8.ToArray());
            Write(tar, "garbage.png", [0x89, 0x50, 0x4E, 0x47, 1, 2, 3]);
            Write(tar, "garbage.txt", "a tee"u8.ToArray());
            Write(tar, "empty.png", png);
            Write(tar, "empty.txt", "   "u8.ToArray());
            Write(tar, "nocaption.png", png);
            Write(tar, "cutpng.png", png[..(png.Length / 2)]);
            Write(tar, "cutpng.txt", "a tee"u8.ToArray());
            Write(tar, "ok2.png", png);
            Write(tar, "ok2.txt", "a tee"u8.ToArray());
        }
        // b.tar: the first shard of the pool cut in the middle of its data.
        File.WriteAllBytes(Path.Combine(dir, "b.tar"), good[..(good.Length / 2)]);

        var named = new List<string>();
        var source = new WdsSource(dir, s => named.Add(s.ToString()));
        var streamed = source.InFileOrder(BuiltInPairs.Decode).ToList();

        Assert.Equal(["ok1", "ok2"], streamed.Take(2).Select(p => p.Sample.Key));
        var fromCut = streamed.Skip(2).ToList();
        Assert.InRange(fromCut.Count, 100, 160);
        Assert.Equal(shards.Data.Pool.Take(fromCut.Count).Select(WdsWriter.KeyOf), fromCut.Select(p => p.Sample.Key));
        Assert.Equal(5, source.Skipped.Count);
        Assert.Equal(named, source.Skipped.Select(s => s.ToString()));
        Assert.Contains(source.Skipped, s => s.Key == "garbage" && s.Reason.Contains("does not decode", StringComparison.Ordinal));
        Assert.Contains(source.Skipped, s => s.Key == "cutpng" && s.Reason.Contains("does not decode", StringComparison.Ordinal));
        Assert.Contains(source.Skipped, s => s.Key == "empty" && s.Reason == "empty caption");
        Assert.Contains(source.Skipped, s => s.Key == "nocaption" && s.Reason.Contains("no caption", StringComparison.Ordinal));
        Assert.Contains(source.Skipped, s => s.Shard == "b.tar" && s.Reason.Contains($"truncated after {fromCut.Count} complete samples", StringComparison.Ordinal));
        Assert.Equal(streamed.Count, source.Streamed);
    }

    [Fact]
    public void A_caption_in_other_words_is_kept_and_the_built_in_learner_gets_the_words_it_knows()
    {
        // The built-in pool's captions keep exactly their ids (so `data wds` round-trips and old runs are unchanged).
        foreach (var pair in shards.Data.Pool.Take(500))
        {
            Assert.Equal(pair.Tokens, Captions.EncodeKnownWords(Captions.Decode(pair.Tokens), out var none));
            Assert.Equal(0, none);
        }

        var dir = Path.Combine(shards.Directory, "words-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        var png = ImageCodec.EncodePngGrey(shards.Data.Train.Image(0), 28, 28);
        using (var file = File.Create(Path.Combine(dir, "a.tar")))
        using (var tar = new TarWriter(file, TarEntryFormat.Ustar))
        {
            Write(tar, "web.png", png);
            Write(tar, "web.txt", "A Small, DARK tee photographed outdoors at dusk!"u8.ToArray());
            Write(tar, "none.png", png);
            Write(tar, "none.txt", "Ein Foto eines Kleides"u8.ToArray());
        }

        var source = new WdsSource(dir);
        var streamed = source.InFileOrder(BuiltInPairs.Decode).ToList();
        Assert.Empty(source.Skipped);
        Assert.Equal(["web", "none"], streamed.Select(p => p.Sample.Key));
        Assert.Equal("A Small, DARK tee photographed outdoors at dusk!", streamed[0].Sample.Caption);
        Assert.Equal(Captions.Encode("a small dark tee"), streamed[0].Tokens);
        Assert.All(streamed[1].Tokens, t => Assert.Equal(Captions.PadToken, t));
        Captions.EncodeKnownWords("A Small, DARK tee photographed outdoors at dusk!", out var dropped);
        Assert.Equal(4, dropped);
    }

    [Fact]
    public void A_directory_without_shards_is_refused_naming_it()
    {
        var dir = Path.Combine(shards.Directory, "empty-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(dir);
        var e = Assert.Throws<InvalidDataException>(() => new WdsSource(dir));
        Assert.Contains(dir, e.Message, StringComparison.Ordinal);
    }

    private static void Write(TarWriter tar, string name, byte[] bytes)
    {
        using var stream = new MemoryStream(bytes);
        tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = stream });
    }

    // Computed independently: int.from_bytes(hashlib.sha256(b"pool-000000.tar/00000001").digest()[:8], "big") & (2**63 - 1).
    private const long PinnedId = 791232504603630114;
}
