using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using JestMesh.Data;
using JestMesh.Messaging;
using JestMesh.Models;
using JestMesh.Protos.V1;
using JestMesh.Selection;
using JestMesh.ServiceDefaults;
using JestMesh.Trainer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;

namespace JestMesh.Cli.Commands;

/// <summary>
/// `jestmesh bench-selection`: the two Selection figures, written as JSON. (1) Curated batches per
/// second one replica serves to concurrent learner-free StreamBatches sessions; (2) the trainer's
/// data stall with JEST in the loop. Needs a broker (scripts/broker.sh start DIR prints its URI).
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
        var command = new Command("bench-selection", "Measure Selection throughput (learner-free sessions) and the trainer's data stall with JEST; writes JSON.");
        foreach (var option in new Option[] { amqp, output, sessions, batches, batchSize, filter, steps })
        {
            command.Options.Add(option);
        }
        command.SetAction(async (parse, cancellationToken) =>
        {
            var settings = new BenchSettings(parse.GetValue(amqp)!, parse.GetValue(sessions), parse.GetValue(batches), parse.GetValue(batchSize), parse.GetValue(filter), parse.GetValue(steps));
            if (settings.Sessions < 1 || settings.Batches < settings.Sessions || settings.BatchSize < 16 || settings.BatchSize % 16 != 0 || settings.FilterRatio is < 0 or >= 1)
            {
                Console.Error.WriteLine("bench-selection: need --sessions ≥ 1, --batches ≥ --sessions, --batch-size a positive multiple of 16 (16 chunks), 0 ≤ --filter-ratio < 1.");
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
        public int SuperBatchSize => (int)Math.Round(BatchSize / (1 - FilterRatio));
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
        await using var host = await StartSelectionAsync(messaging, port);
        await using var connections = new BrokerConnections(Microsoft.Extensions.Options.Options.Create(messaging), NullLogger<BrokerConnections>.Instance);
        await using var publisher = new ConfirmedPublisher(connections, NullLogger<ConfirmedPublisher>.Instance);
        var feeds = (JobFeeds)host.Services.GetService(typeof(JobFeeds))!;

        // 1. Serving throughput: pre-fill, let the router move everything to the job's queue, then serve.
        var publish = Stopwatch.StartNew();
        await PublishAsync(publisher, connections.Topology, templates, "serve", settings.Batches, cancellationToken);
        var published = publish.Elapsed.TotalSeconds;
        var route = Stopwatch.StartNew();
        while (await connections.ReadyCountAsync(feeds.QueueOf("serve"), cancellationToken) < settings.Batches)
        {
            await Task.Delay(50, cancellationToken);
        }
        var routed = route.Elapsed.TotalSeconds + published;
        foreach (var policy in new[] { Policy.Uniform })
        {
            using var channel = Channel(port);
            var client = new Protos.V1.Curation.CurationClient(channel);
            var perSession = settings.Batches / settings.Sessions;
            var clock = Stopwatch.StartNew();
            var counts = await Task.WhenAll(Enumerable.Range(0, settings.Sessions).Select(async _ =>
            {
                var open = new SessionOpen { Job = "serve", Policy = policy, FilterRatio = settings.FilterRatio, Chunks = 16, Gain = 10, Seed = 1 };
                using var call = client.StreamBatches(new StreamBatchesRequest { Session = open, MaxBatches = perSession }, new Metadata { { "authorization", $"Bearer {ApiKey}" } }, cancellationToken: cancellationToken);
                var n = 0;
                while (await call.ResponseStream.MoveNext(cancellationToken))
                {
                    n++;
                }
                return n;
            }));
            var seconds = clock.Elapsed.TotalSeconds;
            result[$"serve_{policy.ToString().ToLowerInvariant()}"] = new Dictionary<string, object>
            {
                ["sessions"] = settings.Sessions,
                ["batches"] = counts.Sum(),
                ["seconds"] = seconds,
                ["batches_per_second"] = counts.Sum() / seconds,
            };
        }
        result["prefill"] = new Dictionary<string, object>
        {
            ["super_batches"] = settings.Batches,
            ["publish_seconds"] = published,
            ["publish_and_route_seconds"] = routed,
            ["routed_per_second"] = settings.Batches / routed,
            ["message_bytes"] = templates[0].CalculateSize(),
        };

        // 2. Trainer data stall with JEST (learnability, joint, 16 chunks).
        if (settings.TrainerSteps > 0)
        {
            await PublishAsync(publisher, connections.Topology, templates, "train", settings.TrainerSteps + 2, cancellationToken);
            var checkpoints = Path.Combine(Path.GetTempPath(), $"jm-bench-{Guid.NewGuid():N}");
            var options = new TrainerOptions
            {
                SelectionAddress = $"http://127.0.0.1:{port}",
                ApiKey = ApiKey,
                Job = "train",
                Policy = Policy.Learnability,
                FilterRatio = settings.FilterRatio,
                Chunks = 16,
                Gain = 10,
                Steps = settings.TrainerSteps,
                EvalEvery = 0,
                CheckpointEvery = 1_000_000,
                CheckpointDirectory = checkpoints,
            };
            using var channel = TrainerServiceExtensions.CreateChannel(options);
            using var trainer = new CuratedTrainer(options, channel, null, NullLogger.Instance);
            await trainer.RunAsync(cancellationToken);
            var stats = trainer.Stats;
            result["trainer_jest"] = new Dictionary<string, object>
            {
                ["steps"] = stats.Steps,
                ["wall_seconds"] = stats.WallSeconds,
                ["wait_seconds"] = stats.WaitSeconds,
                ["score_seconds"] = stats.ScoreSeconds,
                ["train_seconds"] = stats.TrainSeconds,
                ["step_ms"] = stats.WallSeconds / Math.Max(1, stats.Steps - 1) * 1000,
                ["data_stall_fraction"] = stats.StallFraction,
            };
            Directory.Delete(checkpoints, recursive: true);
        }
        return result;
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

    private static async Task<WebApplication> StartSelectionAsync(MessagingOptions messaging, int port)
    {
        var builder = WebApplication.CreateBuilder();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Messaging:Uri"] = messaging.Uri,
            ["Messaging:QueuePrefix"] = messaging.QueuePrefix,
            ["Messaging:ClientName"] = messaging.ClientName,
            ["Messaging:Prefetch"] = "32",
            ["Selection:ApiKey"] = ApiKey,
            ["Selection:JobPrefetch"] = "32",
        });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2));
        builder.AddServiceDefaults();
        builder.AddSelectionServices();
        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapSelection();
        await app.StartAsync();
        var store = (SessionStore)app.Services.GetService(typeof(SessionStore))!;
        await store.Loaded.WaitAsync(TimeSpan.FromMinutes(1));
        return app;
    }

    private static Grpc.Net.Client.GrpcChannel Channel(int port) =>
        Grpc.Net.Client.GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new Grpc.Net.Client.GrpcChannelOptions
        {
            MaxReceiveMessageSize = 64 * 1024 * 1024,
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
        });

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
