using JestMesh.TestKit;

namespace JestMesh.Messaging.Tests;

/// <summary>
/// A 3-node RabbitMQ cluster on loopback: JestMesh's queues are replicated on every node, and a
/// client given every node's URI survives the crash (SIGKILL) of the node it is connected to, which
/// is also the leader of the queue it publishes to.
/// </summary>
[Trait("Tier", "Broker")]
public sealed class ClusterFailoverTests
{
    [Fact]
    public async Task Queues_are_replicated_on_three_nodes_and_the_leaders_crash_loses_nothing()
    {
        await using var broker = await TestBroker.StartClusterAsync(portOffset: 21, nodes: 3);
        Assert.Equal(3, broker.Uri.Split(',').Length);
        const int count = 600;
        var options = broker.Options(TestNames.Unique("cluster"));
        options.InputQueueMaxLength = 2 * count;
        await using var client = new BrokerClient(options);
        // Declared over the publish connection: a quorum queue's first leader is the declaring
        // client's node (queue_leader_locator client-local), so the node this client uses leads it.
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var publishNode = (await client.Connections.PublishConnectionAsync(CancellationToken.None)).Endpoint.Port;
        var other = broker.NodePorts.First(p => p != publishNode);

        foreach (var queue in new[] { client.Topology.SuperBatches, client.Topology.Scored })
        {
            var (_, members) = await broker.QuorumQueueAsync(queue, other);
            Assert.Equal(broker.NodePorts.Select(TestBroker.NodeName).Order(), members.Order());
        }
        var (leader, _) = await broker.QuorumQueueAsync(client.Topology.SuperBatches, other);
        Assert.Equal(TestBroker.NodeName(publishNode), leader);

        var outcome = await ForwardingRun.RunAsync(client, count,
            fault: () => broker.KillNodeAsync(publishNode),
            recover: async () =>
            {
                // Traffic resumes on the two surviving nodes before the dead one is back: the
                // producer's second half must flow with one node down.
                await Eventually.WaitUntilAsync(() => client.Connections.IsHealthy, TimeSpan.FromSeconds(120), "the client to fail over to a surviving node");
            });

        await ForwardingRun.AssertExactlyOnceAsync(client, count, outcome);
        var now = (await client.Connections.PublishConnectionAsync(CancellationToken.None)).Endpoint.Port;
        Assert.NotEqual(publishNode, now);
        var (newLeader, _) = await broker.QuorumQueueAsync(client.Topology.SuperBatches, other);
        Assert.NotEqual(TestBroker.NodeName(publishNode), newLeader);

        // The crashed node comes back from its data and rejoins as a member of every queue.
        await broker.RestartDeadNodesAsync();
        await Eventually.WaitUntilAsync(async () => (await broker.QuorumQueueAsync(client.Topology.SuperBatches, publishNode)).Members.Count == 3,
            TimeSpan.FromSeconds(120), "the restarted node to list the queue with all three members");
    }
}
