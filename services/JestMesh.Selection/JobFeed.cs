using System.Diagnostics;
using Google.Protobuf;
using JestMesh.Messaging;
using JestMesh.Protos;
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
    private readonly Lock _gate = new();
    private int _state;
    private ulong _tag;

    internal Delivery(JobFeed feed, IChannel channel, ulong tag, string messageId, ScoredSuperBatch batch, ActivityContext producer, long arrival)
    {
        Feed = feed;
        Channel = channel;
        _tag = tag;
        MessageId = messageId;
        Batch = batch;
        Producer = producer;
        Arrival = arrival;
    }

    internal JobFeed Feed { get; }

    internal IChannel Channel { get; }

    /// <summary>The delivery tag to ack: the newest delivery of this super-batch the feed holds.</summary>
    internal ulong Tag
    {
        get
        {
            lock (_gate)
            {
                return _tag;
            }
        }
    }

    /// <summary>
    /// Takes <paramref name="newer"/> (another delivery of the same super-batch) as the tag to ack and
    /// returns the older one, which the caller acks now; false once this one is finished.
    /// </summary>
    internal bool TryRebind(ulong newer, out ulong older)
    {
        lock (_gate)
        {
            older = _tag;
            if (Volatile.Read(ref _state) == Done)
            {
                return false;
            }
            _tag = newer;
            return true;
        }
    }

    /// <summary>Order in which the feed received it: returned deliveries keep their place.</summary>
    internal long Arrival { get; }

    public string MessageId { get; }

    public ScoredSuperBatch Batch { get; }

    /// <summary>Trace context of the message's producer (the super-batch's trace).</summary>
    public ActivityContext Producer { get; }

    internal bool TryMove(int from, int to) => Interlocked.CompareExchange(ref _state, to, from) == from;

    internal bool TryTake() => TryMove(Ready, Taken);

    internal bool TryGiveBack() => TryMove(Taken, Ready);

    /// <summary>Finishes a taken delivery and returns the tag to ack (no rebinding after this).</summary>
    internal bool TryFinish(out ulong tag)
    {
        lock (_gate)
        {
            tag = _tag;
            return TryMove(Taken, Done);
        }
    }
}

/// <summary>
/// The scored super-batches of one job, consumed from the job's own queue with a bounded prefetch, by
/// one replica at a time (the holder of the job's lock, see <see cref="StartAsync"/>).
/// Every session of the job takes from the same feed, so sessions get disjoint super-batches; a
/// super-batch is acked only after its batch was recorded, and one a session did not use goes back
/// to its original place (ahead of everything that arrived after it).
/// </summary>
public sealed partial class JobFeed : IAsyncDisposable
{
    // How long a lock check waits for the broker before it counts the lock as lost.
    private static readonly TimeSpan HoldCheckTimeout = TimeSpan.FromSeconds(10);

    private readonly PriorityQueue<Delivery, long> _ready = new();
    // Every super-batch the feed holds (ready or taken) by id: a second delivery of one (a duplicate
    // copy routed by two replicas' routers) is never a second batch.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, Delivery> _held = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _available = new(0);
    private readonly TaskCompletionSource _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly BrokerConnections _connections;
    private readonly SessionStore _store;
    private readonly ConfirmedPublisher _publisher;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _lost = new();
    private IConnection? _holding;
    private IChannel? _channel;
    private volatile bool _disposing;
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

    /// <summary>Cancelled when the feed's channel closed under it (its connection lost, a broker node gone): the job is no longer held.</summary>
    public CancellationToken Lost => _lost.Token;

    /// <summary>True once the feed lost its channel.</summary>
    public bool IsLost => _lost.IsCancellationRequested;

    /// <summary>The stream offset of this replica's takeover marker for the job: every batch it records carries it.</summary>
    public long Fence { get; internal set; }

