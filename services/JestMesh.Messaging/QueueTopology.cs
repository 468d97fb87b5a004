using RabbitMQ.Client;

namespace JestMesh.Messaging;

/// <summary>Names and declaration of JestMesh's queues and dead-letter exchange.</summary>
public sealed record QueueTopology(string Prefix)
{
    /// <summary>Header that carries why a message was dead-lettered by a JestMesh consumer.</summary>
    public const string ReasonHeader = "x-jestmesh-reason";

    /// <summary>Header that names the queue a dead-lettered message came from.</summary>
    public const string SourceQueueHeader = "x-jestmesh-source-queue";

    /// <summary>Ingest → Scoring.</summary>
    public string SuperBatches => $"{Prefix}.superbatches";

    /// <summary>Scoring → Selection.</summary>
    public string Scored => $"{Prefix}.scored";

    /// <summary>
    /// Selection's queue of one job's scored super-batches (its router declares it with the job's first
    /// one; Ingest watches its depth to stay at most Ingest:MaxAhead ahead of the job's trainers).
    /// </summary>
    public string JobQueue(string job) => $"{Scored}.job.{job}";

    /// <summary>
    /// The lock of a job's queue: an exclusive, message-less queue that the Selection replica
    /// consuming the job's queue holds on its holding connection (one replica at a time; the broker
    /// deletes it when that connection closes, a SIGKILL included).
    /// </summary>
    public string JobHolder(string job) => $"{JobQueue(job)}.holder";

    /// <summary>Dead-letter exchange (fanout) and its queue share this name.</summary>
    public string DeadLetter => $"{Prefix}.dead";

    public static QueueTopology From(MessagingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new QueueTopology(options.QueuePrefix);
    }

    /// <summary>Declares exchange, queues and binding; idempotent, so every service declares at start.</summary>
    public async Task DeclareAsync(IChannel channel, MessagingOptions options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(channel);
        ArgumentNullException.ThrowIfNull(options);
        await channel.ExchangeDeclareAsync(DeadLetter, ExchangeType.Fanout, durable: true, autoDelete: false, cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(DeadLetter, durable: true, exclusive: false, autoDelete: false,
            arguments: new Dictionary<string, object?> { ["x-queue-type"] = "quorum" }, cancellationToken: cancellationToken);
        await channel.QueueBindAsync(DeadLetter, DeadLetter, routingKey: "", cancellationToken: cancellationToken);

        // The input queue is bounded: past its length the broker nacks publishes (reject-publish),
        // which is how Ingest feels backpressure instead of flooding the broker.
        await channel.QueueDeclareAsync(SuperBatches, durable: true, exclusive: false, autoDelete: false,
            arguments: InputArguments(options, options.InputQueueMaxLength), cancellationToken: cancellationToken);
        await channel.QueueDeclareAsync(Scored, durable: true, exclusive: false, autoDelete: false,
            arguments: InputArguments(options, maxLength: null), cancellationToken: cancellationToken);
    }

    private Dictionary<string, object?> InputArguments(MessagingOptions options, int? maxLength)
    {
        var arguments = new Dictionary<string, object?>
        {
            ["x-queue-type"] = "quorum",
            ["x-delivery-limit"] = options.DeliveryLimit,
            ["x-dead-letter-exchange"] = DeadLetter,
            // at-least-once dead-lettering (quorum queues, RabbitMQ ≥ 3.10) keeps a message that hit
            // the delivery limit until the dead-letter queue confirmed it; it requires reject-publish.
            ["x-dead-letter-strategy"] = "at-least-once",
            ["x-overflow"] = "reject-publish",
        };
        if (maxLength is { } length)
        {
            arguments["x-max-length"] = length;
        }
        return arguments;
    }
}
