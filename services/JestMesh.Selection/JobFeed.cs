using System.Diagnostics;
using Google.Protobuf;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace JestMesh.Selection;

/// <summary>
/// A scored super-batch held unacked by a job feed. It has exactly one owner at a time: the feed
/// (ready), one stream (taken), or the batch log (acked once its batch is recorded); the state
/// moves only forward along those edges, so a second return or a second ack is impossible.
/// </summary>
public sealed class Delivery
{
    private const int Ready = 0;
    private const int Taken = 1;
    private const int Done = 2;
    private int _state;

    internal Delivery(JobFeed feed, IChannel channel, ulong tag, string messageId, ScoredSuperBatch batch, ActivityContext producer, long arrival)
    {
        Feed = feed;
        Channel = channel;
        Tag = tag;
        MessageId = messageId;
        Batch = batch;
        Producer = producer;
        Arrival = arrival;
    }

    internal JobFeed Feed { get; }

    internal IChannel Channel { get; }

    internal ulong Tag { get; }

    /// <summary>Order in which the feed received it: returned deliveries keep their place.</summary>
    internal long Arrival { get; }

    public string MessageId { get; }

    public ScoredSuperBatch Batch { get; }

    /// <summary>Trace context of the message's producer (the super-batch's trace).</summary>
    public ActivityContext Producer { get; }

    internal bool TryMove(int from, int to) => Interlocked.CompareExchange(ref _state, to, from) == from;

    internal bool TryTake() => TryMove(Ready, Taken);

    internal bool TryGiveBack() => TryMove(Taken, Ready);

    internal bool TryFinish() => TryMove(Taken, Done);
}

/// <summary>
/// The scored super-batches of one job, consumed from the job's own queue with a bounded prefetch.
/// Every session of the job takes from the same feed, so sessions get disjoint super-batches; a
/// super-batch is acked only after its batch was recorded, and one a session did not use goes back
/// to its original place (ahead of everything that arrived after it).
/// </summary>
public sealed partial class JobFeed : IAsyncDisposable
{
    private readonly PriorityQueue<Delivery, long> _ready = new();
    private readonly SemaphoreSlim _available = new(0);
    private readonly TaskCompletionSource _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly BrokerConnections _connections;
    private readonly SessionStore _store;
    private readonly ConfirmedPublisher _publisher;
    private readonly ILogger _logger;
    private IChannel? _channel;
    private long _arrivals;
    private int _sessions;

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

    /// <summary>N of the last super-batch received (0 before the first).</summary>
    public int LastSuperBatchSize { get; private set; }

    /// <summary>Reference checkpoint hash of the last super-batch received.</summary>
    public string LastReferenceSha256 { get; private set; } = "";

    /// <summary>Completes when the feed received its first super-batch.</summary>
    public Task FirstReceived => _first.Task;

    /// <summary>Super-batches waiting to be taken.</summary>
    public int ReadyCount
    {
        get
        {
            lock (_ready)
            {
                return _ready.Count;
            }
        }
    }

    /// <summary>Streams of the job attached now.</summary>
    public int Sessions => Volatile.Read(ref _sessions);

    internal async Task StartAsync(int prefetch, CancellationToken cancellationToken)
    {
        var connection = await _connections.ConsumeConnectionAsync(cancellationToken);
        _channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        // The prefetch is the feed's whole buffer: the ready set never holds more than it.
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
        Enqueue(new Delivery(this, channel, delivery.DeliveryTag, messageId, batch, producer, Interlocked.Increment(ref _arrivals)));
        _first.TrySetResult();
    }

    private void Enqueue(Delivery delivery)
    {
        lock (_ready)
        {
            _ready.Enqueue(delivery, delivery.Arrival);
        }
        _available.Release();
    }

    /// <summary>The oldest super-batch of the job (waits until there is one); the caller owns it until it returns or acks it.</summary>
    public async ValueTask<Delivery> TakeAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            await _available.WaitAsync(cancellationToken);
            Delivery delivery;
            lock (_ready)
            {
                delivery = _ready.Dequeue();
            }
            if (!delivery.TryTake())
            {
                throw new InvalidOperationException($"super-batch {delivery.MessageId} of job {Job} was ready twice.");
            }
            if (!_store.IsRecorded(Job, delivery.Batch.Id))
            {
                return delivery;
            }
            await AckAsync(delivery);
        }
    }

    /// <summary>Acks a super-batch whose batch is recorded (once: a second ack would close the channel).</summary>
    public async Task AckAsync(Delivery delivery)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        if (!delivery.TryFinish())
        {
            LogNotOwned(_logger, "ack", delivery.MessageId, Job);
            return;
        }
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

    /// <summary>Gives a taken, unused super-batch back: the job's next take gets it before anything that arrived after it.</summary>
    public void Return(Delivery delivery)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        if (!delivery.TryGiveBack())
        {
            LogNotOwned(_logger, "return", delivery.MessageId, Job);
            return;
        }
        Enqueue(delivery);
    }

    /// <summary>Counts a stream of the job in, unless <paramref name="max"/> are attached already.</summary>
    internal bool TryJoin(int max)
    {
        while (true)
        {
            var now = Volatile.Read(ref _sessions);
            if (now >= max)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref _sessions, now + 1, now) == now)
            {
                return true;
            }
        }
    }

    internal void Leave() => Interlocked.Decrement(ref _sessions);

    public async ValueTask DisposeAsync()
    {
        if (_channel is not null)
        {
            try
            {
                await _channel.CloseAsync();
            }
            catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException or IOException)
            {
                // Gone with its connection.
            }
            await _channel.DisposeAsync();
        }
        _available.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Super-batch {SuperBatchId} of job {Job} was already recorded; acked without effect")]
    private static partial void LogDuplicate(ILogger logger, string superBatchId, string job);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ack of {MessageId} lost ({Reason}); the redelivery will be recognised as recorded")]
    private static partial void LogAckLost(ILogger logger, string messageId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Refused to {Action} super-batch {MessageId} of job {Job}: the caller does not own it (a bug)")]
    private static partial void LogNotOwned(ILogger logger, string action, string messageId, string job);
}
