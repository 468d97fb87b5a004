using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace JestMesh.Messaging;

/// <summary>One delivery as a handler sees it: the body is a private copy, safe to keep.</summary>
public sealed record ReceivedMessage(
    string Queue,
    string MessageId,
    ReadOnlyMemory<byte> Body,
    IReadOnlyDictionary<string, object?> Headers,
    bool Redelivered,
    ActivityContext ProducerContext);

/// <summary>
/// Consumes a queue with manual acks. A delivery is acked only after its handler returned, and a
/// handler returns only after its downstream publish was confirmed; so a crash at any point leaves
/// the message in the queue. Failures:
/// <list type="bullet">
/// <item>The handler throws <see cref="PoisonMessageException"/>: the message is republished to the
/// dead-letter exchange with the reason in the <c>x-jestmesh-reason</c> header, then acked.</item>
/// <item>Any other exception is taken as transient: after a short delay the message is returned to
/// the queue; at the last delivery the queue allows, it is dead-lettered the same way with the error.</item>
/// </list>
/// Why republish instead of reject(requeue: false): a quorum queue does dead-letter a rejected
/// message, but only with the broker's x-death header, which cannot carry our reason. Republishing
/// is confirmed before the ack, so a crash in between yields at most a duplicate in the dead-letter
/// queue (same message id), never a loss.
/// A message id already processed (redelivery after a lost ack, a republished duplicate) is acked
/// without calling the handler.
/// </summary>
public sealed partial class AckingConsumer : IAsyncDisposable
{
    private readonly BrokerConnections _connections;
    private readonly ConfirmedPublisher _deadLetterPublisher;
    private readonly DeduplicationSet _processed;
    private readonly ILogger<AckingConsumer> _logger;
    private IChannel? _channel;
    private string? _consumerTag;
    private string _queue = "";
    private Func<ReceivedMessage, CancellationToken, Task>? _handler;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, Task> _inFlight = new(StringComparer.Ordinal);

    public AckingConsumer(BrokerConnections connections, ConfirmedPublisher deadLetterPublisher, ILogger<AckingConsumer> logger)
        : this(connections, deadLetterPublisher, new DeduplicationSet(connections?.Options.DeduplicationCapacity ?? 1), logger)
    {
    }

    public AckingConsumer(BrokerConnections connections, ConfirmedPublisher deadLetterPublisher, DeduplicationSet processed, ILogger<AckingConsumer> logger)
    {
        ArgumentNullException.ThrowIfNull(connections);
        _connections = connections;
        _deadLetterPublisher = deadLetterPublisher;
        _processed = processed;
        _logger = logger;
    }

    /// <summary>Deliveries acked without effect because their id was already processed.</summary>
    public long DuplicatesDropped => Interlocked.Read(ref _duplicatesDropped);

    private long _duplicatesDropped;

    /// <summary>Ids this consumer has processed (its dedup window).</summary>
    public DeduplicationSet Processed => _processed;

