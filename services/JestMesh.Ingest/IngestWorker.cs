using JestMesh.Data;
using Microsoft.Extensions.Options;

namespace JestMesh.Ingest;

/// <summary>Runs one ingest pass when the host starts (Ingest:RunOnStart), then stays up for probes or, with Ingest:ExitWhenDone, stops the host.</summary>
public sealed partial class IngestWorker(IngestRunner runner, IOptions<IngestOptions> options, IHostApplicationLifetime lifetime, ILogger<IngestWorker> logger) : BackgroundService
{
    /// <summary>Completes with the result of the run (tests wait on it).</summary>
    public Task<IngestResult> Completion => _completion.Task;

    private readonly TaskCompletionSource<IngestResult> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.RunOnStart)
        {
            return;
        }
        try
        {
            if (options.Value.WebDatasetDirectory.Length > 0)
            {
                // Shards are read and decoded as they are published (one shard in memory): off the start path too.
                _completion.TrySetResult(await Task.Run(() => runner.RunAsync(options.Value.WebDatasetDirectory, stoppingToken), stoppingToken));
            }
            else
            {
                // Loading and captioning 60k images is CPU work: keep it off the host's start path.
                var data = await Task.Run(() => PairDataset.Build(options.Value.ToDataOptions()), stoppingToken);
                _completion.TrySetResult(await runner.RunAsync(data, stoppingToken));
            }
            if (options.Value.ExitWhenDone)
            {
                lifetime.StopApplication();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            _completion.TrySetCanceled(stoppingToken);
        }
        catch (Exception ex)
        {
            LogFailed(logger, ex);
            _completion.TrySetException(ex);
            // The host stops on a failed background service; its exit code says the run failed.
            Environment.ExitCode = 1;
            throw;
        }
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Ingest failed")]
    private static partial void LogFailed(ILogger logger, Exception exception);
}
