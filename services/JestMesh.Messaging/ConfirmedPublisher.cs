using System.Diagnostics;
using Microsoft.Extensions.Logging;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace JestMesh.Messaging;

/// <summary>One message to publish: where to, its id (the dedup key downstream), body and extra headers.</summary>
public sealed record OutgoingMessage(string Exchange, string RoutingKey, string MessageId, ReadOnlyMemory<byte> Body)
{
    /// <summary>AMQP type property (e.g. "jestmesh.v1.SuperBatch").</summary>
    public string? Type { get; init; }

    /// <summary>Extra headers; trace context is added by the publisher.</summary>
    public IReadOnlyDictionary<string, object?>? Headers { get; init; }

    /// <summary>Context to propagate when no producer span is recorded (defaults to Activity.Current).</summary>
    public ActivityContext? ParentContext { get; init; }

    /// <summary>A message for a queue, through the default exchange.</summary>
    public static OutgoingMessage ToQueue(string queue, string messageId, ReadOnlyMemory<byte> body) => new("", queue, messageId, body);
}

/// <summary>
/// Publishes persistent messages and returns only once the broker confirmed them. Confirms are
/// tracked by the client, and outstanding confirms are bounded (a publisher past the bound waits).
/// A publish that meets a dead channel (broker restart) is retried with the same message id until
/// it is confirmed, so delivery is at-least-once and consumers deduplicate; so is one whose confirm
/// does not come within Messaging:ConfirmTimeout (on a new channel).
/// </summary>
public sealed partial class ConfirmedPublisher : IAsyncDisposable
{
    private readonly BrokerConnections _connections;
    private readonly ILogger<ConfirmedPublisher> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IChannel? _channel;

    public ConfirmedPublisher(BrokerConnections connections, ILogger<ConfirmedPublisher> logger)
    {
        _connections = connections;
        _logger = logger;
    }

