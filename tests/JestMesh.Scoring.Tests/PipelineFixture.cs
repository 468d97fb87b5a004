using System.Globalization;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Messaging;
using JestMesh.Models;
using JestMesh.Protos.V1;
using JestMesh.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using static TorchSharp.torch;

namespace JestMesh.Scoring.Tests;

/// <summary>TorchSharp tests share one collection: the native runtime is not parallel-safe.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PipelineCollection : ICollectionFixture<PipelineFixture>
{
    public const string Name = "Pipeline (TorchSharp)";
}

/// <summary>
/// The real pairs (seed 0), a reference checkpoint written from a seeded untrained SigLIP model
/// (the embeddings-equality checks hold for any weights), and that model loaded for direct calls.
/// </summary>
public sealed class PipelineFixture : IDisposable
{
    public PipelineFixture()
    {
        Data = PairDataset.Build(new DataOptions { Seed = 0 });
        CheckpointDirectory = Directory.CreateTempSubdirectory("jestmesh-scoring-ref-").FullName;
        manual_seed(1234);
        using (var model = SiglipModel.Create(new ModelConfig(), CPU))
        {
            ModelCheckpoint.Save(CheckpointDirectory, model, new CheckpointMetadata { DataFingerprint = Data.Fingerprint, Step = 0 });
        }
        (Reference, Metadata) = ModelCheckpoint.Load(CheckpointDirectory, CPU);
    }

    public PairDataset Data { get; }

    public string CheckpointDirectory { get; }

    public SiglipModel Reference { get; }

    public CheckpointMetadata Metadata { get; }

    /// <summary>The model called directly on a scored super-batch's examples, in the same batches Scoring uses.</summary>
    public EmbeddingBatch EmbedDirectly(IReadOnlyList<Example> examples, int batchSize = 512)
    {
        var pixels = new byte[examples.Count * ImageSet.PixelsPerImage];
        var tokens = new int[examples.Count][];
        for (var i = 0; i < examples.Count; i++)
        {
            examples[i].Image.Span.CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            tokens[i] = [.. examples[i].CaptionTokens];
        }
        return Reference.Embed(pixels, examples.Count, tokens, batchSize);
    }

    public static Dictionary<string, string?> MessagingSettings(MessagingOptions options) => new()
    {
        ["Messaging:Uri"] = options.Uri,
        ["Messaging:QueuePrefix"] = options.QueuePrefix,
        ["Messaging:Prefetch"] = options.Prefetch.ToString(CultureInfo.InvariantCulture),
        ["Messaging:InputQueueMaxLength"] = options.InputQueueMaxLength.ToString(CultureInfo.InvariantCulture),
        ["Messaging:RecoveryInterval"] = options.RecoveryInterval.ToString("c", CultureInfo.InvariantCulture),
        ["Messaging:RetryDelay"] = options.RetryDelay.ToString("c", CultureInfo.InvariantCulture),
        ["Messaging:ClientName"] = options.ClientName,
    };

    /// <summary>The real Scoring host (hosted consumer, DI, health) on a TestServer.</summary>
    public async Task<WebApplication> StartScoringAsync(MessagingOptions messaging, int cacheCapacity = 100_000, string cachePath = "", string device = "cpu", TimeSpan? cacheSaveInterval = null)
    {
        var settings = MessagingSettings(messaging);
        settings["Scoring:ReferenceDirectory"] = CheckpointDirectory;
        settings["Scoring:Device"] = device;
        settings["Scoring:CacheCapacity"] = cacheCapacity.ToString(CultureInfo.InvariantCulture);
        settings["Scoring:CachePath"] = cachePath;
        if (cacheSaveInterval is { } interval)
        {
            settings["Scoring:CacheSaveInterval"] = interval.ToString("c", CultureInfo.InvariantCulture);
        }
        settings["Scoring:ExpectedDataFingerprint"] = Data.Fingerprint;
        var builder = HostBuilder("JestMesh.Scoring", settings);
        builder.AddServiceDefaults();
        builder.AddScoringServices();
        return await StartAsync(builder);
    }

    /// <summary>The real Ingest host; its worker publishes at start, <see cref="IngestWorker.Completion"/> says when done.</summary>
    public static async Task<(WebApplication App, IngestWorker Worker)> StartIngestAsync(MessagingOptions messaging, string job, int superBatchSize, int superBatches)
    {
        var settings = MessagingSettings(messaging);
        settings["Ingest:Job"] = job;
        settings["Ingest:SuperBatchSize"] = superBatchSize.ToString(CultureInfo.InvariantCulture);
        settings["Ingest:MaxSuperBatches"] = superBatches.ToString(CultureInfo.InvariantCulture);
        settings["Ingest:DataSeed"] = "0";
        var builder = HostBuilder("JestMesh.Ingest", settings);
        builder.AddServiceDefaults();
        builder.AddIngestServices();
        var app = await StartAsync(builder);
        return (app, app.Services.GetRequiredService<IngestWorker>());
    }

    private static readonly Lazy<string> EmptyContentRoot = new(() => Directory.CreateTempSubdirectory("jestmesh-host-root-").FullName);

    private static WebApplicationBuilder HostBuilder(string name, Dictionary<string, string?> settings)
    {
        // An empty content root: the hosts' appsettings.json files (copied next to the tests) must not leak in.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ApplicationName = name, EnvironmentName = "Testing", ContentRootPath = EmptyContentRoot.Value });
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(settings);
        return builder;
    }

    private static async Task<WebApplication> StartAsync(WebApplicationBuilder builder)
    {
        var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        return app;
    }

    public void Dispose()
    {
        Reference.Dispose();
        Directory.Delete(CheckpointDirectory, recursive: true);
        if (EmptyContentRoot.IsValueCreated)
        {
            Directory.Delete(EmptyContentRoot.Value, recursive: true);
        }
    }
}
