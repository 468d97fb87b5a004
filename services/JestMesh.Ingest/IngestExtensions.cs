using JestMesh.Messaging;
using JestMesh.ServiceDefaults;

namespace JestMesh.Ingest;

/// <summary>Wiring of the Ingest service.</summary>
public static class IngestExtensions
{
    public static TBuilder AddIngestServices<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddValidatedOptions<MessagingOptions>(builder.Configuration, MessagingOptions.SectionName);
        builder.Services.AddValidatedOptions<IngestOptions>(builder.Configuration, IngestOptions.SectionName);
        builder.Services.AddJestMeshMessaging();
        builder.Services.AddSingleton<IngestRunner>();
        builder.Services.AddSingleton<IngestWorker>();
        builder.Services.AddHostedService(services => services.GetRequiredService<IngestWorker>());
        builder.Services.AddHealthChecks()
            .AddReadinessCheck("broker", services => services.GetRequiredService<BrokerConnections>().IsHealthy, "broker connections open");
        return builder;
    }
}
