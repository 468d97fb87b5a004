using JestMesh.Messaging;
using Microsoft.Extensions.Options;

namespace JestMesh.Scoring;

/// <summary>Consumes jestmesh.superbatches with the scoring processor; saves the cache on stop.</summary>
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
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await consumer.StopAsync();
        await base.StopAsync(cancellationToken);
        if (options.Value.CachePath.Length > 0)
        {
            cache.Save(options.Value.CachePath, embedder.Metadata.Sha256);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Scoring on {Device} with reference {Sha256}; {Cached} cached embeddings")]
    private static partial void LogStarted(ILogger logger, string device, string sha256, int cached);
}
