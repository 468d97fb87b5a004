using System.Text;
using System.Threading.Channels;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using RabbitMQ.Client;
using RabbitMQ.Client.Events;
using RabbitMQ.Client.Exceptions;

namespace JestMesh.Cli.Demo;

/// <summary>Depth of one queue (ready messages) and how many consumers it has.</summary>
internal readonly record struct QueueDepth(string Queue, uint Messages, uint Consumers);

/// <summary>A message taken off the dead-letter queue: its job, super-batch id and examples.</summary>
internal readonly record struct DeadLetter(string Job, string SuperBatchId, int Examples);

/// <summary>One curated batch as the Selection service recorded it in its durable log.</summary>
internal sealed record LoggedBatch(string Job, string SessionId, long Sequence, string SuperBatchId, int Selected, int Swapped, int Filtered, double SelectionMs, bool DistinctIds);

/// <summary>
/// The demo's own view of the broker: queue depths by passive declare (the management API is not
/// enabled), the dead-letter queue's contents, and the Selection service's batch log (a stream).
/// </summary>
internal sealed class BrokerProbe : IAsyncDisposable
{
    private readonly IConnection _connection;

    private BrokerProbe(IConnection connection) => _connection = connection;

    public static async Task<BrokerProbe> ConnectAsync(string uri, CancellationToken cancellationToken)
    {
        var address = BrokerAddress.Parse(uri);
        var factory = new ConnectionFactory { Uri = address.Primary, ClientProvidedName = "jestmesh-demo", NetworkRecoveryInterval = TimeSpan.FromSeconds(1) };
        return new BrokerProbe(await factory.CreateConnectionAsync(address.Endpoints, cancellationToken));
    }

    /// <summary>Depth of <paramref name="queue"/>, or null while it does not exist.</summary>
    public async Task<QueueDepth?> DepthAsync(string queue, CancellationToken cancellationToken)
    {
        // A passive declare of a missing queue closes its channel: one short-lived channel per probe.
        await using var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        try
        {
            var ok = await channel.QueueDeclarePassiveAsync(queue, cancellationToken);
            return new QueueDepth(queue, ok.MessageCount, ok.ConsumerCount);
        }
        catch (OperationInterruptedException)
        {
            return null;
        }
    }

    /// <summary>Takes every message off the dead-letter queue; returns the examples they held, per job.</summary>
    public async Task<Dictionary<string, long>> DrainDeadLettersAsync(string queue, CancellationToken cancellationToken) =>
        (await DrainDeadLetterRecordsAsync(queue, cancellationToken)).GroupBy(d => d.Job).ToDictionary(g => g.Key, g => g.Sum(d => (long)d.Examples));

    /// <summary>Takes every message off the dead-letter queue; returns each one's job, super-batch id and example count.</summary>
    public async Task<List<DeadLetter>> DrainDeadLetterRecordsAsync(string queue, CancellationToken cancellationToken)
    {
        var drained = new List<DeadLetter>();
        await using var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        while (await channel.BasicGetAsync(queue, autoAck: true, cancellationToken) is { } message)
        {
            // Super-batches and scored super-batches share the layout of what we read: 1 = id, 2 = job, 4 = examples.
            string id = "", job = "";
            var examples = 0;
            foreach (var f in ProtoWire.Fields(message.Body.ToArray()))
            {
                if (f.Number == 1 && f.WireType == 2)
                {
                    id = Encoding.UTF8.GetString(f.Bytes.Span);
                }
                else if (f.Number == 2 && f.WireType == 2)
                {
                    job = Encoding.UTF8.GetString(f.Bytes.Span);
                }
                else if (f.Number == 4 && f.WireType == 2)
                {
                    examples++;
                }
            }

            drained.Add(new DeadLetter(job, id, examples));
        }

        return drained;
    }

