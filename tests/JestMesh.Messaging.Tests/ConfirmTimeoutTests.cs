using System.Diagnostics.Metrics;
using System.Text;
using JestMesh.TestKit;

namespace JestMesh.Messaging.Tests;

[Trait("Tier", "Broker")]
public sealed class ConfirmTimeoutTests
{
    [Fact]
    public async Task A_publish_whose_confirm_does_not_come_is_published_again_on_a_new_channel_and_lands_once_the_broker_answers()
    {
        // A broker of its own: its memory alarm blocks every publisher on it.
        await using var broker = await TestBroker.StartPrivateAsync(portOffset: 15);
        var options = broker.Options(TestNames.Unique("confirm"));
        options.ConfirmTimeout = TimeSpan.FromSeconds(1);
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var queue = client.Topology.SuperBatches;
        await client.Publisher.PublishAsync(OutgoingMessage.ToQueue(queue, "before", Encoding.UTF8.GetBytes("before")), CancellationToken.None);

        long timeouts = 0;
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == MessagingTelemetry.Name && instrument.Name == "jestmesh.messaging.confirm_timeouts")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        // Only this test's queue: other tests in the process (a cluster's node kill) may time out confirms too.
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "messaging.destination.name" && Equals(tag.Value, queue))
                {
                    Interlocked.Add(ref timeouts, value);
                }
            }
        });
        listener.Start();

        // A memory alarm at threshold 0: the broker stops reading from publishing connections, so no
        // confirm comes (as with a confirm lost with a dead node) until it is cleared.
        await broker.CtlAsync("set_vm_memory_high_watermark", "0");
        var publish = client.Publisher.PublishAsync(OutgoingMessage.ToQueue(queue, "during", Encoding.UTF8.GetBytes("during")), CancellationToken.None);
        await Eventually.WaitUntilAsync(() => Interlocked.Read(ref timeouts) >= 2, TimeSpan.FromSeconds(60), "two confirm timeouts of the blocked publish");
        Assert.False(publish.IsCompleted, "the publish returned while the broker confirmed nothing");

        await broker.CtlAsync("set_vm_memory_high_watermark", "0.4");
        await publish.WaitAsync(TimeSpan.FromSeconds(60));

        // Published more than once with one id (consumers drop the copies); nothing else, nothing lost.
        var ids = (await client.GetAllAsync(queue)).Select(m => m.MessageId).ToList();
        Assert.Equal("before", ids[0]);
        Assert.Contains("during", ids);
        Assert.All(ids.Skip(1), id => Assert.Equal("during", id));
    }
}
