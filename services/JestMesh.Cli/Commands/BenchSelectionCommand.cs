using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using JestMesh.Cli.Demo;
using JestMesh.Client;
using JestMesh.Curation;
using JestMesh.Data;
using JestMesh.Learning;
using JestMesh.Messaging;
using JestMesh.Models;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;

namespace JestMesh.Cli.Commands;

/// <summary>
/// `jestmesh bench-selection`: the two Selection figures, written as JSON. (1) Curated batches per
/// second one replica serves to concurrent learner-free StreamBatches sessions; (2) the trainer's
/// data stall with JEST in the loop. Selection runs as its own process (the service's Release build,
/// as deployed); the trainer is the client library's <see cref="CurateSession"/> with a learner of the
/// learning core. Needs a broker (scripts/broker.sh start DIR prints its URI).
/// </summary>
internal static class BenchSelectionCommand
{
    private const string ApiKey = "bench-api-key-0123456789";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    public static Command Create()
    {
        var amqp = new Option<string>("--amqp") { Description = "AMQP URI of a broker to use (e.g. from scripts/broker.sh start DIR).", Required = true };
        var output = new Option<string>("--out") { Description = "JSON file to write.", DefaultValueFactory = _ => "bench-selection.json" };
        var sessions = new Option<int>("--sessions") { Description = "Concurrent StreamBatches sessions.", DefaultValueFactory = _ => 4 };
        var batches = new Option<int>("--batches") { Description = "Curated batches to serve in the throughput run (all sessions together).", DefaultValueFactory = _ => 200 };
        var batchSize = new Option<int>("--batch-size") { Description = "b, the learner batch size.", DefaultValueFactory = _ => 128 };
        var filter = new Option<double>("--filter-ratio") { Description = "f = 1 − b/N.", DefaultValueFactory = _ => 0.8 };
        var steps = new Option<int>("--trainer-steps") { Description = "Trainer steps in the stall run (0 skips it).", DefaultValueFactory = _ => 40 };
        var loadJobs = new Option<int>("--load-jobs") { Description = "Jobs in the load phase (JEST sessions with an instant learner; 0 skips it).", DefaultValueFactory = _ => 4 };
        var loadSessions = new Option<int>("--load-sessions-per-job") { Description = "Concurrent Curate sessions per job in the load phase.", DefaultValueFactory = _ => 4 };
        var loadBatches = new Option<int>("--load-batches") { Description = "Curated batches per session in the load phase.", DefaultValueFactory = _ => 50 };
        var loadAfter = new Option<int>("--load-after-seconds") { Description = "Seconds Selection's memory is sampled after the load ends.", DefaultValueFactory = _ => 10 };
        var loadReplicas = new Option<int>("--load-replicas") { Description = "Selection replicas in the load phase (each job served by one; the sessions are given every replica's address).", DefaultValueFactory = _ => 2 };
        var loadWarmup = new Option<int>("--load-warmup-batches") { Description = "Batches per session of an unmeasured round (jobs of its own) before the load, so the load runs on warm processes (0 skips it).", DefaultValueFactory = _ => 10 };
        var brokerDir = new Option<string>("--broker-dir") { Description = "The broker's directory (scripts/broker.sh start DIR): its pid file names the Erlang VM whose CPU time the load phase accounts." };
        var command = new Command("bench-selection", "Measure Selection throughput (learner-free sessions) and the trainer's data stall with JEST; writes JSON.");
        foreach (var option in new Option[] { amqp, output, sessions, batches, batchSize, filter, steps, loadJobs, loadSessions, loadBatches, loadAfter, loadReplicas, loadWarmup, brokerDir })
        {
            command.Options.Add(option);
        }
        command.SetAction(async (parse, cancellationToken) =>
        {
            var settings = new BenchSettings(parse.GetValue(amqp)!, parse.GetValue(sessions), parse.GetValue(batches), parse.GetValue(batchSize), parse.GetValue(filter), parse.GetValue(steps))
            {
                Load = new BenchSelectionLoad.Settings(parse.GetValue(loadJobs), parse.GetValue(loadSessions), parse.GetValue(loadBatches), parse.GetValue(filter),
                    TimeSpan.FromSeconds(parse.GetValue(loadAfter)), parse.GetValue(loadReplicas)) { WarmupBatchesPerSession = parse.GetValue(loadWarmup) },
                BrokerDir = parse.GetValue(brokerDir),
            };
            if (settings.BrokerDir is { } dir && CpuClock.BrokerPids(dir).Count == 0)
            {
                Console.Error.WriteLine($"bench-selection: --broker-dir {dir} holds no pid file of a running broker (rabbit.pid or node-*/rabbit.pid).");
                return 2;
            }
            if (settings.Sessions < 1 || settings.Batches < settings.Sessions || settings.BatchSize < 16 || settings.BatchSize % 16 != 0 || settings.FilterRatio is < 0 or >= 1)
            {
                Console.Error.WriteLine("bench-selection: need --sessions ≥ 1, --batches ≥ --sessions, --batch-size a positive multiple of 16 (16 chunks), 0 ≤ --filter-ratio < 1.");
                return 2;
            }

            if (settings.Load.Jobs < 0 || settings.Load.SessionsPerJob < 1 || settings.Load.BatchesPerSession < 1 || settings.Load.After < TimeSpan.Zero || settings.Load.Replicas is < 1 or > 8 || settings.Load.WarmupBatchesPerSession < 0)
            {
                Console.Error.WriteLine("bench-selection: need --load-jobs ≥ 0, --load-sessions-per-job ≥ 1, --load-batches ≥ 1, --load-after-seconds ≥ 0, 1 ≤ --load-replicas ≤ 8, --load-warmup-batches ≥ 0.");
                return 2;
            }
            var result = await RunAsync(settings, cancellationToken);
            var json = JsonSerializer.Serialize(result, Json);
            await File.WriteAllTextAsync(parse.GetValue(output)!, json, cancellationToken);
            Console.WriteLine(json);
            return 0;
        });
        return command;
    }