    /// <summary>
    /// Publishes and awaits the broker's confirm. Throws <see cref="PublishRejectedException"/> when
    /// the broker nacks (queue full under reject-publish): the caller decides when to try again.
    /// </summary>
    public async Task PublishAsync(OutgoingMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentException.ThrowIfNullOrEmpty(message.MessageId, nameof(message.MessageId));
        var destination = message.Exchange.Length > 0 ? message.Exchange : message.RoutingKey;
        using var activity = MessagingTelemetry.Source.StartActivity($"publish {destination}", ActivityKind.Producer);
        activity?.SetTag("messaging.system", "rabbitmq");
        activity?.SetTag("messaging.operation.type", "send");
        activity?.SetTag("messaging.destination.name", destination);
        activity?.SetTag("messaging.message.id", message.MessageId);
        activity?.SetTag("messaging.message.body.size", message.Body.Length);

        var headers = message.Headers is null
            ? new Dictionary<string, object?>()
            : new Dictionary<string, object?>(message.Headers);
        var context = activity?.Context ?? message.ParentContext ?? Activity.Current?.Context ?? default;
        MessagingTelemetry.Inject(context, headers);
        var properties = new BasicProperties
        {
            Persistent = true,
            MessageId = message.MessageId,
            ContentType = "application/x-protobuf",
            Type = message.Type,
            Timestamp = new AmqpTimestamp(DateTimeOffset.UtcNow.ToUnixTimeSeconds()),
            Headers = headers,
        };

        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(_connections.Options.ConfirmTimeout);
            IChannel? channel = null;
            try
            {
                channel = await ChannelAsync(deadline.Token);
                // mandatory: an unroutable message (queue missing) is an error, not a silent drop.
                await channel.BasicPublishAsync(message.Exchange, message.RoutingKey, mandatory: true, properties, message.Body, deadline.Token);
                MessagingTelemetry.Published.Add(1);
                return;
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                // No confirm in time: the broker node may have died with it, or the client lost track
                // of it in a recovery. Publishing again on a new channel is safe (same id, consumers
                // drop duplicates); waiting on is not, as that confirm may never come.
                MessagingTelemetry.ConfirmTimeouts.Add(1, new KeyValuePair<string, object?>("messaging.destination.name", destination));
                LogConfirmTimeout(_logger, message.MessageId, destination, _connections.Options.ConfirmTimeout.TotalSeconds);
                activity?.AddEvent(new ActivityEvent("confirm timeout"));
                await AbandonAsync(channel);
            }
            catch (PublishReturnException ex)
            {
                activity?.SetStatus(ActivityStatusCode.Error, "unroutable");
                throw new PublishUnroutableException(
                    $"Message {message.MessageId} to exchange '{message.Exchange}' with routing key '{message.RoutingKey}' was returned unroutable ({ex.ReplyText}): is the topology declared?", ex);
            }
            catch (PublishException ex) when (!ex.IsReturn)
            {
                MessagingTelemetry.PublishNacks.Add(1);
                activity?.SetStatus(ActivityStatusCode.Error, "nack");
                throw new PublishRejectedException($"The broker refused message {message.MessageId} for '{destination}' (negative confirm; the queue is full or unavailable).", ex);
            }
            catch (Exception ex) when (IsConnectionFailure(ex) && !cancellationToken.IsCancellationRequested)
            {
                // The confirm may or may not have been written: publishing again with the same id
                // is safe because consumers drop duplicates.
                LogPublishRetry(_logger, message.MessageId, ex.Message);
                activity?.AddEvent(new ActivityEvent("retry"));
                await Task.Delay(_connections.Options.RecoveryInterval, cancellationToken);
            }
        }
    }

    /// <summary>
    /// Stops using <paramref name="channel"/> (the next publish opens a new one) and closes it in the
    /// background, as closing a channel whose confirms hang can hang too.
    /// </summary>
    private async Task AbandonAsync(IChannel? channel)
    {
        if (channel is null)
        {
            return;
        }
        await _gate.WaitAsync(CancellationToken.None);
        try
        {
            if (ReferenceEquals(_channel, channel))
            {
                _channel = null;
            }
        }
        finally
        {
            _gate.Release();
        }
        _ = CloseQuietlyAsync(channel);
    }

    private static async Task CloseQuietlyAsync(IChannel channel)
    {
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await channel.CloseAsync(Constants.ReplySuccess, "confirm timeout", abort: true, timeout.Token);
        }
        catch (Exception ex) when (IsConnectionFailure(ex) || ex is OperationCanceledException)
        {
            // Gone already, or as stuck as its confirms: dropped either way.
        }
        try
        {
            await channel.DisposeAsync();
        }
        catch (Exception ex) when (IsConnectionFailure(ex) || ex is OperationCanceledException)
        {
            // As above.
        }
    }

    /// <summary>True for the exceptions a lost broker connection or channel throws (worth a retry once it recovers).</summary>
    public static bool IsConnectionFailure(Exception ex) =>
        ex is AlreadyClosedException or OperationInterruptedException or IOException or ObjectDisposedException
        || (ex is TaskCanceledException && ex.InnerException is not null);

    private async Task<IChannel> ChannelAsync(CancellationToken cancellationToken)
    {
        var channel = _channel;
        if (channel is { IsClosed: false })
        {
            return channel;
        }
        await _gate.WaitAsync(cancellationToken);
        try
        {
            if (_channel is { IsClosed: false })
            {
                return _channel;
            }
            var connection = await _connections.PublishConnectionAsync(cancellationToken);
            if (_channel is not null && connection.IsOpen)
            {
                // Closed by the broker (a channel-level error), not by a connection loss that
                // recovery would repair: replace it.
                await _channel.DisposeAsync();
                _channel = null;
            }
            if (_channel is null)
            {
                var options = new CreateChannelOptions(
                    publisherConfirmationsEnabled: true,
                    publisherConfirmationTrackingEnabled: true,
                    outstandingPublisherConfirmationsRateLimiter: new ThrottlingRateLimiter(_connections.Options.MaxOutstandingConfirms));
                _channel = await connection.CreateChannelAsync(options, cancellationToken);
            }
            return _channel;
        }
        finally
        {
            _gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_channel is not null)
        {
            try
            {
                await _channel.CloseAsync();
            }
            catch (Exception ex) when (IsConnectionFailure(ex))
            {
                // Already gone with its connection.
            }
            await _channel.DisposeAsync();
        }
        _gate.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publish of {MessageId} to {Destination} had no confirm within {Seconds} s (Messaging:ConfirmTimeout); publishing it again on a new channel")]
    private static partial void LogConfirmTimeout(ILogger logger, string messageId, string destination, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Publish of {MessageId} met a closed channel ({Reason}); retrying after recovery")]
    private static partial void LogPublishRetry(ILogger logger, string messageId, string reason);
}
