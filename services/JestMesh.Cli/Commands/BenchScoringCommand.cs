using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Google.Protobuf;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Messaging;
using JestMesh.Models;
using JestMesh.Protos.V1;
using JestMesh.Scoring;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace JestMesh.Cli.Commands;

/// <summary><c>./jestmesh bench-scoring</c>: scoring throughput cold, warm and through the broker, written as JSON.</summary>
internal static class BenchScoringCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var n = new Option<int>("--n") { Description = "Super-batch size N", DefaultValueFactory = _ => 2048 };
        var count = new Option<int>("--super-batches") { Description = "Super-batches per measurement (distinct examples)", DefaultValueFactory = _ => 6 };
        var reference = new Option<string?>("--reference") { Description = "Reference checkpoint directory (default: a seeded untrained model: same cost)" };
        var amqp = new Option<string?>("--amqp") { Description = "Broker for the broker-hop measurement (omit to skip it)" };
        var batchSize = new Option<int>("--batch-size") { Description = "Examples per forward pass", DefaultValueFactory = _ => 512 };
        var output = new Option<string>("--out") { Description = "JSON output file", DefaultValueFactory = _ => "runs/bench/scoring.json" };
        var command = new Command("bench-scoring", "Measure scoring throughput (examples/s) with and without the broker hop and with a warm cache; writes JSON.");
        foreach (var option in new Option[] { n, count, reference, amqp, batchSize, output })
        {
            command.Options.Add(option);
        }
        command.SetAction(async (parse, cancellationToken) =>
        {
            var result = await RunAsync(parse.GetValue(n), parse.GetValue(count), parse.GetValue(reference), parse.GetValue(amqp), parse.GetValue(batchSize), cancellationToken);
            var path = parse.GetValue(output)!;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var json = JsonSerializer.Serialize(result, Indented);
            await File.WriteAllTextAsync(path, json, cancellationToken);
            Console.WriteLine(json);
            Console.WriteLine($"bench-scoring: wrote {path}");
            return 0;
        });
        return command;
    }

    private static async Task<Dictionary<string, object>> RunAsync(int n, int superBatches, string? reference, string? amqp, int batchSize, CancellationToken cancellationToken)
    {
        var data = PairDataset.Build(new DataOptions { Seed = 0 });
        if ((long)n * (superBatches + 1) > data.Pool.Count)
        {
            throw new ArgumentException($"--n {n} x (--super-batches {superBatches} + 1 warm-up) exceeds the pool ({data.Pool.Count} examples).");
        }
        var temp = reference is null ? Directory.CreateTempSubdirectory("jestmesh-bench-ref-").FullName : null;
        try
        {
            var referenceDirectory = reference ?? WriteUntrainedReference(temp!, data);
            using var embedder = await ReferenceEmbedder.LoadAsync(referenceDirectory, "cpu", batchSize);
            var batches = Enumerable.Range(0, superBatches)
                .Select(k => SuperBatchBuilder.Build(data, "bench", k, Enumerable.Range(k * n, n).ToArray())).ToArray();
            var warmUp = SuperBatchBuilder.Build(data, "bench-warmup", 0, Enumerable.Range(superBatches * n, n).ToArray());
            var bodies = batches.Select(b => b.ToByteArray()).ToArray();
            var options = Options.Create(new ScoringOptions { ReferenceDirectory = referenceDirectory, BatchSize = batchSize });

            // Warm-up (JIT, libtorch kernels) on examples outside the measured set, so "cold" stays cold.
            await new SuperBatchScorer(embedder, new EmbeddingCache(n, embedder.Dim), options, NullLogger<SuperBatchScorer>.Instance).ScoreAsync(warmUp);

            // 1. The model alone (the unavoidable part of a cold super-batch).
            var model = new List<double>();
            foreach (var batch in batches)
            {
                var pixels = new byte[n * ImageSet.PixelsPerImage];
                var tokens = new int[n][];
                for (var i = 0; i < n; i++)
                {
                    batch.Examples[i].Image.Span.CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
                    tokens[i] = [.. batch.Examples[i].CaptionTokens];
                }
                var clock = Stopwatch.StartNew();
                await embedder.EmbedAsync(pixels, n, tokens);
                model.Add(clock.Elapsed.TotalMilliseconds);
            }

            // 2. Cold through Scoring's own path, stage by stage, in process (no broker).
            var cache = new EmbeddingCache(n * superBatches, embedder.Dim);
            var scorer = new SuperBatchScorer(embedder, cache, options, NullLogger<SuperBatchScorer>.Instance);
            var ingestSerialize = new List<double>();
            var parse = new List<double>();
            var score = new List<double>();
            var scoredSerialize = new List<double>();
            var scoredParse = new List<double>();
            for (var k = 0; k < superBatches; k++)
            {
                var clock = Stopwatch.StartNew();
                var body = batches[k].ToByteArray();
                ingestSerialize.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
                var received = scorer.Parse(batches[k].Id, body);
                parse.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
                var scored = await scorer.ScoreAsync(received);
                score.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
                var scoredBody = scored.ToByteArray();
                scoredSerialize.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
                ScoredSuperBatch.Parser.ParseFrom(scoredBody).ValidatedEmbeddings();
                scoredParse.Add(clock.Elapsed.TotalMilliseconds);
            }

            // 3. Warm: the same super-batches again, every example a cache hit.
            var warm = new List<double>();
            var warmWithProtobuf = new List<double>();
            for (var k = 0; k < superBatches; k++)
            {
                var clock = Stopwatch.StartNew();
                await scorer.ScoreAsync(batches[k]);
                warm.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
                var received = scorer.Parse(batches[k].Id, bodies[k]);
                var scored = await scorer.ScoreAsync(received);
                _ = scored.ToByteArray();
                warmWithProtobuf.Add(clock.Elapsed.TotalMilliseconds);
            }

            var coldInProcess = score.Sum();
            var protobufAndCopies = ingestSerialize.Sum() + parse.Sum() + scoredSerialize.Sum() + scoredParse.Sum() + (score.Sum() - model.Sum());
            var result = new Dictionary<string, object>
            {
                ["machine"] = $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, TorchSharp CPU threads {TorchSharp.torch.get_num_threads()}",
                ["n"] = n,
                ["super_batches"] = superBatches,
                ["reference"] = reference ?? "untrained SigLIP (seed 1234), same architecture and cost as a trained one",
                ["model_only_ms_per_superbatch"] = Stats(model),
                ["cold_score_ms_per_superbatch"] = Stats(score),
                ["cold_examples_per_s"] = n * superBatches / (coldInProcess / 1000),
                ["ingest_serialize_ms"] = Stats(ingestSerialize),
                ["scoring_parse_ms"] = Stats(parse),
                ["scored_serialize_ms"] = Stats(scoredSerialize),
                ["downstream_parse_and_validate_ms"] = Stats(scoredParse),
                ["protobuf_and_copies_fraction_of_cold"] = protobufAndCopies / coldInProcess,
                ["warm_score_ms_per_superbatch"] = Stats(warm),
                ["warm_examples_per_s"] = n * superBatches / (warm.Sum() / 1000),
                ["warm_with_protobuf_examples_per_s"] = n * superBatches / (warmWithProtobuf.Sum() / 1000),
            };
            if (amqp is not null)
            {
                var cold = await BrokerRunAsync(amqp, data, embedder, options, n, superBatches, warmCache: false, cancellationToken);
                var warmBroker = await BrokerRunAsync(amqp, data, embedder, options, n, superBatches, warmCache: true, cancellationToken);
                result["broker_cold_s"] = cold;
                result["broker_cold_examples_per_s"] = n * superBatches / cold;
                result["broker_overhead_fraction_of_cold"] = (cold * 1000 - coldInProcess) / coldInProcess;
                result["broker_warm_s"] = warmBroker;
                result["broker_warm_examples_per_s"] = n * superBatches / warmBroker;
            }
            return result;
        }
        finally
        {
            if (temp is not null)
            {
                Directory.Delete(temp, recursive: true);
            }
        }
    }

    /// <summary>
    /// Ingest publishes the super-batches (confirmed, as the service does) while Scoring consumes them
    /// and publishes scored ones; the clock runs from the first publish to the last scored message
    /// received downstream. warmCache: the scorer has seen every example before (a second job over
    /// the same examples), so only the broker, protobuf and copies remain.
    /// </summary>
    private static async Task<double> BrokerRunAsync(string amqp, PairDataset data, ReferenceEmbedder embedder, IOptions<ScoringOptions> options,
        int n, int superBatches, bool warmCache, CancellationToken cancellationToken)
    {
        var messaging = Options.Create(new MessagingOptions { Uri = amqp, QueuePrefix = $"bench-{Guid.NewGuid():N}", Prefetch = 2, ClientName = "jestmesh-bench" });
        await using var connections = new BrokerConnections(messaging, NullLogger<BrokerConnections>.Instance);
        await using var publisher = new ConfirmedPublisher(connections, NullLogger<ConfirmedPublisher>.Instance);
        await connections.DeclareTopologyAsync(cancellationToken);
        var scorer = new SuperBatchScorer(embedder, new EmbeddingCache(n * superBatches, embedder.Dim), options, NullLogger<SuperBatchScorer>.Instance);
        if (warmCache)
        {
            for (var k = 0; k < superBatches; k++)
            {
                await scorer.ScoreAsync(SuperBatchBuilder.Build(data, "bench-prime", k, Enumerable.Range(k * n, n).ToArray()));
            }
        }
        var processor = new ScoringProcessor(scorer, publisher, connections);
        await using var scoring = new AckingConsumer(connections, publisher, NullLogger<AckingConsumer>.Instance);
        await using var sink = new AckingConsumer(connections, publisher, NullLogger<AckingConsumer>.Instance);
        var received = new ConcurrentDictionary<string, bool>();
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await sink.StartAsync(connections.Topology.Scored, (message, _) =>
        {
            ScoredSuperBatch.Parser.ParseFrom(message.Body.Span).ValidatedEmbeddings();
            if (received.TryAdd(message.MessageId, true) && received.Count == superBatches)
            {
                done.TrySetResult();
            }
            return Task.CompletedTask;
        }, cancellationToken);
        await scoring.StartAsync(connections.Topology.SuperBatches, processor.HandleAsync, cancellationToken);
        var ingest = new IngestRunner(connections, publisher,
            Options.Create(new IngestOptions { Job = warmCache ? "bench-warm" : "bench-cold", SuperBatchSize = n, MaxSuperBatches = superBatches }),
            NullLogger<IngestRunner>.Instance);
        var clock = Stopwatch.StartNew();
        await ingest.RunAsync(data, cancellationToken);
        await done.Task.WaitAsync(TimeSpan.FromMinutes(10), cancellationToken);
        return clock.Elapsed.TotalSeconds;
    }

    private static string WriteUntrainedReference(string directory, PairDataset data)
    {
        TorchSharp.torch.manual_seed(1234);
        using var model = SiglipModel.Create(new ModelConfig(), TorchSharp.torch.CPU);
        ModelCheckpoint.Save(directory, model, new CheckpointMetadata { DataFingerprint = data.Fingerprint });
        return directory;
    }

    private static Dictionary<string, double> Stats(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return new Dictionary<string, double>
        {
            ["mean"] = values.Average(),
            ["median"] = sorted[sorted.Length / 2],
            ["min"] = sorted[0],
        };
    }
}