    private sealed record BenchSettings(string Amqp, int Sessions, int Batches, int BatchSize, double FilterRatio, int TrainerSteps)
    {
        public required BenchSelectionLoad.Settings Load { get; init; }

        public string? BrokerDir { get; init; }

        public int SuperBatchSize => SuperBatchSizing.SuperBatchSize(BatchSize, FilterRatio);
    }

    private static async Task<Dictionary<string, object>> RunAsync(BenchSettings settings, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, object>
        {
            ["machine"] = $"{Environment.ProcessorCount} cores, {Environment.OSVersion}",
            ["batch_size"] = settings.BatchSize,
            ["super_batch_size"] = settings.SuperBatchSize,
            ["filter_ratio"] = settings.FilterRatio,
        };
        var data = PairDataset.Build(new DataOptions { Seed = 7 });
        torch.random.manual_seed(11);
        using var reference = SiglipModel.Create(new ModelConfig(), torch.CPU);
        // A few distinct scored super-batches, republished under fresh ids: the reference pass is
        // Scoring's cost, not what is measured here.
        var templates = Enumerable.Range(0, 8).Select(i => Scored(data, reference, i, settings.SuperBatchSize)).ToArray();

        var prefix = $"bench-{Guid.NewGuid():N}";
        var port = FreePort();
        var messaging = new MessagingOptions { Uri = settings.Amqp, QueuePrefix = prefix, ClientName = prefix, Prefetch = 32, MaxOutstandingConfirms = 256 };
        await using var connections = new BrokerConnections(Microsoft.Extensions.Options.Options.Create(messaging), NullLogger<BrokerConnections>.Instance);
        await using var publisher = new ConfirmedPublisher(connections, NullLogger<ConfirmedPublisher>.Instance);
        await using var probe = await BrokerProbe.ConnectAsync(settings.Amqp, cancellationToken);
        await using var selection = await BenchSelectionHost.StartProcessAsync(settings.Amqp, prefix, port, ApiKey, probe, cancellationToken);
        result["selection"] = "its own process (JestMesh.Selection host, Release)";
        string QueueOf(string job) => connections.Topology.JobQueue(job);

        // 1. Serving capacity: pre-fill a job's queue (published and routed first), then serve it.
        var prefill = new Dictionary<string, object>();
        foreach (var policy in new[] { Policy.Uniform, Policy.EasyReference })
        {
            var job = $"serve-{policy}".ToLowerInvariant();
            var publish = Stopwatch.StartNew();
            await PublishAsync(publisher, connections.Topology, templates, job, settings.Batches, cancellationToken);
            var published = publish.Elapsed.TotalSeconds;
            while ((await probe.DepthAsync(QueueOf(job), cancellationToken))?.Messages < settings.Batches is not false)
            {
                await Task.Delay(20, cancellationToken);
            }
            var routed = publish.Elapsed.TotalSeconds;
            prefill[job] = new Dictionary<string, object>
            {
                ["super_batches"] = settings.Batches,
                ["publish_seconds"] = published,
                ["publish_and_route_seconds"] = routed,
                ["routed_per_second"] = settings.Batches / routed,
            };
            result[$"serve_{job["serve-".Length..]}"] = await ServeAsync(port, job, policy, settings, cancellationToken);
        }
        prefill["message_bytes"] = templates[0].CalculateSize();
        result["prefill"] = prefill;

        // 2. Sustained: the same sessions while the super-batches are still being published to
        // jestmesh.scored, so the router hop and the publisher share the broker with the serving.
        {
            var clock = Stopwatch.StartNew();
            var publishing = PublishAsync(publisher, connections.Topology, templates, "live", settings.Batches, cancellationToken);
            var served = await ServeAsync(port, "live", Policy.Uniform, settings, cancellationToken);
            await publishing;
            served["seconds_including_publish"] = clock.Elapsed.TotalSeconds;
            result["sustained_uniform"] = served;
        }

        // 3. Trainer data stall with JEST (learnability, joint, 16 chunks, gain 1 as in the demo):
        // exact (each candidate scored by the learner that trains on its batch) and one step ahead.
        for (var ahead = 0; settings.TrainerSteps > 0 && ahead <= 1; ahead++)
        {
            var job = $"train-{ahead}";
            await PublishAsync(publisher, connections.Topology, templates, job, settings.TrainerSteps + 2, cancellationToken);
            using var channel = Channel(port);
            using var learner = new BenchLearner(new LearnerSession(new LearnerOptions { Steps = settings.TrainerSteps, EvalEvery = 0 }, evaluator: null));
            var session = new CurateSession(channel, new CurateSettings
            {
                Job = job,
                ApiKey = ApiKey,
                Policy = Policy.Learnability,
                FilterRatio = settings.FilterRatio,
                Chunks = 16,
                Gain = 1,
                ScoreAhead = ahead,
            }, NullLogger.Instance);
            await session.RunAsync(learner, cancellationToken);
            var stats = session.Stats;
            var selectionMs = learner.SelectionMs;
            var staleness = learner.Staleness;
            result[ahead == 0 ? "trainer_jest" : "trainer_jest_score_ahead_1"] = new Dictionary<string, object>
            {
                ["score_ahead"] = ahead,
                ["steps"] = stats.Batches,
                ["wall_seconds"] = stats.WallSeconds,
                ["wait_seconds"] = stats.WaitSeconds,
                ["score_seconds"] = stats.ScoreSeconds,
                ["train_seconds"] = stats.TrainSeconds,
                ["step_ms"] = stats.WallSeconds / Math.Max(1, stats.Batches - 1) * 1000,
                ["data_stall_fraction"] = stats.StallFraction,
                ["wait_ms_per_step"] = stats.WaitSeconds / Math.Max(1, stats.Batches - 1) * 1000,
                ["selection_ms_mean"] = selectionMs.Count == 0 ? 0 : selectionMs.Average(),
                ["learner_staleness_mean"] = staleness.Count == 0 ? 0 : staleness.Average(),
            };
        }

        // 4. Load (issue 14): jobs × sessions JEST sessions at once, learners that answer instantly.
        if (settings.Load.Jobs > 0)
        {
            torch.random.manual_seed(12);
            using var learnerModel = SiglipModel.Create(new ModelConfig(), torch.CPU);
            var views = templates.Select(t =>
            {
                var (ids, pixels, tokens) = ExampleArrays.Of(t.Examples, $"template {t.Id}");
                var e = learnerModel.Embed(pixels, ids.Length, tokens);
                return new ContrastiveEmbeddings(e.Image, e.Text, e.Count, e.Dim, e.Alpha, e.Beta);
            }).ToArray();
            // Published super-batch ids are JOB-INDEX, INDEX cycling over the templates.
            ContrastiveEmbeddings View(string superBatchId) =>
                views[int.Parse(superBatchId[(superBatchId.LastIndexOf('-') + 1)..], System.Globalization.CultureInfo.InvariantCulture) % views.Length];
            // The other replicas start now: until here the one above held every job it served.
            var replicas = new List<BenchSelectionHost> { selection };
            var ports = new List<int> { port };
            try
            {
                while (replicas.Count < settings.Load.Replicas)
                {
                    ports.Add(FreePort());
                    replicas.Add(await BenchSelectionHost.StartProcessAsync(settings.Amqp, prefix, ports[^1], ApiKey, probe, cancellationToken));
                }

                using var channel = Channel([.. ports]);
                var processes = new BenchSelectionLoad.Processes([.. replicas.Select(r => r.ProcessId)], settings.BrokerDir is { } dir ? CpuClock.BrokerPids(dir) : []);
                result["load"] = await BenchSelectionLoad.RunAsync(channel, ApiKey, processes, settings.Load,
                    (job, count) => PublishAsync(publisher, connections.Topology, templates, job, count, cancellationToken),
                    async job => (await probe.DepthAsync(QueueOf(job), cancellationToken))?.Messages, View, cancellationToken);
            }
            finally
            {
                foreach (var replica in replicas.Skip(1))
                {
                    await replica.DisposeAsync();
                }
            }
        }

        return result;
    }

