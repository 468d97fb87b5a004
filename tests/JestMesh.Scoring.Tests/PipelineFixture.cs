using System.Globalization;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Messaging;
using JestMesh.Models;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.AspNetCore.Builder;
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
        CheckpointDirectory = TestReference.SaveUntrained(Directory.CreateTempSubdirectory("jestmesh-scoring-ref-").FullName, Data, seed: 1234);
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

    /// <summary>The real Scoring host (hosted consumer, DI, health) on a TestServer, with this fixture's reference.</summary>
    public Task<WebApplication> StartScoringAsync(MessagingOptions messaging, int cacheCapacity = 100_000, string cachePath = "", string device = "cpu", TimeSpan? cacheSaveInterval = null)
    {
        var extra = new Dictionary<string, string?>
        {
            ["Scoring:CacheCapacity"] = cacheCapacity.ToString(CultureInfo.InvariantCulture),
            ["Scoring:CachePath"] = cachePath,
        };
        if (cacheSaveInterval is { } interval)
        {
            extra["Scoring:CacheSaveInterval"] = interval.ToString("c", CultureInfo.InvariantCulture);
        }
        return ServiceHosts.StartScoringAsync(messaging, CheckpointDirectory, Data.Fingerprint, device, extra);
    }

    /// <summary>The real Ingest host (data seed 0); its worker publishes at start, <see cref="IngestWorker.Completion"/> says when done.</summary>
    public static Task<(WebApplication App, IngestWorker Worker)> StartIngestAsync(MessagingOptions messaging, string job, int superBatchSize, int superBatches) =>
        ServiceHosts.StartIngestAsync(messaging, job, superBatchSize, superBatches);

    public void Dispose()
    {
        Reference.Dispose();
        Directory.Delete(CheckpointDirectory, recursive: true);
    }
}
