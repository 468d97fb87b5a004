using System.Collections.Concurrent;
using JestMesh.Messaging;
using JestMesh.Protos;
using Microsoft.Extensions.Options;

namespace JestMesh.Selection;

/// <summary>A stream's membership of a job: the job's feed, and one of its bounded session slots until disposed.</summary>
public sealed class JobMembership : IDisposable
{
    private int _disposed;

    internal JobMembership(JobFeed feed)
    {
        Feed = feed;
    }

    public JobFeed Feed { get; }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            Feed.Leave();
        }
    }
}

/// <summary>
/// The job feeds of this replica. A job exists once its queue does, and only the router creates
/// one, when the job's first scored super-batch arrives: sessions never create queues. A replica
/// serves a job only while it holds the job's feed, which one replica at a time can (see
/// <see cref="JobFeed"/>); a session opened on another replica is UNAVAILABLE, naming the job, until
/// the holder is gone, and then its next open takes the job over.
/// </summary>
public sealed class JobFeeds : IAsyncDisposable
{
    private static readonly TimeSpan ExistencePoll = TimeSpan.FromMilliseconds(250);

    // AMQP's reply to declaring an exclusive queue another connection holds (the job's lock).
    private const int ResourceLocked = 405;

    private readonly ConcurrentDictionary<string, Lazy<Task<JobFeed>>> _feeds = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _declared = new(StringComparer.Ordinal);
    private readonly BrokerConnections _connections;
    private readonly SessionStore _store;
    private readonly ConfirmedPublisher _publisher;
    private readonly SelectionOptions _options;
    private readonly ILogger<JobFeed> _logger;

    public JobFeeds(BrokerConnections connections, SessionStore store, ConfirmedPublisher publisher, IOptions<SelectionOptions> options, ILogger<JobFeed> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _connections = connections;
        _store = store;
        _publisher = publisher;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>Queue holding the scored super-batches of <paramref name="job"/>.</summary>
    public string QueueOf(string job) => _connections.Topology.JobQueue(job);

    /// <summary>Declares the job's queue (idempotent; the router's, when a scored super-batch of the job arrives).</summary>
    public async Task DeclareAsync(string job, CancellationToken cancellationToken)
    {
        var queue = QueueOf(job);
        if (_declared.ContainsKey(queue))
        {
            return;
        }
        var connection = await _connections.PublishConnectionAsync(cancellationToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var o = _connections.Options;
        await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false, arguments: new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-delivery-limit"] = o.DeliveryLimit,
            ["x-dead-letter-exchange"] = _connections.Topology.DeadLetter,
            ["x-dead-letter-strategy"] = "at-least-once",
            ["x-overflow"] = "reject-publish",
        }, cancellationToken: cancellationToken);
        _declared.TryAdd(queue, 0);
    }

    /// <summary>Whether the job's queue exists (declared by a router of this or another replica).</summary>
    public async Task<bool> ExistsAsync(string job, CancellationToken cancellationToken)
    {
        var queue = QueueOf(job);
        if (_declared.ContainsKey(queue) || _feeds.ContainsKey(job))
        {
            return true;
        }
        if (await _connections.TryReadyCountAsync(queue, cancellationToken) is null)
        {
            return false;
        }
        _declared.TryAdd(queue, 0);
        return true;
    }

    /// <summary>Joins a stream to a job that is not known to be on record (see the overload).</summary>
    public Task<JobMembership> JoinAsync(string job, string field, DateTime deadline, CancellationToken cancellationToken) =>
        JoinAsync(job, field, deadline, onRecord: false, cancellationToken);