    /// <summary>Starts consuming <paramref name="queue"/>; up to Messaging:ConsumerConcurrency deliveries run at once.</summary>
    public async Task StartAsync(string queue, Func<ReceivedMessage, CancellationToken, Task> handler, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(queue);
        ArgumentNullException.ThrowIfNull(handler);
        if (_channel is not null)
        {
            throw new InvalidOperationException($"This consumer already consumes '{_queue}'.");
        }
        _queue = queue;
        _handler = handler;
        var connection = await _connections.ConsumeConnectionAsync(cancellationToken);
        _channel = await connection.CreateChannelAsync(
            new CreateChannelOptions(
                publisherConfirmationsEnabled: false,
                publisherConfirmationTrackingEnabled: false,
                consumerDispatchConcurrency: (ushort)_connections.Options.ConsumerConcurrency),
            cancellationToken);
        await _channel.BasicQosAsync(0, (ushort)_connections.Options.Prefetch, global: false, cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(_channel);
        consumer.ReceivedAsync += OnReceivedAsync;
        _consumerTag = await _channel.BasicConsumeAsync(queue, autoAck: false, consumer, cancellationToken);
        LogStarted(_logger, queue, _connections.Options.Prefetch);
    }

    private async Task OnReceivedAsync(object sender, BasicDeliverEventArgs delivery)
    {
        var channel = _channel!;
        var stopping = _stopping.Token;
        // The delivery's memory is only valid during this callback: copy it once.
        var body = delivery.Body.ToArray();
        var headers = delivery.BasicProperties.Headers is { } h
            ? new Dictionary<string, object?>(h)
            : new Dictionary<string, object?>();
        var producer = MessagingTelemetry.Extract(headers).ActivityContext;
        var messageId = delivery.BasicProperties.MessageId;

        // Parent = the producer's context (one trace per super-batch), and a link to it as the
        // messaging conventions ask for consumers.
        using var activity = MessagingTelemetry.Source.StartActivity(
            $"process {_queue}", ActivityKind.Consumer, producer,
            links: producer == default ? null : [new ActivityLink(producer)]);
        activity?.SetTag("messaging.system", "rabbitmq");
        activity?.SetTag("messaging.operation.type", "process");
        activity?.SetTag("messaging.destination.name", _queue);
        activity?.SetTag("messaging.message.id", messageId);
        activity?.SetTag("messaging.rabbitmq.message.delivery_tag", delivery.DeliveryTag);
        var started = Stopwatch.GetTimestamp();

        if (string.IsNullOrEmpty(messageId))
        {
            await DeadLetterAndAckAsync(channel, delivery, $"missing-id-{Guid.NewGuid():N}", body, headers, "message has no message id", activity, stopping);
            return;
        }
        // Several deliveries may run at once (ConsumerConcurrency): a second delivery of an id that
        // is being processed waits for the first, then counts as a duplicate if it succeeded.
        var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        while (true)
        {
            if (_processed.Contains(messageId))
            {
                MessagingTelemetry.Duplicates.Add(1);
                Interlocked.Increment(ref _duplicatesDropped);
                activity?.SetTag("jestmesh.duplicate", true);
                LogDuplicate(_logger, messageId, _queue);
                await AckAsync(channel, delivery.DeliveryTag, messageId, stopping);
                return;
            }
            if (_inFlight.TryAdd(messageId, mine.Task))
            {
                break;
            }
            if (_inFlight.TryGetValue(messageId, out var other))
            {
                await other;
            }
        }

        try
        {
            var message = new ReceivedMessage(_queue, messageId, body, headers, delivery.Redelivered, producer);
            try
            {
                await _handler!(message, stopping);
            }
            catch (PoisonMessageException ex)
            {
                await DeadLetterAndAckAsync(channel, delivery, messageId, body, headers, ex.Message, activity, stopping);
                return;
            }
            catch (OperationCanceledException) when (stopping.IsCancellationRequested)
            {
                // Shutting down: leave the message unacked; the broker redelivers it.
                return;
            }
#pragma warning disable CA1031 // A consumer must survive any handler failure and decide the message's fate.
            catch (Exception ex)
#pragma warning restore CA1031
            {
                var deliveries = DeliveryCount(headers) + 1;
                activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
                if (deliveries >= _connections.Options.DeliveryLimit)
                {
                    await DeadLetterAndAckAsync(channel, delivery, messageId, body, headers,
                        $"failed {deliveries} times; last error: {ex.GetType().Name}: {ex.Message}", activity, stopping);
                    return;
                }
                LogTransientFailure(_logger, ex, messageId, _queue, deliveries);
                try
                {
                    await Task.Delay(_connections.Options.RetryDelay, stopping);
                    await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true, stopping);
                }
                catch (Exception nackError) when (ConfirmedPublisher.IsConnectionFailure(nackError) || nackError is OperationCanceledException)
                {
                    // The channel is gone: the broker requeues the message by itself.
                }
                return;
            }

            _processed.Add(messageId);
            MessagingTelemetry.Consumed.Add(1);
            MessagingTelemetry.ProcessDuration.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            await AckAsync(channel, delivery.DeliveryTag, messageId, stopping);
        }
        finally
        {
            _inFlight.TryRemove(messageId, out _);
            mine.SetResult();
        }
    }

