using System.Collections.Concurrent;
using System.Text;
using JestMesh.TestKit;

namespace JestMesh.Messaging.Tests;

[Trait("Tier", "Broker")]
public sealed class BrokerRestartTests
{
    [Fact]
    public async Task Broker_restart_mid_run_loses_nothing_and_duplicates_have_no_effect()
    {
        // A broker of its own: restarting the shared one would disturb other test assemblies.
        await using var broker = await TestBroker.StartPrivateAsync(portOffset: 11);
        const int count = 600;
        var options = broker.Options(TestNames.Unique("restart"));
        options.InputQueueMaxLength = 2 * count;
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);

        // Stage 1 forwards every input to the output queue and acks only after the confirm. It holds
        // the last message of the first half until the broker is down, so that message is certainly
        // in flight (unacked, maybe forwarded) across the restart.
        var brokerDown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inFlight = $"m{(count / 2) - 1}";
        var stage = client.NewConsumer();
        await stage.StartAsync(client.Topology.SuperBatches, async (message, ct) =>
        {
            if (message.MessageId == inFlight)
            {
                await brokerDown.Task.WaitAsync(ct);
            }
            await client.Publisher.PublishAsync(OutgoingMessage.ToQueue(client.Topology.Scored, "out-" + message.MessageId, message.Body), ct);
        }, CancellationToken.None);
        var effects = new ConcurrentDictionary<string, int>();
        var sink = client.NewConsumer();
        await sink.StartAsync(client.Topology.Scored, (message, _) =>
        {
            effects.AddOrUpdate(message.MessageId, 1, (_, n) => n + 1);
            return Task.CompletedTask;
        }, CancellationToken.None);

        // The producer publishes the first half, then waits for the broker to be down before it goes
        // on: the restart is mid-run by construction, not because stop_app happened to be quicker
        // than 600 publishes (on a loaded machine rabbitmqctl alone can take seconds).
        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                if (i == count / 2)
                {
                    await brokerDown.Task;
                }
                var message = OutgoingMessage.ToQueue(client.Topology.SuperBatches, $"m{i}", Encoding.UTF8.GetBytes($"payload {i}"));
                while (true)
                {
                    try
                    {
                        await client.Publisher.PublishAsync(message, CancellationToken.None);
                        break;
                    }
                    catch (PublishRejectedException)
                    {
                        // A quorum queue nacks while it has no leader right after the restart; as
                        // Ingest does, publish the same message (same id) again.
                        await Task.Delay(options.RecoveryInterval);
                    }
                }
            }
        });
        await Eventually.WaitUntilAsync(() => effects.Count >= 50, TimeSpan.FromSeconds(60), "the first 50 messages through both stages");
        await broker.StopAppAsync();
        var seenAtRestart = effects.Count;
        brokerDown.SetResult();
        await broker.StartAppAsync();

        await producer.Within(TimeSpan.FromSeconds(120), "the producer to publish everything after the restart");
        await Eventually.WaitUntilAsync(() => effects.Count == count, TimeSpan.FromSeconds(120), $"all {count} messages at the sink");

        Assert.True(seenAtRestart < count / 2, $"the restart must happen mid-run ({seenAtRestart} of {count} seen)");
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"out-m{i}").Order(), effects.Keys.Order());
        Assert.All(effects, pair => Assert.Equal(1, pair.Value));
        // Recovery of the second connection can still be under way when the last message lands.
        await Eventually.WaitUntilAsync(() => client.Connections.IsHealthy, TimeSpan.FromSeconds(30), "both connections to recover by themselves");
        Assert.True(client.Connections.IsHealthy, "connections recovered by themselves");
    }
}