    private static async Task<Dictionary<string, object>> ServeAsync(int port, string job, Policy policy, BenchSettings settings, CancellationToken cancellationToken)
    {
        using var channel = Channel(port);
        var client = new Protos.V1.Curation.CurationClient(channel);
        var perSession = settings.Batches / settings.Sessions;
        var clock = Stopwatch.StartNew();
        var counts = await Task.WhenAll(Enumerable.Range(0, settings.Sessions).Select(async _ =>
        {
            var open = new SessionOpen { Job = job, Policy = policy, FilterRatio = settings.FilterRatio, Chunks = 16, Gain = 10, Seed = 1 };
            using var call = client.StreamBatches(new StreamBatchesRequest { Session = open, MaxBatches = perSession }, new Metadata { { "authorization", $"Bearer {ApiKey}" } }, cancellationToken: cancellationToken);
            var n = 0;
            while (await call.ResponseStream.MoveNext(cancellationToken))
            {
                if (call.ResponseStream.Current.Examples.Count != settings.BatchSize)
                {
                    throw new InvalidOperationException($"served a batch of {call.ResponseStream.Current.Examples.Count}, expected {settings.BatchSize}");
                }
                n++;
            }
            return n;
        }));
        var seconds = clock.Elapsed.TotalSeconds;
        return new Dictionary<string, object>
        {
            ["policy"] = policy.ToString(),
            ["sessions"] = settings.Sessions,
            ["batches"] = counts.Sum(),
            ["seconds"] = seconds,
            ["batches_per_second"] = counts.Sum() / seconds,
        };
    }

