using Grpc.Net.Client;
using JestMesh.Client;
using JestMesh.Data;
using JestMesh.Models;
using JestMesh.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace JestMesh.Trainer;

/// <summary>Wiring of the trainer host.</summary>
public static class TrainerServiceExtensions
{
    public static IHostApplicationBuilder AddTrainerServices(this IHostApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddValidatedOptions<TrainerOptions>(builder.Configuration, TrainerOptions.SectionName);
        builder.Services.AddHostedService<TrainerWorker>();
        return builder;
    }

    /// <summary>
    /// A gRPC channel to the Selection service with explicit message limits and HTTP/2 keepalive; over
    /// TLS with Trainer:Tls (client certificate, CA) for an https:// address.
    /// </summary>
    public static GrpcChannel CreateChannel(TrainerOptions options, SocketsHttpHandler? handler = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return CurateChannel.Create(options.SelectionAddress, handler ?? new SocketsHttpHandler
        {
            // Pings keep the long-lived stream's connection alive through proxies and notice a
            // dead peer without waiting for TCP timeouts.
            KeepAlivePingDelay = options.KeepAlivePingDelay,
            KeepAlivePingTimeout = options.KeepAlivePingTimeout,
            KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
            EnableMultipleHttp2Connections = true,
            // The default 64 KB receive window makes every curated batch (≈ 110 KB at b = 128)
            // wait for a WINDOW_UPDATE round trip on the step's critical path; one window holds
            // a whole candidate, and flow control still bounds what is buffered.
            InitialHttp2StreamWindowSize = options.StreamWindowBytes,
            ConnectTimeout = TimeSpan.FromSeconds(10),
        }, new GrpcChannelOptions
        {
            MaxReceiveMessageSize = options.MaxMessageBytes,
            MaxSendMessageSize = options.MaxMessageBytes,
        }, options.Tls, TrainerOptions.SectionName);
    }
}

/// <summary>
/// Runs the trainer to its last step, then stops the host (exit code 0). A run that fails stops the host
/// with exit code 1, so a Kubernetes Job or any supervisor sees a failure, not a finished run (the host
/// alone would exit 0 after a background service's exception); a stop asked for from outside is not a failure.
/// </summary>
public sealed partial class TrainerWorker(IOptions<TrainerOptions> options, IHostApplicationLifetime lifetime, ILogger<CuratedTrainer> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            var settings = options.Value;
            using var channel = TrainerServiceExtensions.CreateChannel(settings);
            using var evaluator = settings.EvalEvery > 0
                ? new Evaluator(PairDataset.Build(new DataOptions { Seed = settings.DataSeed }), settings.EvalLimit == 0 ? null : settings.EvalLimit)
                : null;
            using var trainer = new CuratedTrainer(settings, channel, evaluator, logger);
            await trainer.RunAsync(stoppingToken);
        }
        catch (Exception e) when (!(e is OperationCanceledException && stoppingToken.IsCancellationRequested))
        {
            Environment.ExitCode = 1;
            LogFailed(logger, e.Message, e);
        }
        lifetime.StopApplication();
    }

    [LoggerMessage(Level = LogLevel.Critical, Message = "The training run failed and stops unfinished (exit code 1): {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason, Exception exception);
}
