using JestMesh.Learning;
using JestMesh.Messaging;
using JestMesh.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace JestMesh.Scoring;

/// <summary>Wiring of the Scoring service.</summary>
public static partial class ScoringExtensions
{
    public static TBuilder AddScoringServices<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddValidatedOptions<MessagingOptions>(builder.Configuration, MessagingOptions.SectionName);
        builder.Services.AddValidatedOptions<ScoringOptions>(builder.Configuration, ScoringOptions.SectionName);
        builder.Services.AddJestMeshMessaging();
        // Loading the checkpoint verifies its SHA-256: a bad path or file stops the service at start.
        builder.Services.AddSingleton(services =>
        {
            var options = services.GetRequiredService<IOptions<ScoringOptions>>().Value;
            return ReferenceEmbedder.LoadAsync(options.ReferenceDirectory, options.Device, options.BatchSize).GetAwaiter().GetResult();
        });
        builder.Services.AddSingleton(services =>
        {
            var options = services.GetRequiredService<IOptions<ScoringOptions>>().Value;
            var embedder = services.GetRequiredService<ReferenceEmbedder>();
            var cache = new EmbeddingCache(options.CacheCapacity, embedder.Dim);
            if (options.CachePath.Length > 0)
            {
                var outcome = cache.Load(options.CachePath, embedder.Metadata.Sha256);
                var logger = services.GetRequiredService<ILogger<EmbeddingCache>>();
                LogCache(logger, outcome);
            }
            if (options.PrecomputedDirectory.Length > 0)
            {
                var outcome = PrecomputedEmbeddings.LoadInto(cache, options.PrecomputedDirectory, embedder.Metadata.Sha256);
                var logger = services.GetRequiredService<ILogger<EmbeddingCache>>();
                LogCache(logger, outcome);
            }
            return cache;
        });
        builder.Services.AddSingleton(services => new ReferenceScorer(services.GetRequiredService<ReferenceEmbedder>(), services.GetRequiredService<EmbeddingCache>()));
        builder.Services.AddSingleton<SuperBatchScorer>();
        builder.Services.AddSingleton<ScoringProcessor>();
        builder.Services.AddSingleton<ScoringWorker>();
        builder.Services.AddHostedService(services => services.GetRequiredService<ScoringWorker>());
        builder.Services.AddHealthChecks()
            .AddReadinessCheck("scoring", services => services.GetRequiredService<ScoringWorker>().Started
                && services.GetRequiredService<BrokerConnections>().IsHealthy, "consuming with open broker connections");
        return builder;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Embedding cache: {Outcome}")]
    private static partial void LogCache(ILogger logger, string outcome);
}