    private static async Task PublishAsync(ConfirmedPublisher publisher, QueueTopology topology, ScoredSuperBatch[] templates, string job, int count, CancellationToken cancellationToken)
    {
        var pending = new List<Task>();
        for (var i = 0; i < count; i++)
        {
            var scored = templates[i % templates.Length].Clone();
            scored.Id = $"{job}-{i}";
            scored.Job = job;
            scored.Sequence = i;
            pending.Add(publisher.PublishAsync(OutgoingMessage.ToQueue(topology.Scored, "scored/" + scored.Id, scored.ToByteArray()), cancellationToken));
            if (pending.Count == 32)
            {
                await Task.WhenAll(pending);
                pending.Clear();
            }
        }
        await Task.WhenAll(pending);
    }

    private static ScoredSuperBatch Scored(PairDataset data, SiglipModel reference, int index, int n)
    {
        var pairs = data.Pool.Skip(index * n).Take(n).ToArray();
        var pixels = new byte[n * ImageSet.PixelsPerImage];
        var scored = new ScoredSuperBatch { Id = $"t{index}", ReferenceCheckpointSha256 = "bench" };
        for (var i = 0; i < n; i++)
        {
            data.Train.Image(pairs[i].ImageIndex).CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            var example = new Example { Id = pairs[i].Id, Image = ByteString.CopyFrom(data.Train.Image(pairs[i].ImageIndex)), Label = pairs[i].Label, ImageIndex = pairs[i].ImageIndex };
            example.CaptionTokens.Add(pairs[i].Tokens);
            scored.Examples.Add(example);
        }
        var embeddings = reference.Embed(pixels, n, pairs.Select(p => p.Tokens).ToList());
        scored.ReferenceImageEmbeddings = Protos.V1.Tensor.FromFloat32(embeddings.Image, n, embeddings.Dim);
        scored.ReferenceTextEmbeddings = Protos.V1.Tensor.FromFloat32(embeddings.Text, n, embeddings.Dim);
        scored.ReferenceAlpha = embeddings.Alpha;
        scored.ReferenceBeta = embeddings.Beta;
        return scored;
    }

