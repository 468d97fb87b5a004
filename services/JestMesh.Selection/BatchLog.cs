using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Google.Protobuf;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Options;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;

namespace JestMesh.Selection;

/// <summary>
/// A read of the batch log that can go on no more: the broker cancelled its consumer (the stream
/// member it read from was lost, or the stream deleted) or its channel closed. Reading again from the
/// last offset read is the remedy; a read that just stopped delivering would wait for ever.
/// </summary>
public sealed class BatchLogReadInterruptedException(string message) : IOException(message);

/// <summary>A record of the batch log with its offset in the stream.</summary>
public readonly record struct LoggedRecord(long Offset, SelectionLogRecord Record);

/// <summary>
/// The durable batch log: a RabbitMQ stream (append-only, replicated, readable from any offset or
/// time by any number of readers, retained by age). Appends are confirmed publishes, so a record
/// is on disk before the batch it describes is sent.
/// </summary>
public sealed class BatchLog
{
    private readonly BrokerConnections _connections;
    private readonly ConfirmedPublisher _publisher;
    private readonly SelectionOptions _options;

    /// <summary>How long the stream keeps a record (Selection:LogMaxAge).</summary>
    public TimeSpan MaxAge { get; }

    public BatchLog(BrokerConnections connections, ConfirmedPublisher publisher, IOptions<SelectionOptions> options)
    {
        ArgumentNullException.ThrowIfNull(connections);
        ArgumentNullException.ThrowIfNull(options);
        _connections = connections;
        _publisher = publisher;
        _options = options.Value;
        Name = string.IsNullOrEmpty(_options.LogStream) ? $"{connections.Options.QueuePrefix}.selection.log" : _options.LogStream;
        MaxAge = RecordedSuperBatches.ParseMaxAge(_options.LogMaxAge);
    }

    /// <summary>The stream's name.</summary>
    public string Name { get; }

    public async Task DeclareAsync(CancellationToken cancellationToken)
    {
        var connection = await _connections.PublishConnectionAsync(cancellationToken);
        await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Name, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "stream", ["x-max-age"] = _options.LogMaxAge },
            cancellationToken: cancellationToken);
    }

    /// <summary>Appends one record and returns once the broker confirmed it (persisted).</summary>
    public Task AppendAsync(SelectionLogRecord record, string messageId, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        return _publisher.PublishAsync(
            OutgoingMessage.ToQueue(Name, messageId, record.ToByteArray()) with { Type = SelectionLogRecord.Descriptor.FullName },
            cancellationToken);
    }

    private static async Task<LoggedRecord> NextAsync(ChannelReader<LoggedRecord> reader, CancellationToken cancellationToken)
    {
        try
        {
            return await reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException ex) when (ex.InnerException is BatchLogReadInterruptedException interrupted)
        {
            throw new BatchLogReadInterruptedException(interrupted.Message);
        }
    }

    /// <summary>
    /// Reads records from <paramref name="offset"/> ("first", a numeric offset or an
    /// <see cref="AmqpTimestamp"/>) until the caller stops enumerating.
    /// </summary>
    /// <exception cref="BatchLogReadInterruptedException">The broker ended the read (its records so far were all returned).</exception>
    public async IAsyncEnumerable<LoggedRecord> ReadAsync(object offset, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var connection = await _connections.ConsumeConnectionAsync(cancellationToken);
        var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
        // Bounded: the consumer's dispatch waits for the reader, and the stream's credit (prefetch) stops the broker.
        var records = Channel.CreateBounded<LoggedRecord>(new BoundedChannelOptions(64) { SingleReader = true, SingleWriter = true });
        try
        {
            // Stream consumers need a prefetch: it is their flow-control credit.
            await channel.BasicQosAsync(0, 64, global: false, cancellationToken);
            var consumer = new AsyncEventingBasicConsumer(channel);
            consumer.ReceivedAsync += async (_, delivery) =>
            {
                var record = SelectionLogRecord.Parser.ParseFrom(delivery.Body.Span);
                // Every stream delivery carries its offset: where a later read goes on from.
                var offset = delivery.BasicProperties.Headers?.TryGetValue("x-stream-offset", out var o) == true && o is not null
                    ? Convert.ToInt64(o, System.Globalization.CultureInfo.InvariantCulture)
                    : -1;
                await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false, cancellationToken);
                try
                {
                    await records.Writer.WriteAsync(new LoggedRecord(offset, record), cancellationToken);
                }
                catch (ChannelClosedException)
                {
                    // The read was interrupted meanwhile: its reader reads again from its last offset.
                }
            };
            // Either ends the deliveries for good: the reader must hear of it, not wait for ever.
            consumer.UnregisteredAsync += (_, _) =>
            {
                records.Writer.TryComplete(new BatchLogReadInterruptedException($"the broker cancelled the read of batch log {Name} (a stream member lost, or the stream deleted)"));
                return Task.CompletedTask;
            };
            consumer.ShutdownAsync += (_, args) =>
            {
                records.Writer.TryComplete(new BatchLogReadInterruptedException($"the read of batch log {Name} lost its channel ({args.ReplyText})"));
                return Task.CompletedTask;
            };
            await channel.BasicConsumeAsync(Name, autoAck: false, consumerTag: "", noLocal: false, exclusive: false,
                arguments: new Dictionary<string, object?> { ["x-stream-offset"] = offset }, consumer, cancellationToken);
            while (true)
            {
                yield return await NextAsync(records.Reader, cancellationToken);
            }
        }
        finally
        {
            try
            {
                await channel.CloseAsync(CancellationToken.None);
            }
            catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.AlreadyClosedException or OperationCanceledException or IOException)
            {
                // Closed with its connection already.
            }
            await channel.DisposeAsync();
        }
    }
}