    /// <summary>
    /// Joins a stream to <paramref name="job"/>: waits until <paramref name="deadline"/> (the open's
    /// Selection:UnknownJobWait) for the job to exist, starts its feed, and takes one of its
    /// Selection:MaxSessionsPerJob slots. <paramref name="onRecord"/>: the batch log has sessions of
    /// the job, so it exists whatever the broker answers now.
    /// </summary>
    /// <exception cref="SelectionException">
    /// NOT_FOUND for a job that does not exist; UNAVAILABLE when that cannot be told (the job is on
    /// record, or the broker connection was lost during the wait); RESOURCE_EXHAUSTED at a bound.
    /// </exception>
    public async Task<JobMembership> JoinAsync(string job, string field, DateTime deadline, bool onRecord, CancellationToken cancellationToken)
    {
        var disruptions = _connections.Disruptions;
        string? brokerError = null;
        while (!await ExistsOrFailedAsync())
        {
            if (DateTime.UtcNow >= deadline)
            {
                var waited = $"{_options.UnknownJobWait.TotalSeconds:0.#} s";
                if (onRecord)
                {
                    // A job's queue is never deleted: one the log knows and the broker does not show
                    // is a broker that is recovering (a node restarting), not a job that never was.
                    throw SelectionException.Unavailable($"{field}.job {ClientText.Quote(job)} has sessions in the batch log, but the broker did not show its queue within {waited} (a broker node recovering?); retry.");
                }
                if (brokerError is not null || _connections.Disruptions != disruptions)
                {
                    throw SelectionException.Unavailable($"whether {field}.job {ClientText.Quote(job)} exists could not be told within {waited}: the broker connection was lost meanwhile ({brokerError ?? "recovered"}); retry.");
                }
                throw SelectionException.NotFound($"{field}.job {ClientText.Quote(job)} does not exist: no scored super-batch of it arrived (waited {waited}). Ingest the job first.");
            }
            await Task.Delay(ExistencePoll, cancellationToken);
        }

        async Task<bool> ExistsOrFailedAsync()
        {
            try
            {
                return await ExistsAsync(job, cancellationToken);
            }
            catch (Exception ex) when (ConfirmedPublisher.IsConnectionFailure(ex) && !cancellationToken.IsCancellationRequested)
            {
                brokerError = ex.Message;
                return false;
            }
        }

        if (!_feeds.ContainsKey(job) && _feeds.Count >= _options.MaxJobs)
        {
            throw SelectionException.Exhausted($"this replica serves {_options.MaxJobs} jobs already (Selection:MaxJobs); {field}.job {ClientText.Quote(job)} must wait or go to another replica.");
        }
        var feed = await GetAsync(job, cancellationToken);
        if (!feed.TryJoin(_options.MaxSessionsPerJob))
        {
            throw SelectionException.Exhausted($"job {ClientText.Quote(job)} has {_options.MaxSessionsPerJob} streams attached already (Selection:MaxSessionsPerJob).");
        }
        return new JobMembership(feed);
    }

    private async Task<JobFeed> GetAsync(string job, CancellationToken cancellationToken)
    {
        while (true)
        {
            var lazy = _feeds.GetOrAdd(job, j => new Lazy<Task<JobFeed>>(() => StartAsync(j)));
            JobFeed feed;
            try
            {
                feed = await lazy.Value.WaitAsync(cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // A failed start is not cached: the next session of the job tries again.
                _feeds.TryRemove(new KeyValuePair<string, Lazy<Task<JobFeed>>>(job, lazy));
                throw;
            }
            if (!feed.IsLost)
            {
                return feed;
            }
            // Its sessions may still record batches from what it held: the job is taken again only
            // once they all left, so nothing it held can be curated twice by this replica.
            if (feed.Sessions > 0)
            {
                throw SelectionException.Unavailable($"this replica lost job {ClientText.Quote(job)}'s feed and its last sessions are ending; retry.");
            }
            if (_feeds.TryRemove(new KeyValuePair<string, Lazy<Task<JobFeed>>>(job, lazy)))
            {
                await feed.DisposeAsync();
            }
        }
    }

    private async Task<JobFeed> StartAsync(string job)
    {
        // A quorum queue declared a moment ago may refuse consumers (INTERNAL_ERROR) until its
        // leader is elected, and that error closes the connection: retry while it recovers.
        for (var attempt = 1; ; attempt++)
        {
            var feed = new JobFeed(job, QueueOf(job), _connections, _store, _publisher, _logger);
            try
            {
                await feed.StartAsync(_options.JobPrefetch, CancellationToken.None);
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == ResourceLocked)
            {
                await feed.DisposeAsync();
                throw SelectionException.HeldElsewhere(
                    $"job {ClientText.Quote(job)} is served by another Selection replica now; retry: this replica takes the job over once that one is gone.", ex);
            }
            catch (Exception ex) when (attempt < 30 && ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException or IOException)
            {
                await feed.DisposeAsync();
                await Task.Delay(_connections.Options.RecoveryInterval);
                continue;
            }
            try
            {
                // The job is this replica's now, and the replica that served it before is gone (its
                // consumer with it): read what it recorded, so its sessions resume here where they were.
                // Its marker says the job is this replica's from here on; the marker's offset fences
                // the batches of every earlier holder that land after it.
                feed.Fence = (await _store.CatchUpAsync(job, CancellationToken.None)).Fence;
            }
            catch
            {
                await feed.DisposeAsync();
                throw;
            }
            return feed;
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var lazy in _feeds.Values)
        {
            if (lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
            {
                await lazy.Value.Result.DisposeAsync();
            }
        }
    }
}
