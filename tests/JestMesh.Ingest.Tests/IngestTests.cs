using System.Collections.Concurrent;
using System.Formats.Tar;
using JestMesh.Data;
using JestMesh.Data.WebDataset;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.Options;

namespace JestMesh.Ingest.Tests;

/// <summary>The real pairs, built once for the class.</summary>
public sealed class RealPairs
{
    public PairDataset Data { get; } = PairDataset.Build(new DataOptions { Seed = 3 });
}

[Trait("Tier", "Broker")]
public sealed class IngestTests(RealPairs pairs) : IClassFixture<RealPairs>
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task Ingest_stops_when_the_queue_is_full_and_resumes_when_it_drains_without_skipping_or_doubling()
    {
        var options = TestBroker.Shared().Options(TestNames.Unique("ingest-bp"));
        options.InputQueueMaxLength = 2;
        await using var client = new BrokerClient(options);
        var ingestOptions = new IngestOptions { Job = "bp", SuperBatchSize = 100, MaxSuperBatches = 8, ResumeBelow = 0 };
        var log = new RecordingLogger<IngestRunner>();
        var runner = new IngestRunner(client.Connections, client.Publisher, Options.Create(ingestOptions), log);

        var run = runner.RunAsync(pairs.Data, CancellationToken.None);
        // With nobody consuming, the broker must refuse a publish once the queue is full, and ingest
        // must hold that super-batch. Wait for ingest to say so, not for a queue depth: a quorum
        // queue enforces x-max-length only once it is exceeded, and how far past the limit a
        // publisher gets depends on when the broker's "reject" notice overtakes its next publish.
        await Eventually.WaitUntilAsync(() => log.Named("LogQueueFull").Count > 0, Deadline, "ingest to hold a super-batch because the queue is full");
        var held = (string)log.Named("LogQueueFull")[0].Values["SuperBatchId"]!;
        var heldSequence = long.Parse(held["bp/".Length..], System.Globalization.CultureInfo.InvariantCulture);
        var waiting = await client.Connections.ReadyCountAsync(client.Topology.SuperBatches, CancellationToken.None);
        Assert.False(run.IsCompleted, "ingest stalls while the queue is full");
        // Publishing is one confirmed message at a time: everything before the held one is in the
        // queue, nothing after it; and the queue had reached its limit before it refused.
        Assert.Equal((uint)heldSequence, waiting);
        Assert.InRange(heldSequence, options.InputQueueMaxLength, ingestOptions.MaxSuperBatches - 1);

        var received = new ConcurrentQueue<SuperBatch>();
        var drain = client.NewConsumer();
        await drain.StartAsync(client.Topology.SuperBatches, (message, _) =>
        {
            received.Enqueue(SuperBatch.Parser.ParseFrom(message.Body.Span));
            return Task.CompletedTask;
        }, CancellationToken.None);
        var result = await run.Within(Deadline, "ingest to finish once the queue drains");
        await Eventually.WaitUntilAsync(() => received.Count == 8, Deadline, "all 8 super-batches at the consumer");

        Assert.True(result.BackpressureWaits >= 1, "the broker refused at least one publish");
        Assert.Equal(Enumerable.Range(0, 8).Select(i => (long)i), received.Select(b => b.Sequence).Order());
        var planned = IngestPlan.Positions(pairs.Data.Pool.Count, ingestOptions).SelectMany(positions => positions.Select(p => pairs.Data.Pool[p].Id));
        Assert.Equal(planned, received.OrderBy(b => b.Sequence).SelectMany(b => b.Examples.Select(e => e.Id)));
        Assert.Equal(result.ExampleIds, received.OrderBy(b => b.Sequence).SelectMany(b => b.Examples.Select(e => e.Id)));
    }

    [Fact]
    public async Task Ingest_stays_at_most_MaxAhead_scored_super_batches_ahead_of_the_jobs_trainers()
    {
        var options = TestBroker.Shared().Options(TestNames.Unique("ingest-ahead"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        // Selection's router declares a job's queue with its first scored super-batch; here three wait
        // for the job's trainers, which do not come.
        var jobQueue = client.Topology.JobQueue("ahead");
        var connection = await client.Connections.PublishConnectionAsync(CancellationToken.None);
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.QueueDeclareAsync(jobQueue, durable: true, exclusive: false, autoDelete: false,
                arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" });
        }
        for (var i = 0; i < 3; i++)
        {
            await client.Publisher.PublishAsync(Messaging.OutgoingMessage.ToQueue(jobQueue, $"scored-{i}", new byte[] { 1 }), CancellationToken.None);
        }
        var ingestOptions = new IngestOptions { Job = "ahead", SuperBatchSize = 100, MaxSuperBatches = 5, MaxAhead = 3 };
        var log = new RecordingLogger<IngestRunner>();
        var runner = new IngestRunner(client.Connections, client.Publisher, Options.Create(ingestOptions), log);

        var run = runner.RunAsync(pairs.Data, CancellationToken.None);
        await Eventually.WaitUntilAsync(() => log.Named("LogJobAhead").Count > 0, Deadline, "ingest to wait for the job's trainers");
        // The check comes before each publish: nothing was published while the job was 3 ahead.
        Assert.Equal(0u, await client.Connections.ReadyCountAsync(client.Topology.SuperBatches, CancellationToken.None));
        Assert.False(run.IsCompleted, "ingest waits while the job is MaxAhead super-batches ahead");

        // A trainer takes one: the job has room again, and (nothing scoring here) keeps it.
        Assert.Single(await client.GetAllAsync(jobQueue, max: 1));
        var result = await run.Within(Deadline, "ingest to finish once the job has room");

        Assert.Equal(5, result.SuperBatches);
        Assert.Equal(5u, await client.Connections.ReadyCountAsync(client.Topology.SuperBatches, CancellationToken.None));
        Assert.True(result.BackpressureWaits >= 1, "the wait counts as backpressure");
    }
}

/// <summary>Building and planning super-batches: no broker.</summary>
[Trait("Tier", "Unit")]
public sealed class SuperBatchBuilderTests(RealPairs pairs) : IClassFixture<RealPairs>
{
    [Fact]
    public void Super_batches_carry_pool_pairs_faithfully()
    {
        var data = pairs.Data;
        var batch = SuperBatchBuilder.Build(data, "job", 5, [0, 1, 2]);

        Assert.Equal("job/5", batch.Id);
        Assert.Equal(data.Fingerprint, batch.DataFingerprint);
        for (var i = 0; i < 3; i++)
        {
            var pair = data.Pool[i];
            var example = batch.Examples[i];
            Assert.Equal(pair.Id, example.Id);
            Assert.Equal(data.Train.Image(pair.ImageIndex).ToArray(), example.Image.ToByteArray());
            Assert.Equal(pair.Tokens.Where(t => t != Captions.PadToken), example.CaptionTokens);
            Assert.Equal(pair.Label, example.Label);
            Assert.Equal(pair.Kind.ToString(), example.GroundTruth.ToString());
        }
        batch.Validate(Captions.VocabularySize, Captions.MaxTokens);
    }

    [Fact]
    public void Plan_covers_each_epoch_once_and_stops_at_the_limit()
    {
        var plan = IngestPlan.Positions(1000, new IngestOptions { Job = "j", SuperBatchSize = 300, Epochs = 2 }).ToList();
        var limited = IngestPlan.Positions(1000, new IngestOptions { Job = "j", SuperBatchSize = 300, Epochs = 2, MaxSuperBatches = 4 }).Count();

        var again = IngestPlan.Positions(1000, new IngestOptions { Job = "j", SuperBatchSize = 300, Epochs = 2 }).ToList();
        var otherSeed = IngestPlan.Positions(1000, new IngestOptions { Job = "j", SuperBatchSize = 300, Epochs = 2, OrderSeed = 1 }).ToList();

        Assert.Equal(6, plan.Count);
        Assert.Equal(900, plan.Take(3).SelectMany(p => p).Distinct().Count());
        Assert.NotEqual(Enumerable.Range(0, 900), plan.Take(3).SelectMany(p => p));
        Assert.Equal(900, plan.Skip(3).SelectMany(p => p).Distinct().Count());
        Assert.NotEqual(plan[0], plan[3]);
        Assert.Equal(plan, again);
        Assert.NotEqual(plan[0], otherSeed[0]);
        Assert.Equal(4, limited);
        Assert.Throws<ArgumentException>(() => IngestPlan.Positions(10, new IngestOptions { Job = "j", SuperBatchSize = 11 }).ToList());
    }
}

[Trait("Tier", "Broker")]
public sealed class WebDatasetIngestTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(2);
    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-wds-ingest-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Ingest_publishes_shards_with_their_source_keys_and_logs_and_counts_every_skipped_sample()
    {
        var train = FashionMnist.LoadTrain(FashionMnist.DefaultDirectory);
        var small = new ImageSet(train.Pixels[..(1200 * ImageSet.PixelsPerImage)], train.Labels[..1200]);
        var data = PairDataset.Build(new DataOptions { Seed = 1, CuratedSize = 100 }, small, small);
        WdsWriter.WriteDataset(data, _dir, 400);
        var pool = Path.Combine(_dir, "pool");
        using (var file = File.Create(Path.Combine(pool, "zz-bad.tar")))
        using (var tar = new TarWriter(file, TarEntryFormat.Ustar))
        {
            Add(tar, "broken.png", [1, 2, 3, 4]);
            Add(tar, "broken.txt", "a tee"u8.ToArray());
            Add(tar, "foreign.png", ImageCodec.EncodePngGrey(small.Image(0), 28, 28));
            Add(tar, "foreign.txt", "ein rotes kleid"u8.ToArray());
        }
        var options = TestBroker.Shared().Options(TestNames.Unique("ingest-wds"));
        await using var client = new BrokerClient(options);
        var log = new RecordingLogger<IngestRunner>();
        var runner = new IngestRunner(client.Connections, client.Publisher, Options.Create(new IngestOptions { Job = "wds", SuperBatchSize = 250, OrderSeed = 4 }), log);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var received = new ConcurrentQueue<SuperBatch>();
        var consumer = client.NewConsumer();
        await consumer.StartAsync(client.Topology.SuperBatches, (message, _) =>
        {
            received.Enqueue(SuperBatch.Parser.ParseFrom(message.Body.Span));
            return Task.CompletedTask;
        }, CancellationToken.None);

        var result = await runner.RunAsync(pool, CancellationToken.None).Within(Deadline, "ingest of the shards");
        await Eventually.WaitUntilAsync(() => received.Count == result.SuperBatches, Deadline, "every published super-batch at the consumer");

        Assert.Equal(data.Pool.Count / 250, result.SuperBatches);
        // The image that does not decode is skipped; the caption in other words is not (its text travels, the built-in learner gets no word of it).
        Assert.Equal(1, result.Skipped);
        var skipped = log.Named("LogSkipped").Select(e => (string)e.Values["Key"]!).Order().ToArray();
        Assert.Equal(["broken"], skipped);
        var examples = received.OrderBy(b => b.Sequence).SelectMany(b => b.Examples).ToList();
        Assert.Equal(result.ExampleIds, examples.Select(e => e.Id));
        Assert.Equal(examples.Count, examples.Select(e => e.Id).Distinct().Count());
        // The order `train --inproc --data --seed 4` streams (the same WdsSource call the loop makes).
        var inproc = new WdsSource(pool).SuperBatches(250, 4, 1, BuiltInPairs.Decode).SelectMany(b => b.Select(p => p.Id));
        Assert.Equal(inproc, examples.Select(e => e.Id));
        var byKey = data.Pool.ToDictionary(WdsWriter.KeyOf);
        Assert.All(examples.Where(e => e.Source.Key == "foreign"), e =>
        {
            Assert.Equal("ein rotes kleid", e.Caption);
            Assert.Empty(e.CaptionTokens);
        });
        Assert.All(examples.Where(e => e.Source.Key != "foreign"), e =>
        {
            Assert.Equal(SourceKeys.Id(e.Source.Shard, e.Source.Key), e.Id);
            Assert.Equal(ImageFormat.Png, e.ImageFormat);
            var pair = byKey[e.Source.Key];
            Assert.Equal(data.Train.Image(pair.ImageIndex).ToArray(), e.Image.ToByteArray());
            Assert.Equal(Captions.Decode(pair.Tokens), e.Caption);
            Assert.Equal(pair.Tokens.Where(t => t != Captions.PadToken), e.CaptionTokens);
        });
        Assert.All(received, b => b.Validate(Captions.VocabularySize, Captions.MaxTokens));
    }

    private static void Add(TarWriter tar, string name, byte[] bytes)
    {
        using var stream = new MemoryStream(bytes);
        tar.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { DataStream = stream });
    }
}
