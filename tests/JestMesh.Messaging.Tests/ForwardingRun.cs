using System.Collections.Concurrent;
using System.Text;
using JestMesh.TestKit;

namespace JestMesh.Messaging.Tests;

/// <summary>
/// A two-stage run over the real broker with a fault in the middle: a producer publishes
/// <c>count</c> messages to the input queue, a stage forwards each to the output queue (acking only
/// after the confirm) and a sink counts effects per message id. The stage holds the last message of
/// the first half until the fault happened, so that message is certainly in flight across it.
/// </summary>
internal static class ForwardingRun
{
    /// <summary>Effects per output id, and how many had landed when the fault struck.</summary>
    public sealed record Outcome(IReadOnlyDictionary<string, int> Effects, int SeenAtFault);

    public static async Task<Outcome> RunAsync(BrokerClient client, int count, Func<Task> fault, Func<Task> recover)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(fault);
        ArgumentNullException.ThrowIfNull(recover);
        var options = client.Options;
        var faulted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inFlight = $"m{(count / 2) - 1}";
        var stage = client.NewConsumer();
        await stage.StartAsync(client.Topology.SuperBatches, async (message, ct) =>
        {
            if (message.MessageId == inFlight)
            {
                await faulted.Task.WaitAsync(ct);
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

        // The producer publishes the first half, then waits for the fault before it goes on: the
        // fault is mid-run by construction, not because it happened to be quicker than the
        // publishes (on a loaded machine rabbitmqctl alone can take seconds).
        var producer = Task.Run(async () =>
        {
            for (var i = 0; i < count; i++)
            {
                if (i == count / 2)
                {
                    await faulted.Task;
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
                        // A quorum queue nacks while it has no leader (after a restart, or while a
                        // new leader is elected); as Ingest does, publish the same message (same id) again.
                        await Task.Delay(options.RecoveryInterval);
                    }
                }
            }
        });
        await Eventually.WaitUntilAsync(() => effects.Count >= 50, TimeSpan.FromSeconds(60), "the first 50 messages through both stages");
        await fault();
        var seenAtFault = effects.Count;
        faulted.SetResult();
        await recover();

        await producer.Within(TimeSpan.FromSeconds(180), "the producer to publish everything after the fault");
        await Eventually.WaitUntilAsync(() => effects.Count == count, TimeSpan.FromSeconds(180), $"all {count} messages at the sink");
        return new Outcome(effects, seenAtFault);
    }

    /// <summary>Every message had exactly one effect, the fault struck mid-run, and the connections recovered by themselves.</summary>
    public static async Task AssertExactlyOnceAsync(BrokerClient client, int count, Outcome outcome)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(outcome);
        Assert.True(outcome.SeenAtFault < count / 2, $"the fault must strike mid-run ({outcome.SeenAtFault} of {count} seen)");
        Assert.Equal(Enumerable.Range(0, count).Select(i => $"out-m{i}").Order(), outcome.Effects.Keys.Order());
        Assert.All(outcome.Effects, pair => Assert.Equal(1, pair.Value));
        // Recovery of the second connection can still be under way when the last message lands.
        await Eventually.WaitUntilAsync(() => client.Connections.IsHealthy, TimeSpan.FromSeconds(60), "both connections to recover by themselves");
    }
}
