using Google.Protobuf;
using JestMesh.Cli.Commands;
using JestMesh.Data;
using JestMesh.Data.WebDataset;
using JestMesh.Learning;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using JestMesh.TestKit;

namespace JestMesh.Cli.Tests;

/// <summary>
/// The Scoring service with a reference bundle (real broker on loopback, real Ingest and Scoring hosts):
/// the bundle gets each example's stored image (colour PNG or JPEG of another size) decoded, resized and
/// normalised as `score` does it, so the rows equal `score`'s for the same samples.
/// </summary>
[Collection(TorchCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class ScoringBundleTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);
    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-scoring-bundle-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Scoring_gives_a_bundle_the_stored_images_as_score_does_and_dead_letters_one_that_does_not_decode()
    {
        var train = FashionMnist.LoadTrain(FashionMnist.DefaultDirectory);
        var small = new ImageSet(train.Pixels[..(600 * ImageSet.PixelsPerImage)], train.Labels[..600]);
        var data = PairDataset.Build(new DataOptions { Seed = 4, CuratedSize = 100 }, small, small);
        var shards = Path.Combine(_dir, "colour");
        var names = ColourShards.Write(shards, data, shards: 3, perShard: 32, width: 40, height: 30);
        // 3 channels at 32 x 32 with per-channel normalisation: the 40 x 30 colour images must be decoded and resized as declared.
        var bundle = BundleScript.Make(shards, Path.Combine(_dir, "bundle"), "--steps", "20", "--channels", "3", "--height", "32", "--width", "32",
            "--mean", "0.5", "0.45", "0.4", "--std", "0.25", "0.3", "0.35");
        var scoredDir = Path.Combine(_dir, "scored");
        var summary = ScoreCommand.Run(shards, bundle, scoredDir, batchSize: 50, saveInputs: false);
        Assert.Equal(names.Count, summary.N);
        var row = File.ReadAllLines(Path.Combine(scoredDir, "keys.txt")).Select((k, i) => (k, i)).ToDictionary(p => p.k, p => p.i);
        var image = NpyFile.ReadFloat32(Path.Combine(scoredDir, "image.npy")).Data;
        var text = NpyFile.ReadFloat32(Path.Combine(scoredDir, "text.npy")).Data;
        var d = summary.D;

        var options = TestBroker.Shared().Options(TestNames.Unique("bundle-scoring"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        await using var scoring = await ServiceHosts.StartScoringAsync(options, bundle, expectedDataFingerprint: "");
        var (ingest, worker) = await ServiceHosts.StartIngestAsync(options, "job-b", superBatchSize: 32, superBatches: 3,
            extra: new Dictionary<string, string?> { ["Ingest:WebDatasetDirectory"] = shards });
        await using var _ = ingest;
        var published = await worker.Completion.Within(Deadline, "ingest to publish 3 super-batches of the colour shards");
        Assert.Equal(0, published.Skipped);

        var scored = new List<ScoredSuperBatch>();
        await Eventually.WaitUntilAsync(async () =>
        {
            scored.AddRange((await client.GetAllAsync(client.Topology.Scored)).Select(m => ScoredSuperBatch.Parser.ParseFrom(m.Body)));
            return scored.Count >= 3;
        }, Deadline, "3 scored super-batches");

        var compared = 0;
        var formats = new HashSet<ImageFormat>();
        var worst = 0f;
        foreach (var batch in scored)
        {
            Assert.Equal(summary.ReferenceSha256, batch.ReferenceCheckpointSha256);
            Assert.Equal(summary.Alpha, batch.ReferenceAlpha);
            var (zi, zt, dim) = batch.ValidatedEmbeddings();
            Assert.Equal(d, dim);
            for (var i = 0; i < batch.Examples.Count; i++)
            {
                var example = batch.Examples[i];
                formats.Add(example.ImageFormat);
                var r = row[SourceKeys.Name(example.Source.Shard, example.Source.Key)];
                for (var k = 0; k < d; k++)
                {
                    worst = Math.Max(worst, Math.Abs(image[(r * d) + k] - zi[(i * d) + k]));
                    worst = Math.Max(worst, Math.Abs(text[(r * d) + k] - zt[(i * d) + k]));
                }
                compared++;
            }
        }
        Assert.Equal(96, compared);
        Assert.Equal([ImageFormat.Png, ImageFormat.Jpeg], formats.Order());
        Assert.InRange(worst, 0f, 1e-5f);

        // The comparison can fail: the same examples given to the bundle as grey 28 x 28 pixels (what Scoring did before)
        // score differently.
        var first = scored[0];
        var (ids, pixels, tokens) = ExampleArrays.Of(first.Examples, "first");
        using var direct = await ReferenceScorer.LoadAsync(bundle, "cpu", batchSize: 32, cacheCapacity: 0);
        var grey = await direct.ScoreAsync(ids, misses => new ExampleBatch(ids, pixels, tokens).Rows(misses));
        var (firstImage, _, _) = first.ValidatedEmbeddings();
        Assert.True(firstImage.Zip(grey.Image).Max(p => Math.Abs(p.First - p.Second)) > 1e-3f, "grey inputs give other image embeddings");

        // An example whose stored image does not decode (new ids, so no cache hit hides it): the super-batch is dead-lettered
        // with the example, its source and the reason; the rest of the run is unaffected.
        var poison = first.Examples.Take(8).Select((e, i) =>
        {
            var copy = e.Clone();
            copy.Id = (1L << 60) + i;
            return copy;
        }).ToList();
        poison[2].EncodedImage = ByteString.CopyFrom(poison[2].EncodedImage.Span[..40]);
        var bad = new SuperBatch { Id = "job-b/99", Job = "job-b", Sequence = 99 };
        bad.Examples.Add(poison);
        await client.Publisher.PublishAsync(new OutgoingMessage("", client.Topology.SuperBatches, bad.Id, bad.ToByteArray()), CancellationToken.None);
        var dead = new List<(string? MessageId, byte[] Body, IDictionary<string, object?> Headers)>();
        await Eventually.WaitUntilAsync(async () => { dead.AddRange(await client.GetAllAsync(client.Topology.DeadLetter)); return dead.Count >= 1; }, Deadline, "the dead letter");
        var reason = MessagingTelemetry.HeaderText(dead.Single().Headers[QueueTopology.ReasonHeader])!;
        var source = poison[2].Source;
        Assert.Contains($"super-batch job-b/99 examples[2] id {poison[2].Id} ({source.Shard}/{source.Key}): image does not decode", reason, StringComparison.Ordinal);
        Assert.Equal(8, SuperBatch.Parser.ParseFrom(dead.Single().Body).Examples.Count);
    }
}
