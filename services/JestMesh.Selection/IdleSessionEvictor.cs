using Microsoft.Extensions.Options;

namespace JestMesh.Selection;

/// <summary>
/// Drops sessions idle for Selection:SessionIdleTimeout from memory, checking four times per
/// timeout (at most every 30 s), so a session goes at most a quarter of the timeout late.
/// </summary>
public sealed partial class IdleSessionEvictor(SessionStore store, IOptions<SelectionOptions> options, ILogger<IdleSessionEvictor> logger) : BackgroundService
{
    private static readonly TimeSpan MaxPeriod = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var idle = options.Value.SessionIdleTimeout;
        try
        {
            await store.Loaded.WaitAsync(stoppingToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The router reports a log that could not be read; without sessions there is nothing to evict.
            return;
        }
        using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Min(idle.Ticks / 4, MaxPeriod.Ticks)));
        try
        {
            do
            {
                var evicted = store.EvictIdle(DateTimeOffset.UtcNow, idle);
                if (evicted > 0)
                {
                    LogEvicted(logger, evicted, idle.TotalSeconds, store.LiveSessions);
                }
            }
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Evicted {Count} sessions idle for {Seconds} s; {Live} remain in memory")]
    private static partial void LogEvicted(ILogger logger, int count, double seconds, int live);
}
