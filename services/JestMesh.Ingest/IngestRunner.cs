using System.Diagnostics;
using System.Diagnostics.Metrics;
using Google.Protobuf;
using JestMesh.Data;
using JestMesh.Data.WebDataset;
using JestMesh.Messaging;
using JestMesh.Protos;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Options;

namespace JestMesh.Ingest;

/// <summary>Outcome of one ingest run.</summary>
/// <param name="SuperBatches">Super-batches published and confirmed.</param>
/// <param name="Examples">Examples in them.</param>
/// <param name="BackpressureWaits">Times the input queue was full.</param>
/// <param name="ExampleIds">Ids of the published examples, in order.</param>
/// <param name="Skipped">Samples of a WebDataset source that were not published (each logged with its shard, key and reason).</param>
public sealed record IngestResult(int SuperBatches, long Examples, int BackpressureWaits, IReadOnlyList<long> ExampleIds, int Skipped = 0);

/// <summary>
/// Publishes a job's super-batches to jestmesh.superbatches, each confirmed before the next. When
/// the bounded queue refuses a publish, it waits until the queue has drained below a threshold and
/// publishes the same super-batch again (same message id), so nothing is skipped or doubled. It
/// also stays at most Ingest:MaxAhead scored super-batches ahead of the job's trainers.
/// </summary>
public sealed partial class IngestRunner
{
    public const string TelemetryName = Telemetry.Sources.Ingest;
    public static readonly ActivitySource Source = new(TelemetryName);
    private static readonly Meter Meter = new(TelemetryName);
    private static readonly Counter<long> Published = Meter.CreateCounter<long>(Telemetry.Metrics.IngestSuperBatches, "{superbatch}", "Super-batches published and confirmed.");
    private static readonly Counter<long> Waits = Meter.CreateCounter<long>(Telemetry.Metrics.IngestBackpressureWaits, "{wait}", "Times the input queue was full.");

    private readonly BrokerConnections _connections;
    private readonly ConfirmedPublisher _publisher;
    private readonly IngestOptions _options;
    private readonly ILogger<IngestRunner> _logger;

    public IngestRunner(BrokerConnections connections, ConfirmedPublisher publisher, IOptions<IngestOptions> options, ILogger<IngestRunner> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _connections = connections;
        _publisher = publisher;
        _options = options.Value;
        _logger = logger;
    }

    /// <summary>Ready messages at or below which a refused publisher resumes.</summary>
    public int ResumeBelow => _options.ResumeBelow > 0 ? _options.ResumeBelow : Math.Max(0, _connections.Options.InputQueueMaxLength / 2);

    public Task<IngestResult> RunAsync(PairDataset data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(data);
        var batches = IngestPlan.Positions(data.Pool.Count, _options)
            .Select((positions, sequence) => SuperBatchBuilder.Build(data, _options.Job, sequence, positions));
        return PublishAsync(batches, () => 0, cancellationToken);
    }

    /// <summary>
    /// Publishes a WebDataset source in its shard order for Ingest:OrderSeed; every sample it skips is
    /// logged (shard, key, reason) and counted in <see cref="IngestResult.Skipped"/>.
    /// </summary>
    public Task<IngestResult> RunAsync(string webDatasetDirectory, CancellationToken cancellationToken)
    {
        var source = new WdsSource(webDatasetDirectory, skip => LogSkipped(_logger, skip.Shard, skip.Key, skip.Reason));
        IEnumerable<SuperBatch> batches = source.SuperBatches(_options.SuperBatchSize, _options.OrderSeed, _options.Epochs, BuiltInPairs.Decode)
            .Select((pairs, sequence) => SuperBatchBuilder.Build(_options.Job, sequence, pairs, source.Fingerprint));
        if (_options.MaxSuperBatches > 0)
        {
            batches = batches.Take(_options.MaxSuperBatches);
        }
        return PublishAsync(batches, () => source.Skipped.Count, cancellationToken);
    }

