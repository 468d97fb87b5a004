using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using Google.Protobuf;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace JestMesh.Selection;

/// <summary>A scored super-batch held unacked by a job feed until a session recorded what it selected from it.</summary>
public sealed class Delivery
{
    internal Delivery(JobFeed feed, IChannel channel, ulong tag, string messageId, ScoredSuperBatch batch, ActivityContext producer)
    {
        Feed = feed;
        Channel = channel;
        Tag = tag;
        MessageId = messageId;
        Batch = batch;
        Producer = producer;
    }

    internal JobFeed Feed { get; }

    internal IChannel Channel { get; }

    internal ulong Tag { get; }

    public string MessageId { get; }

    public ScoredSuperBatch Batch { get; }

    /// <summary>Trace context of the message's producer (the super-batch's trace).</summary>
    public ActivityContext Producer { get; }
}

/// <summary>
/// The scored super-batches of one job, consumed from the job's own queue with a bounded prefetch.
/// Every session of the job takes from the same feed, so sessions get disjoint super-batches; a
/// super-batch is acked only after its batch was recorded, and one a session did not use goes back.
/// </summary>
public sealed partial class JobFeed : IAsyncDisposable
{
    private readonly Channel<Delivery> _ready = Channel.CreateUnbounded<Delivery>();
    private readonly BrokerConnections _connections;
    private readonly SessionStore _store;
    private readonly ConfirmedPublisher _publisher;
    private readonly ILogger _logger;
    private IChannel? _channel;

    internal JobFeed(string job, string queue, BrokerConnections connections, SessionStore store, ConfirmedPublisher publisher, ILogger logger)
    {
        Job = job;
        Queue = queue;
        _connections = connections;
        _store = store;
        _publisher = publisher;
        _logger = logger;
    }

    public string Job { get; }

    public string Queue { get; }

    internal async Task StartAsync(int prefetch, CancellationToken cancellationToken)
    {
        var connection = await _connections.ConsumeConnectionAsync(cancellationToken);
        _channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        // The prefetch is the feed's whole buffer: the unbounded channel never holds more than it.
        await _channel.BasicQosAsync(0, (ushort)prefetch, global: false, cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(_channel);
        consumer.ReceivedAsync += OnReceivedAsync;
        await _channel.BasicConsumeAsync(Queue, autoAck: false, consumer, cancellationToken);
    }

    private async Task OnReceivedAsync(object sender, BasicDeliverEventArgs delivery)
    {
        var channel = _channel!;
        var headers = delivery.BasicProperties.Headers is { } h ? new Dictionary<string, object?>(h) : null;
        var producer = MessagingTelemetry.Extract(headers).ActivityContext;
        var messageId = delivery.BasicProperties.MessageId ?? "";
        ScoredSuperBatch batch;
        try
        {
            batch = ScoredSuperBatch.Parser.ParseFrom(delivery.Body.Span);
        }
        catch (InvalidProtocolBufferException ex)
        {
            // The router checked it; bytes that still do not parse go to the dead-letter exchange.
            await _publisher.PublishAsync(new OutgoingMessage(_connections.Topology.DeadLetter, Queue, messageId, delivery.Body.ToArray())
            {
                Headers = new Dictionary<string, object?> { [QueueTopology.ReasonHeader] = $"not a ScoredSuperBatch: {ex.Message}", [QueueTopology.SourceQueueHeader] = Queue },
            }, CancellationToken.None);
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
            return;
        }
        if (_store.IsRecorded(Job, batch.Id))
        {
            // Redelivered after its batch was recorded (the ack was lost): no second effect.
            LogDuplicate(_logger, batch.Id, Job);
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false);
            return;
        }
        LastSuperBatchSize = batch.Examples.Count;
        LastReferenceSha256 = batch.ReferenceCheckpointSha256;
        _ready.Writer.TryWrite(new Delivery(this, channel, delivery.DeliveryTag, messageId, batch, producer));
    }

    /// <summary>N of the last super-batch received (0 before the first).</summary>
    public int LastSuperBatchSize { get; private set; }

    /// <summary>Reference checkpoint hash of the last super-batch received.</summary>
    public string LastReferenceSha256 { get; private set; } = "";

    /// <summary>The next super-batch of the job (waits until there is one).</summary>
    public async ValueTask<Delivery> TakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var delivery = await _ready.Reader.ReadAsync(cancellationToken);
            if (!_store.IsRecorded(Job, delivery.Batch.Id))
            {
                return delivery;
            }
            await AckAsync(delivery);
        }
    }

    /// <summary>Acks a super-batch whose batch is recorded.</summary>
    public async Task AckAsync(Delivery delivery)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        try
        {
            await delivery.Channel.BasicAckAsync(delivery.Tag, multiple: false);
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.AlreadyClosedException or IOException or OperationCanceledException)
        {
            // The channel died: the broker redelivers, and the recorded set turns it into a plain ack.
            LogAckLost(_logger, delivery.MessageId, ex.Message);
        }
    }

    /// <summary>Gives an unused super-batch to the job's next session.</summary>
    public void Return(Delivery delivery) => _ready.Writer.TryWrite(delivery);

    public async ValueTask DisposeAsync()
    {
        _ready.Writer.TryComplete();
        if (_channel is not null)
        {
            try
            {
                await _channel.CloseAsync();
            }
            catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or IOException)
            {
                // Gone with its connection.
            }
            await _channel.DisposeAsync();
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Super-batch {SuperBatchId} of job {Job} was already recorded; acked without effect")]
    private static partial void LogDuplicate(ILogger logger, string superBatchId, string job);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ack of {MessageId} lost ({Reason}); the redelivery will be recognised as recorded")]
    private static partial void LogAckLost(ILogger logger, string messageId, string reason);
}

/// <summary>The job feeds of this replica, started on first use; also declares the per-job queues.</summary>
public sealed class JobFeeds : IAsyncDisposable
{
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
    public string QueueOf(string job) => $"{_connections.Topology.Scored}.job.{job}";

    /// <summary>Declares the job's queue (idempotent): quorum, dead-lettering like the other queues, unbounded.</summary>
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

    /// <summary>N, b and the reference hash of the job's last super-batch, zeros when none was seen yet.</summary>
    public (int SuperBatchSize, int BatchSize, string ReferenceSha256) LastSeen(string job, double filterRatio)
    {
        if (_feeds.TryGetValue(job, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully && lazy.Value.Result.LastSuperBatchSize > 0)
        {
            var feed = lazy.Value.Result;
            return (feed.LastSuperBatchSize, BatchSelector.BatchSize(feed.LastSuperBatchSize, filterRatio), feed.LastReferenceSha256);
        }
        return (0, 0, "");
    }

    public async Task<JobFeed> GetAsync(string job, CancellationToken cancellationToken)
    {
        var lazy = _feeds.GetOrAdd(job, j => new Lazy<Task<JobFeed>>(() => StartAsync(j)));
        try
        {
            return await lazy.Value.WaitAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // A failed start is not cached: the next session of the job tries again.
            _feeds.TryRemove(new KeyValuePair<string, Lazy<Task<JobFeed>>>(job, lazy));
            throw;
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
                await DeclareAsync(job, CancellationToken.None);
                await feed.StartAsync(_options.JobPrefetch, CancellationToken.None);
                return feed;
            }
            catch (Exception ex) when (attempt < 30 && ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException or IOException)
            {
                await feed.DisposeAsync();
                _declared.TryRemove(QueueOf(job), out _);
                await Task.Delay(_connections.Options.RecoveryInterval);
            }
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
