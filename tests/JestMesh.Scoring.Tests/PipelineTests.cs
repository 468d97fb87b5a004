using System.Diagnostics;
using Google.Protobuf;
using JestMesh.Curation;
using JestMesh.Ingest;
using JestMesh.Learning;
using JestMesh.Messaging;
using JestMesh.Protos;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace JestMesh.Scoring.Tests;

[Collection(PipelineCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class PipelineTests(PipelineFixture fixture)
{
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task Ingest_to_scoring_delivers_every_example_once_with_the_embeddings_of_the_model_called_directly()
    {
        var options = TestBroker.Shared().Options(TestNames.Unique("pipeline"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var sink = await ScoredSink.StartAsync(client);
        await using var scoring = await fixture.StartScoringAsync(options);
        var (ingest, worker) = await PipelineFixture.StartIngestAsync(options, "job-a", superBatchSize: 256, superBatches: 6);
        await using var _ = ingest;

        var result = await worker.Completion.Within(Deadline, "ingest to publish 6 super-batches");
        await Eventually.WaitUntilAsync(() => sink.Batches.Count == 6, Deadline, "6 scored super-batches");

        Assert.Equal(6 * 256, result.ExampleIds.Count);
        Assert.Equal(result.ExampleIds.Order(), sink.ExampleIds.Order());
        Assert.All(sink.Effects.Values, n => Assert.Equal(1, n));
        foreach (var scored in sink.Batches.Values)
        {
            var (image, text, dim) = scored.ValidatedEmbeddings();
            var direct = fixture.EmbedDirectly(scored.Examples);
            Assert.Equal(fixture.Metadata.Dim, dim);
            Assert.Equal(direct.Image.Length, image.Length);
            for (var i = 0; i < image.Length; i++)
            {
                Assert.Equal(direct.Image[i], image[i], 1e-5f);
                Assert.Equal(direct.Text[i], text[i], 1e-5f);
            }
            Assert.Equal(direct.Alpha, scored.ReferenceAlpha);
            Assert.Equal(direct.Beta, scored.ReferenceBeta);
            Assert.Equal(fixture.Metadata.Sha256, scored.ReferenceCheckpointSha256);
            Assert.Equal("job-a", scored.Job);
            Assert.Equal($"job-a/{scored.Sequence}", scored.Id);
        }
    }

    [Fact]
    public async Task Broker_restart_mid_run_loses_no_example_and_duplicates_nothing_after_dedup()
    {
        await using var broker = await TestBroker.StartPrivateAsync(portOffset: 12);
        var options = broker.Options(TestNames.Unique("pipeline-restart"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var sink = await ScoredSink.StartAsync(client);
        await using var scoring = await fixture.StartScoringAsync(options);
        const int superBatches = 16;
        // Half the job before the restart (the Ingest host), half after it (a second Ingest with the
        // same plan, so the same ids: its first half again must have no second effect). The restart
        // is mid-run by construction, not because rabbitmqctl stop_app beat 16 super-batches.
        var (ingest, worker) = await PipelineFixture.StartIngestAsync(options, "job-r", superBatchSize: 128, superBatches: superBatches / 2);
        await using var _ = ingest;
        await worker.Completion.Within(Deadline, "ingest to publish the first half");

        await Eventually.WaitUntilAsync(() => sink.Batches.Count >= 2, Deadline, "the first scored super-batches");
        await broker.StopAppAsync();
        var seenAtRestart = sink.Batches.Count;
        await broker.StartAppAsync();
        await Eventually.WaitUntilAsync(() => client.Connections.IsHealthy, Deadline, "the test's connections to recover");
        var rest = new IngestRunner(client.Connections, client.Publisher,
            Options.Create(new IngestOptions { Job = "job-r", SuperBatchSize = 128, MaxSuperBatches = superBatches }), NullLogger<IngestRunner>.Instance);
        var result = await rest.RunAsync(fixture.Data, CancellationToken.None).Within(Deadline, "the second ingest after the restart");
        await Eventually.WaitUntilAsync(() => sink.Batches.Count == superBatches, Deadline, $"{superBatches} scored super-batches after the restart");

        Assert.True(seenAtRestart <= superBatches / 2, $"the restart must happen mid-run ({seenAtRestart} of {superBatches} seen)");
        Assert.Equal(result.ExampleIds.Order(), sink.ExampleIds.Order());
        Assert.All(sink.Effects.Values, n => Assert.Equal(1, n));
    }

    [Fact]
    public async Task Scoring_killed_between_publish_and_ack_gets_the_super_batch_again_and_it_has_one_effect()
    {
        var options = TestBroker.Shared().Options(TestNames.Unique("pipeline-kill"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var sink = await ScoredSink.StartAsync(client);
        using var embedder = await ReferenceEmbedder.LoadAsync(fixture.CheckpointDirectory, "cpu", 512);
        var scoringOptions = Options.Create(new ScoringOptions { ReferenceDirectory = fixture.CheckpointDirectory });
        var batch = SuperBatchBuilder.Build(fixture.Data, "job-k", 0, Enumerable.Range(0, 64).ToArray());
        await client.Publisher.PublishAsync(new OutgoingMessage("", client.Topology.SuperBatches, batch.Id, batch.ToByteArray()), CancellationToken.None);

        // First scoring process: publishes (confirmed), then dies before its ack. Its connection is
        // closed from the broker's side, and it does not come back (recovery interval of minutes).
        var victimOptions = TestBroker.Shared().Options(options.QueuePrefix);
        victimOptions.RecoveryInterval = TimeSpan.FromMinutes(5);
        victimOptions.ClientName = "victim";
        await using var first = new BrokerClient(victimOptions);
        var firstProcessor = new ScoringProcessor(new SuperBatchScorer(new ReferenceScorer(embedder, new EmbeddingCache(1000, embedder.Dim)), scoringOptions, NullLogger<SuperBatchScorer>.Instance), first.Publisher, first.Connections);
        var firstPublished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var firstConsumer = first.NewConsumer();
        await firstConsumer.StartAsync(first.Topology.SuperBatches, async (message, ct) =>
        {
            await firstProcessor.HandleAsync(message, ct);
            firstPublished.SetResult();
            // Never returns (so never acks) until the test disposes this "dead" process.
            await Task.Delay(Timeout.Infinite, ct);
        }, CancellationToken.None);
        await firstPublished.Task.Within(Deadline, "the first scoring to publish");
        await Eventually.WaitUntilAsync(() => sink.Batches.Count == 1, Deadline, "the first scored super-batch downstream");
        var victimConnection = await first.Connections.ConsumeConnectionAsync(CancellationToken.None);
        await TestBroker.Shared().CloseConnectionAsync(victimConnection.LocalPort, "scoring process killed by the test");

        // Second scoring process (fresh cache, fresh dedup window) gets the redelivery.
        await using var second = new BrokerClient(options);
        var secondProcessor = new ScoringProcessor(new SuperBatchScorer(new ReferenceScorer(embedder, new EmbeddingCache(1000, embedder.Dim)), scoringOptions, NullLogger<SuperBatchScorer>.Instance), second.Publisher, second.Connections);
        var secondRedelivered = new List<bool>();
        var secondConsumer = second.NewConsumer();
        await secondConsumer.StartAsync(second.Topology.SuperBatches, async (message, ct) =>
        {
            await secondProcessor.HandleAsync(message, ct);
            lock (secondRedelivered)
            {
                secondRedelivered.Add(message.Redelivered);
            }
        }, CancellationToken.None);
        await Eventually.WaitUntilAsync(() => { lock (secondRedelivered) { return secondRedelivered.Count == 1; } }, Deadline, "the redelivery to be scored again");
        await Eventually.WaitUntilAsync(async () => await client.Connections.ReadyCountAsync(client.Topology.Scored, CancellationToken.None) == 0
            && sink.Batches.Count == 1 && (await client.Connections.ReadyCountAsync(client.Topology.SuperBatches, CancellationToken.None)) == 0,
            Deadline, "both queues drained");

        Assert.True(secondRedelivered.Single(), "the second scoring got a redelivery");
        Assert.Equal(1, sink.Effects[ProcessorMessageId(batch.Id)]);
        Assert.Single(sink.Batches);
        Assert.True(sink.Batches.ContainsKey(ProcessorMessageId(batch.Id)));
    }

    private static string ProcessorMessageId(string superBatchId) => ScoringProcessor.ScoredMessageId(superBatchId);

    [Fact]
    public async Task Poison_super_batches_land_in_the_dead_letter_queue_with_a_reason_and_scoring_keeps_going()
    {
        var options = TestBroker.Shared().Options(TestNames.Unique("pipeline-poison"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var sink = await ScoredSink.StartAsync(client);
        await using var scoring = await fixture.StartScoringAsync(options);

        var good = SuperBatchBuilder.Build(fixture.Data, "job-p", 0, Enumerable.Range(0, 32).ToArray());
        var truncated = good.ToByteArray()[..(good.CalculateSize() / 2)];
        var wrongImage = SuperBatchBuilder.Build(fixture.Data, "job-p", 1, Enumerable.Range(32, 8).ToArray());
        wrongImage.Examples[3].Image = ByteString.CopyFrom(new byte[700]);
        var badToken = SuperBatchBuilder.Build(fixture.Data, "job-p", 2, Enumerable.Range(40, 8).ToArray());
        badToken.Examples[5].CaptionTokens[0] = 1_000_000;
        var good2 = SuperBatchBuilder.Build(fixture.Data, "job-p", 3, Enumerable.Range(48, 32).ToArray());
        foreach (var (id, body) in new[] { ("truncated", truncated), (wrongImage.Id, wrongImage.ToByteArray()), (good.Id, good.ToByteArray()), (badToken.Id, badToken.ToByteArray()), (good2.Id, good2.ToByteArray()) })
        {
            await client.Publisher.PublishAsync(new OutgoingMessage("", client.Topology.SuperBatches, id, body), CancellationToken.None);
        }

        await Eventually.WaitUntilAsync(() => sink.Batches.Count == 2, Deadline, "the two good super-batches scored");
        var dead = new List<(string? MessageId, byte[] Body, IDictionary<string, object?> Headers)>();
        await Eventually.WaitUntilAsync(async () => { dead.AddRange(await client.GetAllAsync(client.Topology.DeadLetter)); return dead.Count >= 3; }, Deadline, "three dead letters");

        var reasons = dead.ToDictionary(d => d.MessageId!, d => MessagingTelemetry.HeaderText(d.Headers[QueueTopology.ReasonHeader])!);
        Assert.Equal(3, reasons.Count);
        Assert.Contains("not a valid SuperBatch protobuf", reasons["truncated"], StringComparison.Ordinal);
        Assert.Contains($"examples[3] (id {wrongImage.Examples[3].Id}): image has 700 bytes, expected 784", reasons[wrongImage.Id], StringComparison.Ordinal);
        Assert.Contains("caption token 1000000 is outside the vocabulary", reasons[badToken.Id], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scored_super_batch_with_wrong_embedding_shape_or_nan_is_dead_lettered_by_its_consumer()
    {
        var options = TestBroker.Shared().Options(TestNames.Unique("scored-poison"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var sink = await ScoredSink.StartAsync(client);
        using var embedder = await ReferenceEmbedder.LoadAsync(fixture.CheckpointDirectory, "cpu", 512);
        var scorer = new SuperBatchScorer(new ReferenceScorer(embedder, new EmbeddingCache(1000, embedder.Dim)),
            Options.Create(new ScoringOptions { ReferenceDirectory = fixture.CheckpointDirectory }), NullLogger<SuperBatchScorer>.Instance);
        var good = await scorer.ScoreAsync(SuperBatchBuilder.Build(fixture.Data, "job-s", 0, Enumerable.Range(0, 16).ToArray()));
        var wrongShape = good.Clone();
        wrongShape.ReferenceTextEmbeddings = Protos.V1.Tensor.FromFloat32(new float[16 * 32], 16, 32);
        var withNaN = good.Clone();
        var values = withNaN.ReferenceImageEmbeddings.ToFloat32("test", 16, -1);
        values[17] = float.NaN;
        withNaN.ReferenceImageEmbeddings = Protos.V1.Tensor.FromFloat32(values, 16, values.Length / 16);
        foreach (var (id, scored) in new[] { ("shape", wrongShape), ("nan", withNaN), ("good", good) })
        {
            await client.Publisher.PublishAsync(new OutgoingMessage("", client.Topology.Scored, id, scored.ToByteArray()), CancellationToken.None);
        }

        await Eventually.WaitUntilAsync(() => sink.Batches.ContainsKey("good"), Deadline, "the good scored super-batch");
        var dead = new List<(string? MessageId, byte[] Body, IDictionary<string, object?> Headers)>();
        await Eventually.WaitUntilAsync(async () => { dead.AddRange(await client.GetAllAsync(client.Topology.DeadLetter)); return dead.Count >= 2; }, Deadline, "two dead letters");

        var reasons = dead.ToDictionary(d => d.MessageId!, d => MessagingTelemetry.HeaderText(d.Headers[QueueTopology.ReasonHeader])!);
        Assert.Contains("reference_text_embeddings: shape [16, 32], expected [16, 64]", reasons["shape"], StringComparison.Ordinal);
        Assert.Contains("reference_image_embeddings contain NaN", reasons["nan"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scoring_span_links_to_the_ingest_publish_context()
    {
        var exported = new ExportedSpanCollection();
        using var tracing = Sdk.CreateTracerProviderBuilder()
            .AddSource(MessagingTelemetry.Name, IngestRunner.TelemetryName, SuperBatchScorer.TelemetryName)
            .SetSampler(new AlwaysOnSampler())
            .AddInMemoryExporter(exported)
            .Build();
        var options = TestBroker.Shared().Options(TestNames.Unique("pipeline-trace"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var sink = await ScoredSink.StartAsync(client);
        await using var scoring = await fixture.StartScoringAsync(options);
        var (ingest, worker) = await PipelineFixture.StartIngestAsync(options, "job-t", superBatchSize: 64, superBatches: 2);
        await using var _ = ingest;
        await worker.Completion.Within(Deadline, "ingest");
        await Eventually.WaitUntilAsync(() => sink.Batches.Count == 2, Deadline, "2 scored super-batches");
        tracing.ForceFlush();

        var spans = exported.Snapshot();
        var superBatchQueue = client.Topology.SuperBatches;
        foreach (var id in new[] { "job-t/0", "job-t/1" })
        {
            var ingestSpan = spans.Single(a => a.OperationName == "ingest.publish" && (string?)a.GetTagItem(Telemetry.Attributes.SuperBatchId) == id);
            var publish = spans.Single(a => a.Kind == ActivityKind.Producer && a.ParentSpanId == ingestSpan.SpanId
                && (string?)a.GetTagItem("messaging.destination.name") == superBatchQueue);
            var process = spans.Single(a => a.OperationName == "scoring.process" && (string?)a.GetTagItem(Telemetry.Attributes.SuperBatchId) == id);
            Assert.Contains(process.Links, link => link.Context.SpanId == publish.SpanId && link.Context.TraceId == publish.TraceId);
            Assert.Equal(ingestSpan.TraceId, process.TraceId);
            // The scored message continues the same trace downstream.
            Assert.Contains(spans, a => a.Kind == ActivityKind.Producer && a.TraceId == ingestSpan.TraceId
                && (string?)a.GetTagItem("messaging.destination.name") == client.Topology.Scored);
        }
    }

    [Fact]
    public async Task Cache_is_saved_while_scoring_runs_so_a_crash_keeps_the_reference_work()
    {
        var options = TestBroker.Shared().Options(TestNames.Unique("cache-save"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var sink = await ScoredSink.StartAsync(client);
        var path = Path.Combine(Path.GetTempPath(), $"jm-cache-{Guid.NewGuid():N}.bin");
        try
        {
            await using var scoring = await fixture.StartScoringAsync(options, cachePath: path, cacheSaveInterval: TimeSpan.FromMilliseconds(200));
            var (ingest, worker) = await PipelineFixture.StartIngestAsync(options, "job-c", superBatchSize: 128, superBatches: 3);
            await using var _ = ingest;
            var produced = await worker.Completion.Within(Deadline, "ingest to publish 3 super-batches");
            await Eventually.WaitUntilAsync(() => sink.Batches.Count == 3, Deadline, "3 scored super-batches");

            // Still running (never stopped): the file on disk must hold every embedding computed.
            var reloaded = new EmbeddingCache(10_000, fixture.Metadata.Dim);
            await Eventually.WaitUntilAsync(() =>
            {
                if (!File.Exists(path))
                {
                    return false;
                }
                var fresh = new EmbeddingCache(10_000, fixture.Metadata.Dim);
                fresh.Load(path, fixture.Metadata.Sha256);
                reloaded = fresh;
                return fresh.Count == produced.ExampleIds.Count;
            }, Deadline, "the periodic save to hold all 384 embeddings");
            var image = new float[fixture.Metadata.Dim];
            var text = new float[fixture.Metadata.Dim];
            Assert.All(produced.ExampleIds, id => Assert.True(reloaded.TryGet(id, image, text), $"example {id} in the saved cache"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task Scoring_given_a_bad_reference_bundle_or_precomputed_file_refuses_to_start_naming_the_file()
    {
        var dir = Directory.CreateTempSubdirectory("jestmesh-bad-bundle-").FullName;
        try
        {
            var json = Path.Combine(dir, "reference.json");
            File.WriteAllText(json, "{\"image\": {\"height\": 28, \"width\": 28, \"channels\": 1, \"mean\": [0.5], \"std\": [0.5]}}");
            var options = TestBroker.Shared().Options(TestNames.Unique("bundle"));

            var error = await Assert.ThrowsAsync<BundleException>(() => ServiceHosts.StartScoringAsync(options, dir, ""));
            Assert.Equal($"{json}: \"text\" is missing (see README, reference bundles).", error.Message);

            // Precomputed embeddings that are not score's output for this reference: refused at start too.
            var precomputed = Directory.CreateDirectory(Path.Combine(dir, "scored")).FullName;
            var missing = await Assert.ThrowsAsync<InvalidDataException>(() => ServiceHosts.StartScoringAsync(options, fixture.CheckpointDirectory, "", extra:
                new Dictionary<string, string?> { ["Scoring:PrecomputedDirectory"] = precomputed }));
            Assert.Contains(Path.Combine(precomputed, "summary.json"), missing.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public async Task Scoring_asked_for_cuda_without_a_gpu_fails_at_start_naming_the_setting()
    {
        if (TorchSharp.torch.cuda.is_available())
        {
            return; // On a GPU machine the setting is valid.
        }
        var options = TestBroker.Shared().Options(TestNames.Unique("cuda"));

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => fixture.StartScoringAsync(options, device: "cuda"));

        Assert.Contains("Scoring:Device is 'cuda'", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>The scorer and its cache called directly (TorchSharp, no broker).</summary>
[Trait("Tier", "Unit")]
[Collection(PipelineCollection.Name)]
public sealed class ScorerTests(PipelineFixture fixture)
{
    [Fact]
    public async Task Warm_cache_serves_the_same_embeddings_and_mixes_with_fresh_ones()
    {
        using var embedder = await ReferenceEmbedder.LoadAsync(fixture.CheckpointDirectory, "cpu", 512);
        var scorer = new SuperBatchScorer(new ReferenceScorer(embedder, new EmbeddingCache(1000, embedder.Dim)),
            Options.Create(new ScoringOptions { ReferenceDirectory = fixture.CheckpointDirectory }), NullLogger<SuperBatchScorer>.Instance);
        var batch = SuperBatchBuilder.Build(fixture.Data, "job-w", 0, Enumerable.Range(0, 300).ToArray());
        var overlapping = SuperBatchBuilder.Build(fixture.Data, "job-w", 1, Enumerable.Range(150, 300).ToArray());

        var cold = await scorer.ScoreAsync(batch);
        var warm = await scorer.ScoreAsync(batch);
        var mixed = await scorer.ScoreAsync(overlapping);

        Assert.Equal(0, cold.CacheHits);
        Assert.Equal(300, warm.CacheHits);
        Assert.Equal(150, mixed.CacheHits);
        Assert.Equal(cold.ReferenceImageEmbeddings.Data, warm.ReferenceImageEmbeddings.Data);
        Assert.Equal(cold.ReferenceTextEmbeddings.Data, warm.ReferenceTextEmbeddings.Data);
        var (image, text, _) = mixed.ValidatedEmbeddings();
        var direct = fixture.EmbedDirectly(mixed.Examples);
        for (var i = 0; i < image.Length; i++)
        {
            Assert.Equal(direct.Image[i], image[i], 1e-5f);
            Assert.Equal(direct.Text[i], text[i], 1e-5f);
        }
    }

    [Fact]
    public async Task Reference_InfoNCE_losses_are_attached_when_asked_and_select_exactly_what_computing_them_selects()
    {
        using var embedder = await ReferenceEmbedder.LoadAsync(fixture.CheckpointDirectory, "cpu", 512);
        SuperBatchScorer Scorer(bool attach) => new(new ReferenceScorer(embedder, new EmbeddingCache(1000, embedder.Dim)),
            Options.Create(new ScoringOptions { ReferenceDirectory = fixture.CheckpointDirectory, ReferenceInfoNce = attach }), NullLogger<SuperBatchScorer>.Instance);
        var batch = SuperBatchBuilder.Build(fixture.Data, "job-i", 0, Enumerable.Range(0, 200).ToArray());

        var without = await Scorer(false).ScoreAsync(batch);
        Assert.Null(without.ReferenceInfoNce);
        Assert.Null(without.ValidatedReferenceInfoNce());

        // Through the wire format, as Selection receives it.
        var with = ScoredSuperBatch.Parser.ParseFrom((await Scorer(true).ScoreAsync(batch)).ToByteArray());
        var shipped = with.ValidatedReferenceInfoNce();
        Assert.NotNull(shipped);
        var (image, text, dim) = with.ValidatedEmbeddings();
        var reference = new ContrastiveEmbeddings(image, text, 200, dim, with.ReferenceAlpha, with.ReferenceBeta);
        var computed = InfoNceLosses.Compute(reference);
        Assert.Equal(computed.ImageToText.ToArray(), shipped.ImageToText.ToArray());
        Assert.Equal(computed.TextToImage.ToArray(), shipped.TextToImage.ToArray());

        var options = new SamplerOptions { BatchSize = 40, Chunks = 4, Gain = 10 };
        var own = JointSampler.Select(ScoreSources.SoftmaxContrastive(SelectionPolicy.EasyReference, null, reference), options, new Random(7));
        var given = JointSampler.Select(ScoreSources.SoftmaxContrastive(SelectionPolicy.EasyReference, null, reference, shipped), options, new Random(7));
        Assert.Equal(own.Indices, given.Indices);
        Assert.Equal(own.Score, given.Score);

        // A field of the wrong length is refused, naming it.
        with.ReferenceInfoNce.TextToImage.RemoveAt(0);
        var e = Assert.Throws<InvalidDataException>(() => with.ValidatedReferenceInfoNce());
        Assert.Contains("reference_info_nce", e.Message, StringComparison.Ordinal);
    }
}