    private async Task<IngestResult> PublishAsync(IEnumerable<SuperBatch> batches, Func<int> skipped, CancellationToken cancellationToken)
    {
        await _connections.DeclareTopologyAsync(cancellationToken);
        var queue = _connections.Topology.SuperBatches;
        var jobQueue = _connections.Topology.JobQueue(_options.Job);
        var ids = new List<long>();
        var sequence = 0L;
        var waits = 0;
        foreach (var batch in batches)
        {
            if (await WaitForJobRoomAsync(jobQueue, cancellationToken))
            {
                waits++;
            }
            using (var activity = Source.StartActivity(Telemetry.Spans.IngestPublish, ActivityKind.Internal))
            {
                activity?.SetTag(Telemetry.Attributes.Job, _options.Job);
                activity?.SetTag(Telemetry.Attributes.SuperBatchId, batch.Id);
                activity?.SetTag(Telemetry.Attributes.SuperBatchSequence, sequence);
                activity?.SetTag(Telemetry.Attributes.SuperBatchSize, batch.Examples.Count);
                var message = new OutgoingMessage("", queue, batch.Id, batch.ToByteArray()) { Type = SuperBatch.Descriptor.FullName };
                while (true)
                {
                    try
                    {
                        await _publisher.PublishAsync(message, cancellationToken);
                        break;
                    }
                    catch (PublishRejectedException)
                    {
                        waits++;
                        Waits.Add(1);
                        activity?.AddEvent(new ActivityEvent("backpressure"));
                        LogQueueFull(_logger, queue, batch.Id, ResumeBelow);
                        await WaitForDrainAsync(queue, cancellationToken);
                    }
                }
            }
            Published.Add(1);
            foreach (var example in batch.Examples)
            {
                ids.Add(example.Id);
            }
            sequence++;
        }
        var skips = skipped();
        LogDone(_logger, _options.Job, sequence, ids.Count, waits, skips);
        return new IngestResult((int)sequence, ids.Count, waits, ids, skips);
    }

    /// <summary>Waits while the job's queue holds Ingest:MaxAhead or more ready super-batches; true when it had to wait.</summary>
    private async Task<bool> WaitForJobRoomAsync(string jobQueue, CancellationToken cancellationToken)
    {
        if (_options.MaxAhead == 0)
        {
            return false;
        }
        var waited = false;
        while (true)
        {
            try
            {
                // Before the job's first scored super-batch reaches Selection its queue does not exist: no bound yet.
                if ((await _connections.TryReadyCountAsync(jobQueue, cancellationToken) ?? 0) < _options.MaxAhead)
                {
                    return waited;
                }
            }
            catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.AlreadyClosedException or RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                // Broker restarting: keep waiting; the connection recovers by itself.
            }
            if (!waited)
            {
                waited = true;
                Waits.Add(1);
                LogJobAhead(_logger, _options.Job, jobQueue, _options.MaxAhead);
            }
            await Task.Delay(_connections.Options.RecoveryInterval / 4, cancellationToken);
        }
    }

    private async Task WaitForDrainAsync(string queue, CancellationToken cancellationToken)
    {
        var resumeBelow = ResumeBelow;
        while (true)
        {
            try
            {
                if (await _connections.ReadyCountAsync(queue, cancellationToken) <= resumeBelow)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is RabbitMQ.Client.Exceptions.AlreadyClosedException or RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                // Broker restarting: keep waiting; the connection recovers by itself.
            }
            await Task.Delay(_connections.Options.RecoveryInterval / 4, cancellationToken);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {Job}: {Queue} holds {MaxAhead} scored super-batches (Ingest:MaxAhead): waiting for the job's trainers")]
    private static partial void LogJobAhead(ILogger logger, string job, string queue, int maxAhead);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Queue} is full: holding super-batch {SuperBatchId} until at most {ResumeBelow} are waiting")]
    private static partial void LogQueueFull(ILogger logger, string queue, string superBatchId, int resumeBelow);

    [LoggerMessage(Level = LogLevel.Information, Message = "Job {Job}: published {SuperBatches} super-batches ({Examples} examples), {Waits} backpressure waits, {Skipped} samples skipped")]
    private static partial void LogDone(ILogger logger, string job, long superBatches, int examples, int waits, int skipped);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Skipped WebDataset sample {Shard}/{Key}: {Reason}")]
    private static partial void LogSkipped(ILogger logger, string shard, string key, string reason);
}
