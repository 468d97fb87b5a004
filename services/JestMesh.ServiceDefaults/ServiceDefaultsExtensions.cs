using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace JestMesh.ServiceDefaults;

/// <summary>What every JestMesh service host shares: telemetry, health and validated options.</summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>Health checks tagged with this take part in liveness ("is the process stuck?").</summary>
    public const string LiveTag = "live";

    /// <summary>Health checks tagged with this take part in readiness ("can it do work now?").</summary>
    public const string ReadyTag = "ready";

    /// <summary>gRPC health service names (grpc.health.v1) for the two probes.</summary>
    public const string LivenessService = "liveness";
    public const string ReadinessService = "readiness";

    /// <summary>
    /// The log category of gRPC's server internals. At Information it logs a client's cancel, or a
    /// connection lost while a response is written, with the IOException's stack trace ("Error sending
    /// message"): the client's doing, which the service reports itself in one line. Its default level
    /// is therefore Warning; <c>Logging:LogLevel:Grpc.AspNetCore.Server</c> in any setting overrides it.
    /// </summary>
    public const string GrpcServerLogCategory = "Grpc.AspNetCore.Server";

    /// <summary>
    /// OpenTelemetry traces, metrics and logs for every JestMesh source and meter (plus ASP.NET Core,
    /// gRPC client and runtime), exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; gRPC
    /// health with separate liveness and readiness.
    /// </summary>
    public static TBuilder AddServiceDefaults<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        // First source, so every other (appsettings, environment, the host's own) overrides it.
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource
        {
            InitialData = [new($"Logging:LogLevel:{GrpcServerLogCategory}", nameof(LogLevel.Warning))],
        });
        builder.ConfigureOpenTelemetry();
        builder.Services.AddHealthChecks()
            .AddCheck("self", () => HealthCheckResult.Healthy(), [LiveTag]);
        // gRPC health needs the gRPC server services; AddGrpc is idempotent, hosts may configure it again.
        builder.Services.AddGrpc();
        builder.Services.AddGrpcHealthChecks(options =>
        {
            options.Services.Map(LivenessService, r => r.Tags.Contains(LiveTag));
            options.Services.Map(ReadinessService, r => r.Tags.Contains(ReadyTag));
            // The unnamed service ("") answers for the whole process: ready means everything.
            options.Services.Map("", r => r.Tags.Contains(ReadyTag) || r.Tags.Contains(LiveTag));
        });
        return builder;
    }

    public static TBuilder ConfigureOpenTelemetry<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Logging.AddOpenTelemetry(logging =>
        {
            logging.IncludeFormattedMessage = true;
            logging.IncludeScopes = true;
        });
        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(builder.Environment.ApplicationName))
            .WithMetrics(metrics => metrics
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddMeter("JestMesh.*"))
            .WithTracing(tracing => tracing
                .AddSource("JestMesh.*")
                .AddAspNetCoreInstrumentation(o => o.Filter = context => !context.Request.Path.StartsWithSegments("/grpc.health.v1.Health"))
                .AddGrpcClientInstrumentation());
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            otel.UseOtlpExporter();
        }
        return builder;
    }

    /// <summary>Maps gRPC health (grpc.health.v1) and HTTP probes /health/live and /health/ready.</summary>
    public static WebApplication MapDefaultEndpoints(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGrpcHealthChecksService();
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = r => r.Tags.Contains(LiveTag) });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = r => r.Tags.Contains(ReadyTag) });
        return app;
    }

    /// <summary>Adds a readiness check from a predicate (e.g. "the broker connections are open").</summary>
    public static IHealthChecksBuilder AddReadinessCheck(this IHealthChecksBuilder builder, string name, Func<IServiceProvider, bool> isReady, string description)
    {
        ArgumentNullException.ThrowIfNull(builder);
        return builder.Add(new HealthCheckRegistration(
            name,
            services => new DelegateHealthCheck(() => isReady(services), description),
            HealthStatus.Unhealthy,
            [ReadyTag]));
    }

    private sealed class DelegateHealthCheck(Func<bool> isReady, string description) : IHealthCheck
    {
        public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            Task.FromResult(isReady() ? HealthCheckResult.Healthy(description) : HealthCheckResult.Unhealthy(description));
    }
}
