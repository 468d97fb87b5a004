using JestMesh.Messaging;
using Microsoft.Extensions.Logging.Abstractions;

namespace JestMesh.TestKit;

/// <summary>Real messaging components against a test broker, plus raw reads for assertions.</summary>
public sealed class BrokerClient : IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _owned = [];

    public BrokerClient(MessagingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        Connections = new BrokerConnections(Microsoft.Extensions.Options.Options.Create(options), NullLogger<BrokerConnections>.Instance);
        Publisher = new ConfirmedPublisher(Connections, NullLogger<ConfirmedPublisher>.Instance);
    }

    public MessagingOptions Options { get; }

    public BrokerConnections Connections { get; }

    public ConfirmedPublisher Publisher { get; }

    public QueueTopology Topology => Connections.Topology;

    /// <summary>A new consumer (fresh dedup window, as a restarted process would have).</summary>
    public AckingConsumer NewConsumer()
    {
        var consumer = new AckingConsumer(Connections, Publisher, NullLogger<AckingConsumer>.Instance);
        _owned.Add(consumer);
        return consumer;
    }

    /// <summary>Drains up to <paramref name="max"/> messages from <paramref name="queue"/> with basic.get (acked).</summary>
    public async Task<IReadOnlyList<(string? MessageId, byte[] Body, IDictionary<string, object?> Headers)>> GetAllAsync(string queue, int max = 10_000)
    {
        var connection = await Connections.ConsumeConnectionAsync(CancellationToken.None);
        await using var channel = await connection.CreateChannelAsync();
        var messages = new List<(string?, byte[], IDictionary<string, object?>)>();
        while (messages.Count < max && await channel.BasicGetAsync(queue, autoAck: true) is { } result)
        {
            messages.Add((result.BasicProperties.MessageId, result.Body.ToArray(),
                result.BasicProperties.Headers is { } h ? new Dictionary<string, object?>(h) : new Dictionary<string, object?>()));
        }
        return messages;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var owned in Enumerable.Reverse(_owned))
        {
            await owned.DisposeAsync();
        }
        await Publisher.DisposeAsync();
        await Connections.DisposeAsync();
    }
}
