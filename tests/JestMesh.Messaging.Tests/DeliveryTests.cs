using System.Collections.Concurrent;
using System.Text;
using JestMesh.TestKit;

namespace JestMesh.Messaging.Tests;

#pragma warning disable CA1001 // xUnit disposes the client through IAsyncLifetime.
[Trait("Tier", "Broker")]
public sealed class DeliveryTests : IAsyncLifetime
#pragma warning restore CA1001
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private readonly TestBroker _broker = TestBroker.Shared();
    private BrokerClient _client = null!;

    public async Task InitializeAsync()
    {
        _client = new BrokerClient(_broker.Options(TestNames.Unique("delivery")));
        await _client.Connections.DeclareTopologyAsync(CancellationToken.None);
    }

    public async Task DisposeAsync() => await _client.DisposeAsync();

    private Task PublishAsync(string queue, string id, string body) =>
        _client.Publisher.PublishAsync(OutgoingMessage.ToQueue(queue, id, Encoding.UTF8.GetBytes(body)), CancellationToken.None);

    [Fact]
    public async Task Poison_message_lands_in_the_dead_letter_queue_with_its_reason_and_the_consumer_keeps_going()
    {
        var handled = new ConcurrentBag<string>();
        var consumer = _client.NewConsumer();
        await consumer.StartAsync(_client.Topology.SuperBatches, (message, _) =>
        {
            var text = Encoding.UTF8.GetString(message.Body.Span);
            if (text.StartsWith("poison", StringComparison.Ordinal))
            {
                throw new PoisonMessageException($"cannot parse '{text}'");
            }
            handled.Add(message.MessageId);
            return Task.CompletedTask;
        }, CancellationToken.None);

        await PublishAsync(_client.Topology.SuperBatches, "m1", "good");
        await PublishAsync(_client.Topology.SuperBatches, "m2", "poison!");
        await PublishAsync(_client.Topology.SuperBatches, "m3", "good");

        await Eventually.WaitUntilAsync(() => handled.Count == 2, Deadline, "the two good messages");
        var dead = new List<(string? MessageId, byte[] Body, IDictionary<string, object?> Headers)>();
        await Eventually.WaitUntilAsync(async () => { dead.AddRange(await _client.GetAllAsync(_client.Topology.DeadLetter)); return dead.Count >= 1; },
            Deadline, "the poison message in the dead-letter queue");

        Assert.Equal(["m1", "m3"], handled.Order());
        var poison = Assert.Single(dead);
        Assert.Equal("m2", poison.MessageId);
        Assert.Equal("poison!", Encoding.UTF8.GetString(poison.Body));
        Assert.Equal("cannot parse 'poison!'", MessagingTelemetry.HeaderText(poison.Headers[QueueTopology.ReasonHeader]));
        Assert.Equal(_client.Topology.SuperBatches, MessagingTelemetry.HeaderText(poison.Headers[QueueTopology.SourceQueueHeader]));
        await Eventually.WaitUntilAsync(async () => await _client.Connections.ReadyCountAsync(_client.Topology.SuperBatches, CancellationToken.None) == 0,
            Deadline, "the input queue to be empty (everything acked)");
    }

    [Fact]
    public async Task Message_that_keeps_failing_is_dead_lettered_at_the_delivery_limit_with_the_last_error()
    {
        var attempts = 0;
        var consumer = _client.NewConsumer();
        await consumer.StartAsync(_client.Topology.SuperBatches, (_, _) =>
        {
            Interlocked.Increment(ref attempts);
            throw new InvalidOperationException("downstream is broken");
        }, CancellationToken.None);

        await PublishAsync(_client.Topology.SuperBatches, "always-fails", "x");

        var dead = new List<(string? MessageId, byte[] Body, IDictionary<string, object?> Headers)>();
        await Eventually.WaitUntilAsync(async () => { dead.AddRange(await _client.GetAllAsync(_client.Topology.DeadLetter)); return dead.Count >= 1; },
            Deadline, "the failing message in the dead-letter queue");
        var message = Assert.Single(dead);
        Assert.Equal("always-fails", message.MessageId);
        Assert.Equal(_client.Options.DeliveryLimit, attempts);
        Assert.Equal($"failed {_client.Options.DeliveryLimit} times; last error: InvalidOperationException: downstream is broken",
            MessagingTelemetry.HeaderText(message.Headers[QueueTopology.ReasonHeader]));
    }

    [Fact]
    public async Task Duplicate_message_id_has_no_second_effect()
    {
        var effects = new ConcurrentQueue<string>();
        var consumer = _client.NewConsumer();
        await consumer.StartAsync(_client.Topology.Scored, (message, _) =>
        {
            effects.Enqueue(message.MessageId);
            return Task.CompletedTask;
        }, CancellationToken.None);

        await PublishAsync(_client.Topology.Scored, "a", "1");
        await PublishAsync(_client.Topology.Scored, "a", "1 again");
        await PublishAsync(_client.Topology.Scored, "b", "2");
        await PublishAsync(_client.Topology.Scored, "a", "1 once more");

        await Eventually.WaitUntilAsync(async () => await _client.Connections.ReadyCountAsync(_client.Topology.Scored, CancellationToken.None) == 0
                && consumer.Processed.Count == 2 && effects.Count >= 2,
            Deadline, "all four deliveries consumed");
        // The last delivery was the third "a": once it is acked the queue is empty; wait for the ack count.
        await Eventually.WaitUntilAsync(async () =>
        {
            var connection = await _client.Connections.ConsumeConnectionAsync(CancellationToken.None);
            await using var channel = await connection.CreateChannelAsync();
            var ok = await channel.QueueDeclarePassiveAsync(_client.Topology.Scored);
            return ok.MessageCount == 0;
        }, Deadline, "nothing left unacked");
        Assert.Equal(["a", "b"], effects.ToArray());
    }

    [Fact]
    public async Task Concurrent_deliveries_of_one_id_have_one_effect_and_do_not_block_other_ids()
    {
        var options = _broker.Options(TestNames.Unique("concurrent"));
        options.Prefetch = 4;
        options.ConsumerConcurrency = 4;
        await using var client = new BrokerClient(options);
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var effects = new ConcurrentQueue<string>();
        var consumer = client.NewConsumer();
        await consumer.StartAsync(client.Topology.Scored, async (message, _) =>
        {
            if (message.MessageId == "x")
            {
                await gate.Task;
            }
            effects.Enqueue(message.MessageId);
        }, CancellationToken.None);

        foreach (var id in new[] { "x", "x", "x", "y" })
        {
            await client.Publisher.PublishAsync(OutgoingMessage.ToQueue(client.Topology.Scored, id, new byte[] { 1 }), CancellationToken.None);
        }
        await Eventually.WaitUntilAsync(() => effects.Contains("y"), Deadline, "y handled while x is still in its handler");
        gate.SetResult();
        await Eventually.WaitUntilAsync(() => consumer.DuplicatesDropped == 2 && effects.Count >= 2, Deadline, "the two extra x deliveries dropped as duplicates");

        Assert.Equal(["x", "y"], effects.Order());
    }

    [Fact]
    public async Task Full_input_queue_rejects_publishes_so_the_producer_feels_backpressure()
    {
        const int maxLength = 3;
        var options = _broker.Options(TestNames.Unique("bounded"));
        options.InputQueueMaxLength = maxLength;
        await using var bounded = new BrokerClient(options);
        await bounded.Connections.DeclareTopologyAsync(CancellationToken.None);
        var accepted = 0;
        PublishRejectedException? rejected = null;
        // Quorum queues check the limit before each enqueue, so one publish past it may still land
        // (seen on 3.10: the 4th of a limit of 3); a bounded number of tries must hit the wall.
        for (var i = 0; i < maxLength + 5 && rejected is null; i++)
        {
            try
            {
                await bounded.Publisher.PublishAsync(OutgoingMessage.ToQueue(bounded.Topology.SuperBatches, $"fill-{i}", new byte[] { 1 }), CancellationToken.None);
                accepted++;
            }
            catch (PublishRejectedException ex)
            {
                rejected = ex;
            }
        }

        Assert.NotNull(rejected);
        Assert.InRange(accepted, maxLength, maxLength + 1);
        Assert.Equal((uint)accepted, await bounded.Connections.ReadyCountAsync(bounded.Topology.SuperBatches, CancellationToken.None));
        // Draining makes room again.
        Assert.Equal(2, (await bounded.GetAllAsync(bounded.Topology.SuperBatches, max: 2)).Count);
        await bounded.Publisher.PublishAsync(OutgoingMessage.ToQueue(bounded.Topology.SuperBatches, "after-drain", new byte[] { 1 }), CancellationToken.None);
    }

    [Fact]
    public async Task Unroutable_publish_fails_with_a_message_naming_the_destination()
    {
        var error = await Assert.ThrowsAsync<PublishUnroutableException>(() =>
            _client.Publisher.PublishAsync(OutgoingMessage.ToQueue("no-such-queue-" + Guid.NewGuid().ToString("N"), "x", new byte[] { 1 }), CancellationToken.None));
        Assert.Contains("no-such-queue-", error.Message, StringComparison.Ordinal);
    }
}
