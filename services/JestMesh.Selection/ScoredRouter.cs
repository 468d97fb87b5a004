using Google.Protobuf;
using JestMesh.Messaging;
using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Selection;

/// <summary>
/// Starts the service (topology, batch log read back), then moves every scored super-batch from
/// jestmesh.scored to its job's queue. Why a queue per job: one shared queue would let a job
/// nobody trains right now fill the prefetch and stall every other job; per-job queues keep jobs
/// independent. Bad messages (bytes, shapes, NaN, job name, a reference_info_nce of the wrong length) are dead-lettered here with the reason.
/// Every replica routes (competing consumers); the router's dedup window is per process, so two
/// replicas may each route a copy of one super-batch: both reach the job's one holder, whose feed
/// gives them one effect (a recorded or held super-batch is acked without effect).
/// </summary>
public sealed partial class ScoredRouter : BackgroundService
{
    private readonly BrokerConnections _connections;
    private readonly ConfirmedPublisher _publisher;
    private readonly AckingConsumer _consumer;
    private readonly SessionStore _store;
    private readonly JobFeeds _feeds;
    private readonly ILogger<ScoredRouter> _logger;

    public ScoredRouter(BrokerConnections connections, ConfirmedPublisher publisher, AckingConsumer consumer, SessionStore store, JobFeeds feeds, ILogger<ScoredRouter> logger)
    {
        _connections = connections;
        _publisher = publisher;
        _consumer = consumer;
        _store = store;
        _feeds = feeds;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await _connections.DeclareTopologyAsync(stoppingToken);
        await _store.LoadAsync(stoppingToken);
        await _consumer.StartAsync(_connections.Topology.Scored, RouteAsync, stoppingToken);
        LogStarted(_logger, _connections.Topology.Scored);
    }

    private async Task RouteAsync(ReceivedMessage message, CancellationToken cancellationToken)
    {
        ScoredSuperBatch batch;
        try
        {
            batch = ScoredSuperBatch.Parser.ParseFrom(message.Body.Span);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new PoisonMessageException($"message {message.MessageId} is not a ScoredSuperBatch ({message.Body.Length} bytes): {ex.Message}", ex);
        }
        try
        {
            batch.ValidatedEmbeddings();
            batch.ValidatedReferenceInfoNce();
        }
        catch (InvalidDataException ex)
        {
            throw new PoisonMessageException(ex.Message, ex);
        }
        if (!JobNames.IsValid(batch.Job))
        {
            throw new PoisonMessageException($"scored super-batch {ClientText.Quote(batch.Id)}: job {ClientText.Quote(batch.Job)} must match {JobNames.Pattern()}.");
        }
        // The job exists from here on: its queue is created by this router only, never by a session.
        await _feeds.DeclareAsync(batch.Job, cancellationToken);
        await _publisher.PublishAsync(
            OutgoingMessage.ToQueue(_feeds.QueueOf(batch.Job), message.MessageId, message.Body) with { Type = ScoredSuperBatch.Descriptor.FullName },
            cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await _consumer.StopAsync();
        await base.StopAsync(cancellationToken);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Routing {Queue} to per-job queues")]
    private static partial void LogStarted(ILogger logger, string queue);
}
