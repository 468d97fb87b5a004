using System.Collections.Concurrent;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using JestMesh.TestKit;

namespace JestMesh.Scoring.Tests;

/// <summary>A downstream consumer of jestmesh.scored (real AckingConsumer with dedup) that records what arrives.</summary>
public sealed class ScoredSink
{
    public ConcurrentDictionary<string, ScoredSuperBatch> Batches { get; } = new();

    /// <summary>Effects per message id: must stay 1 for every id.</summary>
    public ConcurrentDictionary<string, int> Effects { get; } = new();

    public static async Task<ScoredSink> StartAsync(BrokerClient client)
    {
        var sink = new ScoredSink();
        var consumer = client.NewConsumer();
        await consumer.StartAsync(client.Topology.Scored, (message, _) =>
        {
            ScoredSuperBatch scored;
            try
            {
                scored = ScoredSuperBatch.Parser.ParseFrom(message.Body.Span);
                scored.ValidatedEmbeddings();
            }
            catch (Exception ex) when (ex is Google.Protobuf.InvalidProtocolBufferException or InvalidDataException)
            {
                throw new PoisonMessageException(ex.Message, ex);
            }
            sink.Effects.AddOrUpdate(message.MessageId, 1, (_, n) => n + 1);
            sink.Batches[message.MessageId] = scored;
            return Task.CompletedTask;
        }, CancellationToken.None);
        return sink;
    }

    public IEnumerable<long> ExampleIds => Batches.Values.SelectMany(b => b.Examples.Select(e => e.Id));
}