    /// <summary>
    /// Follows the batch log from its current end ("next"): every batch recorded from now on for any job;
    /// with <paramref name="since"/>, from the records appended since then (at the stream's chunk granularity:
    /// some earlier ones may come too). Dispose the returned reader to stop.
    /// </summary>
    public async Task<BatchLogReader> FollowLogAsync(string stream, CancellationToken cancellationToken, DateTimeOffset? since = null)
    {
        var channel = await _connection.CreateChannelAsync(cancellationToken: cancellationToken);
        var reader = new BatchLogReader(channel);
        // Stream consumers need a prefetch: it is their flow-control credit.
        await channel.BasicQosAsync(0, 256, global: false, cancellationToken);
        var consumer = new AsyncEventingBasicConsumer(channel);
        consumer.ReceivedAsync += async (_, delivery) =>
        {
            reader.Add(delivery.Body);
            await channel.BasicAckAsync(delivery.DeliveryTag, multiple: false, cancellationToken);
        };
        await channel.BasicConsumeAsync(stream, autoAck: false, consumerTag: "", noLocal: false, exclusive: false,
            arguments: new Dictionary<string, object?> { ["x-stream-offset"] = since is { } t ? (object)new AmqpTimestamp(t.ToUnixTimeSeconds()) : "next" }, consumer, cancellationToken);
        return reader;
    }

    public async ValueTask DisposeAsync()
    {
        await _connection.CloseAsync();
        _connection.Dispose();
    }
}

/// <summary>The batches a <see cref="BrokerProbe.FollowLogAsync"/> consumer has read so far, first record per (session, sequence).</summary>
internal sealed class BatchLogReader(IChannel channel) : IAsyncDisposable
{
    private readonly Dictionary<(string, long), LoggedBatch> _batches = [];
    private readonly object _gate = new();
    private readonly Channel<int> _changed = Channel.CreateUnbounded<int>();

    internal void Add(ReadOnlyMemory<byte> record)
    {
        // SelectionLogRecord{2: CuratedBatch batch, 4: string job}; sessions and markers are skipped.
        string job = "";
        CuratedBatch? batch = null;
        foreach (var f in ProtoWire.Fields(record.ToArray()))
        {
            if (f.Number == 2 && f.WireType == 2)
            {
                batch = CuratedBatch.Parser.ParseFrom(f.Bytes.Span);
            }
            else if (f.Number == 4 && f.WireType == 2)
            {
                job = Encoding.UTF8.GetString(f.Bytes.Span);
            }
        }

        if (batch is null)
        {
            return;
        }

        var ids = new HashSet<long>(batch.Examples.Select(e => e.Id));
        var distinct = ids.Count == batch.Examples.Count && batch.FilteredIds.All(ids.Add);
        var logged = new LoggedBatch(job, batch.SessionId, batch.Sequence, batch.SuperBatchId, batch.Examples.Count,
            batch.Examples.Count(e => e.GroundTruth == GroundTruthKind.Swapped), batch.FilteredIds.Count, batch.Diagnostics?.SelectionMs ?? 0, distinct);
        lock (_gate)
        {
            _batches.TryAdd((batch.SessionId, batch.Sequence), logged);
        }

        _changed.Writer.TryWrite(0);
    }

    /// <summary>The job's batches read so far, by sequence.</summary>
    public List<LoggedBatch> Batches(string job)
    {
        lock (_gate)
        {
            return [.. _batches.Values.Where(b => b.Job == job).OrderBy(b => b.Sequence)];
        }
    }

    /// <summary>Waits until the job has batches 1..<paramref name="count"/> in the log, or throws at the deadline naming what is missing.</summary>
    public async Task<List<LoggedBatch>> WaitForAsync(string job, int count, TimeSpan deadline, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(deadline);
        while (true)
        {
            var batches = Batches(job);
            var have = batches.Where(b => b.Sequence >= 1 && b.Sequence <= count).Select(b => b.Sequence).Distinct().Count();
            if (have >= count)
            {
                return batches.Where(b => b.Sequence <= count).ToList();
            }

            try
            {
                await _changed.Reader.ReadAsync(timeout.Token);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TimeoutException($"the Selection batch log holds {have} of job {job}'s {count} batches after {deadline.TotalSeconds:0} s.");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await channel.CloseAsync();
        }
        catch (Exception e) when (e is AlreadyClosedException or IOException or OperationCanceledException)
        {
            // Closed with its connection already.
        }

        channel.Dispose();
    }
}
