using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Google.Protobuf;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Learning;
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
        var concurrency = new Option<int>("--consumer-concurrency") { Description = "Scoring deliveries in flight (overlaps a confirm wait with the next super-batch)", DefaultValueFactory = _ => 2 };
        var rounds = new Option<int>("--rounds") { Description = "Interleaved repetitions (medians reported)", DefaultValueFactory = _ => 3 };
        var output = new Option<string>("--out") { Description = "JSON output file", DefaultValueFactory = _ => "runs/bench/scoring.json" };
        var command = new Command("bench-scoring", "Measure scoring throughput (examples/s) with and without the broker hop and with a warm cache; writes JSON.");
        foreach (var option in new Option[] { n, count, reference, amqp, batchSize, rounds, concurrency, output })
        {
            command.Options.Add(option);
        }
        command.SetAction(async (parse, cancellationToken) =>
        {
            var result = await RunAsync(parse.GetValue(n), parse.GetValue(count), parse.GetValue(reference), parse.GetValue(amqp), parse.GetValue(batchSize), parse.GetValue(rounds), parse.GetValue(concurrency), cancellationToken);
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

    private static async Task<Dictionary<string, object>> RunAsync(int n, int superBatches, string? reference, string? amqp, int batchSize, int rounds, int consumerConcurrency, CancellationToken cancellationToken)
    {
        if (n < 1 || superBatches < 1 || rounds < 1 || batchSize < 1)
        {
            throw new ArgumentException($"--n ({n}), --super-batches ({superBatches}), --rounds ({rounds}) and --batch-size ({batchSize}) must be positive.");
        }
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
            await new SuperBatchScorer(new ReferenceScorer(embedder, new EmbeddingCache(n, embedder.Dim)), options, NullLogger<SuperBatchScorer>.Instance).ScoreAsync(warmUp);

            // Rounds interleave every measurement, so drift on a shared machine (other processes,
            // clock changes) hits them alike; medians over rounds are reported.
            var modelOnly = new List<double>();
            var inProcessCold = new List<double>();
            var protobuf = new List<double>();
            var warmScore = new List<double>();
            var warmWithProtobuf = new List<double>();
            var brokerCold = new List<double>();
            var brokerWarm = new List<double>();
            // CPU seconds of this process: on a shared 2-core machine the broker (another process)
            // competes with the model for the same cores; in a cluster it runs elsewhere.
            var modelCpu = new List<double>();
            var gathers = new List<double>();
            var inProcessCpu = new List<double>();
            var brokerCpu = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                // 1. The model alone: the irreducible cost of a cold super-batch.
                Settle();
                var cpu = Cpu();
                var gatherSeconds = 0.0;
                var clock = Stopwatch.StartNew();
                foreach (var batch in batches)
                {
                    var gather = Stopwatch.StartNew();
                    var (pixels, tokens) = Inputs(batch);
                    gatherSeconds += gather.Elapsed.TotalSeconds;
                    await embedder.EmbedAsync(pixels, n, tokens);
                }
                modelOnly.Add(clock.Elapsed.TotalSeconds);
                gathers.Add(gatherSeconds);
                modelCpu.Add(Cpu() - cpu);

                // 2. Scoring's whole in-process path, cold (fresh cache): parse the published bytes,
                //    score, serialize the scored batch, and the downstream parse + validation.
                var scorer = new SuperBatchScorer(new ReferenceScorer(embedder, new EmbeddingCache(n * superBatches, embedder.Dim)), options, NullLogger<SuperBatchScorer>.Instance);
                var protobufSeconds = 0.0;
                Settle();
                cpu = Cpu();
                clock.Restart();
                for (var k = 0; k < superBatches; k++)
                {
                    var stage = Stopwatch.StartNew();
                    var body = batches[k].ToByteArray();
                    var received = scorer.Parse(batches[k].Id, body);
                    protobufSeconds += stage.Elapsed.TotalSeconds;
                    var scored = await scorer.ScoreAsync(received);
                    stage.Restart();
                    ScoredSuperBatch.Parser.ParseFrom(scored.ToByteArray()).ValidatedEmbeddings();
                    protobufSeconds += stage.Elapsed.TotalSeconds;
                }
                inProcessCold.Add(clock.Elapsed.TotalSeconds);
                inProcessCpu.Add(Cpu() - cpu);
                protobuf.Add(protobufSeconds);

                // 3. Warm: the same super-batches again, every example a cache hit.
                Settle();
                clock.Restart();
                foreach (var batch in batches)
                {
                    await scorer.ScoreAsync(batch);
                }
                warmScore.Add(clock.Elapsed.TotalSeconds);
                clock.Restart();
                for (var k = 0; k < superBatches; k++)
                {
                    var scored = await scorer.ScoreAsync(scorer.Parse(batches[k].Id, bodies[k]));
                    _ = scored.ToByteArray();
                }
                warmWithProtobuf.Add(clock.Elapsed.TotalSeconds);

                // 4. Through the broker: Ingest → jestmesh.superbatches → Scoring → jestmesh.scored → consumer.
                if (amqp is not null)
                {
                    Settle();
                    cpu = Cpu();
                    brokerCold.Add(await BrokerRunAsync(amqp, data, embedder, options, n, superBatches, consumerConcurrency, warmCache: false, cancellationToken));
                    brokerCpu.Add(Cpu() - cpu);
                    Settle();
                    brokerWarm.Add(await BrokerRunAsync(amqp, data, embedder, options, n, superBatches, consumerConcurrency, warmCache: true, cancellationToken));
                }
            }

            var examples = (double)n * superBatches;
            var result = new Dictionary<string, object>
            {
                ["machine"] = $"{Environment.ProcessorCount} cores (shared), {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, TorchSharp CPU threads {TorchSharp.torch.get_num_threads()}",
                ["n"] = n,
                ["super_batches_per_measurement"] = superBatches,
                ["rounds"] = rounds,
                ["consumer_concurrency"] = consumerConcurrency,
                ["reference"] = reference ?? "untrained SigLIP (seed 1234): same architecture and cost as a trained one",
                ["model_only_examples_per_s"] = Rates(examples, modelOnly),
                ["cold_in_process_examples_per_s"] = Rates(examples, inProcessCold),
                ["protobuf_ms_per_superbatch"] = Median(protobuf) * 1000 / superBatches,
                ["protobuf_fraction_of_model"] = Median(protobuf) / Median(modelOnly),
                ["gather_inputs_ms_per_superbatch"] = Median(gathers) * 1000 / superBatches,
                // Everything Scoring does besides the model, each part timed on its own (low noise):
                // protobuf on both sides, gathering model inputs, and the scatter/cache/tensor work a
                // warm super-batch consists of.
                ["client_side_overhead_fraction_of_model"] = (Median(protobuf) + Median(gathers) + Median(warmScore)) / Median(modelOnly),
                ["copies_and_protobuf_fraction_of_model"] = Median(inProcessCold) / Median(modelOnly) - 1,
                ["model_only_cpu_s"] = Median(modelCpu),
                ["cold_in_process_cpu_s"] = Median(inProcessCpu),
                ["warm_examples_per_s"] = Rates(examples, warmScore),
                ["warm_with_protobuf_examples_per_s"] = Rates(examples, warmWithProtobuf),
            };
            if (amqp is not null)
            {
                result["broker_cold_examples_per_s"] = Rates(examples, brokerCold);
                result["broker_overhead_fraction_of_model"] = Median(brokerCold) / Median(modelOnly) - 1;
                result["broker_cold_cpu_s"] = Median(brokerCpu);
                result["broker_cpu_overhead_fraction_of_model"] = Median(brokerCpu) / Median(modelCpu) - 1;
                result["broker_warm_examples_per_s"] = Rates(examples, brokerWarm);
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
        int n, int superBatches, int consumerConcurrency, bool warmCache, CancellationToken cancellationToken)
    {
        var messaging = Options.Create(new MessagingOptions { Uri = amqp, QueuePrefix = $"bench-{Guid.NewGuid():N}", Prefetch = 2, ConsumerConcurrency = consumerConcurrency, ClientName = "jestmesh-bench" });
        await using var connections = new BrokerConnections(messaging, NullLogger<BrokerConnections>.Instance);
        await using var publisher = new ConfirmedPublisher(connections, NullLogger<ConfirmedPublisher>.Instance);
        await connections.DeclareTopologyAsync(cancellationToken);
        var scorer = new SuperBatchScorer(new ReferenceScorer(embedder, new EmbeddingCache(n * superBatches, embedder.Dim)), options, NullLogger<SuperBatchScorer>.Instance);
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

    private static (byte[] Pixels, int[][] Tokens) Inputs(SuperBatch batch)
    {
        var pixels = new byte[batch.Examples.Count * ImageSet.PixelsPerImage];
        var tokens = new int[batch.Examples.Count][];
        for (var i = 0; i < batch.Examples.Count; i++)
        {
            batch.Examples[i].Image.Span.CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            tokens[i] = [.. batch.Examples[i].CaptionTokens];
        }
        return (pixels, tokens);
    }

    private static double Cpu()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime.TotalSeconds;
    }

    private static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Examples per second: median over rounds, and the slowest and fastest round.</summary>
    private static Dictionary<string, double> Rates(double examples, List<double> seconds) => new()
    {
        ["median"] = examples / Median(seconds),
        ["min"] = examples / seconds.Max(),
        ["max"] = examples / seconds.Min(),
    };
}
