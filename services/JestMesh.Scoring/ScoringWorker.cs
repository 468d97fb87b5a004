using JestMesh.Learning;
using JestMesh.Messaging;
using Microsoft.Extensions.Options;

namespace JestMesh.Scoring;

/// <summary>Consumes jestmesh.superbatches with the scoring processor; saves the cache every Scoring:CacheSaveInterval and on stop.</summary>
public sealed partial class ScoringWorker(
    AckingConsumer consumer,
    ScoringProcessor processor,
    BrokerConnections connections,
    EmbeddingCache cache,
    ReferenceEmbedder embedder,
    IOptions<ScoringOptions> options,
    ILogger<ScoringWorker> logger) : BackgroundService
{
    public bool Started { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await connections.DeclareTopologyAsync(stoppingToken);
        await consumer.StartAsync(connections.Topology.SuperBatches, processor.HandleAsync, stoppingToken);
        Started = true;
        LogStarted(logger, embedder.DeviceName, embedder.Metadata.Sha256, cache.Count);
        var settings = options.Value;
        if (settings.CachePath.Length == 0 || settings.CacheSaveInterval <= TimeSpan.Zero)
        {
            return;
        }
        using var timer = new PeriodicTimer(settings.CacheSaveInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                SaveCache(settings.CachePath);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping: StopAsync saves once more.
        }
    }

    private void SaveCache(string path)
    {
        if (!cache.HasUnsavedChanges)
        {
            return;
        }
        try
        {
            cache.Save(path, embedder.Metadata.Sha256);
            LogSaved(logger, cache.Count, path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // A full or read-only volume must not stop scoring: the next interval tries again.
            LogSaveFailed(logger, path, ex.Message);
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await consumer.StopAsync();
        await base.StopAsync(cancellationToken);
        if (options.Value.CachePath.Length > 0)
        {
            SaveCache(options.Value.CachePath);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Saved {Count} cached embeddings to {Path}")]
    private static partial void LogSaved(ILogger logger, int count, string path);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not save the embedding cache to {Path}: {Reason}")]
    private static partial void LogSaveFailed(ILogger logger, string path, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "Scoring on {Device} with reference {Sha256}; {Cached} cached embeddings")]
    private static partial void LogStarted(ILogger logger, string device, string sha256, int cached);
}