    /// <summary>
    /// A channel to the Selection replicas on <paramref name="ports"/> (<see cref="CurateChannel"/>, round-robin over
    /// several) with the Trainer service's defaults that matter here: 64 MiB messages and a 4 MiB HTTP/2 stream window
    /// (Trainer:StreamWindowBytes), so a candidate does not wait for WINDOW_UPDATE round trips.
    /// </summary>
    private static Grpc.Net.Client.GrpcChannel Channel(params int[] ports) =>
        CurateChannel.Create(string.Join(',', ports.Select(p => $"http://127.0.0.1:{p}")),
            new SocketsHttpHandler { EnableMultipleHttp2Connections = true, InitialHttp2StreamWindowSize = 4 * 1024 * 1024 },
            new Grpc.Net.Client.GrpcChannelOptions { MaxReceiveMessageSize = 64 * 1024 * 1024, MaxSendMessageSize = 64 * 1024 * 1024 });

    /// <summary>
    /// The bench's learner in the Curate loop: the learning core's <see cref="LearnerSession"/> scores
    /// candidates and trains on curated batches (no evaluation, no checkpoints); it keeps each batch's
    /// selection time and learner staleness.
    /// </summary>
    private sealed class BenchLearner(LearnerSession learner) : ICurateLearner, IDisposable
    {
        public List<double> SelectionMs { get; } = [];

        public List<long> Staleness { get; } = [];

        public long Remaining => learner.Options.Steps - learner.Step;

        public void SessionOpened(string sessionId)
        {
        }

        public LearnerScores Score(Candidate candidate)
        {
            var (ids, pixels, tokens) = ExampleArrays.Of(candidate.Examples, $"candidate {candidate.SuperBatchId}");
            return LearnerScores.Of(candidate.SuperBatchId, learner.Score(new ExampleBatch(ids, pixels, tokens)), learner.Step);
        }

        public void Train(CuratedBatch batch)
        {
            var (ids, pixels, tokens) = ExampleArrays.Of(batch.Examples, $"batch {batch.Sequence}");
            learner.Train(new ExampleBatch(ids, pixels, tokens));
            SelectionMs.Add(batch.Diagnostics.SelectionMs);
            Staleness.Add(batch.Diagnostics.LearnerStaleness);
        }

        public void Dispose() => learner.Dispose();
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
