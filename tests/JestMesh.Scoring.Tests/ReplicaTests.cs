using System.Globalization;
using Google.Protobuf;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using JestMesh.TestKit;

namespace JestMesh.Scoring.Tests;

/// <summary>
/// Two Scoring replicas as their own processes, competing consumers of the super-batch queue: one is
/// SIGKILLed while it holds unacked deliveries, and the other scores them; every super-batch reaches
/// the scored queue, each with one effect downstream, nothing dead-lettered.
/// </summary>
[Collection(PipelineCollection.Name)]
[Trait("Tier", "Broker")]
public sealed class ReplicaTests(PipelineFixture fixture)
{
    private const int SuperBatches = 24;
    private const int N = 256;
    private static readonly TimeSpan Deadline = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task A_scoring_replica_killed_with_unacked_deliveries_leaves_them_to_the_other()
    {
        var options = TestBroker.Shared().Options(TestNames.Unique("scoring-replicas"));
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var sink = await ScoredSink.StartAsync(client);
        var published = new List<string>();
        for (var i = 0; i < SuperBatches; i++)
        {
            var batch = SuperBatchBuilder.Build(fixture.Data, "job-s", i, Enumerable.Range(i * N, N).ToArray());
            await client.Publisher.PublishAsync(new OutgoingMessage("", client.Topology.SuperBatches, batch.Id, batch.ToByteArray()), CancellationToken.None);
            published.Add(batch.Id);
        }

        // The victim starts alone and, with a prefetch as large as the job, takes every super-batch:
        // whatever it has not scored when it dies is unacked in its hands, not ready in the queue.
        using var victim = Start(options, prefetch: SuperBatches);
        await victim.WaitReadyAsync(Deadline);
        await Eventually.WaitUntilAsync(async () => await client.Connections.ReadyCountAsync(client.Topology.SuperBatches, CancellationToken.None) == 0,
            Deadline, "the victim to take every super-batch");
        // Frozen at once with its deliveries unacked: it cannot score the rest while the other replica starts (on a busy
        // machine that start takes longer than scoring all of them did).
        victim.Suspend();
        using var other = Start(options, prefetch: 4);
        await other.WaitReadyAsync(Deadline);

        await victim.KillAsync();
        var scoredAtKill = sink.Batches.Count;
        Assert.True(scoredAtKill < SuperBatches, $"the victim scored all {SuperBatches} super-batches before it was killed: nothing was left to the other replica");

        await Eventually.WaitUntilAsync(() => sink.Batches.Count == SuperBatches, Deadline, $"all {SuperBatches} scored super-batches after the kill ({scoredAtKill} before)");
        await Eventually.WaitUntilAsync(async () => await client.Connections.ReadyCountAsync(client.Topology.SuperBatches, CancellationToken.None) == 0
            && await client.Connections.ReadyCountAsync(client.Topology.Scored, CancellationToken.None) == 0, Deadline, "both queues drained");

        Assert.Equal(published.Select(ScoringProcessor.ScoredMessageId).Order(), sink.Batches.Keys.Order());
        Assert.All(sink.Effects.Values, n => Assert.Equal(1, n));
        Assert.Equal(published.Count * N, sink.ExampleIds.Distinct().Count());
        Assert.Equal(0u, await client.Connections.ReadyCountAsync(client.Topology.DeadLetter, CancellationToken.None));
    }

    private ServiceProcess Start(MessagingOptions options, int prefetch) =>
        ServiceProcess.Start("JestMesh.Scoring", options, new Dictionary<string, string?>
        {
            ["Scoring:ReferenceDirectory"] = fixture.CheckpointDirectory,
            ["Scoring:Device"] = "cpu",
            ["Scoring:ExpectedDataFingerprint"] = fixture.Data.Fingerprint,
            ["Messaging:Prefetch"] = prefetch.ToString(CultureInfo.InvariantCulture),
            ["Messaging:ConsumerConcurrency"] = "1",
        });
}