    /// <summary>
    /// Asks the broker, over the holding connection, whether the job's lock is still this feed's.
    /// Called after a batch's record is confirmed and before the batch is sent: an answer that
    /// comes back means no other replica had taken the job when the record was already in the
    /// log, so no takeover marker (and no fence) can follow it. No answer (the connection or its
    /// node is gone, or the broker did not answer in time) ends the feed and releases the lock.
    /// </summary>
    /// <param name="recorded">What was just recorded and waits to be sent (named in the error).</param>
    /// <param name="cancellationToken">Cancels the check (the lock then counts as unconfirmed).</param>
    /// <exception cref="SelectionException">UNAVAILABLE when the lock is not confirmed.</exception>
    internal async Task ConfirmHeldAsync(string recorded, CancellationToken cancellationToken)
    {
        var channel = _channel ?? throw new InvalidOperationException($"job {Job}'s feed was not started.");
        string reason;
        try
        {
            if (!_lost.IsCancellationRequested)
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(HoldCheckTimeout);
                await channel.QueueDeclarePassiveAsync(_connections.Topology.JobHolder(Job), timeout.Token);
                return;
            }
            reason = "its channel closed";
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException
            or IOException or OperationCanceledException or TimeoutException)
        {
            cancellationToken.ThrowIfCancellationRequested();
            reason = ex.Message;
        }
        await ReleaseAsync(reason);
        throw SelectionException.Unavailable(
            $"this replica could not confirm it still holds job {ClientText.Quote(Job)} ({reason}); {recorded} was recorded but not sent: resume (or open again), the batch log decides what counts.");
    }

    /// <summary>Ends the feed after a failed lock check: its sessions end, and the lock goes to whichever replica takes the job next (this one included).</summary>
    private async Task ReleaseAsync(string reason)
    {
        if (!_lost.IsCancellationRequested)
        {
            LogLost(_logger, Job, reason);
            _lost.Cancel();
        }
        try
        {
            // What the feed holds unacked goes back to the job's queue for the next holder.
            await _channel!.CloseAsync();
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException or IOException)
        {
            // Closed already, with its connection.
        }
        try
        {
            // While the holding connection lives the lock is still this replica's: delete it, so the
            // job is not stuck here. (Refused when another connection holds it: then it is not ours.)
            if (_holding is not { IsOpen: true } connection)
            {
                return;
            }
            await using var channel = await connection.CreateChannelAsync();
            await channel.QueueDeleteAsync(_connections.Topology.JobHolder(Job), ifUnused: false, ifEmpty: false);
        }
        catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.OperationInterruptedException or RabbitMQ.Client.Exceptions.AlreadyClosedException
            or IOException or OperationCanceledException)
        {
            // Gone with its connection, or held by another connection: either way not ours.
        }
    }

    /// <summary>
    /// Takes the job's lock and consumes its queue on the holding connection.
    /// </summary>
    /// <exception cref="RabbitMQ.Client.Exceptions.OperationInterruptedException">RESOURCE_LOCKED (405) when another replica holds the job.</exception>
    internal async Task StartAsync(int prefetch, CancellationToken cancellationToken)
    {
        var connection = await _connections.HoldingConnectionAsync(cancellationToken);
        _holding = connection;
        _channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        // One replica at a time consumes a job's queue, so a job is never split between replicas:
        // the lock is an exclusive queue of this connection (another replica's declare is refused
        // with RESOURCE_LOCKED until this connection is gone). Quorum queues ignore exclusive
        // consumers, and single-active-consumer would not tell a replica whether it is the active one.
        await _channel.QueueDeclareAsync(_connections.Topology.JobHolder(Job), durable: false, exclusive: true, autoDelete: false,
            cancellationToken: cancellationToken);
        _channel.ChannelShutdownAsync += (_, args) =>
        {
            if (!_disposing)
            {
                // Never recovered: what it held is free for another replica now; the feed's sessions end.
                LogLost(_logger, Job, args.ReplyText);
                _lost.Cancel();
            }
            return Task.CompletedTask;
        };
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
        var fresh = new Delivery(this, channel, delivery.DeliveryTag, messageId, batch, producer, Interlocked.Increment(ref _arrivals));
        var held = _held.GetOrAdd(batch.Id, fresh);
        if (!ReferenceEquals(held, fresh))
        {
            // Held already (a second copy of the super-batch): the held one acks this delivery's tag
            // from now on and the older tag is acked now, so each copy is acked once.
            var ackNow = held.TryRebind(delivery.DeliveryTag, out var older) ? older : delivery.DeliveryTag;
            LogDuplicate(_logger, batch.Id, Job);
            await channel.BasicAckAsync(ackNow, multiple: false);
            return;
        }
        LastSuperBatchSize = batch.Examples.Count;
        LastReferenceSha256 = batch.ReferenceCheckpointSha256;
        Enqueue(fresh);
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
    /// <exception cref="SelectionException">UNAVAILABLE once the feed is lost (the session resumes wherever the job is held next).</exception>
    public async ValueTask<Delivery> TakeAsync(CancellationToken cancellationToken)
    {
        using var either = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _lost.Token);
        while (true)
        {
            try
            {
                await _available.WaitAsync(either.Token);
            }
            catch (OperationCanceledException) when (_lost.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw LostError();
            }
            if (_lost.IsCancellationRequested)
            {
                // What is still ready went back to the queue with the channel: another feed may have it now.
                throw LostError();
            }
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

    private SelectionException LostError() =>
        SelectionException.Unavailable($"this replica lost job {ClientText.Quote(Job)}'s feed (its broker connection closed); resume the session: the job is taken again by the next open.");

    /// <summary>Acks a super-batch whose batch is recorded (once: a second ack would close the channel).</summary>
    public async Task AckAsync(Delivery delivery)
    {
        ArgumentNullException.ThrowIfNull(delivery);
        if (!delivery.TryFinish(out var tag))
        {
            LogNotOwned(_logger, "ack", delivery.MessageId, Job);
            return;
        }
        // Recorded (or found recorded): later deliveries of it are recognised by the store.
        _held.TryRemove(new KeyValuePair<string, Delivery>(delivery.Batch.Id, delivery));
        try
        {
            await delivery.Channel.BasicAckAsync(tag, multiple: false);
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
        _disposing = true;
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
        _lost.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Super-batch {SuperBatchId} of job {Job} was already recorded or is held; acked without effect")]
    private static partial void LogDuplicate(ILogger logger, string superBatchId, string job);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {Job}'s feed lost its channel ({Reason}); its sessions end and the next open takes the job again")]
    private static partial void LogLost(ILogger logger, string job, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ack of {MessageId} lost ({Reason}); the redelivery will be recognised as recorded")]
    private static partial void LogAckLost(ILogger logger, string messageId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Refused to {Action} super-batch {MessageId} of job {Job}: the caller does not own it (a bug)")]
    private static partial void LogNotOwned(ILogger logger, string action, string messageId, string job);
}
