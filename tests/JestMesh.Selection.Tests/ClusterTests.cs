using JestMesh.Messaging;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using Microsoft.Extensions.DependencyInjection;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>
/// Selection on a 3-node RabbitMQ cluster: its batch log (a stream) and job queues are replicated on
/// every node, and a session goes on with no gap and no repeat after the node leading the batch log
/// is SIGKILLed, in the same replica and in a new one that reads the log back from the survivors.
/// </summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class ClusterTests(SelectionFixture fixture)
{
    private const int N = 64;
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(180);

    [Fact]
    public async Task A_session_survives_the_crash_of_the_node_leading_the_batch_log()
    {
        await using var cluster = await TestBroker.StartClusterAsync(portOffset: 31, nodes: 3);
        var prefix = TestNames.Unique("cluster");
        var options = cluster.Options(prefix);
        var log = $"{prefix}.selection.log";
        await using var broker = new BrokerClient(options);
        await broker.Connections.DeclareTopologyAsync(CancellationToken.None);
        var published = await TestData.PublishAsync(fixture.Feeder, broker, "job", 3, N);
        var received = new List<CuratedBatch>();
        string sessionId;
        await using (var host = await SelectionHost.StartAsync(options))
        {
            received.AddRange(await StreamAsync(host, Sessions.Open("job", Policy.EasyReference), 2));
            sessionId = received[0].SessionId;

            var (leader, members) = await cluster.QuorumQueueAsync(log, cluster.NodePorts[0]);
            Assert.Equal(cluster.NodePorts.Select(TestBroker.NodeName).Order(), members.Order());
            var (_, jobMembers) = await cluster.QuorumQueueAsync(options.QueuePrefix + ".scored.job.job", cluster.NodePorts[0]);
            Assert.Equal(3, jobMembers.Count);
            var victim = cluster.NodePorts.Single(p => TestBroker.NodeName(p) == leader);
            var survivor = cluster.NodePorts.First(p => p != victim);
            await cluster.KillNodeAsync(victim);

            await Eventually.WaitUntilAsync(async () => (await cluster.QuorumQueueAsync(log, survivor)).Leader is var l && l.Length > 0 && l != leader,
                Deadline, "the batch log to elect a leader on a surviving node");
            var connections = host.Services.GetRequiredService<BrokerConnections>();
            await Eventually.WaitUntilAsync(() => connections.IsHealthy, Deadline, "Selection's broker connections to fail over");
            published.AddRange(await TestData.PublishAsync(fixture.Feeder, broker, "job", 3, N, first: 3));

            // The trainer trained on batch 1 only: batch 2 is replayed from the log, then new ones.
            var open = Sessions.Open("job", Policy.EasyReference);
            open.SessionId = sessionId;
            open.Cursor = 1;
            var resumed = await StreamAsync(host, open, 3);
            Assert.Equal([2L, 3, 4], resumed.Select(b => b.Sequence));
            Assert.True(resumed[0].Replayed);
            Assert.Equal(TestData.Identity(received[1]), TestData.Identity(resumed[0]));
            received = [received[0], .. resumed];
        }

        // A new replica reads the whole log back from the two survivors and serves the rest.
        await using (var host = await SelectionHost.StartAsync(options))
        {
            var open = Sessions.Open("job", Policy.EasyReference);
            open.SessionId = sessionId;
            open.Cursor = 4;
            var rest = await StreamAsync(host, open, 2);
            Assert.Equal([5L, 6], rest.Select(b => b.Sequence));
            received.AddRange(rest);
        }

        Assert.Equal(published.Select(p => p.Id).Order(), received.Select(b => b.SuperBatchId).Order());
        foreach (var batch in received)
        {
            TestData.AssertPartition(batch, published.Single(p => p.Id == batch.SuperBatchId), N / 2);
        }
    }

    private static async Task<List<CuratedBatch>> StreamAsync(SelectionHost host, SessionOpen open, int batches)
    {
        using var channel = host.Channel();
        using var timeout = new CancellationTokenSource(Deadline);
        using var call = new CurationClient(channel).StreamBatches(new StreamBatchesRequest { Session = open, MaxBatches = batches }, SelectionHost.Auth(), cancellationToken: timeout.Token);
        var received = new List<CuratedBatch>();
        while (await call.ResponseStream.MoveNext(timeout.Token))
        {
            received.Add(call.ResponseStream.Current);
        }
        return received;
    }
}
