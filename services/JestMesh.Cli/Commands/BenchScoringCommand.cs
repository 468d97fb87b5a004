using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using JestMesh.Cli.Demo;
using JestMesh.Data;
using JestMesh.Learning;
using JestMesh.Messaging;
using JestMesh.Models;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace JestMesh.Cli.Commands;

/// <summary>
/// <c>./jestmesh bench-scoring</c>: reference-scoring throughput, written as JSON. In this process: the
/// learning core's reference model alone, its cache cold and warm, and the protobuf work on the wire
/// messages. Through the broker (with --amqp): the Scoring and Ingest services as their own
/// processes, measured from outside by a consumer of the scored queue.
/// </summary>
internal static class BenchScoringCommand
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public static Command Create()
    {
        var n = new Option<int>("--n") { Description = "Super-batch size N", DefaultValueFactory = _ => 2048 };
        var count = new Option<int>("--super-batches") { Description = "Super-batches per measurement (distinct examples)", DefaultValueFactory = _ => 6 };
        var reference = new Option<string?>("--reference") { Description = "Reference checkpoint directory (default: a seeded untrained model: same cost)" };
        var amqp = new Option<string?>("--amqp") { Description = "Broker for the broker-hop measurement with the Scoring and Ingest services (omit to skip it)" };
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
        if (n < 1 || superBatches < 1 || rounds < 1 || batchSize < 1 || consumerConcurrency < 1)
        {
            throw new ArgumentException($"--n ({n}), --super-batches ({superBatches}), --rounds ({rounds}), --batch-size ({batchSize}) and --consumer-concurrency ({consumerConcurrency}) must be positive.");
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
            var positions = Enumerable.Range(0, superBatches).Select(k => Enumerable.Range(k * n, n).ToArray()).ToArray();
            // The same examples as the messages Ingest publishes (SuperBatchBuilder is its conversion).
            var wire = positions.Select((p, k) => SuperBatchBuilder.Build(data, "bench", k, p)).ToArray();
            var bodies = wire.Select(b => b.ToByteArray()).ToArray();

            // Warm-up (JIT, libtorch kernels) on examples outside the measured set, so "cold" stays cold.
            using (var warmUp = new ReferenceScorer(embedder, new EmbeddingCache(n, embedder.Dim)))
            {
                await ScorePoolAsync(warmUp, data, Enumerable.Range(superBatches * n, n).ToArray());
            }

            // Rounds interleave every measurement, so drift on a shared machine (other processes,
            // clock changes) hits them alike; medians over rounds are reported.
            var modelOnly = new List<double>();
            var inProcessCold = new List<double>();
            var protobuf = new List<double>();
            var warmScore = new List<double>();
            var warmWithProtobuf = new List<double>();
            var brokerCold = new List<double>();
            var brokerWarm = new List<double>();
            var brokerColdHits = new List<double>();
            // CPU seconds: of this process for the in-process measurements; of the Scoring service's
            // process for the broker hop (on a shared 2-core machine the broker and Ingest compete
            // with the model for the same cores; in a cluster they run elsewhere).
            var modelCpu = new List<double>();
            var gathers = new List<double>();
            var inProcessCpu = new List<double>();
            var brokerCpu = new List<double>();
            for (var round = 0; round < rounds; round++)
            {
                // 1. The model alone: the irreducible cost of a cold super-batch (inputs from the pool).
                Settle();
                var cpu = Cpu();
                var clock = Stopwatch.StartNew();
                foreach (var p in positions)
                {
                    var inputs = ExampleBatch.FromPool(data, p);
                    await embedder.EmbedAsync(inputs);
                }
                modelOnly.Add(clock.Elapsed.TotalSeconds);
                modelCpu.Add(Cpu() - cpu);

                // Gathering model inputs from received examples, as Scoring does for cache misses.
                clock.Restart();
                foreach (var batch in wire)
                {
                    ExampleArrays.Of(batch.Examples, $"super-batch {batch.Id}");
                }
                gathers.Add(clock.Elapsed.TotalSeconds);

                // 2. The learning core's reference scorer, cold (fresh cache): every example a miss,
                //    embedded in batches, rows cached.
                using var scorer = new ReferenceScorer(embedder, new EmbeddingCache(n * superBatches, embedder.Dim));
                var scores = new ReferenceScores[superBatches];
                Settle();
                cpu = Cpu();
                clock.Restart();
                for (var k = 0; k < superBatches; k++)
                {
                    scores[k] = await ScorePoolAsync(scorer, data, positions[k]);
                }
                inProcessCold.Add(clock.Elapsed.TotalSeconds);
                inProcessCpu.Add(Cpu() - cpu);

                // 3. Protobuf on the wire messages: the super-batch serialized, parsed and checked as
                //    Scoring receives it; the scored super-batch packed, serialized, parsed and checked
                //    as Selection receives it.
                Settle();
                clock.Restart();
                for (var k = 0; k < superBatches; k++)
                {
                    var received = Receive(wire[k].ToByteArray(), embedder);
                    ScoredSuperBatch.Parser.ParseFrom(Pack(received, scores[k], embedder).ToByteArray()).ValidatedEmbeddings();
                }
                protobuf.Add(clock.Elapsed.TotalSeconds);

                // 4. Warm: the same super-batches again, every example a cache hit; then the same
                //    from the published bytes to the scored message's bytes.
                Settle();
                clock.Restart();
                foreach (var p in positions)
                {
                    await ScorePoolAsync(scorer, data, p);
                }
                warmScore.Add(clock.Elapsed.TotalSeconds);
                clock.Restart();
                foreach (var body in bodies)
                {
                    var received = Receive(body, embedder);
                    var ids = received.Examples.Select(e => e.Id).ToArray();
                    var warm = await scorer.ScoreAsync(ids, misses =>
                    {
                        var (missIds, pixels, tokens) = ExampleArrays.Of(received.Examples, $"super-batch {received.Id}", misses);
                        return new ExampleBatch(missIds, pixels, tokens, ExampleArrays.Stored(received.Examples, misses));
                    });
                    _ = Pack(received, warm, embedder).ToByteArray();
                }
                warmWithProtobuf.Add(clock.Elapsed.TotalSeconds);

                // 5. Through the broker: the Ingest service → {p}.superbatches → the Scoring service → {p}.scored → this process.
                if (amqp is not null)
                {
                    var (cold, coldCpu, warm, coldHits) = await BrokerRoundAsync(amqp, referenceDirectory, data, n, superBatches, batchSize, consumerConcurrency, round, cancellationToken);
                    brokerCold.Add(cold);
                    brokerColdHits.Add(coldHits);
                    brokerCpu.Add(coldCpu);
                    brokerWarm.Add(warm);
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
                // protobuf on both sides, gathering model inputs, and the scatter/cache work a warm
                // super-batch consists of.
                ["client_side_overhead_fraction_of_model"] = (Median(protobuf) + Median(gathers) + Median(warmScore)) / Median(modelOnly),
                // The cold reference scorer over the bare model: cache lookups, scatter, copies (protobuf
                // is protobuf_fraction_of_model; this replaces copies_and_protobuf_fraction_of_model).
                ["cold_scorer_overhead_fraction_of_model"] = Median(inProcessCold) / Median(modelOnly) - 1,
                ["model_only_cpu_s"] = Median(modelCpu),
                ["cold_in_process_cpu_s"] = Median(inProcessCpu),
                ["warm_examples_per_s"] = Rates(examples, warmScore),
                ["warm_with_protobuf_examples_per_s"] = Rates(examples, warmWithProtobuf),
            };
            if (amqp is not null)
            {
                result["broker"] = "JestMesh.Ingest and JestMesh.Scoring as their own processes (Release); after a one-pass warm-up job; timed from the first super-batch's created_unix_ms to the last scored super-batch received here";
                result["broker_cold_examples_per_s"] = Rates(examples, brokerCold);
                result["broker_overhead_fraction_of_model"] = Median(brokerCold) / Median(modelOnly) - 1;
                result["broker_cold_cpu_s"] = Median(brokerCpu);
                result["broker_cpu_overhead_fraction_of_model"] = Median(brokerCpu) / Median(modelCpu) - 1;
                result["broker_warm_examples_per_s"] = Rates(examples, brokerWarm);
                result["broker_cold_cache_hits"] = Median(brokerColdHits);
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

    /// <summary>The reference's rows for the pool examples at <paramref name="positions"/>: cache first, the model (inputs from the pool) for misses.</summary>
    private static Task<ReferenceScores> ScorePoolAsync(ReferenceScorer scorer, PairDataset data, int[] positions) =>
        scorer.ScoreAsync(positions.Select(p => data.Pool[p].Id).ToArray(), misses => ExampleBatch.FromPool(data, misses.Select(i => positions[i]).ToArray()));

    /// <summary>A published super-batch as Scoring takes it in: parsed and checked against the reference's vocabulary.</summary>
    private static SuperBatch Receive(byte[] body, ReferenceEmbedder embedder)
    {
        var batch = SuperBatch.Parser.ParseFrom(body);
        batch.Validate(embedder.VocabularySize, embedder.MaxTokens);
        return batch;
    }

    /// <summary>The scored super-batch message of <paramref name="batch"/> (the examples shared, not copied).</summary>
    private static ScoredSuperBatch Pack(SuperBatch batch, ReferenceScores scores, ReferenceEmbedder embedder)
    {
        var scored = new ScoredSuperBatch
        {
            Id = batch.Id,
            Job = batch.Job,
            Sequence = batch.Sequence,
            ReferenceImageEmbeddings = Protos.V1.Tensor.FromFloat32(scores.Image, scores.Count, scores.Dim),
            ReferenceTextEmbeddings = Protos.V1.Tensor.FromFloat32(scores.Text, scores.Count, scores.Dim),
            ReferenceAlpha = scores.Alpha,
            ReferenceBeta = scores.Beta,
            ReferenceCheckpointSha256 = embedder.Metadata.Sha256,
            DataFingerprint = batch.DataFingerprint,
            CreatedUnixMs = batch.CreatedUnixMs,
            CacheHits = scores.CacheHits,
        };
        scored.Examples.Add(batch.Examples);
        return scored;
    }

    /// <summary>
    /// One round through the broker with the deployed services: a Scoring service (fresh cache, its
    /// own queue prefix) and, per job, an Ingest service publishing the first super-batches of the
    /// pool's order. A consumer here takes the scored super-batches off {prefix}.scored; a job's time
    /// runs from its first super-batch's created_unix_ms (set by Ingest as it builds it, just before
    /// the publish) to the last scored one received. The second job publishes the same examples again,
    /// so Scoring serves them from its cache (checked by the messages' cache_hits): warm.
    /// Returns the cold and warm seconds, the Scoring process's CPU seconds for the cold job and the
    /// cold job's cache hits.
    /// </summary>
    private static async Task<(double Cold, double ColdCpu, double Warm, long ColdCacheHits)> BrokerRoundAsync(string amqp, string referenceDirectory, PairDataset data,
        int n, int superBatches, int batchSize, int consumerConcurrency, int round, CancellationToken cancellationToken)
    {
        var repo = Repo.Locate();
        await repo.EnsureBuiltAsync([IngestCommand.Host, ScoringHost], Console.Error.WriteLine, cancellationToken);
        var prefix = $"bench-{Guid.NewGuid():N}";
        var logs = Path.Combine(Path.GetTempPath(), prefix);
        // Every party declares the topology: the queue arguments must agree.
        var queueLimit = Math.Max(32, superBatches);
        var messaging = new MessagingOptions { Uri = amqp, QueuePrefix = prefix, InputQueueMaxLength = queueLimit, ClientName = prefix + "-sink" };
        Dictionary<string, string> Common() => new()
        {
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{Repo.FreePort()}",
            ["Messaging__Uri"] = amqp,
            ["Messaging__QueuePrefix"] = prefix,
            ["Messaging__InputQueueMaxLength"] = queueLimit.ToString(CultureInfo.InvariantCulture),
            ["Logging__LogLevel__Default"] = "Warning",
        };
        await using var connections = new BrokerConnections(Options.Create(messaging), NullLogger<BrokerConnections>.Instance);
        await using var publisher = new ConfirmedPublisher(connections, NullLogger<ConfirmedPublisher>.Instance);
        await connections.DeclareTopologyAsync(cancellationToken);
        await using var probe = await BrokerProbe.ConnectAsync(amqp, cancellationToken);

        var scoringSettings = Common();
        scoringSettings["Scoring__ReferenceDirectory"] = referenceDirectory;
        scoringSettings["Scoring__Device"] = "cpu";
        scoringSettings["Scoring__BatchSize"] = batchSize.ToString(CultureInfo.InvariantCulture);
        scoringSettings["Scoring__CacheCapacity"] = Math.Max(131_072, n * superBatches).ToString(CultureInfo.InvariantCulture);
        scoringSettings["Messaging__Prefetch"] = "2";
        scoringSettings["Messaging__ConsumerConcurrency"] = consumerConcurrency.ToString(CultureInfo.InvariantCulture);
        var scoringDll = repo.HostDll(ScoringHost);
        await using var scoring = ChildProcess.Start(ScoringHost, "dotnet", [scoringDll], Path.GetDirectoryName(scoringDll)!, scoringSettings, Path.Combine(logs, "scoring.log"));
        using (var ready = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken))
        {
            ready.CancelAfter(TimeSpan.FromMinutes(3));
            while (await probe.DepthAsync(connections.Topology.SuperBatches, ready.Token) is not { Consumers: > 0 })
            {
                ThrowIfExited(scoring);
                await Task.Delay(200, ready.Token);
            }
        }

        // Each scored super-batch with the time it arrived here (Unix ms, the clock created_unix_ms uses).
        var received = new ConcurrentDictionary<string, (ScoredSuperBatch Scored, long ArrivedUnixMs)>();
        await using var sink = new AckingConsumer(connections, publisher, NullLogger<AckingConsumer>.Instance);
        await sink.StartAsync(connections.Topology.Scored, (message, _) =>
        {
            var scored = ScoredSuperBatch.Parser.ParseFrom(message.Body.Span);
            scored.ValidatedEmbeddings();
            received.TryAdd(message.MessageId, (scored, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            return Task.CompletedTask;
        }, cancellationToken);

        async Task<(double Seconds, long CacheHits)> JobAsync(string job, int size, int count, int orderSeed = 0)
        {
            var ingestSettings = Common();
            ingestSettings["Ingest__Job"] = job;
            ingestSettings["Ingest__SuperBatchSize"] = size.ToString(CultureInfo.InvariantCulture);
            ingestSettings["Ingest__MaxSuperBatches"] = count.ToString(CultureInfo.InvariantCulture);
            ingestSettings["Ingest__OrderSeed"] = orderSeed.ToString(CultureInfo.InvariantCulture);
            ingestSettings["Ingest__DataSeed"] = data.Options.Seed.ToString(CultureInfo.InvariantCulture);
            ingestSettings["Ingest__ExitWhenDone"] = "true";
            var ingestDll = repo.HostDll(IngestCommand.Host);
            await using var ingest = ChildProcess.Start(IngestCommand.Host, "dotnet", [ingestDll], Path.GetDirectoryName(ingestDll)!, ingestSettings, Path.Combine(logs, job + ".log"));
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(TimeSpan.FromMinutes(10));
            List<(ScoredSuperBatch Scored, long ArrivedUnixMs)> mine;
            while ((mine = [.. received.Values.Where(s => s.Scored.Job == job)]).Count < count)
            {
                ThrowIfExited(scoring);
                if (ingest.HasExited && ingest.ExitCode != 0)
                {
                    throw new InvalidOperationException($"the Ingest service exited with {ingest.ExitCode}; its log {ingest.LogPath} ends:\n{ingest.Tail()}");
                }
                await Task.Delay(50, deadline.Token);
            }
            await ingest.WaitForExitAsync(deadline.Token);
            var started = mine.Min(s => s.Scored.CreatedUnixMs);
            var ended = mine.Max(s => s.ArrivedUnixMs);
            var hits = mine.Sum(s => (long)s.Scored.CacheHits);
            Console.Error.WriteLine($"bench-scoring: broker round {round}, {job}: {count} super-batches in {(ended - started) / 1000.0:0.000} s, {hits} of {(long)size * count} cache hits");
            return ((ended - started) / 1000.0, hits);
        }

        // A fresh Scoring process JIT-compiles its path on the first super-batch: warm it up with one
        // forward pass of examples from another order (the few the cold job shares with it are
        // cache hits, reported as broker_cold_cache_hits).
        await JobAsync($"bench-warmup-{round}", Math.Min(n, batchSize), 1, orderSeed: 1);
        var cpu = ProcessCpu(scoring.Id);
        var cold = await JobAsync($"bench-cold-{round}", n, superBatches);
        var coldCpu = ProcessCpu(scoring.Id) - cpu;
        var warm = await JobAsync($"bench-warm-{round}", n, superBatches);
        if (warm.CacheHits != (long)n * superBatches)
        {
            throw new InvalidOperationException("the warm job's examples were not all served from Scoring's cache; its timing would not be warm.");
        }
        await sink.StopAsync();
        Directory.Delete(logs, recursive: true);
        return (cold.Seconds, coldCpu, warm.Seconds, cold.CacheHits);
    }

    private const string ScoringHost = "JestMesh.Scoring";

    private static void ThrowIfExited(ChildProcess process)
    {
        if (process.HasExited)
        {
            throw new InvalidOperationException($"{process.Name} exited with {process.ExitCode}; its log {process.LogPath} ends:\n{process.Tail()}");
        }
    }

    private static string WriteUntrainedReference(string directory, PairDataset data)
    {
        TorchSharp.torch.manual_seed(1234);
        using var model = SiglipModel.Create(new ModelConfig(), TorchSharp.torch.CPU);
        ModelCheckpoint.Save(directory, model, new CheckpointMetadata { DataFingerprint = data.Fingerprint });
        return directory;
    }

    private static double Cpu()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime.TotalSeconds;
    }

    private static double ProcessCpu(int id)
    {
        using var process = Process.GetProcessById(id);
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
