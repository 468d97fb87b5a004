using System.Globalization;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Messaging;
using JestMesh.Models;
using JestMesh.Scoring;
using JestMesh.Selection.Tests;
using JestMesh.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using TorchSharp;

namespace JestMesh.Trainer.Tests;

/// <summary>The real Selection (on Kestrel), Scoring and Ingest hosts of one pipeline, and what Ingest published.</summary>
public sealed class Pipeline(SelectionHost selection, WebApplication scoring, WebApplication ingest, IngestResult produced) : IAsyncDisposable
{
    public SelectionHost Selection { get; } = selection;

    public IngestResult Produced { get; } = produced;

    public async ValueTask DisposeAsync()
    {
        await ingest.DisposeAsync();
        await scoring.DisposeAsync();
        await Selection.DisposeAsync();
    }
}

/// <summary>Starts the real Ingest and Scoring hosts in the test process, on the test broker.</summary>
public static class PipelineHosts
{
    /// <summary>
    /// Saves an untrained reference for <paramref name="data"/> in <paramref name="directory"/>: the
    /// pipeline tests check plumbing and equality, which need no good reference.
    /// </summary>
    public static string SaveUntrainedReference(string directory, PairDataset data, long seed)
    {
        ArgumentNullException.ThrowIfNull(data);
        torch.random.manual_seed(seed);
        using var model = SiglipModel.Create(new ModelConfig(), torch.CPU);
        var options = data.Options;
        ModelCheckpoint.Save(directory, model, new CheckpointMetadata { DataFingerprint = data.Fingerprint, DataSeed = options.Seed, SwappedShare = options.SwappedShare, CuratedSize = options.CuratedSize });
        return directory;
    }

    /// <summary>
    /// Starts Selection, Scoring (with <paramref name="reference"/>) and Ingest, and waits until Ingest
    /// published <paramref name="superBatches"/> super-batches of <paramref name="n"/> for <paramref name="job"/>.
    /// </summary>
    public static async Task<Pipeline> StartAsync(string root, MessagingOptions messaging, string reference, PairDataset data,
        string job, int n, int superBatches, int orderSeed = 0)
    {
        ArgumentNullException.ThrowIfNull(data);
        var selection = await SelectionHost.StartAsync(messaging, kestrel: true);
        var scoringSettings = Settings(messaging);
        scoringSettings["Scoring:ReferenceDirectory"] = reference;
        scoringSettings["Scoring:Device"] = "cpu";
        scoringSettings["Scoring:ExpectedDataFingerprint"] = data.Fingerprint;
        var scoring = await StartAsync(root, "JestMesh.Scoring", scoringSettings, b => b.AddScoringServices());
        var ingestSettings = Settings(messaging);
        ingestSettings["Ingest:Job"] = job;
        ingestSettings["Ingest:SuperBatchSize"] = n.ToString(CultureInfo.InvariantCulture);
        ingestSettings["Ingest:MaxSuperBatches"] = superBatches.ToString(CultureInfo.InvariantCulture);
        ingestSettings["Ingest:DataSeed"] = data.Options.Seed.ToString(CultureInfo.InvariantCulture);
        ingestSettings["Ingest:OrderSeed"] = orderSeed.ToString(CultureInfo.InvariantCulture);
        var ingest = await StartAsync(root, "JestMesh.Ingest", ingestSettings, b => b.AddIngestServices());
        var produced = await ingest.Services.GetRequiredService<IngestWorker>().Completion.WaitAsync(TimeSpan.FromMinutes(2));
        return new Pipeline(selection, scoring, ingest, produced);
    }

    /// <summary>Runs a trainer with <paramref name="options"/> to its last step; returns the batches it trained, in order.</summary>
    public static async Task<List<Protos.V1.CuratedBatch>> TrainAsync(TrainerOptions options)
    {
        var trained = new List<Protos.V1.CuratedBatch>();
        using var channel = TrainerServiceExtensions.CreateChannel(options);
        using var trainer = new CuratedTrainer(options, channel, null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance) { BatchTrained = trained.Add };
        await trainer.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        return trained;
    }

    /// <summary>The broker settings of <paramref name="options"/> as configuration keys.</summary>
    public static Dictionary<string, string?> Settings(MessagingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new()
        {
            ["Messaging:Uri"] = options.Uri,
            ["Messaging:QueuePrefix"] = options.QueuePrefix,
            ["Messaging:RecoveryInterval"] = options.RecoveryInterval.ToString("c", CultureInfo.InvariantCulture),
            ["Messaging:RetryDelay"] = options.RetryDelay.ToString("c", CultureInfo.InvariantCulture),
            ["Messaging:ClientName"] = options.ClientName,
        };
    }

    /// <summary>Builds and starts host <paramref name="name"/> with <paramref name="settings"/> only.</summary>
    public static async Task<WebApplication> StartAsync(string root, string name, Dictionary<string, string?> settings, Action<WebApplicationBuilder> add)
    {
        ArgumentNullException.ThrowIfNull(add);
        // An empty content root: the hosts' appsettings.json files (copied next to the tests) must not leak in.
        var contentRoot = Directory.CreateDirectory(Path.Combine(root, name)).FullName;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ApplicationName = name, EnvironmentName = "Testing", ContentRootPath = contentRoot });
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddServiceDefaults();
        add(builder);
        var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        return app;
    }
}