    private async Task DeadLetterAndAckAsync(IChannel channel, BasicDeliverEventArgs delivery, string messageId, byte[] body,
        Dictionary<string, object?> headers, string reason, Activity? activity, CancellationToken cancellationToken)
    {
        activity?.SetStatus(ActivityStatusCode.Error, reason);
        activity?.SetTag("jestmesh.dead_letter.reason", reason);
        LogDeadLetter(_logger, messageId, _queue, reason);
        var deadHeaders = new Dictionary<string, object?>(headers)
        {
            [QueueTopology.ReasonHeader] = reason,
            [QueueTopology.SourceQueueHeader] = _queue,
        };
        try
        {
            await _deadLetterPublisher.PublishAsync(
                new OutgoingMessage(_connections.Topology.DeadLetter, _queue, messageId, body)
                {
                    Type = delivery.BasicProperties.Type,
                    Headers = deadHeaders,
                },
                cancellationToken);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return;
        }
        catch (PublishRejectedException ex)
        {
            // The dead-letter queue refused it: keep the message where it is and try again later.
            LogDeadLetterFailed(_logger, ex, messageId);
            try
            {
                await Task.Delay(_connections.Options.RetryDelay, cancellationToken);
                await channel.BasicNackAsync(delivery.DeliveryTag, multiple: false, requeue: true, cancellationToken);
            }
            catch (Exception nackError) when (ConfirmedPublisher.IsConnectionFailure(nackError) || nackError is OperationCanceledException)
            {
                // The channel is gone: the broker requeues the message by itself.
            }
            return;
        }
        MessagingTelemetry.DeadLettered.Add(1);
        _processed.Add(messageId);
        await AckAsync(channel, delivery.DeliveryTag, messageId, cancellationToken);
    }

    private async Task AckAsync(IChannel channel, ulong deliveryTag, string messageId, CancellationToken cancellationToken)
    {
        try
        {
            await channel.BasicAckAsync(deliveryTag, multiple: false, cancellationToken);
        }
        catch (Exception ex) when (ConfirmedPublisher.IsConnectionFailure(ex) || ex is OperationCanceledException)
        {
            // The ack is lost with the channel: the broker will redeliver, and the dedup set
            // (the id is already recorded) turns the redelivery into a plain ack.
            LogAckLost(_logger, messageId, ex.Message);
        }
    }

    /// <summary>Earlier deliveries of this message, from the quorum queue's x-delivery-count header.</summary>
    private static long DeliveryCount(Dictionary<string, object?> headers) =>
        headers.TryGetValue("x-delivery-count", out var value) && value is not null
            ? Convert.ToInt64(value, System.Globalization.CultureInfo.InvariantCulture)
            : 0;

    /// <summary>Cancels the consumer; unacked deliveries go back to the queue.</summary>
    public async Task StopAsync()
    {
        await _stopping.CancelAsync();
        if (_channel is { IsOpen: true } channel && _consumerTag is not null)
        {
            try
            {
                await channel.BasicCancelAsync(_consumerTag);
            }
            catch (Exception ex) when (ConfirmedPublisher.IsConnectionFailure(ex))
            {
                // Gone already.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_channel is not null)
        {
            try
            {
                await _channel.CloseAsync();
            }
            catch (Exception ex) when (ConfirmedPublisher.IsConnectionFailure(ex))
            {
                // Gone already.
            }
            await _channel.DisposeAsync();
        }
        _stopping.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Consuming {Queue} with prefetch {Prefetch}")]
    private static partial void LogStarted(ILogger logger, string queue, int prefetch);

    [LoggerMessage(Level = LogLevel.Information, Message = "Duplicate {MessageId} on {Queue} acked without effect")]
    private static partial void LogDuplicate(ILogger logger, string messageId, string queue);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message {MessageId} from {Queue} dead-lettered: {Reason}")]
    private static partial void LogDeadLetter(ILogger logger, string messageId, string queue, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Message {MessageId} from {Queue} failed (delivery {Delivery}); returning it to the queue")]
    private static partial void LogTransientFailure(ILogger logger, Exception exception, string messageId, string queue, long delivery);

    [LoggerMessage(Level = LogLevel.Error, Message = "Dead-lettering {MessageId} failed; returning it to the queue")]
    private static partial void LogDeadLetterFailed(ILogger logger, Exception exception, string messageId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ack of {MessageId} lost ({Reason}); the redelivery will be deduplicated")]
    private static partial void LogAckLost(ILogger logger, string messageId, string reason);
}
